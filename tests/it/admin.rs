//! Admins and the roster: `admin add/list/remove`, roster versions signed
//! by the admins of the version before (TUF root rotation), a removed
//! admin's signatures never counting again, a deleted roster version
//! caught by a machine that saw it, signing through a real ssh-agent, and
//! the record's expiry (the freeze defence) with `registry refresh`.
//!
//! Real git, real ssh-keygen, ssh-agent and ssh-add: a missing tool fails
//! the test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// The secret values every `World::with_secrets` holds.
const ALL: &[&str] = &[PROD_DB, PROD_API, STAGING_DB];

/// alice's world with only `prod` {DB} set (counter 2): enough for the
/// roster tests, and quicker than `World::with_secrets`.
fn small_world() -> World {
    let w = World::new();
    w.set("prod", "DB", PROD_DB);
    w
}

/// Commits everything in `dir` with plain git (no byreis, no signature).
fn commit_all(w: &World, dir: &Path, msg: &str) -> String {
    w.git_ok(dir, &["add", "-A"]);
    w.git_ok(dir, &["commit", "-q", "--no-verify", "-m", msg]);
    w.git_ok(dir, &["rev-parse", "HEAD"])
}

fn reg_head(w: &World) -> String {
    w.git_ok(&w.reg, &["rev-parse", "HEAD"])
}

/// `byreis admin list --format json` as alice.
fn admin_list(w: &World) -> Value {
    let o = w.alice_run(&["admin", "list", "--format", "json"]);
    assert_ok(&o, "admin list --format json");
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("admin list printed no JSON ({e})\n{}", dump(&o)))
}

fn admin_names(list: &Value) -> Vec<String> {
    list["admins"]
        .as_array()
        .expect("admins is an array")
        .iter()
        .map(|a| a["name"].as_str().expect("admin name").to_string())
        .collect()
}

/// bob: an admin (roster version 2), a reader of every environment, and
/// trusting the project in alice's own checkout (his own BYREIS_HOME).
fn with_admin_bob(w: &World) -> Person {
    let bob = keygen(&w.root, "bob");
    add_admin(w, &bob);
    let o = w.rotate_yes(&["--add", &format!("bob={}", bob.recipient)]);
    assert_ok(&o, "rotate --add bob");
    let o = run(&bob.home, &w.proj, &["trust", "--anchor", &w.anchor], None);
    assert_ok(&o, "bob trust --anchor");
    bob
}

trait WorldExt {
    fn rotate_yes(&self, args: &[&str]) -> Output;
    fn get_ok(&self, home: &Path, dir: &Path, env: &str, key: &str) -> String;
    fn signing_fp(&self, p: &Person) -> String;
}

impl WorldExt for World {
    fn rotate_yes(&self, args: &[&str]) -> Output {
        let mut a = vec!["rotate"];
        a.extend_from_slice(args);
        a.push("--yes");
        self.alice_run(&a)
    }

    /// `get ENV KEY` as the person with `home` in `dir`; returns the value.
    #[track_caller]
    fn get_ok(&self, home: &Path, dir: &Path, env: &str, key: &str) -> String {
        let o = run(home, dir, &["get", env, key], None);
        assert_ok(&o, &format!("get {env} {key}"));
        stdout(&o)
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("get printed no newline\n{}", dump(&o)))
            .to_string()
    }

    fn signing_fp(&self, p: &Person) -> String {
        whoami(&p.home, &[])["signing_fingerprint"]
            .as_str()
            .expect("signing_fingerprint")
            .to_string()
    }
}

/// Replaces the value of the top-level `key:` line of a YAML text (there
/// must be exactly one such line).
#[track_caller]
fn set_field(text: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key}:");
    let hits = text.lines().filter(|l| l.starts_with(&prefix)).count();
    assert_eq!(hits, 1, "expected one top-level {key:?} line in:\n{text}");
    let mut out: String = text
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{key}: {value}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The value of the top-level `key:` line of a YAML text.
#[track_caller]
fn field(text: &str, key: &str) -> String {
    let prefix = format!("{key}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no top-level {key:?} in:\n{text}"))
        .trim()
        .to_string()
}

fn record_path(w: &World) -> PathBuf {
    w.reg.join("projects/demo/record.yaml")
}

/// Rewrites fields of the project's record, re-signs it with `key` (an
/// OpenSSH private key file) in the record namespace using ssh-keygen, and
/// commits it in the registry with plain git.
fn resign_record(w: &World, key: &Path, fields: &[(&str, &str)]) -> String {
    let path = record_path(w);
    let mut text = fs::read_to_string(&path).expect("read record");
    for (k, v) in fields {
        text = set_field(&text, k, v);
    }
    fs::write(&path, text).expect("write record");
    w.ssh_sign(key, "record@byreis.dev", &path);
    commit_all(w, &w.reg, "re-sign the record")
}

/// A fresh age recipient made with the stock age-keygen.
fn age_recipient(w: &World, name: &str) -> String {
    let path = w.root.join(format!("{name}.agekey"));
    let o = w.tool("age-keygen", &w.root, &["-o", path.to_str().unwrap()], None);
    assert_ok(&o, "age-keygen");
    let o = w.tool("age-keygen", &w.root, &["-y", path.to_str().unwrap()], None);
    assert_ok(&o, "age-keygen -y");
    stdout(&o).trim().to_string()
}

/// `ssh-keygen -l -f KEY.pub` → `SHA256:…`.
fn ssh_fingerprint(w: &World, pub_path: &Path) -> String {
    let o = w.tool(
        "ssh-keygen",
        &w.root,
        &["-l", "-f", pub_path.to_str().unwrap()],
        None,
    );
    assert_ok(&o, "ssh-keygen -l");
    stdout(&o)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_string()
}

// ---------------------------------------------------------------------------
// 1. A second admin.

