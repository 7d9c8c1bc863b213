//! `byreis rotate`: who reads what changes in one signed, counted, audited
//! transaction (invariant 4); every affected file is re-encrypted to
//! exactly the new readers with a fresh file key (invariant 3); removals
//! say plainly what they do not undo (invariant 6); and every refusal
//! leaves both repositories exactly as they were.
//!
//! Real git, real `age`, real `ssh-keygen`: a missing tool fails the test.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::common::*;

/// The secret values every `World::with_secrets` holds.
const ALL: &[(&str, &str, &str)] = &[
    ("prod", "DB", PROD_DB),
    ("prod", "API", PROD_API),
    ("staging", "DB", STAGING_DB),
];

/// alice (admin) plus bob and carol, added with `rotate --add` (counter 5).
fn three_members() -> (World, Person, Person) {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    let carol = keygen(&w.root, "carol");
    let o = w.rotate(&[
        "--add",
        &format!("bob={}", bob.recipient),
        "--add",
        &format!("carol={}", carol.recipient),
    ]);
    assert_ok(&o, "rotate --add bob --add carol");
    assert_eq!(w.manifest_members(), ["alice", "bob", "carol"]);
    (w, bob, carol)
}

/// `get` of every value as `p` succeeds (`ok`) or is refused as not a recipient.
#[track_caller]
fn assert_person_reads(w: &World, p: &Person, ok: bool) {
    for (env, key, value) in ALL {
        let o = w.run_as(p, &["get", env, key]);
        let what = format!("{} get {env} {key}", p.name);
        if ok {
            assert_ok(&o, &what);
            assert_eq!(stdout(&o), format!("{value}\n"), "{what}");
        } else {
            assert_refused(&o, &["identity-not-recipient"], &what);
            assert_no_leak(&o, &[value], &what);
        }
    }
}

/// Stock `age -d` with `identity` decrypts every current file (`ok`) or none.
#[track_caller]
fn assert_age_reads_all(w: &World, identity: &Path, ok: bool) {
    let files = w.secrets_files();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in files {
        let o = w.age_decrypt(identity, &f);
        let what = format!("age -d -i {} {}", identity.display(), f.display());
        if ok {
            assert_ok(&o, &what);
            assert!(stdout(&o).contains("DB: "), "{what}\n{}", dump(&o));
        } else {
            assert_failed(&o, &what);
            assert_no_leak(&o, &[PROD_DB, PROD_API, STAGING_DB], &what);
        }
    }
}

/// Both repositories' HEADs, the project's status and byreis's files.
fn snapshot(w: &World) -> (Option<String>, Option<String>, String, Vec<u8>, Vec<u8>) {
    (
        w.heads().0,
        w.heads().1,
        w.project_status(),
        fs::read(w.manifest()).unwrap(),
        fs::read(w.secrets_file("prod")).unwrap(),
    )
}

/// Runs `rotate ARGS` as alice (with --yes unless `yes` is false), expects
/// a failure whose stderr contains `needle`, and that nothing changed.
#[track_caller]
fn assert_rotate_refused(
    w: &World,
    args: &[&str],
    yes: bool,
    needle: &str,
) -> std::process::Output {
    let before = snapshot(w);
    let o = if yes {
        w.rotate(args)
    } else {
        let mut a = vec!["rotate"];
        a.extend_from_slice(args);
        w.alice_run(&a)
    };
    let what = format!("rotate {args:?}");
    assert_failed(&o, &what);
    assert_stderr_contains(&o, needle, &what);
    assert_no_leak(&o, &[PROD_DB, PROD_API, STAGING_DB], &what);
    assert!(
        !stderr(&o).contains("rotated (counter"),
        "{what}: claims a rotation\n{}",
        dump(&o)
    );
    assert_eq!(snapshot(w), before, "{what}: something changed");
    o
}

