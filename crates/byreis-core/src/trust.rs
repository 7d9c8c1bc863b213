//! What this machine trusts, per project repository (invariant 8), and the
//! highest roster version and counter it has seen (invariant 2).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keys::{Home, KeyError};
use crate::signed::sha256_hex;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The repository's git directory, canonical path.
    pub repository: String,
    /// Resolved registry location: an absolute path or a URL.
    pub registry: String,
    /// Grouped fingerprint of roster version 1.
    pub anchor: String,
    pub roster_version_seen: u64,
    pub counter_seen: u64,
    /// Highest record revision seen (see `Record::revision`).
    #[serde(default)]
    pub record_revision_seen: u64,
    pub trusted_at: String,
    /// The project this repository is, as the user trusted it (`trust`,
    /// `init`); byreis.yaml's `project:` must agree. Absent in pins made
    /// before it existed (ADR 0015).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

fn pin_path(home: &Home, git_common_dir: &Path) -> PathBuf {
    let canon = git_common_dir
        .canonicalize()
        .unwrap_or_else(|_| git_common_dir.to_path_buf());
    let id = sha256_hex(canon.to_string_lossy().as_bytes());
    home.dir.join("trust").join(format!("{}.yaml", &id[..32]))
}

pub fn repository_key(git_common_dir: &Path) -> String {
    git_common_dir
        .canonicalize()
        .unwrap_or_else(|_| git_common_dir.to_path_buf())
        .display()
        .to_string()
}

/// The pin for this repository, if any.
pub fn load(home: &Home, git_common_dir: &Path) -> Result<Option<Pin>, KeyError> {
    let path = pin_path(home, git_common_dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KeyError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    crate::yaml::from_untrusted(&text)
        .map(Some)
        .map_err(|e| KeyError::BadKey {
            what: path.display().to_string(),
            detail: format!("{e}; remove the file and run `byreis trust` again"),
        })
}

/// Writes the pin atomically (temp file, fsync, rename), mode 0600.
pub fn save(home: &Home, git_common_dir: &Path, pin: &Pin) -> Result<(), KeyError> {
    home.ensure()?;
    let path = pin_path(home, git_common_dir);
    write_private(
        &path,
        serde_yaml::to_string(pin)
            .expect("pin serializes")
            .as_bytes(),
    )
}

/// The highest roster version, record revision and counter this machine
/// has verified for one project of one registry, whatever way it was
/// pinned (a stored pin, `BYREIS_ANCHOR`, any clone of the project).
/// Keyed by the roster chain's identity (version 1's fingerprint) and the
/// project name, so every clone and every run on this machine shares them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    pub roster_version: u64,
    pub record_revision: u64,
    pub counter: u64,
}

fn seen_path(home: &Home, chain_identity: &str, project: &str) -> PathBuf {
    let id = sha256_hex(
        format!(
            "{}\0{project}",
            crate::keys::normalise_fingerprint(chain_identity)
        )
        .as_bytes(),
    );
    home.dir.join("seen").join(format!("{}.yaml", &id[..32]))
}

/// The marks recorded for (`chain_identity`, `project`); zeros if none.
pub fn load_seen(home: &Home, chain_identity: &str, project: &str) -> Result<Seen, KeyError> {
    let path = seen_path(home, chain_identity, project);
    match fs::read_to_string(&path) {
        Ok(t) => crate::yaml::from_untrusted(&t).map_err(|e| KeyError::BadKey {
            what: path.display().to_string(),
            detail: format!(
                "{e}; it holds what this machine has seen, so do not delete it lightly: compare with another machine first"
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Seen::default()),
        Err(source) => Err(KeyError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Raises the recorded marks to at least `seen` (never lowers one);
/// atomic, mode 0600.
pub fn save_seen(
    home: &Home,
    chain_identity: &str,
    project: &str,
    seen: &Seen,
) -> Result<(), KeyError> {
    let old = load_seen(home, chain_identity, project).unwrap_or_default();
    let new = Seen {
        roster_version: old.roster_version.max(seen.roster_version),
        record_revision: old.record_revision.max(seen.record_revision),
        counter: old.counter.max(seen.counter),
    };
    if new == old {
        return Ok(());
    }
    home.ensure()?;
    let path = seen_path(home, chain_identity, project);
    write_private(
        &path,
        serde_yaml::to_string(&new).expect("serializes").as_bytes(),
    )
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let dir = path.parent().expect("has a parent");
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}
