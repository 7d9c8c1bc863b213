//! Signed writes: everything that changes a project's state goes through
//! [`commit_change`], which re-encrypts to the verified readers, bumps the
//! counter, appends a signed audit entry, signs the manifest, makes one
//! signed project commit and then the signed registry record.

use std::collections::BTreeMap;
use std::path::Path;

use crate::agefile;
use crate::audit;
use crate::diag::{Code, Refusal};
use crate::documents::{
    self, Admin, Config, Environment, Manifest, Member, Pending, Readers, Record, CONFIG_FORMAT,
    MANIFEST_FORMAT, RECORD_FORMAT,
};
use crate::failpoint;
use crate::git::{Change, Repo};
use crate::keys::{self, AgeIdentity, Home, Profile, Signer};
use crate::names::{self, Kind};
use crate::registry::{self, Registry};
use crate::signed::sha256_hex;
use crate::sshsig::{self, Namespace};
use crate::trust::{self, Pin};
use crate::verify::{
    self, Context, Source, State, VerifyError, CONFIG_PATH, MANIFEST_PATH, MANIFEST_SIG_PATH,
    OWNED_PATHS,
};
use crate::yaml::Secrets;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Verify(#[from] VerifyError),
    #[error("{0}")]
    Key(#[from] keys::KeyError),
    #[error("{0}")]
    Git(#[from] crate::git::GitError),
    #[error("{0}")]
    Registry(#[from] registry::RegistryError),
    #[error("{0}")]
    Encrypt(#[from] agefile::AgeFileError),
    #[error("{0}")]
    Audit(#[from] audit::AuditError),
    #[error("{0}")]
    Sign(#[from] sshsig::SigError),
    #[error("{0}")]
    Remote(#[from] crate::transport::RemoteError),
    /// Any other refusal: its code and the message shown.
    #[error("{1}")]
    Refused(Refusal, String),
}

impl StoreError {
    /// The refusal code this error is reported with; `None` for a
    /// verification failure, which carries a [`Code`] instead.
    pub fn code(&self) -> Option<Refusal> {
        Some(match self {
            StoreError::Verify(_) => return None,
            StoreError::Key(e) => e.code(),
            StoreError::Git(e) => e.code(),
            StoreError::Registry(e) => e.code(),
            StoreError::Encrypt(e) => e.code(),
            StoreError::Audit(e) => e.code(),
            StoreError::Sign(e) => e.code(),
            StoreError::Remote(e) => e.code(),
            StoreError::Refused(code, _) => *code,
        })
    }
}

impl From<names::NameError> for StoreError {
    fn from(e: names::NameError) -> Self {
        StoreError::Refused(e.code(), e.to_string())
    }
}

/// A pull request to open for a branch the core pushed: the core says
/// what; the CLI calls GitHub once the core has returned (ADR 0020).
/// GitHub only shows the change: approvals work on the branch.
#[derive(Debug, Clone)]
pub struct PullDraft {
    /// The repository's `origin` URL (which repository on GitHub).
    pub origin: String,
    /// The branch HEAD is on: the pull request's base.
    pub base: Option<String>,
    pub branch: String,
    pub title: String,
    pub body: String,
}

impl PullDraft {
    /// The draft for `branch` of `repo`; `None` when it has no `origin`.
    pub fn new(repo: &crate::git::Repo, branch: &str, title: String, body: String) -> Option<Self> {
        Some(PullDraft {
            origin: repo.origin_url()?,
            base: repo.current_branch(),
            branch: branch.to_string(),
            title,
            body,
        })
    }
}

/// The admin making a change: identity, signing key and roster entry.
pub struct Actor {
    pub profile: Profile,
    pub signer: Signer,
    pub identity: AgeIdentity,
}

impl Actor {
    pub fn load(home: &Home) -> Result<Actor, StoreError> {
        let profile = Profile::load(home)?.ok_or(keys::KeyError::NoSigningKey)?;
        let signer = Signer::load_for(&profile, home)?;
        let identity = AgeIdentity::load(home)?;
        Ok(Actor {
            profile,
            signer,
            identity,
        })
    }

    pub fn email(&self) -> String {
        self.profile
            .email
            .clone()
            .unwrap_or_else(|| format!("{}@byreis.invalid", self.profile.name))
    }

    /// This actor's entry in `roster`, found by signing key.
    pub fn admin_in<'r>(&self, roster: &'r documents::Roster) -> Option<&'r Admin> {
        roster.admins.iter().find(|a| {
            keys::SigningPub::parse(&a.signing_key).is_ok_and(|k| k == self.signer.public)
        })
    }
}

pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn expiry(days: u32) -> String {
    (chrono::Utc::now() + chrono::Duration::days(i64::from(days)))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Creates a registry at `dir`; returns its anchor fingerprint.
pub fn registry_init(
    home: &Home,
    dir: &Path,
    location: Option<&str>,
) -> Result<String, StoreError> {
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(StoreError::Refused(Refusal::AlreadyExists, format!(
            "{} exists and is not empty; `registry init` creates a new registry in an empty or new directory",
            dir.display()
        )));
    }
    let actor = Actor::load(home)?;
    let admin = Admin {
        name: actor.profile.name.clone(),
        email: actor.profile.email.clone(),
        signing_key: actor.signer.public.to_openssh(),
        age_recipient: actor.identity.recipient().as_str().to_string(),
    };
    if let Some(loc) = location {
        registry::check_location(loc).map_err(|m| StoreError::Refused(Refusal::BadLocation, m))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Refused(Refusal::IoFailed, format!("{}: {e}", dir.display())))?;
    // Without --location the registry lives where it was made.
    let location = match location {
        Some(l) => l.to_string(),
        None => dir
            .canonicalize()
            .map_err(|e| StoreError::Refused(Refusal::IoFailed, format!("{}: {e}", dir.display())))?
            .display()
            .to_string(),
    };
    Ok(registry::init(dir, admin, &actor.signer, location)?)
}

/// A change to one environment's secrets.
pub struct EnvChange {
    pub env: String,
    pub secrets: Secrets,
    pub action: &'static str,
}

/// Which secret names were added, changed and removed (names only).
pub fn name_diff(old: &Secrets, new: &Secrets) -> serde_json::Value {
    let added: Vec<&String> = new.keys().filter(|k| !old.contains_key(*k)).collect();
    let removed: Vec<&String> = old.keys().filter(|k| !new.contains_key(*k)).collect();
    let changed: Vec<&String> = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k)
        .collect();
    serde_json::json!({"keys_added": added, "keys_changed": changed, "keys_removed": removed})
}

/// How a change by an actor lands on a verified state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Not an admin of the newest roster version: the change is added to
    /// the member's draft, encrypted to the admins only (ADR 0014).
    Draft,
    /// An admin, thresholds of one: signed and landed at once.
    Direct,
    /// An admin, thresholds above one: signed and left as a proposal for
    /// `need` admins in all (ADR 0012, counted as in ADR 0017).
    Proposal { need: usize },
}

/// The one place that decides how a change lands (issue 15): [`route`]
/// for the verbs, [`land_state`] for every signed change.
fn decide(state: &State, actor: &Actor) -> Route {
    if actor.admin_in(state.roster().latest()).is_none() {
        return Route::Draft;
    }
    match verify::required_approvals(&state.roster().latest().thresholds) {
        need if need > 1 => Route::Proposal { need },
        _ => Route::Direct,
    }
}

/// How `actor`'s change to `state` lands; an admin's route also needs the
/// state writable ([`check_writable`]), a member's draft does not.
pub fn route(state: &State, actor: &Actor) -> Result<Route, StoreError> {
    refuse_treeless(state)?;
    let r = decide(state, actor);
    if r != Route::Draft {
        check_writable(state, actor)?;
    }
    Ok(r)
}

/// Checks that `state` can be written: the working tree holds the pinned
/// state, byreis's files are clean, and the actor is an admin.
/// Writes need a git checkout: a tree without `.git` is read only.
fn refuse_treeless(state: &State) -> Result<(), StoreError> {
    if state.project().is_treeless() {
        return Err(StoreError::Refused(
            Refusal::NotAWorkTree,
            "this tree has no .git (a copy without history, as Argo CD hands plugins): reads verify its files against the signed record, but a write needs a git checkout of the project; nothing was changed".into(),
        ));
    }
    Ok(())
}

pub fn check_writable<'s>(state: &'s State, actor: &Actor) -> Result<&'s Admin, StoreError> {
    refuse_treeless(state)?;
    let admin = check_can_write(state, actor)?;
    let dirty = state.project().repo.dirty_paths(OWNED_PATHS)?;
    if !dirty.is_empty() {
        return Err(VerifyError {
            code: Code::WorktreeChanged,
            detail: format!(
                "uncommitted changes in byreis's files: {}; commit or discard them first (nothing was changed)",
                dirty.iter().map(|p| names::escape(p)).collect::<Vec<_>>().join(", ")
            ),
        }
        .into());
    }
    Ok(admin)
}

/// The branch signed writes land on: the one the verified manifest names;
/// for a manifest made before branches were recorded, origin's default
/// branch, else `main` or `master` where one exists, else the current one
/// (and the first write records it).
pub fn write_branch(state: &State) -> String {
    if let Some(b) = &state.manifest().branch {
        return b.clone();
    }
    let repo = &state.project().repo;
    if let Some(b) = repo.origin_default_branch() {
        return b;
    }
    for b in ["main", "master"] {
        if repo.local_branch(b).ok().flatten().is_some() {
            return b.to_string();
        }
    }
    repo.current_branch().unwrap_or_else(|| "main".into())
}

/// Refuses a write from any branch but the one writes land on, before
/// anything is signed (a state pinned on a feature branch strands everyone
/// once that branch is gone).
fn check_branch(state: &State) -> Result<(), StoreError> {
    let want = write_branch(state);
    let have = state.project().repo.current_branch();
    if have.as_deref() != Some(want.as_str()) {
        return Err(VerifyError {
            code: Code::WrongBranch,
            detail: format!(
                "signed writes land on the project's branch {want} (named in the signed manifest), but {}; run `git switch {want}` (and `git pull`), then try again (nothing was changed)",
                match have {
                    Some(b) => format!("you are on {}", names::escape(&b)),
                    None => "HEAD is detached".to_string(),
                }
            ),
        }
        .into());
    }
    Ok(())
}

/// [`check_writable`] without the work-tree status.
fn check_can_write<'s>(state: &'s State, actor: &Actor) -> Result<&'s Admin, StoreError> {
    check_branch(state)?;
    let latest = state.roster().latest();
    let Some(admin) = actor.admin_in(latest) else {
        return Err(StoreError::Refused(Refusal::NotAnAdmin, format!(
            "your signing key {} is not an admin key in roster version {}; only admins sign changes (a member's `set`, `unset`, `edit` or `import` makes a proposal for an admin to approve: `byreis submit`)",
            actor.signer.public.fingerprint(),
            latest.version
        )));
    };
    if let Some(p) = &state.record().pending {
        return Err(VerifyError {
            code: Code::ChangePending,
            detail: format!(
                "a {} to counter {} was begun and not finished; finish it with `byreis rotate --resume` or abandon it with `byreis rotate --abort` first (nothing was changed)",
                p.action, p.counter
            ),
        }
        .into());
    }
    if state.source() != Source::Worktree {
        return Err(VerifyError {
            code: Code::CheckoutNotCurrent,
            detail: "your checkout is not at the state the registry pins; check out the branch that holds it (git pull) before writing".into(),
        }
        .into());
    }
    Ok(admin)
}

