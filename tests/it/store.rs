//! The daily verbs end to end, with the real binary: round trip, reads from
//! the pinned state, exec's environment rules, and bad input.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use crate::common::*;

#[test]
fn round_trip_set_get_list_exec_edit_unset_doctor() {
    let w = World::new();

    // whoami agrees with keygen.
    let o = w.alice_run(&["whoami", "--format", "json"]);
    assert_ok(&o, "whoami");
    let me: serde_json::Value = serde_json::from_slice(&o.stdout).expect("whoami json");
    assert_eq!(me["name"], "alice");
    assert_eq!(me["email"], "alice@example.test");
    assert_eq!(me["age_recipient"], w.alice.recipient.as_str());
    assert_eq!(me["signing_key"], w.alice.signing_key.as_str());
    for k in ["age_fingerprint", "signing_fingerprint", "identity_source"] {
        assert!(me[k].is_string(), "whoami json lacks {k}: {me}");
    }

    // init wrote the documented files, in one commit.
    for f in [
        "byreis.yaml",
        ".byreis/manifest.yaml",
        ".byreis/manifest.yaml.sig",
        ".byreis/audit.jsonl",
    ] {
        assert!(w.proj.join(f).is_file(), "init did not write {f}");
    }
    assert!(w.reg.join("projects/demo/record.yaml").is_file());
    assert!(w.reg.join("projects/demo/record.yaml.sig").is_file());
    assert_eq!(w.git_ok(&w.proj, &["rev-list", "--count", "HEAD"]), "1");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor right after init");

    // set from stdin (one trailing newline stripped) and from an argument.
    let o = w.alice_run_stdin(&["set", "prod", "DB"], &format!("{PROD_DB}\n"));
    assert_ok(&o, "set prod DB (stdin)");
    assert_no_leak(&o, &[PROD_DB], "set from stdin");
    let o = w.alice_run(&["set", "prod", "API", PROD_API]);
    assert_ok(&o, "set prod API (argument)");
    assert_stderr_contains(&o, "shell history", "set with a value argument warns");
    // Only one trailing newline is stripped; inner newlines stay.
    let o = w.alice_run_stdin(&["set", "prod", "MULTI"], "line one\nline two\n\n");
    assert_ok(&o, "set prod MULTI");
    // A second environment with different values.
    w.set("staging", "DB", STAGING_DB);
    w.set("staging", "ONLY_STAGING", "s-only");

    // get, text and json; -C works like git -C.
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get prod DB");
    assert_eq!(stdout(&o), format!("{PROD_DB}\n"));
    let o = w.alice_run(&["get", "prod", "API"]);
    assert_ok(&o, "get prod API");
    assert_eq!(stdout(&o), format!("{PROD_API}\n"));
    let o = w.alice_run(&["get", "prod", "MULTI"]);
    assert_ok(&o, "get prod MULTI");
    assert_eq!(stdout(&o), "line one\nline two\n\n");
    let o = run(
        &w.alice.home,
        &w.root,
        &["-C", w.proj.to_str().unwrap(), "get", "staging", "DB"],
        None,
    );
    assert_ok(&o, "get -C proj staging DB");
    assert_eq!(stdout(&o), format!("{STAGING_DB}\n"));
    let o = w.alice_run(&["get", "prod", "DB", "--format", "json"]);
    assert_ok(&o, "get --format json");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("get json");
    assert_eq!(v["env"], "prod");
    assert_eq!(v["key"], "DB");
    assert_eq!(v["value"], PROD_DB);
    // staging has no API; prod has no ONLY_STAGING.
    let o = w.alice_run(&["get", "staging", "API"]);
    assert_exit(&o, 1, "get a key staging does not have");
    let o = w.alice_run(&["get", "prod", "ONLY_STAGING"]);
    assert_exit(&o, 1, "get a key prod does not have");

    // list, text and json; never values.
    let o = w.alice_run(&["list", "prod"]);
    assert_ok(&o, "list prod");
    assert_eq!(stdout(&o), "API\nDB\nMULTI\n");
    let o = w.alice_run(&["list"]);
    assert_ok(&o, "list");
    assert_eq!(
        stdout(&o),
        "prod:\n  API\n  DB\n  MULTI\nstaging:\n  DB\n  ONLY_STAGING\n"
    );
    assert_no_leak(&o, &[PROD_DB, PROD_API, STAGING_DB], "list");
    let o = w.alice_run(&["list", "--format", "json"]);
    assert_ok(&o, "list --format json");
    assert_no_leak(&o, &[PROD_DB, PROD_API, STAGING_DB], "list json");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("list json");
    assert_eq!(v["project"], "demo");
    assert_eq!(v["counter"], 6);
    let envs = v["environments"].as_array().expect("environments");
    assert_eq!(envs.len(), 2, "{v}");
    assert_eq!(envs[0]["env"], "prod");
    assert_eq!(envs[0]["readable"], true);
    assert_eq!(envs[0]["keys"], serde_json::json!(["API", "DB", "MULTI"]));
    assert_eq!(envs[1]["env"], "staging");
    assert_eq!(envs[1]["keys"], serde_json::json!(["DB", "ONLY_STAGING"]));

    // exec: the child sees the value; exit codes pass through.
    let o = w.alice_run(&["exec", "prod", "--", "sh", "-c", "printf %s \"$DB\""]);
    assert_ok(&o, "exec prod printf");
    assert_eq!(stdout(&o), PROD_DB);
    let o = w.alice_run(&["exec", "staging", "--", "sh", "-c", "printf %s \"$DB\""]);
    assert_ok(&o, "exec staging printf");
    assert_eq!(stdout(&o), STAGING_DB);
    let o = w.alice_run(&["exec", "prod", "--", "sh", "-c", "exit 7"]);
    assert_exit(&o, 7, "exec passes the child's exit code through");

    // edit with a scripted editor: records the temp file's modes, changes
    // DB and adds a key. The plaintext must live in a private dir that is
    // gone afterwards.
    let runtime = w.root.join("runtime");
    fs::create_dir(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    let modes = w.root.join("editor-modes");
    let editor = w.root.join("editor.sh");
    write_script(
        &editor,
        &format!(
            "stat -c %a \"$1\" > '{m}'\nstat -c %a \"$(dirname \"$1\")\" >> '{m}'\n\
             sed -i 's/^DB: .*/DB: \"edited-db-value\"/' \"$1\"\n\
             printf 'ADDED: \"from the editor\"\\n' >> \"$1\"",
            m = modes.display()
        ),
    );
    let o = w.alice_run_env(
        &["edit", "prod"],
        &[
            ("EDITOR", editor.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", runtime.to_str().unwrap()),
        ],
    );
    assert_ok(&o, "edit prod");
    assert_eq!(
        fs::read_to_string(&modes).unwrap(),
        "600\n700\n",
        "edit's temp file must be 0600 in a 0700 dir"
    );
    assert_eq!(
        fs::read_dir(&runtime).unwrap().count(),
        0,
        "edit left its temp dir behind"
    );
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get after edit");
    assert_eq!(stdout(&o), "edited-db-value\n");
    let o = w.alice_run(&["get", "prod", "ADDED"]);
    assert_ok(&o, "get ADDED after edit");
    assert_eq!(stdout(&o), "from the editor\n");
    let o = w.alice_run(&["get", "prod", "API"]);
    assert_eq!(stdout(&o), format!("{PROD_API}\n"), "edit kept API");
    // staging was not touched by editing prod.
    let o = w.alice_run(&["get", "staging", "DB"]);
    assert_eq!(stdout(&o), format!("{STAGING_DB}\n"));
    // An editor that changes nothing makes no commit.
    let before = w.heads();
    let o = w.alice_run_env(&["edit", "prod"], &[("EDITOR", "true")]);
    assert_ok(&o, "edit without changes");
    assert_eq!(w.heads(), before, "an unchanged edit must not commit");

    // unset.
    let o = w.alice_run(&["unset", "prod", "API"]);
    assert_ok(&o, "unset prod API");
    let o = w.alice_run(&["list", "prod"]);
    assert_eq!(stdout(&o), "ADDED\nDB\nMULTI\n");
    let o = w.alice_run(&["get", "prod", "API"]);
    assert_exit(&o, 1, "get an unset key");
    assert_no_leak(&o, &[PROD_API], "get an unset key");
    let before = w.heads();
    let o = w.alice_run(&["unset", "prod", "API"]);
    assert_exit(&o, 1, "unset a key that is not there");
    assert_eq!(w.heads(), before, "a failed unset must not commit");

    // Every change is one signed commit in each repo; doctor is happy.
    // 1 init + 5 sets + 1 edit + 1 unset.
    assert_eq!(w.git_ok(&w.proj, &["rev-list", "--count", "HEAD"]), "8");
    let st = w.git_ok(&w.proj, &["status", "--porcelain"]);
    assert!(st.is_empty(), "byreis left the work tree dirty: {st}");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor at the end");
    let checks: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for c in [
        "config", "anchor", "registry", "roster", "record", "manifest", "audit", "files",
    ] {
        assert!(checks.contains(&c), "doctor has no {c} check: {v}");
    }
    let o = w.alice_run(&["doctor"]);
    assert_ok(&o, "doctor (text)");
    assert_no_leak(&o, &[PROD_DB, STAGING_DB], "doctor");
}

#[test]
fn reads_serve_the_pinned_state_from_an_older_checkout() {
    let w = World::with_secrets();
    w.set("prod", "DB", "newer-db-value");
    w.git_ok(&w.proj, &["checkout", "-q", "--detach", "HEAD~1"]);
    // The working tree now holds the older manifest and file.
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get from an older checkout");
    assert_eq!(stdout(&o), "newer-db-value\n");
    assert_stderr_contains(&o, "checkout-not-current", "get from an older checkout");
    assert_no_leak(&o, &[PROD_DB], "get from an older checkout");
    let o = w.alice_run(&["exec", "prod", "--", "sh", "-c", "printf %s \"$DB\""]);
    assert_ok(&o, "exec from an older checkout");
    assert_eq!(stdout(&o), "newer-db-value");
    // Writing from an old checkout is refused and changes nothing.
    let before = w.heads();
    let o = w.alice_run_stdin(&["set", "prod", "DB"], "from-old-checkout\n");
    // (A detached old checkout is not on the write branch either.)
    assert_refused(
        &o,
        &["checkout-not-current", "wrong-branch"],
        "set from an older checkout",
    );
    assert_eq!(w.heads(), before);
    // doctor warns, does not fail.
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor on an older checkout");
    let manifest = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "manifest")
        .expect("manifest check");
    assert_eq!(manifest["status"], "warn", "{v}");
    assert_eq!(manifest["code"], "checkout-not-current", "{v}");
}

#[test]
fn exec_refuses_loader_names_strips_byreis_vars_and_guards_inherited() {
    let w = World::with_secrets();
    let marker = w.root.join("child-ran");
    let child = format!("touch '{}'", marker.display());

    // Secret names that change how programs load code are refused.
    for (env, name) in [("ld", "LD_PRELOAD"), ("pathy", "PATH")] {
        w.set(env, name, "/tmp/evil");
        w.set(env, "HARMLESS", "x");
        let o = w.alice_run(&["exec", env, "--", "sh", "-c", &child]);
        assert_failed(&o, &format!("exec with a {name} secret"));
        assert_stderr_contains(&o, name, &format!("exec with a {name} secret"));
        assert!(!marker.exists(), "exec ran the child with a {name} secret");
        // Overrides do not unlock loader names.
        let o = w.alice_run(&["exec", env, "--override-all", "--", "sh", "-c", &child]);
        assert_failed(&o, &format!("exec --override-all with a {name} secret"));
        assert!(!marker.exists(), "--override-all unlocked {name}");
    }

    // BYREIS_* variables (and tokens) never reach the child.
    let o = w.alice_run_env(
        &["exec", "prod", "--", "env"],
        &[
            ("BYREIS_FOO", "1"),
            ("GITHUB_TOKEN", "ghp_should_not_leak"),
            ("KEEP_ME", "kept"),
        ],
    );
    assert_ok(&o, "exec env");
    let out = stdout(&o);
    assert!(
        !out.lines().any(|l| l.starts_with("BYREIS_")),
        "BYREIS_* reached the child:\n{out}"
    );
    assert!(
        !out.contains("ghp_should_not_leak"),
        "a token reached the child"
    );
    assert!(out.lines().any(|l| l == "KEEP_ME=kept"), "{out}");
    assert!(out.lines().any(|l| l == format!("DB={PROD_DB}")), "{out}");

    // An inherited variable with a secret's name is not overridden silently.
    let o = run_env(
        &w.alice.home,
        &w.proj,
        &["exec", "prod", "--", "sh", "-c", &child],
        None,
        &[("DB", "inherited")],
    );
    assert_failed(&o, "exec with an inherited DB");
    assert_stderr_contains(&o, "--override", "exec with an inherited DB");
    assert!(!marker.exists(), "exec ran the child over an inherited DB");
    for flags in [&["--override", "DB"][..], &["--override-all"][..]] {
        let mut args = vec!["exec", "prod"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "sh", "-c", "printf %s \"$DB\""]);
        let o = run_env(&w.alice.home, &w.proj, &args, None, &[("DB", "inherited")]);
        assert_ok(&o, &format!("exec {flags:?} with an inherited DB"));
        assert_eq!(stdout(&o), PROD_DB, "the secret replaces the inherited DB");
        assert_stderr_contains(&o, "replaces the inherited", "override notice");
    }
    // --override for another name does not cover DB.
    let o = run_env(
        &w.alice.home,
        &w.proj,
        &[
            "exec",
            "prod",
            "--override",
            "API",
            "--",
            "sh",
            "-c",
            &child,
        ],
        None,
        &[("DB", "inherited")],
    );
    assert_failed(&o, "exec --override API with an inherited DB");
    assert!(!marker.exists());
}

