//! The admin registry repository: roster versions, project records and the
//! generated `allowed_signers`. Read from the registry's HEAD commit (git
//! objects, not the working tree), so uncommitted edits there count for
//! nothing.

use std::path::{Path, PathBuf};

use crate::documents::{self, Admin, Record, Roster, ROSTER_FORMAT};
use crate::git::{Change, GitError, Repo};
use crate::keys::{self, AgeRecipient, Signer, SigningPub};
use crate::names::{self, Kind};
use crate::signed::{self, sha256_hex, SignedError, Verified};
use crate::sshsig::{self, Namespace};

pub const ALLOWED_SIGNERS: &str = "allowed_signers";
/// The registry's own audit log: one signed entry per roster change.
pub const REGISTRY_AUDIT: &str = "audit.jsonl";
/// Registry paths only byreis writes.
pub const REGISTRY_OWNED: &[&str] = &["roster", "projects", ALLOWED_SIGNERS, REGISTRY_AUDIT];

/// Files copied from `registry-template/` by `registry init`.
pub const TEMPLATE: &[(&str, &str)] = &[
    (
        "README.md",
        include_str!("../../../registry-template/README.md"),
    ),
    (
        ".github/PULL_REQUEST_TEMPLATE.md",
        include_str!("../../../registry-template/.github/PULL_REQUEST_TEMPLATE.md"),
    ),
    (
        ".github/CODEOWNERS",
        include_str!("../../../registry-template/.github/CODEOWNERS"),
    ),
    (
        "requests/README.md",
        include_str!("../../../registry-template/requests/README.md"),
    ),
    (
        ".github/workflows/verify.yml",
        include_str!("../../../registry-template/.github/workflows/verify.yml"),
    ),
];

pub fn roster_path(version: u64) -> String {
    format!("roster/{version}.yaml")
}
pub fn record_path(project: &str) -> String {
    format!("projects/{project}/record.yaml")
}
pub fn sig_path(path: &str) -> String {
    format!("{path}.sig")
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Git(#[from] GitError),
    #[error("{0} has no commits; it is not a byreis registry")]
    Empty(String),
    #[error("{path} is missing from the registry")]
    Missing { path: String },
    #[error("{path}: {source}")]
    Signed {
        path: String,
        #[source]
        source: SignedError,
    },
    #[error("no roster version hashes to the trusted anchor {expected} (roster/1.yaml hashes to anchor {found})")]
    Anchor { found: String, expected: String },
    #[error("roster version {0}: {1}")]
    Roster(u64, String),
    #[error("{0}")]
    Remote(String),
}

impl RegistryError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        match self {
            RegistryError::Git(e) => e.code(),
            RegistryError::Remote(_) => crate::diag::Refusal::PushFailed,
            _ => crate::diag::Refusal::RegistryUnusable,
        }
    }
}

/// The verified roster chain, version 1 to the newest.
#[derive(Debug)]
pub struct RosterChain {
    pub versions: Vec<Verified<Roster>>,
    pub anchor: String,
    /// The version whose fingerprint is the anchor.
    pub anchor_version: u64,
}

impl RosterChain {
    /// The version of this chain whose fingerprint is `fp`, if any.
    pub fn version_of_fingerprint(&self, fp: &str) -> Option<u64> {
        let want = keys::normalise_fingerprint(fp);
        self.versions
            .iter()
            .find(|r| keys::normalise_fingerprint(&keys::grouped_fingerprint(r.bytes())) == want)
            .map(|r| r.value().version)
    }
    /// Fingerprint of version 1: the chain's identity, whichever version
    /// the anchor names.
    pub fn identity(&self) -> String {
        keys::grouped_fingerprint(self.versions[0].bytes())
    }
    pub fn latest(&self) -> &Roster {
        self.versions.last().expect("a chain has version 1").value()
    }
    pub fn version(&self, v: u64) -> Option<&Roster> {
        self.versions
            .get((v as usize).checked_sub(1)?)
            .map(|r| r.value())
    }
}