#[test]
fn second_admin_signs_and_alice_verifies() {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    let me = whoami(&bob.home, &[]);
    assert_eq!(me["signing_key"].as_str(), Some(bob.signing_key.as_str()));
    assert!(
        signing_pub_text(&bob).starts_with(&bob.signing_key),
        "signing_key.pub is bob's key"
    );
    let reg_before = reg_head(&w);
    add_admin(&w, &bob);
    assert_ne!(reg_head(&w), reg_before, "admin add made a registry commit");
    // The roster change is a signed registry commit stock git verifies.
    let o = w.verify_commit(&w.reg, "HEAD");
    assert_ok(&o, "git verify-commit of the roster change");

    let list = admin_list(&w);
    assert_eq!(list["roster_version"], 2, "{list}");
    assert_eq!(admin_names(&list), ["alice", "bob"], "{list}");
    let b = &list["admins"][1];
    assert_eq!(
        b["signing_fingerprint"], me["signing_fingerprint"],
        "{list}"
    );
    assert_eq!(b["age_recipient"], me["age_recipient"], "{list}");
    assert_eq!(b["email"], "bob@example.test", "{list}");
    let allowed = fs::read_to_string(w.reg.join("allowed_signers")).unwrap();
    assert!(
        allowed.contains(&format!("bob namespaces=\"git\" {}", bob.signing_key)),
        "{allowed}"
    );
    // Adding an admin gives them no secrets.
    let o = run_env(
        &bob.home,
        &w.proj,
        &["get", "prod", "DB"],
        None,
        &anchor_pin(&w),
    );
    assert_refused(&o, &["identity-not-recipient"], "bob get before rotate");
    assert_no_leak(&o, ALL, "bob get before rotate");

    // A shared bare repository both push to (byreis pushes a project that
    // has an origin).
    let hub = w.root.join("hub.git");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            "--bare",
            w.proj.to_str().unwrap(),
            hub.to_str().unwrap(),
        ],
    );
    w.git_ok(&w.proj, &["remote", "add", "origin", hub.to_str().unwrap()]);
    w.git_ok(&w.proj, &["fetch", "-q", "origin"]);
    w.git_ok(&w.proj, &["branch", "-q", "--set-upstream-to=origin/main"]);

    let o = w.rotate_yes(&[
        "--add",
        &format!("bob={}", me["age_recipient"].as_str().unwrap()),
    ]);
    assert_ok(&o, "rotate --add bob");

    // bob's own clone, a sibling of the registry (byreis.yaml says ../reg).
    let bob_proj = w.root.join("bob-proj");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            hub.to_str().unwrap(),
            bob_proj.to_str().unwrap(),
        ],
    );
    let o = run(
        &bob.home,
        &bob_proj,
        &["trust", "--anchor", &w.anchor],
        None,
    );
    assert_ok(&o, "bob trust --anchor");
    assert_eq!(w.get_ok(&bob.home, &bob_proj, "prod", "DB"), PROD_DB);

    let o = run(
        &bob.home,
        &bob_proj,
        &["set", "prod", "DB"],
        Some("bob-db-value\n"),
    );
    assert_ok(&o, "bob set prod DB");
    assert_eq!(w.get_ok(&bob.home, &bob_proj, "prod", "DB"), "bob-db-value");
    let bob_commit = w.git_ok(&bob_proj, &["rev-parse", "HEAD"]);
    let manifest = fs::read_to_string(bob_proj.join(".byreis/manifest.yaml")).unwrap();
    assert_eq!(field(&manifest, "signer"), "bob", "{manifest}");
    assert_eq!(field(&manifest, "roster_version"), "2", "{manifest}");
    let record = fs::read_to_string(record_path(&w)).unwrap();
    assert_eq!(field(&record, "signer"), "bob", "{record}");
    assert_eq!(field(&record, "project_commit"), bob_commit, "{record}");
    let (o, v) = doctor_json(&bob.home, &bob_proj, &[]);
    assert_doctor_ok(&o, &v, "bob doctor after his set");

    // bob's commit verifies with stock git and the registry's allowed_signers.
    let o = w.verify_commit(&bob_proj, &bob_commit);
    assert_ok(&o, "git verify-commit of bob's commit");
    assert_stderr_contains(
        &o,
        "Good \"git\" signature for bob",
        "verify-commit names bob",
    );

    // alice has not fetched bob's commit yet: refused, nothing served.
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_refused(&o, &["pinned-commit-missing"], "alice get before pulling");
    assert_no_leak(&o, &["bob-db-value"], "alice get before pulling");

    w.git_ok(&w.proj, &["pull", "-q", "--ff-only"]);
    assert_eq!(w.git_ok(&w.proj, &["rev-parse", "HEAD"]), bob_commit);
    w.assert_get("prod", "DB", "bob-db-value");
    w.assert_get("prod", "API", PROD_API);
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "alice doctor after bob's set");
    let o = w.verify_commit(&w.proj, &bob_commit);
    assert_ok(&o, "git verify-commit of bob's commit in alice's clone");

    // bob sees the same roster.
    let o = run(
        &bob.home,
        &bob_proj,
        &["admin", "list", "--format", "json"],
        None,
    );
    assert_ok(&o, "bob admin list");
    let bl: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(bl["roster_version"], 2);
    assert_eq!(admin_names(&bl), ["alice", "bob"]);
}