#[test]
fn remove_member_three_members() {
    let (w, bob, carol) = three_members();
    assert_person_reads(&w, &bob, true);
    assert_person_reads(&w, &carol, true);
    assert_age_reads_all(&w, &identity_file(&carol), true);
    let old_prod = fs::read(w.secrets_file("prod")).unwrap();

    let o = w.rotate(&["--remove", "carol", "--format", "json"]);
    assert_ok(&o, "rotate --remove carol");
    assert_no_leak(&o, &[PROD_DB, PROD_API, STAGING_DB], "rotate --remove");

    // The forward-secrecy warning, on stderr, although --yes was given.
    let err = stderr(&o);
    assert!(err.contains("WARNING: removing carol"), "{}", dump(&o));
    assert!(
        err.contains("docs/forward-secrecy-runbook.md"),
        "{}",
        dump(&o)
    );
    assert!(err.contains("prod: API, DB"), "{}", dump(&o));
    assert!(err.contains("staging: DB"), "{}", dump(&o));
    assert!(
        err.contains("not remediation") && err.contains("Every commit before this rotation"),
        "the warning must say removal is not remediation and old commits stay readable\n{}",
        dump(&o)
    );

    // JSON output.
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("rotate --format json: {e}\n{}", dump(&o)));
    assert_eq!(v["counter"], 6, "{v}");
    assert_eq!(v["added"], serde_json::json!({}), "{v}");
    assert_eq!(
        v["removed"],
        serde_json::json!({"carol": ["prod", "staging"]}),
        "{v}"
    );
    assert_eq!(
        v["files"],
        serde_json::json!(["secrets/prod.enc.yaml", "secrets/staging.enc.yaml"]),
        "{v}"
    );
    let warnings = v["forward_secrecy_warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{v}");
    let warning = warnings[0].as_str().unwrap();
    assert!(warning.starts_with("WARNING: removing carol"), "{warning}");
    assert!(
        warning.contains("docs/forward-secrecy-runbook.md"),
        "{warning}"
    );
    assert_eq!(v["exposures"][0]["member"], "carol", "{v}");
    assert_eq!(
        v["exposures"][0]["could_read"],
        serde_json::json!({"prod": ["API", "DB"], "staging": ["DB"]}),
        "{v}"
    );

    // carol: refused by byreis, and stock age cannot decrypt any current file.
    assert_person_reads(&w, &carol, false);
    assert_age_reads_all(&w, &identity_file(&carol), false);
    // alice and bob read everything, with byreis and with stock age.
    for (env, key, value) in ALL {
        w.assert_get(env, key, value);
    }
    assert_person_reads(&w, &bob, true);
    assert_age_reads_all(&w, &identity_file(&bob), true);
    assert_age_reads_all(&w, &identity_file(&w.alice), true);
    // Exactly two real stanzas per file now (alice and bob).
    for f in w.secrets_files() {
        assert_eq!(real_stanza_count(&fs::read(&f).unwrap()), 2, "{f:?}");
    }
    assert_ne!(fs::read(w.secrets_file("prod")).unwrap(), old_prod);

    // Both repositories' HEADs verify with stock git.
    for (what, dir) in [("project", &w.proj), ("registry", &w.reg)] {
        let o = w.verify_commit(dir, "HEAD");
        assert_ok(&o, &format!("git verify-commit HEAD in the {what}"));
        assert_stderr_contains(&o, "Good \"git\" signature for alice", what);
    }

    // The manifest's counter is the registry record's; nothing is pending.
    assert_eq!(w.manifest_counter(), 6);
    assert_eq!(w.record_counter(), w.manifest_counter());
    assert_eq!(w.pending_commit(), None);
    assert_eq!(w.manifest_members(), ["alice", "bob"]);
    assert_eq!(w.manifest_readers("prod"), ["alice", "bob"]);

    // The audit entry.
    let a = w.last_audit();
    assert_eq!(a["action"], "rotate", "{a}");
    assert_eq!(a["actor"], "alice", "{a}");
    assert_eq!(a["counter_to"], 6, "{a}");
    let removed = a["details"]["removed"].as_array().expect("removed");
    assert_eq!(removed.len(), 1, "{a}");
    assert_eq!(removed[0]["name"], "carol", "{a}");
    assert_eq!(
        removed[0]["envs"],
        serde_json::json!(["prod", "staging"]),
        "{a}"
    );

    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after the removal");
    // An auditor (carol, now with public keys only) finds it clean too.
    let (o, v) = doctor_json(&carol.home, &w.proj, &anchor_env(&w));
    assert_doctor_ok(&o, &v, "carol's doctor after the removal");
}