/// Signing keys of a roster's admins, in roster order.
pub fn admin_keys(roster: &Roster) -> Vec<SigningPub> {
    roster
        .admins
        .iter()
        .map(|a| SigningPub::parse(&a.signing_key).expect("verified rosters have valid keys"))
        .collect()
}

/// Checks a roster's content (names, keys, thresholds).
pub fn check_roster(r: &Roster, version: u64) -> Result<(), String> {
    if r.format != ROSTER_FORMAT {
        return Err(format!("unknown format {:?}", names::escape(&r.format)));
    }
    if r.version != version {
        return Err(format!(
            "file roster/{version}.yaml says version {}",
            r.version
        ));
    }
    if r.admins.is_empty() {
        return Err("no admins".into());
    }
    let t = &r.thresholds;
    for (what, k) in [
        ("roster", t.roster),
        ("recipients", t.recipients),
        ("values", t.values),
    ] {
        if k == 0 || k > r.admins.len() {
            return Err(format!(
                "threshold {what} = {k} is not between 1 and the number of admins"
            ));
        }
    }
    let mut seen_keys = Vec::new();
    for (i, a) in r.admins.iter().enumerate() {
        names::check(Kind::Member, &a.name).map_err(|e| e.to_string())?;
        if r.admins[..i].iter().any(|b| b.name == a.name) {
            return Err(format!("admin {} listed twice", a.name));
        }
        let k = SigningPub::parse(&a.signing_key).map_err(|e| e.to_string())?;
        if seen_keys.contains(&k) {
            return Err(format!("admin {}'s signing key is listed twice", a.name));
        }
        seen_keys.push(k);
        AgeRecipient::parse(&a.age_recipient).map_err(|e| e.to_string())?;
    }
    if let Some(loc) = &r.location {
        check_location(loc)?;
    }
    Ok(())
}

/// A registry location as a roster may state it: a git URL with a known
/// scheme, or an absolute path, with no control characters.
pub fn check_location(loc: &str) -> Result<(), String> {
    if loc.len() > 1024
        || loc.chars().any(char::is_control)
        || !(is_url(loc) || loc.starts_with('/'))
    {
        return Err(format!(
            "location {} is neither a git URL (https://, ssh://, file://, user@host:path) nor an absolute path",
            crate::names::quoted(loc)
        ));
    }
    Ok(())
}

pub struct Registry {
    pub repo: Repo,
    pub dir: PathBuf,
    /// The commit everything was read from; writes are compare-and-swap
    /// against it, so a registry that moved meanwhile is never overwritten.
    head: std::cell::RefCell<String>,
    /// The commit before this run's first write (for undoing a local write
    /// whose push the remote refused).
    before: std::cell::RefCell<Option<String>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({})", self.dir.display())
    }
}

impl Registry {
    pub fn open(dir: &Path) -> Result<Registry, RegistryError> {
        let repo = Repo::open(dir)?;
        let head = repo
            .head()?
            .ok_or_else(|| RegistryError::Empty(dir.display().to_string()))?
            .to_string();
        Ok(Registry {
            repo,
            dir: dir.to_path_buf(),
            head: std::cell::RefCell::new(head),
            before: std::cell::RefCell::new(None),
        })
    }

