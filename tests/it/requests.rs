//! Access requests on a plain git registry (docs/request-access-runbook.md):
//! request-access to a registry branch or a file; an admin absorbs only
//! after typing the fingerprint received over another channel; list and
//! show never display it; decisions are signed registry commits of their
//! own; every state refuses what it must.

use std::fs;
use std::time::Duration;

use crate::common::*;

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("no JSON ({e})\n{}", dump(o)))
}

/// `person` asks for access with `args`; returns the fingerprint printed.
fn request_access(w: &World, person: &Person, args: &[&str]) -> String {
    let mut a = vec!["request-access", "--name", person.name.as_str()];
    a.extend_from_slice(args);
    let o = w.run_as(person, &a);
    assert_ok(&o, "request-access");
    assert_stderr_contains(&o, "ANOTHER channel", "tells the contributor what to do");
    let fp = stdout(&o).trim().to_string();
    assert!(
        is_anchor_fingerprint(&fp),
        "fingerprint {fp:?}\n{}",
        dump(&o)
    );
    fp
}

fn absorb(w: &World, reference: &str, fp: &str) -> std::process::Output {
    w.alice_run(&absorb_args(reference, fp))
}

fn registry_verify(w: &World) -> std::process::Output {
    run(
        &w.alice.home,
        &w.reg,
        &[
            "registry", "verify", "--anchor", &w.anchor, "--format", "json",
        ],
        None,
    )
}

#[test]
fn a_request_branch_is_absorbed_only_with_the_typed_fingerprint() {
    let w = World::with_secrets();
    let dave = keygen(&w.root, "dave");
    let fp = request_access(
        &w,
        &dave,
        &[
            "--email",
            "dave@example.test",
            "--reason",
            "on-call rotation",
        ],
    );
    let branch = "byreis/request/dave";
    let dave_commit = w.git_ok(&w.reg, &["rev-parse", branch]);

    // list and show never display the key or its fingerprint.
    let o = w.alice_run(&["request", "list", "--format", "json"]);
    assert_ok(&o, "request list");
    let v = json(&o);
    assert_eq!(v["requests"][0]["ref"], branch, "{v}");
    assert_eq!(v["requests"][0]["state"], "requested", "{v}");
    let o2 = w.alice_run(&["request", "show", branch]);
    assert_ok(&o2, "request show");
    assert!(stdout(&o2).contains("on-call rotation"), "{}", dump(&o2));
    // issue 17: the member's name alone names their request branch.
    let short = w.alice_run(&["request", "show", "dave"]);
    assert_ok(&short, "request show dave");
    assert_eq!(stdout(&short), stdout(&o2), "the same request");
    for o in [&o, &o2] {
        let all = format!("{}{}", stdout(o), stderr(o));
        assert!(!all.contains(&fp), "fingerprint shown:\n{all}");
        assert!(!all.contains(&dave.recipient), "key shown:\n{all}");
    }

    // Wrong fingerprint, or none in a non-interactive run: nothing changes.
    let heads = w.heads();
    let other = keygen(&w.root, "mallory");
    let o = absorb(&w, branch, &request_access_fp_of(&other));
    assert_failed(&o, "absorb with a wrong fingerprint");
    assert_stderr_contains(&o, "does not match", "wrong fingerprint");
    assert!(!stderr(&o).contains(&fp), "the right fingerprint was shown");
    let o = w.alice_run(&["rotate", "--add", "--from-request", branch, "--yes"]);
    assert_failed(&o, "absorb without --confirm-fingerprint");
    assert_stderr_contains(&o, "--confirm-fingerprint", "names the flag");
    assert_eq!(w.heads(), heads, "nothing changed");

    // The right one, typed with other spacing and case: absorbed.
    let typed = fp.replace('-', " ").to_uppercase();
    let o = absorb(&w, branch, &typed);
    assert_ok(&o, "absorb");
    assert_stderr_contains(&o, "absorbed at counter", "decision recorded");
    let o = w.run_as(&dave, &["get", "prod", "DB"]);
    assert_ok(&o, "dave reads prod");
    assert_eq!(stdout(&o), format!("{PROD_DB}\n"));
    // The decision is an admin-signed registry commit of its own; dave's
    // commit was never merged.
    let o = w.verify_commit(&w.reg, "HEAD");
    assert_ok(&o, "decision commit verifies");
    let msg = w.git_ok(&w.reg, &["log", "-1", "--format=%s"]);
    assert!(msg.contains("dave") && msg.contains("absorbed"), "{msg}");
    let o = w.git(
        &w.reg,
        &["merge-base", "--is-ancestor", &dave_commit, "HEAD"],
    );
    assert_failed(&o, "dave's commit is not in the registry's history");
    let o = registry_verify(&w);
    assert_ok(&o, "registry verify with a decision");
    // The rotation's audit entry names the request.
    let audit = fs::read_to_string(w.proj.join(".byreis/audit.jsonl")).unwrap();
    let last = audit.lines().last().unwrap();
    assert!(last.contains("\"request\"") && last.contains(&fp), "{last}");

    // Absorbed: absorbing or rejecting again is refused.
    let heads = w.heads();
    let o = absorb(&w, branch, &fp);
    assert_failed(&o, "absorb twice");
    assert_stderr_contains(&o, "was absorbed", "absorb twice");
    let o = w.alice_run(&["request", "reject", branch]);
    assert_failed(&o, "reject an absorbed request");
    assert_stderr_contains(&o, "rotate --remove dave", "says how to take access away");
    assert_eq!(w.heads(), heads, "nothing changed");
    let o = w.alice_run(&["request", "list", "--format", "json"]);
    assert_eq!(json(&o)["requests"][0]["state"], "absorbed");
}