#[test]
fn text_output_warns_on_every_remove() {
    let (w, _bob, _carol) = three_members();
    // Two removals: one warning each, without --format json.
    let o = w.rotate(&["--remove", "carol", "--remove", "bob"]);
    assert_ok(&o, "rotate --remove carol --remove bob");
    let err = stderr(&o);
    assert_eq!(err.matches("WARNING: removing ").count(), 2, "{}", dump(&o));
    assert!(err.contains("WARNING: removing carol"), "{}", dump(&o));
    assert!(err.contains("WARNING: removing bob"), "{}", dump(&o));
    assert_eq!(
        err.matches("docs/forward-secrecy-runbook.md").count(),
        2,
        "{}",
        dump(&o)
    );
    assert!(
        err.contains("rotated (counter 6)"),
        "text output names the counter\n{}",
        dump(&o)
    );
    assert!(stdout(&o).is_empty(), "text mode prints on stderr only");
    assert_eq!(w.manifest_members(), ["alice"]);
    // An add alone warns about nothing.
    let dave = keygen(&w.root, "dave");
    let o = w.rotate(&["--add", &format!("dave={}", dave.recipient)]);
    assert_ok(&o, "rotate --add dave");
    assert!(!stderr(&o).contains("WARNING"), "{}", dump(&o));
}

