//! Verification of a project's state, in the order the design brief sets:
//!
//! 1. the project config names a registry and anchor this machine pinned;
//! 2. the registry's roster chain walks from that anchor, each version
//!    signed by a threshold of the one before and of itself, and is not
//!    older than this machine has seen;
//! 3. the project record is signed by an admin and has not expired, and its
//!    counter is not lower than this machine has seen;
//! 4. the manifest is the one the record pins (served from the working tree
//!    when its bytes match, else from the pinned commit's git objects) and
//!    its signature, counter, roster version and audit head check out;
//! 5. every file under `secrets/` is a regular file the manifest lists, and
//!    a file's bytes are used only after their SHA-256 matched.
//!
//! Only a [`State`] that went through [`load`] can hand out a value.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::agefile;
use crate::audit;
use crate::diag::Code;
use crate::documents::{Config, Manifest, Record, CONFIG_FORMAT, MANIFEST_FORMAT, RECORD_FORMAT};
use crate::git::{EntryKind, Repo};
use crate::keys::{self, AgeIdentity, AgeRecipient, Home, SigningPub};
use crate::names::{self, Kind};
use crate::registry::{self, Registry, RosterChain};
use crate::signed::{self, sha256_hex, Verified};
use crate::sshsig::Namespace;
use crate::trust::{self, Pin};
use crate::yaml::{self, Secrets};

pub const CONFIG_PATH: &str = "byreis.yaml";
pub const MANIFEST_PATH: &str = ".byreis/manifest.yaml";
pub const MANIFEST_SIG_PATH: &str = ".byreis/manifest.yaml.sig";
/// Approvals of the manifest by further admins (namespace
/// `proposal@byreis.dev`), when the registry asks for more than one.
pub const APPROVALS_PATH: &str = ".byreis/approvals.sig";
pub const SECRETS_DIR: &str = "secrets";
/// Paths byreis owns in the project repo.
pub const OWNED_PATHS: &[&str] = &[CONFIG_PATH, ".byreis", SECRETS_DIR];

/// A verification failure: a stable code and what exactly was found.
#[derive(Debug)]
pub struct VerifyError {
    pub code: Code,
    pub detail: String,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.detail)
    }
}

impl std::error::Error for VerifyError {}

pub fn fail<T>(code: Code, detail: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError {
        code,
        detail: detail.into(),
    })
}

/// How this run was started.
#[derive(Debug, Clone)]
pub struct Context {
    pub home: Home,
    pub dir: PathBuf,
    /// A person can answer prompts (a TTY on stdin and `CI` unset).
    pub interactive: bool,
    /// What the user's environment says about the trust anchor.
    pub overrides: Overrides,
}

/// `BYREIS_REGISTRY`, `BYREIS_ANCHOR` and `BYREIS_PROJECT` as the CLI read
/// them (empty counts as unset); the core reads no environment variable.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub registry: Option<String>,
    pub anchor: Option<String>,
    pub project: Option<String>,
}

/// The project repository and its (unverified) config.
#[derive(Debug)]
pub struct Project {
    pub repo: Repo,
    pub root: PathBuf,
    pub config: Config,
    /// A tree without `.git` ([`Repo::treeless`]): reads verify the work
    /// tree against the record; writes are refused. Holds the scratch
    /// repository until the project drops.
    treeless: Option<tempfile::TempDir>,
}

/// Reads a regular file in the work tree, refusing links and anything else.
pub fn read_worktree_file(
    root: &Path,
    rel: &str,
    limit: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.join(rel);
    // Every directory on the way must be a real directory of the tree: a
    // linked `.byreis/` would read bytes from outside it.
    let mut dir = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is not a directory of the tree (a link, or a file)",
                    dir.strip_prefix(root).unwrap_or(&dir).display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_file() {
        return Err(std::io::Error::other(format!(
            "{rel} is not a regular file"
        )));
    }
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)?;
    let mut buf = Vec::new();
    f.by_ref().take(limit as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > limit {
        return Err(std::io::Error::other(format!(
            "{rel} is larger than {limit} bytes"
        )));
    }
    Ok(Some(buf))
}

pub use crate::registry::{is_plain_file_url, is_url};

impl Project {
    pub fn open(dir: &Path) -> Result<Project, VerifyError> {
        let (repo, treeless) = match Repo::discover(dir) {
            Ok(r) => (r, None),
            // No git at all, but a byreis project: a tree copied without
            // its history (Argo CD). Only what can be checked is served.
            Err(_) if dir.join(CONFIG_PATH).is_file() => {
                let (r, scratch) = Repo::treeless(dir).map_err(|e| VerifyError {
                    code: Code::ConfigMissing,
                    detail: e.to_string(),
                })?;
                (r, Some(scratch))
            }
            Err(e) => {
                return Err(VerifyError {
                    code: Code::ConfigMissing,
                    detail: e.to_string(),
                })
            }
        };
        let Some(root) = repo.workdir().map(Path::to_path_buf) else {
            return fail(
                Code::ConfigMissing,
                "the project repository is bare; run byreis in a work tree",
            );
        };
        let bytes = match read_worktree_file(&root, CONFIG_PATH, 64 << 10) {
            Ok(Some(b)) => b,
            Ok(None) => {
                return fail(
                    Code::ConfigMissing,
                    format!("no {CONFIG_PATH} in {} (is this a byreis project? an admin runs `byreis init`)", root.display()),
                )
            }
            Err(e) => return fail(Code::ConfigInvalid, format!("{CONFIG_PATH}: {e}")),
        };
        let text = String::from_utf8(bytes).map_err(|_| VerifyError {
            code: Code::ConfigInvalid,
            detail: format!("{CONFIG_PATH} is not UTF-8"),
        })?;
        let config: Config = yaml::from_untrusted(&text).map_err(|e| VerifyError {
            code: Code::ConfigInvalid,
            detail: format!("{CONFIG_PATH}: {e}"),
        })?;
        if config.format != CONFIG_FORMAT {
            return fail(
                Code::ConfigInvalid,
                format!(
                    "{CONFIG_PATH}: unknown format {}",
                    names::quoted(&config.format)
                ),
            );
        }
        names::check(Kind::Project, &config.project).map_err(|e| VerifyError {
            code: Code::ConfigInvalid,
            detail: format!("{CONFIG_PATH}: {e}"),
        })?;
        Ok(Project {
            repo,
            root,
            config,
            treeless,
        })
    }

    /// Whether this is a tree without `.git` (see [`Repo::treeless`]).
    pub fn is_treeless(&self) -> bool {
        self.treeless.is_some()
    }

    /// The registry location named by the config, resolved: URLs as they
    /// are, paths relative to the project root made absolute.
    pub fn registry_location(&self) -> Result<String, VerifyError> {
        resolve_location(&self.root, &self.config.registry)
    }
}

pub fn resolve_location(base: &Path, loc: &str) -> Result<String, VerifyError> {
    if loc.is_empty() || loc.starts_with('-') || loc.chars().any(char::is_control) {
        return fail(
            Code::ConfigInvalid,
            format!("registry location {} is not allowed", names::quoted(loc)),
        );
    }
    if loc.starts_with("file:") && !is_plain_file_url(loc) {
        return fail(
            Code::ConfigInvalid,
            format!(
                "registry location {} is not allowed: a file URL must be file:///ABSOLUTE/PATH, with no host and no %-escapes (git reads those forms differently from how they look)",
                names::quoted(loc)
            ),
        );
    }
    if is_url(loc) {
        return Ok(loc.to_string());
    }
    let p = base.join(loc);
    let p = p.canonicalize().map_err(|e| VerifyError {
        code: Code::RegistryUnavailable,
        detail: format!("registry {}: {e}", p.display()),
    })?;
    Ok(p.display().to_string())
}

/// Where the served bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The working tree holds exactly the pinned manifest.
    Worktree,
    /// An older or unrelated checkout: served from the pinned commit.
    PinnedCommit,
}

