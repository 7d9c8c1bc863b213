//! `edit` and signals (invariant 5; SECURITY.md "Editor leftovers"): a
//! signal that byreis can catch, sent while the editor is open, ends the
//! edit with every file of the private directory overwritten and removed,
//! and nothing changed; what cannot be caught (SIGKILL) is swept by the next
//! byreis run. Each test sets `XDG_RUNTIME_DIR` to a directory of its own so
//! it can look at what `edit` leaves there.

use std::fs;
use std::io::{Read as _, Seek as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use rustix::process::{Pid, Signal};

/// A private runtime dir for the test (0700, as a real one is).
fn runtime_dir(w: &World) -> PathBuf {
    let runtime = w.root.join("runtime");
    fs::create_dir(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    runtime
}

/// The names of the `byreis-edit-*` entries in `dir`.
fn edit_dirs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("byreis-edit-"))
        .collect();
    v.sort();
    v
}

fn pid(raw: u32) -> Pid {
    Pid::from_raw(i32::try_from(raw).unwrap()).unwrap()
}

fn exists(p: Pid) -> bool {
    !matches!(
        rustix::process::test_kill_process(p),
        Err(rustix::io::Errno::SRCH)
    )
}

/// A pid no process has: a child that has exited and been reaped.
fn dead_pid(w: &World) -> u32 {
    let mut c = clean_command("true", &w.root, &w.root).spawn().unwrap();
    let id = c.id();
    c.wait().unwrap();
    assert!(!exists(pid(id)), "pid {id} still exists");
    id
}

/// A byreis `edit prod` whose editor is open (it waits, doing nothing).
struct OpenEdit {
    byreis: Child,
    /// The editor's pid (the script `exec`s `sleep`, so it is the process
    /// byreis waits for: `sh -c` execs a single command too).
    editor: Pid,
    /// The private directory `edit` made, and the plaintext file in it.
    dir: PathBuf,
    file: PathBuf,
}

fn open_edit(w: &World, runtime: &Path) -> OpenEdit {
    open_edit_with(w, runtime, "")
}

/// Like [`open_edit`], with `EDITOR` set to `prefix` then the script.
fn open_edit_with(w: &World, runtime: &Path, prefix: &str) -> OpenEdit {
    open_edit_in(w, runtime, prefix, false)
}