/// BYREIS_ANCHOR for someone without a stored pin.
fn anchor_pin(w: &World) -> [(&'static str, &str); 1] {
    [("BYREIS_ANCHOR", w.anchor.as_str())]
}

// ---------------------------------------------------------------------------
// 2. Removing an admin.

#[test]
fn removed_admin_signatures_no_longer_count_but_history_verifies() {
    let w = World::with_secrets();
    let bob = with_admin_bob(&w);
    let bob_key = bob.home.join("signing_key");
    let bob_fp = w.signing_fp(&bob);

    // While an admin, bob changes a value and rotates carol into staging.
    let o = run(
        &bob.home,
        &w.proj,
        &["set", "prod", "DB"],
        Some("bob-era-db\n"),
    );
    assert_ok(&o, "bob set prod DB");
    let bob_set_commit = w.git_ok(&w.proj, &["rev-parse", "HEAD"]);
    let carol = keygen(&w.root, "carol");
    let o = run(
        &bob.home,
        &w.proj,
        &[
            "rotate",
            "--add",
            &format!("carol={}", carol.recipient),
            "--env",
            "staging",
            "--yes",
        ],
        None,
    );
    assert_ok(&o, "bob rotate --add carol --env staging");
    // alice makes the current state (so the pinned manifest is hers).
    w.set("prod", "API", "alice-api-after-bob");
    assert_eq!(
        field(&fs::read_to_string(w.manifest()).unwrap(), "signer"),
        "alice"
    );

    let o = w.alice_run(&["admin", "remove", "bob"]);
    assert_ok(&o, "admin remove bob");
    // bob is still a reader, and removal says so.
    assert_stderr_contains(&o, "bob is still a reader", "admin remove warns");
    assert_stderr_contains(&o, "rotate --remove bob", "admin remove says what to do");
    assert_stderr_contains(
        &o,
        "forward-secrecy-runbook",
        "admin remove points to the runbook",
    );
    let list = admin_list(&w);
    assert_eq!(list["roster_version"], 3, "{list}");
    assert_eq!(admin_names(&list), ["alice"], "{list}");
    let allowed = fs::read_to_string(w.reg.join("allowed_signers")).unwrap();
    assert!(!allowed.contains(&bob.signing_key), "{allowed}");

    // History signed by bob while he was admin still verifies.
    w.assert_get("prod", "DB", "bob-era-db");
    w.assert_get("prod", "API", "alice-api-after-bob");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after removing bob");
    let o = w.alice_run(&["doctor", "--rotation-history", "--format", "json"]);
    assert_ok(&o, "doctor --rotation-history");
    let h: Value = serde_json::from_slice(&o.stdout).unwrap();
    let bobs = h["rotations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["actor"] == "bob")
        .unwrap_or_else(|| panic!("bob's rotation is not listed: {h}"));
    assert_eq!(bobs["commit_signature_ok"], true, "{h}");
    let o = w.tool("git", &w.proj, &["log", "--format=%an %s"], None);
    assert!(stdout(&o).contains("bob byreis: "), "{}", dump(&o));

    // An older checkout (bob's commit, detached) is served the current
    // state from the pinned commit.
    w.git_ok(&w.proj, &["checkout", "-q", "--detach", &bob_set_commit]);
    let o = w.alice_run(&["get", "prod", "API"]);
    assert_ok(&o, "get in an old checkout");
    assert_eq!(stdout(&o), "alice-api-after-bob\n", "{}", dump(&o));
    assert_stderr_contains(&o, "checkout-not-current", "get notes the old checkout");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor in bob's old checkout");
    assert_eq!(check(&v, "manifest")["status"], "warn", "{v}");
    assert_eq!(check(&v, "manifest")["code"], "checkout-not-current", "{v}");
    w.git_ok(&w.proj, &["checkout", "-q", "main"]);

    // bob's own byreis no longer signs for him: as a member who is not an
    // admin, his change is only a proposal for an admin (ADR 0014).
    let before = w.heads();
    let o = run(
        &bob.home,
        &w.proj,
        &["set", "prod", "DB"],
        Some("bob-after-removal\n"),
    );
    assert_ok(&o, "bob set after removal");
    assert_stderr_contains(&o, "you are not an admin, so this is a proposal", "bob set");
    assert_eq!(w.heads(), before, "bob's proposal changed a signed state");
    w.assert_get("prod", "DB", "bob-era-db");
    w.git_ok(&w.proj, &["branch", "-q", "-D", "byreis/draft/bob"]);

    // bob forges a manifest by hand, signed with his key and claiming
    // roster version 2 (when he was an admin), and pushes it with plain git.
    let current = fs::read_to_string(w.manifest()).unwrap();
    let counter: u64 = field(&current, "counter").parse().unwrap();
    let prev = format!("sha256:{}", sha256_file(&w.root, &w.manifest()));
    let mut forged = current.clone();
    for (k, v) in [
        ("counter", (counter + 1).to_string()),
        ("previous", prev),
        ("time", "2000-01-01T00:00:00Z".to_string()),
        ("roster_version", "2".to_string()),
        ("signer", "bob".to_string()),
        ("signer_key", bob_fp.clone()),
    ] {
        forged = set_field(&forged, k, &v);
    }
    fs::write(w.manifest(), &forged).unwrap();
    w.ssh_sign(&bob_key, "manifest@byreis.dev", &w.manifest());
    let forged_commit = commit_all(&w, &w.proj, "backdated manifest signed by bob");
    w.assert_reads_refused(
        &["manifest-invalid", "manifest-not-pinned"],
        ALL,
        "manifest signed by a removed admin, backdated to roster 2",
    );

    // And a record to pin it, signed by bob, naming roster 2 or 3.
    let forged_hash = format!("sha256:{}", sha256_file(&w.root, &w.manifest()));
    let clean_reg = reg_head(&w);
    for rv in ["2", "3"] {
        w.git_ok(&w.reg, &["reset", "-q", "--hard", &clean_reg]);
        resign_record(
            &w,
            &bob_key,
            &[
                ("counter", &(counter + 1).to_string()),
                ("manifest", &forged_hash),
                ("project_commit", &forged_commit),
                ("roster_version", rv),
                ("signer", "bob"),
                ("signer_key", &bob_fp),
            ],
        );
        w.assert_reads_refused(
            &["record-invalid"],
            ALL,
            &format!("record signed by a removed admin naming roster {rv}"),
        );
        let (o, v) = registry_verify(&w);
        assert_exit(&o, 3, "registry verify with bob's record");
        assert_eq!(check(&v, "record demo")["code"], "record-invalid", "{v}");
    }
}

// Regression (failed at 5856f4e, fixed by 418776e): `admin remove` of the
// admin who signed the currently pinned manifest used to succeed and then
// leave every verb in that project refusing with manifest-invalid (get,
// doctor, set, the `rotate --remove` of docs/admin-keys.md, registry
// refresh, admin list), because records were re-signed under the new
// roster version but the manifests they pin could not be. Either refusing
// the removal (changing nothing) or keeping the pinned manifest valid is
// acceptable; the project must stay usable and the runbook must work.
#[test]
fn removing_the_admin_who_signed_the_current_manifest_keeps_the_project_usable() {
    let w = World::with_secrets();
    let bob = with_admin_bob(&w);
    let o = run(
        &bob.home,
        &w.proj,
        &["set", "prod", "DB"],
        Some("bob-last-db\n"),
    );
    assert_ok(&o, "bob set prod DB");
    assert_eq!(
        field(&fs::read_to_string(w.manifest()).unwrap(), "signer"),
        "bob"
    );

    // The runbook: another admin removes the key, then removes the reader.
    let reg_before = reg_head(&w);
    let removal = w.alice_run(&["admin", "remove", "bob"]);
    if !removal.status.success() {
        // Refusing is fine if it changed nothing and the project still works.
        assert_eq!(
            reg_head(&w),
            reg_before,
            "a refused removal changed the registry"
        );
    }
    let o = w.alice_run(&["get", "prod", "DB"]);
    assert_ok(
        &o,
        "alice get after removing the admin who signed the manifest",
    );
    assert_eq!(stdout(&o), "bob-last-db\n", "{}", dump(&o));
    let o = w.rotate_yes(&["--remove", "bob"]);
    assert_ok(&o, "rotate --remove bob after admin remove bob");
    if !removal.status.success() {
        let o = w.alice_run(&["admin", "remove", "bob"]);
        assert_ok(&o, "admin remove bob once alice signed the manifest");
    }
    assert_eq!(admin_names(&admin_list(&w)), ["alice"]);
    w.set("prod", "DB", "alice-after-removal");
    w.assert_get("prod", "DB", "alice-after-removal");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after removing bob");
}

// Every project of the registry keeps working across roster changes:
// `admin add` and `admin remove` re-sign each project's record under the
// new version in the same commit.
#[test]
fn roster_changes_re_sign_every_project_record() {
    let w = World::with_secrets();
    let other = w.init_other_project();
    let alice_in_other =
        |args: &[&str], stdin: Option<&str>| run(&w.alice.home, &other, args, stdin);
    let o = alice_in_other(&["set", "prod", "TOKEN"], Some("other-token\n"));
    assert_ok(&o, "set in the second project");
    let other_record = w.reg.join("projects/other/record.yaml");
    let counters = || {
        (
            field(&fs::read_to_string(record_path(&w)).unwrap(), "counter"),
            field(&fs::read_to_string(&other_record).unwrap(), "counter"),
        )
    };
    let before = counters();

    let bob = keygen(&w.root, "bob");
    add_admin(&w, &bob);
    let o = w.alice_run(&["admin", "remove", "bob"]);
    assert_ok(&o, "admin remove bob");
    for path in [record_path(&w), other_record.clone()] {
        let r = fs::read_to_string(&path).unwrap();
        assert_eq!(field(&r, "roster_version"), "3", "{}:\n{r}", path.display());
    }
    assert_eq!(
        counters(),
        before,
        "a roster change changed a record's counter"
    );
    // Both projects verify under roster version 3.
    w.assert_get("prod", "DB", PROD_DB);
    let o = alice_in_other(&["get", "prod", "TOKEN"], None);
    assert_ok(&o, "get in the second project");
    assert_eq!(stdout(&o), "other-token\n");
    for dir in [&w.proj, &other] {
        let (o, v) = doctor_json(&w.alice.home, dir, &[]);
        assert_doctor_ok(&o, &v, &format!("doctor in {}", dir.display()));
    }
    let (o, v) = registry_verify(&w);
    assert_exit(&o, 0, "registry verify with two projects");
    assert_eq!(check(&v, "record other")["status"], "ok", "{v}");
}

// ---------------------------------------------------------------------------
// 3. A roster version signed by its new keys only.

#[test]
fn roster_version_signed_only_by_new_keys_is_refused() {
    let w = small_world();
    let bob = keygen(&w.root, "bob");
    add_admin(&w, &bob);
    w.assert_get("prod", "DB", PROD_DB);
    let clean_reg = reg_head(&w);

    let key = w.outsider_ssh_key("mallory_ed25519");
    let pub_path = PathBuf::from(format!("{}.pub", key.display()));
    let mallory_pub = public_key_of(&fs::read_to_string(&pub_path).unwrap());
    let mallory_fp = ssh_fingerprint(&w, &pub_path);
    let mallory_age = age_recipient(&w, "mallory");
    let v2_path = w.reg.join("roster/2.yaml");
    let v2 = fs::read_to_string(&v2_path).unwrap();
    let v2_hash = format!("sha256:{}", sha256_file(&w.root, &v2_path));
    let mallory_entry =
        format!("- name: mallory\n  signing_key: {mallory_pub}\n  age_recipient: {mallory_age}\n");

    // (a) alice and bob kept, mallory added; (b) mallory alone, with the
    // record re-signed by her and allowed_signers regenerated: a takeover
    // whose only flaw is the roster signature.
    for takeover in [false, true] {
        let what = if takeover {
            "roster 3 naming only the outsider"
        } else {
            "roster 3 adding the outsider"
        };
        w.git_ok(&w.reg, &["reset", "-q", "--hard", &clean_reg]);
        let mut v3 = set_field(&v2, "version", "3");
        v3 = set_field(&v3, "previous", &v2_hash);
        if takeover {
            let start = v3.find("\nadmins:\n").expect("admins list") + "\nadmins:\n".len();
            v3.truncate(start);
        }
        v3.push_str(&mallory_entry);
        let v3_path = w.reg.join("roster/3.yaml");
        fs::write(&v3_path, &v3).unwrap();
        w.ssh_sign(&key, "roster@byreis.dev", &v3_path);
        if takeover {
            fs::write(
                w.reg.join("allowed_signers"),
                format!("mallory namespaces=\"git\" {mallory_pub}\n"),
            )
            .unwrap();
            let rp = record_path(&w);
            let mut r = fs::read_to_string(&rp).unwrap();
            for (k, v) in [
                ("roster_version", "3"),
                ("signer", "mallory"),
                ("signer_key", mallory_fp.as_str()),
            ] {
                r = set_field(&r, k, v);
            }
            fs::write(&rp, r).unwrap();
            w.ssh_sign(&key, "record@byreis.dev", &rp);
        }
        // Uncommitted files in the registry's work tree count for nothing.
        w.assert_get("prod", "DB", PROD_DB);

        commit_all(&w, &w.reg, "roster version 3");
        w.assert_reads_refused(&["roster-invalid"], ALL, what);
        let before = w.heads();
        let o = w.alice_run_stdin(&["set", "prod", "DB"], "written-under-forged-roster\n");
        assert_failed(&o, &format!("{what}: set"));
        assert_eq!(w.heads(), before, "{what}: set changed a repository");
        let o = w.alice_run(&["admin", "list"]);
        assert_refused(&o, &["roster-invalid"], &format!("{what}: admin list"));
        let (o, v) = registry_verify(&w);
        assert_exit(&o, 3, &format!("{what}: registry verify"));
        assert_eq!(check(&v, "roster")["status"], "fail", "{v}");
        assert_eq!(check(&v, "roster")["code"], "roster-invalid", "{v}");
    }

    // Without the forged version everything verifies again.
    w.git_ok(&w.reg, &["reset", "-q", "--hard", &clean_reg]);
    w.assert_get("prod", "DB", PROD_DB);
    let (o, _) = registry_verify(&w);
    assert_exit(&o, 0, "registry verify after dropping the forged version");
}

/// `ssh-ed25519 AAAA…` of an OpenSSH `.pub` line, without the comment.
fn public_key_of(line: &str) -> String {
    let mut f = line.split_whitespace();
    format!("{} {}", f.next().unwrap(), f.next().unwrap())
}

// ---------------------------------------------------------------------------
// 4. A deleted roster version.

#[test]
fn deleted_roster_version_is_caught_by_a_machine_that_saw_it() {
    let w = small_world();
    let before_change = reg_head(&w);
    let bob = keygen(&w.root, "bob");
    add_admin(&w, &bob);
    let with_v2 = reg_head(&w);
    // alice's machine sees roster version 2.
    w.assert_get("prod", "DB", PROD_DB);
    let o = w.alice_run(&["trust", "--show"]);
    assert_ok(&o, "trust --show");
    assert_stderr_contains(&o, "roster version 2", "alice's machine remembers roster 2");

    // The roster change is deleted from the registry's history.
    w.git_ok(&w.reg, &["reset", "-q", "--hard", &before_change]);
    assert!(!w.reg.join("roster/2.yaml").exists());
    w.assert_reads_refused(&["roster-rollback"], ALL, "roster version 2 deleted");
    let o = w.alice_run_stdin(&["set", "prod", "DB"], "written-after-rollback\n");
    assert_refused(&o, &["roster-rollback"], "set after the rollback");
    assert_eq!(
        reg_head(&w),
        before_change,
        "refused set changed the registry"
    );
    let o = w.alice_run(&["registry", "refresh"]);
    assert_refused(
        &o,
        &["roster-rollback"],
        "registry refresh after the rollback",
    );
    assert_eq!(
        reg_head(&w),
        before_change,
        "refused refresh changed the registry"
    );

    // Putting it back is accepted.
    w.git_ok(&w.reg, &["reset", "-q", "--hard", &with_v2]);
    w.assert_get("prod", "DB", PROD_DB);
}

// ---------------------------------------------------------------------------
// 5. Signing through a real ssh-agent.

/// An ssh-agent started by the test (`ssh-agent -D -a SOCK`), killed on drop.
struct SshAgent {
    child: Child,
    sock: PathBuf,
}

impl SshAgent {
    fn start(root: &Path) -> SshAgent {
        let sock = root.join("agent.sock");
        let child = clean_command("ssh-agent", root, root)
            .args(["-D", "-a", sock.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start ssh-agent: {e} (is it installed?)"));
        let agent = SshAgent { child, sock };
        let deadline = Instant::now() + Duration::from_secs(10);
        // The socket file appears at bind(), before listen(): wait until
        // the agent accepts a connection.
        while std::os::unix::net::UnixStream::connect(&agent.sock).is_err() {
            assert!(Instant::now() < deadline, "ssh-agent accepts no connection");
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    fn env(&self) -> [(&'static str, &str); 1] {
        [("SSH_AUTH_SOCK", self.sock.to_str().unwrap())]
    }

    /// Runs ssh-add ARGS against this agent; a passphrase comes from an
    /// SSH_ASKPASS script, never a terminal.
    fn ssh_add(&self, root: &Path, askpass: &Path, args: &[&str]) -> Output {
        clean_command("ssh-add", root, root)
            .args(args)
            .env("SSH_AUTH_SOCK", &self.sock)
            .env("SSH_ASKPASS", askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", "x")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("could not start ssh-add: {e} (is it installed?)"))
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn signing_through_ssh_agent() {
    let tmp = tempfile::Builder::new()
        .prefix("byreis-it-agent-")
        .tempdir()
        .unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let t = |program: &str, dir: &Path, args: &[&str], stdin: Option<&[u8]>| {
        tool(program, &root, dir, args, stdin)
    };
    let git_ok = |dir: &Path, args: &[&str]| {
        let o = t("git", dir, args, None);
        assert_ok(&o, &format!("git {}", args.join(" ")));
        stdout(&o).trim().to_string()
    };

    // A passphrase-protected key, added to a fresh agent through SSH_ASKPASS.
    let key = root.join("carol_ed25519");
    let o = t(
        "ssh-keygen",
        &root,
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "secret",
            "-C",
            "carol-agent",
            "-f",
            key.to_str().unwrap(),
        ],
        None,
    );
    assert_ok(&o, "ssh-keygen -N secret");
    let key_pub = root.join("carol_ed25519.pub");
    let pub_line = public_key_of(&fs::read_to_string(&key_pub).unwrap());
    let askpass = root.join("askpass.sh");
    write_script(&askpass, "echo secret");
    let agent = SshAgent::start(&root);
    let o = agent.ssh_add(&root, &askpass, &[key.to_str().unwrap()]);
    assert_ok(&o, "ssh-add with SSH_ASKPASS");
    let o = agent.ssh_add(&root, &askpass, &["-L"]);
    assert_ok(&o, "ssh-add -L");
    assert!(stdout(&o).contains(&pub_line), "{}", dump(&o));
    let env = agent.env();

    // carol's signing key is the .pub file: byreis signs through the agent.
    let carol = root.join("carol");
    let o = run_env(
        &carol,
        &root,
        &[
            "keygen",
            "--name",
            "carol",
            "--signing-key",
            key_pub.to_str().unwrap(),
        ],
        None,
        &env,
    );
    assert_ok(&o, "keygen --signing-key key.pub");
    assert!(stdout(&o).contains(&pub_line), "{}", dump(&o));
    assert!(
        !carol.join("signing_key").exists(),
        "keygen wrote a private key"
    );

    let reg = root.join("reg");
    let o = run_env(
        &carol,
        &root,
        &["registry", "init", reg.to_str().unwrap()],
        None,
        &env,
    );
    assert_ok(&o, "registry init through the agent");
    let proj = root.join("proj");
    fs::create_dir(&proj).unwrap();
    git_ok(&proj, &["init", "-q", "-b", "main"]);
    let o = run_env(
        &carol,
        &proj,
        &[
            "init",
            "--project",
            "demo",
            "--registry",
            reg.to_str().unwrap(),
        ],
        None,
        &env,
    );
    assert_ok(&o, "init through the agent");
    let o = run_env(
        &carol,
        &proj,
        &["set", "prod", "DB"],
        Some("agent-signed-value\n"),
        &env,
    );
    assert_ok(&o, "set through the agent");
    let o = run(&carol, &proj, &["get", "prod", "DB"], None);
    assert_ok(&o, "get (no agent needed to read)");
    assert_eq!(stdout(&o), "agent-signed-value\n");
    let (o, v) = doctor_json(&carol, &proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after agent-signed writes");

    // Stock tools verify what the agent signed.
    let cfg = format!(
        "gpg.ssh.allowedSignersFile={}",
        reg.join("allowed_signers").display()
    );
    for dir in [&proj, &reg] {
        let o = t("git", dir, &["-c", &cfg, "verify-commit", "HEAD"], None);
        assert_ok(&o, "git verify-commit of an agent-signed commit");
        assert_stderr_contains(&o, "Good \"git\" signature for carol", "verify-commit");
    }
    let signers = root.join("manifest_signers");
    fs::write(&signers, format!("carol {pub_line}\n")).unwrap();
    let manifest = fs::read(proj.join(".byreis/manifest.yaml")).unwrap();
    let o = t(
        "ssh-keygen",
        &root,
        &[
            "-Y",
            "verify",
            "-f",
            signers.to_str().unwrap(),
            "-I",
            "carol",
            "-n",
            "manifest@byreis.dev",
            "-s",
            proj.join(".byreis/manifest.yaml.sig").to_str().unwrap(),
        ],
        Some(&manifest),
    );
    assert_ok(&o, "ssh-keygen -Y verify of the agent-signed manifest");

    // No agent: set fails, says why, and changes nothing.
    let snapshot = || {
        (
            git_ok(&proj, &["rev-parse", "HEAD"]),
            git_ok(&reg, &["rev-parse", "HEAD"]),
            fs::read(proj.join(".byreis/manifest.yaml")).unwrap(),
            fs::read(proj.join("secrets/prod.enc.yaml")).unwrap(),
            git_ok(&proj, &["status", "--porcelain"]),
        )
    };
    let before = snapshot();
    let o = run(
        &carol,
        &proj,
        &["set", "prod", "DB"],
        Some("no-agent-value\n"),
    );
    assert_failed(&o, "set without SSH_AUTH_SOCK");
    assert_stderr_contains(&o, "ssh-agent", "set without an agent");
    assert_no_leak(
        &o,
        &["agent-signed-value", "no-agent-value"],
        "set without an agent",
    );
    assert_eq!(snapshot(), before, "set without an agent changed something");

    // An agent that does not hold the key: same.
    let o = agent.ssh_add(&root, &askpass, &["-D"]);
    assert_ok(&o, "ssh-add -D");
    let o = run_env(
        &carol,
        &proj,
        &["set", "prod", "DB"],
        Some("no-key-value\n"),
        &env,
    );
    assert_failed(&o, "set with an agent that lacks the key");
    assert_stderr_contains(&o, "ssh-agent", "set with an agent that lacks the key");
    assert_eq!(
        snapshot(),
        before,
        "set with a keyless agent changed something"
    );

    // A passphrase-protected private key file signs through the agent
    // when the agent holds it, and cannot be used non-interactively when not.
    let o = agent.ssh_add(&root, &askpass, &[key.to_str().unwrap()]);
    assert_ok(&o, "ssh-add again");
    let dave = root.join("dave");
    let o = run_env(
        &dave,
        &root,
        &[
            "keygen",
            "--name",
            "dave",
            "--signing-key",
            key.to_str().unwrap(),
        ],
        None,
        &env,
    );
    assert_ok(
        &o,
        "keygen --signing-key (passphrase-protected private key)",
    );
    assert_eq!(
        whoami(&dave, &env)["signing_key"].as_str(),
        Some(pub_line.as_str())
    );
    let o = run(&dave, &dave, &["whoami"], None);
    assert_failed(&o, "whoami with a locked key and no agent");
    assert_stderr_contains(&o, "ssh-agent", "locked key without an agent");
    assert!(!stderr(&o).contains("secret"), "{}", dump(&o));

    // With the key back in the agent, carol signs again.
    let o = run_env(
        &carol,
        &proj,
        &["set", "prod", "DB"],
        Some("agent-again\n"),
        &env,
    );
    assert_ok(&o, "set after re-adding the key");
    drop(agent);
    let o = run(&carol, &proj, &["get", "prod", "DB"], None);
    assert_eq!(stdout(&o), "agent-again\n", "{}", dump(&o));
}

// ---------------------------------------------------------------------------
// 6. Record expiry and `registry refresh`.

#[test]
fn expired_record_is_refused_until_refreshed() {
    let w = small_world();
    let bob = keygen(&w.root, "bob");
    add_admin(&w, &bob);
    let alice_key = w.alice.home.join("signing_key");

    resign_record(&w, &alice_key, &[("expires", "2000-01-01T00:00:00Z")]);
    w.assert_reads_refused(&["record-expired"], ALL, "expired record");
    let o = w.alice_run(&["get", "prod", "DB"]);
    // The refusal names who can renew it, and how.
    assert_stderr_contains(&o, "bob", "expired: names the admins");
    assert_stderr_contains(&o, "byreis registry refresh", "expired: says how to renew");
    let (o, v) = registry_verify(&w);
    assert_exit(&o, 3, "registry verify of an expired record");
    assert_eq!(check(&v, "record demo")["code"], "record-expired", "{v}");

    // Someone who is not an admin cannot renew it.
    let carol = keygen(&w.root, "carol");
    let reg_before = reg_head(&w);
    let o = run_env(
        &carol.home,
        &w.proj,
        &["registry", "refresh"],
        None,
        &anchor_pin(&w),
    );
    assert_failed(&o, "registry refresh by a non-admin");
    assert_eq!(
        reg_head(&w),
        reg_before,
        "a non-admin's refresh changed the registry"
    );

    let o = w.alice_run(&["registry", "refresh"]);
    assert_ok(&o, "registry refresh of an expired record");
    assert_ne!(reg_head(&w), reg_before, "refresh made a registry commit");
    let o2 = w.verify_commit(&w.reg, "HEAD");
    assert_ok(&o2, "git verify-commit of the refresh");
    let expires = field(&fs::read_to_string(record_path(&w)).unwrap(), "expires");
    let exp = chrono::DateTime::parse_from_rfc3339(&expires)
        .unwrap_or_else(|e| panic!("expires {expires:?}: {e}"));
    assert!(
        exp.with_timezone(&chrono::Utc) > chrono::Utc::now() + chrono::Duration::days(80),
        "refresh set expires {expires}\n{}",
        dump(&o)
    );
    w.assert_get("prod", "DB", PROD_DB);
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after refresh");
    assert_eq!(check(&v, "record")["status"], "ok", "{v}");
    let (o, _) = registry_verify(&w);
    assert_exit(&o, 0, "registry verify after refresh");

    // An expiry within 14 days is a warning, not a failure.
    let soon = (chrono::Utc::now() + chrono::Duration::days(7))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    resign_record(&w, &alice_key, &[("expires", &soon)]);
    w.assert_get("prod", "DB", PROD_DB);
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor with a record expiring soon");
    assert_eq!(check(&v, "record")["status"], "warn", "{v}");
    assert_eq!(check(&v, "record")["code"], "record-expiring", "{v}");
    let (o, v) = registry_verify(&w);
    assert_exit(&o, 0, "registry verify with a record expiring soon");
    assert_eq!(check(&v, "record demo")["code"], "record-expiring", "{v}");
    let o = w.alice_run(&["registry", "refresh"]);
    assert_ok(&o, "registry refresh of an expiring record");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after the second refresh");
    assert_eq!(check(&v, "record")["status"], "ok", "{v}");
}

// ---------------------------------------------------------------------------
// 7. Refused roster changes change nothing.

#[test]
fn refused_admin_changes_leave_the_registry_alone() {
    let w = small_world();
    let bob = keygen(&w.root, "bob");
    add_admin(&w, &bob);
    let carol = keygen(&w.root, "carol");
    let alice_pub = w.alice.home.join("signing_key.pub");

    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "alice removes herself",
            vec!["admin".into(), "remove".into(), "alice".into()],
            "yourself",
        ),
        (
            "removing a non-admin",
            vec!["admin".into(), "remove".into(), "carol".into()],
            "not an admin",
        ),
        (
            "adding an existing admin's name",
            vec![
                "admin".into(),
                "add".into(),
                "bob".into(),
                "--signing-key".into(),
                carol.signing_key.clone(),
                "--age".into(),
                carol.recipient.clone(),
            ],
            "already an admin",
        ),
        (
            // The same key, spelled with a comment and read from a path.
            "adding alice's key under another name",
            vec![
                "admin".into(),
                "add".into(),
                "alice2".into(),
                "--signing-key".into(),
                alice_pub.display().to_string(),
                "--age".into(),
                carol.recipient.clone(),
            ],
            "already belongs",
        ),
        (
            "adding bob's key under another name",
            vec![
                "admin".into(),
                "add".into(),
                "bobby".into(),
                "--signing-key".into(),
                signing_pub_text(&bob),
                "--age".into(),
                carol.recipient.clone(),
            ],
            "already belongs",
        ),
        (
            "an invalid name",
            vec![
                "admin".into(),
                "add".into(),
                "Carol Smith".into(),
                "--signing-key".into(),
                carol.signing_key.clone(),
                "--age".into(),
                carol.recipient.clone(),
            ],
            "",
        ),
        (
            "an age recipient that is not a key",
            vec![
                "admin".into(),
                "add".into(),
                "carol".into(),
                "--signing-key".into(),
                carol.signing_key.clone(),
                "--age".into(),
                "age1notakey".into(),
            ],
            "",
        ),
    ];
    let list_before = admin_list(&w);
    for (what, args, needle) in &cases {
        let before = (reg_head(&w), w.heads());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = w.alice_run(&args);
        assert_failed(&o, what);
        if !needle.is_empty() {
            assert_stderr_contains(&o, needle, what);
        }
        assert_eq!(
            (reg_head(&w), w.heads()),
            before,
            "{what}: something changed"
        );
        assert_eq!(
            stdout(&w.git(&w.reg, &["status", "--porcelain"])),
            "",
            "{what}: the registry work tree changed"
        );
    }
    // Someone who is not an admin cannot change the roster.
    let before = reg_head(&w);
    let o = run_env(
        &carol.home,
        &w.proj,
        &[
            "admin",
            "add",
            "carol",
            "--signing-key",
            &carol.signing_key,
            "--age",
            &carol.recipient,
        ],
        None,
        &anchor_pin(&w),
    );
    assert_failed(&o, "a non-admin adds herself");
    assert_eq!(
        reg_head(&w),
        before,
        "a non-admin's admin add changed the registry"
    );

    assert_eq!(admin_list(&w), list_before, "the roster changed");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after the refusals");
}

// ---------------------------------------------------------------------------
// The registry's own audit log (one signed entry per roster change).

/// `sha256:HEX` of one audit line (without its newline), as byreis chains them.
fn line_hash(line: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(line.as_bytes());
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// An audit line for `body` (a JSON object), signed with `key` by
/// ssh-keygen in the audit namespace: `{…,"sig":"BASE64 SSHSIG"}`.
fn signed_audit_line(w: &World, key: &Path, body: &Value) -> String {
    let text = serde_json::to_string(body).unwrap();
    let file = w.root.join("audit-entry.json");
    fs::write(&file, &text).unwrap();
    w.ssh_sign(key, "audit@byreis.dev", &file);
    let armored = fs::read_to_string(w.root.join("audit-entry.json.sig")).unwrap();
    let b64: String = armored
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    format!("{},\"sig\":\"{b64}\"}}", text.strip_suffix('}').unwrap())
}

// The roster pins the head of the registry's audit log, so deleting the
// entry that records a roster change is caught; and an admin removed in
// roster version 3 cannot append entries with their key.
#[test]
fn registry_audit_log_is_complete_and_signed_by_then_current_admins() {
    let w = World::new();
    let bob = keygen(&w.root, "bob");
    add_admin(&w, &bob);
    let o = w.alice_run(&["admin", "remove", "bob"]);
    assert_ok(&o, "admin remove bob");
    let (o, v) = registry_verify(&w);
    assert_exit(&o, 0, "registry verify after add and remove");
    assert_eq!(check(&v, "registry-audit")["status"], "ok", "{v}");
    let clean = reg_head(&w);
    let log_path = w.reg.join("audit.jsonl");
    let log = fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");

    // (a) The entry recording bob's removal is deleted.
    fs::write(&log_path, format!("{}\n", lines[0])).unwrap();
    commit_all(&w, &w.reg, "drop an audit entry");
    let (o, v) = registry_verify(&w);
    assert_exit(&o, 3, "registry verify of a truncated registry audit log");
    assert_eq!(check(&v, "registry-audit")["code"], "audit-broken", "{v}");

    // (b) bob, removed in roster version 3, appends an entry with his key.
    w.git_ok(&w.reg, &["reset", "-q", "--hard", &clean]);
    let forged = signed_audit_line(
        &w,
        &bob.home.join("signing_key"),
        &serde_json::json!({
            "seq": 3,
            "time": "2000-01-01T00:00:00Z",
            "project": "registry",
            "actor": "bob",
            "actor_key": w.signing_fp(&bob),
            "action": "admin-add",
            "counter_from": 3,
            "counter_to": 4,
            "roster_version": 2,
            "prev": line_hash(lines[1]),
            "details": {"admin": "mallory"},
        }),
    );
    fs::write(&log_path, format!("{log}{forged}\n")).unwrap();
    commit_all(&w, &w.reg, "an audit entry signed by a removed admin");
    let (o, v) = registry_verify(&w);
    assert_exit(
        &o,
        3,
        "registry verify of an entry signed by a removed admin",
    );
    assert_eq!(check(&v, "registry-audit")["code"], "audit-broken", "{v}");
}

fn roster_branches(w: &World) -> Vec<String> {
    roster_branches_in(w, &w.reg)
}

/// The `byreis/roster/*` branches of the registry repository at `dir`.
fn roster_branches_in(w: &World, dir: &Path) -> Vec<String> {
    w.git_ok(
        dir,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/byreis/roster/",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn roster_version(w: &World) -> u64 {
    let list = whoami_admin_list(w);
    list["roster_version"].as_u64().expect("roster_version")
}

fn whoami_admin_list(w: &World) -> serde_json::Value {
    let o = w.alice_run(&["admin", "list", "--format", "json"]);
    assert_ok(&o, "admin list");
    serde_json::from_slice(&o.stdout).expect("admin list JSON")
}

/// With a roster threshold of 2, a roster change is a proposal on a
/// registry branch; it lands only when 2 admins of version N and 2 of
/// N+1 signed its exact bytes; the proposer counts once; a proposal whose
/// bytes changed after signing keeps none of the old signatures.
#[test]
fn roster_changes_need_the_roster_threshold() {
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    add_admin(&w, &bob);
    assert_eq!(roster_version(&w), 2);

    // Raising the roster threshold to 2 already needs 2 admins of the
    // new version: a proposal.
    let o = w.alice_run(&["admin", "thresholds", "--roster", "2"]);
    assert_ok(&o, "propose thresholds --roster 2");
    assert_stderr_contains(&o, "proposed, not landed", "thresholds proposal");
    assert_eq!(roster_version(&w), 2, "nothing landed");
    let branches = roster_branches(&w);
    assert_eq!(branches.len(), 1, "{branches:?}");
    let o = w.alice_run(&["approve", &branches[0], "--yes"]);
    assert_failed(&o, "the proposer approving again");
    assert_stderr_contains(&o, "already approved", "counts once");
    let o = w.run_as(&bob, &["approve", &branches[0], "--yes"]);
    assert_ok(&o, "bob approves");
    assert_stderr_contains(&o, "thresholds: roster 1 -> 2", "bob sees the change");
    assert_stderr_contains(&o, "roster version 3 landed", "it lands");
    assert_eq!(roster_version(&w), 3);
    assert!(roster_branches(&w).is_empty(), "landed branch removed");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after the roster change");
    // Stock tools see two roster signatures on version 3.
    let sig = fs::read_to_string(w.reg.join("roster/3.yaml.sig")).unwrap();
    assert_eq!(sig.matches("-----BEGIN SSH SIGNATURE-----").count(), 2);

    // Adding carol: 2 of version 3 and 2 of version 4.
    let carol = keygen(&w.root, "carol");
    let me = whoami(&carol.home, &[]);
    let propose_carol = || {
        w.alice_run(&[
            "admin",
            "add",
            "carol",
            "--signing-key",
            &signing_pub_text(&carol),
            "--age",
            me["age_recipient"].as_str().unwrap(),
        ])
    };
    let o = propose_carol();
    assert_ok(&o, "propose admin add carol");
    assert_stderr_contains(&o, "proposed, not landed", "add proposal");
    let branch = roster_branches(&w).pop().expect("a proposal branch");

    // A registry writer changes the proposed bytes after alice signed:
    // her signature no longer counts, so bob's alone does not land it.
    let tampered = w.root.join("tampered");
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            "-b",
            &branch,
            w.reg.to_str().unwrap(),
            tampered.to_str().unwrap(),
        ],
    );
    replace_in_file(
        &tampered.join("roster/4.yaml"),
        "record_expiry_days: 90",
        "record_expiry_days: 91",
    );
    w.git_ok(&tampered, &["commit", "-qam", "edit"]);
    w.git_ok(&tampered, &["push", "-q", "origin", &branch]);
    let o = w.run_as(&bob, &["approve", &branch, "--yes"]);
    // Either refused outright or not landed: never version 4.
    assert!(
        !stderr(&o).contains("landed ("),
        "a tampered proposal landed\n{}",
        dump(&o)
    );
    assert_eq!(roster_version(&w), 3, "{}", dump(&o));
    w.git_ok(&w.reg, &["branch", "-D", &branch]);

    // Proposed again, cleanly: bob's approval lands it.
    let o = propose_carol();
    assert_ok(&o, "propose admin add carol again");
    let branch = roster_branches(&w).pop().expect("a proposal branch");
    let o = w.run_as(&bob, &["approve", &branch, "--yes"]);
    assert_ok(&o, "bob approves carol");
    assert_stderr_contains(&o, "admin added: carol", "bob sees who is added");
    assert_eq!(roster_version(&w), 4);
    let list = whoami_admin_list(&w);
    assert!(list.to_string().contains("carol"), "{list}");
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    assert_doctor_ok(&o, &v, "doctor after adding carol");
}

/// Admin signing keys are ed25519 only, and a signing key file others can
/// read is never used.
#[test]
fn weak_or_exposed_signing_keys_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let w = World::with_secrets();
    let bob = keygen(&w.root, "bob");
    let bob_age = whoami(&bob.home, &[])["age_recipient"]
        .as_str()
        .unwrap()
        .to_string();
    for (kind, bits) in [("rsa", "3072"), ("ecdsa", "256")] {
        let path = w.root.join(format!("bob-{kind}"));
        let o = w.tool(
            "ssh-keygen",
            &w.root,
            &[
                "-q",
                "-t",
                kind,
                "-b",
                bits,
                "-N",
                "",
                "-f",
                path.to_str().unwrap(),
            ],
            None,
        );
        assert_ok(&o, "ssh-keygen");
        let public = fs::read_to_string(path.with_extension("pub")).unwrap();
        let before = w.heads();
        let o = w.alice_run(&[
            "admin",
            "add",
            "bob",
            "--signing-key",
            public.trim(),
            "--age",
            &bob_age,
        ]);
        assert_failed(&o, &format!("an {kind} signing key"));
        assert_stderr_contains(&o, "ssh-ed25519", &format!("{kind}: says what is accepted"));
        assert_eq!(w.heads(), before, "{kind}: nothing changed");
    }
    // alice's own signing key made group-readable: no signed write.
    let key = w.alice.home.join("signing_key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let before = w.heads();
    let o = w.alice_run_stdin(&["set", "prod", "DB"], "x\n");
    assert_failed(&o, "a group-readable signing key");
    assert_eq!(w.heads(), before, "nothing signed with an exposed key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    w.set("prod", "DB", "after-the-fix");
}

/// Roster proposals on a registry reached by URL (a bare repository, as
/// teams share one): the proposer's managed clone pushes the proposal
/// branch; another admin's `approve`, on another machine, fetches it from
/// the shared registry, checks it and lands it there; a third machine then
/// verifies the new roster.
#[test]
fn roster_proposals_travel_through_a_url_registry() {
    let w = World::new();
    let url = w.bare_registry_url();
    let bare = w.root.join("reg.git");
    let proj = w.root.join("urlproj");
    fs::create_dir(&proj).unwrap();
    w.git_ok(&proj, &["init", "-q", "-b", "main"]);
    let alice = |args: &[&str]| run(&w.alice.home, &proj, args, None);
    assert_ok(
        &alice(&["init", "--project", "urlproj", "--registry", &url]),
        "init on a URL registry",
    );
    // The registry now lives at the URL: the roster says so, so a teammate's
    // `trust` accepts the location byreis.yaml names (ADR 0015).
    assert_ok(&alice(&["admin", "location", &url]), "admin location URL");
    assert_ok(&alice(&["set", "prod", "DB", "v1"]), "set");
    let bob = keygen(&w.root, "bob");
    let o = alice(&admin_add_args(&bob));
    assert_ok(&o, "admin add bob");
    let bob_clone = clone_and_trust(&w, &proj, &bob);
    let bob_run = |args: &[&str]| run(&bob.home, &bob_clone, args, None);
    let shared_branches = || roster_branches_in(&w, &bare);
    let shared_roster = |v: u64| {
        w.git(&bare, &["cat-file", "-e", &format!("main:roster/{v}.yaml")])
            .status
            .success()
    };

    let o = alice(&["admin", "thresholds", "--roster", "2"]);
    assert_ok(&o, "propose --roster 2");
    assert_stderr_contains(&o, "proposed, not landed", "a proposal");
    let branches = shared_branches();
    assert_eq!(
        branches.len(),
        1,
        "the proposal reached the shared registry"
    );
    assert!(!shared_roster(4));
    let o = bob_run(&["approve", &branches[0], "--yes"]);
    assert_ok(&o, "bob approves from his machine (fetches the branch)");
    assert_stderr_contains(&o, "roster version 4 landed", "it lands");
    assert!(shared_roster(4), "version 4 pushed to the shared registry");
    assert!(
        shared_branches().is_empty(),
        "the landed branch removed there"
    );

    // The next roster change needs both again.
    assert_ok(&alice(&["registry", "pull"]), "alice pulls the registry");
    let carol = keygen(&w.root, "carol");
    let o = alice(&admin_add_args(&carol));
    assert_ok(&o, "propose admin add carol");
    assert_stderr_contains(&o, "proposed, not landed", "a proposal");
    let branches = shared_branches();
    assert_eq!(branches.len(), 1);
    let o = bob_run(&["approve", &branches[0], "--yes"]);
    assert_ok(&o, "bob approves the second change");
    assert_stderr_contains(&o, "roster version 5 landed", "it lands");
    assert!(shared_roster(5));

    // A third machine verifies the new roster from the shared registry.
    let carol_clone = clone_and_trust(&w, &proj, &carol);
    let (o, v) = doctor_json(&carol.home, &carol_clone, &[]);
    assert_doctor_ok(&o, &v, "doctor on a third machine");
    let o = run(&carol.home, &carol_clone, &["admin", "list"], None);
    assert_ok(&o, "admin list");
    for name in ["alice", "bob", "carol"] {
        assert!(stdout(&o).contains(name), "{name} listed\n{}", dump(&o));
    }
}
