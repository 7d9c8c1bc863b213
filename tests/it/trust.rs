//! Invariant 8 for non-interactive runs: a second person's clone trusts
//! nothing until an anchor is pinned by `trust --anchor FP` or given in
//! BYREIS_ANCHOR, and a wrong anchor is refused.

use crate::common::*;

/// The anchor with its last character changed: well formed, but wrong.
fn wrong_anchor(anchor: &str) -> String {
    let mut s = anchor.to_string();
    let last = s.pop().unwrap();
    s.push(if last == 'a' { 'b' } else { 'a' });
    s
}

#[test]
fn second_person_needs_the_anchor_before_anything_is_read() {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    // A sibling of the project, so the config's `../reg` finds the registry.
    let clone = w.root.join("bob-proj");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            w.proj.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let bob_run = |args: &[&str], env: &[(&str, &str)]| run_env(&bob.home, &clone, args, None, env);

    // Nothing pinned: get, exec, list and doctor refuse with anchor-not-trusted.
    let o = bob_run(&["get", "prod", "DB"], &[]);
    assert_refused(&o, &["anchor-not-trusted"], "bob get without an anchor");
    assert_stderr_contains(&o, "BYREIS_ANCHOR", "the refusal says how to pin");
    assert_no_leak(&o, &[PROD_DB], "bob get without an anchor");
    let o = bob_run(&["exec", "prod", "--", "true"], &[]);
    assert_refused(&o, &["anchor-not-trusted"], "bob exec without an anchor");
    let o = bob_run(&["list"], &[]);
    assert_refused(&o, &["anchor-not-trusted"], "bob list without an anchor");
    let (o, v) = doctor_json(&bob.home, &clone, &[]);
    assert_doctor_fails(
        &o,
        &v,
        &["anchor-not-trusted"],
        "bob doctor without an anchor",
    );
    // CI set makes no difference to a non-TTY run.
    let o = bob_run(&["get", "prod", "DB"], &[("CI", "true")]);
    assert_refused(&o, &["anchor-not-trusted"], "bob get with CI=true");
    // trust without --anchor cannot prompt.
    let o = bob_run(&["trust"], &[]);
    assert_failed(&o, "non-interactive trust without --anchor");
    assert_stderr_contains(&o, "--anchor", "non-interactive trust without --anchor");
    // Nothing is pinned yet.
    let o = bob_run(&["trust", "--show"], &[]);
    assert_refused(&o, &["anchor-not-trusted"], "trust --show before trust");

    // BYREIS_ANCHOR gets past the anchor; bob is no member.
    let env = [("BYREIS_ANCHOR", w.anchor.as_str())];
    let o = bob_run(&["get", "prod", "DB"], &env);
    assert_refused(
        &o,
        &["identity-not-recipient"],
        "bob get with BYREIS_ANCHOR",
    );
    assert_no_leak(&o, &[PROD_DB], "bob get with BYREIS_ANCHOR");
    let o = bob_run(
        &["exec", "prod", "--", "sh", "-c", "printf %s \"$DB\""],
        &env,
    );
    assert_refused(
        &o,
        &["identity-not-recipient"],
        "bob exec with BYREIS_ANCHOR",
    );
    assert_no_leak(&o, &[PROD_DB], "bob exec with BYREIS_ANCHOR");
    // doctor needs only public keys: bob can audit.
    let (o, v) = doctor_json(&bob.home, &clone, &env);
    assert_doctor_ok(&o, &v, "bob doctor with BYREIS_ANCHOR");
    // Spelling: upper case and no dashes is the same fingerprint.
    let loose = w.anchor.replace('-', "").to_uppercase();
    let o = bob_run(&["get", "prod", "DB"], &[("BYREIS_ANCHOR", loose.as_str())]);
    assert_refused(
        &o,
        &["identity-not-recipient"],
        "bob get with a loosely written anchor",
    );
    // A wrong BYREIS_ANCHOR is refused.
    let wrong = wrong_anchor(&w.anchor);
    let o = bob_run(&["get", "prod", "DB"], &[("BYREIS_ANCHOR", wrong.as_str())]);
    // (No roster version has that fingerprint.)
    assert_refused(
        &o,
        &["roster-anchor-mismatch"],
        "bob get with a wrong BYREIS_ANCHOR",
    );
    assert_no_leak(&o, &[PROD_DB], "bob get with a wrong BYREIS_ANCHOR");
    // BYREIS_ANCHOR pins nothing on disk.
    let o = bob_run(&["trust", "--show"], &[]);
    assert_refused(&o, &["anchor-not-trusted"], "BYREIS_ANCHOR stored a pin");

    // trust --anchor WRONG is refused and pins nothing.
    for bad in [wrong.as_str(), "not-a-fingerprint", ""] {
        let o = bob_run(&["trust", "--anchor", bad], &[]);
        assert_failed(&o, &format!("trust --anchor {bad:?}"));
        let o = bob_run(&["trust", "--show"], &[]);
        assert_refused(&o, &["anchor-not-trusted"], "a refused trust stored a pin");
    }
    let o = bob_run(&["trust", "--anchor", &wrong], &[]);
    assert_refused(&o, &["roster-anchor-mismatch"], "trust --anchor WRONG");

    // trust --anchor FP succeeds; --show prints it.
    let o = bob_run(&["trust", "--anchor", &w.anchor], &[]);
    assert_ok(&o, "trust --anchor FP");
    let o = bob_run(&["trust", "--show"], &[]);
    assert_ok(&o, "trust --show");
    assert_eq!(stdout(&o).trim(), w.anchor);
    // Now reads get past the anchor without the variable.
    let o = bob_run(&["get", "prod", "DB"], &[]);
    assert_refused(&o, &["identity-not-recipient"], "bob get after trust");
    assert_no_leak(&o, &[PROD_DB], "bob get after trust");
    let (o, v) = doctor_json(&bob.home, &clone, &[]);
    assert_doctor_ok(&o, &v, "bob doctor after trust");
    // A BYREIS_ANCHOR that contradicts the stored pin is refused.
    let o = bob_run(&["get", "prod", "DB"], &[("BYREIS_ANCHOR", wrong.as_str())]);
    assert_refused(
        &o,
        &["anchor-mismatch"],
        "BYREIS_ANCHOR contradicting the pin",
    );
    // bob is no admin: writes are refused and change nothing.
    let before = w.heads();
    let o = run(
        &bob.home,
        &clone,
        &["set", "prod", "DB", "bob-was-here"],
        None,
    );
    assert_failed(&o, "bob set");
    assert_eq!(w.heads(), before, "bob's set changed the registry");
    assert!(
        w.git(&clone, &["status", "--porcelain"]).stdout.is_empty(),
        "bob's set left changes in his clone"
    );

    // Alice's machine is unaffected by any of this.
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(&o, "alice get");
    assert_eq!(stdout(&o), format!("{PROD_DB}\n"));
}