/// Issue 13 item 4: exec refuses names by family (here PYTHONWARNINGS,
/// which makes Python import any module), `set` says so at once, and an
/// admin allows the name deliberately for one environment with a signed,
/// audited `exec-allow` that `--remove` undoes; a member cannot.
#[test]
fn exec_allow_round_trip_for_a_refused_family_name() {
    let w = World::with_secrets();
    let marker = w.root.join("child-ran");
    let child = format!(
        "printf %s \"$PYTHONWARNINGS\"; touch '{}'",
        marker.display()
    );

    // set stores it, and warns at once that exec will refuse it.
    let o = w.alice_run_stdin(
        &["set", "prod", "PYTHONWARNINGS"],
        "ignore::UserWarning:evil\n",
    );
    assert_ok(&o, "set prod PYTHONWARNINGS");
    assert_stderr_contains(
        &o,
        "`byreis exec prod` will refuse PYTHONWARNINGS",
        "set warns",
    );
    assert_stderr_contains(&o, "family PYTHON*", "set names the family");
    assert_stderr_contains(
        &o,
        "`byreis exec-allow prod PYTHONWARNINGS`",
        "set says how to allow it",
    );
    w.assert_get("prod", "PYTHONWARNINGS", "ignore::UserWarning:evil");
    w.set("staging", "PYTHONWARNINGS", "ignore");
    // import and edit results warn the same way (proxies in any case).
    let file = w.root.join("imp.yaml");
    fs::write(
        &file,
        "staging:\n  http_proxy: \"http://evil.example:3128\"\n",
    )
    .unwrap();
    let o = w.alice_run(&["import", file.to_str().unwrap()]);
    assert_ok(&o, "import http_proxy");
    assert_stderr_contains(
        &o,
        "`byreis exec staging` will refuse http_proxy (family *PROXY*",
        "import warns",
    );
    let editor = w.root.join("add-node-options.sh");
    write_script(
        &editor,
        "printf 'NODE_OPTIONS: \"--require /tmp/x.js\"\\n' >> \"$1\"",
    );
    let o = w.alice_run_env(
        &["edit", "staging"],
        &[("EDITOR", editor.to_str().unwrap())],
    );
    assert_ok(&o, "edit adding NODE_OPTIONS");
    assert_stderr_contains(
        &o,
        "`byreis exec staging` will refuse NODE_OPTIONS (family NODE_*",
        "edit warns",
    );
    w.assert_get("staging", "NODE_OPTIONS", "--require /tmp/x.js");

    // exec refuses it, naming the family, and runs nothing.
    let refused = |what: &str| {
        let o = w.alice_run(&["exec", "prod", "--", "sh", "-c", &child]);
        assert_failed(&o, what);
        assert_stderr_contains(
            &o,
            "PYTHONWARNINGS (family PYTHON*: Python reads it to load code or change warnings handling",
            what,
        );
        assert_stderr_contains(&o, "byreis exec-allow prod NAME", what);
        assert!(!marker.exists(), "{what}: exec ran the child");
    };
    refused("exec with PYTHONWARNINGS");

    // A member who is not an admin cannot allow it; nothing moves.
    let bob = keygen(&w.root, "bob");
    assert_ok(
        &w.rotate(&["--add", &format!("bob={}", bob.recipient)]),
        "rotate --add bob",
    );
    let heads = w.heads();
    let o = w.run_as(&bob, &["exec-allow", "prod", "PYTHONWARNINGS"]);
    assert_failed(&o, "a member runs exec-allow");
    assert_stderr_contains(
        &o,
        "only admins can run `byreis exec-allow`",
        "a member runs exec-allow",
    );
    assert_eq!(w.heads(), heads, "a member's exec-allow changed nothing");
    refused("exec after a member's exec-allow");

    // Names no family refuses, reserved names, invalid names: nothing to do.
    let o = w.alice_run(&["exec-allow", "prod", "DB"]);
    assert_ok(&o, "exec-allow of an ordinary name");
    assert_stderr_contains(&o, "nothing to allow", "exec-allow DB");
    let o = w.alice_run(&["exec-allow", "prod", "BYREIS_X"]);
    assert_failed(&o, "exec-allow of a reserved name");
    assert_stderr_contains(&o, "reserved", "exec-allow BYREIS_X");
    let o = w.alice_run(&["exec-allow", "prod", "A-B"]);
    assert_failed(&o, "exec-allow of an invalid name");
    assert_stderr_contains(&o, "invalid secret name", "exec-allow A-B");
    let o = w.alice_run(&["exec-allow", "nowhere", "PYTHONWARNINGS"]);
    assert_failed(&o, "exec-allow in a missing environment");
    assert_stderr_contains(&o, "no environment nowhere", "exec-allow nowhere");
    assert_eq!(w.heads(), heads, "no-ops changed nothing");

    // alice allows it in prod: a signed, counted, audited change.
    let counter = w.manifest_counter();
    let o = w.alice_run(&["exec-allow", "prod", "PYTHONWARNINGS"]);
    assert_ok(&o, "exec-allow prod PYTHONWARNINGS");
    assert_eq!(w.manifest_counter(), counter + 1, "one signed change");
    let a = w.last_audit();
    assert_eq!(a["action"], "exec-allow", "{a}");
    assert_eq!(a["details"]["env"], "prod", "{a}");
    assert_eq!(a["details"]["name"], "PYTHONWARNINGS", "{a}");
    assert_eq!(a["details"]["family"], "PYTHON*", "{a}");
    assert_eq!(
        w.manifest_yaml()["environments"]["prod"]["exec_allow"],
        serde_yaml::from_str::<serde_yaml::Value>("[PYTHONWARNINGS]").unwrap()
    );
    assert_ok(
        &w.verify_commit(&w.proj, "HEAD"),
        "git verify-commit of exec-allow",
    );
    let o = w.alice_run(&["exec", "prod", "--", "sh", "-c", &child]);
    assert_ok(&o, "exec after exec-allow");
    assert_eq!(stdout(&o), "ignore::UserWarning:evil");
    assert!(marker.exists());
    fs::remove_file(&marker).unwrap();
    // Only in prod: staging still refuses it.
    let o = w.alice_run(&["exec", "staging", "--", "sh", "-c", &child]);
    assert_failed(&o, "exec staging (allowed in prod only)");
    assert_stderr_contains(&o, "byreis exec-allow staging NAME", "staging");
    assert!(!marker.exists(), "exec staging ran the child");
    // A later set keeps the allowance, and no longer warns.
    let o = w.alice_run_stdin(&["set", "prod", "PYTHONWARNINGS"], "default\n");
    assert_ok(&o, "set an allowed name");
    assert!(!stderr(&o).contains("will refuse"), "{}", dump(&o));
    let o = w.alice_run(&[
        "exec",
        "prod",
        "--",
        "sh",
        "-c",
        "printf %s \"$PYTHONWARNINGS\"",
    ]);
    assert_ok(&o, "exec after a later set");
    assert_eq!(stdout(&o), "default");
    // Allowing it again changes nothing.
    let heads = w.heads();
    let o = w.alice_run(&["exec-allow", "prod", "PYTHONWARNINGS"]);
    assert_ok(&o, "exec-allow twice");
    assert_stderr_contains(&o, "already allowed in prod", "exec-allow twice");
    assert_eq!(w.heads(), heads);
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after exec-allow");

    // --remove: refused again, audited.
    let o = w.alice_run(&["exec-allow", "prod", "PYTHONWARNINGS", "--remove"]);
    assert_ok(&o, "exec-allow --remove");
    assert_stderr_contains(&o, "refuses it again", "exec-allow --remove");
    let a = w.last_audit();
    assert_eq!(a["action"], "exec-allow-remove", "{a}");
    assert_eq!(a["details"]["name"], "PYTHONWARNINGS", "{a}");
    assert!(
        w.manifest_yaml()["environments"]["prod"]
            .get("exec_allow")
            .is_none(),
        "an empty exec_allow is not written"
    );
    refused("exec after exec-allow --remove");
    let o = w.alice_run(&["exec-allow", "prod", "PYTHONWARNINGS", "--remove"]);
    assert_ok(&o, "exec-allow --remove twice");
    assert_stderr_contains(&o, "is not allowed in prod", "--remove twice");
}