#[test]
fn add_and_remove_in_one_call_limited_to_one_env_with_an_ssh_member() {
    let (w, bob, _carol) = three_members();
    let key = w.outsider_ssh_key("erin");
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "ssh-keygen writes the private key 0600");
    let erin_pub = public_key_line(&fs::read_to_string(key.with_extension("pub")).unwrap());
    assert!(erin_pub.starts_with("ssh-ed25519 AAAA"), "{erin_pub}");
    let staging_before = fs::read(w.secrets_file("staging")).unwrap();
    let prod_before = fs::read(w.secrets_file("prod")).unwrap();

    let o = w.rotate(&[
        "--add",
        &format!("erin={erin_pub}"),
        "--remove",
        "bob",
        "--env",
        "prod",
        "--format",
        "json",
    ]);
    assert_ok(&o, "rotate --add erin --remove bob --env prod");
    assert_stderr_contains(&o, "WARNING: removing bob", "the removal warns");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["added"], serde_json::json!({"erin": ["prod"]}), "{v}");
    assert_eq!(v["removed"], serde_json::json!({"bob": ["prod"]}), "{v}");
    assert_eq!(
        v["files"],
        serde_json::json!(["secrets/prod.enc.yaml"]),
        "{v}"
    );

    // Only prod changed.
    assert_eq!(
        fs::read(w.secrets_file("staging")).unwrap(),
        staging_before,
        "--env prod rewrote staging"
    );
    let prod_after = fs::read(w.secrets_file("prod")).unwrap();
    assert_ne!(prod_after, prod_before, "prod was not re-encrypted");
    assert_eq!(w.manifest_readers("prod"), ["alice", "carol", "erin"]);
    assert_eq!(w.manifest_readers("staging"), ["alice", "bob", "carol"]);
    assert_eq!(w.manifest_members(), ["alice", "bob", "carol", "erin"]);
    // One ssh-ed25519 stanza and two X25519 ones in prod.
    let (h, _) = age_header_and_payload(&prod_after);
    let types = stanza_types(&h);
    assert_eq!(
        types.iter().filter(|t| *t == "ssh-ed25519").count(),
        1,
        "{h:?}"
    );
    assert_eq!(types.iter().filter(|t| *t == "X25519").count(), 2, "{h:?}");

    // Stock age decrypts prod with erin's OpenSSH key, not staging.
    let o = w.age_decrypt(&key, &w.secrets_file("prod"));
    assert_ok(&o, "age -d -i erin prod");
    assert!(
        stdout(&o).contains(&format!("DB: \"{PROD_DB}\"")),
        "{}",
        dump(&o)
    );
    let o = w.age_decrypt(&key, &w.secrets_file("staging"));
    assert_failed(&o, "age -d -i erin staging");

    // byreis with BYREIS_IDENTITY_FILE = erin's key.
    let erin_home = w.root.join("erin-home");
    let key_s = key.to_str().unwrap();
    let env = [
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_IDENTITY_FILE", key_s),
    ];
    let o = run_env(&erin_home, &w.proj, &["get", "prod", "DB"], None, &env);
    assert_ok(&o, "erin get prod DB");
    assert_eq!(stdout(&o), format!("{PROD_DB}\n"));
    let o = run_env(&erin_home, &w.proj, &["get", "staging", "DB"], None, &env);
    assert_refused(&o, &["identity-not-recipient"], "erin get staging DB");
    // A group-readable copy of the key is refused.
    let loose = w.root.join("erin-loose");
    fs::copy(&key, &loose).unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o644)).unwrap();
    let o = run_env(
        &erin_home,
        &w.proj,
        &["get", "prod", "DB"],
        None,
        &[
            ("BYREIS_ANCHOR", w.anchor.as_str()),
            ("BYREIS_IDENTITY_FILE", loose.to_str().unwrap()),
        ],
    );
    assert_failed(&o, "a 0644 identity file");
    assert_no_leak(&o, &[PROD_DB], "a 0644 identity file");

    // bob still reads staging, not prod.
    let o = w.run_as(&bob, &["get", "staging", "DB"]);
    assert_ok(&o, "bob get staging");
    assert_eq!(stdout(&o), format!("{STAGING_DB}\n"));
    let o = w.run_as(&bob, &["get", "prod", "DB"]);
    assert_refused(&o, &["identity-not-recipient"], "bob get prod");
    let o = w.age_decrypt(&identity_file(&bob), &w.secrets_file("prod"));
    assert_failed(&o, "age -d -i bob prod");

    for (env, key, value) in ALL {
        w.assert_get(env, key, value);
    }
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor");

    // The same ssh key under another spelling (with a comment) is the same
    // member: adding it under a new name is refused.
    let with_comment = format!("{erin_pub} someone@else");
    assert_rotate_refused(
        &w,
        &["--add", &format!("erin2={with_comment}")],
        true,
        "already belongs to member erin",
    );
}

#[test]
fn removal_uses_a_fresh_file_key_and_history_stays_readable() {
    let (w, _bob, carol) = three_members();
    let old = fs::read(w.secrets_file("prod")).unwrap();
    let o = w.rotate(&["--remove", "carol"]);
    assert_ok(&o, "rotate --remove carol");
    let new = fs::read(w.secrets_file("prod")).unwrap();
    assert_ne!(new, old);

    let (old_h, old_p) = age_header_and_payload(&old);
    let (new_h, new_p) = age_header_and_payload(&new);
    // No stanza line, body line or MAC in common: nothing was rewrapped.
    let shared: Vec<&String> = new_h
        .iter()
        .filter(|l| l.as_str() != "age-encryption.org/v1" && old_h.contains(l))
        .collect();
    assert!(shared.is_empty(), "headers share lines {shared:?}");
    // A header rewrap keeps the payload; a fresh file key (and nonce) does not.
    assert_ne!(&new_p[..16], &old_p[..16], "the payload nonce was reused");
    assert_ne!(new_p, old_p);
    assert_eq!(real_stanza_count(&old), 3);
    assert_eq!(real_stanza_count(&new), 2);

    // carol's key fails on the new file …
    let carol_key = identity_file(&carol);
    let o = w.age_decrypt(&carol_key, &w.secrets_file("prod"));
    assert_failed(&o, "age -d with carol's key on the new file");
    assert_no_leak(&o, &[PROD_DB, PROD_API], "age -d new file");
    // … and works on the commit before the rotation: the history limit the
    // warning describes.
    let before = w.git_blob("HEAD~1", "secrets/prod.enc.yaml");
    assert_eq!(before, old);
    let o = w.age_decrypt_bytes(&carol_key, &before);
    assert_ok(&o, "age -d with carol's key on HEAD~1");
    assert!(
        stdout(&o).contains(&format!("DB: \"{PROD_DB}\"")),
        "{}",
        dump(&o)
    );
}

