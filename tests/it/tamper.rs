//! Tampering with the project or the registry outside byreis. Every case
//! must be refused by `get`, `exec` and `doctor` with exit code 3 and a
//! named diagnostic code, and no secret value may appear in the output
//! (invariants 1, 2, 3, 8 and 9 of the design brief).

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

/// Every value any world holds; none may leak from a refused read.
const ALL: &[&str] = &[PROD_DB, PROD_API, STAGING_DB];

fn leaks<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = ALL.to_vec();
    v.extend_from_slice(extra);
    v
}

/// Commits everything in `dir` with plain git (an attacker's push).
fn commit_all(w: &World, dir: &Path, msg: &str) -> String {
    w.git_ok(dir, &["add", "-A"]);
    w.git_ok(dir, &["commit", "-q", "--no-verify", "-m", msg]);
    w.git_ok(dir, &["rev-parse", "HEAD"])
}

/// A fresh age key made with age-keygen; returns (key file, recipient).
fn outsider_age_key(w: &World, name: &str) -> (PathBuf, String) {
    let key = w.root.join(name);
    let o = w.tool("age-keygen", &w.root, &["-o", key.to_str().unwrap()], None);
    assert_ok(&o, "age-keygen");
    let o = w.tool("age-keygen", &w.root, &["-y", key.to_str().unwrap()], None);
    assert_ok(&o, "age-keygen -y");
    (key, stdout(&o).trim().to_string())
}

/// The project's HEAD and the registry's HEAD do not move on refused writes.
#[track_caller]
fn assert_writes_refused(w: &World) {
    let before = w.heads();
    let o = w.alice_run_stdin(&["set", "prod", "DB"], "written-over-tampered-state\n");
    assert_failed(&o, "set on a tampered state");
    assert_no_leak(&o, ALL, "set on a tampered state");
    assert_eq!(w.heads(), before, "set on a tampered state committed");
}

// (a) An outsider who knows the members' public keys writes a valid age
// file. age has no sender authentication; only the manifest hash stops it.
#[test]
fn outsider_reencrypted_file_is_refused() {
    let w = World::with_secrets();
    let forged = w.age_encrypt(
        "DB: \"outsider-value\"\nAPI: \"outsider-api\"\n",
        &[&w.alice.recipient],
    );
    fs::write(w.secrets_file("prod"), forged).unwrap();
    let secrets = leaks(&["outsider-value", "outsider-api"]);
    w.assert_reads_refused(&["file-hash-mismatch"], &secrets, "outsider file");
    assert_writes_refused(&w);
    // Committing the forged file changes nothing for the verdict.
    commit_all(&w, &w.proj, "innocent-looking change");
    w.assert_reads_refused(&["file-hash-mismatch"], &secrets, "committed outsider file");
    // staging's own file is intact and its hash verifies on its own, so
    // byreis may serve it (hashes are checked per file on read; doctor
    // checks every file); what it serves must be the genuine value.
    let o = w.alice_run(&["get", "staging", "DB"]);
    if o.status.success() {
        assert_eq!(stdout(&o), format!("{STAGING_DB}\n"), "{}", dump(&o));
    } else {
        assert_exit(&o, 3, "get staging while prod is forged");
    }
    assert_no_leak(
        &o,
        &[PROD_DB, PROD_API, "outsider-value", "outsider-api"],
        "get staging while prod is forged",
    );
}

// (b) Mix and match: another environment's genuine file copied over prod.
#[test]
fn staging_file_copied_over_prod_is_refused() {
    let w = World::with_secrets();
    fs::copy(w.secrets_file("staging"), w.secrets_file("prod")).unwrap();
    w.assert_reads_refused(&["file-hash-mismatch"], ALL, "staging copied over prod");
}

// (c) A file the manifest does not list.
#[test]
fn unlisted_file_is_refused() {
    let w = World::with_secrets();
    let extra = w.age_encrypt("X: \"unlisted-value\"\n", &[&w.alice.recipient]);
    fs::write(w.proj.join("secrets/extra.enc.yaml"), extra).unwrap();
    w.assert_reads_refused(
        &["file-unlisted"],
        &leaks(&["unlisted-value"]),
        "unlisted file",
    );
    // Any other name under secrets/ is unlisted too.
    fs::remove_file(w.proj.join("secrets/extra.enc.yaml")).unwrap();
    fs::write(w.proj.join("secrets/notes.txt"), "hello\n").unwrap();
    w.assert_reads_refused(&["file-unlisted"], ALL, "stray file under secrets/");
}

// (d) A listed file deleted.
#[test]
fn deleted_file_is_refused() {
    let w = World::with_secrets();
    fs::remove_file(w.secrets_file("staging")).unwrap();
    w.assert_reads_refused(&["file-missing"], ALL, "deleted staging file");
    assert_writes_refused(&w);
    // Deleted and committed.
    commit_all(&w, &w.proj, "remove staging");
    w.assert_reads_refused(&["file-missing"], ALL, "committed deletion");
}