#[test]
fn bad_input_is_a_clear_error_and_changes_nothing() {
    let w = World::with_secrets();
    let before = w.heads();
    let leak = [PROD_DB, PROD_API, STAGING_DB];

    // Missing identity: an empty BYREIS_HOME (anchor from the environment
    // so verification passes and the identity is what is missing).
    let empty_home = w.root.join("nobody");
    let o = run_env(
        &empty_home,
        &w.proj,
        &["get", "prod", "DB"],
        None,
        &[("BYREIS_ANCHOR", &w.anchor)],
    );
    assert_failed(&o, "get without an identity");
    assert_stderr_contains(&o, "no age identity", "get without an identity");
    assert_no_leak(&o, &leak, "get without an identity");
    // And without the anchor it stops even earlier.
    let o = run(&empty_home, &w.proj, &["get", "prod", "DB"], None);
    assert_refused(&o, &["anchor-not-trusted"], "get with an empty home");

    // A group-readable identity is refused with the fix.
    let id = w.alice.home.join("identity.txt");
    fs::set_permissions(&id, fs::Permissions::from_mode(0o640)).unwrap();
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_failed(&o, "get with a group-readable identity");
    assert_stderr_contains(&o, "chmod 600", "get with a group-readable identity");
    assert_no_leak(&o, &leak, "get with a group-readable identity");
    let o = w.alice_run_stdin(&["set", "prod", "DB"], "while-640\n");
    assert_failed(&o, "set with a group-readable identity");
    fs::set_permissions(&id, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(w.heads(), before);

    // Malformed YAML and duplicate keys from the editor. The private temp
    // dir is removed on these paths too.
    let runtime = w.root.join("runtime");
    fs::create_dir(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    let runtime_s = runtime.to_str().unwrap();
    for (what, body) in [
        ("malformed YAML", "printf 'DB: [unclosed\\n' > \"$1\""),
        (
            "duplicate keys",
            "printf 'DB: \"a\"\\nDB: \"b\"\\n' > \"$1\"",
        ),
        ("a nested mapping", "printf 'DB:\\n  inner: x\\n' > \"$1\""),
        ("an invalid secret name", "printf 'bad-name: x\\n' > \"$1\""),
        ("a tag", "printf 'DB: !!binary aGVsbG8=\\n' > \"$1\""),
        (
            "an anchor and alias",
            "printf 'DB: &x v\\nAPI: *x\\n' > \"$1\"",
        ),
        (
            "a second document",
            "printf 'DB: a\\n---\\nDB: b\\n' > \"$1\"",
        ),
    ] {
        let editor = w.root.join("bad-editor.sh");
        write_script(&editor, body);
        let o = w.alice_run_env(
            &["edit", "prod"],
            &[
                ("EDITOR", editor.to_str().unwrap()),
                ("XDG_RUNTIME_DIR", runtime_s),
            ],
        );
        assert_exit(&o, 1, &format!("edit with {what}"));
        assert_eq!(
            fs::read_dir(&runtime).unwrap().count(),
            0,
            "edit with {what} left its temp dir"
        );
        assert_stderr_contains(&o, "nothing was changed", &format!("edit with {what}"));
        assert_eq!(w.heads(), before, "edit with {what} changed something");
    }
    // An editor that fails cancels the edit.
    let o = w.alice_run_env(
        &["edit", "prod"],
        &[("EDITOR", "false"), ("XDG_RUNTIME_DIR", runtime_s)],
    );
    assert_exit(&o, 1, "edit with a failing editor");
    assert_eq!(
        fs::read_dir(&runtime).unwrap().count(),
        0,
        "a failed edit left its temp dir"
    );
    assert_eq!(w.heads(), before);

    // Unknown environment.
    let o = w.alice_run(&["get", "nope", "DB"]);
    assert_failed(&o, "get from an unknown environment");
    assert_stderr_contains(&o, "nope", "get from an unknown environment");
    let o = w.alice_run(&["list", "nope"]);
    assert_failed(&o, "list an unknown environment");

    // Invalid names.
    for args in [
        &["set", "prod", "bad-name", "x"][..],
        &["set", "Prod", "K", "x"][..],
        &["set", "prod", "1DIGIT", "x"][..],
        &["set", "../etc", "K", "x"][..],
        &["get", "prod", "bad-name"][..],
        &["unset", "Prod", "DB"][..],
    ] {
        let o = w.alice_run(args);
        assert_exit(&o, 1, &format!("{args:?}"));
        assert_stderr_contains(&o, "invalid", &format!("{args:?}"));
    }
    assert_eq!(w.heads(), before, "invalid names changed something");

    // init in a directory that is not a git work tree.
    let plain = w.root.join("plain");
    fs::create_dir(&plain).unwrap();
    let o = run(
        &w.alice.home,
        &plain,
        &[
            "init",
            "--project",
            "plain",
            "--registry",
            w.reg.to_str().unwrap(),
        ],
        None,
    );
    assert_failed(&o, "init outside git");
    assert_eq!(fs::read_dir(&plain).unwrap().count(), 0, "init wrote files");

    // init against something that is not a registry (an empty git repo).
    let not_reg = w.root.join("not-a-registry");
    fs::create_dir(&not_reg).unwrap();
    w.git_ok(&not_reg, &["init", "-q"]);
    let proj2 = w.root.join("proj2");
    fs::create_dir(&proj2).unwrap();
    w.git_ok(&proj2, &["init", "-q"]);
    let o = run(
        &w.alice.home,
        &proj2,
        &[
            "init",
            "--project",
            "other",
            "--registry",
            not_reg.to_str().unwrap(),
        ],
        None,
    );
    assert_failed(&o, "init with a non-registry");
    assert!(
        !proj2.join("byreis.yaml").exists(),
        "init wrote byreis.yaml"
    );
    assert!(!proj2.join(".byreis").exists(), "init wrote .byreis/");
    assert_eq!(
        w.git(&proj2, &["rev-parse", "--verify", "-q", "HEAD"])
            .status
            .code(),
        Some(1),
        "init committed"
    );
    assert_eq!(
        w.git(&not_reg, &["rev-parse", "--verify", "-q", "HEAD"])
            .status
            .code(),
        Some(1),
        "init committed to the non-registry"
    );

    // init twice in the same project, and the same project name twice.
    let o = w.alice_run(&[
        "init",
        "--project",
        "demo",
        "--registry",
        w.reg.to_str().unwrap(),
    ]);
    assert_failed(&o, "init twice");
    let o = run(
        &w.alice.home,
        &proj2,
        &[
            "init",
            "--project",
            "demo",
            "--registry",
            w.reg.to_str().unwrap(),
        ],
        None,
    );
    assert_failed(&o, "init a second project with a taken name");
    assert!(!proj2.join("byreis.yaml").exists());

    // registry init into a non-empty directory.
    let o = run(
        &w.alice.home,
        &w.root,
        &["registry", "init", w.proj.to_str().unwrap()],
        None,
    );
    assert_failed(&o, "registry init into a non-empty dir");

    // keygen twice refuses to overwrite.
    let id_before = fs::read(&id).unwrap();
    let key_before = fs::read(w.alice.home.join("signing_key")).unwrap();
    let o = run(&w.alice.home, &w.root, &["keygen", "--name", "alice"], None);
    assert_exit(&o, 1, "keygen twice");
    assert_stderr_contains(&o, "already exists", "keygen twice");
    assert_eq!(
        fs::read(&id).unwrap(),
        id_before,
        "keygen overwrote the identity"
    );
    assert_eq!(
        fs::read(w.alice.home.join("signing_key")).unwrap(),
        key_before,
        "keygen overwrote the signing key"
    );

    // Usage errors exit 2.
    let o = w.alice_run(&["get", "prod"]);
    assert_exit(&o, 2, "get without a key");
    let o = w.alice_run(&["exec", "prod"]);
    assert_exit(&o, 2, "exec without a command");

    assert_eq!(w.heads(), before, "bad input changed a repository");
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "get after all the bad input");
    assert_eq!(stdout(&o), format!("{PROD_DB}\n"));
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after all the bad input");
}

#[test]
fn key_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let p = keygen(&root, "carol");
    let mode = |f: &str| fs::metadata(p.home.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("identity.txt"), 0o600);
    assert_eq!(mode("signing_key"), 0o600);
    assert_eq!(mode("profile.yaml"), 0o600);
    assert_eq!(
        fs::metadata(&p.home).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let id = fs::read_to_string(p.home.join("identity.txt")).unwrap();
    assert!(
        id.lines().any(|l| l.starts_with("AGE-SECRET-KEY-1")),
        "{id}"
    );
    let pubkey = fs::read_to_string(p.home.join("signing_key.pub")).unwrap();
    assert!(pubkey.starts_with(&p.signing_key), "{pubkey}");
}

#[test]
fn values_round_trip_exactly() {
    let w = World::new();
    // Strings YAML would otherwise turn into other types, or mangle.
    let values: &[(&str, &str)] = &[
        ("NULLISH", "null"),
        ("TILDE", "~"),
        ("BOOLISH", "yes"),
        ("FALSEY", "false"),
        ("OCTALISH", "0123"),
        ("FLOATISH", "1e3"),
        ("HEXISH", "0x1F"),
        ("EMPTY", ""),
        ("SPACES", "  leading and trailing  "),
        ("COLON", "a: b"),
        ("HASH", "#not a comment"),
        ("DASH", "- item"),
        ("QUOTES", "it's \"quoted\""),
        ("BACKSLASH", "C:\\path\\n"),
        ("TAB", "a\tb"),
        ("UNICODE", "pässwörd ✓ 秘密"),
        ("FLOW", "{a: 1, b: [2]}"),
        ("ANCHORISH", "&anchor *alias !tag"),
        ("PERCENT", "%YAML 1.2"),
        ("DOCMARK", "---"),
        ("CR", "line\r\nnext"),
        ("MULTI", "first\nsecond\n  indented\n"),
    ];
    for (k, v) in values {
        let o = w.alice_run_stdin(&["set", "prod", k], &format!("{v}\n"));
        assert_ok(&o, &format!("set {k}"));
    }
    let check = |what: &str| {
        // (Each read verifies the whole audit chain, so check a few keys
        // with get and all of them with one exec.)
        for (k, v) in values
            .iter()
            .filter(|(k, _)| ["NULLISH", "EMPTY", "MULTI", "CR", "UNICODE"].contains(k))
        {
            let o = w.alice_run(&["get", "prod", k, "--format", "json"]);
            assert_ok(&o, &format!("{what}: get {k}"));
            let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
            assert_eq!(
                j["value"],
                *v,
                "{what}: {k} did not round-trip\n{}",
                dump(&o)
            );
        }
        let script = values
            .iter()
            .map(|(k, _)| format!("printf '%s\\0' \"${k}\";"))
            .collect::<String>();
        let o = w.alice_run(&["exec", "prod", "--", "sh", "-c", &script]);
        assert_ok(&o, &format!("{what}: exec"));
        let got: Vec<&[u8]> = o.stdout.split(|b| *b == 0).collect();
        for (i, (k, v)) in values.iter().enumerate() {
            assert_eq!(got[i], v.as_bytes(), "{what}: exec {k}");
        }
    };
    check("after set");

    // An editor that saves without changes must not change anything: what
    // edit shows parses back to exactly the same values.
    let before = w.heads();
    let o = w.alice_run_env(&["edit", "prod"], &[("EDITOR", "true")]);
    assert_ok(&o, "edit without changes");
    assert_eq!(
        w.heads(),
        before,
        "an unchanged edit committed (values did not round-trip through the editor text)\n{}",
        dump(&o)
    );
    // An editor that rewrites the file byte for byte (cat > tmp; mv) too.
    let editor = w.root.join("rewrite.sh");
    write_script(&editor, "cat \"$1\" > \"$1.tmp\"\nmv \"$1.tmp\" \"$1\"");
    let o = w.alice_run_env(&["edit", "prod"], &[("EDITOR", editor.to_str().unwrap())]);
    assert_ok(&o, "edit with a rewriting editor");
    assert_eq!(w.heads(), before, "a byte-identical rewrite committed");
    // A real edit of one key keeps every other value exact.
    let editor = w.root.join("edit-one.sh");
    write_script(&editor, "printf 'ADDED: \"x\"\\n' >> \"$1\"");
    let o = w.alice_run_env(&["edit", "prod"], &[("EDITOR", editor.to_str().unwrap())]);
    assert_ok(&o, "edit adding a key");
    assert_ne!(w.heads(), before);
    check("after edit");

    // The stock age CLI and a YAML reader see the same mapping: every value
    // is a double-quoted string in the plaintext.
    let o = w.tool(
        "age",
        &w.proj,
        &[
            "-d",
            "-i",
            w.alice.home.join("identity.txt").to_str().unwrap(),
            w.secrets_file("prod").to_str().unwrap(),
        ],
        None,
    );
    assert_ok(&o, "age -d");
    let plain = stdout(&o);
    assert!(plain.contains("NULLISH: \"null\""), "{plain}");
    assert!(plain.contains("BOOLISH: \"yes\""), "{plain}");
}

/// `byreis diff [REV]`: the name-level change between an earlier signed
/// state and the current one, never a value; names only where the caller
/// reads both states; names `exec` refuses are flagged.
#[test]
fn diff_shows_the_name_level_change_since_a_revision() {
    // prod {DB, API}, staging {DB}.
    let w = World::with_secrets();
    let before = w.git_ok(&w.proj, &["rev-parse", "HEAD"]).trim().to_string();
    w.set("prod", "DB", "db-v2");
    w.set("prod", "LD_PRELOAD", "/tmp/evil.so");
    assert_ok(
        &w.alice_run_stdin(&["unset", "staging", "DB"], ""),
        "unset staging DB",
    );
    let bob = keygen(&w.root, "bob");
    assert_ok(
        &w.rotate(&[
            "--add",
            &format!("bob={}", bob.recipient),
            "--env",
            "staging",
        ]),
        "bob reads staging",
    );

    let o = w.alice_run(&["diff", &before, "--format", "json"]);
    assert_ok(&o, "diff REV");
    assert_no_leak(&o, &[PROD_DB, "db-v2", "/tmp/evil.so", STAGING_DB], "diff");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["from_commit"], before.as_str(), "{v}");
    let env = |name: &str| {
        v["envs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["env"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {v}"))
    };
    let prod = env("prod");
    assert_eq!(prod["readable"], true, "{v}");
    assert_eq!(prod["added"], serde_json::json!(["LD_PRELOAD"]), "{v}");
    assert_eq!(prod["changed"], serde_json::json!(["DB"]), "{v}");
    assert_eq!(prod["removed"], serde_json::json!([]), "{v}");
    assert_eq!(prod["loads_code"], serde_json::json!(["LD_PRELOAD"]), "{v}");
    assert_eq!(env("staging")["removed"], serde_json::json!(["DB"]), "{v}");
    assert!(
        v["readers"].to_string().contains("bob"),
        "the reader change is shown: {v}"
    );

    // Default REV: the state before the last signed change (the rotation):
    // staging was re-encrypted, no value changed.
    let o = w.alice_run(&["diff"]);
    assert_ok(&o, "diff");
    let text = stdout(&o);
    assert!(
        text.contains("staging: re-encrypted, no value changed"),
        "{text}"
    );
    assert!(!text.contains("prod"), "only the last change: {text}");

    // bob reads staging now but not then, and never prod: no names.
    let o = w.run_as(&bob, &["diff", &before, "--format", "json"]);
    assert_ok(&o, "diff as bob");
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for e in b["envs"].as_array().unwrap() {
        assert_eq!(e["readable"], false, "{b}");
        assert_eq!(e["added"], serde_json::json!([]), "{b}");
    }

    // doctor --decrypt reads every environment alice reads, and passes.
    let o = w.alice_run(&["doctor", "--decrypt"]);
    assert_ok(&o, "doctor --decrypt");
    assert!(
        stdout(&o).contains("2 of 2 environment(s) decrypted with your key and parsed"),
        "{}",
        dump(&o)
    );
    // A revision that is not a commit of the project is refused.
    let o = w.alice_run(&["diff", "no-such-rev"]);
    assert_failed(&o, "diff of an unknown revision");
}