#[test]
fn refusals_change_nothing() {
    let (w, bob, _carol) = three_members();
    let (_, dave) = age_keygen(&w, "dave");
    let dave_upper = dave.to_uppercase();
    assert_ne!(dave, dave_upper);

    // The last admin recipient.
    assert_rotate_refused(
        &w,
        &["--remove", "alice"],
        true,
        "without an admin who can decrypt",
    );
    assert_rotate_refused(
        &w,
        &["--remove", "alice", "--env", "prod"],
        true,
        "prod would be left without an admin",
    );
    // Duplicate names.
    assert_rotate_refused(
        &w,
        &[
            "--add",
            &format!("dave={dave}"),
            "--add",
            &format!("dave={}", bob.recipient),
        ],
        true,
        "dave is named twice",
    );
    assert_rotate_refused(
        &w,
        &["--add", &format!("dave={dave}"), "--remove", "dave"],
        true,
        "named twice",
    );
    // One key in two spellings, under two names.
    assert_rotate_refused(
        &w,
        &[
            "--add",
            &format!("dave={dave}"),
            "--add",
            &format!("dave2={dave_upper}"),
        ],
        true,
        "already belongs to member dave",
    );
    // An existing member's key under a new name, in upper case.
    assert_rotate_refused(
        &w,
        &["--add", &format!("bobby={}", bob.recipient.to_uppercase())],
        true,
        "already belongs to member bob",
    );
    // An existing name with another key.
    assert_rotate_refused(
        &w,
        &["--add", &format!("bob={dave}")],
        true,
        "already exists with another key",
    );
    // Malformed keys and arguments.
    let mut bad_checksum = dave.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'q' { 'p' } else { 'q' });
    for (arg, needle) in [
        (format!("dave={bad_checksum}"), "recipient"),
        ("dave=age1qqqqqqqq".to_string(), "recipient"),
        ("dave=".to_string(), "recipient"),
        ("dave=ssh-ed25519 AAAAnotbase64!!".to_string(), "recipient"),
        (
            "dave=ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7".to_string(),
            "recipient",
        ),
        ("dave".to_string(), "NAME=RECIPIENT"),
        (format!("Dave!={dave}"), "Dave!"),
        (format!("={dave}"), "name"),
    ] {
        let o = assert_rotate_refused(&w, &["--add", &arg], true, "");
        let err = stderr(&o);
        assert!(
            err.contains("error") && err.to_lowercase().contains(&needle.to_lowercase()),
            "--add {arg:?}: expected a clear message mentioning {needle:?}\n{}",
            dump(&o)
        );
    }
    // Removing a non-member; an unknown environment; nothing to do.
    assert_rotate_refused(&w, &["--remove", "zed"], true, "zed is not a member");
    assert_rotate_refused(
        &w,
        &["--remove", "bob", "--env", "nosuch"],
        true,
        "no environment nosuch",
    );
    assert_rotate_refused(&w, &[], true, "nothing to do");
    assert_rotate_refused(
        &w,
        &["--add", &format!("bob={}", bob.recipient)],
        true,
        "would not change",
    );
    // A reason that is not one line.
    assert_rotate_refused(
        &w,
        &["--remove", "bob", "--reason", "two\nlines"],
        true,
        "--reason",
    );
    // No --yes in a non-interactive run.
    assert_rotate_refused(&w, &["--remove", "bob"], false, "--yes");
    // Resume and abort with nothing pending.
    assert_rotate_refused(&w, &["--resume"], true, "no change is pending");
    assert_rotate_refused(&w, &["--abort"], false, "no change is pending");
    // A member who is not an admin.
    let before = snapshot(&w);
    let o = w.run_as(&bob, &["rotate", "--remove", "carol", "--yes"]);
    assert_failed(&o, "bob rotates");
    assert_stderr_contains(&o, "not an admin", "bob rotates");
    assert_eq!(snapshot(&w), before, "bob's rotate changed something");

    // Dirty working tree: a secrets file, the manifest, an untracked file
    // under .byreis/.
    let prod = w.secrets_file("prod");
    let pristine = fs::read(&prod).unwrap();
    let mut changed = pristine.clone();
    changed.extend_from_slice(b"\n");
    fs::write(&prod, &changed).unwrap();
    let o = assert_rotate_refused(&w, &["--remove", "bob"], true, "error[");
    assert_refused(
        &o,
        &["worktree-changed"],
        "rotate with secrets/prod changed",
    );
    assert_stderr_contains(&o, "secrets/prod.enc.yaml", "names the dirty path");
    assert_eq!(fs::read(&prod).unwrap(), changed, "rotate touched the edit");
    fs::write(&prod, &pristine).unwrap();

    let extra = w.proj.join(".byreis/notes.txt");
    fs::write(&extra, "hello\n").unwrap();
    let o = assert_rotate_refused(&w, &["--remove", "bob"], true, "error[");
    assert_refused(
        &o,
        &["worktree-changed"],
        "rotate with an untracked .byreis file",
    );
    fs::remove_file(&extra).unwrap();

    let manifest = w.manifest();
    let m = fs::read(&manifest).unwrap();
    replace_in_file(&manifest, "- name: bob", "- name: bobx");
    let o = assert_rotate_refused(&w, &["--remove", "bob"], true, "error[");
    assert_refused(
        &o,
        &["manifest-invalid", "worktree-changed"],
        "rotate with an edited manifest",
    );
    fs::write(&manifest, &m).unwrap();
    assert_eq!(w.project_status(), "", "restored");

    // Failing verification: a committed prod file re-encrypted by an
    // outsider (to alice's key, so it would decrypt).
    let forged = w.age_encrypt("DB: \"forged-value-5d1e\"\n", &[&w.alice.recipient]);
    fs::write(&prod, &forged).unwrap();
    w.git_ok(&w.proj, &["commit", "-q", "-am", "tamper"]);
    let o = assert_rotate_refused(&w, &["--remove", "bob"], true, "error[");
    assert_refused(&o, &["file-hash-mismatch"], "rotate over a tampered file");
    assert_no_leak(&o, &["forged-value-5d1e"], "rotate over a tampered file");
}