/// Applies `change` as one signed, counted, audited transaction.
pub fn commit_change(
    ctx: &Context,
    state: State,
    actor: &Actor,
    change: EnvChange,
) -> Result<Landed, StoreError> {
    let action = change.action;
    commit_changes(ctx, state, actor, vec![change], action)
}

/// Applies changes to several environments as one signed, counted,
/// audited transaction (`import`). Files are encrypted on all cores.
pub fn commit_changes(
    ctx: &Context,
    state: State,
    actor: &Actor,
    changes: Vec<EnvChange>,
    action: &'static str,
) -> Result<Landed, StoreError> {
    commit_changes_with(ctx, state, actor, changes, action, None)
}

/// [`commit_changes`] with `extra` fields in the audit entry's details
/// (an approved submission names its branch and author).
pub fn commit_changes_with(
    ctx: &Context,
    mut state: State,
    actor: &Actor,
    changes: Vec<EnvChange>,
    action: &'static str,
    extra: Option<serde_json::Value>,
) -> Result<Landed, StoreError> {
    let admin = check_writable(&state, actor)?.clone();
    if changes.is_empty() {
        return Err(StoreError::Refused(
            Refusal::NothingToDo,
            "nothing to change".into(),
        ));
    }
    let old = &state.manifest();
    let mut jobs = Vec::with_capacity(changes.len());
    let mut env_details = Vec::new();
    for change in &changes {
        let env = &change.env;
        names::check(Kind::Environment, env).map_err(StoreError::from)?;
        // Old values, for the name-level audit detail.
        let old_secrets = if old.environments.contains_key(env) {
            state.secrets(env, &actor.identity)?
        } else {
            Secrets::new()
        };
        let readers: Readers = match old.environments.get(env) {
            Some(e) => e.readers.clone(),
            None => old.default_readers.clone().into(),
        };
        if readers.is_empty() {
            return Err(StoreError::Refused(
                Refusal::NoReaders,
                format!("environment {env} would have no readers"),
            ));
        }
        let mut d = name_diff(&old_secrets, &change.secrets);
        d["env"] = serde_json::Value::String(env.clone());
        env_details.push(d);
        jobs.push((change, state.readers(env), readers));
    }
    let progress = crate::par::Progress::new("byreis: encrypting", jobs.len());
    let files = crate::par::map(&jobs, Some(&progress), |(change, recipients, _)| {
        agefile::encrypt(&change.secrets, recipients)
    });
    let mut details = if env_details.len() == 1 {
        env_details.pop().expect("one")
    } else {
        serde_json::json!({ "envs": env_details })
    };
    if let (Some(serde_json::Value::Object(extra)), Some(d)) = (extra, details.as_object_mut()) {
        d.extend(extra);
    }
    let (mut manifest, audit_change) = next_manifest(&state, actor, &admin, action, details)?;
    let mut file_changes = Vec::with_capacity(jobs.len() + 1);
    for ((change, _, readers), file) in jobs.into_iter().zip(files) {
        let file = file?;
        let exec_allow = manifest
            .environments
            .get(&change.env)
            .map(|e| e.exec_allow.clone())
            .unwrap_or_default();
        manifest.environments.insert(
            change.env.clone(),
            Environment {
                readers,
                sha256: sha256_hex(&file),
                exec_allow,
            },
        );
        file_changes.push(Change {
            path: names::env_file(&change.env),
            content: Some(file.into()),
        });
    }
    file_changes.push(audit_change);
    let counter = manifest.counter;
    let what = if changes.len() == 1 {
        changes[0].env.clone()
    } else {
        format!("{} environments", changes.len())
    };
    let message = format!("byreis: {action} {what} (counter {counter})");
    land_state(
        ctx,
        &mut state,
        actor,
        &admin,
        manifest,
        file_changes,
        &message,
    )
}

