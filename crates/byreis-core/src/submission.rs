//! Proposals by members who are not admins (ADR 0014). A member cannot
//! sign manifests, so `set`, `unset` and `edit` by one write a **draft**
//! instead: one age file per change, encrypted to the admins who read the
//! environment and to no one else, committed on the member's local branch
//! `byreis/draft/NAME` (parent: the pinned commit). The working tree, the
//! project's branch and the registry do not move. `byreis submit` turns
//! the draft into `byreis/submit/NAME-HASH` and pushes it when the project
//! has an `origin`.
//!
//! `byreis approve byreis/submit/…` (admin) checks the branch adds only
//! that member's proposal files, decrypts each with the approver's own
//! identity, checks each was encrypted only to current admins who read
//! its environment, refuses a change to a value that moved since the
//! member saw it, shows the name-level change, and then makes the change
//! **itself**: the values are re-encrypted to the environment's current
//! readers with a fresh file key, through the same signed, counted,
//! audited write as `set` (ADR 0010, ADR 0012 when more admins are needed).
//! Nothing of the submission's files is ever served by `get` or `exec`:
//! they are not in any manifest.

use crate::diag::Refusal;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::agefile;
use crate::documents::Admin;
use crate::git::{Change, Oid};
use crate::keys::AgeRecipient;
use crate::names::{self, Kind};
use crate::secret::{SecretBytes, SecretValue};
use crate::signed::sha256_hex;
use crate::store::{self, Actor, EnvChange, Landed, StoreError};
use crate::verify::{Context, State};
use crate::yaml::{self, Secrets};

/// Local branch of a member's draft: `byreis/draft/NAME`.
pub const DRAFT_PREFIX: &str = "byreis/draft/";
/// Submitted proposals: `byreis/submit/NAME-HASH`.
pub const BRANCH_PREFIX: &str = "byreis/submit/";
/// Where proposal files live on those branches: `DIR/NAME/NNN-ENV.age`.
pub const DIR: &str = ".byreis/proposals";
/// The `format` line of a proposal file's plaintext.
const FORMAT: &str = "byreis-submission/1";
/// Changes one draft may hold.
const MAX_CHANGES: usize = 999;
/// `was` of a name that did not exist when the member made the change.
const ABSENT: &str = "absent";

fn refuse<T>(code: Refusal, msg: impl Into<String>) -> Result<T, StoreError> {
    Err(StoreError::Refused(code, msg.into()))
}

/// One change a member proposes to one environment.
pub struct DraftChange {
    pub env: String,
    /// Names set to new values.
    pub set: Secrets,
    /// Names removed.
    pub unset: BTreeSet<String>,
    /// The values the member saw before (`sha256:HEX`, or `absent`), for
    /// each name they could read; an approver refuses a change to a value
    /// that moved since.
    pub was: BTreeMap<String, String>,
}

impl DraftChange {
    /// A change computed from what the member read (`before`) and wants
    /// (`after`).
    pub fn between(env: &str, before: &Secrets, after: &Secrets) -> DraftChange {
        let mut c = DraftChange {
            env: env.to_string(),
            set: Secrets::new(),
            unset: BTreeSet::new(),
            was: BTreeMap::new(),
        };
        for (k, v) in after {
            if before.get(k) != Some(v) {
                c.set.insert(k.clone(), v.clone());
                c.was.insert(k.clone(), fingerprint(before.get(k)));
            }
        }
        for k in before.keys() {
            if !after.contains_key(k) {
                c.unset.insert(k.clone());
                c.was.insert(k.clone(), fingerprint(before.get(k)));
            }
        }
        c
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.unset.is_empty()
    }
}

/// `sha256:HEX` of a value, or `absent`.
pub fn fingerprint(v: Option<&SecretValue>) -> String {
    match v {
        Some(v) => format!("sha256:{}", sha256_hex(v.expose().as_bytes())),
        None => ABSENT.to_string(),
    }
}

/// The header of a proposal file's plaintext: everything but the values.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Header {
    format: String,
    project: String,
    author: String,
    environment: String,
    base_counter: u64,
    roster_version: u64,
    /// Member names of the admins the file was encrypted to.
    encrypted_to: Vec<String>,
    created: String,
    #[serde(default)]
    unset: BTreeSet<String>,
    #[serde(default)]
    was: BTreeMap<String, String>,
}

/// `.byreis/proposals/NAME/seal.yaml`, added by `submit`: which files the
/// submission holds, in order, by the SHA-256 of their bytes, and per
/// admin a proof that the author made exactly this list ([`seal_proof`]).
/// Nothing else says who wrote a submission: the branch name and the
/// headers are claims anyone who can push can make.
const SEAL: &str = "seal.yaml";
const SEAL_FORMAT: &str = "byreis-submission-seal/1";

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Seal {
    format: String,
    project: String,
    author: String,
    /// `NNN-ENV.age sha256:HEX`, in order.
    files: Vec<String>,
    /// Per admin (member name): base64 HMAC-SHA-256 of the seal without
    /// its proofs, keyed from the static X25519 agreement of the author's
    /// identity and that admin's recipient, which only those two can
    /// compute. Absent for admins with an ssh-ed25519 key (and none at all
    /// from an author with one).
    #[serde(default)]
    proof: BTreeMap<String, String>,
}

