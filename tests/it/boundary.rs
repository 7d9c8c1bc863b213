//! The trust boundary (issue 13): someone who can push to the project
//! repository but holds no key gains nothing. Each test is one attack that
//! worked before ADR 0015, run with real git repositories and the real
//! binary.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

fn commit_all(w: &World, dir: &Path, msg: &str) -> String {
    w.git_ok(dir, &["add", "-A"]);
    w.git_ok(dir, &["commit", "-q", "--no-verify", "-m", msg]);
    w.git_ok(dir, &["rev-parse", "HEAD"])
}

/// A fresh CI machine: an empty BYREIS_HOME with only alice's age identity
/// given by file, and a fresh clone of the project.
fn fresh_ci(w: &World, name: &str) -> (PathBuf, PathBuf) {
    let home = w.root.join(format!("{name}-home"));
    fs::create_dir(&home).unwrap();
    let clone = w.root.join(format!("{name}-clone"));
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            w.proj.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    (home, clone)
}

/// The attacker's set-up of attack 1: a bare copy of the registry frozen
/// before alice changes `prod DB`, committed into the project at `.ci/reg.git`
/// with the project's byreis files of that time and `registry: .ci/reg.git`.
/// Returns the old value and the new one.
fn plant_frozen_registry(w: &World) -> (&'static str, &'static str) {
    let frozen = w.proj.join(".ci").join("reg.git");
    freeze_registry_and_point_at(w, &frozen, ".ci/reg.git");
    (PROD_DB, "rotated-after-the-leak")
}

/// A bare copy of the registry at `frozen`, taken before alice changes
/// `prod DB`; then, as the attacker (no key), the project's byreis files of
/// that time put back and `registry: HINT` committed.
fn freeze_registry_and_point_at(w: &World, frozen: &Path, hint: &str) {
    fs::create_dir_all(frozen.parent().unwrap()).unwrap();
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            "--bare",
            w.reg.to_str().unwrap(),
            frozen.to_str().unwrap(),
        ],
    );
    let old_commit = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);
    w.set("prod", "DB", "rotated-after-the-leak");
    w.git_ok(
        &w.proj,
        &["checkout", &old_commit, "--", ".byreis", "secrets"],
    );
    replace_in_file(
        &w.proj.join("byreis.yaml"),
        "registry: ../reg\n",
        &format!("registry: {hint}\n"),
    );
    commit_all(w, &w.proj, "ci: vendored registry");
}

#[test]
fn a_registry_copy_inside_the_project_is_refused_on_a_fresh_ci_machine() {
    let w = World::with_secrets();
    let (old, new) = plant_frozen_registry(&w);
    let (home, clone) = fresh_ci(&w, "ci");
    let identity = identity_file(&w.alice);
    let id = identity.to_str().unwrap();
    let env = [
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_IDENTITY_FILE", id),
        ("CI", "true"),
    ];
    assert_reads_refused_in(
        &home,
        &clone,
        &["registry-inside-project"],
        &[old, new],
        "frozen copy in the project, BYREIS_ANCHOR only",
        &env,
    );
    let o = run_env(&home, &clone, &["verify"], None, &env);
    assert_refused(&o, &["registry-inside-project"], "verify");

    // With the registry's location given by the user, the hint disagrees.
    let reg = w.reg.to_str().unwrap();
    let env = [
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_REGISTRY", reg),
        ("BYREIS_IDENTITY_FILE", id),
        ("CI", "true"),
    ];
    assert_reads_refused_in(
        &home,
        &clone,
        &["registry-mismatch"],
        &[old, new],
        "frozen copy in the project, BYREIS_REGISTRY set",
        &env,
    );

    // `trust` refuses to pin it, and runs no git in it.
    let o = run_env(
        &home,
        &clone,
        &["trust", "--anchor", &w.anchor],
        None,
        &[("BYREIS_IDENTITY_FILE", id)],
    );
    assert_refused(&o, &["registry-inside-project"], "trust --anchor");
}

#[test]
fn a_frozen_copy_outside_the_project_found_through_the_hint_is_unconfirmed() {
    // The same copy hosted elsewhere (as an attacker's URL would be): the
    // signed roster says where the registry lives, and it is not there.
    let w = World::with_secrets();
    freeze_registry_and_point_at(&w, &w.root.join("elsewhere.git"), "../elsewhere.git");
    let (home, clone) = fresh_ci(&w, "ci");
    let identity = identity_file(&w.alice);
    let env = [
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_IDENTITY_FILE", identity.to_str().unwrap()),
        ("CI", "true"),
    ];
    assert_reads_refused_in(
        &home,
        &clone,
        &["registry-unconfirmed"],
        &[PROD_DB, "rotated-after-the-leak"],
        "frozen copy outside the project",
        &env,
    );
}

#[test]
fn the_hint_is_accepted_where_the_roster_states_the_registry_lives() {
    // The honest case: BYREIS_ANCHOR alone, byreis.yaml's hint resolving to
    // the location `registry init` recorded in the signed roster.
    let w = World::with_secrets();
    let (home, clone) = fresh_ci(&w, "ci");
    let identity = identity_file(&w.alice);
    let env = [
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_IDENTITY_FILE", identity.to_str().unwrap()),
        ("CI", "true"),
    ];
    let o = run_env(&home, &clone, &["get", "prod", "DB"], None, &env);
    assert_ok(&o, "get with the roster-confirmed hint");
    assert_eq!(stdout(&o).trim_end(), PROD_DB);
    // And `trust --registry` pins a location the user gives.
    let o = run_env(
        &home,
        &clone,
        &[
            "trust",
            "--registry",
            w.reg.to_str().unwrap(),
            "--anchor",
            &w.anchor,
        ],
        None,
        &[("BYREIS_IDENTITY_FILE", identity.to_str().unwrap())],
    );
    assert_ok(&o, "trust --registry --anchor");
    let o = run_env(
        &home,
        &clone,
        &["get", "prod", "DB"],
        None,
        &[("BYREIS_IDENTITY_FILE", identity.to_str().unwrap())],
    );
    assert_ok(&o, "get after trust --registry");
}

/// Plants git configuration that runs a program (writing `marker`) in the
/// repository at `dir`, for every way git could be told to.
fn plant_git_config(w: &World, dir: &Path, marker: &Path) {
    let script = w.root.join("planted.sh");
    write_script(
        &script,
        &format!(
            "#!/bin/sh\necho \"$0 $*\" >> '{}'\nexec \"$@\"\n",
            marker.display()
        ),
    );
    let hooks = w.root.join("planted-hooks");
    fs::create_dir_all(&hooks).unwrap();
    for hook in [
        "post-merge",
        "pre-push",
        "reference-transaction",
        "post-checkout",
    ] {
        write_script(
            &hooks.join(hook),
            &format!("#!/bin/sh\necho hook-{hook} >> '{}'\n", marker.display()),
        );
    }
    let s = script.display().to_string();
    for (k, v) in [
        ("core.fsmonitor", s.clone()),
        ("core.hooksPath", hooks.display().to_string()),
        ("core.sshCommand", format!("{s} ssh")),
        ("remote.origin.uploadpack", format!("{s} git-upload-pack")),
        ("remote.origin.receivepack", format!("{s} git-receive-pack")),
        ("credential.helper", format!("!{s} true")),
        ("core.askPass", s.clone()),
    ] {
        w.git_ok(dir, &["config", k, &v]);
    }
}

