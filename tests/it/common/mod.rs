//! Shared helpers for the integration tests: a throw-away "world" (alice's
//! home, an admin registry, a project repo with byreis initialised), runners
//! for the byreis binary and the real tools (git, age, ssh-keygen), and
//! assertions that print stdout/stderr when they fail.
//!
//! Every run gets a cleared environment, so nothing from the developer's
//! machine (their git config, BYREIS_* variables, CI, an agent) leaks in.
//! A missing tool fails the test: these tests exist to check interop with
//! the real tools, so skipping would hide exactly what they check.

#![allow(dead_code)]

pub mod github;

use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// The value of `DB` in `prod` that every world starts with.
pub const PROD_DB: &str = "prod-db-s3cret-7f3a";
/// The value of `API` in `prod`.
pub const PROD_API: &str = "prod api key with spaces";
/// The value of `DB` in `staging`.
pub const STAGING_DB: &str = "staging-db-value-91c2";

/// The path of the byreis binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_byreis")
}

fn base_path() -> OsString {
    std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

/// A command with a cleared, deterministic environment. `home` is the
/// directory used as `HOME` (a temp dir, never the real one).
pub fn clean_command(program: &str, home: &Path, dir: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir)
        .env_clear()
        .env("PATH", base_path())
        .env("HOME", home)
        .env("LC_ALL", "C")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.test")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.test")
        .env("GIT_TERMINAL_PROMPT", "0");
    c
}

/// Runs `cmd`, feeding `stdin` (or an empty stdin), and collects the output.
/// Panics with a clear message when the program cannot be started (a missing
/// tool is a failure, not a skip).
pub fn output(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {:?}: {e} (is it installed?)", cmd));
    // Stdin is fed from another thread while stdout and stderr are read, so
    // a child that writes a lot before reading all its input (age on a
    // large file) cannot deadlock against a full pipe.
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let data = stdin.map(<[u8]>::to_vec);
    let feeder = std::thread::spawn(move || {
        if let Some(data) = data {
            // The child may exit without reading; a broken pipe is fine.
            let _ = pipe.write_all(&data);
        }
    });
    let out = child.wait_with_output().expect("wait for child");
    let _ = feeder.join();
    out
}

/// The byreis command for the person whose `BYREIS_HOME` is `byreis_home`,
/// running in `dir`. `HOME` is the parent of `byreis_home` (inside the
/// world's temp dir).
pub fn byreis_cmd(byreis_home: &Path, dir: &Path) -> Command {
    let home = byreis_home.parent().unwrap_or(byreis_home);
    let mut c = clean_command(bin(), home, dir);
    c.env("BYREIS_HOME", byreis_home);
    c
}

/// Runs byreis as the person with `byreis_home` in `dir`.
pub fn run(byreis_home: &Path, dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    run_env(byreis_home, dir, args, stdin, &[])
}

/// Like [`run`], with extra environment variables.
pub fn run_env(
    byreis_home: &Path,
    dir: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    let mut c = byreis_cmd(byreis_home, dir);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    output(&mut c, stdin.map(str::as_bytes))
}

/// Runs a real tool (git, age, ssh-keygen, sh, …) in `dir` with the clean
/// environment; `home` becomes HOME.
pub fn tool(program: &str, home: &Path, dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = clean_command(program, home, dir);
    c.args(args);
    output(&mut c, stdin)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A readable dump of an output, for failure messages.
pub fn dump(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

#[track_caller]
pub fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what}: expected success\n{}", dump(o));
}

#[track_caller]
pub fn assert_exit(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: expected exit code {code}\n{}",
        dump(o)
    );
}

#[track_caller]
pub fn assert_failed(o: &Output, what: &str) {
    assert!(!o.status.success(), "{what}: expected failure\n{}", dump(o));
}

/// Exit code 3 and `byreis: error[CODE]` on stderr, CODE one of `codes`.
#[track_caller]
pub fn assert_refused(o: &Output, codes: &[&str], what: &str) {
    assert_exit(o, 3, what);
    let err = stderr(o);
    assert!(
        codes
            .iter()
            .any(|c| err.contains(&format!("byreis: error[{c}]"))),
        "{what}: expected one of the codes {codes:?} on stderr\n{}",
        dump(o)
    );
}

/// Neither stdout nor stderr contains any of `secrets`.
#[track_caller]
pub fn assert_no_leak(o: &Output, secrets: &[&str], what: &str) {
    let (out, err) = (stdout(o), stderr(o));
    for s in secrets {
        assert!(
            !out.contains(s) && !err.contains(s),
            "{what}: the secret value {s:?} appeared in the output\n{}",
            dump(o)
        );
    }
}

