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