/// A fully verified project state. Its fields are private (issue 15):
/// only verification builds it, and what changes it afterwards is a
/// verifying update (the pin's high-water marks after a landed change).
#[derive(Debug)]
pub struct State {
    project: Project,
    registry: Registry,
    pin: Pin,
    /// Whether the pin was stored on this machine (false: from BYREIS_ANCHOR).
    pin_stored: bool,
    roster: RosterChain,
    record: Verified<Record>,
    manifest: Verified<Manifest>,
    audit: Vec<audit::Verified>,
    /// Every member's recipient, parsed once from the verified manifest.
    recipients: std::collections::BTreeMap<String, AgeRecipient>,
    source: Source,
    /// Things a reader should know (stale copy, old checkout).
    notes: Vec<(Code, String)>,
    /// This machine's marks for the project as read before verifying.
    seen: trust::Seen,
    /// Environments already decrypted in this run, by (environment,
    /// reader): a write decrypts each environment once (issue 15).
    decrypted: std::sync::Mutex<std::collections::BTreeMap<(String, String), Secrets>>,
}

/// A secrets file read but not yet checked against the verified manifest.
pub struct UncheckedFile {
    path: String,
    bytes: Vec<u8>,
    sha256: String,
    /// Readers with X25519 and with ssh-ed25519 keys, and how many the
    /// manifest names.
    x25519: usize,
    ssh: usize,
    listed: usize,
}

impl UncheckedFile {
    /// The bytes, once their SHA-256 matches the manifest and the header
    /// has exactly one stanza per reader (of the right kinds).
    pub fn check(&self) -> Result<&[u8], VerifyError> {
        let path = &self.path;
        if sha256_hex(&self.bytes) != self.sha256 {
            return fail(
                Code::FileHashMismatch,
                format!("{path} does not match the signed manifest (someone changed it outside byreis); no value from it is used"),
            );
        }
        let count = agefile::count_stanzas(&self.bytes).map_err(|e| VerifyError {
            code: Code::FileMalformed,
            detail: format!("{path}: {e}"),
        })?;
        if count.x25519 != self.x25519
            || count.ssh_ed25519 != self.ssh
            || count.real() != self.listed
            || count.grease > 1
        {
            return fail(
                Code::RecipientsMismatch,
                format!(
                    "{path} has {} recipient stanzas but the manifest lists {} readers",
                    count.real(),
                    self.listed
                ),
            );
        }
        Ok(&self.bytes)
    }
}

/// The managed clone of a URL registry.
pub fn managed_clone_dir(home: &Home, url: &str) -> PathBuf {
    home.dir
        .join("registries")
        .join(&sha256_hex(url.as_bytes())[..32])
}

/// The local directory that holds registry `location`.
pub fn registry_dir(home: &Home, location: &str) -> PathBuf {
    if is_url(location) {
        managed_clone_dir(home, location)
    } else {
        PathBuf::from(location)
    }
}

pub fn open_registry(home: &Home, location: &str) -> Result<Registry, VerifyError> {
    let dir = registry_dir(home, location);
    if !dir.exists() {
        return fail(
            Code::RegistryUnavailable,
            if is_url(location) {
                format!("no local copy of registry {location}; run `byreis trust` to clone it")
            } else {
                format!("registry {location} does not exist")
            },
        );
    }
    Registry::open(&dir).map_err(|e| VerifyError {
        code: Code::RegistryInvalid,
        detail: format!("{}: {e}", dir.display()),
    })
}

/// The registry location from `BYREIS_REGISTRY`, resolved (paths relative
/// to the directory byreis runs in), if set.
pub fn env_registry(ctx: &Context) -> Result<Option<String>, VerifyError> {
    match &ctx.overrides.registry {
        Some(s) => resolve_location(&ctx.dir, s)
            .map(Some)
            .map_err(|e| VerifyError {
                code: e.code,
                detail: format!("BYREIS_REGISTRY: {}", e.detail),
            }),
        None => Ok(None),
    }
}

