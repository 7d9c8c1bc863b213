//! The registry's CI: the workflow shipped in `registry-template/` runs the
//! keyless `byreis registry verify` on pull requests with a read-only token,
//! and that command passes on a fresh registry and fails (exit 3, with a
//! named code) on an unexpected file, a wrong anchor and a tampered
//! `allowed_signers`, all committed.
//!
//! Self-contained (std, tempfile, serde_json): every command runs with a
//! cleared environment, so nothing from the developer's machine leaks in.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const WORKFLOW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/registry-template/.github/workflows/verify.yml"
);

/// Lines of a YAML file without comments and blank lines.
fn yaml_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        })
        .collect()
}

/// The (trimmed) lines nested under the top-level `key:`, in order.
fn top_level_block<'a>(lines: &[&'a str], key: &str) -> Vec<&'a str> {
    let header = format!("{key}:");
    let Some(start) = lines.iter().position(|l| l.trim_end() == header) else {
        panic!("the workflow has no top-level `{header}` block");
    };
    lines[start + 1..]
        .iter()
        .take_while(|l| l.starts_with(' '))
        .map(|l| l.trim())
        .collect()
}

#[test]
fn workflow_runs_keyless_verify_on_pull_requests() {
    let text = fs::read_to_string(WORKFLOW).expect("read the registry's verify workflow");
    let lines = yaml_lines(&text);

    let on = top_level_block(&lines, "on");
    assert!(
        on.contains(&"pull_request:") || on.contains(&"pull_request"),
        "the workflow must run on pull_request; `on:` is {on:?}"
    );
    assert!(
        on.contains(&"push:") && on.iter().any(|l| l.contains("main")),
        "the workflow must run on pushes to main; `on:` is {on:?}"
    );

    let permissions = top_level_block(&lines, "permissions");
    assert_eq!(
        permissions,
        ["contents: read"],
        "the workflow's token must be read-only"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("write-all") || l.contains(": write")),
        "no job may ask for write permissions"
    );
    assert!(
        !lines.iter().any(|l| l.contains("secrets.")),
        "the check is keyless: it must not use secrets"
    );

    assert!(
        lines.iter().any(|l| l.trim() == "fetch-depth: 0"),
        "the registry must be checked out with its full history"
    );
    assert!(
        lines.iter().any(|l| l.contains("vars.BYREIS_ANCHOR")),
        "the anchor comes from the BYREIS_ANCHOR repository variable"
    );
    assert!(
        lines
            .iter()
            .any(|l| { l.contains("cargo install --locked --git") && l.contains("byreis") }),
        "the workflow installs byreis"
    );
    assert!(
        lines.iter().any(|l| {
            l.trim_start().starts_with("run:")
                && l.contains("byreis registry verify")
                && l.contains("--anchor")
        }),
        "the workflow must run `byreis registry verify … --anchor …`"
    );
}

/// A scratch directory with a person's byreis home and git set up so that
/// nothing from the real environment is used.
struct Scratch {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().canonicalize().expect("canonical temp dir");
        Scratch { _tmp: tmp, root }
    }

    fn command(&self, program: &str, dir: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(dir)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", &self.root)
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.test")
            .env("GIT_COMMITTER_NAME", "Test Committer")
            .env("GIT_COMMITTER_EMAIL", "committer@example.test")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs byreis as the person whose home is `root/NAME`.
    fn byreis(&self, person: &str, args: &[&str]) -> Output {
        let mut c = self.command(env!("CARGO_BIN_EXE_byreis"), &self.root);
        c.env("BYREIS_HOME", self.root.join(person)).args(args);
        c.output().expect("run byreis")
    }

    fn git(&self, dir: &Path, args: &[&str]) -> Output {
        let mut c = self.command("git", dir);
        c.args(args);
        c.output().expect("run git (is it installed?)")
    }

    #[track_caller]
    fn git_ok(&self, dir: &Path, args: &[&str]) {
        let o = self.git(dir, args);
        assert!(o.status.success(), "git {args:?}\n{}", dump(&o));
    }

    /// `byreis keygen --name NAME`; returns the printed signing key.
    fn keygen(&self, name: &str) -> String {
        let o = self.byreis(name, &["keygen", "--name", name]);
        assert!(o.status.success(), "keygen {name}\n{}", dump(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("signing key:"))
            .map(|k| k.trim().to_string())
            .unwrap_or_else(|| panic!("keygen printed no signing key\n{}", dump(&o)))
    }

    /// `byreis registry init DIR` as `person`; returns the anchor.
    fn registry_init(&self, person: &str, dir: &str) -> (PathBuf, String) {
        let path = self.root.join(dir);
        let o = self.byreis(person, &["registry", "init", path.to_str().expect("utf-8")]);
        assert!(o.status.success(), "registry init\n{}", dump(&o));
        let anchor = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(!anchor.is_empty(), "registry init printed no anchor");
        (path, anchor)
    }

    /// `byreis registry verify REG --anchor A --format json`.
    fn verify(&self, reg: &Path, anchor: &str) -> (Output, serde_json::Value) {
        let o = self.byreis(
            "auditor",
            &[
                "registry",
                "verify",
                reg.to_str().expect("utf-8"),
                "--anchor",
                anchor,
                "--format",
                "json",
            ],
        );
        let v = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("registry verify printed no JSON ({e})\n{}", dump(&o)));
        (o, v)
    }

    fn commit_all(&self, reg: &Path, message: &str) {
        self.git_ok(reg, &["add", "-A"]);
        self.git_ok(reg, &["commit", "-q", "--no-verify", "-m", message]);
    }
}