#[track_caller]
pub fn assert_stderr_contains(o: &Output, needle: &str, what: &str) {
    assert!(
        stderr(o).contains(needle),
        "{what}: expected stderr to contain {needle:?}\n{}",
        dump(o)
    );
}

/// Runs `byreis doctor --format json`, returning the output and the parsed JSON.
pub fn doctor_json(
    byreis_home: &Path,
    dir: &Path,
    env: &[(&str, &str)],
) -> (Output, serde_json::Value) {
    let o = run_env(byreis_home, dir, &["doctor", "--format", "json"], None, env);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor did not print JSON ({e})\n{}", dump(&o)));
    (o, v)
}

/// The failing checks' codes in doctor's JSON.
pub fn doctor_fail_codes(v: &serde_json::Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .expect("checks is an array")
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["code"].as_str().unwrap_or("<no code>").to_string())
        .collect()
}

/// doctor exits 3, reports `ok: false`, and one failing check carries one of `codes`.
#[track_caller]
pub fn assert_doctor_fails(o: &Output, v: &serde_json::Value, codes: &[&str], what: &str) {
    assert_exit(o, 3, what);
    assert_eq!(v["ok"], false, "{what}: doctor said ok\n{}", dump(o));
    let failing = doctor_fail_codes(v);
    assert!(
        failing.iter().any(|c| codes.contains(&c.as_str())),
        "{what}: expected a failing check with one of {codes:?}, got {failing:?}\n{}",
        dump(o)
    );
}

/// doctor exits 0 and reports `ok: true` with no failing check.
#[track_caller]
pub fn assert_doctor_ok(o: &Output, v: &serde_json::Value, what: &str) {
    assert_exit(o, 0, what);
    assert_eq!(v["ok"], true, "{what}: doctor not ok\n{}", dump(o));
    assert!(doctor_fail_codes(v).is_empty(), "{what}\n{}", dump(o));
}

/// Writes an executable shell script.
pub fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\nset -e\n{body}\n")).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}

/// SHA-256 of a file, hex, with the real `sha256sum`.
pub fn sha256_file(home: &Path, path: &Path) -> String {
    let o = tool(
        "sha256sum",
        home,
        Path::new("/"),
        &[path.to_str().expect("utf-8 path")],
        None,
    );
    assert_ok(&o, "sha256sum");
    stdout(&o)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

/// A person: their BYREIS_HOME and public keys.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub home: PathBuf,
    pub recipient: String,
    pub signing_key: String,
}

/// A temporary world: alice (admin) with a registry and an initialised
/// project. Layout under `root`: `alice/` (BYREIS_HOME), `reg/`, `proj/`.
pub struct World {
    _tmp: TempDir,
    pub root: PathBuf,
    pub alice: Person,
    pub reg: PathBuf,
    pub proj: PathBuf,
    pub anchor: String,
}

impl World {
    /// keygen → registry init → git init → byreis init (counter 1).
    pub fn new() -> World {
        let tmp = tempfile::Builder::new()
            .prefix("byreis-it-")
            .tempdir()
            .expect("temp dir");
        let root = tmp.path().canonicalize().expect("canonical temp dir");
        let alice = keygen(&root, "alice");
        let reg = root.join("reg");
        let o = run(
            &alice.home,
            &root,
            &["registry", "init", reg.to_str().unwrap()],
            None,
        );
        assert_ok(&o, "registry init");
        let anchor = stdout(&o).trim().to_string();
        assert!(
            is_anchor_fingerprint(&anchor),
            "anchor {anchor:?}\n{}",
            dump(&o)
        );
        let proj = root.join("proj");
        fs::create_dir(&proj).unwrap();
        let w = World {
            _tmp: tmp,
            root,
            alice,
            reg,
            proj,
            anchor,
        };
        w.git_ok(&w.proj, &["init", "-q", "-b", "main"]);
        let o = w.alice_run(&[
            "init",
            "--project",
            "demo",
            "--registry",
            w.reg.to_str().unwrap(),
        ]);
        assert_ok(&o, "byreis init");
        w
    }

    /// A world with `prod` {DB, API} and `staging` {DB} set (counter 4).
    pub fn with_secrets() -> World {
        let w = World::new();
        w.set("prod", "DB", PROD_DB);
        w.set("prod", "API", PROD_API);
        w.set("staging", "DB", STAGING_DB);
        w
    }