    pub fn head(&self) -> String {
        self.head.borrow().clone()
    }

    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        Ok(self.repo.read_file(&self.head(), path)?)
    }

    /// One signed commit on top of the commit this registry was read at;
    /// refused (`Raced`) if the registry moved since.
    pub fn commit(
        &self,
        changes: &[Change],
        msg: &str,
        signer: &Signer,
        author: (&str, &str),
    ) -> Result<String, RegistryError> {
        let old = crate::git::Oid::from_str(&self.head()).map_err(GitError::Git)?;
        let new = self
            .repo
            .create_signed_commit(Some(old), changes, msg, signer, author)?;
        self.repo.advance_branch(Some(old), new, changes)?;
        self.before
            .borrow_mut()
            .get_or_insert_with(|| old.to_string());
        *self.head.borrow_mut() = new.to_string();
        Ok(new.to_string())
    }

    fn read_required(&self, path: &str) -> Result<Vec<u8>, RegistryError> {
        self.read(path)?.ok_or_else(|| RegistryError::Missing {
            path: path.to_string(),
        })
    }

    /// The exact bytes of roster version 1 (whose fingerprint is the anchor).
    pub fn roster_v1_bytes(&self) -> Result<Vec<u8>, RegistryError> {
        self.read_required(&roster_path(1))
    }

    /// The exact bytes of roster version `v`, if present.
    pub fn roster_bytes(&self, v: u64) -> Result<Option<Vec<u8>>, RegistryError> {
        self.read(&roster_path(v))
    }

    /// Walks roster versions 1, 2, … verifying each, and requires the
    /// anchor to be the fingerprint of one of them. An anchor names version
    /// 1 or a later one (ADR 0015): version K's bytes name K-1's hash, so
    /// they pin every version up to K, and each later version is signed by
    /// a threshold of the one before. A chain without that exact version K
    /// (a copy frozen earlier, or a fork a removed admin made from an
    /// older version) is refused.
    pub fn roster_chain(&self, anchor: &str) -> Result<RosterChain, RegistryError> {
        let mut versions: Vec<Verified<Roster>> = Vec::new();
        // Which version the anchor names, before anything is parsed: a
        // registry with no such version is not the one the user trusted.
        let want = keys::normalise_fingerprint(anchor);
        if self.read(&roster_path(1))?.is_none() {
            return Err(RegistryError::Missing {
                path: roster_path(1),
            });
        }
        let mut anchor_version = None;
        let mut v = 1u64;
        while let Some(bytes) = self.read(&roster_path(v))? {
            if keys::normalise_fingerprint(&keys::grouped_fingerprint(&bytes)) == want {
                anchor_version = Some(v);
                break;
            }
            v += 1;
        }
        if anchor_version.is_none() {
            return Err(RegistryError::Anchor {
                found: self
                    .read(&roster_path(1))?
                    .map(|b| keys::grouped_fingerprint(&b))
                    .unwrap_or_default(),
                expected: anchor.to_string(),
            });
        }
        let mut v = 1u64;
        loop {
            let path = roster_path(v);
            let Some(bytes) = self.read(&path)? else {
                break;
            };
            let sig = String::from_utf8_lossy(&self.read_required(&sig_path(&path))?).into_owned();
            // Parse first (bytes are pinned by the anchor or by the
            // previous version's signers below), to learn the new admins.
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| RegistryError::Roster(v, "not UTF-8".into()))?;
            let candidate: Roster =
                signed::parse_yaml(text).map_err(|e| RegistryError::Roster(v, e))?;
            check_roster(&candidate, v).map_err(|e| RegistryError::Roster(v, e))?;
            let signed_err = |source| RegistryError::Signed {
                path: path.clone(),
                source,
            };
            if let Some(prev) = versions.last() {
                if candidate.previous.as_deref() != Some(&format!("sha256:{}", prev.sha256())) {
                    return Err(RegistryError::Roster(
                        v,
                        "does not name the previous version's hash".into(),
                    ));
                }
                // Threshold of the previous version's admins.
                signed::verify(
                    &bytes,
                    &sig,
                    Namespace::Roster,
                    &admin_keys(prev),
                    prev.thresholds.roster,
                    |_| Ok(()),
                )
                .map_err(signed_err)?;
            } else if candidate.previous.is_some() {
                return Err(RegistryError::Roster(
                    v,
                    "version 1 names a previous version".into(),
                ));
            }
            // Threshold of its own admins.
            let verified = signed::verify(
                &bytes,
                &sig,
                Namespace::Roster,
                &admin_keys(&candidate),
                candidate.thresholds.roster,
                signed::parse_yaml::<Roster>,
            )
            .map_err(signed_err)?;
            versions.push(verified);
            v += 1;
        }
        if versions.is_empty() {
            return Err(RegistryError::Missing {
                path: roster_path(1),
            });
        }
        let Some(anchor_version) = anchor_version else {
            return Err(RegistryError::Anchor {
                found: keys::grouped_fingerprint(versions[0].bytes()),
                expected: anchor.to_string(),
            });
        };
        Ok(RosterChain {
            versions,
            anchor: anchor.to_string(),
            anchor_version,
        })
    }

    /// The raw record and signature of `project`, if present.
    pub fn record_raw(&self, project: &str) -> Result<Option<(Vec<u8>, String)>, RegistryError> {
        let path = record_path(project);
        let Some(bytes) = self.read(&path)? else {
            return Ok(None);
        };
        let sig = self.read(&sig_path(&path))?.unwrap_or_default();
        Ok(Some((bytes, String::from_utf8_lossy(&sig).into_owned())))
    }

    /// The committed `allowed_signers`, if any.
    pub fn allowed_signers(&self) -> Result<Option<Vec<u8>>, RegistryError> {
        self.read(ALLOWED_SIGNERS)
    }

    /// Pushes the registry if it has a remote: a managed clone of a URL
    /// registry, or a registry clone with an `origin`.
    pub fn push_if_remote(&self, home: &crate::keys::Home) -> Result<(), RegistryError> {
        if self.dir.starts_with(home.dir.join("registries")) || self.repo.has_origin() {
            if let Err(e) = crate::transport::push(&self.dir) {
                // The remote moved (another admin wrote first): undo the
                // local commit so this copy does not diverge.
                let undone = match self.before.borrow().as_deref() {
                    Some(c) => crate::transport::reset_to(&self.dir, c).is_ok(),
                    None => false,
                };
                return Err(RegistryError::Remote(format!(
                    "{e}. The registry remote did not accept this change (another admin probably wrote first){}; run `byreis registry pull` and try again",
                    if undone { "; the local registry copy was reset to match it" } else { "" }
                )));
            }
        }
        Ok(())
    }

    /// The `revision` of the record this registry holds for `project` (0 if
    /// none). Read without verifying: only used to number the next write.
    pub fn current_revision(&self, project: &str) -> Result<u64, RegistryError> {
        Ok(self
            .record_raw(project)?
            .and_then(|(b, _)| {
                crate::signed::parse_yaml::<Record>(&String::from_utf8_lossy(&b)).ok()
            })
            .map_or(0, |r| r.revision))
    }

    /// Project names that have a record.
    pub fn projects(&self) -> Result<Vec<String>, RegistryError> {
        Ok(self
            .repo
            .list_dir(&self.head(), "projects")?
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| names::check(Kind::Project, n).is_ok())
            .collect())
    }

    /// The registry's own audit log (roster changes), if any.
    pub fn audit_log(&self) -> Result<Vec<u8>, RegistryError> {
        Ok(self.read(REGISTRY_AUDIT)?.unwrap_or_default())
    }

    /// Lands roster version `roster.version` in one signed commit: the
    /// roster and its signature, the regenerated `allowed_signers`, every
    /// project record re-signed under the new version, and a registry audit
    /// entry.
    pub fn write_roster_change(
        &self,
        roster: &Roster,
        records: &[Record],
        audit_line: &str,
        signer: &Signer,
        author: (&str, &str),
        summary: &str,
    ) -> Result<String, RegistryError> {
        let changes = self.roster_change_files(roster, records, audit_line, signer)?;
        self.commit(
            &changes,
            &roster_message(roster, summary, signer),
            signer,
            author,
        )
    }

    /// Like [`Registry::write_roster_change`], but the commit goes on a new
    /// branch `byreis/roster/VERSION-HASH` (the roster needs more
    /// signatures than the proposer's: ADR 0012); returns the branch.
    pub fn propose_roster_change(
        &self,
        roster: &Roster,
        records: &[Record],
        audit_line: &str,
        signer: &Signer,
        author: (&str, &str),
        summary: &str,
    ) -> Result<String, RegistryError> {
        let changes = self.roster_change_files(roster, records, audit_line, signer)?;
        let bytes = documents::to_yaml(roster);
        let branch = roster_branch(roster.version, &bytes);
        let head = crate::git::Oid::from_str(&self.head()).map_err(GitError::Git)?;
        let msg = roster_message(roster, summary, signer);
        let commit = self
            .repo
            .create_signed_commit(Some(head), &changes, &msg, signer, author)?;
        self.repo.create_branch(&branch, commit)?;
        Ok(branch)
    }

    /// The files of roster change `roster` signed by `signer`: the version
    /// and its signature, `allowed_signers`, every record re-signed, the
    /// registry audit log with `audit_line` appended.
    fn roster_change_files(
        &self,
        roster: &Roster,
        records: &[Record],
        audit_line: &str,
        signer: &Signer,
    ) -> Result<Vec<Change>, RegistryError> {
        let bytes = documents::to_yaml(roster);
        let sig = sshsig::sign_armored(signer, Namespace::Roster, &bytes)
            .map_err(|e| RegistryError::Roster(roster.version, e.to_string()))?;
        let path = roster_path(roster.version);
        let mut changes = vec![
            Change {
                path: sig_path(&path),
                content: Some(sig.into_bytes().into()),
            },
            Change {
                path,
                content: Some(bytes.into()),
            },
            Change {
                path: ALLOWED_SIGNERS.into(),
                content: Some(render_allowed_signers(roster).into_bytes().into()),
            },
        ];
        for r in records {
            let mut r = r.clone();
            r.revision = self.current_revision(&r.project)? + 1;
            let rb = documents::to_yaml(&r);
            let rs = sshsig::sign_armored(signer, Namespace::Record, &rb)
                .map_err(|e| RegistryError::Roster(roster.version, e.to_string()))?;
            let rp = record_path(&r.project);
            changes.push(Change {
                path: sig_path(&rp),
                content: Some(rs.into_bytes().into()),
            });
            changes.push(Change {
                path: rp,
                content: Some(rb.into()),
            });
        }
        let mut log = self.audit_log()?;
        log.extend_from_slice(audit_line.as_bytes());
        log.push(b'\n');
        changes.push(Change {
            path: REGISTRY_AUDIT.into(),
            content: Some(log.into()),
        });
        Ok(changes)
    }

    /// Writes a signed record for `project` in one signed commit.
    /// The record's `revision` is set to one more than the one this
    /// registry holds.
    pub fn write_record(
        &self,
        record: &Record,
        signer: &Signer,
        author: (&str, &str),
    ) -> Result<String, RegistryError> {
        let mut record = record.clone();
        record.revision = self.current_revision(&record.project)? + 1;
        let record = &record;
        let bytes = documents::to_yaml(record);
        let sig = sshsig::sign_armored(signer, Namespace::Record, &bytes)
            .map_err(|e| RegistryError::Roster(record.roster_version, e.to_string()))?;
        let path = record_path(&record.project);
        let changes = vec![
            Change {
                path: sig_path(&path),
                content: Some(sig.into_bytes().into()),
            },
            Change {
                path,
                content: Some(bytes.into()),
            },
        ];
        let msg = format!(
            "byreis: record {} counter {}\n\nSigned by {} ({}).",
            record.project, record.counter, record.signer, record.signer_key
        );
        self.commit(&changes, &msg, signer, author)
    }
}