fn seal_line(file: &str, sha256: &str) -> String {
    format!("{file} sha256:{sha256}")
}

/// The proof of `seal` (without its proofs) for one admin, from `shared`,
/// the X25519 agreement of the author and that admin, bound to both keys.
fn seal_proof(
    shared: &[u8; 32],
    author: &AgeRecipient,
    admin: &AgeRecipient,
    seal: &Seal,
) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    use sha2::Digest as _;
    let mut kdf = sha2::Sha256::new();
    kdf.update(b"byreis-submission-seal/1\0");
    kdf.update(shared);
    kdf.update(author.bytes());
    kdf.update(admin.bytes());
    let key = Zeroizing::new(<[u8; 32]>::from(kdf.finalize()));
    let mut unproved = seal.clone();
    unproved.proof.clear();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_slice())
        .expect("HMAC takes any key length");
    mac.update(&crate::documents::to_yaml(&unproved));
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `seal` proves to `me` (an admin, by member name, holding
/// `identity`) that `author` made exactly `files` (name and SHA-256, in
/// order) for `project`.
fn seal_proves(
    seal: &Seal,
    project: &str,
    author: (&str, &AgeRecipient),
    files: &[String],
    me: &str,
    identity: &crate::keys::AgeIdentity,
) -> bool {
    if seal.format != SEAL_FORMAT
        || seal.project != project
        || seal.author != author.0
        || seal.files != files
    {
        return false;
    }
    let (Some(given), Some(shared)) = (seal.proof.get(me), identity.x25519_agree(author.1)) else {
        return false;
    };
    let want = seal_proof(&shared, author.1, &identity.recipient(), seal);
    crate::secret::ct_eq(given.as_bytes(), want.as_bytes())
}

/// Between the header document and the values document.
const SEPARATOR: &str = "\n---\n";

/// The plaintext, in one zeroizing buffer: the header as a YAML document,
/// `---`, then the new values as a document exactly like a secrets file's
/// plaintext (so values are read by the same zeroizing parser,
/// [`yaml::parse_secrets`], and never pass through serde).
fn emit(header: &Header, set: &Secrets) -> Zeroizing<Vec<u8>> {
    let head = serde_yaml::to_string(header).expect("a proposal header serializes");
    let values = yaml::emit_secrets(set);
    let mut out = Zeroizing::new(Vec::with_capacity(head.len() + values.len() + 8));
    out.extend_from_slice(head.trim_end_matches('\n').as_bytes());
    out.extend_from_slice(SEPARATOR.as_bytes());
    out.extend_from_slice(values.as_bytes());
    out
}

/// Parses a proposal plaintext: the header strictly (ADR 0006 rules, no
/// unknown fields), the values as a secrets document.
fn parse(plaintext: &[u8]) -> Result<(Header, Secrets), String> {
    let text = std::str::from_utf8(plaintext).map_err(|_| "not UTF-8".to_string())?;
    let (head, values) = text
        .split_once(SEPARATOR)
        .ok_or_else(|| "no `---` line between the header and the values".to_string())?;
    let header: Header = yaml::from_untrusted(head).map_err(|e| e.to_string())?;
    let set = yaml::parse_secrets(values).map_err(|e| e.to_string())?;
    if header.format != FORMAT {
        return Err(format!(
            "format {} is not {FORMAT}",
            names::quoted(&header.format)
        ));
    }
    for k in header.unset.iter().chain(header.was.keys()) {
        names::check(Kind::SecretKey, k).map_err(|e| e.to_string())?;
    }
    if set.keys().any(|k| header.unset.contains(k)) {
        return Err("a name is both set and removed".into());
    }
    if header.was.values().any(|w| !is_was(w)) {
        return Err("a `was` entry is neither sha256:HEX nor absent".into());
    }
    Ok((header, set))
}

fn is_was(w: &str) -> bool {
    w == ABSENT
        || w.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

/// The actor's member name in the verified manifest, found by age key.
pub fn member_name(state: &State, actor: &Actor) -> Option<String> {
    let me = actor.identity.recipient();
    state
        .recipients()
        .iter()
        .find(|(_, r)| **r == me)
        .map(|(n, _)| n.clone())
}

/// The pinned registry location, when `actor` is not an admin in the
/// newest roster of this machine's copy of it (its chain verified from the
/// pinned anchor, but possibly behind): a write by such a member fetches
/// the registry before it verifies everything. `None` for an admin, or
/// when the copy cannot be read (verification then says why).
pub fn registry_to_refresh(ctx: &Context, actor: &Actor) -> Option<String> {
    let project = crate::verify::Project::open(&ctx.dir).ok()?;
    let pin = crate::verify::pin_for(ctx, &project).ok()?.pin;
    let reg = crate::verify::open_registry(&ctx.home, &pin.registry).ok()?;
    let chain = reg.roster_chain(&pin.anchor).ok()?;
    actor
        .admin_in(chain.latest())
        .is_none()
        .then_some(pin.registry)
}

/// The readers of `env` who are admins of the newest roster (a reader
/// counts when an admin's age recipient is that member's key): the only
/// parties a proposal for `env` is encrypted to.
fn admin_readers(state: &State, env: &str) -> Vec<(String, AgeRecipient)> {
    let admins: Vec<AgeRecipient> = state
        .roster()
        .latest()
        .admins
        .iter()
        .filter_map(|a: &Admin| AgeRecipient::parse(&a.age_recipient).ok())
        .collect();
    let Some(e) = state.manifest().environments.get(env) else {
        return Vec::new();
    };
    e.readers
        .iter()
        .filter_map(|n| state.recipients().get(n).map(|r| (n.clone(), r.clone())))
        .filter(|(_, r)| admins.contains(r))
        .collect()
}

/// What `set`/`unset`/`edit`/`import` by a member who is not an admin
/// did.
pub struct Drafted {
    pub branch: String,
    /// Per environment changed: the admins its file is encrypted to.
    pub envs: Vec<(String, Vec<String>)>,
    /// Changes in the draft now.
    pub changes: usize,
}

/// Adds `changes` (one file per environment) to the actor's draft in one
/// commit, or nothing when any of them is refused. `state` must be freshly
/// verified after fetching the registry (the caller's job), so a removed
/// admin is never a recipient.
pub fn add_to_draft(
    state: &State,
    actor: &Actor,
    changes: Vec<DraftChange>,
) -> Result<Drafted, StoreError> {
    let Some(author) = member_name(state, actor) else {
        return refuse(Refusal::NotAMember, format!(
            "your key {} is not a member of project {}; ask for access with `byreis request-access` (nothing was changed)",
            actor.identity.recipient().fingerprint(),
            state.manifest().project
        ));
    };
    let changes: Vec<DraftChange> = changes.into_iter().filter(|c| !c.is_empty()).collect();
    if changes.is_empty() {
        return refuse(Refusal::NothingToDo, "nothing to change");
    }
    let repo = &state.project().repo;
    let branch = format!("{DRAFT_PREFIX}{author}");
    let old_tip = repo.local_branch(&branch)?;
    let parent = match old_tip {
        Some(t) => t,
        None => Oid::from_str(&state.record().project_commit).map_err(crate::git::GitError::Git)?,
    };
    let dir = format!("{DIR}/{author}");
    let existing = repo.list_dir(&parent.to_string(), &dir)?.len();
    if existing + changes.len() > MAX_CHANGES {
        return refuse(
            Refusal::DraftFull,
            format!(
            "your draft holds {existing} changes; submit it (`byreis submit`) before making more"
        ),
        );
    }
    // Every change is checked and encrypted before anything is written.
    let mut files = Vec::with_capacity(changes.len());
    let mut envs = Vec::with_capacity(changes.len());
    for (i, change) in changes.into_iter().enumerate() {
        let env = change.env.clone();
        if !state.manifest().environments.contains_key(&env) {
            return refuse(Refusal::UnknownEnvironment, format!(
                "no environment {env} in project {}; only an admin creates environments (nothing was changed)",
                state.manifest().project
            ));
        }
        let to = admin_readers(state, &env);
        if to.is_empty() {
            return refuse(Refusal::NoAdminReader, format!(
                "no admin reads {env}, so no admin could check or approve a change to it; ask an admin (nothing was changed)"
            ));
        }
        let header = Header {
            format: FORMAT.into(),
            project: state.manifest().project.clone(),
            author: author.clone(),
            environment: env.clone(),
            base_counter: state.manifest().counter,
            roster_version: state.roster().latest().version,
            encrypted_to: to.iter().map(|(n, _)| n.clone()).collect(),
            created: store::now(),
            unset: change.unset,
            was: change.was,
        };
        let plaintext = SecretBytes::new(emit(&header, &change.set));
        let recipients: Vec<AgeRecipient> = to.iter().map(|(_, r)| r.clone()).collect();
        let file = agefile::encrypt_plaintext(&plaintext, &recipients)?;
        files.push(Change {
            path: format!("{dir}/{:03}-{env}.age", existing + i + 1),
            content: Some(file.into()),
        });
        envs.push((env, header.encrypted_to));
    }
    let email = actor.email();
    let message = format!(
        "byreis: proposed change to {} by {author} (draft)\n\nEach file is encrypted to the admins who read its environment.",
        envs.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>().join(", ")
    );
    let commit = repo.create_signed_commit(
        Some(parent),
        &files,
        &message,
        &actor.signer,
        (&author, &email),
    )?;
    match old_tip {
        Some(old) => repo.move_named_branch(&branch, old, commit)?,
        None => repo.create_branch(&branch, commit)?,
    }
    Ok(Drafted {
        branch,
        changes: existing + files.len(),
        envs,
    })
}

/// What `submit` did.
#[derive(Debug, Serialize)]
pub struct Submitted {
    pub branch: String,
    pub changes: usize,
    pub pushed: bool,
    /// On a project hosted on GitHub: the pull request opened, or why not
    /// (filled by the CLI from `pull`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    /// The pull request to open for the pushed branch.
    #[serde(skip)]
    pub pull: Option<crate::store::PullDraft>,
}

/// Turns the actor's draft into `byreis/submit/NAME-HASH` (pushed when the
/// project has an `origin`) and removes the draft.
pub fn submit(state: &State, actor: &Actor) -> Result<Submitted, StoreError> {
    let Draft {
        author,
        branch: draft,
        tip,
        changes,
    } = draft_of(state, actor)?;
    let repo = &state.project().repo;
    let tip = seal_draft(state, actor, &author, tip)?;
    let branch = format!("{BRANCH_PREFIX}{author}-{}", &tip.to_string()[..8]);
    if repo.local_branch(&branch)? != Some(tip) {
        repo.create_branch(&branch, tip)?;
    }
    // The draft is done once its branch has its final name: later changes
    // start a new draft, whatever happens to the push.
    repo.delete_branch(&draft)?;
    let mut pushed = false;
    if repo.has_origin() {
        if let Some(dir) = repo.workdir() {
            crate::transport::push_ref(dir, &format!("refs/heads/{branch}")).map_err(|e| {
                StoreError::Refused(Refusal::PushFailed, format!(
                    "your submission is branch {branch} in this clone, but pushing it failed: {e}. Push it with `git push origin {branch}` (your draft is closed; new changes start a new one)"
                ))
            })?;
            pushed = true;
        }
    }
    let pull = pushed
        .then(|| {
            crate::store::PullDraft::new(
                repo,
                &branch,
                format!("byreis: proposal by {author} ({changes} change(s))"),
                format!(
                    "A change to secrets proposed by {author} with `byreis submit` ({changes} change(s)). \
                     Its files are encrypted to the admins who read the environments it changes; \
                     nobody else can read them.\n\nAn admin who reads those environments checks and \
                     applies it with `byreis approve` and this pull request's number: byreis \
                     re-encrypts the values to the current readers and signs the change itself. \
                     Do not merge this pull request; byreis closes it once the change has landed."
                ),
            )
        })
        .flatten();
    Ok(Submitted {
        branch,
        changes,
        pushed,
        pull_request: None,
        pull,
    })
}

/// Adds the seal ([`Seal`]) on top of the draft at `tip`: the files in
/// order with their hashes, and a proof for every admin reading one of
/// their environments whose key allows one. Returns the new tip (the old
/// one when no proof can be made: an ssh-ed25519 author).
fn seal_draft(state: &State, actor: &Actor, author: &str, tip: Oid) -> Result<Oid, StoreError> {
    let repo = &state.project().repo;
    let dir = format!("{DIR}/{author}");
    let tip_s = tip.to_string();
    let mut names: Vec<String> = repo
        .list_dir(&tip_s, &dir)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n != SEAL)
        .collect();
    names.sort();
    let mut seal = Seal {
        format: SEAL_FORMAT.into(),
        project: state.manifest().project.clone(),
        author: author.to_string(),
        files: Vec::with_capacity(names.len()),
        proof: BTreeMap::new(),
    };
    let mut admins: BTreeMap<String, AgeRecipient> = BTreeMap::new();
    for n in &names {
        let bytes = repo
            .read_file(&tip_s, &format!("{dir}/{n}"))?
            .unwrap_or_default();
        seal.files.push(seal_line(n, &sha256_hex(&bytes)));
        if let Some(env) = n
            .strip_suffix(".age")
            .and_then(|f| f.split_once('-'))
            .map(|(_, e)| e)
        {
            admins.extend(admin_readers(state, env));
        }
    }
    let me = actor.identity.recipient();
    for (name, key) in &admins {
        if let Some(shared) = actor.identity.x25519_agree(key) {
            let proof = seal_proof(&shared, &me, key, &seal);
            seal.proof.insert(name.clone(), proof);
        }
    }
    if seal.proof.is_empty() {
        return Ok(tip);
    }
    let email = actor.email();
    let change = Change {
        path: format!("{dir}/{SEAL}"),
        content: Some(crate::documents::to_yaml(&seal).into()),
    };
    Ok(repo.create_signed_commit(
        Some(tip),
        &[change],
        &format!(
            "byreis: seal of {author}'s submission ({} file(s))",
            seal.files.len()
        ),
        &actor.signer,
        (author, &email),
    )?)
}

/// Drops the actor's draft; returns how many changes it held.
pub fn discard(state: &State, actor: &Actor) -> Result<usize, StoreError> {
    let draft = draft_of(state, actor)?;
    state.project().repo.delete_branch(&draft.branch)?;
    Ok(draft.changes)
}

/// A member's draft: its author, branch, tip and number of changes.
struct Draft {
    author: String,
    branch: String,
    tip: Oid,
    changes: usize,
}

fn draft_of(state: &State, actor: &Actor) -> Result<Draft, StoreError> {
    let Some(author) = member_name(state, actor) else {
        return refuse(
            Refusal::NotAMember,
            format!(
                "your key is not a member of project {}; there is nothing of yours to submit",
                state.manifest().project
            ),
        );
    };
    let draft = format!("{DRAFT_PREFIX}{author}");
    let repo = &state.project().repo;
    let Some(tip) = repo.local_branch(&draft)? else {
        return refuse(Refusal::NothingToDo, format!(
            "you have no draft ({draft} does not exist); `byreis set`, `unset` or `edit` as a member who is not an admin makes one"
        ));
    };
    let changes = repo
        .list_dir(&tip.to_string(), &format!("{DIR}/{author}"))?
        .len();
    Ok(Draft {
        author,
        branch: draft,
        tip,
        changes,
    })
}

/// A submission checked by an approving admin.
pub struct Review {
    pub branch: String,
    /// Who the submission says wrote it.
    pub author: String,
    /// Every file carries a valid author proof for the approver: the holder
    /// of `author`'s identity wrote it. When false `author` is only a claim
    /// (someone else, or a member or admin with an ssh-ed25519 key).
    pub author_proved: bool,
    /// Changes in the submission.
    pub changes: usize,
    /// Counters the member's changes were made at.
    pub base_counters: BTreeSet<u64>,
    pub envs: Vec<crate::diff::EnvDiff>,
    /// Environments where the member could not read the values they
    /// replaced (write-only proposals): applied on top of the current ones.
    pub blind: Vec<String>,
    /// The counter at which this exact submission was applied, when the
    /// audit log says it was (an approval killed before it removed the
    /// branch leaves it).
    pub applied_at: Option<u64>,
    /// SHA-256 of each proposal file, recorded in the audit entry so the
    /// same file is never applied twice.
    file_hashes: Vec<String>,
    /// The new secrets per environment, ready to encrypt.
    new: Vec<(String, Secrets)>,
    tip: Oid,
}

impl Review {
    /// The commit reviewed (the branch's tip).
    pub fn tip(&self) -> String {
        self.tip.to_string()
    }

    /// Whether applying it changes nothing (it was applied already, or
    /// every value it proposes is current).
    pub fn is_noop(&self) -> bool {
        self.applied_at.is_some() || self.new.is_empty()
    }
}

/// The counter of the audit entry that applied a proposal file with
/// SHA-256 `hash` (the signed audit log lists every applied file).
fn file_applied_at(state: &State, hash: &str) -> Option<u64> {
    state.audit().iter().rev().find_map(|v| {
        (v.entry.action == "approve-submission"
            && v.entry.details.value()["submission_files"]
                .as_array()
                .is_some_and(|a| a.iter().any(|h| h.as_str() == Some(hash))))
        .then_some(v.entry.counter_to)
    })
}

/// The counter of the audit entry that applied submission commit `tip`.
fn applied_at(state: &State, tip: &str) -> Option<u64> {
    state.audit().iter().rev().find_map(|v| {
        (v.entry.action == "approve-submission"
            && v.entry.details.value().get("submission_commit")
                == Some(&serde_json::Value::String(tip.to_string())))
        .then_some(v.entry.counter_to)
    })
}

/// Fetches (when the project has an `origin`) and checks submission
/// `reference`: it adds only its author's proposal files to a commit of
/// this project's history; each decrypts with the approver's identity,
/// parses strictly, is for this project, this author and the
/// environment its name says; it was encrypted to as many parties as it
/// names, each of them a current admin who reads that environment; no
/// value it changes moved since the member saw it.
pub fn review(
    state: &State,
    actor: &Actor,
    reference: &str,
    show_values: bool,
) -> Result<Review, StoreError> {
    let repo = &state.project().repo;
    let name = crate::transport::short_branch(reference);
    let Some(rest) = name.strip_prefix(BRANCH_PREFIX) else {
        return refuse(
            Refusal::UnknownReference,
            format!(
                "{} is not a submission branch (they are named {BRANCH_PREFIX}NAME-HASH)",
                names::quoted(reference)
            ),
        );
    };
    let author = match rest.rsplit_once('-') {
        Some((a, h))
            if names::check(Kind::Member, a).is_ok()
                && h.len() == 8
                && h.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            a.to_string()
        }
        _ => {
            return refuse(
                Refusal::UnknownReference,
                format!(
                    "{} is not a submission branch (they are named {BRANCH_PREFIX}NAME-HASH)",
                    names::quoted(reference)
                ),
            )
        }
    };
    let fetch_note = crate::transport::fetch_branches(repo, repo.workdir(), BRANCH_PREFIX);
    let Some(tip) = repo.branch_commit(name)? else {
        return refuse(
            Refusal::UnknownReference,
            format!("no submission branch {name}{fetch_note}"),
        );
    };
    let bad = |m: String| {
        StoreError::Refused(
            Refusal::ProposalInvalid,
            format!("submission {name}: {m}; refused"),
        )
    };
    // The author must be a member now; what they may read comes from the
    // manifest, never from the proposal.
    let Some(author_key) = state.recipients().get(&author).cloned() else {
        return Err(bad(format!(
            "{} is not a member of project {}",
            names::quoted(&author),
            state.manifest().project
        )));
    };
    let tip_s = tip.to_string();
    if let Some(counter) = applied_at(state, &tip_s) {
        return Ok(Review {
            branch: name.to_string(),
            author,
            author_proved: false,
            changes: 0,
            base_counters: BTreeSet::new(),
            envs: Vec::new(),
            blind: Vec::new(),
            applied_at: Some(counter),
            file_hashes: Vec::new(),
            new: Vec::new(),
            tip,
        });
    }
    let pinned = &state.record().project_commit;
    let Some(base) = repo.merge_base(&tip_s, pinned)? else {
        return Err(bad(
            "it shares no history with this project's signed state".into()
        ));
    };
    // Exactly the author's proposal files are added; nothing else changes.
    let dir = format!("{DIR}/{author}");
    let changed = repo.changed_paths(&base, &tip_s)?;
    let outside: Vec<String> = changed
        .iter()
        .filter(|p| {
            p.strip_prefix(&format!("{dir}/"))
                .is_none_or(|f| f.contains('/'))
        })
        .map(|p| names::escape(p))
        .collect();
    if !outside.is_empty() {
        return Err(bad(format!(
            "it changes files outside {dir}/: {}",
            outside.join(", ")
        )));
    }
    if !repo.list_dir(&base, &dir)?.is_empty() {
        return Err(bad(format!(
            "{dir}/ already exists in the history it is based on"
        )));
    }
    let mut files = repo.list_dir(&tip_s, &dir)?;
    let seal = match files.iter().position(|(f, _)| f == SEAL) {
        Some(i) => {
            let (_, kind) = files.remove(i);
            let bytes = repo
                .read_file(&tip_s, &format!("{dir}/{SEAL}"))?
                .unwrap_or_default();
            (kind == crate::git::EntryKind::Blob && bytes.len() <= 64 << 10)
                .then(|| {
                    std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|t| yaml::from_untrusted::<Seal>(t).ok())
                })
                .flatten()
        }
        None => None,
    };
    if files.is_empty() {
        return Err(bad("it holds no proposal files".into()));
    }
    if files.len() > MAX_CHANGES {
        return Err(bad(format!("it holds more than {MAX_CHANGES} files")));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let me = actor.identity.recipient();
    let latest = state.roster().latest();
    let mut base_counters = BTreeSet::new();
    let mut blind = BTreeSet::new();
    let mut sealed = Vec::with_capacity(files.len());
    let mut current: BTreeMap<String, Secrets> = BTreeMap::new();
    let mut proposed: BTreeMap<String, Secrets> = BTreeMap::new();
    let mut file_hashes = Vec::with_capacity(files.len());
    for (i, (file, kind)) in files.iter().enumerate() {
        let shown = names::escape(file);
        let env = file
            .strip_suffix(".age")
            .and_then(|f| f.split_once('-'))
            .filter(|(n, _)| *n == format!("{:03}", i + 1))
            .map(|(_, e)| e.to_string())
            .filter(|e| names::check(Kind::Environment, e).is_ok())
            .ok_or_else(|| {
                bad(format!(
                    "{dir}/{shown} is not named NNN-ENV.age in sequence from 001"
                ))
            })?;
        if *kind != crate::git::EntryKind::Blob {
            return Err(bad(format!("{dir}/{shown} is not a regular file")));
        }
        let bytes = repo
            .read_file(&tip_s, &format!("{dir}/{file}"))?
            .unwrap_or_default();
        if bytes.len() > agefile::MAX_FILE_BYTES {
            return Err(bad(format!("{dir}/{shown} is too large")));
        }
        let count = agefile::count_stanzas(&bytes).map_err(|e| bad(format!("{shown}: {e}")))?;
        let plaintext = agefile::decrypt_bytes(&bytes, &actor.identity, None).map_err(|e| {
            bad(format!(
                "{shown} does not decrypt with your identity ({e}); proposals are encrypted to the admins who read the environment"
            ))
        })?;
        let (h, set) = parse(&plaintext).map_err(|e| bad(format!("{shown}: {e}")))?;
        drop(plaintext);

        // The same file applied before, under any branch name: a replay.
        let file_hash = sha256_hex(&bytes);
        if let Some(c) = file_applied_at(state, &file_hash) {
            return Err(bad(format!(
                "{shown} was already applied at counter {c} (a replay of an earlier submission)"
            )));
        }
        sealed.push(seal_line(file, &file_hash));
        file_hashes.push(file_hash);
        if h.project != state.manifest().project || h.author != author || h.environment != env {
            return Err(bad(format!(
                "{shown} is for project {}, author {}, environment {}: not this project, its branch's author and its file name",
                names::quoted(&h.project),
                names::quoted(&h.author),
                names::quoted(&h.environment)
            )));
        }
        if !state.manifest().environments.contains_key(&env) {
            return Err(bad(format!("environment {env} no longer exists")));
        }
        // Who could read it: as many stanzas as names, each a current
        // admin reading the environment. X25519 stanzas are anonymous, so
        // the number is what can be checked; a stanza more means someone
        // else may know these values.
        let allowed: Vec<String> = admin_readers(state, &env)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let unique: BTreeSet<&String> = h.encrypted_to.iter().collect();
        if count.real() != h.encrypted_to.len()
            || unique.len() != h.encrypted_to.len()
            || count.grease > 1
        {
            return Err(bad(format!(
                "{shown} has {} recipient stanzas but names {} admin(s): someone else may know its values; ask {author} for new values, proposed again",
                count.real(),
                h.encrypted_to.len()
            )));
        }
        if let Some(n) = h.encrypted_to.iter().find(|n| !allowed.contains(n)) {
            return Err(bad(format!(
                "{shown} was encrypted to {}, who is not now an admin reading {env} (made under roster version {}, now {}): they may know its values; ask {author} for new values, proposed again",
                names::quoted(n),
                h.roster_version,
                latest.version
            )));
        }
        base_counters.insert(h.base_counter);
        if !current.contains_key(&env) {
            if !state.readers(&env).contains(&me) {
                return Err(bad(format!(
                    "you do not read {env}, so you cannot apply a change to it; an admin who reads it approves it"
                )));
            }
            let cur = state.secrets(&env, &actor.identity)?;
            proposed.insert(env.clone(), cur.clone());
            current.insert(env.clone(), cur);
        }
        let cur = &current[&env];
        // A member who does not read the environment (by the manifest)
        // can only add or replace values there, blind.
        let author_reads = state.readers(&env).contains(&author_key);
        if !author_reads && (!h.unset.is_empty() || !h.was.is_empty()) {
            return Err(bad(format!(
                "{author} does not read {env}, so can only set values there, not remove or claim to have seen any"
            )));
        }
        if !author_reads {
            blind.insert(env.clone());
        }

        for (k, w) in &h.was {
            if fingerprint(cur.get(k)) != *w {
                return Err(bad(format!(
                    "{k} in {env} changed since {author} proposed this (at counter {}, now {}); approving would overwrite that change. Ask {author} to propose again",
                    h.base_counter, state.manifest().counter
                )));
            }
        }
        let next = proposed.get_mut(&env).expect("inserted above");
        for k in &h.unset {
            next.remove(k);
        }
        next.extend(set);
    }
    // Nothing but the seal says who wrote the submission, and that these
    // are exactly its files, in this order.
    let proved = match (&seal, member_name(state, actor)) {
        (Some(seal), Some(me)) => seal_proves(
            seal,
            &state.manifest().project,
            (&author, &author_key),
            &sealed,
            &me,
            &actor.identity,
        ),
        _ => false,
    };
    let mut envs = Vec::new();
    let mut new = Vec::new();
    for (env, after) in proposed {
        let before = &current[&env];
        if *before == after {
            continue;
        }
        let mut d = crate::diff::env_diff(
            &env,
            Some(before),
            Some(&after),
            &state.manifest().exec_allow_for(&env),
            show_values,
        );
        if !proved {
            crate::diff::flag_unproved(&mut d, &author);
        } else if blind.contains(&env) {
            crate::diff::flag_blind(&mut d, &author);
        }
        envs.push(d);
        new.push((env, after));
    }
    Ok(Review {
        branch: name.to_string(),
        author,
        author_proved: proved,
        changes: files.len(),
        base_counters,
        envs,
        blind: blind.into_iter().collect(),
        applied_at: None,
        file_hashes,
        new,
        tip,
    })
}

