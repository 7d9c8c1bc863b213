//! `exec --file NAME=PATH_VAR` (issue 16 item 6): a secret handed to the
//! program as a private file on a tmpfs, removed on every exit path the
//! program or a signal can take, and swept after a SIGKILL.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use rustix::process::{Pid, Signal};

/// A 0700 runtime directory on a tmpfs (`/dev/shm`), as systemd's
/// `/run/user/UID` is.
fn tmpfs_runtime() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("byreis-test-runtime-")
        .tempdir_in("/dev/shm")
        .expect("/dev/shm must be a writable tmpfs for these tests");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// The `byreis-exec-*` entries of `dir`.
fn exec_dirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("byreis-exec-")
        })
        .collect()
}

const PEM: &str =
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";

#[test]
fn a_file_secret_is_private_exact_and_gone_when_the_program_ends() {
    let w = World::with_secrets();
    let pem = w.root.join("key.pem");
    fs::write(&pem, PEM).unwrap();
    let o = w.alice_run(&[
        "set",
        "prod",
        "TLS_KEY",
        "--from-file",
        pem.to_str().unwrap(),
    ]);
    assert_ok(&o, "set --from-file");
    let runtime = tmpfs_runtime();
    let rt = runtime.path().to_str().unwrap();
    let seen = w.root.join("seen");
    // The program copies the file, records its mode, its directory's mode
    // and whether the secret is also a variable, then exits 7.
    let script = format!(
        "cp \"$KEY_PATH\" '{s}.bytes'; stat -c %a \"$KEY_PATH\" > '{s}.mode'; \
         stat -c %a \"$(dirname \"$KEY_PATH\")\" > '{s}.dirmode'; \
         printf %s \"$KEY_PATH\" > '{s}.path'; \
         printf '%s' \"${{TLS_KEY-unset}}|$DB\" > '{s}.vars'; exit 7",
        s = seen.display()
    );
    let o = w.alice_run_env(
        &[
            "exec",
            "prod",
            "--file",
            "TLS_KEY=KEY_PATH",
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[("XDG_RUNTIME_DIR", rt)],
    );
    assert_exit(&o, 7, "the program's exit code is exec's");
    let path = fs::read_to_string(seen.with_extension("path")).unwrap();
    assert!(
        path.starts_with(rt) && path.ends_with("/TLS_KEY"),
        "the file is in $XDG_RUNTIME_DIR: {path}"
    );
    assert_eq!(
        fs::read_to_string(seen.with_extension("bytes")).unwrap(),
        PEM,
        "byte for byte"
    );
    assert_eq!(
        fs::read_to_string(seen.with_extension("mode"))
            .unwrap()
            .trim(),
        "600"
    );
    assert_eq!(
        fs::read_to_string(seen.with_extension("dirmode"))
            .unwrap()
            .trim(),
        "700"
    );
    assert_eq!(
        fs::read_to_string(seen.with_extension("vars")).unwrap(),
        format!("unset|{PROD_DB}"),
        "the file secret is no variable; the others still are"
    );
    assert!(!Path::new(&path).exists(), "the file outlived the program");
    assert_eq!(
        exec_dirs(runtime.path()),
        Vec::<PathBuf>::new(),
        "the directory too"
    );

    // A program that cannot be found: 127, nothing left.
    let o = w.alice_run_env(
        &[
            "exec",
            "prod",
            "--file",
            "TLS_KEY=KEY_PATH",
            "--",
            "/nonexistent/prog",
        ],
        &[("XDG_RUNTIME_DIR", rt)],
    );
    assert_exit(&o, 127, "a missing program");
    assert_stderr_contains(&o, "error[exec-failed]", "coded");
    assert_eq!(
        exec_dirs(runtime.path()),
        Vec::<PathBuf>::new(),
        "nothing left"
    );

    // An unknown secret: refused before anything is written or run.
    let marker = w.root.join("ran");
    let o = w.alice_run_env(
        &[
            "exec",
            "prod",
            "--file",
            "TLS_KE=KEY_PATH",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
        &[("XDG_RUNTIME_DIR", rt)],
    );
    assert_exit(&o, 1, "an unknown secret");
    assert_stderr_contains(&o, "did you mean TLS_KEY?", "a hint");
    assert!(!marker.exists(), "nothing was run");
    // A path variable that is another secret's variable: refused.
    let o = w.alice_run_env(
        &[
            "exec",
            "prod",
            "--file",
            "TLS_KEY=DB",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
        &[("XDG_RUNTIME_DIR", rt)],
    );
    assert_failed(&o, "PATH_VAR names another secret");
    assert_stderr_contains(&o, "DB is also a secret of prod", "says why");
    assert!(!marker.exists(), "nothing was run");
    // A malformed spec is a usage error.
    let o = w.alice_run(&["exec", "prod", "--file", "TLS_KEY", "--", "true"]);
    assert_exit(&o, 2, "NAME without =PATH_VAR");
}

/// A family name (LD_PRELOAD) that `exec` refuses as a variable is only
/// bytes in a file; a runtime dir on disk is passed over for /dev/shm.
#[test]
fn a_family_name_as_a_file_passes_and_disk_is_never_used() {
    let w = World::with_secrets();
    w.set("prod", "LD_PRELOAD", "not-a-library");
    let o = w.alice_run(&["exec", "prod", "--", "true"]);
    assert_failed(&o, "control: LD_PRELOAD as a variable is refused");
    let disk = w.root.join("runtime-on-disk");
    fs::create_dir(&disk).unwrap();
    fs::set_permissions(&disk, fs::Permissions::from_mode(0o700)).unwrap();
    let o = w.alice_run_env(
        &[
            "exec",
            "prod",
            "--file",
            "LD_PRELOAD=PRELOAD_FILE",
            "--",
            "sh",
            "-c",
            "printf '%s|' \"$PRELOAD_FILE\"; cat \"$PRELOAD_FILE\"",
        ],
        &[("XDG_RUNTIME_DIR", disk.to_str().unwrap())],
    );
    assert_ok(&o, "exec --file LD_PRELOAD=PRELOAD_FILE");
    let out = stdout(&o);
    let (path, value) = out.split_once('|').unwrap();
    assert!(
        path.starts_with("/dev/shm/byreis-exec-"),
        "not on disk: {path}"
    );
    assert_eq!(value, "not-a-library");
    assert!(!Path::new(path).exists());
    assert_eq!(fs::read_dir(&disk).unwrap().count(), 0, "nothing on disk");
}

fn wait_for(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `exec --file` of a program that writes its file's path and then
/// waits, trapping SIGTERM (it writes `got-term` and exits 3).
fn start_waiting(w: &World, runtime: &Path, ready: &Path) -> std::process::Child {
    let script = format!(
        "trap 'echo got-term > \"{r}.term\"; exit 3' TERM; printf %s \"$DB_FILE\" > '{r}.tmp'; \
         mv '{r}.tmp' '{r}'; while :; do sleep 0.05; done",
        r = ready.display()
    );
    let mut c = byreis_cmd(&w.alice.home, &w.proj);
    c.args([
        "exec",
        "prod",
        "--file",
        "DB=DB_FILE",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .env("XDG_RUNTIME_DIR", runtime)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c.spawn().unwrap()
}

/// SIGTERM sent to byreis alone (a CI runner's cancel) is passed on to the
/// program; when it ends, byreis removes the file and exits as it did.
#[test]
fn sigterm_to_byreis_reaches_the_program_and_removes_the_file() {
    let w = World::with_secrets();
    let runtime = tmpfs_runtime();
    let ready = w.root.join("ready");
    let mut byreis = start_waiting(&w, runtime.path(), &ready);
    wait_for(&ready, "the program");
    let path = PathBuf::from(fs::read_to_string(&ready).unwrap());
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        PROD_DB,
        "control: the file is there"
    );
    rustix::process::kill_process(Pid::from_child(&byreis), Signal::TERM).unwrap();
    let status = byreis.wait().unwrap();
    assert_eq!(
        fs::read_to_string(ready.with_extension("term"))
            .unwrap()
            .trim(),
        "got-term",
        "the program got the SIGTERM"
    );
    assert_eq!(status.code(), Some(3), "the program's exit code");
    assert!(!path.exists(), "the file outlived the program");
    assert_eq!(exec_dirs(runtime.path()), Vec::<PathBuf>::new());
}

/// SIGKILL cannot be caught: the directory stays until the next byreis run,
/// whatever the command, which overwrites and removes it.
#[test]
fn sigkill_of_exec_is_swept_by_the_next_run() {
    let w = World::with_secrets();
    let runtime = tmpfs_runtime();
    let ready = w.root.join("ready");
    let mut byreis = start_waiting(&w, runtime.path(), &ready);
    wait_for(&ready, "the program");
    let path = PathBuf::from(fs::read_to_string(&ready).unwrap());
    let ino = fs::metadata(&path).unwrap().ino();
    rustix::process::kill_process(Pid::from_child(&byreis), Signal::KILL).unwrap();
    byreis.wait().unwrap();
    assert!(path.exists(), "control: SIGKILL leaves the file");
    // Held open: the sweep must overwrite the file, not only unlink it.
    let held = fs::File::open(&path).unwrap();
    let o = run_env(
        &w.alice.home,
        &w.root,
        &["whoami"],
        None,
        &[("XDG_RUNTIME_DIR", runtime.path().to_str().unwrap())],
    );
    assert_ok(&o, "whoami after a killed exec");
    assert_eq!(exec_dirs(runtime.path()), Vec::<PathBuf>::new(), "swept");
    assert_eq!(held.metadata().unwrap().ino(), ino);
    let mut left = Vec::new();
    std::io::Read::read_to_end(&mut &held, &mut left).unwrap();
    assert!(
        !left.is_empty() && left.iter().all(|&b| b == 0),
        "the sweep removed the file without overwriting it"
    );
    // End the orphaned program: it waits for ever otherwise.
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&ready.display().to_string()) {
            if let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
                .and_then(Pid::from_raw)
            {
                let _ = rustix::process::kill_process(p, Signal::KILL);
            }
        }
    }
}