#[test]
fn the_admin_machine_is_pinned_by_init_and_shows_it() {
    let w = World::new();
    let o = w.alice_run(&["trust", "--show"]);
    assert_ok(&o, "trust --show after init");
    assert_eq!(stdout(&o).trim(), w.anchor);
    // Re-trusting the same anchor is fine and keeps the counters.
    let o = w.alice_run(&["trust", "--anchor", &w.anchor]);
    assert_ok(&o, "trust --anchor FP again");
    let o = w.alice_run(&["trust", "--anchor", &wrong_anchor(&w.anchor)]);
    assert_refused(
        &o,
        &["roster-anchor-mismatch"],
        "alice trust --anchor WRONG",
    );
    let o = w.alice_run(&["trust", "--show"]);
    assert_eq!(
        stdout(&o).trim(),
        w.anchor,
        "a refused trust replaced the pin"
    );
}

// Regression (found by this test, fixed): byreis.yaml is attacker-writable
// (invariant 8: "Git URLs from config are passed after `--` and only known
// schemes are allowed"), but `verify::is_url` accepts any string that
// contains both '@' and ':' as an scp-like URL, so `registry: evil::x@y:z`
// reaches `git clone -- evil::x@y:z` in `byreis trust`, and git runs the
// remote helper `git-remote-evil` from PATH (only `ext::` is blocked by
// `-c protocol.ext.allow=never`). The clone also happens before the anchor
// the user typed is compared with anything.
#[test]
fn config_registry_with_an_unknown_transport_is_never_handed_to_git() {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    let clone = w.root.join("bob-proj");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            w.proj.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let bin_dir = w.root.join("helpers");
    std::fs::create_dir(&bin_dir).unwrap();
    let marker = w.root.join("remote-helper-ran");
    write_script(
        &bin_dir.join("git-remote-evil"),
        &format!("touch '{}'\nexit 1", marker.display()),
    );
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    );
    let config = clone.join("byreis.yaml");
    for location in ["evil::x@y:z", "evil::ssh://git@example.invalid/reg"] {
        let text = std::fs::read_to_string(&config).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("registry: "))
            .unwrap()
            .to_string();
        replace_in_file(&config, &line, &format!("registry: {location}"));
        for args in [
            &["trust", "--anchor", w.anchor.as_str()][..],
            &["get", "prod", "DB"][..],
        ] {
            let o = run_env(
                &bob.home,
                &clone,
                args,
                None,
                &[
                    ("PATH", path.as_str()),
                    ("BYREIS_ANCHOR", w.anchor.as_str()),
                ],
            );
            assert_failed(&o, &format!("{args:?} with registry {location}"));
            assert!(
                !marker.exists(),
                "{args:?}: byreis handed the config's registry {location:?} to git, which ran git-remote-evil\n{}",
                dump(&o)
            );
        }
    }
}