/// Gives alice's registry copy an origin, a bare `reg.git` (as a team's
/// shared registry), so pulls and pushes run git's transports.
fn share_registry(w: &World) {
    let url = w.bare_registry_url();
    w.git_ok(&w.reg, &["remote", "add", "origin", &url]);
    w.git_ok(&w.reg, &["fetch", "-q", "origin"]);
    w.git_ok(&w.reg, &["branch", "-q", "--set-upstream-to=origin/main"]);
}

#[test]
fn planted_git_config_in_a_registry_copy_runs_nothing() {
    let w = World::with_secrets();
    share_registry(&w);
    let marker = w.root.join("planted-ran");
    plant_git_config(&w, &w.reg, &marker);

    let o = w.alice_run(&["registry", "pull"]);
    assert_ok(&o, "registry pull");
    w.set("prod", "DB", "after-the-plant");
    assert!(
        !marker.exists(),
        "git ran planted configuration: {}",
        fs::read_to_string(&marker).unwrap_or_default()
    );
    // The write reached the shared registry (the push ran, plainly).
    let shared = w.git_ok(&w.root.join("reg.git"), &["rev-parse", "main"]);
    assert_eq!(shared, w.git_ok(&w.reg, &["rev-parse", "HEAD"]));
}

#[test]
fn tokens_and_byreis_variables_never_reach_git() {
    // A `git` first on PATH that records its environment, then runs the real one.
    let w = World::with_secrets();
    share_registry(&w);
    let real =
        String::from_utf8(tool("sh", &w.root, &w.root, &["-c", "command -v git"], None).stdout)
            .unwrap();
    let bin = w.root.join("spy-bin");
    fs::create_dir(&bin).unwrap();
    let log = w.root.join("git-env.log");
    write_script(
        &bin.join("git"),
        &format!(
            "#!/bin/sh\nenv >> '{}'\necho --- >> '{}'\nexec {} \"$@\"\n",
            log.display(),
            log.display(),
            real.trim()
        ),
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let o = w.alice_run_env(
        &["registry", "pull"],
        &[
            ("PATH", path.as_str()),
            ("GITHUB_TOKEN", "ghp_token_value_1"),
            ("GH_TOKEN", "gh_token_value_2"),
            ("BYREIS_TEST_SECRET", "byreis_value_3"),
            ("GIT_DIR", "/nonexistent"),
        ],
    );
    assert_ok(&o, "registry pull with tokens in the environment");
    let seen = fs::read_to_string(&log).expect("the spy git ran");
    for leaked in [
        "ghp_token_value_1",
        "gh_token_value_2",
        "byreis_value_3",
        "GIT_DIR=/nonexistent",
    ] {
        assert!(
            !seen.contains(leaked),
            "git's environment had {leaked}:\n{seen}"
        );
    }
    assert!(seen.contains("GIT_CONFIG_NOSYSTEM=1"), "{seen}");
    assert!(seen.contains("GIT_CONFIG_GLOBAL=/dev/null"), "{seen}");
}

#[test]
fn a_host_pinned_by_env_remembers_and_refuses_a_rollback() {
    let w = World::with_secrets();
    let reg_before = w.git_ok(&w.reg, &["rev-parse", "HEAD"]);
    let proj_before = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);
    w.set("prod", "DB", "newer-value");
    let home = w.root.join("ci-home");
    fs::create_dir(&home).unwrap();
    let identity = identity_file(&w.alice);
    let env = [
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_IDENTITY_FILE", identity.to_str().unwrap()),
        ("CI", "true"),
    ];
    let o = run_env(&home, &w.proj, &["get", "prod", "DB"], None, &env);
    assert_ok(&o, "get at counter 5");
    assert_eq!(stdout(&o).trim_end(), "newer-value");
    // Registry and project rolled back together.
    w.git_ok(&w.reg, &["reset", "-q", "--hard", &reg_before]);
    w.git_ok(&w.proj, &["reset", "-q", "--hard", &proj_before]);
    assert_reads_refused_in(
        &home,
        &w.proj,
        &["record-rollback"],
        &[PROD_DB],
        "rolled back after an env-pinned read",
        &env,
    );
    // A fresh machine cannot know; that limit is stated in SECURITY.md.
    let fresh = w.root.join("fresh-home");
    fs::create_dir(&fresh).unwrap();
    let o = run_env(&fresh, &w.proj, &["get", "prod", "DB"], None, &env);
    assert_ok(&o, "a fresh machine has no memory");
}

#[test]
fn a_later_anchor_refuses_a_registry_frozen_before_it() {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    assert_ok(&w.alice_run(&admin_add_args(&bob)), "admin add bob");
    let with_bob = w.git_ok(&w.reg, &["rev-parse", "HEAD"]);
    let o = w.alice_run(&["admin", "remove", "bob"]);
    assert_ok(&o, "admin remove bob");
    let new_anchor = stdout(&o).trim().to_string();
    assert!(is_anchor_fingerprint(&new_anchor), "{}", dump(&o));
    assert_ne!(new_anchor, w.anchor);
    assert_stderr_contains(&o, "BYREIS_ANCHOR", "the new anchor is offered for CI");

    let identity = identity_file(&w.alice);
    let id = identity.to_str().unwrap();
    let (home, clone) = fresh_ci(&w, "ci");
    let env = [
        ("BYREIS_ANCHOR", new_anchor.as_str()),
        ("BYREIS_IDENTITY_FILE", id),
        ("CI", "true"),
    ];
    let o = run_env(&home, &clone, &["get", "prod", "DB"], None, &env);
    assert_ok(&o, "get pinned to the later anchor");

    // A copy of the registry from when bob was still an admin.
    let old = w.root.join("reg-with-bob");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            w.reg.to_str().unwrap(),
            old.to_str().unwrap(),
        ],
    );
    w.git_ok(&old, &["reset", "-q", "--hard", &with_bob]);
    let home2 = w.root.join("ci2-home");
    fs::create_dir(&home2).unwrap();
    let old_s = old.to_str().unwrap();
    let env = [
        ("BYREIS_ANCHOR", new_anchor.as_str()),
        ("BYREIS_REGISTRY", old_s),
        ("BYREIS_IDENTITY_FILE", id),
        ("CI", "true"),
    ];
    let o = run_env(&home2, &clone, &["get", "prod", "DB"], None, &env);
    assert_refused(
        &o,
        &["roster-anchor-mismatch"],
        "registry frozen before the anchor",
    );
}