/// The next manifest (counter +1, chained to the current one, signed by
/// `admin` under the newest roster) and the audit log with one new signed
/// entry for `action`. The caller changes members and environments.
pub(crate) fn next_manifest(
    state: &State,
    actor: &Actor,
    admin: &Admin,
    action: &str,
    details: serde_json::Value,
) -> Result<(Manifest, Change), StoreError> {
    let old = &state.manifest();
    let counter = old.counter + 1;
    let roster_version = state.roster().latest().version;
    let entry = audit::Entry {
        seq: state.audit().len() as u64 + 1,
        time: now(),
        project: old.project.clone(),
        actor: admin.name.clone(),
        actor_key: actor.signer.public.fingerprint(),
        action: action.to_string(),
        counter_from: old.counter,
        counter_to: counter,
        roster_version,
        prev: state.audit().last().map(|v| v.hash.clone()),
        details: details.into(),
    };
    let line = audit::make_line(&entry, &actor.signer)?;
    let mut audit_text = state
        .project()
        .repo
        .read_file(&state.record().project_commit, audit::PATH)?
        .unwrap_or_default();
    audit_text.reserve_exact(line.len() + 1);
    audit_text.extend_from_slice(line.as_bytes());
    audit_text.push(b'\n');

    let mut manifest = old.value().clone();
    manifest.counter = counter;
    manifest.previous = Some(registry::tagged_hash(old.bytes()));
    manifest.roster_version = roster_version;
    manifest.signer = admin.name.clone();
    manifest.signer_key = actor.signer.public.fingerprint();
    manifest.time = entry.time;
    manifest.audit_head = audit::line_hash(&line);
    if manifest.branch.is_none() {
        manifest.branch = Some(write_branch(state));
    }
    Ok((
        manifest,
        Change {
            path: audit::PATH.into(),
            content: Some(audit_text.into()),
        },
    ))
}

/// Lands `manifest` and `changes` on the state's project and registry.
pub(crate) fn land_state(
    ctx: &Context,
    state: &mut State,
    actor: &Actor,
    admin: &Admin,
    manifest: Manifest,
    changes: Vec<Change>,
    message: &str,
) -> Result<Landed, StoreError> {
    match decide(state, actor) {
        Route::Proposal { need } => {
            let p =
                crate::proposal::propose(state, actor, admin, manifest, changes, message, need)?;
            return Ok(Landed::Proposed(p));
        }
        Route::Draft => {
            return Err(StoreError::Refused(
                Refusal::NotAnAdmin,
                "only an admin of the newest roster version signs a change; nothing was changed"
                    .into(),
            ))
        }
        Route::Direct => {}
    }
    let counter = manifest.counter;
    let signed = SignedManifest::sign(manifest, &actor.signer)?;
    land_state_signed(ctx, state, actor, admin, signed, changes, message)?;
    Ok(Landed::Done(counter))
}

/// [`land_signed`] onto the verified `state` (its pin is updated).
pub(crate) fn land_state_signed(
    ctx: &Context,
    state: &mut State,
    actor: &Actor,
    admin: &Admin,
    signed: SignedManifest,
    changes: Vec<Change>,
    message: &str,
) -> Result<(), StoreError> {
    let (project, registry, roster, record, pin, pin_stored) = state.for_landing();
    let target = Target {
        repo: &project.repo,
        registry,
        roster: roster.latest(),
        current: Some(record.value()),
    };
    land_signed(
        ctx, &target, pin, pin_stored, actor, admin, signed, changes, message,
    )
}

/// How a signed change ended.
#[derive(Debug)]
pub enum Landed {
    /// Landed: this counter is current.
    Done(u64),
    /// The registry asks for more than one admin: the change waits on a
    /// proposal branch for approvals (`byreis approve`).
    Proposed(crate::proposal::Proposal),
}

/// Where a change lands.
struct Target<'a> {
    repo: &'a Repo,
    registry: &'a Registry,
    roster: &'a documents::Roster,
    /// The verified current record; `None` when a project is created.
    current: Option<&'a Record>,
}

/// A record pinning `counter`/`manifest`/`commit`, signed now by `actor`.
fn new_record(
    roster: &documents::Roster,
    actor: &Actor,
    admin: &Admin,
    base: &Pending,
    project: &str,
) -> Record {
    Record {
        format: RECORD_FORMAT.into(),
        project: project.to_string(),
        counter: base.counter,
        manifest: base.manifest.clone(),
        project_commit: base.project_commit.clone(),
        audit_head: base.audit_head.clone(),
        roster_version: roster.version,
        signer: admin.name.clone(),
        signer_key: actor.signer.public.fingerprint(),
        issued: now(),
        expires: expiry(roster.record_expiry_days),
        pending: None,
        // Set by `Registry::write_record`.
        revision: 0,
        // Set by `with_proof`.
        manifest_sha512: String::new(),
        approvals: Vec::new(),
    }
}

/// Fills `record`'s `manifest_sha512` and `approvals` from the manifest,
/// its signature and `.byreis/approvals.sig` in the commit the record pins
/// (ADR 0017): every signature or approval there that verifies for an
/// admin of `roster`, added to those the record already holds (an
/// `approve --pinned`), each blob once.
pub(crate) fn with_proof(
    repo: &Repo,
    roster: &documents::Roster,
    record: &mut Record,
) -> Result<(), StoreError> {
    let commit = record.project_commit.clone();
    let read = |p: &str| -> Result<Vec<u8>, StoreError> {
        Ok(repo.read_file(&commit, p)?.unwrap_or_default())
    };
    let bytes = read(MANIFEST_PATH)?;
    if registry::tagged_hash(&bytes) != record.manifest {
        return Err(StoreError::Refused(
            Refusal::RecordUnusable,
            format!("commit {commit} does not hold the manifest the record names"),
        ));
    }
    let keys = registry::admin_keys(roster);
    let sha512 = verify::sha512_hex(&bytes);
    if record.manifest_sha512 != sha512 {
        record.manifest_sha512 = sha512;
        record.approvals.clear();
    }
    let sig = String::from_utf8_lossy(&read(MANIFEST_SIG_PATH)?).into_owned();
    let file = String::from_utf8_lossy(&read(verify::APPROVALS_PATH)?).into_owned();
    let blocks = sshsig::split_armored(&sig)
        .into_iter()
        .map(|b| (b, Namespace::Manifest))
        .chain(
            sshsig::split_armored(&file)
                .into_iter()
                .map(|b| (b, Namespace::Proposal)),
        );
    for (block, ns) in blocks {
        if sshsig::verify_armored(&block, ns, &bytes, &keys).is_err() {
            continue;
        }
        let blob = sshsig::armored_to_base64(&block)?;
        if !record.approvals.contains(&blob) {
            record.approvals.push(blob);
        }
    }
    Ok(())
}

/// Signs `manifest` and lands it with `changes`, all or nothing:
///
/// 1. everything is prepared in memory, then the signed project commit is
///    written as an object that no ref points to yet;
/// 2. a signed registry record names it as *pending* (the record still pins
///    the current state) — from here on, only this exact change can be
///    resumed by any admin (`rotate --resume`), or abandoned (`--abort`);
/// 3. the project branch moves to the new commit (compare-and-swap) and the
///    changed paths are checked out; the project is pushed if it has an
///    `origin`;
/// 4. the final signed record pins the new commit; the registry is pushed
///    if it is a managed clone.
///
/// A kill between any two steps leaves either the old state (1), or a
/// state `doctor` reports as `change-pending` (2, 3). No secret is lost:
/// the old state's commit and files stay as they were until step 3, and
/// the new commit holds every new file from step 1.
#[allow(clippy::too_many_arguments)]
fn land(
    ctx: &Context,
    target: &Target<'_>,
    pin: &mut Pin,
    pin_stored: bool,
    actor: &Actor,
    admin: &Admin,
    manifest: Manifest,
    changes: Vec<Change>,
    message: &str,
) -> Result<(), StoreError> {
    let signed = SignedManifest::sign(manifest, &actor.signer)?;
    land_signed(
        ctx, target, pin, pin_stored, actor, admin, signed, changes, message,
    )
}

/// A manifest with the exact bytes that were signed and their signature.
pub(crate) struct SignedManifest {
    pub manifest: Manifest,
    pub bytes: Vec<u8>,
    pub sig: String,
}

impl SignedManifest {
    /// Serializes `manifest` and signs the bytes (`manifest@byreis.dev`).
    pub fn sign(manifest: Manifest, signer: &Signer) -> Result<SignedManifest, StoreError> {
        let bytes = documents::to_yaml(&manifest);
        let sig = sshsig::sign_armored(signer, Namespace::Manifest, &bytes)?;
        Ok(SignedManifest {
            manifest,
            bytes,
            sig,
        })
    }