    /// `byreis set ENV KEY` as alice with the value on stdin.
    pub fn set(&self, env: &str, key: &str, value: &str) {
        let o = self.alice_run_stdin(&["set", env, key], &format!("{value}\n"));
        assert_ok(&o, &format!("set {env} {key}"));
    }

    /// Runs byreis as alice in the project.
    pub fn alice_run(&self, args: &[&str]) -> Output {
        run(&self.alice.home, &self.proj, args, None)
    }

    pub fn alice_run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run(&self.alice.home, &self.proj, args, Some(stdin))
    }

    pub fn alice_run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        run_env(&self.alice.home, &self.proj, args, None, env)
    }

    /// Runs git in `dir`; returns the output (may have failed).
    pub fn git(&self, dir: &Path, args: &[&str]) -> Output {
        tool("git", &self.root, dir, args, None)
    }

    /// Runs git in `dir`, asserting success; returns trimmed stdout.
    #[track_caller]
    pub fn git_ok(&self, dir: &Path, args: &[&str]) -> String {
        let o = self.git(dir, args);
        assert_ok(&o, &format!("git {}", args.join(" ")));
        stdout(&o).trim().to_string()
    }

    /// Runs any tool in `dir` with the clean environment.
    pub fn tool(&self, program: &str, dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
        tool(program, &self.root, dir, args, stdin)
    }

    /// HEAD of the project and of the registry (None on an unborn branch).
    pub fn heads(&self) -> (Option<String>, Option<String>) {
        (
            rev_parse_head(self, &self.proj),
            rev_parse_head(self, &self.reg),
        )
    }

    pub fn secrets_file(&self, env: &str) -> PathBuf {
        self.proj.join("secrets").join(format!("{env}.enc.yaml"))
    }

    pub fn manifest(&self) -> PathBuf {
        self.proj.join(".byreis/manifest.yaml")
    }

    /// Encrypts `plaintext` with the real `age` CLI to `recipients`, armored.
    pub fn age_encrypt(&self, plaintext: &str, recipients: &[&str]) -> Vec<u8> {
        let mut args = vec!["-e", "-a"];
        for r in recipients {
            args.push("-r");
            args.push(r);
        }
        let o = self.tool("age", &self.root, &args, Some(plaintext.as_bytes()));
        assert_ok(&o, "age -e");
        o.stdout
    }

    /// Generates an outsider's ed25519 key with ssh-keygen; returns the
    /// private key path.
    pub fn outsider_ssh_key(&self, name: &str) -> PathBuf {
        let path = self.root.join(name);
        let o = self.tool(
            "ssh-keygen",
            &self.root,
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                name,
                "-f",
                path.to_str().unwrap(),
            ],
            None,
        );
        assert_ok(&o, "ssh-keygen -t ed25519");
        path
    }

    /// Signs `file` with `key` in namespace `ns` using ssh-keygen, replacing
    /// `file.sig`.
    pub fn ssh_sign(&self, key: &Path, ns: &str, file: &Path) {
        let sig = PathBuf::from(format!("{}.sig", file.display()));
        let _ = fs::remove_file(&sig);
        let o = self.tool(
            "ssh-keygen",
            &self.root,
            &[
                "-Y",
                "sign",
                "-f",
                key.to_str().unwrap(),
                "-n",
                ns,
                file.to_str().unwrap(),
            ],
            None,
        );
        assert_ok(&o, "ssh-keygen -Y sign");
        assert!(sig.exists(), "ssh-keygen wrote no {}", sig.display());
    }

    /// Runs `get`, `exec` and `doctor` as alice and asserts each is refused
    /// with exit 3 and one of `codes`, and that none of `secrets` shows.
    #[track_caller]
    pub fn assert_reads_refused(&self, codes: &[&str], secrets: &[&str], what: &str) {
        self.assert_reads_refused_env(codes, secrets, what, &[]);
    }

    #[track_caller]
    pub fn assert_reads_refused_env(
        &self,
        codes: &[&str],
        secrets: &[&str],
        what: &str,
        env: &[(&str, &str)],
    ) {
        assert_reads_refused_in(&self.alice.home, &self.proj, codes, secrets, what, env);
    }
}