#[test]
fn a_write_from_another_branch_is_refused_before_anything_is_signed() {
    let w = World::with_secrets();
    let (before_proj, before_reg) = w.heads();
    w.git_ok(&w.proj, &["switch", "-q", "-c", "feature"]);
    let o = w.alice_run_stdin(&["set", "prod", "DB"], "on-a-feature-branch\n");
    assert_refused(&o, &["wrong-branch"], "set on a feature branch");
    assert_stderr_contains(&o, "git switch main", "the fix is named");
    assert_eq!(w.heads(), (before_proj, before_reg), "nothing moved");
    let o = w.alice_run(&["unset", "prod", "API"]);
    assert_refused(&o, &["wrong-branch"], "unset on a feature branch");
    // Back on main, writes work and the manifest names the branch.
    w.git_ok(&w.proj, &["switch", "-q", "main"]);
    w.set("prod", "DB", "on-main");
    let m = fs::read_to_string(w.manifest()).unwrap();
    assert!(m.contains("branch: main\n"), "{m}");
}

#[test]
fn a_pending_change_is_not_resumed_or_aborted_on_another_branch() {
    use std::os::unix::process::ExitStatusExt as _;
    let w = World::with_secrets();
    let o = run_env(
        &w.alice.home,
        &w.proj,
        &["set", "prod", "DB"],
        Some("begun-then-killed\n"),
        &[("BYREIS_TEST_KILL_AT", "begun")],
    );
    assert_eq!(
        o.status.signal(),
        Some(9),
        "set killed at begun\n{}",
        dump(&o)
    );
    let pending = w.pending_commit().expect("a pending change");
    // A feature branch at the same commit as main: resuming there would
    // move it, and pin a commit main never gets.
    w.git_ok(&w.proj, &["switch", "-q", "-c", "feature"]);
    let before = w.heads();
    for args in [
        ["rotate", "--resume", "--yes"],
        ["rotate", "--abort", "--yes"],
    ] {
        let o = w.alice_run(&args);
        assert_refused(&o, &["wrong-branch"], &args.join(" "));
        assert_eq!(w.heads(), before, "{}: nothing moved", args.join(" "));
    }
    assert_eq!(
        w.git_ok(&w.proj, &["rev-parse", "feature"]),
        w.git_ok(&w.proj, &["rev-parse", "main"]),
        "the feature branch did not get the pending commit"
    );
    w.git_ok(&w.proj, &["switch", "-q", "main"]);
    let o = w.alice_run(&["rotate", "--resume", "--yes"]);
    assert_ok(&o, "resume on main");
    assert_eq!(w.git_ok(&w.proj, &["rev-parse", "main"]), pending);
    w.assert_get("prod", "DB", "begun-then-killed");
}

#[test]
fn another_projects_signed_state_is_not_served_as_this_ones() {
    // A writer of `demo` (no key) who can read another project of the same
    // registry copies that project's current signed files into demo and
    // renames the project in byreis.yaml (found by an attack pass).
    let w = World::with_secrets();
    let other = w.init_other_project();
    for i in 0..6 {
        let o = run(
            &w.alice.home,
            &other,
            &["set", "prod", "DB"],
            Some(&format!("OTHER-prod-db-{i}\n")),
        );
        assert_ok(&o, "set in the other project");
    }
    let good = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);
    for f in ["manifest.yaml", "manifest.yaml.sig", "audit.jsonl"] {
        fs::copy(
            other.join(".byreis").join(f),
            w.proj.join(".byreis").join(f),
        )
        .unwrap();
    }
    for e in fs::read_dir(w.proj.join("secrets")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    for e in fs::read_dir(other.join("secrets")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), w.proj.join("secrets").join(e.file_name())).unwrap();
    }
    replace_in_file(
        &w.proj.join("byreis.yaml"),
        "project: demo",
        "project: other",
    );
    commit_all(&w, &w.proj, "chore: refactor");
    let leaked = ["OTHER-prod-db"];

    // A fresh CI machine: the registry holds two projects and only
    // byreis.yaml says which one this is.
    let (home, clone) = fresh_ci(&w, "ci");
    let id = identity_file(&w.alice);
    let id = id.to_str().unwrap();
    let reg = w.reg.to_str().unwrap();
    let mut env = vec![
        ("CI", "true"),
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_REGISTRY", reg),
        ("BYREIS_IDENTITY_FILE", id),
    ];
    assert_reads_refused_in(
        &home,
        &clone,
        &["project-unconfirmed"],
        &leaked,
        "CI without BYREIS_PROJECT",
        &env,
    );
    env.push(("BYREIS_PROJECT", "demo"));
    assert_reads_refused_in(
        &home,
        &clone,
        &["project-mismatch"],
        &leaked,
        "CI with BYREIS_PROJECT",
        &env,
    );
    let o = run_env(&home, &clone, &["verify"], None, &env);
    assert_refused(&o, &["project-mismatch"], "verify");

    // The teammate's stored pin records the project.
    w.assert_reads_refused(&["project-mismatch"], &leaked, "a stored pin");
    // Re-running trust, as the refusal suggests for a real move, does not
    // re-pin the repository as the other project unless the user names it.
    let o = w.alice_run(&["trust", "--anchor", &w.anchor]);
    assert_refused(&o, &["project-mismatch"], "trust after the swap");
    assert_stderr_contains(&o, "trust --project other", "how to confirm a real move");
    let o = w.alice_run_env(
        &["trust", "--anchor", &w.anchor],
        &[("BYREIS_PROJECT", "demo")],
    );
    assert_refused(&o, &["project-mismatch"], "trust with BYREIS_PROJECT=demo");
    w.assert_reads_refused(&["project-mismatch"], &leaked, "the pin is unchanged");

    // Reverting leaves nobody locked out (nothing of the other project's
    // marks was remembered as this one's).
    w.git_ok(&w.proj, &["reset", "-q", "--hard", &good]);
    w.assert_get("prod", "DB", PROD_DB);
    let o = run_env(&home, &clone, &["get", "prod", "DB"], None, &env);
    assert_refused(
        &o,
        &["project-mismatch"],
        "the CI clone still holds the attack",
    );
    w.git_ok(&clone, &["reset", "-q", "--hard", &good]);
    let o = run_env(&home, &clone, &["get", "prod", "DB"], None, &env);
    assert_ok(&o, "CI after the revert");
}

#[test]
fn file_urls_git_reads_differently_are_refused_before_git_runs() {
    // `file://localhost/PATH` and `%`-escapes name a copy inside the
    // project in a form a path comparison does not see (found by an attack
    // pass); they are refused outright, before any git runs.
    let w = World::with_secrets();
    let (home, clone) = fresh_ci(&w, "ci");
    w.git_ok(
        &clone,
        &[
            "clone",
            "-q",
            "--bare",
            w.reg.to_str().unwrap(),
            ".ci/reg.git",
        ],
    );
    let inside = format!("{}/.ci/reg.git", clone.display());
    let escaped = {
        let (first, rest) = inside[1..].split_at(1);
        format!("/%{:02x}{rest}", first.as_bytes()[0])
    };
    for hint in [
        format!("file://localhost{inside}"),
        format!("file://{escaped}"),
    ] {
        let config = clone.join("byreis.yaml");
        let text = fs::read_to_string(&config).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("registry:"))
            .unwrap()
            .to_string();
        fs::write(&config, text.replace(&line, &format!("registry: {hint}"))).unwrap();
        let env = [("CI", "true"), ("BYREIS_ANCHOR", w.anchor.as_str())];
        let o = run_env(&home, &clone, &["registry", "pull"], None, &env);
        assert_refused(&o, &["config-invalid"], &hint);
        assert!(
            !home.join("registries").exists(),
            "{hint}: git cloned it\n{}",
            dump(&o)
        );
    }
}

