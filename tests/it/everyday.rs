//! Everyday mistakes get a clear answer (issue 17): a typo is not a clean
//! result, a usage error exits 2, a closed pipe is not a panic, `exec`
//! exits as `env` does, and key material is never echoed.

use std::fs;
use std::io::Read as _;
use std::process::Stdio;

use crate::common::*;

#[test]
fn a_private_key_given_as_a_public_one_is_never_echoed() {
    let w = World::with_secrets();
    let private = w.alice.home.join("signing_key");
    let text = fs::read_to_string(&private).unwrap();
    let body: Vec<&str> = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let o = w.alice_run(&[
        "admin",
        "add",
        "bob",
        "--signing-key",
        private.to_str().unwrap(),
        "--age",
        "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
    ]);
    assert_failed(&o, "admin add with a private key file");
    assert_stderr_contains(&o, "a private key, not shown", "says what it was");
    for line in body {
        for chunk in line.as_bytes().chunks(12) {
            let chunk = std::str::from_utf8(chunk).unwrap();
            assert!(
                !stderr(&o).contains(chunk),
                "key material echoed: {}",
                dump(&o)
            );
        }
    }
}

#[test]
fn an_unknown_member_is_not_a_clean_exposure() {
    let w = World::with_secrets();
    let o = w.alice_run(&["doctor", "--exposure", "alcie"]);
    assert_exit(&o, 2, "doctor --exposure of a typo");
    assert_stderr_contains(&o, "error[unknown-member]", "coded");
    assert_stderr_contains(&o, "Did you mean alice?", "with a suggestion");
    assert!(
        !stdout(&o).contains("0 secret(s)"),
        "no clean result\n{}",
        dump(&o)
    );
    let o = w.alice_run(&["doctor", "--exposure", "alcie", "--format", "json"]);
    assert_exit(&o, 2, "the same in JSON");
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["error"]["code"], "unknown-member");
    let o = w.alice_run(&["doctor", "--exposure", "alice"]);
    assert_exit(&o, 4, "a real member whose old values are still in use");
    assert!(
        stdout(&o).contains("exposure of alice: 3 secret(s)"),
        "{}",
        dump(&o)
    );
}

#[test]
fn usage_errors_exit_2_with_a_plain_reason() {
    let w = World::with_secrets();
    let o = w.alice_run(&["diff", "nosuchrev"]);
    assert_exit(&o, 2, "diff of a bad revision");
    assert_stderr_contains(&o, "error[usage]", "a usage error");
    assert_stderr_contains(&o, "names no commit", "in words");
    assert!(
        !stderr(&o).contains("manifest-invalid"),
        "not a verification failure\n{}",
        dump(&o)
    );
    let o = w.alice_run(&["-C", "/nonexistent/byreis-dir", "list"]);
    assert_exit(&o, 2, "-C of a missing directory");
    assert_stderr_contains(&o, "no such directory", "says so");
}