// (e) The manifest edited after it was signed.
#[test]
fn manifest_edited_after_signing_is_refused() {
    let w = World::with_secrets();
    let original = fs::read(w.manifest()).unwrap();

    // Bump the counter.
    replace_in_file(&w.manifest(), "\ncounter: 4\n", "\ncounter: 5\n");
    w.assert_reads_refused(
        &["manifest-invalid", "manifest-not-pinned"],
        ALL,
        "manifest counter edited",
    );

    // Swap alice's recipient for an outsider's, so the next write would
    // encrypt to the outsider. Reads and writes must refuse.
    fs::write(w.manifest(), &original).unwrap();
    let (_, outsider) = outsider_age_key(&w, "outsider-age.txt");
    replace_in_file(&w.manifest(), &w.alice.recipient, &outsider);
    w.assert_reads_refused(
        &["manifest-invalid", "manifest-not-pinned"],
        ALL,
        "manifest recipient swapped",
    );
    assert_writes_refused(&w);
    commit_all(&w, &w.proj, "update recipients");
    w.assert_reads_refused(
        &["manifest-invalid", "manifest-not-pinned"],
        ALL,
        "committed manifest recipient swap",
    );
    assert_writes_refused(&w);
}

// (f) The manifest re-signed, after editing, by a key not in the roster.
#[test]
fn manifest_resigned_by_a_foreign_key_is_refused() {
    let w = World::with_secrets();
    let old_sha = sha256_file(&w.root, &w.secrets_file("prod"));
    let forged = w.age_encrypt("DB: \"resigned-forgery\"\n", &[&w.alice.recipient]);
    fs::write(w.secrets_file("prod"), forged).unwrap();
    let new_sha = sha256_file(&w.root, &w.secrets_file("prod"));
    replace_in_file(&w.manifest(), &old_sha, &new_sha);
    let key = w.outsider_ssh_key("outsider_ed25519");
    w.ssh_sign(&key, "manifest@byreis.dev", &w.manifest());
    let secrets = leaks(&["resigned-forgery"]);
    w.assert_reads_refused(
        &["manifest-invalid", "manifest-not-pinned"],
        &secrets,
        "manifest re-signed by an outsider",
    );
    commit_all(&w, &w.proj, "re-signed manifest");
    w.assert_reads_refused(
        &["manifest-invalid", "manifest-not-pinned"],
        &secrets,
        "committed manifest re-signed by an outsider",
    );
}

// (f') Even alice's own key does not count when the signature is in
// another namespace (here `git`, as for a commit).
#[test]
fn manifest_signed_in_the_wrong_namespace_is_refused() {
    let w = World::with_secrets();
    replace_in_file(&w.manifest(), "\ncounter: 4\n", "\ncounter: 5\n");
    w.ssh_sign(&w.alice.home.join("signing_key"), "git", &w.manifest());
    w.assert_reads_refused(
        &["manifest-invalid", "manifest-not-pinned"],
        ALL,
        "manifest signed by alice in the git namespace",
    );
}

// (g) Project rolled back with plain git: a revert commits the older
// manifest on top of the pinned commit.
#[test]
fn project_revert_is_a_manifest_rollback() {
    let w = World::with_secrets();
    w.set("prod", "DB", "current-db-value");
    w.git_ok(&w.proj, &["revert", "--no-edit", "HEAD"]);
    // The working tree now holds the old value's file and manifest.
    w.assert_reads_refused(
        &["manifest-rollback"],
        &leaks(&["current-db-value"]),
        "git revert of the last change",
    );
    assert_writes_refused(&w);
}

// (g) A hard reset leaves the branch behind the pinned commit: reads serve
// the pinned (current) state from git objects, never the old value.
#[test]
fn project_hard_reset_serves_the_current_value_never_the_old() {
    let w = World::with_secrets();
    w.set("prod", "DB", "current-db-value");
    w.git_ok(&w.proj, &["reset", "-q", "--hard", "HEAD~1"]);
    let check = |what: &str| {
        let o = w.alice_run(&["get", "prod", "DB"]);
        assert_no_leak(&o, &[PROD_DB], what);
        if o.status.success() {
            assert_eq!(stdout(&o), "current-db-value\n", "{what}\n{}", dump(&o));
            assert_stderr_contains(&o, "checkout-not-current", what);
        } else {
            assert_exit(&o, 3, what);
        }
        let o = w.alice_run(&["exec", "prod", "--", "sh", "-c", "printf %s \"$DB\""]);
        assert_no_leak(&o, &[PROD_DB], what);
        if o.status.success() {
            assert_eq!(stdout(&o), "current-db-value", "{what}\n{}", dump(&o));
        } else {
            assert_exit(&o, 3, what);
        }
    };
    check("after git reset --hard HEAD~1");
    // Someone commits on top of the reset branch (history diverged).
    fs::write(w.proj.join("app.txt"), "code\n").unwrap();
    commit_all(&w, &w.proj, "app change on the old base");
    check("after a commit on top of the reset branch");
    // Writing from there is refused.
    assert_writes_refused(&w);
}

// (g) A fresh clone of a project whose branch was force-reset: the pinned
// commit is not in the clone.
#[test]
fn clone_without_the_pinned_commit_is_refused() {
    let w = World::with_secrets();
    w.set("prod", "DB", "current-db-value");
    w.git_ok(&w.proj, &["reset", "-q", "--hard", "HEAD~1"]);
    let clone = w.root.join("clone");
    // --no-local: a local clone would hard-link every object, including the
    // now unreachable pinned commit.
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            "--no-local",
            w.proj.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let env = [("BYREIS_ANCHOR", w.anchor.as_str())];
    assert_reads_refused_in(
        &w.alice.home,
        &clone,
        &["pinned-commit-missing"],
        &leaks(&["current-db-value"]),
        "clone without the pinned commit",
        &env,
    );
}