/// get, exec and doctor in `dir` as the person with `home` are all refused.
#[track_caller]
pub fn assert_reads_refused_in(
    home: &Path,
    dir: &Path,
    codes: &[&str],
    secrets: &[&str],
    what: &str,
    env: &[(&str, &str)],
) {
    let o = run_env(home, dir, &["get", "prod", "DB"], None, env);
    assert_refused(&o, codes, &format!("{what}: get"));
    assert_no_leak(&o, secrets, &format!("{what}: get"));

    let marker = home.parent().unwrap().join("exec-ran");
    let _ = fs::remove_file(&marker);
    let script = format!("printf %s \"$DB\"; touch '{}'", marker.display());
    let o = run_env(
        home,
        dir,
        &["exec", "prod", "--", "sh", "-c", &script],
        None,
        env,
    );
    assert_refused(&o, codes, &format!("{what}: exec"));
    assert_no_leak(&o, secrets, &format!("{what}: exec"));
    assert!(
        !marker.exists(),
        "{what}: exec ran the child although verification failed"
    );

    let (o, v) = doctor_json(home, dir, env);
    assert_doctor_fails(&o, &v, codes, &format!("{what}: doctor"));
    assert_no_leak(&o, secrets, &format!("{what}: doctor"));
}

fn rev_parse_head(w: &World, dir: &Path) -> Option<String> {
    let o = w.git(dir, &["rev-parse", "--verify", "-q", "HEAD"]);
    o.status.success().then(|| stdout(&o).trim().to_string())
}

/// `byreis keygen --name NAME` in `root/NAME`; returns the person.
pub fn keygen(root: &Path, name: &str) -> Person {
    let home = root.join(name);
    let email = format!("{name}@example.test");
    let o = run(
        &home,
        root,
        &["keygen", "--name", name, "--email", &email],
        None,
    );
    assert_ok(&o, &format!("keygen {name}"));
    let out = stdout(&o);
    let field = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("keygen printed no {prefix:?}\n{}", dump(&o)))
    };
    let recipient = field("age recipient:");
    let signing_key = field("signing key:");
    assert!(recipient.starts_with("age1"), "{recipient}");
    assert!(signing_key.starts_with("ssh-ed25519 "), "{signing_key}");
    Person {
        name: name.to_string(),
        home,
        recipient,
        signing_key,
    }
}

