//! Editing secrets in a private temporary file (invariant 5).
//!
//! The file lives in a fresh 0700 directory `byreis-edit-<pid>-<random>`
//! under `$XDG_RUNTIME_DIR`, else `/dev/shm`, else the system temp dir; it
//! is created 0600, and core dumps are disabled first.
//!
//! While the editor runs, byreis catches every signal that can be caught and
//! would otherwise end it ([`terminating_signals`]): it then stops waiting,
//! ends the editor (SIGTERM, SIGKILL after [`EDITOR_GRACE`]), overwrites
//! every file in the directory with zeros (the editor's swap and backup files
//! there too), removes the directory and reports which signal interrupted
//! the edit. What no process can catch (SIGKILL, a crash of the machine)
//! leaves the directory behind: [`sweep_stale`], run at the start of every
//! byreis command, scrubs and removes this user's edit directories whose
//! byreis process is gone. byreis cannot control what the editor writes
//! elsewhere (swap, backup and undo files outside the directory) nor the
//! OS swap; `SECURITY.md` says so.
//!
//! `exec --file NAME=PATH_VAR` ([`run_with_files`]) uses the same
//! machinery for a program that wants a secret as a file: a fresh 0700
//! directory `byreis-exec-<pid>-<random>` on a tmpfs only (never on disk),
//! one 0600 file per secret, scrubbed and removed when the program ends, on
//! a caught signal (which is passed on to the program first) and by
//! [`sweep_stale`] after a SIGKILL.

use std::ffi::{c_int, CStr, CString};
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::process::{Pid, Signal};
use signal_hook::SigId;
use zeroize::Zeroizing;

/// Every edit directory's name starts with this, then `<pid>-<random>`.
pub const DIR_PREFIX: &str = "byreis-edit-";
/// Every `exec --file` directory's name starts with this, then
/// `<pid>-<random>`.
pub const EXEC_DIR_PREFIX: &str = "byreis-exec-";
/// Every directory [`sweep_stale`] looks after.
const SWEPT_PREFIXES: [&str; 2] = [DIR_PREFIX, EXEC_DIR_PREFIX];
/// How long the editor has to exit after SIGTERM before it gets SIGKILL.
pub const EDITOR_GRACE: Duration = Duration::from_secs(5);
/// An edit directory in the format of byreis versions before the pid was in
/// the name (`byreis-edit-<random>`) is swept once untouched this long.
pub const OLD_FORMAT_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// How deep the scrub descends into directories an editor made.
const MAX_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("could not prepare a private temporary file: {0}")]
    Temp(std::io::Error),
    #[error("could not start the editor {editor:?}: {source}")]
    Spawn {
        editor: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the editor exited with {0}; nothing was changed")]
    EditorFailed(std::process::ExitStatus),
    #[error("could not wait for the editor: {0}; nothing was changed")]
    Wait(std::io::Error),
    #[error("interrupted by {signal}{how}; nothing was changed and the temporary file was removed; run the edit again")]
    Interrupted {
        /// The signal's name (`SIGUSR1`), or `signal N`.
        signal: String,
        /// Empty, or what byreis did to the editor.
        how: &'static str,
    },
}

impl EditError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        match self {
            EditError::Temp(_) => crate::diag::Refusal::IoFailed,
            EditError::Interrupted { .. } => crate::diag::Refusal::Interrupted,
            _ => crate::diag::Refusal::EditorFailed,
        }
    }
}

/// Stops core dumps of this process (they could hold plaintext).
pub fn disable_core_dumps() {
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}