// (h) The registry rolled back after a reader saw the newer counter.
#[test]
fn registry_rollback_is_refused() {
    let w = World::with_secrets();
    w.set("prod", "DB", "current-db-value");
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get before the rollback");
    w.git_ok(&w.reg, &["reset", "-q", "--hard", "HEAD~1"]);
    w.assert_reads_refused(
        &["record-rollback"],
        &leaks(&["current-db-value"]),
        "registry reset --hard HEAD~1",
    );
    assert_writes_refused(&w);
    // Both rolled back together: still refused by this machine.
    w.git_ok(&w.proj, &["reset", "-q", "--hard", "HEAD~1"]);
    w.assert_reads_refused(
        &["record-rollback"],
        &leaks(&["current-db-value"]),
        "project and registry rolled back together",
    );
}

// The registry record edited (an outsider cannot re-sign it).
#[test]
fn registry_record_edited_is_refused() {
    let w = World::with_secrets();
    let record = w.reg.join("projects/demo/record.yaml");
    let text = fs::read_to_string(&record).unwrap();
    let expires = text
        .lines()
        .find(|l| l.starts_with("expires: "))
        .expect("expires line")
        .to_string();
    replace_in_file(&record, &expires, "expires: 2999-01-01T00:00:00Z");
    commit_all(&w, &w.reg, "extend expiry");
    w.assert_reads_refused(&["record-invalid"], ALL, "record edited");
}

/// Re-signs the registry record with alice's real key after `edit`, and
/// commits it (what a compromised or buggy admin client could do).
fn resign_record(w: &World, edit: impl FnOnce(&str) -> String) {
    let record = w.reg.join("projects/demo/record.yaml");
    let text = fs::read_to_string(&record).unwrap();
    fs::write(&record, edit(&text)).unwrap();
    w.ssh_sign(
        &w.alice.home.join("signing_key"),
        "record@byreis.dev",
        &record,
    );
    commit_all(w, &w.reg, "re-signed record");
}

fn with_expiry(text: &str, expires: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("expires: ") {
                format!("expires: {expires}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

// Freeze defence: an expired record is refused even though alice signed it;
// one that expires soon is served with a warning.
#[test]
fn expired_record_is_refused_and_expiring_one_warns() {
    let w = World::with_secrets();
    resign_record(&w, |t| with_expiry(t, "2000-01-01T00:00:00Z"));
    w.assert_reads_refused(&["record-expired"], ALL, "expired record");
    assert_writes_refused(&w);

    let soon = w.tool(
        "date",
        &w.root,
        &["-u", "-d", "+3 days", "+%Y-%m-%dT%H:%M:%SZ"],
        None,
    );
    assert_ok(&soon, "date");
    let soon = stdout(&soon).trim().to_string();
    resign_record(&w, |t| with_expiry(t, &soon));
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get with an expiring record");
    assert_eq!(stdout(&o), format!("{PROD_DB}\n"));
    assert_stderr_contains(&o, "record-expiring", "get with an expiring record");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor with an expiring record");
    let record = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "record")
        .expect("record check");
    assert_eq!(record["status"], "warn", "{v}");
    assert_eq!(record["code"], "record-expiring", "{v}");
}

// The audit log truncated: the manifest records its head.
#[test]
fn audit_log_truncated_is_refused() {
    let w = World::with_secrets();
    let audit = w.proj.join(".byreis/audit.jsonl");
    let text = fs::read_to_string(&audit).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "one audit entry per change:\n{text}");
    lines.pop();
    fs::write(&audit, format!("{}\n", lines.join("\n"))).unwrap();
    w.assert_reads_refused(&["audit-broken"], ALL, "audit log truncated");
}

// (i) A file with an extra recipient stanza. An outsider cannot make such a
// file match the manifest hash, so from an outsider it is a hash mismatch.
#[test]
fn outsider_file_with_an_extra_recipient_is_refused() {
    let w = World::with_secrets();
    let (_, outsider) = outsider_age_key(&w, "outsider-age.txt");
    let forged = w.age_encrypt(
        "DB: \"two-recipient-forgery\"\n",
        &[&w.alice.recipient, &outsider],
    );
    fs::write(w.secrets_file("prod"), forged).unwrap();
    w.assert_reads_refused(
        &["file-hash-mismatch"],
        &leaks(&["two-recipient-forgery"]),
        "outsider file encrypted to an extra recipient",
    );
}

// (i) The same file in a state that is otherwise fully signed by the admin
// (manifest and record re-signed with alice's real key, as a buggy or
// compromised client might do): the stanza count catches it.
#[test]
fn admin_signed_file_with_an_extra_recipient_is_refused() {
    let w = World::with_secrets();
    let (_, outsider) = outsider_age_key(&w, "outsider-age.txt");
    let file = w.age_encrypt(
        "DB: \"extra-recipient-value\"\n",
        &[&w.alice.recipient, &outsider],
    );
    admin_signed_prod(&w, file);
    w.assert_reads_refused(
        &["recipients-mismatch"],
        &leaks(&["extra-recipient-value"]),
        "admin-signed file with an extra recipient",
    );
}

/// Replaces prod's file with `file` in a state otherwise fully signed by
/// alice's real key (manifest hash and signature, record re-signed and
/// pinning the new commit), as a buggy or compromised client might write.
fn admin_signed_prod(w: &World, file: Vec<u8>) {
    admin_signed(w, "re-encrypted prod", |w| {
        let old_sha = sha256_file(&w.root, &w.secrets_file("prod"));
        fs::write(w.secrets_file("prod"), file).unwrap();
        let new_sha = sha256_file(&w.root, &w.secrets_file("prod"));
        replace_in_file(&w.manifest(), &old_sha, &new_sha);
    });
}

/// `edit` changes the project's files; then the manifest is signed with
/// alice's real key and the record re-signed to pin the new commit.
fn admin_signed(w: &World, what: &str, edit: impl FnOnce(&World)) {
    let key = w.alice.home.join("signing_key");
    edit(w);
    w.ssh_sign(&key, "manifest@byreis.dev", &w.manifest());
    let commit = commit_all(w, &w.proj, what);

    let record = w.reg.join("projects/demo/record.yaml");
    let text = fs::read_to_string(&record).unwrap();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("record has no {prefix}:\n{text}"))
            .to_string()
    };
    let manifest_sha = sha256_file(&w.root, &w.manifest());
    replace_in_file(
        &record,
        &line("manifest: "),
        &format!("manifest: sha256:{manifest_sha}"),
    );
    replace_in_file(
        &record,
        &line("project_commit: "),
        &format!("project_commit: {commit}"),
    );
    // The record's proof is of the old manifest; a forger signing with
    // one admin key under thresholds of 1 drops it (ADR 0017).
    strip_record_proof(&record);
    w.ssh_sign(&key, "record@byreis.dev", &record);
    commit_all(w, &w.reg, &format!("record for: {what}"));
}