/// The fingerprint `request-access` would print for `p` (from whoami).
fn request_access_fp_of(p: &Person) -> String {
    whoami(&p.home, &[])["age_fingerprint"]
        .as_str()
        .expect("age_fingerprint")
        .to_string()
}

#[test]
fn file_requests_move_through_rejected_superseded_absorbed() {
    let w = World::with_secrets();
    let erin = keygen(&w.root, "erin");
    let first = w.root.join("erin-1.yaml");
    let fp = request_access(&w, &erin, &["--out", first.to_str().unwrap()]);
    assert!(
        !fs::read_to_string(&first).unwrap().contains(&fp),
        "the request file carries no fingerprint"
    );
    // --out never overwrites.
    let o = w.run_as(
        &erin,
        &[
            "request-access",
            "--name",
            "erin",
            "--out",
            first.to_str().unwrap(),
        ],
    );
    assert_failed(&o, "request-access over an existing file");
    let f = first.to_str().unwrap();
    let o = w.alice_run(&["request", "show", f]);
    assert!(stdout(&o).contains("state: requested"), "{}", dump(&o));

    std::thread::sleep(Duration::from_millis(1100));
    let o = w.alice_run(&["request", "reject", f, "--reason", "who is erin?"]);
    assert_ok(&o, "reject");
    let o = w.alice_run(&["request", "show", f]);
    assert!(stdout(&o).contains("state: rejected"), "{}", dump(&o));
    let heads = w.heads();
    let o = absorb(&w, f, &fp);
    assert_failed(&o, "absorb a rejected request");
    assert_stderr_contains(&o, "who is erin?", "gives the rejection reason");
    let o = w.alice_run(&["request", "reject", f]);
    assert_failed(&o, "reject twice");
    assert_eq!(w.heads(), heads, "nothing changed");

    // A new request from erin is requested again; absorbing it makes the
    // first one superseded.
    std::thread::sleep(Duration::from_millis(1100));
    let second = w.root.join("erin-2.yaml");
    request_access(
        &w,
        &erin,
        &[
            "--out",
            second.to_str().unwrap(),
            "--reason",
            "team lead asked",
        ],
    );
    let o = absorb(&w, second.to_str().unwrap(), &fp);
    assert_ok(&o, "absorb the second request");
    let o = w.alice_run(&["request", "show", f]);
    assert!(stdout(&o).contains("state: superseded"), "{}", dump(&o));
    let o = absorb(&w, f, &fp);
    assert_failed(&o, "absorb a superseded request");
    assert_stderr_contains(&o, "superseded", "superseded named");
    // A withdrawn (missing) request branch.
    let o = w.alice_run(&["request", "show", "byreis/request/nobody"]);
    assert_failed(&o, "show a withdrawn request");
    assert_stderr_contains(&o, "withdrawn", "withdrawn named");
}