/// Are two registry locations the same? URLs compare as strings; paths
/// after resolving links.
pub fn same_location(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if is_url(a) || is_url(b) {
        return false;
    }
    match (Path::new(a).canonicalize(), Path::new(b).canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Refuses a registry location inside the project's work tree or git
/// directory, or one that contains the project: anything inside the project
/// is attacker input (ADR 0015).
pub fn check_registry_outside(repo: &Repo, location: &str) -> Result<(), VerifyError> {
    let path = match location.strip_prefix("file://") {
        Some(p) => PathBuf::from(p),
        None if is_url(location) => return Ok(()),
        None => PathBuf::from(location),
    };
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let reg = canon(&path);
    let mut inside = vec![canon(&repo.common_dir())];
    if let Some(w) = repo.workdir() {
        inside.push(canon(w));
    }
    for p in &inside {
        if reg.starts_with(p) || p.starts_with(&reg) {
            return fail(
                Code::RegistryInsideProject,
                format!(
                    "registry location {} is inside the project ({}) or contains it; whatever is in the project repository is attacker input, so a registry copy there proves nothing. Use the registry's real location",
                    names::quoted(location),
                    p.display()
                ),
            );
        }
    }
    Ok(())
}

/// The pin a run uses and where its registry location came from.
#[derive(Debug, Clone)]
pub struct RunPin {
    pub pin: Pin,
    /// Stored on this machine (false: from BYREIS_ANCHOR).
    pub stored: bool,
    /// The location came from the user (BYREIS_REGISTRY, `trust
    /// --registry`, `init --registry`, a stored pin). When false it came
    /// only from byreis.yaml and counts only if the signed roster states it.
    pub location_from_user: bool,
    /// The project name came from the user (a pin that records it, or
    /// BYREIS_PROJECT). When false only byreis.yaml names it, which is
    /// accepted only while the registry holds no other project.
    pub project_from_user: bool,
}

/// Refuses a byreis.yaml that names another project than `wanted` (what
/// the user gave: a pin's project, `BYREIS_PROJECT`, `trust --project`);
/// `how` says where `wanted` came from.
fn check_project(wanted: &str, how: &str, project: &Project) -> Result<(), VerifyError> {
    if wanted != project.config.project {
        return fail(
            Code::ProjectMismatch,
            format!(
                "{CONFIG_PATH} names project {} but {how} {}. Whoever can write the project repo can edit {CONFIG_PATH} and copy another project's files here; nothing of project {} is served as this one's. If this repository really is that project, run `byreis trust` in it",
                names::quoted(&project.config.project),
                names::quoted(wanted),
                names::quoted(&project.config.project),
            ),
        );
    }
    Ok(())
}

/// Which pin applies to this run: the stored one, or BYREIS_ANCHOR (with
/// BYREIS_REGISTRY or, failing that, byreis.yaml's hint, which the roster
/// must confirm).
pub fn pin_for(ctx: &Context, project: &Project) -> Result<RunPin, VerifyError> {
    let env_anchor = ctx.overrides.anchor.clone();
    let env_location = env_registry(ctx)?;
    let env_project = ctx.overrides.project.clone();
    if let Some(p) = &env_project {
        check_project(p, "BYREIS_PROJECT names", project)?;
    }
    let stored = trust::load(&ctx.home, &project.repo.common_dir()).map_err(|e| VerifyError {
        code: Code::AnchorNotTrusted,
        detail: e.to_string(),
    })?;
    let run = match stored {
        Some(pin) => {
            if let Some(a) = &env_anchor {
                if keys::normalise_fingerprint(a) != keys::normalise_fingerprint(&pin.anchor) {
                    return fail(
                        Code::AnchorMismatch,
                        format!(
                            "BYREIS_ANCHOR {} differs from the anchor this machine pinned ({})",
                            names::quoted(a),
                            pin.anchor
                        ),
                    );
                }
            }
            if let Some(l) = &env_location {
                if !same_location(l, &pin.registry) {
                    return fail(
                        Code::RegistryMismatch,
                        format!(
                            "BYREIS_REGISTRY {} differs from the registry this machine pinned ({}); run `byreis trust --registry LOCATION` to change it",
                            names::quoted(l),
                            names::quoted(&pin.registry)
                        ),
                    );
                }
            }
            if let Some(p) = &pin.project {
                check_project(p, "this machine trusted this repository as", project)?;
            }
            RunPin {
                project_from_user: pin.project.is_some() || env_project.is_some(),
                pin,
                stored: true,
                location_from_user: true,
            }
        }
        None => match env_anchor {
            Some(a) => {
                let (location, from_user) = match env_location {
                    Some(l) => (l, true),
                    None => (project.registry_location()?, false),
                };
                RunPin {
                    pin: Pin {
                        repository: trust::repository_key(&project.repo.common_dir()),
                        registry: location,
                        anchor: a,
                        roster_version_seen: 0,
                        counter_seen: 0,
                        record_revision_seen: 0,
                        trusted_at: String::new(),
                        project: env_project.clone(),
                    },
                    stored: false,
                    location_from_user: from_user,
                    project_from_user: env_project.is_some(),
                }
            }
            None => {
                let how = if ctx.interactive {
                    "run `byreis trust` and type the anchor fingerprint an admin gave you over another channel"
                } else {
                    "this run is non-interactive (no TTY, or CI is set): set BYREIS_ANCHOR (and BYREIS_REGISTRY) to what an admin gave you, or run `byreis trust --registry LOCATION --anchor FP` first"
                };
                return fail(
                    Code::AnchorNotTrusted,
                    format!(
                        "this machine trusts no registry anchor for {}; {how}",
                        project.root.display()
                    ),
                );
            }
        },
    };
    check_registry_outside(&project.repo, &run.pin.registry)?;
    Ok(run)
}

impl RunPin {
    /// Whether this run may fetch its registry location: the user named it,
    /// or this machine's copy of it verifies from the anchor and its newest
    /// roster states that location. A location only byreis.yaml names is
    /// never fetched (a project writer could point it at any host).
    pub fn may_fetch(&self, home: &Home) -> bool {
        self.location_from_user
            || open_registry(home, &self.pin.registry)
                .ok()
                .and_then(|r| r.roster_chain(&self.pin.anchor).ok())
                .and_then(|c| c.latest().location.clone())
                .is_some_and(|l| same_location(&l, &self.pin.registry))
    }
}

/// Checks, once the roster chain has verified, what only the roster can
/// confirm: the config's registry hint and anchor agree with what this run
/// trusts, and a location found only through the hint is the one the roster
/// states.
fn check_against_roster(
    project: &Project,
    run: &RunPin,
    roster: &RosterChain,
) -> Result<(), VerifyError> {
    let pin = &run.pin;
    let stated = roster.latest().location.as_deref();
    let who = if run.stored {
        "this machine trusts"
    } else if run.location_from_user {
        "BYREIS_REGISTRY names"
    } else {
        "byreis.yaml names"
    };
    if !run.location_from_user {
        match stated {
            Some(l) if same_location(l, &pin.registry) => {}
            _ => {
                return fail(
                    Code::RegistryUnconfirmed,
                    format!(
                        "the registry {} was found only through {CONFIG_PATH}, which anyone who can push to the project can edit, and its signed roster {}. Set BYREIS_REGISTRY to the registry location an admin gave you (beside BYREIS_ANCHOR), or run `byreis trust --registry LOCATION --anchor FP`",
                        names::quoted(&pin.registry),
                        match stated {
                            Some(l) => format!("states that it lives at {}", names::quoted(l)),
                            None => "does not state where it lives".to_string(),
                        }
                    ),
                );
            }
        }
    }
    let hint = &project.config.registry;
    let resolved = resolve_location(&project.root, hint).ok();
    let agrees = resolved
        .as_deref()
        .is_some_and(|r| same_location(r, &pin.registry))
        || stated.is_some_and(|l| {
            same_location(l, hint) || resolved.as_deref().is_some_and(|r| same_location(l, r))
        });
    if !agrees {
        return fail(
            Code::RegistryMismatch,
            format!(
                "{CONFIG_PATH} names registry {} but {who} {}{}. Whoever can write the project repo can edit {CONFIG_PATH}; a changed registry could hand you values no admin signed. Confirm the location with an admin over another channel; if it really moved, the admin records it with `byreis admin location LOC` and you run `byreis trust --registry LOC`",
                names::quoted(hint),
                names::quoted(&pin.registry),
                match stated {
                    Some(l) => format!(" and the signed roster states {}", names::quoted(l)),
                    None => String::new(),
                }
            ),
        );
    }
    if roster
        .version_of_fingerprint(&project.config.anchor)
        .is_none()
    {
        return fail(
            Code::AnchorMismatch,
            format!(
                "{CONFIG_PATH} names anchor {}, which is no version of the registry's roster ({} pins {}). Confirm with an admin over another channel before running `byreis trust` again.",
                names::quoted(&project.config.anchor),
                if run.stored { "this machine" } else { "BYREIS_ANCHOR" },
                pin.anchor
            ),
        );
    }
    Ok(())
}

/// Whose signatures count on a signed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerRule {
    /// Admins of the roster version the document names who are still
    /// admins of the newest version (registry records: a record is the
    /// authority on what is current, so a removed admin's record never
    /// counts, whatever date it carries; records are re-signed under every
    /// new roster version).
    StillAdmin,
    /// Admins of the roster version the document names (manifests: a
    /// manifest is only ever used when a record that verifies under the
    /// newest roster pins its exact hash, so a manifest signed by an admin
    /// removed later stays usable, and one a removed admin signs afterwards
    /// is never pinned).
    AdminThen,
}

/// Verifies a document signed by admins under `rule`.
#[allow(clippy::too_many_arguments)]
fn verify_admin_signed<T>(
    roster: &RosterChain,
    doc_version: u64,
    bytes: &[u8],
    sig: &str,
    ns: Namespace,
    rule: SignerRule,
    threshold_of: impl Fn(&crate::documents::Thresholds) -> usize,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<(Verified<T>, Vec<SigningPub>), String> {
    let Some(at) = roster.version(doc_version) else {
        return Err(format!(
            "names roster version {doc_version}, which the registry does not have (if your copy of the registry is behind, `byreis registry pull` updates it)"
        ));
    };
    let latest = registry::admin_keys(roster.latest());
    let keys: Vec<SigningPub> = registry::admin_keys(at)
        .into_iter()
        .filter(|k| rule == SignerRule::AdminThen || latest.contains(k))
        .collect();
    let v = signed::verify(bytes, sig, ns, &keys, threshold_of(&at.thresholds), parse)
        .map_err(|e| e.to_string())?;
    Ok((v, keys))
}

/// The `signer` and `signer_key` fields of a document must name the admin
/// (of the roster version the document names) whose key made the first
/// verified signature.
fn check_signer_fields(
    roster: &RosterChain,
    doc_version: u64,
    keys: &[SigningPub],
    signers: &[usize],
    name: &str,
    key: &str,
) -> Result<(), String> {
    let k = &keys[signers[0]];
    let admin = roster.version(doc_version).and_then(|r| {
        r.admins
            .iter()
            .find(|a| SigningPub::parse(&a.signing_key).is_ok_and(|ak| ak == *k))
    });
    match admin {
        Some(a) if a.name == name && k.fingerprint() == key => Ok(()),
        _ => Err(format!(
            "signer fields ({}, {}) do not name the admin whose key signed ({})",
            names::escape(name),
            names::escape(key),
            k.fingerprint()
        )),
    }
}

/// Whether [`verify_manifest`] enforces the registry's approval threshold.
#[derive(Debug, Clone, Copy)]
enum Approvals<'a> {
    /// Enforce it; the text of `.byreis/approvals.sig` (may be empty).
    Required(&'a str),
    /// Only the author's signature (a proposal, or the exposure inventory,
    /// which must count every file an admin encrypted to someone).
    NotRequired,
}

/// How many distinct admins must sign or approve a manifest. A verifier
/// holding one manifest cannot tell a value change from a recipient change
/// without the one before it, so every manifest needs the larger of the
/// two thresholds (ADR 0012).
pub fn required_approvals(t: &crate::documents::Thresholds) -> usize {
    t.values.max(t.recipients).max(1)
}

/// Who vouches for a manifest, as the thresholds in force count it
/// (ADR 0017): distinct admins of the newest roster version whose
/// signature (`manifest@byreis.dev`) or approval (`proposal@byreis.dev`)
/// covers its exact bytes, against that version's thresholds, whatever
/// roster version the manifest names.
#[derive(Debug, Clone)]
pub struct ApprovalCount {
    /// Names of the admins (newest roster version) counted, each once.
    pub by: Vec<String>,
    pub need: usize,
    /// The newest roster version, whose thresholds and admins count.
    pub roster_version: u64,
}

impl ApprovalCount {
    pub fn short(&self) -> bool {
        self.by.len() < self.need
    }

    fn new(latest: &crate::documents::Roster, keys: &[SigningPub], found: &[usize]) -> Self {
        let mut by: Vec<String> = Vec::new();
        for i in found {
            let name = latest
                .admins
                .iter()
                .find(|a| SigningPub::parse(&a.signing_key).is_ok_and(|k| k == keys[*i]))
                .map(|a| a.name.clone())
                .unwrap_or_else(|| keys[*i].fingerprint());
            if !by.contains(&name) {
                by.push(name);
            }
        }
        ApprovalCount {
            by,
            need: required_approvals(&latest.thresholds),
            roster_version: latest.version,
        }
    }

    /// Why a state is refused, and how to fix it.
    pub fn explain(&self, what: &str) -> String {
        format!(
            "{what} is approved by {} of the {} admins that roster version {} requires ({}); a signature or approval counts only from an admin of the newest roster version, whatever version the manifest names. If a threshold was raised or an approving admin was removed, an admin who checked this state runs `byreis approve --pinned` in the project; otherwise one admin may have landed it alone: do not use it, and compare `byreis log` with what your admins did",
            self.by.len(),
            self.need,
            self.roster_version,
            if self.by.is_empty() {
                "none".to_string()
            } else {
                self.by.join(", ")
            }
        )
    }
}

/// [`ApprovalCount`] of manifest `bytes`: its signature `sig`, the blocks
/// of `.byreis/approvals.sig` (`file`) and the record's `approvals`.
pub fn count_approvals(
    roster: &RosterChain,
    bytes: &[u8],
    sig: &str,
    file: &str,
    record: &[String],
) -> ApprovalCount {
    let latest = roster.latest();
    let keys = registry::admin_keys(latest);
    let mut found = Vec::new();
    for block in crate::sshsig::split_armored(sig) {
        found.extend(crate::sshsig::verify_armored(&block, Namespace::Manifest, bytes, &keys).ok());
    }
    for block in crate::sshsig::split_armored(file) {
        found.extend(crate::sshsig::verify_armored(&block, Namespace::Proposal, bytes, &keys).ok());
    }
    for b in record {
        found.extend(
            [Namespace::Manifest, Namespace::Proposal]
                .into_iter()
                .find_map(|ns| crate::sshsig::verify_base64(b, ns, bytes, &keys).ok()),
        );
    }
    ApprovalCount::new(latest, &keys, &found)
}

/// [`ApprovalCount`] of the state a record pins, from the registry alone:
/// its `approvals` checked against its `manifest_sha512` (every reader
/// checks that digest against the manifest's bytes, so no other manifest
/// can be served under this record). `None` when the record predates it.
pub fn count_record_approvals(
    latest: &crate::documents::Roster,
    record: &Record,
) -> Option<ApprovalCount> {
    let digest = crate::signed::unhex64(&record.manifest_sha512)?;
    let keys = registry::admin_keys(latest);
    let found: Vec<usize> = record
        .approvals
        .iter()
        .filter_map(|b| {
            [Namespace::Manifest, Namespace::Proposal]
                .into_iter()
                .find_map(|ns| crate::sshsig::verify_base64_sha512(b, ns, &digest, &keys).ok())
        })
        .collect();
    Some(ApprovalCount::new(latest, &keys, &found))
}

/// SHA-512 of `bytes` as the record keeps it (lowercase hex).
pub fn sha512_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    crate::signed::hex(&sha2::Sha512::digest(bytes))
}

/// Verifies a manifest's bytes and signature against the roster.
/// A manifest whose admin signature checks out, but which no record pins
/// and whose approvals were not counted: a proposal's (for review), or an
/// older state's (history, diff, exposure). A type of its own, so it can
/// never be taken for the pinned manifest, which only [`State`] holds.
#[derive(Debug)]
pub struct Unpinned(Verified<Manifest>);

impl std::ops::Deref for Unpinned {
    type Target = Manifest;
    fn deref(&self) -> &Manifest {
        self.0.value()
    }
}

impl Unpinned {
    /// The signed bytes.
    pub fn bytes(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// [`verify_manifest_with`] without counting approvals: an [`Unpinned`].
pub fn verify_unpinned(
    roster: &RosterChain,
    bytes: &[u8],
    sig: &str,
    rule: SignerRule,
) -> Result<Unpinned, String> {
    verify_manifest_with(roster, bytes, sig, Approvals::NotRequired, rule).map(Unpinned)
}

/// [`verify_manifest_with`], with the approvals (the text of
/// `.byreis/approvals.sig`) counted against the thresholds in force.
pub fn verify_manifest(
    roster: &RosterChain,
    bytes: &[u8],
    sig: &str,
    approvals: &str,
    rule: SignerRule,
) -> Result<Verified<Manifest>, String> {
    verify_manifest_with(roster, bytes, sig, Approvals::Required(approvals), rule)
}

fn verify_manifest_with(
    roster: &RosterChain,
    bytes: &[u8],
    sig: &str,
    approvals: Approvals<'_>,
    rule: SignerRule,
) -> Result<Verified<Manifest>, String> {
    // The signature is checked against every key that could count before
    // anything is parsed; the roster version the manifest names then
    // decides which of those signatures do count.
    let latest = registry::admin_keys(roster.latest());
    let mut candidates: Vec<SigningPub> = Vec::new();
    for r in &roster.versions {
        for k in registry::admin_keys(r) {
            if !candidates.contains(&k) && (rule == SignerRule::AdminThen || latest.contains(&k)) {
                candidates.push(k);
            }
        }
    }
    let v = signed::verify(
        bytes,
        sig,
        Namespace::Manifest,
        &candidates,
        1,
        signed::parse_verified_yaml::<Manifest>,
    )
    .map_err(|e| e.to_string())?;
    if roster.version(v.roster_version).is_none() {
        return Err(format!(
            "names roster version {}, which the registry does not have (if your copy of the registry is behind, `byreis registry pull` updates it)",
            v.roster_version
        ));
    }
    if let Approvals::Required(approvals) = approvals {
        // The thresholds in force, never those of the version the signer
        // chose to name (ADR 0017).
        let count = count_approvals(roster, bytes, sig, approvals, &[]);
        if count.short() {
            return Err(count.explain("it"));
        }
    }
    check_signer_fields(
        roster,
        v.roster_version,
        &candidates,
        v.signers(),
        &v.signer,
        &v.signer_key,
    )?;
    check_manifest(&v)?;
    Ok(v)
}

fn check_manifest(m: &Manifest) -> Result<(), String> {
    if m.format != MANIFEST_FORMAT {
        return Err(format!("unknown format {}", names::quoted(&m.format)));
    }
    let mut recips: Vec<AgeRecipient> = Vec::new();
    for (i, mem) in m.members.iter().enumerate() {
        names::check(Kind::Member, &mem.name).map_err(|e| e.to_string())?;
        if m.members[..i].iter().any(|o| o.name == mem.name) {
            return Err(format!("member {} listed twice", mem.name));
        }
        let r = AgeRecipient::parse(&mem.recipient).map_err(|e| e.to_string())?;
        if recips.contains(&r) {
            return Err(format!("member {}'s key is listed twice", mem.name));
        }
        recips.push(r);
    }
    let members: std::collections::HashSet<&str> =
        m.members.iter().map(|mem| mem.name.as_str()).collect();
    let known = |n: &String| members.contains(n.as_str());
    for r in &m.default_readers {
        if !known(r) {
            return Err(format!(
                "default reader {} is not a member",
                names::quoted(r)
            ));
        }
    }
    for (env, e) in &m.environments {
        names::check(Kind::Environment, env).map_err(|e| e.to_string())?;
        for r in e.readers.iter() {
            if !known(r) {
                return Err(format!(
                    "environment {env}: reader {} is not a member",
                    names::quoted(r)
                ));
            }
        }
        for n in &e.exec_allow {
            names::check(Kind::SecretKey, n)
                .map_err(|err| format!("environment {env}: exec_allow: {err}"))?;
        }
    }
    for n in &m.exec_allow {
        names::check(Kind::SecretKey, n).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Loads and verifies everything, or says exactly what failed.
pub fn load(ctx: &Context) -> Result<State, VerifyError> {
    load_opts(ctx, Allow::default())
}

/// What [`load_opts`] may accept, each then a note instead of a refusal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    /// An expired record (only `registry refresh` does, to renew it).
    pub expired: bool,
    /// A pinned state with fewer approvals than the thresholds in force
    /// (only `approve --pinned` does, to add one; `approvals-short`).
    pub short_approvals: bool,
}

impl Allow {
    pub const EXPIRED: Allow = Allow {
        expired: true,
        short_approvals: false,
    };
    pub const SHORT_APPROVALS: Allow = Allow {
        expired: false,
        short_approvals: true,
    };
}

/// [`load`], accepting what `allow` says.
pub fn load_opts(ctx: &Context, allow: Allow) -> Result<State, VerifyError> {
    let project = Project::open(&ctx.dir)?;
    let run = pin_for(ctx, &project)?;
    let registry = open_registry(&ctx.home, &run.pin.registry)?;
    load_inner(&ctx.home, project, registry, run, allow)
}

/// Steps 2-5 with the registry already chosen (used by `trust`).
pub fn load_with(
    home: &Home,
    project: Project,
    registry: Registry,
    run: RunPin,
) -> Result<State, VerifyError> {
    check_registry_outside(&project.repo, &run.pin.registry)?;
    load_inner(home, project, registry, run, Allow::default())
}

/// Step 2 of verification: the roster chain from the pinned anchor, the
/// project's config checked against it, and this machine's marks applied
/// (a registry showing an older roster than seen is a rollback).
struct RosterStep {
    roster: RosterChain,
    pin: Pin,
    pin_stored: bool,
    project_from_user: bool,
    seen: trust::Seen,
}

fn verify_roster(
    home: &Home,
    project: &Project,
    registry: &Registry,
    run: RunPin,
) -> Result<RosterStep, VerifyError> {
    let roster = registry.roster_chain(&run.pin.anchor).map_err(|e| {
        let code = match e {
            registry::RegistryError::Anchor { .. } => Code::RosterAnchorMismatch,
            registry::RegistryError::Git(_) | registry::RegistryError::Empty(_) => {
                Code::RegistryInvalid
            }
            registry::RegistryError::Missing { .. } => Code::RegistryInvalid,
            _ => Code::RosterInvalid,
        };
        VerifyError {
            code,
            detail: format!("registry {}: {e}", registry.dir.display()),
        }
    })?;
    check_against_roster(project, &run, &roster)?;
    let RunPin {
        mut pin,
        stored: pin_stored,
        project_from_user,
        ..
    } = run;
    // What this machine has seen of this project, however it was pinned.
    let seen =
        trust::load_seen(home, &roster.identity(), &project.config.project).map_err(|e| {
            VerifyError {
                code: Code::AnchorNotTrusted,
                detail: e.to_string(),
            }
        })?;
    pin.roster_version_seen = pin
        .roster_version_seen
        .max(seen.roster_version)
        .max(roster.anchor_version);
    pin.counter_seen = pin.counter_seen.max(seen.counter);
    pin.record_revision_seen = pin.record_revision_seen.max(seen.record_revision);
    let latest_version = roster.latest().version;
    if latest_version < pin.roster_version_seen {
        return fail(
            Code::RosterRollback,
            format!("the registry's newest roster is version {latest_version}, but this machine has seen version {}", pin.roster_version_seen),
        );
    }
    Ok(RosterStep {
        roster,
        pin,
        pin_stored,
        project_from_user,
        seen,
    })
}

/// Step 3: the registry's signed record of the project, under the newest
/// roster version, unexpired (unless `allow` says) and not older than what
/// this machine has seen.
fn verify_record(
    registry: &Registry,
    roster: &RosterChain,
    project_name: &str,
    pin: &Pin,
    project_from_user: bool,
    allow: Allow,
    notes: &mut Vec<(Code, String)>,
) -> Result<Verified<Record>, VerifyError> {
    if !project_from_user {
        let projects = registry.projects().map_err(|e| VerifyError {
            code: Code::RegistryInvalid,
            detail: e.to_string(),
        })?;
        if projects.iter().any(|p| *p != project_name) {
            return fail(
                Code::ProjectUnconfirmed,
                format!(
                    "the registry holds {} projects, and only {CONFIG_PATH} (which anyone who can push to the project can edit) says this repository is {}; another project's files copied here would verify as that project. Set BYREIS_PROJECT={} beside BYREIS_ANCHOR, or run `byreis trust` in this repository",
                    projects.len(),
                    names::quoted(project_name),
                    project_name
                ),
            );
        }
    }
    let Some((rbytes, rsig)) = registry.record_raw(project_name).map_err(|e| VerifyError {
        code: Code::RegistryInvalid,
        detail: e.to_string(),
    })?
    else {
        return fail(
            Code::RecordMissing,
            format!("the registry has no record for project {project_name}"),
        );
    };
    let probe: Record =
        signed::parse_yaml(&String::from_utf8_lossy(&rbytes)).map_err(|e| VerifyError {
            code: Code::RecordInvalid,
            detail: format!("{}: {e}", registry::record_path(project_name)),
        })?;
    let record = verify_admin_signed(
        roster,
        probe.roster_version,
        &rbytes,
        &rsig,
        Namespace::Record,
        SignerRule::StillAdmin,
        // One admin signs a record; what it pins must carry the approvals
        // the thresholds ask for (verify_manifest). ADR 0012 says what a
        // lone admin can still do with a record.
        |_| 1,
        signed::parse_yaml::<Record>,
    )
    .and_then(|(r, keys)| {
        check_signer_fields(
            roster,
            r.roster_version,
            &keys,
            r.signers(),
            &r.signer,
            &r.signer_key,
        )
        .map(|_| r)
    })
    .map_err(|e| VerifyError {
        code: Code::RecordInvalid,
        detail: format!("{}: {e}", registry::record_path(project_name)),
    })?;
    if record.roster_version != roster.latest().version {
        return fail(
            Code::RecordInvalid,
            format!(
                "the record names roster version {} but the registry's newest is {}: records are re-signed under every new roster version, so this one is stale or replayed; an admin re-signs it with `byreis registry refresh`",
                record.roster_version,
                roster.latest().version
            ),
        );
    }
    if record.format != RECORD_FORMAT || record.project != project_name {
        return fail(
            Code::RecordInvalid,
            format!(
                "the record is for project {}",
                names::quoted(&record.project)
            ),
        );
    }
    match chrono::DateTime::parse_from_rfc3339(&record.expires) {
        Ok(exp) => {
            let exp = exp.with_timezone(&chrono::Utc);
            let now = chrono::Utc::now();
            if exp < now {
                let admins: Vec<&str> = roster
                    .latest()
                    .admins
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect();
                let msg = format!(
                    "the registry record for {project_name} expired at {} (last signed by {}). A frozen or withheld registry looks exactly like this, so nothing is served. An admin ({}) renews it with `byreis registry refresh` (or any signed write)",
                    record.expires,
                    record.signer,
                    admins.join(", ")
                );
                if !allow.expired {
                    return fail(Code::RecordExpired, msg);
                }
                notes.push((Code::RecordExpired, msg));
            }
            if exp - now < chrono::Duration::days(14) {
                notes.push((
                    Code::RecordExpiring,
                    format!("the registry record expires at {}", record.expires),
                ));
            }
        }
        Err(_) => {
            return fail(
                Code::RecordInvalid,
                "the record's expiry is not an RFC 3339 time",
            )
        }
    }
    if let Some(p) = &record.pending {
        notes.push((
            Code::ChangePending,
            format!(
                "a {} to counter {} was begun (project commit {}) and not finished; reads serve counter {}. An admin runs `byreis rotate --resume` or `--abort`",
                p.action,
                p.counter,
                short(&p.project_commit),
                record.counter
            ),
        ));
    }
    if record.revision < pin.record_revision_seen {
        return fail(
            Code::RecordRollback,
            format!(
                "the registry record is revision {}, but this machine has already seen revision {} (an older record was put back)",
                record.revision, pin.record_revision_seen
            ),
        );
    }
    if record.counter < pin.counter_seen {
        return fail(
            Code::RecordRollback,
            format!(
                "the registry record has counter {}, but this machine has already seen counter {}",
                record.counter, pin.counter_seen
            ),
        );
    }
    Ok(record)
}

/// Where step 4 reads the pinned manifest from: the working tree when it
/// holds exactly the pinned bytes, otherwise the pinned commit's objects
/// (with a rollback or a stale registry told apart first). Bytes only:
/// nothing here is trusted until [`verify_pinned_manifest`].
struct ManifestFound {
    source: Source,
    bytes: Vec<u8>,
    sig: Vec<u8>,
    approvals: Vec<u8>,
}

fn locate_manifest(
    project: &Project,
    registry: &Registry,
    roster: &RosterChain,
    pin: &Pin,
    record: &Record,
    notes: &mut Vec<(Code, String)>,
) -> Result<ManifestFound, VerifyError> {
    let project_name = &project.config.project;
    let root = project.root.clone();
    let wt_manifest =
        read_worktree_file(&root, MANIFEST_PATH, yaml::MAX_SIGNED_BYTES).map_err(|e| {
            VerifyError {
                code: Code::ManifestInvalid,
                detail: e.to_string(),
            }
        })?;
    let head = project.repo.head().ok().flatten();
    let head_contains_pin = head.is_some_and(|h| project.repo.contains(h, &record.project_commit));
    let pinned_hash = record.manifest.clone();
    let wt_is_pinned = wt_manifest
        .as_deref()
        .is_some_and(|b| registry::tagged_hash(b) == pinned_hash);

    // While a signed record names a change as pending, the work tree may be
    // anywhere between the two states (a write interrupted part-way), so
    // reads serve the last complete state from the pinned commit's objects.
    let (source, bytes, sig, approvals) = if wt_is_pinned && record.pending.is_none() {
        let sig = read_worktree_file(&root, MANIFEST_SIG_PATH, 1 << 20)
            .ok()
            .flatten()
            .unwrap_or_default();
        let approvals = read_worktree_file(&root, APPROVALS_PATH, 1 << 20)
            .ok()
            .flatten()
            .unwrap_or_default();
        (
            Source::Worktree,
            wt_manifest.expect("checked"),
            sig,
            approvals,
        )
    } else if project.is_treeless() {
        return fail(
            Code::ManifestNotPinned,
            format!(
                "this tree has no .git, so byreis can serve only a work tree that holds exactly the state the registry pins (counter {}, commit {}){}; deploy that commit",
                record.counter,
                short(&record.project_commit),
                if record.pending.is_some() { ", and a change is pending" } else { "" }
            ),
        );
    } else {
        // Not the pinned manifest: tell an old checkout from a rollback.
        if record.pending.is_some() {
            // A begun change: serve the last complete state (above).
        } else if let Some(b) = &wt_manifest {
            let wt_sig = read_worktree_file(&root, MANIFEST_SIG_PATH, 1 << 20)
                .ok()
                .flatten()
                .unwrap_or_default();
            // Not pinned by the record: only current admins' signatures count.
            match verify_unpinned(roster, b, &String::from_utf8_lossy(&wt_sig), SignerRule::StillAdmin) {
                Ok(m) if m.project != *project_name => {
                    return fail(
                        Code::ManifestInvalid,
                        format!(
                            "the working tree's manifest is for project {}, not {project_name} (copied from another project?)",
                            names::quoted(&m.project)
                        ),
                    )
                }
                Ok(m) if m.counter > record.counter => {
                    return fail(
                        Code::ManifestAhead,
                        format!(
                            "the working tree's manifest has counter {} but the registry record says {}. Either your copy of the registry is stale (update it: {}) or a change was not finished and never recorded",
                            m.counter,
                            record.counter,
                            if is_url(&pin.registry) { "`byreis registry pull`".to_string() } else { format!("git -C {} pull", registry.dir.display()) }
                        ),
                    )
                }
                Ok(m) if head_contains_pin => {
                    return fail(
                        if m.counter < record.counter { Code::ManifestRollback } else { Code::ManifestNotPinned },
                        format!("this branch contains the pinned commit {} but its manifest has counter {} (the registry pins counter {})", short(&record.project_commit), m.counter, record.counter),
                    )
                }
                Ok(_) => {}
                Err(e) if head_contains_pin || head.is_none() => {
                    return fail(Code::ManifestInvalid, format!("{MANIFEST_PATH}: {e}"));
                }
                Err(_) => {}
            }
        } else if head_contains_pin {
            return fail(
                Code::ManifestMissing,
                format!("{MANIFEST_PATH} is missing from the working tree"),
            );
        }
        if !project.repo.has_commit(&record.project_commit) {
            return fail(
                Code::PinnedCommitMissing,
                format!("the registry pins project commit {} (counter {}), which this clone does not have; fetch it: `git -C {} fetch origin` (then `git pull` on the project's main branch). If no remote has it, the commit was lost (for example a deleted branch): an admin restores it, or re-pins a state they check", record.project_commit, record.counter, root.display()),
            );
        }
        let read = |p: &str| {
            project
                .repo
                .read_file(&record.project_commit, p)
                .map_err(|e| VerifyError {
                    code: Code::ManifestInvalid,
                    detail: e.to_string(),
                })
        };
        let Some(b) = read(MANIFEST_PATH)? else {
            return fail(
                Code::ManifestMissing,
                format!(
                    "the pinned commit {} has no {MANIFEST_PATH}",
                    short(&record.project_commit)
                ),
            );
        };
        if registry::tagged_hash(&b) != pinned_hash {
            return fail(
                Code::ManifestNotPinned,
                format!("the pinned commit's manifest does not hash to the record's {pinned_hash}"),
            );
        }
        let sig = read(MANIFEST_SIG_PATH)?.unwrap_or_default();
        let approvals = read(APPROVALS_PATH)?.unwrap_or_default();
        notes.push((
            Code::CheckoutNotCurrent,
            format!("your checkout is not at the current state; serving counter {} from pinned commit {}", record.counter, short(&record.project_commit)),
        ));
        (Source::PinnedCommit, b, sig, approvals)
    };
    Ok(ManifestFound {
        source,
        bytes,
        sig,
        approvals,
    })
}

/// Step 4: the manifest the record pins, signed by an admin, with the
/// approvals the thresholds in force require (ADR 0017), naming this
/// project, the record's counter and audit head.
fn verify_pinned_manifest(
    roster: &RosterChain,
    record: &Record,
    found: &ManifestFound,
    project_name: &str,
    allow: Allow,
    notes: &mut Vec<(Code, String)>,
) -> Result<Verified<Manifest>, VerifyError> {
    let mbytes = &found.bytes;
    let msig = String::from_utf8_lossy(&found.sig);
    // The approvals are counted below, against the record's as well.
    let manifest = verify_manifest_with(
        roster,
        mbytes,
        &msig,
        Approvals::NotRequired,
        SignerRule::AdminThen,
    )
    .map_err(|e| VerifyError {
        code: Code::ManifestInvalid,
        detail: format!("{MANIFEST_PATH}: {e}"),
    })?;
    if !record.manifest_sha512.is_empty() && sha512_hex(mbytes) != record.manifest_sha512 {
        return fail(
            Code::ManifestNotPinned,
            "the manifest does not match the record's manifest_sha512 (the record's two digests name different manifests)",
        );
    }
    // The thresholds in force (ADR 0017): the proof is the manifest's
    // signature, its approvals file and the record's approvals, counted
    // for admins of the newest roster version.
    let count = count_approvals(
        roster,
        mbytes,
        &msig,
        &String::from_utf8_lossy(&found.approvals),
        &record.approvals,
    );
    if count.short() {
        let msg = count.explain(&format!("the pinned state (counter {})", record.counter));
        if !allow.short_approvals {
            return fail(Code::ApprovalsShort, msg);
        }
        notes.push((Code::ApprovalsShort, msg));
    }
    if manifest.project != project_name {
        return fail(
            Code::ManifestInvalid,
            format!(
                "the manifest is for project {}",
                names::quoted(&manifest.project)
            ),
        );
    }
    if manifest.counter != record.counter {
        return fail(
            Code::ManifestNotPinned,
            format!(
                "manifest counter {} differs from the record's {}",
                manifest.counter, record.counter
            ),
        );
    }
    if manifest.audit_head != record.audit_head {
        return fail(
            Code::AuditBroken,
            "the manifest's audit head differs from the registry record's",
        );
    }
    Ok(manifest)
}

/// Step 5: the audit log, hash-chained up to the head the manifest
/// records, each entry signed by the admin it names as an admin of the
/// roster version it names.
fn verify_audit(state: &State) -> Result<Vec<audit::Verified>, VerifyError> {
    let audit_bytes = state.read_owned(audit::PATH, 64 << 20)?.unwrap_or_default();
    let keys = state.all_admin_keys();
    let log = audit::verify_log(
        &String::from_utf8_lossy(&audit_bytes),
        &keys,
        &state.manifest.project,
        Some(&state.manifest.audit_head),
    )
    .map_err(|e| VerifyError {
        code: Code::AuditBroken,
        detail: format!("{}: {e}", audit::PATH),
    })?;
    // Each entry is signed by the admin it names, as an admin of the roster
    // version it names.
    for v in &log {
        let e = &v.entry;
        let ok = state.roster.version(e.roster_version).is_some_and(|r| {
            r.admins.iter().any(|a| {
                a.name == e.actor
                    && SigningPub::parse(&a.signing_key).is_ok_and(|k| k == keys[v.signer])
            })
        });
        if !ok {
            return fail(
                Code::AuditBroken,
                format!(
                    "{} entry {}: not signed by admin {} of roster version {}",
                    audit::PATH,
                    e.seq,
                    names::escape(&e.actor),
                    e.roster_version
                ),
            );
        }
    }
    Ok(log)
}

/// Verification, one step after another, each handing the next a checked
/// value; the state is built last, from checked values only.
fn load_inner(
    home: &Home,
    project: Project,
    registry: Registry,
    run: RunPin,
    allow: Allow,
) -> Result<State, VerifyError> {
    let mut notes = Vec::new();
    let r = verify_roster(home, &project, &registry, run)?;
    let project_name = project.config.project.clone();
    let record = verify_record(
        &registry,
        &r.roster,
        &project_name,
        &r.pin,
        r.project_from_user,
        allow,
        &mut notes,
    )?;
    let found = locate_manifest(&project, &registry, &r.roster, &r.pin, &record, &mut notes)?;
    let manifest =
        verify_pinned_manifest(&r.roster, &record, &found, &project_name, allow, &mut notes)?;
    let recipients = manifest
        .members
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                AgeRecipient::parse(&m.recipient).expect("verified manifest"),
            )
        })
        .collect();
    let mut state = State {
        project,
        registry,
        pin: r.pin,
        pin_stored: r.pin_stored,
        roster: r.roster,
        record,
        manifest,
        audit: Vec::new(),
        recipients,
        source: found.source,
        notes,
        seen: r.seen,
        decrypted: Default::default(),
    };
    state.audit = verify_audit(&state)?;
    // 6. The files under secrets/.
    state.check_listing()?;
    Ok(state)
}

impl State {
    pub fn project(&self) -> &Project {
        &self.project
    }
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
    pub fn pin(&self) -> &Pin {
        &self.pin
    }
    /// Whether the pin was stored on this machine (false: from BYREIS_ANCHOR).
    pub fn pin_stored(&self) -> bool {
        self.pin_stored
    }
    pub fn roster(&self) -> &RosterChain {
        &self.roster
    }
    pub fn record(&self) -> &Verified<Record> {
        &self.record
    }
    pub fn manifest(&self) -> &Verified<Manifest> {
        &self.manifest
    }
    pub fn audit(&self) -> &[audit::Verified] {
        &self.audit
    }
    /// Every member's recipient, parsed once from the verified manifest.
    pub fn recipients(&self) -> &std::collections::BTreeMap<String, AgeRecipient> {
        &self.recipients
    }
    pub fn source(&self) -> Source {
        self.source
    }
    /// Things a reader should know (stale copy, old checkout).
    pub fn notes(&self) -> &[(Code, String)] {
        &self.notes
    }
    /// Raises the pin's record revision mark to `r` (a record this run
    /// itself wrote and read back); whether it moved.
    pub(crate) fn raise_record_revision_seen(&mut self, r: u64) -> bool {
        let moved = r > self.pin.record_revision_seen;
        self.pin.record_revision_seen = self.pin.record_revision_seen.max(r);
        moved
    }

    /// The pin's anchor as byreis writes it (`trust`): the fingerprint of
    /// the verified anchor version, in its grouped spelling.
    pub fn spell_anchor(&mut self) -> &str {
        let v = self.roster.anchor_version;
        self.pin.anchor =
            crate::keys::grouped_fingerprint(self.roster.versions[(v - 1) as usize].bytes());
        &self.pin.anchor
    }

    /// The parts a landing reads, with the pin it updates: after a change
    /// lands (verified by the landing itself), the pin's high-water marks
    /// move to it. The only mutable access to a verified state.
    pub(crate) fn for_landing(
        &mut self,
    ) -> (
        &Project,
        &Registry,
        &RosterChain,
        &Verified<Record>,
        &mut Pin,
        bool,
    ) {
        (
            &self.project,
            &self.registry,
            &self.roster,
            &self.record,
            &mut self.pin,
            self.pin_stored,
        )
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl State {
    /// Signing keys of every admin of every roster version (audit entries
    /// made under older versions stay verifiable).
    pub fn all_admin_keys(&self) -> Vec<SigningPub> {
        let mut keys: Vec<SigningPub> = Vec::new();
        for r in &self.roster.versions {
            for k in registry::admin_keys(r) {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        keys
    }

    /// Reads a byreis-owned file from the served source.
    fn read_owned(&self, rel: &str, limit: usize) -> Result<Option<Vec<u8>>, VerifyError> {
        match self.source {
            Source::Worktree => {
                read_worktree_file(&self.project.root, rel, limit).map_err(|e| VerifyError {
                    code: Code::FileNotRegular,
                    detail: e.to_string(),
                })
            }
            Source::PinnedCommit => self
                .project
                .repo
                .read_file(&self.record.project_commit, rel)
                .map_err(|e| VerifyError {
                    code: Code::FileNotRegular,
                    detail: e.to_string(),
                }),
        }
    }

    /// Every entry under `secrets/` must be a regular file the manifest lists.
    fn check_listing(&self) -> Result<(), VerifyError> {
        let entries: Vec<(String, EntryKind)> = match self.source {
            Source::Worktree => {
                let dir = self.project.root.join(SECRETS_DIR);
                match fs::symlink_metadata(&dir) {
                    Err(_) => Vec::new(),
                    Ok(m) if !m.file_type().is_dir() => {
                        return fail(
                            Code::FileNotRegular,
                            format!("{SECRETS_DIR} is not a directory"),
                        )
                    }
                    Ok(_) => {
                        let mut v = Vec::new();
                        for entry in walkdir::WalkDir::new(&dir)
                            .min_depth(1)
                            .max_depth(1)
                            .follow_links(false)
                        {
                            let entry = entry.map_err(|e| VerifyError {
                                code: Code::FileNotRegular,
                                detail: e.to_string(),
                            })?;
                            let kind = if entry.file_type().is_file() {
                                EntryKind::Blob
                            } else if entry.file_type().is_symlink() {
                                EntryKind::Link
                            } else {
                                EntryKind::Tree
                            };
                            v.push((entry.file_name().to_string_lossy().into_owned(), kind));
                        }
                        v
                    }
                }
            }
            Source::PinnedCommit => self
                .project
                .repo
                .list_dir(&self.record.project_commit, SECRETS_DIR)
                .map_err(|e| VerifyError {
                    code: Code::FileNotRegular,
                    detail: e.to_string(),
                })?,
        };
        for (name, kind) in &entries {
            let shown = format!("{SECRETS_DIR}/{}", names::escape(name));
            if *kind != EntryKind::Blob {
                return fail(Code::FileNotRegular, format!("{shown} is not a regular file (symlinks, submodules and directories are refused)"));
            }
            match names::env_of_file(name) {
                Some(env) if self.manifest.environments.contains_key(env) => {}
                _ => {
                    return fail(
                        Code::FileUnlisted,
                        format!("{shown} is not listed in the signed manifest"),
                    )
                }
            }
        }
        let present: std::collections::HashSet<&str> =
            entries.iter().map(|(n, _)| n.as_str()).collect();
        for env in self.manifest.environments.keys() {
            let file = format!("{env}.enc.yaml");
            if !present.contains(file.as_str()) {
                return fail(
                    Code::FileMissing,
                    format!(
                        "{} is listed in the manifest but missing",
                        names::env_file(env)
                    ),
                );
            }
        }
        Ok(())
    }

    /// The bytes of `env`'s file, after its SHA-256 matched the manifest and
    /// its header lists exactly as many recipients as the environment has.
    pub fn env_file(&self, env: &str) -> Result<Vec<u8>, VerifyError> {
        let file = self.env_file_unchecked(env)?;
        file.check()?;
        Ok(file.bytes)
    }

    /// `env`'s file as read, with what [`UncheckedFile::check`] compares it
    /// to: for checking many files on all cores (the state itself is not
    /// shared across threads).
    pub fn env_file_unchecked(&self, env: &str) -> Result<UncheckedFile, VerifyError> {
        names::check(Kind::Environment, env).map_err(|e| VerifyError {
            code: Code::FileMissing,
            detail: e.to_string(),
        })?;
        let Some(entry) = self.manifest.environments.get(env) else {
            let known: Vec<&str> = self
                .manifest
                .environments
                .keys()
                .map(String::as_str)
                .collect();
            return fail(
                Code::FileMissing,
                format!(
                    "no environment {env} (known: {})",
                    if known.is_empty() {
                        "none yet".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        };
        let path = names::env_file(env);
        let Some(bytes) = self.read_owned(&path, agefile::MAX_FILE_BYTES)? else {
            return fail(Code::FileMissing, format!("{path} is missing"));
        };
        let readers = self.readers(env);
        let ssh = readers
            .iter()
            .filter(|r| r.kind() == crate::keys::RecipientKind::SshEd25519)
            .count();
        Ok(UncheckedFile {
            path,
            bytes,
            sha256: entry.sha256.clone(),
            x25519: readers.len() - ssh,
            ssh,
            listed: entry.readers.len(),
        })
    }

    /// Recipients of `env` as the verified manifest lists them, in order.
    pub fn readers(&self, env: &str) -> Vec<AgeRecipient> {
        let names: &[String] = match self.manifest.environments.get(env) {
            Some(e) => &e.readers,
            None => &self.manifest.default_readers,
        };
        names
            .iter()
            .filter_map(|n| self.recipients.get(n).cloned())
            .collect()
    }

    /// Decrypts `env` with `identity`, after every check above.
    pub fn secrets(&self, env: &str, identity: &AgeIdentity) -> Result<Secrets, VerifyError> {
        let bytes = self.env_file(env)?;
        if !self.readers(env).contains(&identity.recipient()) {
            return fail(
                Code::IdentityNotRecipient,
                format!(
                    "your key {} (from {}) is not a reader of {env}",
                    identity.recipient().as_str(),
                    identity.source
                ),
            );
        }
        let me = identity.recipient();
        let memo_key = (env.to_string(), me.as_str().to_string());
        let mut memo = self.decrypted.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = memo.get(&memo_key) {
            return Ok(s.clone());
        }
        let hint = self.readers(env).iter().position(|r| *r == me);
        crate::timing::phase(&format!("decrypt {env}"));
        let secrets = agefile::decrypt_hinted(&bytes, identity, hint).map_err(|e| VerifyError {
            code: match e {
                agefile::AgeFileError::NotRecipient => Code::RecipientsMismatch,
                _ => Code::FileMalformed,
            },
            detail: format!("{}: {e}", names::env_file(env)),
        })?;
        memo.insert(memo_key, secrets.clone());
        Ok(secrets)
    }

    /// Remembers the highest roster version, record revision and counter
    /// seen: in this machine's marks for the project (every mode,
    /// BYREIS_ANCHOR included) and in the stored pin, if there is one.
    pub fn remember(&mut self, home: &Home) -> Result<(), keys::KeyError> {
        let rv = self
            .roster
            .latest()
            .version
            .max(self.pin.roster_version_seen);
        let c = self.record.counter.max(self.pin.counter_seen);
        let rr = self.record.revision.max(self.pin.record_revision_seen);
        let marks = trust::Seen {
            roster_version: rv,
            record_revision: rr,
            counter: c,
        };
        // Written only when this run saw more than the file held (the save
        // re-reads it, so a concurrent run's higher marks are kept).
        if marks != self.seen {
            trust::save_seen(
                home,
                &self.roster.identity(),
                &self.manifest.project,
                &marks,
            )?;
            self.seen = marks;
        }
        let changed = rv != self.pin.roster_version_seen
            || c != self.pin.counter_seen
            || rr != self.pin.record_revision_seen;
        self.pin.roster_version_seen = rv;
        self.pin.counter_seen = c;
        self.pin.record_revision_seen = rr;
        if self.pin_stored && changed {
            trust::save(home, &self.project.repo.common_dir(), &self.pin)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_url;

    #[test]
    fn only_known_schemes_are_urls() {
        for ok in [
            "https://github.com/o/r.git",
            "ssh://git@host/o/r",
            "file:///srv/reg",
            "git@github.com:o/r.git",
        ] {
            assert!(is_url(ok), "{ok}");
        }
        for not in [
            "evil::x@y:z",
            "ext::sh -c touch% /tmp/x",
            "git://host/r",
            "../registry",
            "/abs/path",
            "x@y:-oProxyCommand=z",
            "a b@c:d",
            "fd::17",
            // File URLs git reads differently from how they look.
            "file://localhost/srv/reg",
            "file:///%73rv/reg",
            "file://srv/reg",
        ] {
            assert!(!is_url(not), "{not}");
        }
    }
}