/// Like [`open_edit_with`]; with `own_group`, byreis leads a process group
/// of its own (as a shell's foreground job does), which its editor shares.
fn open_edit_in(w: &World, runtime: &Path, prefix: &str, own_group: bool) -> OpenEdit {
    let ready = w.root.join("editor-ready");
    let _ = fs::remove_file(&ready);
    let editor = w.root.join("waiting-editor.sh");
    write_script(
        &editor,
        &format!(
            "printf %s \"$$\" > '{r}.tmp'\nmv '{r}.tmp' '{r}'\nexec sleep 60 </dev/null >/dev/null 2>&1",
            r = ready.display()
        ),
    );
    let mut c = byreis_cmd(&w.alice.home, &w.proj);
    c.args(["edit", "prod"])
        .env("EDITOR", format!("{prefix}{}", editor.display()))
        .env("XDG_RUNTIME_DIR", runtime)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if own_group {
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
    }
    let mut byreis = c.spawn().expect("start byreis edit");
    let start = Instant::now();
    let editor_pid = loop {
        if let Ok(s) = fs::read_to_string(&ready) {
            break s.trim().parse::<u32>().expect("editor pid");
        }
        if let Some(status) = byreis.try_wait().unwrap() {
            panic!("byreis edit exited ({status}) before the editor started");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the editor did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let dirs = edit_dirs(runtime);
    assert_eq!(
        dirs.len(),
        1,
        "one edit dir while the editor runs: {dirs:?}"
    );
    // The name carries byreis's pid, which is what lets a later run tell a
    // stale directory from a live one.
    let expected = format!("byreis-edit-{}-", byreis.id());
    assert!(
        dirs[0].starts_with(&expected),
        "edit dir {:?} is not named {expected}<random>",
        dirs[0]
    );
    let dir = runtime.join(&dirs[0]);
    let file = dir.join("prod.yaml");
    let text = fs::read_to_string(&file).expect("the edit file");
    assert!(text.contains(PROD_DB), "the edit file holds the plaintext");
    OpenEdit {
        byreis,
        editor: pid(editor_pid),
        dir,
        file,
    }
}

/// Waits for byreis (at most 30 s: the editor would wait 60) and collects
/// its output.
fn finish(mut e: OpenEdit, what: &str) -> std::process::Output {
    let start = Instant::now();
    let status = loop {
        if let Some(s) = e.byreis.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = e.byreis.kill();
            let _ = e.byreis.wait();
            let _ = rustix::process::kill_process(e.editor, Signal::KILL);
            panic!("{what}: byreis still waits for the editor 30 s after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    e.byreis
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    e.byreis
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut err)
        .unwrap();
    std::process::Output {
        status,
        stdout: out,
        stderr: err,
    }
}

/// `signal` to byreis alone while the editor is open: byreis ends the
/// editor, zeroes and removes the file and its directory, names the signal,
/// exits 1 (an error, not death by the signal) and changes nothing.
fn signal_during_edit(signal: Signal, name: &str) {
    let w = World::with_secrets();
    let runtime = runtime_dir(&w);
    let before = w.heads();
    let e = open_edit(&w, &runtime);
    // Kept open to see what is left of the file's contents afterwards.
    let mut held = fs::File::open(&e.file).unwrap();
    let (editor, dir) = (e.editor, e.dir.clone());
    rustix::process::kill_process(pid(e.byreis.id()), signal).unwrap();
    let o = finish(e, name);
    assert_exit(&o, 1, &format!("edit interrupted by {name}"));
    assert_stderr_contains(&o, &format!("interrupted by {name}"), name);
    assert_stderr_contains(
        &o,
        "nothing was changed and the temporary file was removed",
        name,
    );
    assert_no_leak(&o, &[PROD_DB, PROD_API], name);
    assert!(!dir.exists(), "{name}: the edit dir {dir:?} is still there");
    assert_eq!(edit_dirs(&runtime), Vec::<String>::new(), "{name}");
    let mut left = Vec::new();
    held.rewind().unwrap();
    held.read_to_end(&mut left).unwrap();
    assert!(
        left.iter().all(|&b| b == 0),
        "{name}: the file was removed without being overwritten"
    );
    assert!(!exists(editor), "{name}: byreis left the editor running");
    assert_eq!(
        w.heads(),
        before,
        "{name}: an interrupted edit changed something"
    );
    w.assert_get("prod", "DB", PROD_DB);
}

#[test]
fn sigquit_during_edit_removes_the_plaintext() {
    signal_during_edit(Signal::QUIT, "SIGQUIT");
}

#[test]
fn sigusr1_during_edit_removes_the_plaintext() {
    signal_during_edit(Signal::USR1, "SIGUSR1");
}

#[test]
fn sigalrm_during_edit_removes_the_plaintext() {
    signal_during_edit(Signal::ALARM, "SIGALRM");
}

/// SIGTERM was caught before too, but byreis then kept waiting for an
/// editor that never got the signal; now it stops waiting.
#[test]
fn sigterm_to_byreis_alone_ends_the_editor() {
    signal_during_edit(Signal::TERM, "SIGTERM");
}

/// An `EDITOR` with a `VAR=value` prefix is not `exec`ed by the shell, so
/// the editor is byreis's grandchild; it is ended all the same.
#[test]
fn sigusr1_ends_an_editor_behind_a_shell() {
    let w = World::with_secrets();
    let runtime = runtime_dir(&w);
    let e = open_edit_with(&w, &runtime, "WRAPPED=1 ");
    let editor = e.editor;
    rustix::process::kill_process(pid(e.byreis.id()), Signal::USR1).unwrap();
    let o = finish(e, "SIGUSR1 with a wrapped editor");
    assert_exit(&o, 1, "SIGUSR1 with a wrapped editor");
    assert_eq!(edit_dirs(&runtime), Vec::<String>::new());
    // Not byreis's child: its new parent reaps it a moment later.
    let start = Instant::now();
    while exists(editor) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!exists(editor), "byreis left the wrapped editor running");
}

/// Ctrl-C at a terminal: SIGINT to the whole foreground group, so the
/// editor gets it too and exits; byreis names it and cleans up. (This
/// passed before the signal rework too; it guards the new wait.)
#[test]
fn ctrl_c_to_the_process_group_ends_the_edit() {
    let w = World::with_secrets();
    let runtime = runtime_dir(&w);
    let before = w.heads();
    let e = open_edit_in(&w, &runtime, "", true);
    let group = pid(e.byreis.id());
    rustix::process::kill_process_group(group, Signal::INT).unwrap();
    let o = finish(e, "SIGINT to the group");
    assert_exit(&o, 1, "SIGINT to the group");
    assert_stderr_contains(&o, "interrupted by SIGINT", "SIGINT to the group");
    assert_eq!(edit_dirs(&runtime), Vec::<String>::new());
    assert_eq!(w.heads(), before);
}

/// SIGKILL cannot be caught: the directory stays, and the next byreis run,
/// whatever the command, scrubs and removes it.
#[test]
fn sigkill_during_edit_is_swept_by_the_next_run() {
    let w = World::with_secrets();
    let runtime = runtime_dir(&w);
    let mut e = open_edit(&w, &runtime);
    let mut held = fs::File::open(&e.file).unwrap();
    rustix::process::kill_process(pid(e.byreis.id()), Signal::KILL).unwrap();
    e.byreis.wait().unwrap();
    assert!(e.file.exists(), "control: SIGKILL leaves the file");
    let o = run_env(
        &w.alice.home,
        &w.root,
        &["whoami"],
        None,
        &[("XDG_RUNTIME_DIR", runtime.to_str().unwrap())],
    );
    assert_ok(&o, "whoami after a killed edit");
    assert_eq!(
        edit_dirs(&runtime),
        Vec::<String>::new(),
        "the next run did not sweep the killed edit's dir"
    );
    let mut left = Vec::new();
    held.read_to_end(&mut left).unwrap();
    assert!(
        !left.is_empty() && left.iter().all(|&b| b == 0),
        "the sweep removed the file without overwriting it"
    );
    // The editor outlived byreis; end it.
    let _ = rustix::process::kill_process(e.editor, Signal::KILL);
}

/// What a sweep removes and what it leaves: a dir of a dead pid goes (its
/// files zeroed, links inside removed without touching their targets); a
/// live pid's dir, a locked one, a link named like one, and an old-format
/// name touched recently stay; an old-format name untouched for two days
/// goes.
#[test]
fn every_run_sweeps_stale_edit_dirs() {
    let w = World::new();
    let runtime = runtime_dir(&w);
    let dead = dead_pid(&w);
    let outside = w.root.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("target.txt"), "not byreis's").unwrap();
    fs::write(outside.join("hard.txt"), "hard-linked, not byreis's").unwrap();

    let make = |name: &str| {
        let d = runtime.join(name);
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(d.join("prod.yaml"), "DB: \"stale-plaintext\"\n").unwrap();
        d
    };
    let stale = make(&format!("byreis-edit-{dead}-aaaaaa"));
    fs::create_dir(stale.join("sub")).unwrap();
    fs::write(stale.join("sub/.prod.yaml.swp"), "swap").unwrap();
    std::os::unix::fs::symlink(outside.join("target.txt"), stale.join("link")).unwrap();
    std::os::unix::fs::symlink(&outside, stale.join("dirlink")).unwrap();
    fs::hard_link(outside.join("hard.txt"), stale.join("hard")).unwrap();
    let mut held = fs::File::open(stale.join("prod.yaml")).unwrap();

    let live = make(&format!("byreis-edit-{}-bbbbbb", std::process::id()));
    let locked = make(&format!("byreis-edit-{dead}-cccccc"));
    let lock = fs::File::open(&locked).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let linked = runtime.join(format!("byreis-edit-{dead}-dddddd"));
    std::os::unix::fs::symlink(&outside, &linked).unwrap();
    let old = make("byreis-edit-OldFmt");
    let recent = make("byreis-edit-NewFmt");
    let o = w.tool(
        "touch",
        &w.root,
        &["-d", "2 days ago", old.to_str().unwrap()],
        None,
    );
    assert_ok(&o, "touch -d");

    let o = run_env(
        &w.alice.home,
        &w.root,
        &["whoami"],
        None,
        &[("XDG_RUNTIME_DIR", runtime.to_str().unwrap())],
    );
    assert_ok(&o, "whoami");
    assert_eq!(stderr(&o), "", "the sweep is silent");

    assert!(!stale.exists(), "the dead pid's dir was not swept");
    let mut left = Vec::new();
    held.read_to_end(&mut left).unwrap();
    assert!(
        !left.is_empty() && left.iter().all(|&b| b == 0),
        "the stale file was removed without being overwritten"
    );
    assert_eq!(
        fs::read_to_string(outside.join("target.txt")).unwrap(),
        "not byreis's",
        "the sweep wrote through a link"
    );
    assert_eq!(
        fs::read_to_string(outside.join("hard.txt")).unwrap(),
        "hard-linked, not byreis's",
        "the sweep overwrote a file with another name"
    );
    assert!(outside.exists() && outside.join("target.txt").exists());
    assert!(
        live.join("prod.yaml").exists(),
        "a live pid's dir was swept"
    );
    assert!(locked.join("prod.yaml").exists(), "a locked dir was swept");
    drop(lock);
    assert!(
        fs::symlink_metadata(&linked)
            .unwrap()
            .file_type()
            .is_symlink(),
        "a link named like an edit dir was removed"
    );
    assert!(
        !old.exists(),
        "an old-format dir untouched for 2 days stayed"
    );
    assert!(recent.exists(), "a recent old-format dir was swept");
}