/// The signals whose default action ends the process and that a handler can
/// catch: the ones byreis catches while the editor runs. SIGKILL and SIGSTOP
/// cannot be caught; SIGSEGV, SIGILL and SIGFPE are faults that
/// `signal-hook` refuses (`signal_hook::consts::FORBIDDEN`). On Linux this is
/// every signal up to 64 but the ones whose default is to ignore, stop or
/// continue, so SIGSTKFLT, SIGPWR and the real-time signals are included;
/// the few real-time signals the C library keeps for itself cannot be
/// registered and are skipped.
pub fn terminating_signals() -> Vec<c_int> {
    #[cfg(target_os = "linux")]
    let mut all: Vec<c_int> = {
        let not_terminating = [
            Signal::CHILD,
            Signal::CONT,
            Signal::STOP,
            Signal::TSTP,
            Signal::TTIN,
            Signal::TTOU,
            Signal::URG,
            Signal::WINCH,
        ]
        .map(Signal::as_raw);
        (1..=64).filter(|s| !not_terminating.contains(s)).collect()
    };
    #[cfg(not(target_os = "linux"))]
    let mut all: Vec<c_int> = [
        Signal::HUP,
        Signal::INT,
        Signal::QUIT,
        Signal::TRAP,
        Signal::ABORT,
        Signal::BUS,
        Signal::USR1,
        Signal::USR2,
        Signal::PIPE,
        Signal::ALARM,
        Signal::TERM,
        Signal::XCPU,
        Signal::XFSZ,
        Signal::VTALARM,
        Signal::PROF,
        Signal::SYS,
    ]
    .map(Signal::as_raw)
    .to_vec();
    all.retain(|s| !signal_hook::consts::FORBIDDEN.contains(s));
    all
}

/// `SIGUSR1`, or `signal N` for one without a well-known name.
fn signal_label(sig: c_int) -> String {
    signal_hook::low_level::signal_name(sig)
        .map(str::to_string)
        .unwrap_or_else(|| format!("signal {sig}"))
}

/// Outside an edit session every caught signal has its default effect again
/// (`signal-hook` would otherwise leave an unregistered signal ignored for
/// the rest of the run). Registered once per process; the flag is true
/// outside sessions.
fn defaults_on() -> &'static Arc<AtomicBool> {
    static ON: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    ON.get_or_init(|| {
        let on = Arc::new(AtomicBool::new(true));
        for sig in terminating_signals() {
            // The Rust runtime ignores SIGPIPE (a write then fails with
            // EPIPE); keep it that way outside sessions.
            if sig == Signal::PIPE.as_raw() {
                continue;
            }
            // signal-hook's table has SIGIO as ignored; on Linux its
            // default ends the process. Unknown signals (real-time) too.
            let emulated = sig != Signal::IO.as_raw()
                && signal_hook::flag::register_conditional_default(sig, Arc::clone(&on)).is_ok();
            if !emulated {
                let _ = signal_hook::flag::register_conditional_shutdown(
                    sig,
                    128 + sig,
                    Arc::clone(&on),
                );
            }
        }
        on
    })
}

/// One editor session's signal handling: which terminating signal came
/// last (0: none), and a socket every such signal and SIGCHLD write a byte
/// to, so the wait for the editor wakes up on either.
struct Session {
    ids: Vec<SigId>,
    caught: Arc<AtomicUsize>,
    wake: UnixStream,
}

impl Session {
    fn start() -> std::io::Result<Session> {
        let defaults = defaults_on();
        let (wake, write) = UnixStream::pair()?;
        let caught = Arc::new(AtomicUsize::new(0));
        // Dropped on an early return: whatever was registered is removed.
        let mut session = Session {
            ids: Vec::new(),
            caught: Arc::clone(&caught),
            wake,
        };
        for sig in terminating_signals() {
            let Ok(value) = usize::try_from(sig) else {
                continue;
            };
            // Not every number can be registered (the C library keeps a
            // few real-time signals); those are skipped.
            if let Ok(id) = signal_hook::flag::register_usize(sig, Arc::clone(&caught), value) {
                session.ids.push(id);
                let id = signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
                session.ids.push(id);
            }
        }
        let id = signal_hook::low_level::pipe::register(Signal::CHILD.as_raw(), write)?;
        session.ids.push(id);
        defaults.store(false, Ordering::SeqCst);
        Ok(session)
    }

    fn caught(&self) -> Option<c_int> {
        match self.caught.load(Ordering::SeqCst) {
            0 => None,
            n => c_int::try_from(n).ok(),
        }
    }