/// Makes the reviewed change as the approver: values re-encrypted to each
/// environment's current readers, signed, counted, audited (naming the
/// submission and its author), then the submission branch removed.
pub fn approve(
    ctx: &Context,
    state: State,
    actor: &Actor,
    review: Review,
) -> Result<Landed, StoreError> {
    let repo_dir = state.project().repo.workdir().map(|p| p.to_path_buf());
    let has_origin = state.project().repo.has_origin();
    let changes: Vec<EnvChange> = review
        .new
        .into_iter()
        .map(|(env, secrets)| EnvChange {
            env,
            secrets,
            action: "approve-submission",
        })
        .collect();
    let extra = serde_json::json!({
        "submission": review.branch,
        "submission_commit": review.tip.to_string(),
        "submission_files": review.file_hashes,
        "submitted_by": review.author,
        "author_proved": review.author_proved,
    });
    let landed = store::commit_changes_with(
        ctx,
        state,
        actor,
        changes,
        "approve-submission",
        Some(extra),
    )?;
    remove_branch(&review.branch, repo_dir.as_deref(), has_origin);
    Ok(landed)
}

/// Deletes a submission branch here and on `origin` (best effort: the
/// change is made whatever happens to the branch; a failure is reported).
pub fn remove_branch(branch: &str, dir: Option<&std::path::Path>, has_origin: bool) {
    let Some(dir) = dir else { return };
    if let Err(e) = crate::git::Repo::open(dir).and_then(|r| r.delete_branch(branch)) {
        crate::notice::push(format!(
            "warning: branch {branch} could not be removed ({e}); `byreis doctor` names a stale lock if that is why; then run `byreis approve {branch}` again"
        ));
        return;
    }
    if has_origin {
        let _ = crate::transport::push_ref(dir, &format!(":refs/heads/{branch}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::yaml::secrets_of as secrets;

    #[test]
    fn a_proposal_plaintext_round_trips_exactly() {
        let before = secrets(&[("A", "1"), ("B", "2"), ("C", "3")]);
        let after = secrets(&[
            ("A", "1"),
            (
                "B",
                "two\nlines \"quoted\" \u{7f}\u{85}\u{feff}\u{0}\\ é 😀\n---\n",
            ),
            ("D", "&x *y !tag"),
        ]);
        let c = DraftChange::between("prod", &before, &after);
        assert_eq!(c.set.keys().collect::<Vec<_>>(), ["B", "D"]);
        assert_eq!(c.unset.iter().collect::<Vec<_>>(), ["C"]);
        assert_eq!(c.was["D"], ABSENT);
        assert!(is_was(&c.was["B"]));
        let header = Header {
            format: FORMAT.into(),
            project: "demo".into(),
            author: "bob".into(),
            environment: "prod".into(),
            base_counter: 4,
            roster_version: 1,
            encrypted_to: vec!["alice".into()],
            created: "2026-11-23T00:00:00Z".into(),
            unset: c.unset.clone(),
            was: c.was.clone(),
        };
        let (h, set) = parse(&emit(&header, &c.set)).expect("parses");
        assert!(set == c.set);
        assert_eq!(h.unset, c.unset);
        assert_eq!(h.was, c.was);
        let (_, set) = parse(&emit(&header, &Secrets::new())).expect("parses");
        assert!(set.is_empty());
    }

    #[test]
    fn malformed_plaintexts_are_refused() {
        let ok = "format: byreis-submission/1\nproject: demo\nauthor: bob\nenvironment: prod\nbase-counter: 1\nroster-version: 1\nencrypted-to:\n- alice\ncreated: x";
        assert!(parse(format!("{ok}\n---\nA: \"1\"\n").as_bytes()).is_ok());
        for bad in [
            format!("{ok}\nA: \"1\"\n"),
            format!("{ok}\n---\na-b: \"1\"\n"),
            format!("{ok}\n---\nA: \"1\"\nA: \"2\"\n"),
            format!("{ok}\nunset:\n- A\n---\nA: \"1\"\n"),
            format!("{ok}\nwas:\n  A: md5:00\n---\n{{}}\n"),
            format!("{ok}\nextra: 1\n---\n{{}}\n"),
            format!("{ok}\nset:\n  A: x\n---\n{{}}\n"),
            format!(
                "{}\n---\n{{}}\n",
                ok.replace("byreis-submission/1", "byreis-submission/2")
            ),
            format!("{ok}\n---\nA: &x \"1\"\nB: *x\n"),
            format!("{ok}\n---\nA: \"1\"\n---\nB: \"2\"\n"),
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn seals_bind_the_author_the_admin_and_the_files_in_order() {
        use crate::keys::AgeIdentity;
        let (author, admin, other) = (
            AgeIdentity::generate(),
            AgeIdentity::generate(),
            AgeIdentity::generate(),
        );
        let files = vec![
            seal_line("001-prod.age", &"a".repeat(64)),
            seal_line("002-prod.age", &"b".repeat(64)),
        ];
        let mut seal = Seal {
            format: SEAL_FORMAT.into(),
            project: "demo".into(),
            author: "dave".into(),
            files: files.clone(),
            proof: BTreeMap::new(),
        };
        let shared = author.x25519_agree(&admin.recipient()).expect("x25519");
        let proof = seal_proof(&shared, &author.recipient(), &admin.recipient(), &seal);
        seal.proof.insert("alice".into(), proof);
        let seal: Seal = crate::yaml::from_untrusted(
            std::str::from_utf8(&crate::documents::to_yaml(&seal)).unwrap(),
        )
        .expect("parses");
        let dave = author.recipient();
        let proves =
            |s: &Seal, project: &str, who: (&str, &AgeRecipient), files: &[String], me: &str| {
                seal_proves(s, project, who, files, me, &admin)
            };
        assert!(proves(&seal, "demo", ("dave", &dave), &files, "alice"));
        // Files reordered, dropped or added; another project, author name,
        // author key or admin name: no proof.
        let swapped = vec![files[1].clone(), files[0].clone()];
        assert!(!proves(&seal, "demo", ("dave", &dave), &swapped, "alice"));
        assert!(!proves(
            &seal,
            "demo",
            ("dave", &dave),
            &files[..1],
            "alice"
        ));
        assert!(!proves(&seal, "shop", ("dave", &dave), &files, "alice"));
        assert!(!proves(&seal, "demo", ("carol", &dave), &files, "alice"));
        assert!(!proves(
            &seal,
            "demo",
            ("dave", &other.recipient()),
            &files,
            "alice"
        ));
        assert!(!proves(&seal, "demo", ("dave", &dave), &files, "bob"));
        // Someone who is not the author cannot make one.
        let forged = other.x25519_agree(&admin.recipient()).expect("x25519");
        let mut f = seal.clone();
        f.proof.insert(
            "alice".into(),
            seal_proof(&forged, &dave, &admin.recipient(), &seal),
        );
        assert!(!proves(&f, "demo", ("dave", &dave), &files, "alice"));
    }
}