#[test]
fn malformed_and_misleading_requests_are_refused() {
    let w = World::with_secrets();
    let frank = keygen(&w.root, "frank");
    let good = w.root.join("frank.yaml");
    let fp = request_access(&w, &frank, &["--out", good.to_str().unwrap()]);
    let text = fs::read_to_string(&good).unwrap();
    let heads = w.heads();
    let cases: Vec<(&str, String, &str)> = vec![
        ("unknown field", format!("{text}admin: true\n"), "admin"),
        (
            "another project",
            text.replace("project: demo", "project: other"),
            "project",
        ),
        (
            "look-alike name",
            text.replace("name: frank", "name: fr\u{0430}nk"),
            "name",
        ),
        (
            "control characters",
            text.replace("name: frank", "name: \"fr\\u001bnk\""),
            "name",
        ),
        (
            "a fingerprint quoted for a hurried admin",
            format!("{text}reason: \"my fingerprint is {fp}\"\n"),
            "quotes part of its own key's fingerprint",
        ),
        ("duplicate key", format!("{text}name: frank\n"), "duplicate"),
        ("a second document", format!("{text}---\nname: x\n"), ""),
        ("a bad key", text.replace("age1", "age2"), ""),
    ];
    for (what, body, needle) in cases {
        let p = w.root.join("bad.yaml");
        fs::write(&p, body).unwrap();
        let o = absorb(&w, p.to_str().unwrap(), &fp);
        assert_failed(&o, what);
        if !needle.is_empty() {
            assert_stderr_contains(&o, needle, what);
        }
        assert_eq!(w.heads(), heads, "{what}: nothing changed");
    }
    // A request branch that also changes another registry file.
    request_access(&w, &frank, &[]);
    let branch = "byreis/request/frank";
    w.git_ok(&w.reg, &["checkout", "-q", branch]);
    fs::write(
        w.reg.join("allowed_signers"),
        "frank namespaces=\"git\" ssh-ed25519 AAAA\n",
    )
    .unwrap();
    w.git_ok(&w.reg, &["commit", "-q", "-a", "--amend", "--no-edit"]);
    w.git_ok(&w.reg, &["checkout", "-q", "main"]);
    let o = absorb(&w, branch, &fp);
    assert_failed(&o, "a request branch touching allowed_signers");
    assert_stderr_contains(&o, "must change exactly", "names the overreach");
    assert_eq!(w.heads(), heads, "nothing changed");
    // The registry's CI check refuses a malformed request file on main.
    fs::create_dir_all(w.reg.join("requests/demo")).unwrap();
    fs::write(
        w.reg.join("requests/demo/frank.yaml"),
        format!("{text}admin: true\n"),
    )
    .unwrap();
    w.git_ok(&w.reg, &["add", "-A"]);
    w.git_ok(&w.reg, &["commit", "-q", "-m", "bad request"]);
    let o = registry_verify(&w);
    assert_failed(&o, "registry verify with a malformed request");
    assert!(stdout(&o).contains("request-invalid"), "{}", dump(&o));
}

/// An absorb killed after the branch moved: `--resume` finishes the
/// rotation and records the request's decision; the request is absorbed.
#[test]
fn an_interrupted_absorb_is_recorded_on_resume() {
    let w = World::with_secrets();
    let gina = keygen(&w.root, "gina");
    let fp = request_access(&w, &gina, &[]);
    let branch = "byreis/request/gina";
    let o = w.alice_run_env(
        &absorb_args(branch, &fp),
        &[("BYREIS_TEST_KILL_AT", "branch")],
    );
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&o.status),
        Some(9),
        "expected SIGKILL\n{}",
        dump(&o)
    );
    let o = w.alice_run(&["request", "show", branch]);
    assert!(stdout(&o).contains("state: requested"), "{}", dump(&o));
    let o = w.alice_run(&["rotate", "--resume", "--yes"]);
    assert_ok(&o, "resume");
    assert_stderr_contains(&o, "was absorbed at counter", "decision recorded on resume");
    let o = w.alice_run(&["request", "show", branch]);
    assert!(stdout(&o).contains("state: absorbed"), "{}", dump(&o));
    let o = w.run_as(&gina, &["get", "prod", "DB"]);
    assert_ok(&o, "gina reads prod");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after resume");
}