/// SECURITY.md: `edit` disables core dumps, so neither byreis nor the
/// editor it starts (which inherits the limit) can dump plaintext. byreis
/// is started with core dumps allowed; the editor records its limits.
#[test]
fn edit_runs_the_editor_without_core_dumps() {
    let w = World::with_secrets();
    let limits = w.root.join("limits");
    let editor = w.root.join("ed.sh");
    write_script(
        &editor,
        &format!(
            "ulimit -S -c > '{0}'\nulimit -H -c >> '{0}'\n",
            limits.display()
        ),
    );
    let allow = "ulimit -c unlimited && exec \"$0\" \"$@\"";
    // The control: the wrapper does allow core dumps.
    let mut c = clean_command("sh", &w.root, &w.proj);
    c.args(["-c", allow, "sh", "-c", "ulimit -S -c; ulimit -H -c"]);
    let o = output(&mut c, None);
    assert_ok(&o, "control");
    assert_eq!(stdout(&o), "unlimited\nunlimited\n", "control");
    let mut c = clean_command("sh", &w.root, &w.proj);
    c.env("BYREIS_HOME", &w.alice.home)
        .env("EDITOR", &editor)
        .args(["-c", allow, bin(), "edit", "prod"]);
    let o = output(&mut c, None);
    assert_ok(&o, "edit");
    assert_eq!(fs::read_to_string(&limits).unwrap(), "0\n0\n");
}