    /// The manifest, and the two file changes that write it and its
    /// signature.
    pub fn into_changes(self) -> (Manifest, [Change; 2]) {
        (
            self.manifest,
            [
                Change {
                    path: MANIFEST_PATH.into(),
                    content: Some(self.bytes.into()),
                },
                Change {
                    path: MANIFEST_SIG_PATH.into(),
                    content: Some(self.sig.into_bytes().into()),
                },
            ],
        )
    }
}

/// [`land`] for a manifest already signed (an approved proposal keeps the
/// proposer's signature over the bytes every approver signed).
#[allow(clippy::too_many_arguments)]
fn land_signed(
    ctx: &Context,
    target: &Target<'_>,
    pin: &mut Pin,
    pin_stored: bool,
    actor: &Actor,
    admin: &Admin,
    signed: SignedManifest,
    mut changes: Vec<Change>,
    message: &str,
) -> Result<(), StoreError> {
    let manifest_hash = registry::tagged_hash(&signed.bytes);
    let (manifest, files) = signed.into_changes();
    changes.extend(files);
    failpoint::hit("prepared");
    crate::timing::phase("prepared (files encrypted)");
    let author = (admin.name.as_str(), actor.email());
    let author = (author.0, author.1.as_str());
    let old_head = target.repo.head()?;
    let commit =
        target
            .repo
            .create_signed_commit(old_head, &changes, message, &actor.signer, author)?;
    failpoint::hit("commit-object");
    crate::timing::phase("commit object written");
    let pending = Pending {
        counter: manifest.counter,
        manifest: manifest_hash,
        project_commit: commit.to_string(),
        audit_head: manifest.audit_head.clone(),
        action: message
            .strip_prefix("byreis: ")
            .and_then(|m| m.split_whitespace().next())
            .unwrap_or("change")
            .to_string(),
    };
    if let Some(current) = target.current {
        let mut begun = current.clone();
        begun.pending = Some(pending.clone());
        begun.signer = admin.name.clone();
        begun.signer_key = actor.signer.public.fingerprint();
        begun.issued = now();
        begun.roster_version = target.roster.version;
        target
            .registry
            .write_record(&begun, &actor.signer, author)?;
        target.registry.push_if_remote(&ctx.home)?;
    }
    failpoint::hit("begun");
    crate::timing::phase("pending record signed");
    target
        .repo
        .advance_branch(old_head, commit, &changes)
        .map_err(|e| match e {
            crate::git::GitError::Raced => StoreError::Refused(Refusal::BranchMoved,
                "the project branch moved while this change was landing (someone committed); the change is recorded as pending: run `byreis rotate --abort`, then make it again".into(),
            ),
            e => e.into(),
        })?;
    failpoint::hit("branch");
    crate::timing::phase("branch moved, working tree written");
    finish(
        ctx,
        target,
        pin,
        pin_stored,
        actor,
        admin,
        &pending,
        &manifest.project,
    )
}

/// Steps 3b and 4 of [`land`]: push the project, write the final record.
#[allow(clippy::too_many_arguments)]
fn finish(
    ctx: &Context,
    target: &Target<'_>,
    pin: &mut Pin,
    pin_stored: bool,
    actor: &Actor,
    admin: &Admin,
    pending: &Pending,
    project: &str,
) -> Result<(), StoreError> {
    if target.repo.has_origin() {
        if let Some(dir) = target.repo.workdir() {
            crate::transport::push(dir)?;
        }
    }
    failpoint::hit("project-pushed");
    let mut record = new_record(target.roster, actor, admin, pending, project);
    with_proof(target.repo, target.roster, &mut record)?;
    let email = actor.email();
    target
        .registry
        .write_record(&record, &actor.signer, (&admin.name, &email))?;
    target.registry.push_if_remote(&ctx.home)?;
    failpoint::hit("recorded");
    crate::timing::phase("final record signed");
    pin.counter_seen = pin.counter_seen.max(record.counter);
    pin.roster_version_seen = pin.roster_version_seen.max(target.roster.version);
    pin.record_revision_seen = pin
        .record_revision_seen
        .max(target.registry.current_revision(project)?);
    if pin_stored {
        trust::save(&ctx.home, &target.repo.common_dir(), pin)?;
    }
    Ok(())
}

/// The pending change of a verified state, checked against the signed
/// record: its commit exists, holds exactly the manifest the record names,
/// signed by an admin, one counter ahead and chained to the current one.
pub fn verify_pending(
    state: &State,
) -> Result<(Pending, crate::signed::Verified<Manifest>), StoreError> {
    let Some(p) = state.record().pending.clone() else {
        return Err(StoreError::Refused(
            Refusal::NoPendingChange,
            "no change is pending: nothing to resume or abort".into(),
        ));
    };
    let repo = &state.project().repo;
    let bad = |m: String| {
        StoreError::Refused(
            Refusal::CannotResume,
            format!("the pending change cannot be resumed: {m}; run `byreis rotate --abort`"),
        )
    };
    if !repo.has_commit(&p.project_commit) {
        return Err(bad(format!(
            "its commit {} is not in this clone (run `git fetch`; only the machine that began it has it until it is pushed)",
            p.project_commit
        )));
    }
    let descends = repo
        .parent_of(&p.project_commit)?
        .is_some_and(|parent| repo.contains(parent, &state.record().project_commit));
    if !descends {
        return Err(bad("its commit does not build on the current state".into()));
    }
    let bytes = repo
        .read_file(&p.project_commit, MANIFEST_PATH)?
        .ok_or_else(|| bad("its commit has no manifest".into()))?;
    if registry::tagged_hash(&bytes) != p.manifest {
        return Err(bad(
            "its commit's manifest is not the one the signed record names".into(),
        ));
    }
    let sig = repo
        .read_file(&p.project_commit, MANIFEST_SIG_PATH)?
        .unwrap_or_default();
    let approvals = repo
        .read_file(&p.project_commit, verify::APPROVALS_PATH)?
        .unwrap_or_default();
    let m = verify::verify_manifest(
        state.roster(),
        &bytes,
        &String::from_utf8_lossy(&sig),
        &String::from_utf8_lossy(&approvals),
        verify::SignerRule::AdminThen,
    )
    .map_err(bad)?;
    if m.counter != state.record().counter + 1
        || m.counter != p.counter
        || m.previous.as_deref() != Some(&state.record().manifest)
        || m.audit_head != p.audit_head
        || m.project != state.manifest().project
    {
        return Err(bad("its manifest does not follow the current one".into()));
    }
    Ok((p, m))
}

/// Finishes the pending change that the signed record names.
pub fn resume(ctx: &Context, mut state: State, actor: &Actor) -> Result<u64, StoreError> {
    let admin = admin_of(&state, actor, "finish a pending change (`rotate --resume`)")?;
    // The pending commit lands on the write branch, never on whatever
    // branch happens to be checked out at the same commit.
    check_branch(&state)?;
    let (pending, _) = verify_pending(&state)?;
    let repo = &state.project().repo;
    let head = repo.head()?;
    let new = git2_oid(&pending.project_commit)?;
    // The change was made on top of whatever the branch held then (the
    // pinned commit, or app commits after it).
    let base = repo.parent_of(&pending.project_commit)?;
    refuse_stale_locks(repo)?;
    if head == base {
        repo.move_branch(head, new)?;
        repo.restore_from_head(OWNED_PATHS)?;
    } else if head == Some(new) {
        // The branch moved before the interruption: finish writing the
        // work tree and the index (either may be partly written).
        repo.restore_from_head(OWNED_PATHS)?;
    } else {
        return Err(StoreError::Refused(Refusal::BranchMoved,
            "the project branch is neither at the current state nor at the pending commit (someone committed since); run `byreis rotate --abort`".into(),
        ));
    }
    let (project, registry, roster, record, pin, pin_stored) = state.for_landing();
    let target = Target {
        repo: &project.repo,
        registry,
        roster: roster.latest(),
        current: Some(record.value()),
    };
    let name = target
        .current
        .map(|r| r.project.clone())
        .unwrap_or_default();
    finish(
        ctx, &target, pin, pin_stored, actor, &admin, &pending, &name,
    )?;
    Ok(pending.counter)
}