/// Malicious YAML inside a file that is otherwise fully admin-signed: the
/// decrypted document is parsed as untrusted input and refused.
fn assert_plaintext_refused(plaintext: &str, what: &str) {
    let w = World::with_secrets();
    let file = w.age_encrypt(plaintext, &[&w.alice.recipient]);
    admin_signed_prod(&w, file);
    for args in [
        vec!["get", "prod", "DB"],
        vec!["exec", "prod", "--", "true"],
        vec!["list", "prod"],
    ] {
        let o = w.alice_run(&args);
        assert_refused(&o, &["file-malformed"], &format!("{what}: {}", args[0]));
        assert_no_leak(&o, &leaks(&["yaml-attack-value"]), what);
    }
    // Keyless `doctor` cannot see inside the file; `doctor --decrypt`
    // reads it with alice's key and names the same code.
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, &format!("{what}: keyless doctor"));
    let o = w.alice_run(&["doctor", "--decrypt", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("doctor JSON");
    assert_doctor_fails(
        &o,
        &v,
        &["file-malformed"],
        &format!("{what}: doctor --decrypt"),
    );
    assert_no_leak(&o, &leaks(&["yaml-attack-value"]), what);
}

#[test]
fn aliased_yaml_is_refused() {
    assert_plaintext_refused(
        "A: &x \"yaml-attack-value\"\nDB: *x\n",
        "an alias in the secrets document",
    );
}

#[test]
fn duplicate_key_yaml_is_refused() {
    assert_plaintext_refused(
        "DB: \"yaml-attack-value\"\nDB: \"second\"\n",
        "a duplicate key",
    );
}

#[test]
fn multi_document_yaml_is_refused() {
    assert_plaintext_refused(
        "DB: \"first\"\n---\nDB: \"yaml-attack-value\"\n",
        "a second YAML document",
    );
}

#[test]
fn deeply_nested_yaml_is_refused() {
    let deep = format!("DB: {}x{}\n", "[".repeat(10_000), "]".repeat(10_000));
    assert_plaintext_refused(&deep, "deeply nested YAML");
}

#[test]
fn oversized_yaml_is_refused() {
    let big = format!("DB: \"{}\"\n", "y".repeat((1 << 20) + 16));
    assert_plaintext_refused(&big, "an oversized secrets document");
}

#[test]
fn tagged_and_non_string_values_are_refused() {
    assert_plaintext_refused("DB: !!binary eWFtbC1hdHRhY2stdmFsdWU=\n", "a tagged value");
}

// (j) byreis.yaml pointed at another registry, with that registry's anchor.
#[test]
fn config_pointed_at_another_registry_is_refused() {
    let w = World::with_secrets();
    let mallory = keygen(&w.root, "mallory");
    let reg2 = w.root.join("reg2");
    let o = run(
        &mallory.home,
        &w.root,
        &["registry", "init", reg2.to_str().unwrap()],
        None,
    );
    assert_ok(&o, "mallory's registry init");
    let anchor2 = stdout(&o).trim().to_string();
    assert_ne!(anchor2, w.anchor);

    let config = w.proj.join("byreis.yaml");
    let original = fs::read_to_string(&config).unwrap();
    assert!(original.contains("registry: ../reg\n"), "{original}");
    replace_in_file(&config, "registry: ../reg\n", "registry: ../reg2\n");
    replace_in_file(&config, &w.anchor, &anchor2);
    w.assert_reads_refused(&["registry-mismatch"], ALL, "config names another registry");
    assert_writes_refused(&w);
    commit_all(&w, &w.proj, "move registry");
    w.assert_reads_refused(&["registry-mismatch"], ALL, "committed config move");

    // Only the registry moved, anchor unchanged.
    fs::write(
        &config,
        original.replace("registry: ../reg\n", "registry: ../reg2\n"),
    )
    .unwrap();
    w.assert_reads_refused(
        &["registry-mismatch"],
        ALL,
        "config names another registry path",
    );
    // Only the anchor changed.
    fs::write(&config, original.replace(&w.anchor, &anchor2)).unwrap();
    w.assert_reads_refused(&["anchor-mismatch"], ALL, "config names another anchor");

    // A CI run pinned by BYREIS_ANCHOR on a fresh clone is not fooled either.
    // (The committed config is the moved one.)
    w.git_ok(&w.proj, &["checkout", "--", "byreis.yaml"]);
    let clone = w.root.join("ci-clone");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            w.proj.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    // (The hint leads to mallory's registry, whose roster has no version
    // with the anchor CI was given.)
    assert_reads_refused_in(
        &w.alice.home,
        &clone,
        &["roster-anchor-mismatch"],
        ALL,
        "CI clone with a moved registry",
        &[("BYREIS_ANCHOR", w.anchor.as_str())],
    );
}

// (k) A symlink under secrets/, pointing at a genuine copy.
#[test]
fn symlink_under_secrets_is_refused() {
    let w = World::with_secrets();
    let copy = w.root.join("prod-copy.enc.yaml");
    fs::copy(w.secrets_file("prod"), &copy).unwrap();
    fs::remove_file(w.secrets_file("prod")).unwrap();
    std::os::unix::fs::symlink(&copy, w.secrets_file("prod")).unwrap();
    w.assert_reads_refused(&["file-not-regular"], ALL, "symlink under secrets/");
    // secrets/ itself a symlink to a genuine copy of the directory.
    fs::remove_file(w.secrets_file("prod")).unwrap();
    fs::copy(&copy, w.secrets_file("prod")).unwrap();
    let dir_copy = w.root.join("secrets-copy");
    fs::rename(w.proj.join("secrets"), &dir_copy).unwrap();
    std::os::unix::fs::symlink(&dir_copy, w.proj.join("secrets")).unwrap();
    w.assert_reads_refused(&["file-not-regular"], ALL, "secrets/ is a symlink");
    fs::remove_file(w.proj.join("secrets")).unwrap();
    fs::rename(&dir_copy, w.proj.join("secrets")).unwrap();
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get after restoring secrets/");
    // A directory with a listed name is not a regular file either.
    fs::remove_file(w.secrets_file("prod")).unwrap();
    fs::create_dir(w.secrets_file("prod")).unwrap();
    w.assert_reads_refused(&["file-not-regular"], ALL, "directory under secrets/");
}

// The roster's first version edited: it no longer hashes to the anchor.
#[test]
fn roster_v1_edited_is_refused() {
    let w = World::with_secrets();
    let mallory = keygen(&w.root, "mallory");
    let roster = w.reg.join("roster/1.yaml");
    replace_in_file(&roster, &w.alice.signing_key, &mallory.signing_key);
    commit_all(&w, &w.reg, "rotate alice's key");
    w.assert_reads_refused(&["roster-anchor-mismatch"], ALL, "roster v1 edited");
    assert_writes_refused(&w);
}

// A roster version 2 that hands the registry to an outsider, signed only by
// the outsider: it needs the threshold of version 1's admins.
#[test]
fn roster_v2_signed_by_an_outsider_is_refused() {
    let w = World::with_secrets();
    let key = w.outsider_ssh_key("mallory_ed25519");
    let mallory_pub = fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    let mallory_pub: Vec<&str> = mallory_pub.split_whitespace().take(2).collect();
    let v1 = w.reg.join("roster/1.yaml");
    let v1_sha = sha256_file(&w.root, &v1);
    let text = fs::read_to_string(&v1).unwrap();
    let text = text
        .replacen(
            "\nversion: 1\n",
            &format!("\nversion: 2\nprevious: sha256:{v1_sha}\n"),
            1,
        )
        .replacen(&w.alice.signing_key, &mallory_pub.join(" "), 1);
    assert!(
        text.contains("version: 2") && text.contains(mallory_pub[1]),
        "{text}"
    );
    let v2 = w.reg.join("roster/2.yaml");
    fs::write(&v2, text).unwrap();
    w.ssh_sign(&key, "roster@byreis.dev", &v2);
    commit_all(&w, &w.reg, "roster v2");
    w.assert_reads_refused(&["roster-invalid"], ALL, "roster v2 signed by an outsider");
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_stderr_contains(&o, "roster/2.yaml", "the refusal names the bad version");
    assert_writes_refused(&w);
}

// allowed_signers is a convenience for stock git; doctor flags a file that
// differs from the verified roster (stock git would trust the extra key).
#[test]
fn allowed_signers_tampered_is_flagged_by_doctor() {
    let w = World::with_secrets();
    let mallory = keygen(&w.root, "mallory");
    let allowed = w.reg.join("allowed_signers");
    let mut text = fs::read_to_string(&allowed).unwrap();
    text.push_str(&format!(
        "mallory namespaces=\"git\" {}\n",
        mallory.signing_key
    ));
    fs::write(&allowed, text).unwrap();
    commit_all(&w, &w.reg, "add mallory to allowed_signers");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_fails(
        &o,
        &v,
        &["allowed-signers-stale"],
        "tampered allowed_signers",
    );
    // Reads do not depend on allowed_signers: the roster is the authority.
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get with a tampered allowed_signers");
    assert_eq!(stdout(&o), format!("{PROD_DB}\n"));
}

// Invariant 9: byreis runs no repository hooks, filters or fsmonitor, in
// the project or the registry.
#[test]
fn repository_code_is_never_run() {
    let w = World::with_secrets();
    let marker = w.root.join("repo-code-ran");
    let evil = w.root.join("evil.sh");
    write_script(
        &evil,
        &format!("echo \"$0 $*\" >> '{}'\ncat", marker.display()),
    );
    let evil_s = evil.to_str().unwrap();
    let hooks = w.root.join("hooks");
    fs::create_dir(&hooks).unwrap();
    for dir in [&w.proj, &w.reg] {
        // Attributes first, committed before the filter exists.
        fs::write(dir.join(".gitattributes"), "* filter=evil diff=evil\n").unwrap();
        commit_all(&w, dir, "attributes");
        for hook in [
            "pre-commit",
            "commit-msg",
            "post-commit",
            "prepare-commit-msg",
            "reference-transaction",
            "post-checkout",
            "pre-push",
        ] {
            fs::copy(&evil, dir.join(".git/hooks").join(hook)).unwrap();
            fs::copy(&evil, hooks.join(hook)).unwrap();
        }
        for (k, v) in [
            ("filter.evil.clean", evil_s),
            ("filter.evil.smudge", evil_s),
            ("filter.evil.process", evil_s),
            ("diff.evil.textconv", evil_s),
            ("core.fsmonitor", evil_s),
            ("core.sshCommand", evil_s),
            ("gpg.ssh.program", evil_s),
            ("gpg.program", evil_s),
        ] {
            w.git_ok(dir, &["config", k, v]);
        }
    }
    // Only the project gets core.hooksPath (the registry keeps .git/hooks).
    w.git_ok(
        &w.proj,
        &["config", "core.hooksPath", hooks.to_str().unwrap()],
    );
    // An origin, so writes push (and approvals fetch) through the user's
    // own git: with hooks off (ADR 0010).
    let origin = w.root.join("origin.git");
    w.git_ok(&w.root, &["init", "-q", "--bare", origin.to_str().unwrap()]);
    w.git_ok(
        &w.proj,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    w.git_ok(&w.proj, &["push", "-q", "origin", "main"]);
    let _ = fs::remove_file(&marker);

    w.set("prod", "DB", "set-with-hooks-around");
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get");
    assert_eq!(stdout(&o), "set-with-hooks-around\n");
    let o = w.alice_run(&["exec", "prod", "--", "true"]);
    assert_ok(&o, "exec");
    let o = w.alice_run(&["unset", "prod", "API"]);
    assert_ok(&o, "unset");
    let editor = w.root.join("editor.sh");
    write_script(&editor, "printf 'NEW: \"v\"\\n' >> \"$1\"");
    let o = w.alice_run_env(
        &["edit", "staging"],
        &[("EDITOR", editor.to_str().unwrap())],
    );
    assert_ok(&o, "edit");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor");
    assert_eq!(
        w.git_ok(&origin, &["rev-parse", "main"]),
        w.git_ok(&w.proj, &["rev-parse", "HEAD"]),
        "the writes were pushed"
    );
    assert!(
        !marker.exists(),
        "byreis ran repository code:\n{}",
        fs::read_to_string(&marker).unwrap_or_default()
    );
    // The trap is armed: stock git does run it, in both repositories.
    for dir in [&w.proj, &w.reg] {
        fs::write(dir.join("touched.txt"), "x\n").unwrap();
        let o = w.git(dir, &["add", "touched.txt"]);
        assert_ok(&o, "git add");
        let o = w.git(dir, &["commit", "-q", "--no-gpg-sign", "-m", "plain git"]);
        assert_ok(&o, "git commit");
        assert!(
            marker.exists(),
            "the hooks/filters did not fire for stock git in {}",
            dir.display()
        );
        fs::remove_file(&marker).unwrap();
    }
    let o = w.git(&w.proj, &["push", "-q", "origin", "main"]);
    assert_ok(&o, "stock git push");
    assert!(marker.exists(), "pre-push did not fire for stock git push");
}

// ADR 0007: libgit2 does not apply `refs/replace/`. A replace ref that
// swaps the pinned commit for one with a forged secrets file fools stock
// git, not byreis: in the work tree or in an old checkout (served from the
// pinned commit's objects), byreis reads the real commit.
#[test]
fn replace_refs_are_ignored() {
    let w = World::with_secrets();
    let head = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);
    let forged_file = w.age_encrypt("DB: \"replaced-9d3\"\n", &[&w.alice.recipient]);
    w.git_ok(&w.proj, &["checkout", "-q", "-b", "forged"]);
    fs::write(w.secrets_file("prod"), &forged_file).unwrap();
    commit_all(&w, &w.proj, "forged");
    let forged = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);
    w.git_ok(&w.proj, &["checkout", "-q", "main"]);
    w.git_ok(&w.proj, &["branch", "-q", "-D", "forged"]);
    w.git_ok(&w.proj, &["replace", &head, &forged]);
    // The trap is armed: stock git now shows the forged file at HEAD.
    assert_eq!(
        w.git_blob("HEAD", "secrets/prod.enc.yaml"),
        forged_file,
        "stock git applies the replace ref"
    );
    w.assert_get("prod", "DB", PROD_DB);
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor with a replace ref");
    // An old checkout is served from the pinned commit's objects.
    w.set("staging", "DB", "staging-2");
    let pinned = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);
    w.git_ok(&w.proj, &["replace", "-f", &pinned, &forged]);
    w.git_ok(&w.proj, &["checkout", "-q", "--detach", &head]);
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get in an old checkout");
    assert_eq!(stdout(&o), format!("{PROD_DB}\n"));
    assert_no_leak(&o, &["replaced-9d3"], "old checkout");
    w.git_ok(&w.proj, &["checkout", "-q", "main"]);
}

