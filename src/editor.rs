//! Editing secrets in a private temporary file (invariant 5).
//!
//! The file lives in a fresh 0700 directory under `$XDG_RUNTIME_DIR`, else
//! `/dev/shm`, else the system temp dir; it is created 0600, core dumps are
//! disabled first, and the directory is removed on every exit path that
//! byreis controls (including Ctrl-C while the editor runs). byreis cannot
//! control what the editor itself writes elsewhere (swap, backup and undo
//! files); `SECURITY.md` says so.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

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
    #[error("interrupted; nothing was changed and the temporary file was removed")]
    Interrupted,
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

/// The outcome of one editor session.
pub struct Edited {
    pub text: Zeroizing<String>,
    /// The editor returned in under a second (an editor that forks to the
    /// background without `--wait` does this).
    pub returned_at_once: bool,
}

/// Writes `initial` to a private file named `name`, runs the user's editor
/// on it and returns what was saved. The file is overwritten and removed
/// before this returns, whatever happens.
pub fn edit(name: &str, initial: &str) -> Result<Edited, EditError> {
    disable_core_dumps();
    let dir = tempfile::Builder::new()
        .prefix("byreis-edit-")
        .permissions(fs::Permissions::from_mode_private())
        .tempdir_in(private_base())
        .map_err(EditError::Temp)?;
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

        // Keep byreis alive through Ctrl-C so the cleanup below runs; the
        // editor, in the same process group, gets the signal as usual.
        let interrupted = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            if let Ok(id) = signal_hook::flag::register(sig, Arc::clone(&interrupted)) {
                ids.push(id);
            }
        }
        let editor = std::env::var("VISUAL")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| {
                std::env::var("EDITOR")
                    .ok()
                    .filter(|s| !s.trim().is_empty())
            })
            .unwrap_or_else(|| "vi".into());
        let started = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("byreis-edit")
            .arg(&path)
            .status();
        let elapsed = started.elapsed();
        for id in ids {
            signal_hook::low_level::unregister(id);
        }
        let status = status.map_err(|source| EditError::Spawn {
            editor: editor.clone(),
            source,
        })?;
        if interrupted.load(Ordering::SeqCst) {
            return Err(EditError::Interrupted);
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
    scrub(&path);
    drop(dir);
    result
}

/// Overwrites a file with zeros, then removes it (best effort).
fn scrub(path: &Path) {
    if let Ok(meta) = fs::symlink_metadata(path) {
        if meta.is_file() {
            if let Ok(mut f) = OpenOptions::new().write(true).open(path) {
                let zeros = vec![0u8; meta.len() as usize];
                let _ = f.write_all(&zeros);
                let _ = f.sync_all();
            }
        }
        let _ = fs::remove_file(path);
    }
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