/// Absorbing a request, killed at every step boundary of its rotation:
/// nothing is lost, `doctor` names the state, and after `--resume` the
/// request is absorbed (decision recorded, member reads) or after
/// `--abort` it is still requested and can be absorbed again.
#[test]
fn absorb_killed_at_every_step_then_resume_or_abort() {
    let w = World::with_secrets();
    let plan = [
        ("prepared", None),
        ("commit-object", None),
        ("begun", Some("resume")),
        ("branch", Some("abort")),
        ("project-pushed", Some("resume")),
        ("recorded", None),
    ];
    assert_covers_every_step(&plan.iter().map(|p| p.0).collect::<Vec<_>>());
    for (i, (step, recover)) in plan.into_iter().enumerate() {
        let what = format!("absorb killed at {step}");
        let name = format!("member{i}");
        let p = keygen(&w.root, &name);
        let fp = request_access(&w, &p, &[]);
        let branch = format!("byreis/request/{name}");
        let o = w.alice_run_env(&absorb_args(&branch, &fp), &[("BYREIS_TEST_KILL_AT", step)]);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&o.status),
            Some(9),
            "{what}: expected SIGKILL\n{}",
            dump(&o)
        );
        w.assert_get("prod", "DB", PROD_DB);
        w.assert_get("staging", "DB", STAGING_DB);
        let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
        let expect_state = |text: &str| {
            let shown = stdout(&w.alice_run(&["request", "show", &branch]));
            assert!(shown.contains(text), "{what}: {shown}");
        };
        // Nothing landed: the request is still requested, grants nothing,
        // and absorbing it again works.
        let absorb_again = || {
            expect_state("state: requested");
            assert_failed(&w.run_as(&p, &["get", "prod", "DB"]), &what);
            assert_ok(&absorb(&w, &branch, &fp), &format!("{what}: absorb again"));
            expect_state("state: absorbed");
        };
        match recover {
            None if step == "recorded" => {
                // The rotation landed; the decision is recorded by the next
                // `rotate --resume` (nothing else is pending).
                assert_doctor_ok(&o, &v, &what);
                expect_state("run `byreis rotate --resume`");
                let o = w.alice_run(&["rotate", "--resume", "--yes"]);
                assert_ok(&o, &format!("{what}: resume records the decision"));
                expect_state("state: absorbed");
                assert_ok(&w.run_as(&p, &["get", "prod", "DB"]), &what);
            }
            None => {
                assert_doctor_ok(&o, &v, &what);
                absorb_again();
            }
            Some("resume") => {
                assert_doctor_pending(&o, &v, &what);
                expect_state("state: requested");
                let o = w.alice_run(&["rotate", "--resume", "--yes"]);
                assert_ok(&o, &format!("{what}: resume"));
                expect_state("state: absorbed");
                assert_ok(&w.run_as(&p, &["get", "prod", "DB"]), &what);
            }
            Some(_) => {
                assert_doctor_pending(&o, &v, &what);
                assert_ok(
                    &w.alice_run(&["rotate", "--abort"]),
                    &format!("{what}: abort"),
                );
                absorb_again();
            }
        }
        let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
        assert_doctor_ok(&o, &v, &format!("{what}, recovered"));
    }
}

/// [`in_pty`] with no extra environment.
fn in_terminal(
    w: &World,
    home: &std::path::Path,
    args: &[&str],
    steps: serde_json::Value,
) -> (i32, String) {
    in_pty(w, home, args, steps, &[])
}