/// Abandons the pending change: the project returns to the current state's
/// files (a signed commit if the branch had moved), and the record is
/// re-signed without `pending`.
pub fn abort(ctx: &Context, mut state: State, actor: &Actor) -> Result<u64, StoreError> {
    let admin = admin_of(&state, actor, "abandon a pending change (`rotate --abort`)")?;
    check_branch(&state)?;
    let Some(pending) = state.record().pending.clone() else {
        return Err(StoreError::Refused(
            Refusal::NoPendingChange,
            "no change is pending: nothing to abort".into(),
        ));
    };
    let repo = &state.project().repo;
    refuse_stale_locks(repo)?;
    let head = repo.head()?;
    let pinned = &state.record().project_commit;
    let email = actor.email();
    let author = (admin.name.as_str(), email.as_str());
    // First make the work tree and index match HEAD (an interrupted write
    // may have left either half-written).
    repo.restore_from_head(OWNED_PATHS)?;
    if let Some(h) = head {
        if h.to_string() != *pinned {
            // Restore byreis's files as the current state has them.
            let mut changes = Vec::new();
            let mut paths: std::collections::BTreeSet<String> = repo
                .files_under(&h.to_string(), OWNED_PATHS)?
                .into_iter()
                .collect();
            paths.extend(repo.files_under(pinned, OWNED_PATHS)?);
            for p in paths {
                let content = repo.read_file(pinned, &p)?;
                if repo.read_file(&h.to_string(), &p)? != content {
                    changes.push(Change {
                        path: p,
                        content: content.map(Into::into),
                    });
                }
            }
            if !changes.is_empty() {
                let msg = format!(
                    "byreis: abort pending change to counter {}\n\nRestores byreis files to counter {} ({}).",
                    pending.counter, state.record().counter, pinned
                );
                let commit =
                    repo.create_signed_commit(head, &changes, &msg, &actor.signer, author)?;
                repo.advance_branch(head, commit, &changes)?;
            }
        }
    }
    if repo.has_origin() {
        if let Some(dir) = repo.workdir() {
            crate::transport::push(dir)?;
        }
    }
    let mut record = state.record().value().clone();
    record.pending = None;
    let admin = admin.clone();
    resign_record(ctx, &mut state, actor, &admin, record).map(|r| r.counter)
}

/// Signs `record` now as `admin` (fresh expiry, newest roster version),
/// writes and pushes it, and remembers its revision: every record write
/// outside `land`.
fn resign_record(
    ctx: &Context,
    state: &mut State,
    actor: &Actor,
    admin: &Admin,
    mut record: Record,
) -> Result<Record, StoreError> {
    let latest = state.roster().latest();
    record.signer = admin.name.clone();
    record.signer_key = actor.signer.public.fingerprint();
    record.issued = now();
    record.expires = expiry(latest.record_expiry_days);
    record.roster_version = latest.version;
    let email = actor.email();
    state
        .registry()
        .write_record(&record, &actor.signer, (&admin.name, &email))?;
    state.registry().push_if_remote(&ctx.home)?;
    remember_revision(ctx, state)?;
    Ok(record)
}

/// After a record write outside `land`: this machine now refuses any
/// older record (an aborted change's begun record, say).
fn remember_revision(ctx: &Context, state: &mut State) -> Result<(), StoreError> {
    let project = state.manifest().project.clone();
    let r = state.registry().current_revision(&project)?;
    if state.raise_record_revision_seen(r) && state.pin_stored() {
        trust::save(&ctx.home, &state.project().repo.common_dir(), state.pin())?;
    }
    Ok(())
}

fn refuse_stale_locks(repo: &Repo) -> Result<(), StoreError> {
    let locks = repo.stale_locks();
    if locks.is_empty() {
        return Ok(());
    }
    Err(StoreError::Refused(Refusal::GitLocked, format!(
        "lock files left by an interrupted git or byreis process remain: {}. If no git or byreis command is running in this repository, remove them (rm {}) and run this again",
        locks.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        locks.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ")
    )))
}

/// The actor as an admin of the newest roster version; `what` names the
/// verb in the refusal (issue 17: every verb said "finish or abort").
fn admin_of(state: &State, actor: &Actor, what: &str) -> Result<Admin, StoreError> {
    refuse_treeless(state)?;
    actor
        .admin_in(state.roster().latest())
        .cloned()
        .ok_or_else(|| {
            StoreError::Refused(
                Refusal::NotAnAdmin,
                format!(
                    "your signing key {} is not an admin key of the newest roster version; only admins {what}. Nothing was changed",
                    actor.signer.public.fingerprint()
                ),
            )
        })
}

fn git2_oid(s: &str) -> Result<crate::git::Oid, StoreError> {
    crate::git::Oid::from_str(s).map_err(|e| StoreError::Git(e.into()))
}

