//! What byreis writes is readable and checkable by the stock tools: `age`
//! decrypts the secrets files, `git verify-commit` checks the commits with
//! the registry's allowed_signers, and `ssh-keygen -Y verify` checks the
//! manifest signature in its own namespace only.

use std::fs;

use crate::common::*;

#[test]
fn age_cli_decrypts_the_secrets_files() {
    let w = World::with_secrets();
    let identity = w.alice.home.join("identity.txt");
    for (env, needle) in [
        ("prod", format!("DB: \"{PROD_DB}\"")),
        ("staging", format!("DB: \"{STAGING_DB}\"")),
    ] {
        let file = w.secrets_file(env);
        let text = fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"),
            "{env} is not an armored age file:\n{text}"
        );
        assert!(
            !text.contains(PROD_DB) && !text.contains(STAGING_DB),
            "plaintext in the file"
        );
        let o = w.tool(
            "age",
            &w.proj,
            &[
                "-d",
                "-i",
                identity.to_str().unwrap(),
                file.to_str().unwrap(),
            ],
            None,
        );
        assert_ok(&o, &format!("age -d {env}"));
        let plain = stdout(&o);
        assert!(plain.contains(&needle), "age -d {env}:\n{plain}");
        if env == "prod" {
            assert!(plain.contains(&format!("API: \"{PROD_API}\"")), "{plain}");
        } else {
            assert!(!plain.contains("API:"), "{plain}");
        }
    }

    // Another key cannot decrypt.
    let keyfile = w.root.join("other-key.txt");
    let o = w.tool(
        "age-keygen",
        &w.root,
        &["-o", keyfile.to_str().unwrap()],
        None,
    );
    assert_ok(&o, "age-keygen");
    let o = w.tool(
        "age",
        &w.proj,
        &[
            "-d",
            "-i",
            keyfile.to_str().unwrap(),
            w.secrets_file("prod").to_str().unwrap(),
        ],
        None,
    );
    assert_failed(&o, "age -d with a non-member key");
    assert_no_leak(&o, &[PROD_DB], "age -d with a non-member key");
}

#[test]
fn git_verify_commit_accepts_byreis_commits_in_both_repos() {
    let w = World::with_secrets();
    let allowed = w.reg.join("allowed_signers");
    let text = fs::read_to_string(&allowed).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("alice ") && l.contains(&w.alice.signing_key)),
        "allowed_signers does not list alice's key:\n{text}"
    );
    let cfg = format!("gpg.ssh.allowedSignersFile={}", allowed.display());
    for (what, dir) in [("project", &w.proj), ("registry", &w.reg)] {
        // Every commit byreis made, not just HEAD.
        let revs = w.git_ok(dir, &["rev-list", "HEAD"]);
        let revs: Vec<&str> = revs.lines().collect();
        assert!(
            revs.len() >= 4,
            "{what}: expected >= 4 commits, got {revs:?}"
        );
        for rev in revs {
            let o = w.git(dir, &["-c", &cfg, "verify-commit", rev]);
            assert_ok(&o, &format!("git verify-commit {rev} in the {what}"));
            assert_stderr_contains(&o, "Good \"git\" signature for alice", what);
        }
        // byreis writes its own packs (ADR 0011): stock git checks every
        // object, pack and index.
        let packs = fs::read_dir(dir.join(".git/objects/pack")).unwrap().count();
        assert!(packs > 0, "{what}: byreis wrote no pack");
        let o = w.git(dir, &["fsck", "--full", "--strict", "--no-dangling"]);
        assert_ok(&o, &format!("git fsck in the {what}"));
    }
    // A commit made with plain git is not signed, and verify-commit says so.
    fs::write(w.proj.join("README"), "hello\n").unwrap();
    w.git_ok(&w.proj, &["add", "README"]);
    w.git_ok(&w.proj, &["commit", "-q", "-m", "unsigned"]);
    let o = w.git(&w.proj, &["-c", &cfg, "verify-commit", "HEAD"]);
    assert_failed(&o, "verify-commit of an unsigned commit");
    // byreis itself does not care about commit signatures (the manifest
    // and record are the authority): reads still work.
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get on top of an unsigned commit");
    assert_eq!(stdout(&o), format!("{PROD_DB}\n"));
}

#[test]
fn ssh_keygen_verifies_the_manifest_in_its_namespace_only() {
    let w = World::with_secrets();
    let manifest = fs::read(w.manifest()).unwrap();
    let sig = w.proj.join(".byreis/manifest.yaml.sig");
    let sig_s = sig.to_str().unwrap();

    // Restricted to the manifest namespace.
    let scoped = w.root.join("allowed-manifest");
    fs::write(
        &scoped,
        format!(
            "alice namespaces=\"manifest@byreis.dev\" {}\n",
            w.alice.signing_key
        ),
    )
    .unwrap();
    // Unrestricted: any namespace allowed for the key, so a failure below
    // comes from the namespace bound into the signature itself.
    let open = w.root.join("allowed-any");
    fs::write(&open, format!("alice {}\n", w.alice.signing_key)).unwrap();

    let verify = |allowed: &std::path::Path, ns: &str, data: &[u8]| {
        w.tool(
            "ssh-keygen",
            &w.root,
            &[
                "-Y",
                "verify",
                "-f",
                allowed.to_str().unwrap(),
                "-I",
                "alice",
                "-n",
                ns,
                "-s",
                sig_s,
            ],
            Some(data),
        )
    };

    for allowed in [&scoped, &open] {
        let o = verify(allowed, "manifest@byreis.dev", &manifest);
        assert_ok(&o, "ssh-keygen -Y verify -n manifest@byreis.dev");
        assert!(
            stdout(&o).contains("Good \"manifest@byreis.dev\" signature for alice"),
            "{}",
            dump(&o)
        );
        for ns in ["git", "record@byreis.dev", "audit@byreis.dev"] {
            let o = verify(allowed, ns, &manifest);
            assert_failed(&o, &format!("ssh-keygen -Y verify -n {ns}"));
        }
    }

    // The signature covers the exact bytes: one changed byte fails.
    let mut altered = manifest.clone();
    let text = String::from_utf8(manifest.clone()).unwrap();
    let pos = text.find("counter: ").expect("counter line") + "counter: ".len();
    altered[pos] = if altered[pos] == b'9' { b'8' } else { b'9' };
    let o = verify(&open, "manifest@byreis.dev", &altered);
    assert_failed(&o, "ssh-keygen -Y verify of altered manifest bytes");

    // The registry record is signed in its own namespace, too.
    let record = fs::read(w.reg.join("projects/demo/record.yaml")).unwrap();
    let rsig = w.reg.join("projects/demo/record.yaml.sig");
    let o = w.tool(
        "ssh-keygen",
        &w.root,
        &[
            "-Y",
            "verify",
            "-f",
            open.to_str().unwrap(),
            "-I",
            "alice",
            "-n",
            "record@byreis.dev",
            "-s",
            rsig.to_str().unwrap(),
        ],
        Some(&record),
    );
    assert_ok(&o, "ssh-keygen -Y verify of the record");
    let o = w.tool(
        "ssh-keygen",
        &w.root,
        &[
            "-Y",
            "verify",
            "-f",
            open.to_str().unwrap(),
            "-I",
            "alice",
            "-n",
            "manifest@byreis.dev",
            "-s",
            rsig.to_str().unwrap(),
        ],
        Some(&record),
    );
    assert_failed(&o, "record signature in the manifest namespace");
}
