//! Network operations on registries given by URL, through the user's own
//! `git` (so their credential helpers and SSH config apply). Only called by
//! commands whose job needs them (invariant 7); URLs are passed after `--`
//! and hooks are disabled.

use std::path::Path;
use std::process::Command;

use crate::keys::Home;
use crate::verify::{self, managed_clone_dir};

pub use crate::transport::RemoteError;

/// The transport the CLI installs: the user's own `git`, with byreis's
/// neutral configuration and stripped environment.
pub struct Git;

/// The one [`Git`] transport.
pub static GIT: Git = Git;

impl crate::transport::Transport for Git {
    fn clone_registry(&self, home: &Home, url: &str) -> Result<(), RemoteError> {
        clone(home, url)
    }
    fn push(&self, dir: &Path) -> Result<(), RemoteError> {
        push(dir)
    }
    fn push_ref(&self, dir: &Path, refspec: &str) -> Result<(), RemoteError> {
        push_ref(dir, refspec)
    }
    fn fetch_refs(&self, dir: &Path, refspec: &str) -> Result<(), RemoteError> {
        fetch_refs(dir, refspec)
    }
    fn reset_to(&self, dir: &Path, commit: &str) -> Result<(), RemoteError> {
        reset_to(dir, commit)
    }
}

/// Configuration every git subprocess gets on its command line, which
/// overrides any file (ADR 0015 lists each key and why): nothing a
/// repository's own `config` says can make git run a program, use another
/// work tree or hand credentials to a helper.
pub const NEUTRAL_CONFIG: &[&str] = &[
    // Hooks off.
    "core.hooksPath=/dev/null",
    // No file-system monitor process.
    "core.fsmonitor=false",
    // Plain ssh (the user's ~/.ssh/config and agent still apply).
    "core.sshCommand=ssh",
    // No askpass program (an empty value is "unset" to git).
    "core.askPass=",
    // Credential helpers reset to none.
    "credential.helper=",
    // Signature checks would run gpg/ssh programs named in config.
    "merge.verifySignatures=false",
    "gpg.program=false",
    "gpg.ssh.program=false",
    "gpg.x509.program=false",
    // No submodules, no proxy commands, no external diff or pager.
    "submodule.recurse=false",
    "fetch.recurseSubmodules=false",
    "push.recurseSubmodules=no",
    "core.gitProxy=",
    "diff.external=",
    "core.pager=cat",
    // Only the transports byreis accepts for a registry or a project remote.
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.ssh.allow=always",
    "protocol.file.allow=always",
];

/// The programs run on the other side of a local or ssh transport, given
/// as options (git uses the *first* `remote.NAME.uploadpack` it reads, so
/// a `-c` cannot override one a repository's config names; the option
/// does).
const UPLOAD_PACK: &str = "--upload-pack=git-upload-pack";
const RECEIVE_PACK: &str = "--receive-pack=git-receive-pack";

/// Variables removed from every child git's environment: tokens, byreis's
/// own, and every `GIT_*` (they can name another repository, work tree,
/// config file or program); byreis then sets the few it means.
pub fn is_stripped_var(name: &str) -> bool {
    name.starts_with("BYREIS_")
        || name.starts_with("GIT_")
        || crate::exec::TOKEN_NAMES.contains(&name)
}

/// The one git config file the user may give byreis's git, by
/// `BYREIS_GIT_CONFIG` (for example `url.*.insteadOf` for a mirror): read
/// in place of the global config. It is the user's environment, never the
/// project's; every key of [`NEUTRAL_CONFIG`] still overrides it.
fn user_git_config() -> std::ffi::OsString {
    match std::env::var_os("BYREIS_GIT_CONFIG") {
        Some(p)
            if Path::new(&p).is_absolute()
                && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) =>
        {
            p
        }
        _ => "/dev/null".into(),
    }
}

/// A `git` command with system and global config off, every key of
/// [`NEUTRAL_CONFIG`] set on the command line, and a clean environment.
/// `dir` is addressed with explicit `--git-dir`/`--work-tree` when it is a
/// work tree, so a `core.worktree` in its config cannot move it.
pub fn git(dir: Option<&Path>) -> Command {
    let mut c = Command::new("git");
    for (k, _) in std::env::vars_os() {
        if is_stripped_var(&k.to_string_lossy()) {
            c.env_remove(&k);
        }
    }
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", user_git_config())
        .env("GIT_ATTR_NOSYSTEM", "1")
        .env("GIT_NO_REPLACE_OBJECTS", "1")
        .env("GIT_TERMINAL_PROMPT", "0");
    c.arg("--no-pager");
    for kv in NEUTRAL_CONFIG {
        c.arg("-c").arg(kv);
    }
    if let Some(d) = dir {
        let dot_git = d.join(".git");
        if dot_git.is_dir() {
            c.arg(format!("--git-dir={}", dot_git.display()))
                .arg(format!("--work-tree={}", d.display()));
        } else {
            c.arg("-C").arg(d);
        }
    }
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
            detail: git_stderr(&out.stderr),
        })
    }
}

/// git's message, one escaped line per line it printed (never a literal
/// `\n`), without its `hint:` lines.
fn git_stderr(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
        .map(crate::names::escape)
        .collect();
    if lines.len() > 1 {
        format!("\n    {}", lines.join("\n    "))
    } else {
        lines.concat()
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
    c.args(["clone", "--quiet", UPLOAD_PACK, "--"])
        .arg(url)
        .arg(&dir);
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
    c.args(["pull", "--quiet", "--ff-only", UPLOAD_PACK]);
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
    c.args(["push", "--quiet", RECEIVE_PACK, "origin", "HEAD"]);
    run(c, "push", &dir.display().to_string())
}

/// Pushes `refspec` (for example `refs/heads/byreis/proposal/7-ab12cd34`)
/// to `origin`.
pub fn push_ref(dir: &Path, refspec: &str) -> Result<(), RemoteError> {
    let mut c = git(Some(dir));
    c.args(["push", "--quiet", RECEIVE_PACK, "origin", "--", refspec]);
    run(c, "push", &dir.display().to_string())
}

/// Fetches `refspec` from `origin`.
pub fn fetch_refs(dir: &Path, refspec: &str) -> Result<(), RemoteError> {
    let mut c = git(Some(dir));
    c.args(["fetch", "--quiet", UPLOAD_PACK, "origin", "--", refspec]);
    run(c, "fetch", &dir.display().to_string())
}

pub use crate::transport::{fetch_branches, short_branch};