// A listed file renamed: the listed name is missing, the new one unlisted.
#[test]
fn renamed_file_is_refused() {
    let w = World::with_secrets();
    fs::rename(
        w.secrets_file("prod"),
        w.proj.join("secrets/production.enc.yaml"),
    )
    .unwrap();
    w.assert_reads_refused(&["file-unlisted", "file-missing"], ALL, "renamed prod file");
}

// Two genuine files swapped: each is signed for the other environment.
#[test]
fn swapped_files_are_refused() {
    let w = World::with_secrets();
    let prod = fs::read(w.secrets_file("prod")).unwrap();
    let staging = fs::read(w.secrets_file("staging")).unwrap();
    fs::write(w.secrets_file("prod"), &staging).unwrap();
    fs::write(w.secrets_file("staging"), &prod).unwrap();
    w.assert_reads_refused(&["file-hash-mismatch"], ALL, "prod and staging swapped");
}

// A name differing only by case next to a listed one.
#[test]
fn case_only_name_collision_is_refused() {
    let w = World::with_secrets();
    fs::copy(w.secrets_file("prod"), w.proj.join("secrets/Prod.enc.yaml")).unwrap();
    w.assert_reads_refused(&["file-unlisted"], ALL, "secrets/Prod.enc.yaml beside prod");
}