#[test]
fn a_location_only_the_config_names_is_never_fetched() {
    // A hint naming a host of the attacker's: `registry pull` on a machine
    // pinned only by BYREIS_ANCHOR would have cloned it (ssh to that host)
    // before the roster could say it is not the registry.
    let w = World::with_secrets();
    let (home, clone) = fresh_ci(&w, "ci");
    replace_in_file(
        &clone.join("byreis.yaml"),
        "registry: ../reg\n",
        "registry: ssh://git@attacker.invalid/reg.git\n",
    );
    let env = [("CI", "true"), ("BYREIS_ANCHOR", w.anchor.as_str())];
    let o = run_env(&home, &clone, &["registry", "pull"], None, &env);
    assert_refused(&o, &["registry-unconfirmed"], "registry pull of a hint");
    assert!(!home.join("registries").exists(), "git ran\n{}", dump(&o));
    // `trust` prints the location before anything and, without a person
    // to confirm it, does not clone a URL only byreis.yaml names.
    let o = run_env(&home, &clone, &["trust", "--anchor", &w.anchor], None, &env);
    assert_refused(&o, &["registry-unconfirmed"], "trust of a hint URL");
    assert_stderr_contains(&o, "(named only by byreis.yaml)", "the location is shown");
    assert!(!home.join("registries").exists(), "git ran\n{}", dump(&o));
    // Named by the user, the same pull runs (here: the real registry).
    replace_in_file(
        &clone.join("byreis.yaml"),
        "registry: ssh://git@attacker.invalid/reg.git\n",
        "registry: ../reg\n",
    );
    let reg = w.reg.to_str().unwrap();
    let env = [
        ("CI", "true"),
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_REGISTRY", reg),
    ];
    let o = run_env(&home, &clone, &["registry", "pull"], None, &env);
    assert_ok(&o, "registry pull of BYREIS_REGISTRY");
}

#[test]
fn a_submission_in_another_members_name_is_flagged_as_unproved() {
    // dave reads staging only; carol reads prod. dave writes a proposal
    // file by hand naming carol as its author (found by an attack pass:
    // the blind-member flag was judged by the claimed author's access).
    let w = World::with_secrets();
    let dave = keygen(&w.root, "dave");
    let carol = keygen(&w.root, "carol");
    let o = w.rotate(&[
        "--add",
        &format!("dave={}", dave.recipient),
        "--env",
        "staging",
    ]);
    assert_ok(&o, "add dave to staging");
    assert_ok(
        &w.rotate(&["--add", &format!("carol={}", carol.recipient)]),
        "add carol",
    );
    let counter = w.manifest_counter();
    w.git_ok(&w.proj, &["switch", "-q", "-c", "forge"]);
    let dir = w.proj.join(".byreis/proposals/carol");
    fs::create_dir_all(&dir).unwrap();
    let plain = format!(
        "format: byreis-submission/1\nproject: demo\nauthor: carol\nenvironment: prod\nbase-counter: {counter}\nroster-version: 1\nencrypted-to:\n- alice\ncreated: 2026-01-01T00:00:00Z\n---\nDB: \"postgres://app:x@evil.example/app\"\nPGHOST: \"evil.example\"\n"
    );
    fs::write(
        dir.join("001-prod.age"),
        w.age_encrypt(&plain, &[&w.alice.recipient]),
    )
    .unwrap();
    commit_all(&w, &w.proj, "byreis: proposal by carol");
    let tip = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);
    let branch = format!("byreis/submit/carol-{}", &tip[..8]);
    w.git_ok(&w.proj, &["branch", "-q", &branch]);
    w.git_ok(&w.proj, &["switch", "-q", "main"]);
    let o = w.alice_run(&["approve", &branch]);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        out.contains("nothing shows that carol wrote this"),
        "the claimed author is called a claim\n{}",
        dump(&o)
    );
    for name in ["DB", "PGHOST"] {
        assert!(
            out.contains(&format!("prod: FLAGGED {name}: nothing shows")),
            "{name} flagged\n{}",
            dump(&o)
        );
    }

    // carol's own submission of the same change carries her proof: no
    // such warning, and no blind flag (she reads prod).
    let carol_clone = clone_and_trust(&w, &w.proj, &carol);
    let o = run(
        &carol.home,
        &carol_clone,
        &["set", "prod", "PGHOST"],
        Some("db.internal\n"),
    );
    assert_ok(&o, "carol proposes");
    assert_ok(
        &run(&carol.home, &carol_clone, &["submit"], None),
        "carol submits",
    );
    let branches = w.git_ok(
        &carol_clone,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/byreis/submit/",
        ],
    );
    let theirs = branches
        .lines()
        .next()
        .expect("a submission branch")
        .to_string();
    w.git_ok(
        &w.proj,
        &[
            "fetch",
            "-q",
            carol_clone.to_str().unwrap(),
            &format!("{theirs}:{theirs}"),
        ],
    );
    let o = w.alice_run(&["approve", &theirs]);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        !out.contains("nothing shows"),
        "carol's proof verified\n{}",
        dump(&o)
    );
    assert!(out.contains("prod: added: PGHOST"), "{}", dump(&o));
    assert!(!out.contains("FLAGGED"), "{}", dump(&o));
}