    /// Blocks until a signal or SIGCHLD arrives, or `timeout` passes.
    fn sleep(&self, timeout: Option<Duration>) {
        let _ = self.wake.set_read_timeout(timeout);
        let mut buf = [0u8; 64];
        if let Ok(0) = (&self.wake).read(&mut buf) {
            // Cannot happen while the write ends are registered; do not spin.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the editor; when a terminating signal arrives first, ends
    /// the editor and waits for that. Returns the status and whether byreis
    /// ended the editor.
    fn wait(&self, child: &mut Child) -> std::io::Result<(ExitStatus, bool)> {
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok((status, false)),
                Ok(None) => {}
                Err(e) => {
                    let _ = child.kill();
                    return Err(e);
                }
            }
            if self.caught().is_some() {
                return self.stop(child).map(|status| (status, true));
            }
            self.sleep(None);
        }
    }

    /// Waits for `exec --file`'s program, passing every terminating signal
    /// byreis catches on to it (a signal from the terminal has reached it
    /// already; one sent to byreis alone, as a CI runner's cancel, has not).
    fn pass_on(&self, child: &mut Child) -> std::io::Result<ExitStatus> {
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            let caught = self.caught.swap(0, Ordering::SeqCst);
            if let Some(sig) = c_int::try_from(caught)
                .ok()
                .filter(|&n| n != 0)
                // A signal without a name (real-time) goes on as SIGTERM.
                .map(|n| Signal::from_named_raw(n).unwrap_or(Signal::TERM))
            {
                let _ = rustix::process::kill_process(Pid::from_child(child), sig);
            }
            self.sleep(None);
        }
    }

    /// SIGTERM to the editor, SIGKILL after the grace period.
    fn stop(&self, child: &mut Child) -> std::io::Result<ExitStatus> {
        signal_tree(Pid::from_child(child), Signal::TERM);
        let deadline = Instant::now() + EDITOR_GRACE;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            let now = Instant::now();
            if now >= deadline {
                signal_tree(Pid::from_child(child), Signal::KILL);
                return child.wait();
            }
            self.sleep(Some(deadline - now));
        }
    }
}

/// Sends `sig` to `root` and, on Linux, to every process descending from it
/// (an editor wrapper that does not `exec` its editor leaves the editor a
/// grandchild). Best effort: a process that exits meanwhile is skipped.
fn signal_tree(root: Pid, sig: Signal) {
    #[cfg(target_os = "linux")]
    for pid in descendants(root) {
        let _ = rustix::process::kill_process(pid, sig);
    }
    let _ = rustix::process::kill_process(root, sig);
}

/// The processes whose parent chain leads to `root`, from `/proc`.
#[cfg(target_os = "linux")]
fn descendants(root: Pid) -> Vec<Pid> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(i32, i32)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces and parens.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid = after.split_whitespace().nth(1)?.parse::<i32>().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root.as_raw_nonzero().get()];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for &(pid, ppid) in &parents {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
            }
        }
        i += 1;
    }
    found
        .into_iter()
        .skip(1)
        .filter_map(Pid::from_raw)
        .collect()
}

/// The shell command that runs the editor on `"$1"`. A plain `EDITOR`
/// (words, no shell syntax, no `VAR=value` prefix) is `exec`ed, so the
/// editor itself is byreis's child: it then gets the SIGTERM when byreis
/// is interrupted, and byreis waits for it. Anything else runs as before.
fn editor_command(editor: &str) -> String {
    const RESERVED: &[&str] = &[
        "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "exec", "fi", "for", "if",
        "in", "then", "until", "while",
    ];
    let syntax = editor.contains([';', '&', '|', '(', ')', '`', '\n']);
    let first = editor.split_whitespace().next().unwrap_or("");
    if syntax || first.contains('=') || RESERVED.contains(&first) {
        format!("{editor} \"$1\"")
    } else {
        format!("exec {editor} \"$1\"")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        defaults_on().store(true, Ordering::SeqCst);
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

fn private_base() -> PathBuf {
    let usable = |p: &Path| fs::metadata(p).map(|m| m.is_dir()).unwrap_or(false);
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if d.is_absolute() && usable(&d) {
            return d;
        }
    }
    let shm = PathBuf::from("/dev/shm");
    if usable(&shm) && tempfile::Builder::new().tempdir_in(&shm).is_ok() {
        return shm;
    }
    std::env::temp_dir()
}

/// Every place an edit directory may have been made, for [`sweep_stale`].
fn sweep_bases() -> Vec<PathBuf> {
    let mut bases = Vec::new();
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if d.is_absolute() {
            bases.push(d);
        }
    }
    bases.push(PathBuf::from("/dev/shm"));
    bases.push(std::env::temp_dir());
    let mut unique: Vec<PathBuf> = Vec::new();
    for b in bases {
        let b = fs::canonicalize(&b).unwrap_or(b);
        if !unique.contains(&b) {
            unique.push(b);
        }
    }
    unique
}

