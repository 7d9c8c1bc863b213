//! The port through which the core reaches a git remote (ADR 0020):
//! pushes, fetches and the clone of a registry given by URL. The core
//! names what to push or fetch and spawns nothing itself; the CLI installs
//! the implementation (`remote::Git`, the user's own `git` with byreis's
//! neutral configuration) before it runs a verb. Without one installed,
//! every remote operation fails with `remote-failed`: a program that uses
//! byreis as a library reaches no network unless it says so.

use std::path::Path;
use std::sync::OnceLock;

use crate::keys::Home;

#[derive(Debug, thiserror::Error)]
#[error("git {what} failed for {target}: {detail}")]
pub struct RemoteError {
    pub what: &'static str,
    pub target: String,
    pub detail: String,
}

impl RemoteError {
    /// The refusal code this error is reported with: `push-failed` for a
    /// push, `remote-failed` for anything else.
    pub fn code(&self) -> crate::diag::Refusal {
        if self.what == "push" {
            crate::diag::Refusal::PushFailed
        } else {
            crate::diag::Refusal::RemoteFailed
        }
    }
}

/// What the core asks of a git remote.
pub trait Transport: Send + Sync {
    /// Clones registry `url` to its managed directory under `home`.
    fn clone_registry(&self, home: &Home, url: &str) -> Result<(), RemoteError>;
    /// Pushes the current branch of `dir` to its `origin`.
    fn push(&self, dir: &Path) -> Result<(), RemoteError>;
    /// Pushes `refspec` to `origin`.
    fn push_ref(&self, dir: &Path, refspec: &str) -> Result<(), RemoteError>;
    /// Fetches `refspec` from `origin`.
    fn fetch_refs(&self, dir: &Path, refspec: &str) -> Result<(), RemoteError>;
    /// Moves the current branch of `dir` back to `commit` (after a push the
    /// remote refused, so the local copy does not diverge from it).
    fn reset_to(&self, dir: &Path, commit: &str) -> Result<(), RemoteError>;
}

static INSTALLED: OnceLock<&'static dyn Transport> = OnceLock::new();

/// Installs the transport for this process (the CLI does, once).
pub fn install(t: &'static dyn Transport) {
    let _ = INSTALLED.set(t);
}

/// The transport when none was installed: refuses every operation.
struct Offline;

impl Offline {
    fn refuse(what: &'static str, target: &Path) -> RemoteError {
        RemoteError {
            what,
            target: target.display().to_string(),
            detail: "this program installed no transport, so byreis reaches no remote".into(),
        }
    }
}

impl Transport for Offline {
    fn clone_registry(&self, _: &Home, url: &str) -> Result<(), RemoteError> {
        Err(Self::refuse("clone", Path::new(url)))
    }
    fn push(&self, dir: &Path) -> Result<(), RemoteError> {
        Err(Self::refuse("push", dir))
    }
    fn push_ref(&self, dir: &Path, _: &str) -> Result<(), RemoteError> {
        Err(Self::refuse("push", dir))
    }
    fn fetch_refs(&self, dir: &Path, _: &str) -> Result<(), RemoteError> {
        Err(Self::refuse("fetch", dir))
    }
    fn reset_to(&self, dir: &Path, _: &str) -> Result<(), RemoteError> {
        Err(Self::refuse("reset", dir))
    }
}

fn get() -> &'static dyn Transport {
    INSTALLED.get().copied().unwrap_or(&Offline)
}

/// See [`Transport::clone_registry`].
pub fn clone(home: &Home, url: &str) -> Result<(), RemoteError> {
    get().clone_registry(home, url)
}

/// See [`Transport::push`].
pub fn push(dir: &Path) -> Result<(), RemoteError> {
    get().push(dir)
}

/// See [`Transport::push_ref`].
pub fn push_ref(dir: &Path, refspec: &str) -> Result<(), RemoteError> {
    get().push_ref(dir, refspec)
}

/// See [`Transport::fetch_refs`].
pub fn fetch_refs(dir: &Path, refspec: &str) -> Result<(), RemoteError> {
    get().fetch_refs(dir, refspec)
}

/// See [`Transport::reset_to`].
pub fn reset_to(dir: &Path, commit: &str) -> Result<(), RemoteError> {
    get().reset_to(dir, commit)
}

/// Fetches `origin`'s branches named `prefix…` into
/// `refs/remotes/origin/` when the repository at `dir` has an `origin`.
/// Returns a note for a later "no such branch" error when the fetch
/// failed (the branch may then exist only on `origin`), else "".
pub fn fetch_branches(repo: &crate::git::Repo, dir: Option<&Path>, prefix: &str) -> String {
    let Some(dir) = dir.filter(|_| repo.has_origin()) else {
        return String::new();
    };
    match fetch_refs(
        dir,
        &format!("+refs/heads/{prefix}*:refs/remotes/origin/{prefix}*"),
    ) {
        Ok(()) => String::new(),
        Err(e) => format!(" (fetching {prefix}* from origin failed: {e})"),
    }
}

/// `refs/heads/NAME` and `origin/NAME` as the branch name `NAME`.
pub fn short_branch(reference: &str) -> &str {
    let name = reference.strip_prefix("refs/heads/").unwrap_or(reference);
    name.strip_prefix("origin/").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_transport_nothing_reaches_a_remote() {
        // The unit tests install none: the core alone pushes nowhere.
        let e = push(Path::new("/nonexistent")).unwrap_err();
        assert_eq!(e.code(), crate::diag::Refusal::PushFailed);
        assert!(e.to_string().contains("no transport"), "{e}");
        let e = fetch_refs(Path::new("/x"), "refs/heads/a").unwrap_err();
        assert_eq!(e.code(), crate::diag::Refusal::RemoteFailed);
    }
}