/// `byreis init`: config, first manifest, first audit entry, one signed
/// project commit, then the signed record; pins the anchor on this machine.
pub fn init_project(
    ctx: &Context,
    project_name: &str,
    registry_arg: &str,
) -> Result<String, StoreError> {
    names::check(Kind::Project, project_name).map_err(StoreError::from)?;
    let repo = Repo::discover(&ctx.dir)?;
    let root = repo
        .workdir()
        .ok_or_else(|| {
            StoreError::Refused(
                Refusal::NotAWorkTree,
                "the repository is bare; run init in a work tree".into(),
            )
        })?
        .to_path_buf();
    let here = ctx.dir.canonicalize().unwrap_or_else(|_| ctx.dir.clone());
    if here != root.canonicalize().unwrap_or_else(|_| root.clone()) {
        return Err(StoreError::Refused(
            Refusal::NotAWorkTree,
            format!(
                "run `byreis init` at the root of the work tree ({}), or pass -C {}",
                root.display(),
                root.display()
            ),
        ));
    }
    if root.join(CONFIG_PATH).exists() || root.join(".byreis").exists() {
        return Err(StoreError::Refused(
            Refusal::AlreadyExists,
            format!(
                "{} already has {CONFIG_PATH} or .byreis/; this project is initialised",
                root.display()
            ),
        ));
    }
    let actor = Actor::load(&ctx.home)?;

    // The location as written in the config: URLs as given; paths relative
    // to the project root when possible.
    let (config_location, location) = if verify::is_url(registry_arg) {
        (registry_arg.to_string(), registry_arg.to_string())
    } else {
        let abs = std::fs::canonicalize(registry_arg).map_err(|e| {
            StoreError::Refused(Refusal::IoFailed, format!("registry {registry_arg}: {e}"))
        })?;
        let rel = relative_to(&abs, &root.canonicalize().unwrap_or(root.clone()));
        (rel, abs.display().to_string())
    };
    verify::check_registry_outside(&repo, &location)?;
    if verify::is_url(&location) && !verify::registry_dir(&ctx.home, &location).exists() {
        crate::transport::clone(&ctx.home, &location)?;
    }
    let registry = verify::open_registry(&ctx.home, &location)?;
    let anchor = keys::grouped_fingerprint(&registry.roster_v1_bytes()?);
    let chain = registry.roster_chain(&anchor)?;
    let latest = chain.latest();
    let Some(admin) = actor.admin_in(latest).cloned() else {
        return Err(StoreError::Refused(
            Refusal::NotAnAdmin,
            format!(
                "your signing key {} is not an admin in this registry; `byreis init` is for admins",
                actor.signer.public.fingerprint()
            ),
        ));
    };
    if registry.record_raw(project_name)?.is_some() {
        return Err(StoreError::Refused(
            Refusal::AlreadyExists,
            format!("the registry already has a project named {project_name}; pick another name"),
        ));
    }
    let my_recipient = actor.identity.recipient();
    if keys::AgeRecipient::parse(&admin.age_recipient)? != my_recipient {
        return Err(StoreError::Refused(Refusal::IdentityMismatch, format!(
            "your age identity ({}) is not the one the roster lists for {} ({}); use the matching identity",
            my_recipient.as_str(),
            admin.name,
            admin.age_recipient
        )));
    }

    let time = now();
    let entry = audit::Entry {
        seq: 1,
        time: time.clone(),
        project: project_name.to_string(),
        actor: admin.name.clone(),
        actor_key: actor.signer.public.fingerprint(),
        action: "init".into(),
        counter_from: 0,
        counter_to: 1,
        roster_version: latest.version,
        prev: None,
        details: serde_json::json!({"members_added": [admin.name.clone()]}).into(),
    };
    let line = audit::make_line(&entry, &actor.signer)?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        project: project_name.to_string(),
        counter: 1,
        previous: None,
        roster_version: latest.version,
        signer: admin.name.clone(),
        signer_key: actor.signer.public.fingerprint(),
        time,
        audit_head: audit::line_hash(&line),
        members: vec![Member {
            name: admin.name.clone(),
            recipient: my_recipient.as_str().to_string(),
            fingerprint: my_recipient.fingerprint(),
        }],
        default_readers: vec![admin.name.clone()],
        environments: BTreeMap::new(),
        exec_allow: Vec::new(),
        branch: Some(repo.current_branch().ok_or_else(|| {
            StoreError::Refused(Refusal::DetachedHead,
                "the project has no current branch (a detached HEAD?); check out the branch byreis writes should land on (usually main) and run init again".into(),
            )
        })?),
    };
    let _ = &root;
    let config = Config {
        format: CONFIG_FORMAT.into(),
        project: project_name.to_string(),
        registry: config_location,
        anchor: anchor.clone(),
    };
    let changes = vec![
        Change {
            path: CONFIG_PATH.into(),
            content: Some(documents::to_yaml(&config).into()),
        },
        Change {
            path: audit::PATH.into(),
            content: Some(format!("{line}\n").into_bytes().into()),
        },
    ];
    let pin = Pin {
        repository: trust::repository_key(&repo.common_dir()),
        registry: location,
        anchor: anchor.clone(),
        roster_version_seen: latest.version,
        counter_seen: 0,
        record_revision_seen: 0,
        trusted_at: now(),
        project: Some(project_name.to_string()),
    };
    let dirty = repo.dirty_paths(OWNED_PATHS)?;
    if !dirty.is_empty() {
        return Err(StoreError::Refused(
            Refusal::UncommittedChanges,
            format!("untracked or changed byreis paths: {}", dirty.join(", ")),
        ));
    }
    let mut pin = pin;
    let target = Target {
        repo: &repo,
        registry: &registry,
        roster: latest,
        current: None,
    };
    land(
        ctx,
        &target,
        &mut pin,
        true,
        &actor,
        &admin,
        manifest,
        changes,
        &format!("byreis: init project {project_name}"),
    )?;
    Ok(anchor)
}

fn relative_to(path: &Path, base: &Path) -> String {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return path.display().to_string();
    }
    let mut out = std::path::PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        ".".into()
    } else {
        out.display().to_string()
    }
}

/// Re-signs the project's record with a fresh expiry (freeze defence).
/// The record's content is otherwise unchanged; it must have verified.
pub fn refresh(ctx: &Context, mut state: State, actor: &Actor) -> Result<String, StoreError> {
    let admin = admin_of(
        &state,
        actor,
        "re-sign the registry record (`registry refresh`)",
    )?
    .clone();
    let mut record = state.record().value().clone();
    // Records made before they carried their proof gain it here.
    if record.manifest_sha512.is_empty() {
        with_proof(&state.project().repo, state.roster().latest(), &mut record)?;
    }
    resign_record(ctx, &mut state, actor, &admin, record).map(|r| r.expires)
}

/// `byreis approve --pinned`: the caller, an admin of the newest roster
/// version who has not yet vouched for the state the record pins, adds
/// their approval of its manifest bytes (`proposal@byreis.dev`) to the
/// record (ADR 0017). Returns the count before and after.
pub fn approve_pinned(
    ctx: &Context,
    mut state: State,
    actor: &Actor,
) -> Result<(verify::ApprovalCount, verify::ApprovalCount), StoreError> {
    let admin = check_writable(&state, actor)?.clone();
    if let Some(p) = &state.record().pending {
        return Err(StoreError::Refused(Refusal::ChangeInProgress, format!(
            "a change to counter {} is pending: finish it (`byreis rotate --resume`) or abandon it (`--abort`) first, then approve what is pinned",
            p.counter
        )));
    }
    let latest = state.roster().latest().clone();
    let mut record = state.record().value().clone();
    with_proof(&state.project().repo, &latest, &mut record)?;
    let before = verify::count_record_approvals(&latest, &record).expect("with_proof sets it");
    if before.by.contains(&admin.name) {
        return Err(StoreError::Refused(Refusal::AlreadyApproved, format!(
            "you have already approved the pinned state (counter {}); each admin counts once. It is approved by {} of {} needed",
            record.counter,
            before.by.len(),
            before.need
        )));
    }
    record.approvals.push(sshsig::sign_base64(
        &actor.signer,
        Namespace::Proposal,
        state.manifest().bytes(),
    )?);
    let after = verify::count_record_approvals(&latest, &record).expect("with_proof sets it");
    resign_record(ctx, &mut state, actor, &admin, record)?;
    Ok((before, after))
}

/// Under a new roster version, signatures count only from its admins and
/// against its thresholds (ADR 0017). When a record's pinned state met the
/// thresholds in force before this change (`accepted`: readers serve it
/// now, and the change raises no threshold) and would fall short after it
/// (an approving admin removed), the
/// admin changing the roster adds their own approval, and is told. A state
/// that was already short (one admin's record, say) is never vouched for:
/// the roster changer has not seen it. A state still short is named.
fn vouch_for_pinned(
    project: &str,
    r: &mut Record,
    new: &documents::Roster,
    accepted: bool,
    actor: &Actor,
    admin: &str,
) -> Result<(), StoreError> {
    let Some(before) = verify::count_record_approvals(new, r) else {
        crate::notice::push(format!(
            "note: the record of {project} does not yet carry its approvals (made by an older byreis); `byreis registry refresh` in a checkout of {project} adds them"
        ));
        return Ok(());
    };
    let mut count = before.clone();
    if count.short()
        && accepted
        && !count.by.iter().any(|n| n == admin)
        && new.admins.iter().any(|a| a.name == admin)
    {
        let digest = crate::signed::unhex64(&r.manifest_sha512).ok_or_else(|| {
            StoreError::Refused(
                Refusal::RecordUnusable,
                format!("the record of {project} has a malformed manifest_sha512"),
            )
        })?;
        r.approvals.push(sshsig::sign_base64_sha512(
            &actor.signer,
            Namespace::Proposal,
            &digest,
        )?);
        count = verify::count_record_approvals(new, r).expect("checked above");
        crate::notice::push(format!(
            "{project}: its pinned state (counter {}) was approved by {} of the {} admins roster version {} requires; your approval is added as the admin making this change",
            r.counter,
            before.by.len(),
            count.need,
            new.version
        ));
    }
    if count.short() {
        crate::notice::push(format!(
            "warning: approvals-short: {project}: {}",
            count.explain(&format!("its pinned state (counter {})", r.counter))
        ));
    }
    Ok(())
}

/// What a roster change does.
pub enum AdminChange {
    Add(Admin),
    Remove(String),
    /// New approval thresholds (each between 1 and the number of admins).
    Thresholds(documents::Thresholds),
    /// The registry's canonical location (ADR 0015).
    Location(String),
}