// A file whose name is not UTF-8.
#[test]
fn non_utf8_name_is_refused() {
    use std::os::unix::ffi::OsStrExt as _;
    let w = World::with_secrets();
    let name = std::ffi::OsStr::from_bytes(b"pr\xffod.enc.yaml");
    fs::copy(w.secrets_file("prod"), w.proj.join("secrets").join(name)).unwrap();
    w.assert_reads_refused(&["file-unlisted"], ALL, "a non-UTF-8 name under secrets/");
}

// Audit entries swapped in place: the chain breaks.
#[test]
fn audit_entries_reordered_are_refused() {
    let w = World::with_secrets();
    let audit = w.proj.join(".byreis/audit.jsonl");
    let text = fs::read_to_string(&audit).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(1, 2);
    fs::write(&audit, format!("{}\n", lines.join("\n"))).unwrap();
    w.assert_reads_refused(&["audit-broken"], ALL, "audit entries reordered");
}

// An audit entry edited (its actor), keeping its signature.
#[test]
fn audit_entry_edited_is_refused() {
    let w = World::with_secrets();
    let audit = w.proj.join(".byreis/audit.jsonl");
    replace_in_file(
        &audit,
        "\"keys_added\":[\"API\"]",
        "\"keys_added\":[\"OTHER\"]",
    );
    w.assert_reads_refused(&["audit-broken"], ALL, "audit entry edited");
    // The rotation history stops before any row (docs/auditing.md).
    let o = w.alice_run(&["doctor", "--rotation-history", "--format", "json"]);
    assert_refused(
        &o,
        &["audit-broken"],
        "rotation history over an edited audit log",
    );
    // No row: stdout holds only the error (docs/diagnostics.md).
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON error");
    assert_eq!(
        v["error"]["code"],
        "audit-broken",
        "no row printed\n{}",
        dump(&o)
    );
    assert_eq!(
        v.as_object().map(|m| m.len()),
        Some(1),
        "no row printed\n{}",
        dump(&o)
    );
}