/// docs/diagnostics.md: every error is `byreis: error[CODE]: message` on
/// stderr. A refusal that is not a verification failure exits 1 and has no
/// `fix:` line; a verification failure keeps its fix and exit 3.
#[test]
fn a_refusal_is_printed_with_its_code() {
    let w = World::with_secrets();
    let before = w.heads();
    let leak = [PROD_DB, PROD_API, STAGING_DB];

    let o = w.alice_run(&["get", "prod", "NOPE"]);
    assert_exit(&o, 1, "get of an unknown key");
    assert_stderr_contains(
        &o,
        "byreis: error[unknown-key]: prod has no secret named NOPE",
        "get of an unknown key",
    );
    assert!(!stderr(&o).contains("  fix:"), "{}", dump(&o));
    assert!(
        stdout(&o).is_empty(),
        "text errors stay off stdout\n{}",
        dump(&o)
    );
    assert_no_leak(&o, &leak, "get of an unknown key");

    let o = w.alice_run(&["unset", "prod", "NOPE"]);
    assert_exit(&o, 1, "unset of an unknown key");
    assert_stderr_contains(
        &o,
        "byreis: error[unknown-key]: ",
        "unset of an unknown key",
    );

    // An error of a wrapped type (KeyError) carries its own code.
    let empty_home = w.root.join("nobody");
    let o = run_env(
        &empty_home,
        &w.proj,
        &["get", "prod", "DB"],
        None,
        &[("BYREIS_ANCHOR", &w.anchor)],
    );
    assert_exit(&o, 1, "get without an identity");
    assert_stderr_contains(
        &o,
        "byreis: error[key-missing]: no age identity",
        "get without an identity",
    );
    let id = w.alice.home.join("identity.txt");
    fs::set_permissions(&id, fs::Permissions::from_mode(0o640)).unwrap();
    let o = w.alice_run(&["get", "prod", "DB"]);
    fs::set_permissions(&id, fs::Permissions::from_mode(0o600)).unwrap();
    assert_exit(&o, 1, "get with a group-readable identity");
    assert_stderr_contains(
        &o,
        "byreis: error[key-permissions]: ",
        "get with a group-readable identity",
    );
    assert_no_leak(&o, &leak, "get with a group-readable identity");

    // A verification failure is unchanged: its code, its fix, exit 3.
    let o = run(&empty_home, &w.proj, &["get", "prod", "DB"], None);
    assert_refused(&o, &["anchor-not-trusted"], "get with an empty home");
    assert_stderr_contains(&o, "\n  fix: ", "get with an empty home");
    assert_eq!(w.heads(), before);
}