/// `xxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`, lowercase alphanumerics.
pub fn is_anchor_fingerprint(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 8
        && groups.iter().all(|g| {
            g.len() == 4
                && g.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Replaces the one occurrence of `from` with `to` in a text file.
#[track_caller]
pub fn replace_in_file(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).expect("read file");
    assert_eq!(
        text.matches(from).count(),
        1,
        "{} should contain {from:?} exactly once:\n{text}",
        path.display()
    );
    fs::write(path, text.replacen(from, to, 1)).expect("write file");
}

// ---------------------------------------------------------------------------
// Helpers for the rotate and crash tests.

/// The path of a person's age identity file (as `byreis keygen` wrote it).
pub fn identity_file(p: &Person) -> PathBuf {
    p.home.join("identity.txt")
}

/// The env that pins the world's anchor for someone with no stored pin.
pub fn anchor_env(w: &World) -> [(&'static str, &str); 1] {
    [("BYREIS_ANCHOR", w.anchor.as_str())]
}

/// The age recipient in a `.pub` file or `age-keygen -y` output, trimmed,
/// without the comment of an OpenSSH public key line.
pub fn public_key_line(text: &str) -> String {
    let mut f = text.split_whitespace();
    let first = f.next().expect("a public key");
    if first.starts_with("ssh-") {
        format!("{first} {}", f.next().expect("key data"))
    } else {
        first.to_string()
    }
}

/// Decodes an ASCII-armored age file into its binary form.
pub fn age_binary(armored: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let text = std::str::from_utf8(armored).expect("an armored age file is text");
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "not an armored age file:\n{text}"
    );
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("armor is base64")
}

/// The header lines (version line, stanzas, MAC line) and the payload
/// (nonce and STREAM ciphertext) of an armored age file.
pub fn age_header_and_payload(armored: &[u8]) -> (Vec<String>, Vec<u8>) {
    let bin = age_binary(armored);
    let mac = bin
        .windows(5)
        .position(|w| w == b"\n--- ")
        .expect("age header has a MAC line");
    let end = mac
        + 1
        + bin[mac + 1..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("MAC line ends")
        + 1;
    let header = String::from_utf8(bin[..end].to_vec()).expect("age header is text");
    (
        header.lines().map(str::to_string).collect(),
        bin[end..].to_vec(),
    )
}

/// The stanza types of an age header (`X25519`, `ssh-ed25519`, grease…).
pub fn stanza_types(header: &[String]) -> Vec<String> {
    header
        .iter()
        .filter_map(|l| l.strip_prefix("-> "))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// The real (X25519 and ssh-ed25519) stanzas of an armored age file.
pub fn real_stanza_count(armored: &[u8]) -> usize {
    let (h, _) = age_header_and_payload(armored);
    stanza_types(&h)
        .iter()
        .filter(|t| *t == "X25519" || *t == "ssh-ed25519")
        .count()
}

impl World {
    /// Runs byreis as `p` in alice's project, pinned by BYREIS_ANCHOR.
    pub fn run_as(&self, p: &Person, args: &[&str]) -> Output {
        run_env(&p.home, &self.proj, args, None, &anchor_env(self))
    }

    /// alice raises the values and recipients thresholds to 2; the pinned
    /// state then carries one approval of the two the thresholds in force
    /// require (ADR 0017), so `second` approves it (`approve --pinned`).
    pub fn raise_thresholds_k2(&self, second: &Person) -> Output {
        let o = self.alice_run(&["admin", "thresholds", "--recipients", "2", "--values", "2"]);
        assert_ok(&o, "admin thresholds");
        assert_stderr_contains(
            &o,
            "approvals-short",
            "the raise names the states it leaves short",
        );
        let reads = self.alice_run(&["doctor", "--format", "json"]);
        assert!(
            stdout(&reads).contains("approvals-short"),
            "before re-approval the state is short:\n{}",
            dump(&reads)
        );
        let a = self.run_as(second, &["approve", "--pinned", "--yes"]);
        assert_ok(&a, &format!("{} approve --pinned", second.name));
        o
    }

    /// `byreis rotate ARGS --yes` as alice.
    pub fn rotate(&self, args: &[&str]) -> Output {
        let mut a = vec!["rotate"];
        a.extend_from_slice(args);
        a.push("--yes");
        self.alice_run(&a)
    }

    /// `byreis get ENV KEY` as alice, asserting it prints `value`.
    #[track_caller]
    pub fn assert_get(&self, env: &str, key: &str, value: &str) {
        let o = self.alice_run(&["get", env, key]);
        assert_ok(&o, &format!("alice get {env} {key}"));
        assert_eq!(stdout(&o), format!("{value}\n"), "alice get {env} {key}");
    }

    /// `age -d -i IDENTITY FILE` with the stock age CLI.
    pub fn age_decrypt(&self, identity: &Path, file: &Path) -> Output {
        self.tool(
            "age",
            &self.root,
            &[
                "-d",
                "-i",
                identity.to_str().unwrap(),
                file.to_str().unwrap(),
            ],
            None,
        )
    }

    /// `age -d -i IDENTITY` on `bytes` (stdin) with the stock age CLI.
    pub fn age_decrypt_bytes(&self, identity: &Path, bytes: &[u8]) -> Output {
        self.tool(
            "age",
            &self.root,
            &["-d", "-i", identity.to_str().unwrap()],
            Some(bytes),
        )
    }

    /// Every `secrets/*.enc.yaml` in the working tree, sorted.
    pub fn secrets_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.proj.join("secrets"))
            .expect("secrets/ exists")
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".enc.yaml"))
            .collect();
        v.sort();
        v
    }

    /// The working tree's manifest, parsed (it is only read, never trusted).
    pub fn manifest_yaml(&self) -> serde_yaml::Value {
        serde_yaml::from_str(&fs::read_to_string(self.manifest()).expect("read manifest"))
            .expect("manifest is YAML")
    }

    pub fn manifest_counter(&self) -> u64 {
        self.manifest_yaml()["counter"]
            .as_u64()
            .expect("manifest counter")
    }

    /// Member names in the working tree's manifest.
    pub fn manifest_members(&self) -> Vec<String> {
        self.manifest_yaml()["members"]
            .as_sequence()
            .expect("members")
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Reader names of `env` in the working tree's manifest.
    pub fn manifest_readers(&self, env: &str) -> Vec<String> {
        self.manifest_yaml()["environments"][env]["readers"]
            .as_sequence()
            .unwrap_or_else(|| panic!("no environment {env} in the manifest"))
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect()
    }

    /// The project's record in the registry, parsed (`projects/demo/record.yaml`).
    pub fn record_yaml(&self) -> serde_yaml::Value {
        let project = self.manifest_yaml()["project"]
            .as_str()
            .unwrap_or("demo")
            .to_string();
        // From the registry's HEAD commit (what byreis reads), not its work
        // tree, which a kill during a registry write can leave behind.
        let text = self.git_ok(
            &self.reg,
            &["show", &format!("HEAD:projects/{project}/record.yaml")],
        );
        serde_yaml::from_str(&text).expect("record is YAML")
    }

    pub fn record_counter(&self) -> u64 {
        self.record_yaml()["counter"]
            .as_u64()
            .expect("record counter")
    }

    /// The project commit the record names as pending, if any.
    pub fn pending_commit(&self) -> Option<String> {
        self.record_yaml()["pending"]["project_commit"]
            .as_str()
            .map(str::to_string)
    }

    /// The last line of `.byreis/audit.jsonl`, parsed.
    pub fn last_audit(&self) -> serde_json::Value {
        let text = fs::read_to_string(self.proj.join(".byreis/audit.jsonl")).expect("audit log");
        let line = text.lines().last().expect("an audit entry");
        serde_json::from_str(line).expect("audit line is JSON")
    }

    /// `git verify-commit REV` in `dir` with the registry's allowed_signers.
    pub fn verify_commit(&self, dir: &Path, rev: &str) -> Output {
        let cfg = format!(
            "gpg.ssh.allowedSignersFile={}",
            self.reg.join("allowed_signers").display()
        );
        self.git(dir, &["-c", &cfg, "verify-commit", rev])
    }

    /// `byreis import` as alice of a YAML document.
    /// `byreis import FILE --new-env E…` of `yaml`, creating `new_envs`.
    pub fn import(&self, yaml: &str, new_envs: &[String]) {
        let file = self.root.join("import.yaml");
        fs::write(&file, yaml).expect("write import file");
        let mut args = vec!["import".to_string(), file.to_str().unwrap().to_string()];
        if !new_envs.is_empty() {
            args.push(format!("--new-env={}", new_envs.join(",")));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = self.alice_run(&args);
        assert_ok(&o, "byreis import");
        let _ = fs::remove_file(&file);
    }

    /// `git status --porcelain` of the project.
    pub fn project_status(&self) -> String {
        stdout(&self.git(&self.proj, &["status", "--porcelain"]))
    }

    /// The exact bytes of `path` in `rev` of the project.
    pub fn git_blob(&self, rev: &str, path: &str) -> Vec<u8> {
        let o = self.git(&self.proj, &["cat-file", "blob", &format!("{rev}:{path}")]);
        assert_ok(&o, &format!("git cat-file blob {rev}:{path}"));
        o.stdout
    }
}

/// doctor's failing checks are exactly `change-pending` on `transaction`.
#[track_caller]
pub fn assert_doctor_pending(o: &Output, v: &serde_json::Value, what: &str) {
    assert_exit(o, 3, what);
    let failing = doctor_fail_codes(v);
    assert_eq!(
        failing,
        vec!["change-pending".to_string()],
        "{what}: expected only change-pending\n{}",
        dump(o)
    );
    let tx = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "transaction")
        .unwrap_or_else(|| panic!("{what}: no transaction check\n{}", dump(o)));
    assert_eq!(tx["status"], "fail", "{what}\n{}", dump(o));
    assert_eq!(tx["code"], "change-pending", "{what}\n{}", dump(o));
}

/// A new age identity made with the stock `age-keygen`; returns the key
/// file (0600) and its recipient.
pub fn age_keygen(w: &World, name: &str) -> (PathBuf, String) {
    let path = w.root.join(format!("{name}.key"));
    let o = w.tool("age-keygen", &w.root, &["-o", path.to_str().unwrap()], None);
    assert_ok(&o, "age-keygen");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let o = w.tool("age-keygen", &w.root, &["-y", path.to_str().unwrap()], None);
    assert_ok(&o, "age-keygen -y");
    (path, stdout(&o).trim().to_string())
}

impl World {
    /// A bare clone of the registry at `root/reg.git`, and its `file://` URL
    /// (a registry reached by URL, as teams share it).
    pub fn bare_registry_url(&self) -> String {
        let bare = self.root.join("reg.git");
        self.git_ok(
            &self.root,
            &[
                "clone",
                "-q",
                "--bare",
                self.reg.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        format!("file://{}", bare.display())
    }
}

/// `byreis whoami --format json` for the person with `home`.
pub fn whoami(home: &Path, env: &[(&str, &str)]) -> serde_json::Value {
    let o = run_env(home, home, &["whoami", "--format", "json"], None, env);
    assert_ok(&o, "whoami --format json");
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("whoami printed no JSON ({e})\n{}", dump(&o)))
}

/// The contents of a person's `signing_key.pub`, as the brief's users would
/// paste them (`ssh-ed25519 AAAA… comment`).
pub fn signing_pub_text(p: &Person) -> String {
    fs::read_to_string(p.home.join("signing_key.pub"))
        .expect("keygen wrote signing_key.pub")
        .trim()
        .to_string()
}

/// alice adds `p` as an admin: signing key from `$HOME/signing_key.pub`,
/// age recipient from `whoami --format json`.
pub fn add_admin(w: &World, p: &Person) {
    let me = whoami(&p.home, &[]);
    let recipient = me["age_recipient"].as_str().expect("age_recipient");
    let email = format!("{}@example.test", p.name);
    let o = w.alice_run(&[
        "admin",
        "add",
        &p.name,
        "--signing-key",
        &signing_pub_text(p),
        "--age",
        recipient,
        "--email",
        &email,
    ]);
    assert_ok(&o, &format!("admin add {}", p.name));
}

/// `rotate --add --from-request REF --confirm-fingerprint FP --yes`.
pub fn absorb_args<'a>(reference: &'a str, fp: &'a str) -> [&'a str; 7] {
    [
        "rotate",
        "--add",
        "--from-request",
        reference,
        "--confirm-fingerprint",
        fp,
        "--yes",
    ]
}

impl World {
    /// A second project, `other`, at `root/other`, on the same registry by
    /// the same admin (counter 1).
    pub fn init_other_project(&self) -> PathBuf {
        let other = self.root.join("other");
        fs::create_dir(&other).unwrap();
        self.git_ok(&other, &["init", "-q", "-b", "main"]);
        let o = run(
            &self.alice.home,
            &other,
            &[
                "init",
                "--project",
                "other",
                "--registry",
                self.reg.to_str().unwrap(),
            ],
            None,
        );
        assert_ok(&o, "init another project");
        other
    }
}

/// A tiny deterministic generator (Knuth's MMIX LCG) for seeded kills.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Random kills per test: 12 in the suite (CI time); set
/// `BYREIS_RANDOM_KILLS` (for example 120) for the long runs, outside CI.
pub fn kills() -> usize {
    std::env::var("BYREIS_RANDOM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// Spawns `cmd` (stdin `input`, output discarded), sends it SIGKILL after
/// `delay` unless it ended first, and returns its exit status.
pub fn run_and_kill(
    cmd: &mut Command,
    input: Option<&str>,
    delay: std::time::Duration,
) -> std::process::ExitStatus {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn byreis");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(input) = input {
            let _ = stdin.write_all(input.as_bytes());
        }
    }
    std::thread::sleep(delay);
    let _ = child.kill();
    child.wait().expect("wait")
}

/// Milliseconds a run of `f` takes (to size random kill delays).
pub fn time_ms(f: impl FnOnce()) -> u64 {
    let t = std::time::Instant::now();
    f();
    t.elapsed().as_millis() as u64
}

/// After a kill: when `doctor` names stale git locks (`git-lock-stale`),
/// removes exactly the files it names, as its fix says, and returns them.
/// Every name must be a `.lock` file inside the world.
pub fn clear_named_locks(w: &World) -> Vec<PathBuf> {
    let (_, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    if !doctor_fail_codes(&v).contains(&"git-lock-stale".to_string()) {
        return Vec::new();
    }
    let detail = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "git-locks")
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut removed = Vec::new();
    for p in detail.split(", ").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.starts_with(&w.root) && p.extension().is_some_and(|x| x == "lock"),
            "doctor named {} as a stale lock",
            p.display()
        );
        fs::remove_file(&p).unwrap_or_else(|e| panic!("rm {}: {e}", p.display()));
        removed.push(p);
    }
    assert!(!removed.is_empty(), "git-lock-stale without paths: {v}");
    removed
}