/// The outcome of one editor session.
pub struct Edited {
    pub text: Zeroizing<String>,
    /// The editor returned in under a second (an editor that forks to the
    /// background without `--wait` does this).
    pub returned_at_once: bool,
}

/// Writes `initial` to a private file named `name`, runs the user's editor
/// on it and returns what was saved. Every file in the private directory is
/// overwritten and removed before this returns, whatever happens, including
/// a catchable signal while the editor runs.
pub fn edit(name: &str, initial: &str) -> Result<Edited, EditError> {
    disable_core_dumps();
    // Catch signals before any plaintext is written; the session ends
    // (dropped last) after the directory is gone.
    let session = Session::start().map_err(EditError::Temp)?;
    let dir = tempfile::Builder::new()
        .prefix(&format!(
            "{DIR_PREFIX}{}-",
            rustix::process::getpid().as_raw_nonzero()
        ))
        .permissions(fs::Permissions::from_mode_private())
        .tempdir_in(private_base())
        .map_err(EditError::Temp)?;
    // Held while the directory lives, so a sweep by another byreis (which
    // may not see this pid, in another pid namespace) leaves it alone.
    let dir_fd = open_dir(dir.path()).map_err(|e| EditError::Temp(e.into()))?;
    let _ = rustix::fs::flock(&dir_fd, FlockOperation::NonBlockingLockExclusive);
    let path = dir.path().join(name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(EditError::Temp)?;
        f.write_all(initial.as_bytes()).map_err(EditError::Temp)?;
        f.sync_all().map_err(EditError::Temp)?;
        drop(f);

        let editor = std::env::var("VISUAL")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| {
                std::env::var("EDITOR")
                    .ok()
                    .filter(|s| !s.trim().is_empty())
            })
            .unwrap_or_else(|| "vi".into());
        let spawn_error = |source| EditError::Spawn {
            editor: editor.clone(),
            source,
        };
        let started = Instant::now();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(editor_command(&editor))
            .arg("byreis-edit")
            .arg(&path)
            .spawn()
            .map_err(spawn_error)?;
        // A Ctrl-C or a closed terminal reaches the editor too (same
        // process group); a signal sent to byreis alone does not, so byreis
        // ends the editor itself. Either way the edit is discarded.
        let (status, stopped) = session.wait(&mut child).map_err(EditError::Wait)?;
        let elapsed = started.elapsed();
        if let Some(sig) = session.caught() {
            return Err(EditError::Interrupted {
                signal: signal_label(sig),
                how: if stopped {
                    ", so byreis closed the editor"
                } else {
                    ""
                },
            });
        }
        if !status.success() {
            return Err(EditError::EditorFailed(status));
        }
        let text = Zeroizing::new(fs::read_to_string(&path).map_err(EditError::Temp)?);
        Ok(Edited {
            text,
            returned_at_once: elapsed < Duration::from_secs(1),
        })
    })();
    scrub_contents(&dir_fd, 0);
    drop(dir_fd);
    drop(dir);
    // A signal that came after the editor returned still discards the edit.
    let result = match (result, session.caught()) {
        (Ok(_), Some(sig)) => Err(EditError::Interrupted {
            signal: signal_label(sig),
            how: "",
        }),
        (r, _) => r,
    };
    drop(session);
    result
}

/// Why `exec --file` ran nothing, or could not wait for its program.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("exec --file writes secrets to a tmpfs only, never to disk, and found none: {0}. Set XDG_RUNTIME_DIR to a tmpfs directory of yours (systemd makes /run/user/UID), or mount /dev/shm (nothing was run)")]
    NoTmpfs(String),
    #[error("could not prepare the private file for --file: {0} (nothing was run)")]
    Temp(std::io::Error),
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not wait for {program}: {source}; it was ended and its files removed")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// One secret `exec --file` hands over as a file.
pub struct FileValue {
    /// The variable that gets the file's path.
    pub var: String,
    /// The file's name (the secret's name).
    pub name: String,
    pub value: Zeroizing<String>,
}