#[test]
fn exec_exits_as_env_does() {
    let w = World::with_secrets();
    let o = w.alice_run(&["exec", "prod", "--", "/nonexistent/program"]);
    assert_exit(&o, 127, "a missing program");
    assert_stderr_contains(&o, "error[exec-failed]", "coded");
    let script = w.root.join("not-executable.sh");
    fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let o = w.alice_run(&["exec", "prod", "--", script.to_str().unwrap()]);
    assert_exit(&o, 126, "a program that cannot be run");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let w = World::with_secrets();
    let mut c = byreis_cmd(&w.alice.home, &w.proj);
    c.args(["list"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert_eq!(
        status.code(),
        Some(141),
        "128 + SIGPIPE, as a shell reports it: {err}"
    );
}

// issue 17: a failed edit threw the edits away. At a terminal the editor
// opens again on what was typed, the error on top (as `kubectl edit`);
// saving it unchanged cancels with nothing changed.
#[test]
fn a_failed_edit_reopens_on_what_was_typed() {
    let w = World::with_secrets();
    let round = w.root.join("round");
    let seen = w.root.join("seen-on-reopen");
    let editor = w.root.join("editor.sh");
    write_script(
        &editor,
        &format!(
            "if [ ! -e {round} ]; then touch {round}; printf 'TYPED: \"typed-by-hand\"\\nBROKEN: [unclosed\\n' >> \"$1\"; exit 0; fi\n\
             cp \"$1\" {seen}\n\
             sed -i 's/BROKEN: \\[unclosed/BROKEN: \"fixed\"/' \"$1\"\n",
            round = round.display(),
            seen = seen.display()
        ),
    );
    let (code, screen) = in_pty(
        &w,
        &w.alice.home,
        &["edit", "staging"],
        serde_json::json!([]),
        &[("EDITOR", editor.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{screen}");
    let reopened = fs::read_to_string(&seen).unwrap();
    assert!(
        reopened.starts_with("# byreis: this did not parse: "),
        "error on top:\n{reopened}"
    );
    assert!(
        reopened.contains("typed-by-hand"),
        "what was typed is kept:\n{reopened}"
    );
    w.assert_get("staging", "BROKEN", "fixed");
    assert!(
        !fs::read_dir(&w.root).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("staging.yaml")),
        "no edit file left behind"
    );

    // Saved unchanged after the error: cancelled, nothing changed.
    let before = w.manifest_counter();
    let _ = fs::remove_file(&round);
    let cancel = w.root.join("cancel.sh");
    write_script(
        &cancel,
        &format!(
            "if [ ! -e {round} ]; then touch {round}; printf 'X: [unclosed\\n' >> \"$1\"; fi\n",
            round = round.display()
        ),
    );
    let (code, screen) = in_pty(
        &w,
        &w.alice.home,
        &["edit", "staging"],
        serde_json::json!([]),
        &[("EDITOR", cancel.to_str().unwrap())],
    );
    assert_ne!(code, 0, "{screen}");
    assert!(screen.contains("edit cancelled"), "{screen}");
    assert_eq!(w.manifest_counter(), before, "nothing was signed");
}

// issue 17: `exposure ack bob KEY NOPE` signed the nonexistent NOPE into the
// audit log. Names that never existed are refused, with nothing signed.
#[test]
fn an_ack_of_what_never_existed_is_refused() {
    let w = World::with_secrets();
    let before = w.manifest_counter();
    let ack = |args: &[&str]| {
        let mut all = vec!["exposure", "ack"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--note", "revoked at the issuer"]);
        w.alice_run(&all)
    };
    let o = ack(&["alice", "DB", "NOPE", "--env", "prod"]);
    assert_failed(&o, "an ack of NOPE");
    assert_stderr_contains(&o, "error[unknown-key]", "coded");
    assert_stderr_contains(&o, "NOPE was never a secret of prod", "named");
    let o = ack(&["alcie", "DB"]);
    assert_failed(&o, "an ack for a typo of a member");
    assert_stderr_contains(&o, "Did you mean alice?", "with a suggestion");
    let o = ack(&["alice", "DBB", "--env", "prod"]);
    assert_stderr_contains(&o, "Did you mean DB?", "a near name is suggested");
    assert_eq!(w.manifest_counter(), before, "nothing was signed");
    let o = ack(&["alice", "DB", "--env", "prod"]);
    assert_ok(&o, "an ack of a real name");
}

// issue 17: a non-admin's `admin add` and `registry refresh` were refused
// with "only admins finish or abort changes". Each names its own verb.
#[test]
fn a_non_admin_is_told_which_verb_needs_an_admin() {
    let w = World::with_secrets();
    let dave = keygen(&w.root, "dave");
    let o = w.rotate(&["--add", &format!("dave={}", dave.recipient)]);
    assert_ok(&o, "dave becomes a member");
    let env = anchor_env(&w);
    let o = run_env(
        &dave.home,
        &w.proj,
        &admin_add_args(&keygen(&w.root, "erin")),
        None,
        &env,
    );
    assert_failed(&o, "a member's admin add");
    assert_stderr_contains(&o, "only admins change the roster", "names the verb");
    let o = run_env(&dave.home, &w.proj, &["registry", "refresh"], None, &env);
    assert_failed(&o, "a member's registry refresh");
    assert_stderr_contains(
        &o,
        "only admins re-sign the registry record",
        "names the verb",
    );
    assert!(!stderr(&o).contains("finish or abort"), "{}", dump(&o));
}

// issue 19: value age from signed evidence, in `list --long` and JSON.
#[test]
fn list_long_says_when_each_value_changed_from_the_signed_log() {
    let w = World::with_secrets();
    w.set("prod", "DB", "a-new-value");
    let counter = w.manifest_counter();
    let o = w.alice_run(&["list", "prod", "--long"]);
    assert_ok(&o, "list --long");
    let text = stdout(&o);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}  ")))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"))
            .to_string()
    };
    assert!(
        line("DB").contains(&format!("by alice (counter {counter}, set)")),
        "{text}"
    );
    assert!(line("DB").contains("changed in byreis on "), "{text}");
    assert!(
        !line("API").contains(&format!("counter {counter},")),
        "{text}"
    );
    assert!(!text.contains("rotated"), "never says rotated: {text}");
    let o = w.alice_run(&["list", "--format", "json"]);
    assert_ok(&o, "list json");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let prod = v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["env"] == "prod")
        .unwrap();
    let db = prod["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "DB")
        .unwrap();
    assert_eq!(db["last_change"]["counter"], counter);
    assert_eq!(db["last_change"]["by"], "alice");
    let api = prod["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "API")
        .unwrap();
    assert!(api["last_change"]["counter"].as_u64().unwrap() < counter);
    // Plain `list` is unchanged.
    let o = w.alice_run(&["list", "prod"]);
    assert_eq!(stdout(&o), "API\nDB\n");
}