/// The admin's confirmation at a real terminal: the prompt asks for the
/// fingerprint before anything derived from the key is shown; a wrong one
/// refuses with nothing changed; the right one absorbs; a request branch
/// that moves while the admin confirms is refused as stale.
#[test]
fn the_fingerprint_prompt_at_a_real_terminal() {
    let w = World::with_secrets();
    let erin = keygen(&w.root, "erin");
    let fp = request_access(&w, &erin, &[]);
    let branch = "byreis/request/erin";
    let args = ["rotate", "--add", "--from-request", branch];
    let prompt = "Type the fingerprint erin sent you";

    // Wrong fingerprint: refused, nothing changed.
    let heads = w.heads();
    let (code, screen) = in_terminal(
        &w,
        &w.alice.home,
        &args,
        serde_json::json!([{"expect": prompt, "send": "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh\r"}]),
    );
    assert_ne!(code, 0, "{screen}");
    let before_prompt = screen.split("@@STEP 0@@").next().unwrap();
    assert!(
        !before_prompt.contains(&fp),
        "fingerprint shown before the prompt:\n{screen}"
    );
    assert!(
        !before_prompt.contains(&erin.recipient),
        "key shown:\n{screen}"
    );
    assert!(screen.contains("does not match"), "{screen}");
    assert_eq!(w.heads(), heads, "a wrong fingerprint changed something");

    // The right one, but the request branch moves before the admin says
    // yes: stale, nothing changed.
    let original = w.git_ok(&w.reg, &["rev-parse", branch]).trim().to_string();
    // The requester pushes a new commit (same file) to the branch.
    let mv = format!(
        "cd '{}' && c=$(git commit-tree '{branch}^{{tree}}' -p '{branch}' -m moved) && git branch -f '{branch}' \"$c\"",
        w.reg.display()
    );
    let (code, screen) = in_terminal(
        &w,
        &w.alice.home,
        &args,
        serde_json::json!([
            {"expect": prompt, "send": format!("{fp}\r")},
            {"expect": "Rotate?", "send": "y", "run": mv},
        ]),
    );
    assert_ne!(code, 0, "{screen}");
    assert!(screen.contains("stale"), "{screen}");
    assert_eq!(w.heads(), heads, "a stale request changed something");
    w.git_ok(&w.reg, &["branch", "-f", branch, &original]);

    // The right fingerprint, typed: absorbed.
    let (code, screen) = in_terminal(
        &w,
        &w.alice.home,
        &args,
        serde_json::json!([
            {"expect": prompt, "send": format!("{fp}\r")},
            {"expect": "Rotate?", "send": "y"},
        ]),
    );
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("fingerprint confirmed for erin"),
        "{screen}"
    );
    let o = w.alice_run(&["request", "show", branch]);
    assert!(stdout(&o).contains("state: absorbed"), "{}", dump(&o));
    assert_ok(&w.run_as(&erin, &["get", "prod", "DB"]), "erin reads prod");
}