/// Makes roster version N+1 from N with `change`, signed by `actor` (an
/// admin of N who stays an admin of N+1: with a roster threshold of 1 that
/// one signature satisfies both rules; a roster threshold above 1 needs
/// approvals of roster changes, which are not built: refused). Every
/// project record is re-signed under N+1 in the same commit. Returns the
/// new version.
pub fn change_roster(
    ctx: &Context,
    state: &State,
    actor: &Actor,
    change: AdminChange,
) -> Result<RosterChange, StoreError> {
    let admin = admin_of(
        state,
        actor,
        "change the roster (`admin add`, `admin remove`, `admin thresholds`, `admin location`)",
    )?;
    let old = state.roster().latest();
    let mut new = old.clone();
    new.version = old.version + 1;
    new.previous = Some(registry::tagged_hash(
        state.roster().versions.last().expect("chain").bytes(),
    ));
    let (action, who) = match &change {
        AdminChange::Add(a) => {
            names::check(Kind::Member, &a.name).map_err(StoreError::from)?;
            let key = keys::SigningPub::parse(&a.signing_key)?;
            keys::AgeRecipient::parse(&a.age_recipient)?;
            if old.admins.iter().any(|x| x.name == a.name) {
                return Err(StoreError::Refused(
                    Refusal::AlreadyExists,
                    format!("{} is already an admin (nothing was changed)", a.name),
                ));
            }
            if old
                .admins
                .iter()
                .any(|x| keys::SigningPub::parse(&x.signing_key).is_ok_and(|k| k == key))
            {
                return Err(StoreError::Refused(Refusal::AlreadyExists, "that signing key already belongs to an admin (keys are compared as bytes; nothing was changed)".into()));
            }
            new.admins.push(Admin {
                name: a.name.clone(),
                email: a.email.clone(),
                signing_key: key.to_openssh(),
                age_recipient: keys::AgeRecipient::parse(&a.age_recipient)?
                    .as_str()
                    .to_string(),
            });
            ("admin-add", a.name.clone())
        }
        AdminChange::Remove(name) => {
            if !old.admins.iter().any(|x| &x.name == name) {
                return Err(StoreError::Refused(
                    Refusal::UnknownMember,
                    format!("{name} is not an admin (nothing was changed)"),
                ));
            }
            if *name == admin.name {
                return Err(StoreError::Refused(Refusal::RosterRule,
                    "you cannot remove yourself: version N+1 must be signed by one of its own admins, so another admin removes you (nothing was changed)".into(),
                ));
            }
            new.admins.retain(|x| &x.name != name);
            if new.admins.is_empty() {
                return Err(StoreError::Refused(
                    Refusal::RosterRule,
                    "a registry needs at least one admin (nothing was changed)".into(),
                ));
            }
            ("admin-remove", name.clone())
        }
        AdminChange::Thresholds(t) => {
            if *t == old.thresholds {
                return Err(StoreError::Refused(
                    Refusal::NothingToDo,
                    "the thresholds would not change (nothing was changed)".into(),
                ));
            }
            new.thresholds = t.clone();
            (
                "thresholds",
                format!(
                    "roster {}, recipients {}, values {}",
                    t.roster, t.recipients, t.values
                ),
            )
        }
        AdminChange::Location(loc) => {
            registry::check_location(loc)
                .map_err(|m| StoreError::Refused(Refusal::BadLocation, m))?;
            if old.location.as_deref() == Some(loc.as_str()) {
                return Err(StoreError::Refused(
                    Refusal::NothingToDo,
                    format!(
                        "the roster already states location {} (nothing was changed)",
                        names::quoted(loc)
                    ),
                ));
            }
            new.location = Some(loc.clone());
            ("location", loc.clone())
        }
    };
    if !matches!(
        change,
        AdminChange::Thresholds(_) | AdminChange::Location(_)
    ) {
        for t in [
            &mut new.thresholds.roster,
            &mut new.thresholds.recipients,
            &mut new.thresholds.values,
        ] {
            *t = (*t).min(new.admins.len());
        }
    }
    registry::check_roster(&new, new.version)
        .map_err(|m| StoreError::Refused(Refusal::RosterRule, m))?;

    // Every project record, verified under the old roster, re-signed under
    // the new one (records must name the newest version).
    let mut records = Vec::new();
    for project in state.registry().projects()? {
        let Some((bytes, sig)) = state.registry().record_raw(&project)? else {
            continue;
        };
        let keys = registry::admin_keys(old);
        let v = crate::signed::verify(&bytes, &sig, Namespace::Record, &keys, 1, crate::signed::parse_yaml::<Record>)
            .map_err(|e| StoreError::Refused(Refusal::RecordUnusable, format!("the record of {project} does not verify ({e}); fix it before changing the roster (nothing was changed)")))?;
        let mut r = v.value().clone();
        // Readers accept only records naming the newest version; one that
        // names an older one was put back (a registry pusher needs no key
        // to do that), and re-signing it would revive it.
        if r.roster_version != old.version {
            return Err(StoreError::Refused(Refusal::RecordUnusable, format!(
                "the record of {project} names roster version {}, not the newest ({}): it is stale or was put back; restore the current one from a trusted clone before changing the roster (nothing was changed)",
                r.roster_version, old.version
            )));
        }
        // Only a state readers accept now, under thresholds this change
        // does not raise, is vouched for below: a raise always needs
        // `approve --pinned` by admins who look at the state.
        let accepted = verify::count_record_approvals(old, &r).is_none_or(|c| !c.short())
            && verify::required_approvals(&new.thresholds)
                <= verify::required_approvals(&old.thresholds);
        r.roster_version = new.version;
        r.signer = admin.name.clone();
        r.signer_key = actor.signer.public.fingerprint();
        r.issued = now();
        r.expires = expiry(new.record_expiry_days);
        vouch_for_pinned(&project, &mut r, &new, accepted, actor, &admin.name)?;
        records.push(r);
    }

    let prior = state.registry().audit_log()?;
    let prior_text = String::from_utf8_lossy(&prior);
    let prev = prior_text.lines().last().map(audit::line_hash);
    let seq = prior_text.lines().count() as u64 + 1;
    let fp = |n: &str| {
        new.admins
            .iter()
            .chain(old.admins.iter())
            .find(|a| a.name == n)
            .and_then(|a| keys::SigningPub::parse(&a.signing_key).ok())
            .map(|k| k.fingerprint())
            .unwrap_or_default()
    };
    let entry = audit::Entry {
        seq,
        time: now(),
        project: "registry".into(),
        actor: admin.name.clone(),
        actor_key: actor.signer.public.fingerprint(),
        action: action.into(),
        counter_from: old.version,
        counter_to: new.version,
        roster_version: new.version,
        prev,
        details: match &change {
            AdminChange::Location(loc) => serde_json::json!({"location": loc}),
            _ => serde_json::json!({"admin": who, "signing_fingerprint": fp(&who)}),
        }
        .into(),
    };
    let line = audit::make_line(&entry, &actor.signer)?;
    new.audit_head = Some(audit::line_hash(&line));
    let email = actor.email();
    let author = (admin.name.as_str(), email.as_str());
    let summary = format!("{action} {who}");
    // The proposer's signature counts once for version N and once for N+1;
    // where either threshold is higher, the change waits for approvals.
    if old.thresholds.roster > 1 || new.thresholds.roster > 1 {
        let branch = state.registry().propose_roster_change(
            &new,
            &records,
            &line,
            &actor.signer,
            author,
            &summary,
        )?;
        let mut pull = None;
        if state.registry().repo.has_origin() {
            crate::transport::push_ref(&state.registry().dir, &format!("refs/heads/{branch}"))
                .map_err(StoreError::from)?;
            pull = PullDraft::new(
                &state.registry().repo,
                &branch,
                format!("byreis: roster version {} ({summary})", new.version),
                format!(
                    "Roster version {} proposed by {} with byreis: {summary}. It lands when {} admin(s) of version {} and {} of version {} have signed it: each runs `byreis approve {branch}`, which checks it and adds a signature. Do not merge this pull request; byreis closes it once the version has landed.",
                    new.version, admin.name, old.thresholds.roster, old.version, new.thresholds.roster, new.version
                ),
            );
        }
        return Ok(RosterChange::Proposed {
            version: new.version,
            branch,
            need_old: old.thresholds.roster,
            need_new: new.thresholds.roster,
            pull_request: None,
            pull,
        });
    }
    state
        .registry()
        .write_roster_change(&new, &records, &line, &actor.signer, author, &summary)?;
    state.registry().push_if_remote(&ctx.home)?;
    Ok(RosterChange::Landed {
        version: new.version,
        anchor: keys::grouped_fingerprint(&documents::to_yaml(&new)),
    })
}