/// docs/diagnostics.md: with `--format json`, an error is also one JSON
/// object on stdout, `{"error": {"code", "message", "fix"?, "exit"}}`,
/// and the text line still goes to stderr.
#[test]
fn a_refusal_under_format_json_is_one_json_object_on_stdout() {
    let w = World::with_secrets();
    let leak = [PROD_DB, PROD_API, STAGING_DB];
    let parse = |o: &std::process::Output, what: &str| -> serde_json::Value {
        let out = stdout(o);
        assert_eq!(
            out.lines().count(),
            1,
            "{what}: one line of JSON\n{}",
            dump(o)
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}\n{}", dump(o)))
    };

    let o = w.alice_run(&["get", "prod", "NOPE", "--format", "json"]);
    assert_exit(&o, 1, "get --format json of an unknown key");
    let v = parse(&o, "get --format json of an unknown key");
    let e = &v["error"];
    assert_eq!(e["code"], "unknown-key", "{v}");
    assert_eq!(e["exit"], 1, "{v}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("prod has no secret named NOPE")),
        "{v}"
    );
    assert!(
        e.get("fix").is_none(),
        "only verification codes have a fix: {v}"
    );
    assert_stderr_contains(
        &o,
        &format!(
            "byreis: error[unknown-key]: {}",
            e["message"].as_str().unwrap()
        ),
        "get --format json of an unknown key",
    );
    assert_no_leak(&o, &leak, "get --format json of an unknown key");

    // A refusal from a wrapped type, on another verb with --format.
    let o = w.alice_run(&["list", "no_such_env", "--format", "json"]);
    assert_exit(&o, 1, "list --format json of an unknown environment");
    let v = parse(&o, "list --format json of an unknown environment");
    assert_eq!(v["error"]["code"], "unknown-environment", "{v}");

    // A verification failure carries its fix and exit 3.
    let empty_home = w.root.join("nobody");
    let o = run(
        &empty_home,
        &w.proj,
        &["get", "prod", "DB", "--format", "json"],
        None,
    );
    assert_refused(&o, &["anchor-not-trusted"], "get --format json, untrusted");
    let v = parse(&o, "get --format json, untrusted");
    assert_eq!(v["error"]["code"], "anchor-not-trusted", "{v}");
    assert_eq!(v["error"]["exit"], 3, "{v}");
    assert!(
        v["error"]["fix"].as_str().is_some_and(|f| !f.is_empty()),
        "{v}"
    );
}

// Issue 15: a write decrypts each environment it changes once; the verified
// state keeps what it decrypted for the run. BYREIS_TIMINGS names every
// decryption (`decrypt ENV`).
#[test]
fn a_write_decrypts_the_environment_once() {
    let w = World::with_secrets();
    let decryptions = |o: &std::process::Output, env: &str| {
        stderr(o)
            .lines()
            .filter(|l| l.starts_with("timing:") && l.ends_with(&format!("  decrypt {env}")))
            .count()
    };
    let timings = [("BYREIS_TIMINGS", "1")];
    let o = w.alice_run_env(&["set", "prod", "NEWKEY", "v1"], &timings);
    assert_ok(&o, "set");
    assert_eq!(
        decryptions(&o, "prod"),
        1,
        "set decrypts prod once\n{}",
        dump(&o)
    );
    let o = w.alice_run_env(&["unset", "prod", "NEWKEY"], &timings);
    assert_ok(&o, "unset");
    assert_eq!(
        decryptions(&o, "prod"),
        1,
        "unset decrypts prod once\n{}",
        dump(&o)
    );
    assert_eq!(decryptions(&o, "staging"), 0, "and nothing else");
    w.assert_get("prod", "DB", PROD_DB);
}