/// Absorbing requests, killed at seeded random moments: afterwards each is
/// absorbed after `--resume` (pending, or landed with its decision not yet
/// recorded) or absorbed again (nothing landed); nothing else changes.
#[test]
fn absorb_killed_at_seeded_random_moments() {
    let w = World::with_secrets();
    let mut rng = Lcg(0xab5_0b5eed);
    let first = keygen(&w.root, "first");
    let fp = request_access(&w, &first, &[]);
    let run_ms = time_ms(|| assert_ok(&absorb(&w, "byreis/request/first", &fp), "measure"));
    let mut outcomes = std::collections::BTreeMap::new();
    for n in 0..kills() {
        let name = format!("rand{n}");
        let p = keygen(&w.root, &name);
        let fp = request_access(&w, &p, &[]);
        let branch = format!("byreis/request/{name}");
        let delay = std::time::Duration::from_millis(rng.below(run_ms + 5));
        run_and_kill(
            byreis_cmd(&w.alice.home, &w.proj).args(absorb_args(&branch, &fp)),
            None,
            delay,
        );
        let what = format!("absorb killed after {delay:?} (run {n})");
        w.assert_get("prod", "DB", PROD_DB);
        let show = |w: &World| stdout(&w.alice_run(&["request", "show", &branch]));
        let after = recover_after_kill(&w, &what, &mut outcomes, || {});
        let outcome = if let AfterKill::Settled(o, v) = after {
            assert_doctor_ok(&o, &v, &what);
            if show(&w).contains("run `byreis rotate --resume`") {
                assert_ok(&w.rotate(&["--resume"]), &format!("{what}: record"));
                "landed, decision recorded on resume"
            } else if show(&w).contains("state: requested") {
                assert_ok(&absorb(&w, &branch, &fp), &format!("{what}: again"));
                "nothing landed, absorbed again"
            } else {
                "finished before the kill"
            }
        } else {
            "pending, resumed"
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
        assert!(show(&w).contains("state: absorbed"), "{what}: {}", show(&w));
        assert_ok(&w.run_as(&p, &["get", "prod", "DB"]), &what);
        let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
        assert_doctor_ok(&o, &v, &format!("{what}, recovered"));
    }
    eprintln!("absorb random kills: {outcomes:?}");
}

/// The row of `request list --format json` for `reference`.
fn list_row(w: &World, reference: &str) -> serde_json::Value {
    let o = w.alice_run(&["request", "list", "--format", "json"]);
    assert_ok(&o, "request list --format json");
    json(&o)["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["ref"] == reference)
        .unwrap_or_else(|| panic!("no row for {reference}\n{}", dump(&o)))
        .clone()
}

/// The flag names of a list row.
fn flag_names(row: &serde_json::Value) -> Vec<String> {
    row["flags"]
        .as_array()
        .unwrap_or_else(|| panic!("no flags array in {row}"))
        .iter()
        .map(|f| f["flag"].as_str().expect("flag").to_string())
        .collect()
}

/// A request under a member's name with another key is flagged in list
/// (text and JSON), show and the absorb, before the fingerprint prompt,
/// with the member's key from the manifest, never the request's; a request
/// carrying a member's key under another name too; a normal request is not.
#[test]
fn a_request_under_a_members_name_with_another_key_is_flagged() {
    let w = World::with_secrets();
    let dave = keygen(&w.root, "dave");
    let add = format!("dave={}", dave.recipient);
    assert_ok(&w.rotate(&["--add", &add]), "add dave");
    let dave_fp = request_access_fp_of(&dave);

    let mallory = keygen(&w.root, "mallory");
    let o = w.run_as(&mallory, &["request-access", "--name", "dave"]);
    assert_ok(&o, "mallory asks as dave");
    let mallory_fp = stdout(&o).trim().to_string();
    let o = w.run_as(&dave, &["request-access", "--name", "dave-laptop"]);
    assert_ok(&o, "dave's key under another name");
    let erin = keygen(&w.root, "erin");
    request_access(&w, &erin, &[]);

    let row = list_row(&w, "byreis/request/dave");
    assert_eq!(flag_names(&row), ["member-key-differs"], "{row}");
    let flag = &row["flags"][0];
    assert_eq!(flag["with"], "dave", "{row}");
    assert_eq!(flag["their_fingerprint"], dave_fp.as_str(), "{row}");
    assert_eq!(flag["their_recipient"], dave.recipient.as_str(), "{row}");
    assert!(
        flag["message"].as_str().unwrap().contains("DIFFERENT key"),
        "{row}"
    );
    assert_eq!(row["state"], "requested", "existing keys kept: {row}");
    let row = list_row(&w, "byreis/request/dave-laptop");
    assert_eq!(flag_names(&row), ["key-of-member"], "{row}");
    assert_eq!(row["flags"][0]["with"], "dave", "{row}");
    let row = list_row(&w, "byreis/request/erin");
    assert_eq!(
        flag_names(&row),
        Vec::<String>::new(),
        "a normal request: {row}"
    );
    // dave asking again with his own key adds nobody.
    let again = w.root.join("dave-again.yaml");
    let o = w.run_as(
        &dave,
        &[
            "request-access",
            "--name",
            "dave",
            "--out",
            again.to_str().unwrap(),
        ],
    );
    assert_ok(&o, "dave asks again");
    let o = w.alice_run(&["request", "show", again.to_str().unwrap()]);
    assert!(
        stdout(&o).contains("warning: dave is already a member with this same key"),
        "{}",
        dump(&o)
    );
    assert!(!stdout(&o).contains(&dave_fp), "{}", dump(&o));

    let o = w.alice_run(&["request", "list"]);
    assert_ok(&o, "request list");
    let out = stdout(&o);
    let line = |r: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{r}\t")))
            .unwrap_or_else(|| panic!("no line for {r}\n{}", dump(&o)))
            .to_string()
    };
    assert!(
        line("byreis/request/dave").ends_with("\tmember-key-differs"),
        "{}",
        dump(&o)
    );
    assert!(line("byreis/request/erin").ends_with("\t-"), "{}", dump(&o));
    assert_stderr_contains(
        &o,
        &format!(
            "warning: byreis/request/dave: dave is already a member with key {} (fingerprint {dave_fp}); this request carries a DIFFERENT key",
            dave.recipient
        ),
        "list warns",
    );
    assert!(!stderr(&o).contains("request/erin:"), "{}", dump(&o));

    let o = w.alice_run(&["request", "show", "byreis/request/dave"]);
    assert_ok(&o, "request show");
    assert!(
        stdout(&o).contains("warning: dave is already a member with key")
            && stdout(&o).contains("a key replacement, not a new member"),
        "{}",
        dump(&o)
    );
    let o2 = w.alice_run(&["request", "show", "byreis/request/erin"]);
    assert_ok(&o2, "request show erin");
    assert!(!stdout(&o2).contains("warning"), "{}", dump(&o2));
    for o in [&o, &o2] {
        let all = format!("{}{}", stdout(o), stderr(o));
        assert!(
            !all.contains(&mallory_fp),
            "request fingerprint shown:\n{all}"
        );
        assert!(
            !all.contains(&mallory.recipient),
            "request key shown:\n{all}"
        );
    }

    // The absorb warns before the fingerprint is checked; absorb
    // semantics are unchanged (an existing member's key is not replaced).
    let heads = w.heads();
    let o = w.alice_run(&absorb_args("byreis/request/dave", &mallory_fp));
    assert_failed(&o, "absorb over an existing member");
    let err = stderr(&o);
    let warned = err
        .find("warning: dave is already a member")
        .unwrap_or_else(|| panic!("absorb did not warn\n{}", dump(&o)));
    let confirmed = err.find("fingerprint confirmed").expect("confirmed");
    assert!(
        warned < confirmed,
        "the warning came after the fingerprint\n{err}"
    );
    assert_stderr_contains(&o, "the request carries another key", "refused as before");
    assert_stderr_contains(
        &o,
        "--replace",
        "the refusal names the way to replace a key",
    );
    assert_eq!(w.heads(), heads, "nothing changed");
}

/// A request under an admin's name (newest verified roster) is flagged,
/// with the admin's age key when the request's differs.
#[test]
fn a_request_under_an_admins_name_is_flagged() {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    add_admin(&w, &bob);
    let bob_fp = request_access_fp_of(&bob);
    let mallory = keygen(&w.root, "mallory");
    let o = w.run_as(&mallory, &["request-access", "--name", "bob"]);
    assert_ok(&o, "mallory asks as bob");
    let mallory_fp = stdout(&o).trim().to_string();

    let row = list_row(&w, "byreis/request/bob");
    assert!(
        flag_names(&row).contains(&"admin-name".to_string()),
        "{row}"
    );
    let flag = row["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flag"] == "admin-name")
        .unwrap();
    assert_eq!(flag["with"], "bob", "{row}");
    assert_eq!(flag["their_fingerprint"], bob_fp.as_str(), "{row}");
    let o = w.alice_run(&["request", "show", "byreis/request/bob"]);
    assert_ok(&o, "show");
    assert!(
        stdout(&o).contains("warning: bob is the name of an admin in roster version 2")
            && stdout(&o).contains("DIFFERENT key"),
        "{}",
        dump(&o)
    );
    assert!(!stdout(&o).contains(&mallory_fp), "{}", dump(&o));
    let o = w.alice_run(&["request", "list"]);
    assert_stderr_contains(
        &o,
        "warning: byreis/request/bob: bob is the name of an admin",
        "list",
    );

    // bob's own key under his name: flagged, without a key shown.
    let file = w.root.join("bob.yaml");
    let o = w.run_as(
        &bob,
        &[
            "request-access",
            "--name",
            "bob",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert_ok(&o, "bob asks");
    let o = w.alice_run(&["request", "show", file.to_str().unwrap()]);
    assert_ok(&o, "show bob's file");
    assert!(
        stdout(&o).contains("warning: bob is the name of an admin")
            && stdout(&o).contains("carries that admin's own age key"),
        "{}",
        dump(&o)
    );
    assert!(!stdout(&o).contains(&bob_fp), "{}", dump(&o));

    // bob's key under another name.
    let file2 = w.root.join("bob-2.yaml");
    let o = w.run_as(
        &bob,
        &[
            "request-access",
            "--name",
            "bob-2",
            "--out",
            file2.to_str().unwrap(),
        ],
    );
    assert_ok(&o, "bob's key as bob-2");
    let o = w.alice_run(&["request", "show", file2.to_str().unwrap()]);
    assert!(
        stdout(&o).contains(
            "warning: this request under the name bob-2 carries the age key of admin bob"
        ),
        "{}",
        dump(&o)
    );

    // alice is an admin and a member: both.
    let o = w.run_as(&mallory, &["request-access", "--name", "alice"]);
    assert_ok(&o, "mallory asks as alice");
    let row = list_row(&w, "byreis/request/alice");
    assert_eq!(
        flag_names(&row),
        ["member-key-differs", "admin-name"],
        "{row}"
    );
}