#[test]
fn a_members_files_rebuilt_into_another_submission_are_unproved() {
    // carol (reads prod) proposes a value, then a better one, and submits.
    // A project writer with no key copies her ciphertexts into a branch of
    // his own, swapped, or without the last one, seal and all (found by an
    // attack pass: per-file proofs let a superseded value land as hers).
    let w = World::with_secrets();
    let carol = keygen(&w.root, "carol");
    assert_ok(
        &w.rotate(&["--add", &format!("carol={}", carol.recipient)]),
        "add carol",
    );
    let carol_clone = clone_and_trust(&w, &w.proj, &carol);
    for v in ["db-old-superseded.internal", "db-final.internal"] {
        let o = run(
            &carol.home,
            &carol_clone,
            &["set", "prod", "PGHOST"],
            Some(&format!("{v}\n")),
        );
        assert_ok(&o, "carol proposes");
    }
    assert_ok(
        &run(&carol.home, &carol_clone, &["submit"], None),
        "carol submits",
    );
    let theirs = w.git_ok(
        &carol_clone,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/byreis/submit/",
        ],
    );
    let theirs = theirs.lines().next().expect("a submission").to_string();
    let blob = |path: &str| {
        let o = w.git(
            &carol_clone,
            &[
                "cat-file",
                "blob",
                &format!("{theirs}:.byreis/proposals/carol/{path}"),
            ],
        );
        assert_ok(&o, path);
        o.stdout
    };
    let (f1, f2, seal) = (
        blob("001-prod.age"),
        blob("002-prod.age"),
        blob("seal.yaml"),
    );
    let dir = w.proj.join(".byreis/proposals/carol");
    for (name, files) in [
        (
            "swapped",
            vec![("001-prod.age", &f2), ("002-prod.age", &f1)],
        ),
        ("truncated", vec![("001-prod.age", &f1)]),
    ] {
        w.git_ok(&w.proj, &["switch", "-q", "-c", name, "main"]);
        fs::create_dir_all(&dir).unwrap();
        for (f, bytes) in &files {
            fs::write(dir.join(f), bytes).unwrap();
        }
        fs::write(dir.join("seal.yaml"), &seal).unwrap();
        let tip = commit_all(
            &w,
            &w.proj,
            "byreis: proposed change to prod by carol (draft)",
        );
        let branch = format!("byreis/submit/carol-{}", &tip[..8]);
        w.git_ok(&w.proj, &["branch", "-q", &branch]);
        w.git_ok(&w.proj, &["switch", "-q", "main"]);
        let o = w.alice_run(&["approve", &branch]);
        let out = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            out.contains("nothing shows that carol wrote this"),
            "{name}\n{}",
            dump(&o)
        );
        assert!(
            out.contains("prod: FLAGGED PGHOST: nothing shows"),
            "{name}\n{}",
            dump(&o)
        );
    }
    // Her own submission, as she made it, is hers and lands unflagged.
    w.git_ok(
        &w.proj,
        &[
            "fetch",
            "-q",
            carol_clone.to_str().unwrap(),
            &format!("{theirs}:{theirs}"),
        ],
    );
    let o = w.alice_run(&["approve", &theirs, "--yes"]);
    assert_ok(&o, "approve carol's submission");
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        !out.contains("FLAGGED") && !out.contains("nothing shows"),
        "{}",
        dump(&o)
    );
    w.assert_get("prod", "PGHOST", "db-final.internal");
    let entry = w.last_audit();
    assert_eq!(
        entry["details"]["author_proved"],
        serde_json::json!(true),
        "{entry}"
    );
}

// ---------------------------------------------------------------------
// One admin among several (issue 14, ADR 0017): the threshold that counts
// is the one in force, and what pins the state carries its proof.

/// alice, bob and carol are admins and readers; values and recipients
/// need 2 (roster version 4); bob has approved the pinned state.
fn three_admins_k2() -> (World, Person) {
    let w = World::with_secrets();
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
    w.raise_thresholds_k2(&bob);
    w.assert_get("prod", "DB", PROD_DB);
    (w, bob)
}

/// A machine of alice's with only her keys (no pins, no high-water marks).
fn alices_other_machine(w: &World) -> PathBuf {
    let home = w.root.join("alice-other");
    fs::create_dir(&home).unwrap();
    for f in [
        "signing_key",
        "signing_key.pub",
        "identity.txt",
        "profile.yaml",
    ] {
        fs::copy(w.alice.home.join(f), home.join(f)).unwrap();
    }
    home
}

/// Signs the registry's record of `demo` after `edit` with alice's key
/// alone, as one admin can, and commits it.
fn alice_signs_record(w: &World, edit: impl FnOnce(&mut serde_yaml::Value)) {
    let path = w.reg.join("projects/demo/record.yaml");
    let mut r: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut r);
    let pubkey = w.alice.home.join("signing_key.pub");
    let o = w.tool(
        "ssh-keygen",
        &w.root,
        &["-l", "-f", pubkey.to_str().unwrap()],
        None,
    );
    let fp = stdout(&o).split_whitespace().nth(1).unwrap().to_string();
    r["signer"] = "alice".into();
    r["signer_key"] = fp.into();
    let rev = r["revision"].as_u64().unwrap();
    r["revision"] = (rev + 1).into();
    fs::write(&path, serde_yaml::to_string(&r).unwrap()).unwrap();
    w.ssh_sign(
        &w.alice.home.join("signing_key"),
        "record@byreis.dev",
        &path,
    );
    commit_all(w, &w.reg, "alice re-signs the record");
}

#[track_caller]
fn assert_lone_state_refused(w: &World, bob: &Person, codes: &[&str], secret: &str, what: &str) {
    let o = w.run_as(bob, &["get", "prod", "DB"]);
    assert_refused(&o, codes, &format!("{what}: bob's get"));
    assert_no_leak(&o, &[secret], what);
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_fails(&o, &v, codes, &format!("{what}: doctor"));
    let o = w.run_as(bob, &["exec", "prod", "--", "env"]);
    assert_refused(&o, codes, &format!("{what}: bob's exec"));
    assert_no_leak(&o, &[secret], what);
}

// Attack 1 of issue 14: alice rewinds a private copy of the registry to
// roster version 3 (thresholds 1), lands `set prod DB` there (a manifest
// naming roster version 3, signed by her alone), moves the project's main
// to it and signs a record for it under version 4 alone. Before ADR 0017
// every reader took the threshold from the version the manifest names and
// served her value; `doctor`, `verify` and `registry verify` passed.
#[test]
fn one_admin_naming_an_old_roster_version_lands_nothing() {
    let (w, bob) = three_admins_k2();
    let v4 = w.git_ok(&w.reg, &["log", "-1", "--format=%H", "--", "roster/4.yaml"]);
    let old_reg = w.root.join("alice-reg");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            w.reg.to_str().unwrap(),
            old_reg.to_str().unwrap(),
        ],
    );
    w.git_ok(&old_reg, &["reset", "-q", "--hard", &format!("{v4}^")]);
    w.git_ok(&old_reg, &["remote", "remove", "origin"]);
    let home = alices_other_machine(&w);
    let clone = w.root.join("alice-proj");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            w.proj.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    w.git_ok(&clone, &["remote", "remove", "origin"]);
    let env = [
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_REGISTRY", old_reg.to_str().unwrap()),
        ("BYREIS_PROJECT", "demo"),
    ];
    let o = run_env(
        &home,
        &clone,
        &["set", "prod", "DB"],
        Some("alice-alone\n"),
        &env,
    );
    assert_ok(&o, "alice lands alone against roster version 3");
    let m: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(clone.join(".byreis/manifest.yaml")).unwrap())
            .unwrap();
    assert_eq!(m["roster_version"].as_u64(), Some(3), "{m:?}");

    // The project's main moves to her commit; the real registry gets a
    // record for it, signed by her alone under version 4.
    w.git_ok(&w.proj, &["fetch", "-q", clone.to_str().unwrap(), "main"]);
    w.git_ok(&w.proj, &["reset", "-q", "--hard", "FETCH_HEAD"]);
    let theirs: serde_yaml::Value = serde_yaml::from_str(
        &fs::read_to_string(old_reg.join("projects/demo/record.yaml")).unwrap(),
    )
    .unwrap();
    alice_signs_record(&w, |r| {
        for k in [
            "counter",
            "manifest",
            "project_commit",
            "audit_head",
            "manifest_sha512",
            "approvals",
        ] {
            r[k] = theirs[k].clone();
        }
    });

    assert_lone_state_refused(
        &w,
        &bob,
        &["approvals-short"],
        "alice-alone",
        "old roster version",
    );
    let o = w.run_as(&bob, &["verify"]);
    assert_refused(&o, &["approvals-short"], "verify");
    // The registry's own CI check, with public keys only, catches it too.
    let (o, v) = registry_verify(&w);
    assert_exit(&o, 3, "registry verify of a lone admin's record");
    assert_eq!(
        check(&v, "approvals demo")["code"],
        "approvals-short",
        "{v}"
    );
}