fn dump(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn fail_codes(v: &serde_json::Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .expect("checks array")
        .iter()
        .filter(|c| c["status"] == "fail")
        .filter_map(|c| c["code"].as_str().map(String::from))
        .collect()
}

#[track_caller]
fn assert_passes(o: &Output, v: &serde_json::Value, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: expected exit 0\n{}",
        dump(o)
    );
    assert_eq!(v["ok"], true, "{what}: expected ok\n{}", dump(o));
    assert!(fail_codes(v).is_empty(), "{what}\n{}", dump(o));
}

#[track_caller]
fn assert_fails_with(o: &Output, v: &serde_json::Value, code: &str, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(3),
        "{what}: expected exit 3\n{}",
        dump(o)
    );
    assert_eq!(v["ok"], false, "{what}\n{}", dump(o));
    assert!(
        fail_codes(v).iter().any(|c| c == code),
        "{what}: expected a failing check with code {code}\n{}",
        dump(o)
    );
}

#[test]
fn registry_verify_passes_then_catches_committed_tampering() {
    let s = Scratch::new();
    s.keygen("alice");
    let (reg, anchor) = s.registry_init("alice", "registry");

    // A fresh registry verifies from its anchor.
    let (o, v) = s.verify(&reg, &anchor);
    assert_passes(&o, &v, "fresh registry");

    // `registry init` ships the workflow (byte for byte), and it is a file
    // the registry may hold (the fresh registry above verified with it).
    let shipped = fs::read(reg.join(".github/workflows/verify.yml"))
        .expect("registry init writes .github/workflows/verify.yml");
    assert_eq!(shipped, fs::read(WORKFLOW).unwrap(), "the shipped workflow");

    // An unexpected committed file: exit 3, registry-unexpected-file.
    fs::write(reg.join("notes.txt"), "not a registry file\n").expect("write notes.txt");
    let (o, v) = s.verify(&reg, &anchor);
    assert_passes(
        &o,
        &v,
        "an uncommitted file counts for nothing (HEAD is read)",
    );
    s.commit_all(&reg, "add an unexpected file");
    let (o, v) = s.verify(&reg, &anchor);
    assert_fails_with(&o, &v, "registry-unexpected-file", "unexpected file");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("notes.txt"),
        "the failure names the file\n{}",
        dump(&o)
    );
    s.git_ok(&reg, &["rm", "-q", "notes.txt"]);
    s.commit_all(&reg, "remove the unexpected file");
    let (o, v) = s.verify(&reg, &anchor);
    assert_passes(&o, &v, "after removing the unexpected file");

    // A wrong anchor (another registry's): exit 3, roster-anchor-mismatch.
    s.keygen("mallory");
    let (_other, other_anchor) = s.registry_init("mallory", "other-registry");
    assert_ne!(other_anchor, anchor);
    let (o, v) = s.verify(&reg, &other_anchor);
    assert_fails_with(&o, &v, "roster-anchor-mismatch", "wrong anchor");
    // The text output (what CI logs show) names the code too.
    let text = s.byreis(
        "auditor",
        &[
            "registry",
            "verify",
            reg.to_str().expect("utf-8"),
            "--anchor",
            &other_anchor,
        ],
    );
    assert_eq!(text.status.code(), Some(3), "{}", dump(&text));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("[roster-anchor-mismatch]"),
        "{}",
        dump(&text)
    );

    // A tampered allowed_signers, committed: exit 3, allowed-signers-stale.
    let mallory_key = {
        let text = fs::read_to_string(s.root.join("mallory/signing_key.pub"))
            .expect("mallory's public key");
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let signers = reg.join("allowed_signers");
    let mut tampered = fs::read_to_string(&signers).expect("read allowed_signers");
    tampered.push_str(&format!("mallory namespaces=\"git\" {mallory_key}\n"));
    fs::write(&signers, tampered).expect("write allowed_signers");
    s.commit_all(&reg, "trust mallory for git commits");
    let (o, v) = s.verify(&reg, &anchor);
    assert_fails_with(&o, &v, "allowed-signers-stale", "tampered allowed_signers");
}