/// Whether `path` is on a file system that lives in memory only.
fn in_memory(path: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        const TMPFS_MAGIC: i128 = 0x0102_1994;
        const RAMFS_MAGIC: i128 = 0x8584_58f6;
        rustix::fs::statfs(path)
            .map(|st| [TMPFS_MAGIC, RAMFS_MAGIC].contains(&i128::from(st.f_type)))
            .unwrap_or(false)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        false
    }
}

/// The tmpfs directory `exec --file` writes to: `$XDG_RUNTIME_DIR`, else
/// `/dev/shm`; never a disk (there is no fallback).
fn memory_base() -> Result<PathBuf, RunError> {
    let mut seen = Vec::new();
    let mut candidates = Vec::new();
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => candidates.push(d),
        Some(d) => seen.push(format!("XDG_RUNTIME_DIR={} is not absolute", d.display())),
        None => seen.push("XDG_RUNTIME_DIR is not set".to_string()),
    }
    candidates.push(PathBuf::from("/dev/shm"));
    for d in candidates {
        let dir = fs::metadata(&d).map(|m| m.is_dir()).unwrap_or(false);
        if !dir {
            seen.push(format!("{} is not a directory", d.display()));
        } else if !in_memory(&d) {
            seen.push(format!("{} is not a tmpfs", d.display()));
        } else {
            return Ok(d);
        }
    }
    Err(RunError::NoTmpfs(seen.join("; ")))
}

/// Runs `program` with `args` and exactly the variables `vars`, after
/// writing each of `files` to a 0600 file in a fresh 0700 directory on a
/// tmpfs and adding its `var` with the file's path. Returns the program's
/// exit code (128 + N when signal N ended it, as a shell reports it).
///
/// A terminating signal byreis catches is passed on to the program, and
/// byreis keeps waiting for it; whatever ends the wait (the program's exit,
/// an error), the files are overwritten with zeros and removed before this
/// returns. SIGKILL of byreis leaves the directory to [`sweep_stale`].
pub fn run_with_files(
    program: &std::ffi::OsStr,
    args: &[std::ffi::OsString],
    mut vars: std::collections::BTreeMap<std::ffi::OsString, std::ffi::OsString>,
    files: Vec<FileValue>,
) -> Result<i32, RunError> {
    use std::os::unix::process::ExitStatusExt as _;
    disable_core_dumps();
    let base = memory_base()?;
    let session = Session::start().map_err(RunError::Temp)?;
    let dir = tempfile::Builder::new()
        .prefix(&format!(
            "{EXEC_DIR_PREFIX}{}-",
            rustix::process::getpid().as_raw_nonzero()
        ))
        .permissions(fs::Permissions::from_mode_private())
        .tempdir_in(&base)
        .map_err(RunError::Temp)?;
    let dir_fd = open_dir(dir.path()).map_err(|e| RunError::Temp(e.into()))?;
    let _ = rustix::fs::flock(&dir_fd, FlockOperation::NonBlockingLockExclusive);
    let label = program.to_string_lossy().into_owned();
    let result = (|| {
        for f in files {
            let path = dir.path().join(&f.name);
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(RunError::Temp)?;
            out.write_all(f.value.as_bytes()).map_err(RunError::Temp)?;
            drop(out);
            vars.insert(f.var.into(), path.into_os_string());
        }
        let mut child = Command::new(program)
            .args(args)
            .env_clear()
            .envs(&vars)
            .spawn()
            .map_err(|source| RunError::Spawn {
                program: label.clone(),
                source,
            })?;
        // byreis keeps no value while it waits (the files hold them).
        for (_, v) in std::mem::take(&mut vars) {
            drop(Zeroizing::new(std::os::unix::ffi::OsStringExt::into_vec(v)));
        }
        let status = session
            .pass_on(&mut child)
            .map_err(|source| RunError::Wait {
                program: label.clone(),
                source,
            })?;
        Ok(status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1))
    })();
    scrub_contents(&dir_fd, 0);
    drop(dir_fd);
    drop(dir);
    drop(session);
    result
}