// An audit entry carrying another entry's signature.
#[test]
fn audit_signature_swapped_is_refused() {
    let w = World::with_secrets();
    let audit = w.proj.join(".byreis/audit.jsonl");
    let text = fs::read_to_string(&audit).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let sig_of = |l: &str| l[l.rfind("\"sig\":").expect("sig field")..].to_string();
    let last = lines.len() - 1;
    let forged = lines[last].replace(&sig_of(&lines[last]), &sig_of(&lines[last - 1]));
    let mut out = lines.clone();
    out[last] = forged;
    fs::write(&audit, format!("{}\n", out.join("\n"))).unwrap();
    w.assert_reads_refused(&["audit-broken"], ALL, "audit signature swapped");
}

// The manifest and its signature replayed from an older counter into the
// working tree.
#[test]
fn manifest_replayed_from_an_older_counter_is_refused() {
    let w = World::with_secrets();
    for f in [".byreis/manifest.yaml", ".byreis/manifest.yaml.sig"] {
        let old = w.git_ok(&w.proj, &["show", &format!("HEAD~2:{f}")]);
        fs::write(w.proj.join(f), format!("{old}\n")).unwrap();
    }
    w.assert_reads_refused(
        &[
            "manifest-rollback",
            "manifest-not-pinned",
            "manifest-invalid",
        ],
        ALL,
        "manifest replayed from counter 2",
    );
}