// A lone admin's record that borrows the approvals (and SHA-512) of the
// honestly approved state while pinning her own manifest serves nothing:
// every reader checks both digests. One that pins her state with only her
// own approval fails the registry's keyless check and every read.
#[test]
fn a_record_one_admin_signs_carries_no_approvals_it_lacks() {
    let (w, bob) = three_admins_k2();
    let honest: serde_yaml::Value = w.record_yaml();
    assert_eq!(
        honest["approvals"].as_sequence().map(|s| s.len()),
        Some(2),
        "the pinned state carries alice's signature and bob's approval: {honest:?}"
    );
    // alice makes a change alone: with thresholds 2 it is a proposal.
    let o = w.alice_run_stdin(&["set", "prod", "DB"], "alice-alone\n");
    assert_ok(&o, "alice's proposal");
    let branch = w.git_ok(
        &w.proj,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/byreis/proposal/",
        ],
    );
    let tip = w.git_ok(&w.proj, &["rev-parse", &branch]);
    let mbytes = w.git_blob(&tip, ".byreis/manifest.yaml");
    let m: serde_yaml::Value = serde_yaml::from_slice(&mbytes).unwrap();
    let sha256 = sha256_file(&w.root, &{
        let p = w.root.join("lone-manifest.yaml");
        fs::write(&p, &mbytes).unwrap();
        p
    });
    w.git_ok(&w.proj, &["reset", "-q", "--hard", &tip]);
    let pin = |r: &mut serde_yaml::Value| {
        r["counter"] = m["counter"].clone();
        r["manifest"] = format!("sha256:{sha256}").into();
        r["project_commit"] = tip.clone().into();
        r["audit_head"] = m["audit_head"].clone();
    };

    // (a) The honest state's approvals and digest, her manifest pinned.
    alice_signs_record(&w, pin);
    assert_lone_state_refused(
        &w,
        &bob,
        &["manifest-not-pinned"],
        "alice-alone",
        "borrowed approvals",
    );

    // (b) Her state with the proof dropped: only her manifest's own
    // signature counts, one of two.
    alice_signs_record(&w, |r| {
        pin(r);
        let m = r.as_mapping_mut().unwrap();
        m.remove("approvals");
        m.remove("manifest_sha512");
    });
    assert_lone_state_refused(
        &w,
        &bob,
        &["approvals-short"],
        "alice-alone",
        "her state, no proof",
    );
    let (o, v) = registry_verify(&w);
    assert_exit(&o, 3, "registry verify of a record without approvals");
    assert_eq!(
        check(&v, "approvals demo")["code"],
        "approvals-short",
        "{v}"
    );
}

// Raising a threshold makes the pinned state need re-approval (ADR 0017):
// reads refuse it until a second admin runs `approve --pinned`, which
// shows the whole state; an admin counts once.
#[test]
fn a_raised_threshold_needs_the_pinned_state_approved_again() {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    add_admin(&w, &bob);
    let o = w.rotate(&["--add", &format!("bob={}", bob.recipient)]);
    assert_ok(&o, "rotate --add bob");
    let o = w.alice_run(&["admin", "thresholds", "--recipients", "2", "--values", "2"]);
    assert_ok(&o, "admin thresholds");
    assert_stderr_contains(&o, "demo", "the raise names the project left short");
    w.assert_reads_refused(&["approvals-short"], &[PROD_DB], "after the raise");
    let (o, v) = registry_verify(&w);
    assert_exit(&o, 3, "registry verify after the raise");
    assert_eq!(
        check(&v, "approvals demo")["code"],
        "approvals-short",
        "{v}"
    );

    let o = w.alice_run(&["approve", "--pinned", "--yes"]);
    assert_failed(&o, "alice approves her own state again");
    assert_stderr_contains(&o, "already approved", "an admin counts once");
    let o = w.run_as(&bob, &["approve", "--pinned", "--yes"]);
    assert_ok(&o, "bob approves the pinned state");
    for shown in [
        "member bob key",
        "prod: readers",
        "prod: secrets API, DB",
        "2 of 2",
    ] {
        assert_stderr_contains(&o, shown, "approve --pinned shows the state");
    }
    assert_no_leak(&o, &[PROD_DB], "approve --pinned masks values");
    w.assert_get("prod", "DB", PROD_DB);
    let (o, v) = registry_verify(&w);
    assert_exit(&o, 0, "registry verify after re-approval");
    assert_eq!(check(&v, "approvals demo")["status"], "ok", "{v}");
}

/// `p` pins the registry for the checkout `dir` of `project`, approving
/// its pinned state first when it needs a second admin (a project alice
/// made alone under thresholds 2).
fn trust_as(w: &World, p: &Person, dir: &Path, project: &str) {
    let reg = w.reg.to_str().unwrap();
    let env = [
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_REGISTRY", reg),
        ("BYREIS_PROJECT", project),
    ];
    let (_, v) = doctor_json(&p.home, dir, &env);
    if doctor_fail_codes(&v).iter().any(|c| c == "approvals-short") {
        let o = run_env(&p.home, dir, &["approve", "--pinned", "--yes"], None, &env);
        assert_ok(&o, &format!("{} approves {project}", p.name));
    }
    let o = run_env(
        &p.home,
        dir,
        &["trust", "--anchor", &w.anchor, "--project", project],
        None,
        &[("BYREIS_REGISTRY", w.reg.to_str().unwrap())],
    );
    assert_ok(&o, &format!("{} trusts {project}", p.name));
}

/// Points the registry's record of `demo` at alice's own proposal (reset
/// onto the project's main) with her approval as its proof, signed by her
/// alone: a state one of the two required admins approved.
fn alice_pins_her_proposal(w: &World) {
    let o = w.alice_run_stdin(&["set", "prod", "DB"], "alice-alone\n");
    assert_ok(&o, "alice's proposal");
    let branch = w.git_ok(
        &w.proj,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/byreis/proposal/",
        ],
    );
    let tip = w.git_ok(&w.proj, &["rev-parse", &branch]);
    let mbytes = w.git_blob(&tip, ".byreis/manifest.yaml");
    let m: serde_yaml::Value = serde_yaml::from_slice(&mbytes).unwrap();
    let file = w.root.join("lone-manifest.yaml");
    fs::write(&file, &mbytes).unwrap();
    let sha256 = sha256_file(&w.root, &file);
    let o = w.tool("sha512sum", &w.root, &[file.to_str().unwrap()], None);
    assert_ok(&o, "sha512sum");
    let sha512 = stdout(&o).split_whitespace().next().unwrap().to_string();
    let sig = String::from_utf8(w.git_blob(&tip, ".byreis/manifest.yaml.sig")).unwrap();
    let blob: String = sig
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    w.git_ok(&w.proj, &["reset", "-q", "--hard", &tip]);
    alice_signs_record(w, |r| {
        r["counter"] = m["counter"].clone();
        r["manifest"] = format!("sha256:{sha256}").into();
        r["project_commit"] = tip.clone().into();
        r["audit_head"] = m["audit_head"].clone();
        r["manifest_sha512"] = sha512.into();
        r["approvals"] = serde_yaml::Value::Sequence(vec![blob.into()]);
    });
}