fn open_dir(path: &Path) -> rustix::io::Result<std::os::fd::OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn open_dir_at<Fd: AsFd>(dir: Fd, name: &CStr) -> rustix::io::Result<std::os::fd::OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Overwrites every regular file under `dir` with zeros and removes every
/// entry (best effort). Never follows a symbolic link: a link is removed,
/// its target untouched; a file with other hard links is unlinked without
/// being overwritten (its other names are not byreis's to destroy).
fn scrub_contents<Fd: AsFd>(dir: Fd, depth: usize) {
    let dir = dir.as_fd();
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else {
        return;
    };
    let names: Vec<CString> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let Ok(st) = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {
                zero_file(dir, &name);
                let _ = rustix::fs::unlinkat(dir, &name, AtFlags::empty());
            }
            FileType::Directory => {
                if depth < MAX_DEPTH {
                    if let Ok(sub) = open_dir_at(dir, &name) {
                        scrub_contents(&sub, depth + 1);
                    }
                }
                let _ = rustix::fs::unlinkat(dir, &name, AtFlags::REMOVEDIR);
            }
            _ => {
                let _ = rustix::fs::unlinkat(dir, &name, AtFlags::empty());
            }
        }
    }
}

/// Overwrites the regular file `name` in `dir` with zeros, in place.
fn zero_file<Fd: AsFd>(dir: Fd, name: &CStr) {
    let Ok(fd) = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let mut f = File::from(fd);
    let Ok(meta) = f.metadata() else {
        return;
    };
    if !meta.is_file() || meta.nlink() != 1 {
        return;
    }
    let zeros = [0u8; 8192];
    let mut left = meta.len();
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        if f.write_all(&zeros[..n]).is_err() {
            return;
        }
        left -= n as u64;
    }
    let _ = f.sync_all();
}

/// Who made an edit directory, from its name.
#[derive(Debug, PartialEq, Eq)]
enum Owner {
    /// `byreis-edit-<pid>-<random>`.
    Pid(Pid),
    /// `byreis-edit-<random>` (byreis before the pid was in the name).
    Unknown,
}

fn owner_of(name: &[u8]) -> Option<Owner> {
    let rest = SWEPT_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p.as_bytes()))?;
    if rest.is_empty() {
        return None;
    }
    if let Some(dash) = rest.iter().position(|&b| b == b'-') {
        let (digits, random) = (&rest[..dash], &rest[dash + 1..]);
        if !digits.is_empty() && !random.is_empty() && digits.iter().all(u8::is_ascii_digit) {
            return std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<i32>().ok())
                .and_then(Pid::from_raw)
                .map(Owner::Pid);
        }
        return None;
    }
    Some(Owner::Unknown)
}