#[test]
fn readding_a_removed_member_says_who_removed_them_and_why() {
    let (w, bob, _carol) = three_members();
    let o = w.rotate(&["--remove", "bob", "--reason", "left the team"]);
    assert_ok(&o, "rotate --remove bob --reason");
    let a = w.last_audit();
    assert_eq!(a["details"]["reason"], "left the team", "{a}");
    let removal_time = a["time"].as_str().unwrap().to_string();

    let o = w.rotate(&["--add", &format!("bob={}", bob.recipient)]);
    assert_ok(&o, "rotate --add bob again");
    let err = stderr(&o);
    assert!(err.contains("re-adding: bob"), "{}", dump(&o));
    assert!(err.contains("was removed by alice"), "{}", dump(&o));
    assert!(err.contains(&removal_time), "{}", dump(&o));
    assert!(err.contains("reason: left the team"), "{}", dump(&o));
    assert!(err.contains("counter 6"), "{}", dump(&o));
    assert_person_reads(&w, &bob, true);

    // The same key under a new name is recognised by its fingerprint.
    let o = w.rotate(&["--remove", "bob"]);
    assert_ok(&o, "rotate --remove bob (no reason)");
    let o = w.rotate(&["--add", &format!("robert={}", bob.recipient)]);
    assert_ok(&o, "rotate --add robert (bob's key)");
    let err = stderr(&o);
    assert!(err.contains("re-adding: bob"), "{}", dump(&o));
    assert!(err.contains("no reason recorded"), "{}", dump(&o));
    assert_eq!(w.manifest_members(), ["alice", "carol", "robert"]);
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor");
}