/// A world whose project names its registry by a `file://` URL to a bare
/// repository: every machine, alice's too, works on a managed clone under
/// its BYREIS_HOME.
fn url_world() -> (World, String) {
    let w = World::new();
    // A second project, on the URL registry (the World's own project uses
    // the registry by path).
    let url = w.bare_registry_url();
    let proj = w.root.join("urlproj");
    std::fs::create_dir(&proj).unwrap();
    w.git_ok(&proj, &["init", "-q", "-b", "main"]);
    let o = run(
        &w.alice.home,
        &proj,
        &["init", "--project", "urlproj", "--registry", &url],
        None,
    );
    assert_ok(&o, "init with a file:// registry");
    // The registry now lives at the URL: the admin records it in the signed
    // roster, so teammates' `trust` accepts byreis.yaml's hint (ADR 0015).
    let o = run(&w.alice.home, &proj, &["admin", "location", &url], None);
    assert_ok(&o, "admin location URL");
    let o = run(&w.alice.home, &proj, &["set", "prod", "DB", "url-v1"], None);
    assert_ok(&o, "set on a URL registry");
    (w, url)
}

#[test]
fn url_registry_is_cloned_by_trust_and_pushed_by_writes() {
    let (w, url) = url_world();
    let proj = w.root.join("urlproj");
    let config = std::fs::read_to_string(proj.join("byreis.yaml")).unwrap();
    assert!(config.contains(&format!("registry: {url}")), "{config}");
    // The write reached the bare registry.
    let log = w.git_ok(&w.root.join("reg.git"), &["log", "--format=%s"]);
    assert!(log.contains("record urlproj counter 2"), "{log}");

    let bob = keygen(&w.root, "bob");
    let clone = w.root.join("bob-urlproj");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            proj.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let o = run(
        &bob.home,
        &clone,
        &["trust", "--registry", &url, "--anchor", &w.anchor],
        None,
    );
    assert_ok(&o, "bob trust (clones the registry)");
    assert!(bob.home.join("registries").is_dir());
    let (o, v) = doctor_json(&bob.home, &clone, &[]);
    assert_doctor_ok(&o, &v, "bob doctor on a URL registry");
    let o = run(&bob.home, &clone, &["get", "prod", "DB"], None);
    assert_refused(&o, &["identity-not-recipient"], "bob get");
}