/// Whether a process with this pid exists (a zombie counts, and so does one
/// of another user).
fn process_exists(pid: Pid) -> bool {
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Removes stale edit directories: ones of this user (owned by the current
/// uid, real directories, never links) in `$XDG_RUNTIME_DIR`, `/dev/shm` and
/// the temp dir whose byreis process is gone (and whose lock no process
/// holds), after overwriting their files with zeros. Directories in the old
/// name format, without a pid, are swept once untouched for
/// [`OLD_FORMAT_AGE`]. Best effort and silent: a run is never stopped by it.
/// A byreis killed with SIGKILL during an edit leaves its directory; this
/// removes it on the next run.
pub fn sweep_stale() {
    let uid = rustix::process::getuid().as_raw();
    for base in sweep_bases() {
        let _ = sweep_base(&base, uid);
    }
}

fn sweep_base(base: &Path, uid: u32) -> rustix::io::Result<()> {
    let base_fd = rustix::fs::open(
        base,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let names: Vec<CString> = rustix::fs::Dir::read_from(&base_fd)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_owned())
        .filter(|n| {
            SWEPT_PREFIXES
                .iter()
                .any(|p| n.as_bytes().starts_with(p.as_bytes()))
        })
        .collect();
    for name in names {
        sweep_one(&base_fd, &name, uid);
    }
    Ok(())
}

fn sweep_one<Fd: AsFd>(base: Fd, name: &CStr, uid: u32) {
    let Some(owner) = owner_of(name.to_bytes()) else {
        return;
    };
    if let Owner::Pid(pid) = owner {
        if process_exists(pid) {
            return;
        }
    }
    // O_NOFOLLOW | O_DIRECTORY: a link named like an edit directory fails
    // here and is left alone.
    let Ok(fd) = open_dir_at(&base, name) else {
        return;
    };
    let dir = File::from(fd);
    let Ok(meta) = dir.metadata() else {
        return;
    };
    if !meta.is_dir() || meta.uid() != uid {
        return;
    }
    if owner == Owner::Unknown {
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= OLD_FORMAT_AGE);
        if !old {
            return;
        }
    }
    // A live edit holds this lock (even one whose pid this process cannot
    // see); leave its directory alone.
    if rustix::fs::flock(&dir, FlockOperation::NonBlockingLockExclusive).is_err() {
        return;
    }
    scrub_contents(&dir, 0);
    let _ = rustix::fs::unlinkat(&base, name, AtFlags::REMOVEDIR);
}

trait PrivateMode {
    fn from_mode_private() -> fs::Permissions;
}
impl PrivateMode for fs::Permissions {
    fn from_mode_private() -> fs::Permissions {
        use std::os::unix::fs::PermissionsExt;
        fs::Permissions::from_mode(0o700)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_dir_names_say_their_owner() {
        assert_eq!(
            owner_of(b"byreis-edit-1234-AbC9x"),
            Some(Owner::Pid(Pid::from_raw(1234).unwrap()))
        );
        assert_eq!(owner_of(b"byreis-edit-AbC9x0"), Some(Owner::Unknown));
        assert_eq!(owner_of(b"byreis-edit-123456"), Some(Owner::Unknown));
        for not_ours in [
            &b"byreis-edit-"[..],
            b"byreis-edit-0-x",
            b"byreis-edit-12-",
            b"byreis-edit--x",
            b"byreis-edit-1a-x",
            b"byreis-edit-99999999999-x",
            b"other-1-x",
        ] {
            assert_eq!(
                owner_of(not_ours),
                None,
                "{:?}",
                String::from_utf8_lossy(not_ours)
            );
        }
    }

    #[test]
    fn plain_editors_are_execed() {
        for (editor, cmd) in [
            ("vim", "exec vim \"$1\""),
            ("code --wait", "exec code --wait \"$1\""),
            (
                "\"/opt/My Editor/ed\" -w",
                "exec \"/opt/My Editor/ed\" -w \"$1\"",
            ),
            ("FOO=1 vim", "FOO=1 vim \"$1\""),
            ("vim; rm -f x", "vim; rm -f x \"$1\""),
            ("a && b", "a && b \"$1\""),
            ("exec vim", "exec vim \"$1\""),
            ("if true; then vi", "if true; then vi \"$1\""),
        ] {
            assert_eq!(editor_command(editor), cmd, "{editor}");
        }
    }

    #[test]
    fn caught_signals_cover_the_terminating_ones() {
        let sigs = terminating_signals();
        for s in [
            Signal::HUP,
            Signal::INT,
            Signal::QUIT,
            Signal::TERM,
            Signal::USR1,
            Signal::USR2,
            Signal::ALARM,
            Signal::PIPE,
            Signal::VTALARM,
            Signal::PROF,
            Signal::XCPU,
            Signal::XFSZ,
            Signal::SYS,
            Signal::TRAP,
            Signal::ABORT,
            Signal::BUS,
        ] {
            assert!(sigs.contains(&s.as_raw()), "{s:?} is not caught");
        }
        #[cfg(target_os = "linux")]
        assert!(sigs.contains(&Signal::IO.as_raw()), "SIGIO is not caught");
        for s in [
            Signal::CHILD,
            Signal::WINCH,
            Signal::KILL,
            Signal::STOP,
            Signal::SEGV,
        ] {
            assert!(!sigs.contains(&s.as_raw()), "{s:?} must not be in the list");
        }
    }
}