// issue 19: `rotate --rekey` re-encrypts every (selected) file with fresh
// file keys to the same readers, one signed, counted change audited as
// `rekey`; no value and no reader changes, and the stock age CLI still
// opens every file.
#[test]
fn rekey_gives_every_file_fresh_keys_and_changes_nothing_else() {
    let w = World::with_secrets();
    let before: Vec<Vec<u8>> = w
        .secrets_files()
        .iter()
        .map(|f| fs::read(f).unwrap())
        .collect();
    let readers = (w.manifest_readers("prod"), w.manifest_readers("staging"));
    let counter = w.manifest_counter();
    let o = w.rotate(&["--rekey", "--reason", "scheduled"]);
    assert_ok(&o, "rotate --rekey");
    assert_stderr_contains(&o, "no value changed", "says what it does not do");
    assert_eq!(w.manifest_counter(), counter + 1, "one signed change");
    let after: Vec<Vec<u8>> = w
        .secrets_files()
        .iter()
        .map(|f| fs::read(f).unwrap())
        .collect();
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a, "every file re-encrypted");
        assert_eq!(
            real_stanza_count(a),
            real_stanza_count(b),
            "to as many readers"
        );
    }
    assert_eq!(
        (w.manifest_readers("prod"), w.manifest_readers("staging")),
        readers
    );
    w.assert_get("prod", "DB", PROD_DB);
    w.assert_get("staging", "DB", STAGING_DB);
    let o = w.age_decrypt(&identity_file(&w.alice), &w.secrets_file("prod"));
    assert_ok(&o, "age -d still opens it");
    let last = w.last_audit();
    assert_eq!(last["action"], "rekey", "{last}");
    assert_eq!(last["details"]["reason"], "scheduled");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after rekey");

    // --env limits it; --rekey with --add is refused.
    let staging = fs::read(w.secrets_file("staging")).unwrap();
    let o = w.rotate(&["--rekey", "--env", "prod"]);
    assert_ok(&o, "rekey prod only");
    assert_eq!(
        fs::read(w.secrets_file("staging")).unwrap(),
        staging,
        "staging untouched"
    );
    let o = w.rotate(&[
        "--rekey",
        "--add",
        "x=age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
    ]);
    assert_exit(&o, 2, "--rekey with --add");
}