// Regression (found by this test, fixed: the error now says the copy may
// be stale and names `byreis registry pull`): with a URL registry, reads verify
// against the managed local clone, which nothing but `byreis trust`
// refreshes. After an admin's next change, a teammate who `git pull`s the
// project is refused with `manifest-ahead` ("a change was not finished …
// the admin who made it must finish it"), a false alarm about an
// unfinished rotation, and nothing says the local registry copy is stale
// (design, invariant 7: "Reads verify offline against the local registry
// copy and say when it may be stale"). Workaround: `byreis trust --anchor
// FP` again (it pulls the managed clone).
#[test]
fn stale_url_registry_copy_is_reported_as_stale() {
    let (w, url) = url_world();
    let proj = w.root.join("urlproj");
    let bob = keygen(&w.root, "bob");
    let clone = w.root.join("bob-urlproj");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            proj.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let o = run(
        &bob.home,
        &clone,
        &["trust", "--registry", &url, "--anchor", &w.anchor],
        None,
    );
    assert_ok(&o, "bob trust");

    // Alice changes a value; bob pulls the project only.
    let o = run(&w.alice.home, &proj, &["set", "prod", "DB", "url-v2"], None);
    assert_ok(&o, "alice set v2");
    w.git_ok(&clone, &["pull", "-q", "--ff-only"]);
    let (stale_o, stale_v) = doctor_json(&bob.home, &clone, &[]);
    let stale_text = format!("{}{}", stale_v, stderr(&stale_o));

    // The workaround works.
    let o = run(
        &bob.home,
        &clone,
        &["trust", "--registry", &url, "--anchor", &w.anchor],
        None,
    );
    assert_ok(&o, "bob trust again (refreshes the registry copy)");
    let (o, v) = doctor_json(&bob.home, &clone, &[]);
    assert_doctor_ok(&o, &v, "bob doctor after refreshing");

    // The stale copy must be named as such, not as an unfinished change.
    let failing = doctor_fail_codes(&stale_v);
    assert!(
        !failing.contains(&"manifest-ahead".to_string()) || stale_text.contains("stale"),
        "a stale local registry copy was reported as an unfinished change (manifest-ahead) without saying the copy may be stale\n{}",
        dump(&stale_o)
    );
}

/// `byreis verify`, the deploy gate, in a fresh clone with no key and no
/// pin, as a CI job runs it: exit 0 only for exactly the pinned state,
/// 3 with the code otherwise; no anchor, no verdict.
#[test]
fn deploy_verify_gates_on_the_pinned_state() {
    let w = World::with_secrets();
    let ci = w.root.join("ci-checkout");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            w.proj.to_str().unwrap(),
            ci.to_str().unwrap(),
        ],
    );
    let nobody = w.root.join("nobody");
    let anchor = [("BYREIS_ANCHOR", w.anchor.as_str())];
    let verify =
        |env: &[(&str, &str)]| run_env(&nobody, &ci, &["verify", "--format", "json"], None, env);
    let o = verify(&anchor);
    assert_ok(&o, "verify the pinned state");
    assert!(!nobody.join("identity.txt").exists(), "no key was needed");

    // No anchor: refused (a CI job must pin it).
    let o = verify(&[]);
    assert_refused(&o, &["anchor-not-trusted"], "verify without BYREIS_ANCHOR");

    // An older commit than the pinned one: not the state to deploy.
    w.git_ok(&ci, &["checkout", "-q", "HEAD~1"]);
    let o = verify(&anchor);
    assert_refused(&o, &["checkout-not-current"], "verify an older checkout");
    w.git_ok(&ci, &["checkout", "-q", "main"]);
    assert_ok(&verify(&anchor), "verify main again");

    // A file changed in the checkout: refused with its code.
    let file = ci.join("secrets/prod.enc.yaml");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&file, bytes).unwrap();
    let o = verify(&anchor);
    assert_refused(&o, &["file-hash-mismatch"], "verify a changed file");
}