/// `p` clones the project at `from` into `root/NAME-clone` and pins the
/// world's anchor there with `byreis trust --anchor` (cloning the registry
/// when the project names it by URL). Returns the clone.
pub fn clone_and_trust(w: &World, from: &Path, p: &Person) -> PathBuf {
    let clone = w.root.join(format!("{}-clone", p.name));
    w.git_ok(
        &w.root,
        &[
            "clone",
            "-q",
            from.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    // A registry reached by URL was made at a path (the roster states that
    // path), so a teammate is given its URL by the admin (ADR 0015).
    let config = fs::read_to_string(clone.join("byreis.yaml")).unwrap();
    let location = config
        .lines()
        .find_map(|l| l.strip_prefix("registry: "))
        .filter(|l| l.contains("://"))
        .map(str::to_string);
    let mut args = vec!["trust", "--anchor", &w.anchor];
    if let Some(l) = &location {
        args.extend(["--registry", l.as_str()]);
    }
    let o = run(&p.home, &clone, &args, None);
    assert_ok(&o, &format!("{} trust", p.name));
    clone
}

/// What doctor showed after a kill at a random moment, once recovered as
/// far as byreis's own advice goes.
pub enum AfterKill {
    /// A change was pending; `rotate --resume` finished it.
    Resumed,
    /// Nothing pending: doctor's output, for the caller to judge.
    Settled(Output, serde_json::Value),
}

/// After a kill at a random moment: removes the git locks doctor names,
/// as its fix says (counted in `outcomes`), then finishes a pending change
/// with `rotate --resume`, calling `while_pending` first (reads must still
/// serve the last complete state).
pub fn recover_after_kill(
    w: &World,
    what: &str,
    outcomes: &mut std::collections::BTreeMap<&'static str, u32>,
    while_pending: impl FnOnce(),
) -> AfterKill {
    if !clear_named_locks(w).is_empty() {
        *outcomes.entry("a lock left, named by doctor").or_insert(0) += 1;
    }
    let (o, v) = doctor_json(&w.alice.home, &w.proj, &[]);
    if doctor_fail_codes(&v) == ["change-pending"] {
        while_pending();
        assert_ok(&w.rotate(&["--resume"]), &format!("{what}: resume"));
        AfterKill::Resumed
    } else {
        AfterKill::Settled(o, v)
    }
}

/// `admin add NAME --signing-key KEY --age RECIPIENT` for `p`.
pub fn admin_add_args(p: &Person) -> [&str; 7] {
    [
        "admin",
        "add",
        &p.name,
        "--signing-key",
        &p.signing_key,
        "--age",
        &p.recipient,
    ]
}

/// Asserts that a kill plan names every step boundary the code defines
/// (`byreis::failpoint::STEPS`), in order: a new step cannot go untested.
#[track_caller]
pub fn assert_covers_every_step(plan: &[&str]) {
    assert_eq!(
        plan,
        byreis::failpoint::STEPS,
        "every step the code defines is covered"
    );
}

/// The named check of doctor's (or registry verify's) JSON.
pub fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .expect("checks is an array")
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {v}"))
}

/// `byreis registry verify REG --anchor FP --format json` (keyless; run by
/// someone with an empty BYREIS_HOME).
pub fn registry_verify(w: &World) -> (Output, serde_json::Value) {
    let nobody = w.root.join("nobody");
    let o = run(
        &nobody,
        &w.root,
        &[
            "registry",
            "verify",
            w.reg.to_str().unwrap(),
            "--anchor",
            &w.anchor,
            "--format",
            "json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("registry verify printed no JSON ({e})\n{}", dump(&o)));
    (o, v)
}

/// Drops the proof a registry record carries (`approvals`,
/// `manifest_sha512`, ADR 0017) from `record`, as one admin re-signing it
/// can; the caller signs it again.
pub fn strip_record_proof(record: &Path) {
    let mut r: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(record).unwrap()).unwrap();
    let m = r.as_mapping_mut().expect("a record is a mapping");
    m.remove("approvals");
    m.remove("manifest_sha512");
    fs::write(record, serde_yaml::to_string(&r).unwrap()).unwrap();
}

/// Flips one bit in the middle of `path`: a file changed outside byreis.
pub fn flip_a_bit(path: &Path) {
    let mut bytes = fs::read(path).expect("read the file to change");
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    fs::write(path, &bytes).expect("write the changed file");
}

/// Runs byreis as `home` in `dir` inside a real pseudo-terminal
/// (tests/support/pty_drive.py), answering `steps` (text to wait for, then
/// keys to type); `env` is added to the clean environment. Returns the exit
/// code and everything shown on the terminal.
pub fn in_pty(
    w: &World,
    home: &Path,
    args: &[&str],
    steps: serde_json::Value,
    env: &[(&str, &str)],
) -> (i32, String) {
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/pty_drive.py");
    let mut c = clean_command("python3", &w.root, &w.proj);
    c.env("BYREIS_HOME", home).env("TERM", "xterm");
    for (k, v) in env {
        c.env(k, v);
    }
    c.arg(driver).arg(steps.to_string()).arg(bin()).args(args);
    let o = output(&mut c, None);
    (
        o.status.code().unwrap_or(-1),
        format!("{}{}", stdout(&o), stderr(&o)),
    )
}