// byreis.yaml's anchor changed to another registry's anchor.
#[test]
fn config_pointed_at_another_anchor_is_refused() {
    let w = World::with_secrets();
    let text = fs::read_to_string(w.proj.join("byreis.yaml")).unwrap();
    let anchor_line = text
        .lines()
        .find(|l| l.starts_with("anchor: "))
        .expect("anchor line")
        .to_string();
    replace_in_file(
        &w.proj.join("byreis.yaml"),
        &anchor_line,
        "anchor: aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh",
    );
    w.assert_reads_refused(
        &["anchor-mismatch", "config-invalid"],
        ALL,
        "another anchor",
    );
}

// A secret named like a loader variable in a file that is otherwise fully
// admin-signed: `exec` refuses to pass it and runs nothing; `get` of
// another name still works (the file itself verifies).
#[test]
fn exec_name_that_loads_code_is_refused() {
    let w = World::with_secrets();
    let file = w.age_encrypt(
        "DB: \"db-value\"\nLD_PRELOAD: \"/tmp/evil.so\"\n",
        &[&w.alice.recipient],
    );
    admin_signed_prod(&w, file);
    let marker = w.root.join("exec-ran");
    let script = format!("touch '{}'", marker.display());
    let o = w.alice_run(&["exec", "prod", "--", "sh", "-c", &script]);
    assert_failed(&o, "exec with LD_PRELOAD");
    assert_stderr_contains(&o, "LD_PRELOAD", "names the variable");
    assert!(!marker.exists(), "exec ran the child");
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get another name");
}

// A manifest in the form before ADR 0016, with a manifest-wide
// `exec_allow`, signed by an admin: still honoured in every environment.
// `exec-allow ENV NAME --remove` of such a name withdraws it from ENV only,
// moving it to every other environment's own list.
#[test]
fn a_manifest_wide_exec_allow_is_honoured_and_removed_per_environment() {
    let w = World::with_secrets();
    w.set("prod", "PYTHONWARNINGS", "default");
    w.set("staging", "PYTHONWARNINGS", "default");
    let printed = "printf %s \"$PYTHONWARNINGS\"";
    for env in ["prod", "staging"] {
        let o = w.alice_run(&["exec", env, "--", "sh", "-c", printed]);
        assert_failed(&o, &format!("exec {env} before the allowance"));
    }
    admin_signed(&w, "a manifest-wide exec_allow", |w| {
        let text = fs::read_to_string(w.manifest()).unwrap();
        assert!(!text.contains("exec_allow"), "{text}");
        fs::write(
            w.manifest(),
            format!("{text}exec_allow:\n- PYTHONWARNINGS\n"),
        )
        .unwrap();
    });
    for env in ["prod", "staging"] {
        let o = w.alice_run(&["exec", env, "--", "sh", "-c", printed]);
        assert_ok(&o, &format!("exec {env} with a manifest-wide allowance"));
        assert_eq!(stdout(&o), "default");
    }
    // Allowing it again in prod: already allowed.
    let heads = w.heads();
    let o = w.alice_run(&["exec-allow", "prod", "PYTHONWARNINGS"]);
    assert_ok(&o, "exec-allow of a manifest-wide name");
    assert_stderr_contains(&o, "already allowed in prod", "already allowed");
    assert_eq!(w.heads(), heads);

    let o = w.alice_run(&["exec-allow", "prod", "PYTHONWARNINGS", "--remove"]);
    assert_ok(&o, "exec-allow prod --remove of a manifest-wide name");
    let o = w.alice_run(&["exec", "prod", "--", "sh", "-c", printed]);
    assert_failed(&o, "exec prod after --remove");
    assert_stderr_contains(
        &o,
        "PYTHONWARNINGS (family PYTHON*",
        "exec prod after --remove",
    );
    let o = w.alice_run(&["exec", "staging", "--", "sh", "-c", printed]);
    assert_ok(&o, "exec staging keeps its allowance");
    assert_eq!(stdout(&o), "default");
    let m = w.manifest_yaml();
    assert!(
        m.get("exec_allow").is_none(),
        "the manifest-wide list is gone: {m:?}"
    );
    assert_eq!(
        m["environments"]["staging"]["exec_allow"],
        serde_yaml::from_str::<serde_yaml::Value>("[PYTHONWARNINGS]").unwrap()
    );
    let a = w.last_audit();
    assert_eq!(a["action"], "exec-allow-remove", "{a}");
    assert_eq!(a["details"]["was_manifest_wide"], true, "{a}");
    assert_eq!(
        a["details"]["still_allowed_in"],
        serde_json::json!(["staging"]),
        "{a}"
    );
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after the move");
}

// Another project's genuine manifest (same registry, same admin) copied
// into this one.
#[test]
fn manifest_of_another_project_is_refused() {
    let w = World::with_secrets();
    let other = w.init_other_project();
    for f in [".byreis/manifest.yaml", ".byreis/manifest.yaml.sig"] {
        fs::copy(other.join(f), w.proj.join(f)).unwrap();
    }
    w.assert_reads_refused(&["manifest-invalid"], ALL, "another project's manifest");
}

// Another project's genuine registry record copied over this one's.
#[test]
fn record_of_another_project_is_refused() {
    let w = World::with_secrets();
    w.init_other_project();
    for f in ["record.yaml", "record.yaml.sig"] {
        fs::copy(
            w.reg.join("projects/other").join(f),
            w.reg.join("projects/demo").join(f),
        )
        .unwrap();
    }
    commit_all(&w, &w.reg, "swap records");
    w.assert_reads_refused(
        &["record-invalid", "manifest-not-pinned", "manifest-rollback"],
        ALL,
        "another project's record",
    );
}