/// `allowed_signers` lines for a roster: `NAME namespaces="git" ssh-ed25519 …`.
pub fn render_allowed_signers(roster: &Roster) -> String {
    let mut out = format!(
        "# Generated by byreis from roster version {} — do not edit by hand.\n# `byreis doctor` and `byreis registry verify` compare it with the verified roster and flag any difference.\n",
        roster.version
    );
    for a in &roster.admins {
        let key = SigningPub::parse(&a.signing_key).expect("verified roster");
        out.push_str(&format!(
            "{} namespaces=\"git\" {}\n",
            a.name,
            key.to_openssh()
        ));
    }
    out
}

/// Creates a new registry at `dir` with `admin` as its only admin.
/// Returns the anchor fingerprint.
pub fn init(
    dir: &Path,
    admin: Admin,
    signer: &Signer,
    location: String,
) -> Result<String, RegistryError> {
    let roster = Roster {
        format: ROSTER_FORMAT.into(),
        version: 1,
        previous: None,
        thresholds: Default::default(),
        record_expiry_days: 90,
        admins: vec![admin.clone()],
        audit_head: None,
        location: Some(location),
    };
    check_roster(&roster, 1).map_err(|e| RegistryError::Roster(1, e))?;
    let bytes = documents::to_yaml(&roster);
    let sig = sshsig::sign_armored(signer, Namespace::Roster, &bytes)
        .map_err(|e| RegistryError::Roster(1, e.to_string()))?;
    let anchor = keys::grouped_fingerprint(&bytes);
    let mut changes: Vec<Change> = TEMPLATE
        .iter()
        .map(|(p, c)| Change {
            path: p.to_string(),
            content: Some(c.as_bytes().to_vec().into()),
        })
        .collect();
    changes.push(Change {
        path: ALLOWED_SIGNERS.into(),
        content: Some(render_allowed_signers(&roster).into_bytes().into()),
    });
    changes.push(Change {
        path: roster_path(1),
        content: Some(bytes.into()),
    });
    changes.push(Change {
        path: sig_path(&roster_path(1)),
        content: Some(sig.into_bytes().into()),
    });
    let repo = Repo::init(dir)?;
    let email = admin
        .email
        .clone()
        .unwrap_or_else(|| format!("{}@byreis.invalid", admin.name));
    repo.commit_signed(
        &changes,
        &format!("byreis: registry created, roster version 1\n\nAnchor: {anchor}"),
        signer,
        (&admin.name, &email),
    )?;
    Ok(anchor)
}