/// What [`change_roster`] did.
#[derive(Debug)]
pub enum RosterChange {
    /// Version N+1 is the registry's newest; `anchor` is its fingerprint
    /// (the anchor to give fresh machines from now on).
    Landed { version: u64, anchor: String },
    /// Version N+1 waits on a registry branch for more signatures: it
    /// lands when `need_old` admins of version N and `need_new` of N+1
    /// have signed it (`byreis approve BRANCH`).
    Proposed {
        version: u64,
        branch: String,
        need_old: usize,
        need_new: usize,
        /// On a registry hosted on GitHub: the pull request opened, or why
        /// not (filled by the CLI from `pull`).
        pull_request: Option<String>,
        /// The pull request to open for the pushed branch.
        pull: Option<PullDraft>,
    },
}

impl RosterChange {
    /// Prints what happened; returns the new version if it landed.
    pub fn report(&self) -> Option<u64> {
        match self {
            RosterChange::Landed { version, .. } => Some(*version),
            RosterChange::Proposed {
                version,
                branch,
                need_old,
                need_new,
                pull_request,
                ..
            } => {
                crate::notice::push(format!(
                    "roster version {version} proposed, not landed: it needs the signatures of {need_old} admin(s) of version {} and {need_new} of version {version} (yours counts for each); other admins run `byreis approve {branch}`",
                    version - 1
                ));
                if let Some(line) = pull_request {
                    crate::notice::push(line.to_string());
                }
                None
            }
        }
    }
}

/// Records, signed and audited, that `member`'s old values of `keys` are
/// revoked at their issuers (a counted change with no file changes).
pub fn ack_exposure(
    ctx: &Context,
    mut state: State,
    actor: &Actor,
    member: &str,
    env: Option<&str>,
    keys: &[String],
    note: &str,
) -> Result<Landed, StoreError> {
    let admin = check_writable(&state, actor)?.clone();
    names::check(Kind::Member, member).map_err(StoreError::from)?;
    if let Some(e) = env {
        names::check(Kind::Environment, e).map_err(StoreError::from)?;
    }
    for k in keys {
        names::check(Kind::SecretKey, k).map_err(StoreError::from)?;
    }
    if note.trim().is_empty() || note.len() > 1000 || note.chars().any(char::is_control) {
        return Err(StoreError::Refused(
            Refusal::Usage,
            "--note must say how the old values were revoked (one line, at most 1000 characters)"
                .into(),
        ));
    }
    let mut details = serde_json::json!({"member": member, "keys": keys, "note": note});
    if let Some(e) = env {
        details["env"] = serde_json::Value::String(e.to_string());
    }
    let (manifest, audit_change) = next_manifest(&state, actor, &admin, "exposure-ack", details)?;
    let counter = manifest.counter;
    let msg = format!("byreis: exposure-ack {member} (counter {counter})");
    land_state(
        ctx,
        &mut state,
        actor,
        &admin,
        manifest,
        vec![audit_change],
        &msg,
    )
}

/// What `exec-allow` came to.
#[derive(Debug)]
pub enum ExecAllowed {
    /// The signed change landed, or waits for approvals.
    Changed(Landed),
    /// Nothing to change (the reason says why); nothing was written.
    Unchanged(String),
}

/// Allows (or, with `remove`, stops allowing) secret `name` to reach
/// programs through `exec` in `env` although a family refuses it: a
/// signed, counted, audited change of the environment's `exec_allow`
/// (ADR 0016), through the same write as every other change (a proposal
/// when the registry needs more than one admin). Only admins.
pub fn exec_allow(
    ctx: &Context,
    mut state: State,
    actor: &Actor,
    env: &str,
    name: &str,
    remove: bool,
) -> Result<ExecAllowed, StoreError> {
    let refuse = |c: Refusal, m: String| Err(StoreError::Refused(c, m));
    names::check(Kind::Environment, env).map_err(StoreError::from)?;
    names::check(Kind::SecretKey, name).map_err(StoreError::from)?;
    if actor.admin_in(state.roster().latest()).is_none() {
        return refuse(Refusal::NotAnAdmin, format!(
            "only admins can run `byreis exec-allow`: your signing key {} is not an admin key in roster version {}. Which names exec passes is part of the signed manifest; ask an admin (nothing was changed)",
            actor.signer.public.fingerprint(),
            state.roster().latest().version
        ));
    }
    let admin = check_writable(&state, actor)?.clone();
    if name.starts_with(crate::exec::RESERVED_PREFIX) {
        return refuse(Refusal::ReservedName, format!(
            "names starting with {} are reserved for byreis: exec never passes them and they cannot be allowed (nothing was changed)",
            crate::exec::RESERVED_PREFIX
        ));
    }
    let Some(current) = state.manifest().environments.get(env) else {
        return refuse(Refusal::UnknownEnvironment, format!(
            "no environment {env} in project {}; exec-allow applies to an existing environment (nothing was changed)",
            state.manifest().project
        ));
    };
    let family = crate::exec::family_of(name);
    let in_env = current.exec_allow.iter().any(|n| n == name);
    let global = state.manifest().exec_allow.iter().any(|n| n == name);
    let unchanged = |m: String| Ok(ExecAllowed::Unchanged(m));
    if !remove {
        let Some(family) = family else {
            return unchanged(format!(
                "exec already passes {name}: no family refuses it, so there is nothing to allow (nothing was changed)"
            ));
        };
        if in_env || global {
            return unchanged(format!(
                "{name} is already allowed in {env} ({family}); nothing was changed"
            ));
        }
    } else if !in_env && !global {
        return unchanged(match family {
            Some(f) => format!(
                "{name} is not allowed in {env}: exec refuses it already ({f}); nothing was changed"
            ),
            None => format!(
                "{name} is not allowed in {env}, and no family refuses it: exec passes it whatever exec_allow says; nothing was changed"
            ),
        });
    }
    let mut details = serde_json::json!({
        "env": env,
        "name": name,
        "family": family.map(|f| f.pattern),
    });
    // A name allowed manifest-wide (the form before ADR 0016) stays
    // allowed in the other environments when one of them drops it.
    let others: Vec<String> = if remove && global {
        state
            .manifest()
            .environments
            .keys()
            .filter(|e| *e != env)
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    if remove && global {
        details["was_manifest_wide"] = serde_json::Value::Bool(true);
        details["still_allowed_in"] = serde_json::json!(others);
    }
    let action = if remove {
        "exec-allow-remove"
    } else {
        "exec-allow"
    };
    let (mut manifest, audit_change) = next_manifest(&state, actor, &admin, action, details)?;
    if remove && global {
        manifest.exec_allow.retain(|n| n != name);
        for other in &others {
            let e = manifest
                .environments
                .get_mut(other)
                .expect("listed from this manifest");
            if !e.exec_allow.iter().any(|n| n == name) {
                e.exec_allow.push(name.to_string());
                e.exec_allow.sort();
            }
        }
    }
    let e = manifest.environments.get_mut(env).expect("checked above");
    if remove {
        e.exec_allow.retain(|n| n != name);
    } else {
        e.exec_allow.push(name.to_string());
        e.exec_allow.sort();
    }
    let counter = manifest.counter;
    let msg = format!("byreis: {action} {env} {name} (counter {counter})");
    let landed = land_state(
        ctx,
        &mut state,
        actor,
        &admin,
        manifest,
        vec![audit_change],
        &msg,
    )?;
    Ok(ExecAllowed::Changed(landed))
}