// issue 19: `rotate --replace NAME=RECIPIENT` gives a member a new key in
// every environment they read, one signed change; the old key opens none of
// the current files (but every older commit, which the warning says, naming
// the old key by fingerprint), and the audit entry records both keys.
#[test]
fn replace_gives_a_member_a_new_key_everywhere_they_read() {
    let (w, bob, carol) = three_members();
    let new_bob = keygen(&w.root, "bob-new-laptop");
    let old_fp = whoami(&bob.home, &[])["age_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let new_fp = whoami(&new_bob.home, &[])["age_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let old_prod = fs::read(w.secrets_file("prod")).unwrap();
    let readers = (w.manifest_readers("prod"), w.manifest_readers("staging"));
    let counter = w.manifest_counter();
    let o = w.rotate(&[
        "--replace",
        &format!("bob={}", new_bob.recipient),
        "--reason",
        "lost laptop",
    ]);
    assert_ok(&o, "rotate --replace bob");
    let err = stderr(&o);
    assert!(
        err.contains(&format!("replace the key of bob: {old_fp} -> {new_fp}")),
        "{}",
        dump(&o)
    );
    assert!(
        err.contains(&format!(
            "WARNING: replacing bob's key {old_fp} does not take back what the old key could read"
        )),
        "{}",
        dump(&o)
    );
    assert!(
        err.contains("  prod: API, DB"),
        "what the old key read\n{}",
        dump(&o)
    );
    assert_eq!(w.manifest_counter(), counter + 1, "one signed change");
    assert_eq!(
        (w.manifest_readers("prod"), w.manifest_readers("staging")),
        readers,
        "the same readers"
    );
    assert_eq!(w.manifest_members(), ["alice", "bob", "carol"]);
    // The new key reads everything bob read, the old one nothing current.
    let new_as_bob = Person {
        name: "bob".into(),
        ..new_bob.clone()
    };
    assert_person_reads(&w, &new_as_bob, true);
    assert_person_reads(&w, &bob, false);
    assert_person_reads(&w, &carol, true);
    let o = w.age_decrypt(&identity_file(&bob), &w.secrets_file("prod"));
    assert_failed(&o, "the stock age CLI: the old key opens no current file");
    let o = w.age_decrypt_bytes(&identity_file(&bob), &old_prod);
    assert_ok(
        &o,
        "control: the old key still opens the old file (forward secrecy)",
    );
    let a = w.last_audit();
    assert_eq!(a["action"], "rotate", "{a}");
    assert_eq!(a["details"]["reason"], "lost laptop");
    let r = &a["details"]["replaced"][0];
    assert_eq!(r["name"], "bob", "{a}");
    assert_eq!(r["old_fingerprint"], old_fp.as_str(), "{a}");
    assert_eq!(r["fingerprint"], new_fp.as_str(), "{a}");
    assert_eq!(r["envs"], serde_json::json!(["prod", "staging"]), "{a}");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after --replace");
}

// issue 19: what --replace refuses, each leaving everything as it was.
#[test]
fn replace_refuses_non_members_same_keys_admins_and_partial_use() {
    let (w, bob, carol) = three_members();
    let new_key = keygen(&w.root, "new-key");
    let key = |n: &str| format!("{n}={}", new_key.recipient);
    let counter = w.manifest_counter();
    let prod = fs::read(w.secrets_file("prod")).unwrap();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec!["--replace".into(), key("dave")],
            1,
            "dave is not a member",
        ),
        (
            vec!["--replace".into(), format!("bob={}", bob.recipient)],
            1,
            "bob already has that key",
        ),
        (
            vec!["--replace".into(), format!("bob={}", carol.recipient)],
            1,
            "already belongs to member carol",
        ),
        (
            vec![
                "--replace".into(),
                key("bob"),
                "--env".into(),
                "prod".into(),
            ],
            2,
            "drop --env",
        ),
        (
            vec![
                "--replace".into(),
                key("bob"),
                "--remove".into(),
                "bob".into(),
            ],
            2,
            "bob is named twice",
        ),
        (
            vec!["--replace".into(), key("alice")],
            1,
            "admin key of the registry roster",
        ),
        (
            vec!["--replace".into(), key("bob"), "--rekey".into()],
            2,
            "cannot be used with",
        ),
        (
            vec!["--replace".into()],
            2,
            "--replace takes NAME=RECIPIENT",
        ),
    ];
    for (args, code, says) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = w.rotate(&args);
        assert_exit(&o, code, &format!("rotate {args:?}"));
        assert_stderr_contains(&o, says, &format!("rotate {args:?}"));
        assert_eq!(
            w.manifest_counter(),
            counter,
            "rotate {args:?} changed the counter"
        );
        assert_eq!(fs::read(w.secrets_file("prod")).unwrap(), prod);
    }
    // A member added again under their name with another key is pointed
    // to --replace.
    let o = w.rotate(&["--add", &key("bob")]);
    assert_failed(&o, "--add of an existing member with another key");
    assert_stderr_contains(&o, "use --replace bob=RECIPIENT", "the hint");
}