/// SHA-256 of bytes as `sha256:HEX`.
/// Branches of roster changes waiting for more signatures.
pub const ROSTER_BRANCH_PREFIX: &str = "byreis/roster/";

/// The branch of a proposed roster version with `bytes`.
pub fn roster_branch(version: u64, bytes: &[u8]) -> String {
    format!(
        "{ROSTER_BRANCH_PREFIX}{version}-{}",
        &crate::signed::sha256_hex(bytes)[..8]
    )
}

fn roster_message(roster: &Roster, summary: &str, signer: &Signer) -> String {
    format!(
        "byreis: roster version {} ({summary})\n\nSigned by {}.",
        roster.version,
        signer.public.fingerprint()
    )
}

pub fn tagged_hash(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Is `s` a git URL rather than a path? Only known schemes are URLs, and
/// a `file:` URL only in its plain form ([`is_plain_file_url`]).
pub fn is_url(s: &str) -> bool {
    const SCHEMES: &[&str] = &["https://", "ssh://"];
    if SCHEMES.iter().any(|p| s.starts_with(p)) {
        return !s.chars().any(|c| c.is_control() || c.is_whitespace());
    }
    is_plain_file_url(s) || is_scp_like(s)
}

/// `file:///ABSOLUTE/PATH` with no host and no `%`-escape: the only file
/// URL whose path is what it looks like (git also reads
/// `file://localhost/…` and decodes `%74` as `t`, so a path compared as
/// written could name a directory inside the project).
pub fn is_plain_file_url(s: &str) -> bool {
    s.strip_prefix("file://").is_some_and(|p| {
        p.starts_with('/')
            && !p.contains('%')
            && !p.chars().any(|c| c.is_control() || c.is_whitespace())
    })
}

/// `user@host:path`, git's scp-like syntax for ssh, with a plain user and
/// host (so `helper::address` transport syntax never matches).
fn is_scp_like(s: &str) -> bool {
    let Some((user_host, path)) = s.split_once(':') else {
        return false;
    };
    let Some((user, host)) = user_host.split_once('@') else {
        return false;
    };
    let plain = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !t.starts_with('-')
    };
    plain(user)
        && plain(host)
        && !path.is_empty()
        && !path.starts_with(':')
        && !path.starts_with('-')
        && !path.chars().any(|c| c.is_control() || c.is_whitespace())
}
