//! Auditors: `doctor --rotation-history` rows and the exposure inventory
//! (`doctor --exposure NAME`, `exposure ack`), over a history with adds,
//! removes and value changes; a shallow clone is reported as incomplete.

use crate::common::*;
use serde_json::Value;

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{}", dump(o)))
}

fn status_of<'a>(report: &'a Value, env: &str, key: &str) -> &'a Value {
    report["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["env"] == env && s["key"] == key)
        .unwrap_or_else(|| panic!("{env}/{key} not in the inventory: {report}"))
}

#[test]
fn history_and_exposure_inventory() {
    // prod {DB, API}, staging {DB}.
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    let add_bob = format!("bob={}", bob.recipient);

    // bob reads prod only; prod/DB changes while he is a reader; then he
    // is removed (with a reason). staging is never his.
    assert_ok(
        &w.rotate(&["--add", &add_bob, "--env", "prod"]),
        "add bob to prod",
    );
    w.set("prod", "DB", "db-v2-while-bob");
    w.set("prod", "NEW", "added-while-bob");
    assert_ok(
        &w.rotate(&["--remove", "bob", "--reason", "left the team"]),
        "remove bob",
    );
    // After removal: API is rotated in byreis, DB and NEW are not.
    w.set("prod", "API", "api-rotated");
    w.set("staging", "DB", "staging-v2");

    // --since: a date after every rotation keeps none; a bad date is
    // refused.
    let o = w.alice_run(&[
        "doctor",
        "--rotation-history",
        "--since",
        "2999-01-01",
        "--format",
        "json",
    ]);
    assert_ok(&o, "rotation history --since");
    assert_eq!(json(&o)["rotations"], serde_json::json!([]), "{}", dump(&o));
    let o = w.alice_run(&[
        "doctor",
        "--rotation-history",
        "--since",
        "2000-01-01",
        "--format",
        "json",
    ]);
    assert_eq!(
        json(&o)["rotations"].as_array().map(Vec::len),
        Some(2),
        "{}",
        dump(&o)
    );
    let o = w.alice_run(&["doctor", "--rotation-history", "--since", "last tuesday"]);
    assert_failed(&o, "--since with a bad date");
    assert_stderr_contains(&o, "YYYY-MM-DD", "says the format");

    // --rotation-history: exactly the two rotations, in order.
    let o = w.alice_run(&["doctor", "--rotation-history", "--format", "json"]);
    assert_ok(&o, "rotation history");
    let h = json(&o);
    let rows = h["rotations"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{h}");
    assert_eq!(rows[0]["added"][0]["name"], "bob", "{h}");
    assert_eq!(
        rows[0]["added"][0]["envs"],
        serde_json::json!(["prod"]),
        "{h}"
    );
    assert_eq!(rows[1]["removed"][0]["name"], "bob", "{h}");
    assert_eq!(rows[1]["reason"], "left the team", "{h}");
    assert_eq!(h["history"], "complete", "{h}");
    for r in rows {
        assert_eq!(r["actor"], "alice", "{h}");
        assert_eq!(r["commit_signature_ok"], true, "{h}");
        // The registry record for the counter exists and verifies; nothing
        // is flagged in an honest history.
        assert_eq!(r["record_ok"], true, "{h}");
        assert_eq!(r["flags"], serde_json::json!([]), "{h}");
        assert_eq!(
            r["counter_to"].as_u64().unwrap(),
            r["counter_from"].as_u64().unwrap() + 1,
            "{h}"
        );
        let commit = r["commit"].as_str().unwrap();
        let manifest = w.git_ok(
            &w.proj,
            &["show", &format!("{commit}:.byreis/manifest.yaml")],
        );
        assert!(
            manifest.contains(&format!("counter: {}", r["counter_to"])),
            "the row's commit holds its counter\n{manifest}"
        );
    }

    // The inventory: exactly prod's names, never staging's.
    let o = w.alice_run(&["doctor", "--exposure", "bob", "--format", "json"]);
    assert_exit(&o, 4, "exposure with values still in use exits 4");
    let r = json(&o);
    assert_eq!(r["complete"], true, "{r}");
    let mut names: Vec<String> = r["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["env"].as_str().unwrap(),
                s["key"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    assert_eq!(names, ["prod/API", "prod/DB", "prod/NEW"], "{r}");
    assert_eq!(status_of(&r, "prod", "DB")["status"], "unchanged", "{r}");
    assert_eq!(status_of(&r, "prod", "NEW")["status"], "unchanged", "{r}");
    assert_eq!(
        status_of(&r, "prod", "API")["status"],
        "changed-in-byreis",
        "{r}"
    );
    // bob saw two values of DB (before and after the change).
    assert_eq!(
        status_of(&r, "prod", "DB")["value_fingerprints"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{r}"
    );
    // Values never appear, and fingerprints differ from run to run.
    let text = String::from_utf8_lossy(&o.stdout);
    for v in [PROD_DB, "db-v2-while-bob", "added-while-bob", PROD_API] {
        assert!(!text.contains(v), "a value leaked into the inventory");
    }
    let again = json(&w.alice_run(&["doctor", "--exposure", "bob", "--format", "json"]));
    assert_ne!(
        status_of(&r, "prod", "NEW")["value_fingerprints"],
        status_of(&again, "prod", "NEW")["value_fingerprints"],
        "fingerprints must be keyed per run"
    );

    // Rotate the rest in byreis: nothing unchanged → exit 0; --require-ack
    // still exits 4 until an admin acknowledges each.
    w.set("prod", "DB", "db-v3");
    assert_ok(
        &w.alice_run_stdin(&["unset", "prod", "NEW"], ""),
        "unset NEW",
    );
    let o = w.alice_run(&["doctor", "--exposure", "bob"]);
    assert_ok(&o, "no value bob read is still in use");
    let o = w.alice_run(&["doctor", "--exposure", "bob", "--require-ack"]);
    assert_exit(&o, 4, "not acknowledged yet");
    let o = w.alice_run(&[
        "exposure",
        "ack",
        "bob",
        "DB",
        "API",
        "NEW",
        "--env",
        "prod",
        "--note",
        "revoked at the database and the API provider",
    ]);
    assert_ok(&o, "exposure ack");
    let o = w.alice_run(&[
        "doctor",
        "--exposure",
        "bob",
        "--require-ack",
        "--format",
        "json",
    ]);
    assert_ok(&o, "everything acknowledged");
    let r = json(&o);
    for key in ["DB", "API", "NEW"] {
        let s = status_of(&r, "prod", key);
        assert_eq!(s["status"], "acknowledged", "{r}");
        assert_eq!(s["by"], "alice", "{r}");
    }
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after the acknowledgement");
}

#[test]
fn shallow_clone_is_reported_incomplete() {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    let add_bob = format!("bob={}", bob.recipient);
    assert_ok(&w.rotate(&["--add", &add_bob]), "add bob");
    w.set("prod", "DB", "v2");
    assert_ok(&w.rotate(&["--remove", "bob"]), "remove bob");

    let shallow = w.root.join("shallow");
    let url = format!("file://{}", w.proj.display());
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &url,
            shallow.to_str().unwrap(),
        ],
    );
    let env = anchor_env(&w);
    let o = run_env(
        &w.alice.home,
        &shallow,
        &["doctor", "--exposure", "bob", "--format", "json"],
        None,
        &env,
    );
    let r = json(&o);
    assert_eq!(r["complete"], false, "{r}");
    let why = r["incomplete"].to_string();
    assert!(why.contains("shallow"), "{r}");
    // The rotation history says "unavailable", not tampering: rows whose
    // commit is beyond the clone's depth are flagged history-unavailable,
    // never commit-missing.
    let o = run_env(
        &w.alice.home,
        &shallow,
        &["doctor", "--rotation-history", "--format", "json"],
        None,
        &env,
    );
    assert_ok(&o, "rotation history in a shallow clone");
    let h = json(&o);
    assert_eq!(h["history"], "unavailable (shallow clone)", "{h}");
    let rows = h["rotations"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{h}");
    // The add is beyond depth 1; the removal's commit is the clone's tip.
    assert_eq!(
        rows[0]["flags"],
        serde_json::json!(["history-unavailable"]),
        "{h}"
    );
    assert_eq!(rows[1]["flags"], serde_json::json!([]), "{h}");
    assert_eq!(rows[1]["commit_signature_ok"], true, "{h}");
}

/// The forward-secrecy warning of `rotate --remove` lists, from the
/// exposure inventory, what the party could read in older versions too:
/// values still in use (in an environment they no longer read), values
/// changed in byreis since, and values acknowledged as revoked.
#[test]
fn removal_warning_uses_the_inventory() {
    // prod {DB, API}, staging {DB}.
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    let add_bob = format!("bob={}", bob.recipient);
    assert_ok(&w.rotate(&["--add", &add_bob]), "add bob everywhere");
    w.set("prod", "OLD", "old-while-bob");
    assert_ok(
        &w.alice_run_stdin(&["unset", "prod", "OLD"], ""),
        "unset OLD",
    );
    w.set("prod", "API", "api-v2");
    let o = w.alice_run(&[
        "exposure", "ack", "bob", "API", "--env", "prod", "--note", "revoked",
    ]);
    assert_ok(&o, "ack the old API value");
    assert_ok(
        &w.rotate(&["--remove", "bob", "--env", "staging"]),
        "bob leaves staging",
    );

    let o = w.rotate(&["--remove", "bob", "--format", "json"]);
    assert_ok(&o, "remove bob");
    assert_no_leak(
        &o,
        &[PROD_DB, STAGING_DB, PROD_API, "old-while-bob", "api-v2"],
        "removal warning",
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = &v["exposures"][0];
    assert_eq!(e["member"], "bob", "{v}");
    // Current files: prod only (bob left staging before).
    assert_eq!(
        e["could_read"],
        serde_json::json!({"prod": ["API", "DB"]}),
        "{v}"
    );
    let earlier = &e["earlier"];
    assert_eq!(
        earlier["still_in_use"],
        serde_json::json!({"prod": ["DB"], "staging": ["DB"]}),
        "{v}"
    );
    assert_eq!(
        earlier["changed"],
        serde_json::json!({"prod": ["OLD"]}),
        "{v}"
    );
    assert_eq!(
        earlier["acknowledged"],
        serde_json::json!({"prod": ["API"]}),
        "{v}"
    );
    assert_eq!(earlier["incomplete"], serde_json::json!([]), "{v}");
    let err = stderr(&o);
    for needle in [
        "In older versions, values still in use today:",
        "  staging: DB",
        "values changed in byreis since",
        "  prod: OLD",
        "recorded as revoked at their issuer:",
        "Full inventory: byreis doctor --exposure bob",
        "docs/forward-secrecy-runbook.md",
    ] {
        assert!(err.contains(needle), "missing {needle:?}\n{err}");
    }
    // The JSON field carries the same warning.
    assert!(
        v["forward_secrecy_warnings"][0]
            .as_str()
            .unwrap()
            .contains("  prod: OLD"),
        "{v}"
    );
}

/// An admin squashes the project's history into one commit (same tree,
/// signed with their key) and re-pins the registry record to it by hand:
/// everything still verifies, and the rotation history says which
/// rotations' commits are gone (`commit-missing`) instead of hiding them.
#[test]
fn squashed_history_flags_the_missing_rotation_commit() {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    assert_ok(
        &w.rotate(&["--add", &format!("bob={}", bob.recipient)]),
        "add bob",
    );
    assert_ok(&w.rotate(&["--remove", "bob"]), "remove bob");
    let key = w.alice.home.join("signing_key");
    let git_signed = |dir: &std::path::Path, args: &[&str]| {
        let mut a = vec![
            "-c",
            "gpg.format=ssh",
            "-c",
            "user.name=alice",
            "-c",
            "user.email=alice@example.test",
        ];
        let k = format!("user.signingkey={}", key.display());
        a.extend(["-c", &k]);
        a.extend_from_slice(args);
        w.git_ok(dir, &a).trim().to_string()
    };

    let old = w.git_ok(&w.proj, &["rev-parse", "HEAD"]).trim().to_string();
    let tree = w
        .git_ok(&w.proj, &["rev-parse", "HEAD^{tree}"])
        .trim()
        .to_string();
    let squashed = git_signed(
        &w.proj,
        &["commit-tree", &tree, "-S", "-m", "squash history"],
    );
    w.git_ok(&w.proj, &["reset", "-q", "--soft", &squashed]);
    let record = w.reg.join("projects/demo/record.yaml");
    replace_in_file(&record, &old, &squashed);
    w.ssh_sign(&key, "record@byreis.dev", &record);
    git_signed(
        &w.reg,
        &["commit", "-q", "-S", "-a", "-m", "re-pin after squash"],
    );

    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "the squashed, re-pinned state verifies");
    w.assert_get("prod", "DB", PROD_DB);

    let o = w.alice_run(&["doctor", "--rotation-history", "--format", "json"]);
    let h = json(&o);
    let rows = h["rotations"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{h}");
    // The add's commit is gone; the removal's manifest is the squashed
    // commit's, so its row points there.
    assert_eq!(
        rows[0]["flags"],
        serde_json::json!(["commit-missing"]),
        "{h}"
    );
    assert_eq!(rows[0]["commit"], Value::Null, "{h}");
    assert_eq!(rows[1]["commit"], squashed.as_str(), "{h}");
    assert_eq!(rows[1]["commit_signature_ok"], true, "{h}");
    assert_eq!(h["history"], "complete", "{h}");
    // A finding fails the run, so CI can gate on it; the text form names it.
    assert_exit(&o, 3, "a flagged rotation history");
    let o = w.alice_run(&["doctor", "--rotation-history"]);
    assert_exit(&o, 3, "a flagged rotation history (text)");
    assert!(
        stdout(&o).contains("FLAGGED: commit-missing"),
        "{}",
        dump(&o)
    );
}