// Found by review of ADR 0017: a roster change re-signs every record; it
// used to add the changing admin's approval to any state that fell short,
// so bob's honest `admin add` in another project vouched for the state
// alice pinned alone, and a fresh CI machine served it. A state that was
// already short is never vouched for; it stays refused everywhere.
#[test]
fn a_roster_change_elsewhere_vouches_for_no_lone_admins_state() {
    let (w, bob) = three_admins_k2();
    let other = w.init_other_project();
    trust_as(&w, &bob, &w.proj, "demo");
    trust_as(&w, &bob, &other, "other");
    alice_pins_her_proposal(&w);
    assert_lone_state_refused(
        &w,
        &bob,
        &["approvals-short"],
        "alice-alone",
        "alice's pinned proposal",
    );

    let dave = keygen(&w.root, "dave");
    let o = run(&bob.home, &other, &admin_add_args(&dave), None);
    assert_ok(&o, "bob adds dave from the other project");
    assert_stderr_contains(&o, "approvals-short: demo", "the short state is named");
    let r = w.record_yaml();
    assert_eq!(
        r["approvals"].as_sequence().map(|s| s.len()),
        Some(1),
        "bob's key vouched for alice's state: {r:?}"
    );

    assert_lone_state_refused(
        &w,
        &bob,
        &["approvals-short"],
        "alice-alone",
        "after bob's roster change",
    );
    let (home, clone) = fresh_ci(&w, "ci");
    let identity = identity_file(&bob);
    let env = [
        ("BYREIS_ANCHOR", w.anchor.as_str()),
        ("BYREIS_REGISTRY", w.reg.to_str().unwrap()),
        ("BYREIS_PROJECT", "demo"),
        ("BYREIS_IDENTITY_FILE", identity.to_str().unwrap()),
        ("CI", "true"),
    ];
    assert_reads_refused_in(
        &home,
        &clone,
        &["approvals-short"],
        &["alice-alone"],
        "fresh CI after bob's roster change",
        &env,
    );
    let (o, v) = registry_verify(&w);
    assert_exit(&o, 3, "registry verify after bob's roster change");
    assert_eq!(
        check(&v, "approvals demo")["code"],
        "approvals-short",
        "{v}"
    );
}

// A registry pusher needs no key to put an older signed record back; the
// next roster change re-signed it under the new version and so revived
// it. A record naming an older roster version stops the change before
// anything is signed.
#[test]
fn a_roster_change_refuses_a_record_put_back() {
    let (w, bob) = three_admins_k2();
    let other = w.init_other_project();
    trust_as(&w, &bob, &other, "other");
    let v4 = w.git_ok(&w.reg, &["log", "-1", "--format=%H", "--", "roster/4.yaml"]);
    w.git_ok(
        &w.reg,
        &[
            "checkout",
            &format!("{v4}^"),
            "--",
            "projects/demo/record.yaml",
            "projects/demo/record.yaml.sig",
        ],
    );
    commit_all(&w, &w.reg, "a pusher puts an old record back");
    let before = w.git_ok(&w.reg, &["rev-parse", "HEAD"]);
    let dave = keygen(&w.root, "dave");
    let o = run(&bob.home, &other, &admin_add_args(&dave), None);
    assert_failed(&o, "admin add over a record put back");
    assert_stderr_contains(&o, "was put back", "the refusal says why");
    assert_stderr_contains(&o, "nothing was changed", "and that nothing landed");
    assert_eq!(
        w.git_ok(&w.reg, &["rev-parse", "HEAD"]),
        before,
        "the registry is unchanged"
    );
    assert!(!w.reg.join("roster/5.yaml").exists(), "no roster version 5");
}

// What the roster changer does vouch for: a state the thresholds in force
// accepted, left short only because one of its approvers is removed. carol
// removes bob; the state alice and bob approved keeps being served, now
// with carol's approval in bob's place.
#[test]
fn removing_an_approver_keeps_an_accepted_state_served() {
    let (w, _bob) = three_admins_k2();
    let carol = Person {
        name: "carol".into(),
        home: w.root.join("carol"),
        recipient: String::new(),
        signing_key: String::new(),
    };
    let o = w.run_as(&carol, &["admin", "remove", "bob"]);
    assert_ok(&o, "carol removes bob");
    assert_stderr_contains(&o, "your approval is added", "carol vouches in bob's place");
    w.assert_get("prod", "DB", PROD_DB);
    let (o, v) = registry_verify(&w);
    assert_exit(&o, 0, "registry verify after the removal");
    assert_eq!(check(&v, "approvals demo")["status"], "ok", "{v}");
}

/// The one proposal branch of the project whose name is not in `before`.
fn new_proposal(w: &World, before: &[String]) -> String {
    let all = w.git_ok(
        &w.proj,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/byreis/proposal/",
        ],
    );
    let new: Vec<&str> = all
        .lines()
        .filter(|b| !before.iter().any(|x| x == b))
        .collect();
    assert_eq!(new.len(), 1, "one new proposal branch: {all}");
    new[0].to_string()
}

