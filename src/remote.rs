//! Network operations on registries given by URL, through the user's own
//! `git` (so their credential helpers and SSH config apply). Only called by
//! commands whose job needs them (invariant 7); URLs are passed after `--`
//! and hooks are disabled.

use std::path::Path;
use std::process::Command;

use crate::keys::Home;
use crate::verify::{self, managed_clone_dir};

#[derive(Debug, thiserror::Error)]
#[error("git {what} failed for {target}: {detail}")]
pub struct RemoteError {
    what: &'static str,
    target: String,
    detail: String,
}

fn git(dir: Option<&Path>) -> Command {
    let mut c = Command::new("git");
    if let Some(d) = dir {
        c.arg("-C").arg(d);
    }
    // Hooks off; only the transports byreis accepts for a registry.
    c.args([
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "protocol.allow=never",
        "-c",
        "protocol.https.allow=always",
        "-c",
        "protocol.ssh.allow=always",
        "-c",
        "protocol.file.allow=always",
    ]);
    c
}

fn run(mut c: Command, what: &'static str, target: &str) -> Result<(), RemoteError> {
    let out = c.output().map_err(|e| RemoteError {
        what,
        target: target.into(),
        detail: format!("{e} (is git installed?)"),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(RemoteError {
            what,
            target: target.into(),
            detail: crate::names::escape(String::from_utf8_lossy(&out.stderr).trim()),
        })
    }
}

/// Clones registry `url` to its managed directory under `$BYREIS_HOME`.
pub fn clone(home: &Home, url: &str) -> Result<(), RemoteError> {
    if !verify::is_url(url) {
        return Err(RemoteError {
            what: "clone",
            target: url.into(),
            detail: "not a URL with a known scheme".into(),
        });
    }
    let dir = managed_clone_dir(home, url);
    if let Some(parent) = dir.parent() {
        let _ = home.ensure();
        let _ = std::fs::create_dir_all(parent);
    }
    let mut c = git(None);
    c.args(["clone", "--quiet", "--"]).arg(url).arg(&dir);
    run(c, "clone", url)
}

/// What [`refresh_registry`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    Cloned,
    Updated,
    /// A local registry without a remote: used as it is.
    NoRemote,
}

/// Brings this machine's copy of registry `location` up to date: clones
/// or fast-forwards the managed clone of a URL, fast-forwards a local
/// clone that has an `origin`.
pub fn refresh_registry(home: &Home, location: &str) -> Result<Refreshed, RemoteError> {
    let dir = verify::registry_dir(home, location);
    if verify::is_url(location) && !dir.exists() {
        clone(home, location)?;
        return Ok(Refreshed::Cloned);
    }
    if verify::is_url(location) || crate::git::Repo::open(&dir).is_ok_and(|r| r.has_origin()) {
        update(&dir)?;
        return Ok(Refreshed::Updated);
    }
    Ok(Refreshed::NoRemote)
}

/// Fast-forwards a managed clone to its remote.
pub fn update(dir: &Path) -> Result<(), RemoteError> {
    let mut c = git(Some(dir));
    c.args(["pull", "--quiet", "--ff-only"]);
    run(c, "pull", &dir.display().to_string())
}

/// Moves the current branch of `dir` back to `commit` (after a push that
/// the remote refused, so the local copy does not diverge from it).
pub fn reset_to(dir: &Path, commit: &str) -> Result<(), RemoteError> {
    let mut c = git(Some(dir));
    c.args(["reset", "--quiet", "--hard", commit, "--"]);
    run(c, "reset", &dir.display().to_string())
}

/// Pushes a managed clone's current branch.
pub fn push(dir: &Path) -> Result<(), RemoteError> {
    let mut c = git(Some(dir));
    c.args(["push", "--quiet", "origin", "HEAD"]);
    run(c, "push", &dir.display().to_string())
}

/// Pushes `refspec` (for example `refs/heads/byreis/proposal/7-ab12cd34`)
/// to `origin`.
pub fn push_ref(dir: &Path, refspec: &str) -> Result<(), RemoteError> {
    let mut c = git(Some(dir));
    c.args(["push", "--quiet", "origin", "--", refspec]);
    run(c, "push", &dir.display().to_string())
}

/// Fetches `refspec` from `origin`.
pub fn fetch_refs(dir: &Path, refspec: &str) -> Result<(), RemoteError> {
    let mut c = git(Some(dir));
    c.args(["fetch", "--quiet", "origin", "--", refspec]);
    run(c, "fetch", &dir.display().to_string())
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