fn proposals(w: &World) -> Vec<String> {
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

/// Rewrites alice's proposal `branch` as a malicious client of hers could:
/// `edit` changes its manifest text; staging is re-encrypted with the
/// real `age` to `staging_to` (the file hash follows); the manifest and
/// alice's approval are signed again with her key, the proposal commit
/// amended, and the branch renamed. Every signature is genuine. Returns
/// the new branch name.
fn alice_rewrites_proposal(
    w: &World,
    branch: &str,
    suffix: &str,
    edit: impl FnOnce(String) -> String,
    staging_to: Option<&[&str]>,
) -> String {
    w.git_ok(&w.proj, &["checkout", "-q", branch]);
    let manifest = w.manifest();
    let mut text = edit(fs::read_to_string(&manifest).unwrap());
    if let Some(to) = staging_to {
        let file = w.secrets_file("staging");
        let old_sha = sha256_file(&w.root, &file);
        let o = w.age_decrypt(&identity_file(&w.alice), &file);
        assert_ok(&o, "alice decrypts the proposal's staging");
        let plain = String::from_utf8(o.stdout).unwrap();
        fs::write(&file, w.age_encrypt(&plain, to)).unwrap();
        let new_sha = sha256_file(&w.root, &file);
        assert!(text.contains(&old_sha), "{text}");
        text = text.replace(&old_sha, &new_sha);
    }
    fs::write(&manifest, &text).unwrap();
    let key = w.alice.home.join("signing_key");
    w.ssh_sign(&key, "manifest@byreis.dev", &manifest);
    let copy = w.root.join("rewritten-manifest.yaml");
    fs::copy(&manifest, &copy).unwrap();
    w.ssh_sign(&key, "proposal@byreis.dev", &copy);
    fs::copy(
        format!("{}.sig", copy.display()),
        w.proj.join(".byreis/approvals.sig"),
    )
    .unwrap();
    w.git_ok(
        &w.proj,
        &["commit", "-qa", "--amend", "--no-edit", "--no-gpg-sign"],
    );
    let renamed = format!("{branch}{suffix}");
    w.git_ok(&w.proj, &["branch", "-m", branch, &renamed]);
    w.git_ok(&w.proj, &["checkout", "-q", "main"]);
    renamed
}

// Attack 2 of issue 14: alice's honest `set staging SKEY` proposal, then
// its manifest gives member dave an outsider's age key under dave's name,
// staging is re-encrypted to the admins and the outsider, and every
// signature is made again by alice. Before ADR 0018 bob's approval showed
// only "staging: changed: SKEY" and landed it: the outsider read staging
// and every later value, dave was locked out, and doctor was clean. Now
// the swap is shown and a value change that makes it is refused; so is one
// that smuggles a default reader in.
#[test]
fn a_key_swapped_under_a_members_name_is_shown_and_refused() {
    let (w, bob) = three_admins_k2();
    let dave = keygen(&w.root, "dave");
    let before = proposals(&w);
    let o = w.rotate(&[
        "--add",
        &format!("dave={}", dave.recipient),
        "--env",
        "staging",
    ]);
    assert_ok(&o, "rotate --add dave to staging");
    let branch = new_proposal(&w, &before);
    assert_ok(
        &w.run_as(&bob, &["approve", &branch, "--yes"]),
        "bob approves dave",
    );
    assert_ok(
        &w.run_as(&dave, &["get", "staging", "DB"]),
        "dave reads staging",
    );
    let (outsider_key, outsider) = age_keygen(&w, "outsider");

    let before = proposals(&w);
    let o = w.alice_run_stdin(&["set", "staging", "SKEY"], "skey-value\n");
    assert_ok(&o, "alice's honest proposal");
    let honest = new_proposal(&w, &before);
    let honest_tip = w
        .git_ok(&w.proj, &["rev-parse", &honest])
        .trim()
        .to_string();
    let yaml = w.manifest_yaml();
    let admins: Vec<String> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| {
            yaml["members"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|m| m["name"] == *n)
                .unwrap()["recipient"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut to: Vec<&str> = admins.iter().map(String::as_str).collect();
    to.push(&outsider);
    let dave_key = dave.recipient.clone();
    let outsider_c = outsider.clone();
    let swapped = alice_rewrites_proposal(
        &w,
        &honest,
        "a",
        move |t| {
            assert!(t.contains(&dave_key), "{t}");
            t.replace(&dave_key, &outsider_c)
        },
        Some(&to),
    );
    let heads = w.heads();
    let o = w.run_as(&bob, &["approve", &swapped, "--yes", "--show-values"]);
    assert_failed(&o, "bob approves the key swap");
    assert_stderr_contains(
        &o,
        "it is `set` (a change of values), but its manifest also changes: member dave: KEY CHANGED under the same name",
        "the swap is named",
    );
    assert_no_leak(&o, &["skey-value", STAGING_DB], "the refusal");
    assert_eq!(w.heads(), heads, "nothing landed");
    let o = w.age_decrypt(&outsider_key, &w.secrets_file("staging"));
    assert_failed(&o, "the outsider decrypts the served staging");
    assert_ok(
        &w.run_as(&dave, &["get", "staging", "DB"]),
        "dave still reads staging",
    );

    // A `set` whose manifest also makes dave a default reader.
    w.git_ok(&w.proj, &["branch", "-f", &honest, &honest_tip]);
    let smuggled = alice_rewrites_proposal(
        &w,
        &honest,
        "b",
        |t| {
            let from = "default_readers:\n- alice\n- bob\n- carol\n";
            assert!(t.contains(from), "{t}");
            t.replace(from, "default_readers:\n- alice\n- bob\n- carol\n- dave\n")
        },
        None,
    );
    let o = w.run_as(&bob, &["approve", &smuggled, "--yes"]);
    assert_failed(&o, "bob approves a smuggled default reader");
    assert_stderr_contains(
        &o,
        "default readers (of environments made later) added: dave",
        "the default reader is named",
    );
    assert_eq!(w.heads(), heads, "nothing landed");

    // The honest proposal still lands, and shows its one change.
    w.git_ok(&w.proj, &["branch", "-f", &honest, &honest_tip]);
    let o = w.run_as(&bob, &["approve", &honest, "--yes", "--show-values"]);
    assert_ok(&o, "bob approves the honest proposal");
    assert_stderr_contains(&o, "staging: file changes", "the change is shown");
    assert_ok(
        &w.run_as(&dave, &["get", "staging", "SKEY"]),
        "dave reads the new value",
    );
}

// The crash-recovery path as a lone admin's way in: alice signs, alone, a
// record whose `pending` names her own proposal (one approval of the two
// required), as if a change of hers had been interrupted. bob's
// `rotate --resume` would finish it under his name. A pending change
// carries the approvals the thresholds in force require, or it is not
// resumed; `get` keeps serving the pinned state.
#[test]
fn a_pending_change_one_admin_signed_alone_is_not_resumed() {
    let (w, bob) = three_admins_k2();
    let o = w.alice_run_stdin(&["set", "prod", "DB"], "alice-alone\n");
    assert_ok(&o, "alice's proposal");
    let branch = new_proposal(&w, &[]);
    let tip = w.git_ok(&w.proj, &["rev-parse", &branch]);
    let mbytes = w.git_blob(&tip, ".byreis/manifest.yaml");
    let m: serde_yaml::Value = serde_yaml::from_slice(&mbytes).unwrap();
    let file = w.root.join("pending-manifest.yaml");
    fs::write(&file, &mbytes).unwrap();
    let sha256 = sha256_file(&w.root, &file);
    alice_signs_record(&w, |r| {
        let mut p = serde_yaml::Mapping::new();
        p.insert("counter".into(), m["counter"].clone());
        p.insert("manifest".into(), format!("sha256:{sha256}").into());
        p.insert("project_commit".into(), tip.clone().into());
        p.insert("audit_head".into(), m["audit_head"].clone());
        p.insert("action".into(), "set".into());
        r["pending"] = serde_yaml::Value::Mapping(p);
    });
    let reg_before = w.git_ok(&w.reg, &["rev-parse", "HEAD"]);
    let main_before = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);

    let o = w.run_as(&bob, &["rotate", "--resume", "--yes"]);
    assert_failed(&o, "bob resumes alice's lone pending change");
    assert_stderr_contains(&o, "cannot be resumed", "the refusal names the step");
    assert_stderr_contains(&o, "approv", "and says approvals are missing");
    assert_no_leak(&o, &["alice-alone"], "the refused resume");
    assert_eq!(
        w.git_ok(&w.reg, &["rev-parse", "HEAD"]),
        reg_before,
        "no record was signed"
    );
    assert_eq!(
        w.git_ok(&w.proj, &["rev-parse", "HEAD"]),
        main_before,
        "the project branch did not move"
    );
    w.assert_get("prod", "DB", PROD_DB);
    let o = w.run_as(&bob, &["get", "prod", "DB"]);
    assert_ok(&o, "bob still reads the pinned state");
    assert_eq!(stdout(&o).trim(), PROD_DB);
}
