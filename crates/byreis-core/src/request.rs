//! Access requests on a plain git registry (docs/request-access-runbook.md).
//!
//! A contributor writes a request file (public keys only) and hands it over
//! as a file (`--out`) or on a branch `byreis/request/<name>` of the
//! registry. An admin absorbs it with `rotate --from-request REF` after
//! typing the fingerprint the contributor sent over another channel, or
//! rejects it. The admin's decision is a file of its own in the registry,
//! signed in namespace `request@byreis.dev`, in an admin-signed commit: the
//! contributor's commit is never merged.

use crate::diag::Refusal;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::git::{Change, Oid, Repo};
use crate::keys::{self, AgeRecipient, SigningPub};
use crate::names::{self, Kind};
use crate::registry::Registry;
use crate::secret::ct_eq;
use crate::signed::sha256_hex;
use crate::sshsig::{self, Namespace};
use crate::store::StoreError;

pub use crate::request_doc::{
    decision_path, parse, request_path, verify_decision, Decision, RequestDoc, BRANCH_PREFIX,
    DECISION_FORMAT, MAX_REQUEST_BYTES, REQUEST_FORMAT,
};

fn refuse<T>(code: Refusal, msg: impl Into<String>) -> Result<T, StoreError> {
    Err(StoreError::Refused(code, msg.into()))
}

/// Where a request was read from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    /// A registry branch, at the commit that was read.
    Branch {
        name: String,
        commit: Oid,
    },
    /// A pull request on the GitHub registry (`owner/name`), at the head
    /// commit read.
    PullRequest {
        repo: String,
        number: u64,
        head_sha: String,
    },
}

/// A pull request of the GitHub registry as the edge read it: the core
/// validates it like any request (ADR 0020).
#[derive(Debug, Clone)]
pub struct PullRead {
    /// `owner/name`.
    pub repo: String,
    pub number: u64,
    pub open: bool,
    pub head_sha: String,
    /// The one file it changes, and its bytes.
    pub path: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "file {}", names::escape(&p.display().to_string())),
            Source::Branch { name, commit } => {
                write!(f, "registry branch {name} at {}", &commit.to_string()[..12])
            }
            Source::PullRequest {
                repo,
                number,
                head_sha,
            } => write!(
                f,
                "pull request #{number} of {repo} at {}",
                &head_sha[..12.min(head_sha.len())]
            ),
        }
    }
}

/// A request read and validated (nothing derived from its key is shown
/// before the admin typed the fingerprint: see [`confirm_fingerprint`]).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub doc: RequestDoc,
    key: AgeRecipient,
    pub sha256: String,
    pub source: Source,
}

impl Loaded {
    /// The key, for the rotation. Only after [`confirm_fingerprint`].
    pub fn key(&self) -> &AgeRecipient {
        &self.key
    }
}

/// The state of a request (the runbook's state machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Requested,
    Absorbed,
    Rejected,
    /// An admin decided on a later request for the same name.
    Superseded,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Requested => "requested",
            State::Absorbed => "absorbed",
            State::Rejected => "rejected",
            State::Superseded => "superseded",
        })
    }
}

/// Reads request `reference`: a file path, a request branch of the
/// registry (fetched from its `origin` first when it has one), or the pull
/// request of a GitHub registry the edge read for it (`pull`).
pub fn load(
    reg: &Registry,
    project: &str,
    reference: &str,
    pull: Option<PullRead>,
) -> Result<Loaded, StoreError> {
    // A member's name alone (`request show dave`) is their request branch,
    // unless a file of that name is there (issue 17).
    let short;
    let reference = if !reference.contains('/')
        && !reference.bytes().all(|b| b.is_ascii_digit())
        && names::check(Kind::Member, reference).is_ok()
        && std::fs::symlink_metadata(reference).is_err()
    {
        short = format!("{BRANCH_PREFIX}{reference}");
        short.as_str()
    } else {
        reference
    };
    let (bytes, source) = if let Some(name) = reference
        .strip_prefix("origin/")
        .unwrap_or(reference)
        .strip_prefix(BRANCH_PREFIX)
    {
        names::check(Kind::Member, name).map_err(StoreError::from)?;
        let branch = format!("{BRANCH_PREFIX}{name}");
        fetch_requests(reg);
        let Some(commit) = reg.repo.branch_commit(&branch)? else {
            return refuse(Refusal::UnknownReference, format!(
                "no request branch {branch} in the registry: withdrawn, or never pushed (state: withdrawn)"
            ));
        };
        // Exactly one commit on top of the registry's history, adding
        // exactly this request file.
        let tip = commit.to_string();
        let parent = reg.repo.parent_of(&tip)?.map(|p| p.to_string());
        let expected = request_path(project, name);
        match parent {
            Some(p)
                if reg.repo.contains(
                    Oid::from_str(&reg.head()).map_err(crate::git::GitError::Git)?,
                    &p,
                ) =>
            {
                let changed = reg.repo.changed_paths(&p, &tip)?;
                if changed != [expected.clone()] {
                    return refuse(
                        Refusal::BadRequest,
                        format!(
                        "request branch {branch} must change exactly {expected}; it changes: {}",
                        changed
                            .iter()
                            .map(|c| names::escape(c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    );
                }
            }
            _ => {
                return refuse(
                    Refusal::BadRequest,
                    format!(
                    "request branch {branch} must be one commit on top of the registry's history"
                ),
                )
            }
        }
        let bytes = reg.repo.read_file(&tip, &expected)?.ok_or_else(|| {
            StoreError::Refused(Refusal::BadRequest, format!("{branch} has no {expected}"))
        })?;
        (
            bytes,
            Source::Branch {
                name: branch,
                commit,
            },
        )
    } else if let Some(pr) = pull {
        let (repo, number) = (pr.repo, pr.number);
        if !pr.open {
            return refuse(Refusal::PullRequestUnusable, format!(
                "pull request #{number} is closed: withdrawn by its author, or already handled (state: withdrawn)"
            ));
        }
        let path = pr.path.clone();
        let bytes = pr.bytes;
        let (doc, _) = parse(&bytes).map_err(|e| {
            StoreError::Refused(Refusal::BadRequest, format!("pull request #{number}: {e}"))
        })?;
        if path != request_path(&doc.project, &doc.name) {
            return refuse(
                Refusal::BadRequest,
                format!(
                    "pull request #{number} adds {} but a request for {} must be {}",
                    names::escape(&path),
                    names::quoted(&doc.name),
                    request_path(&doc.project, &doc.name)
                ),
            );
        }
        (
            bytes,
            Source::PullRequest {
                repo,
                number,
                head_sha: pr.head_sha,
            },
        )
    } else if reference.bytes().all(|b| b.is_ascii_digit()) || reference.contains("/pull/") {
        return refuse(Refusal::NotOnGithub,
            "this registry is not on GitHub (or BYREIS_GITHUB_API_URL points elsewhere): use a request file or a request branch (byreis/request/NAME)",
        );
    } else {
        let path = PathBuf::from(reference);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| {
            StoreError::Refused(
                Refusal::IoFailed,
                format!("request {}: {e}", names::quoted(reference)),
            )
        })?;
        if !meta.is_file() || meta.len() > MAX_REQUEST_BYTES as u64 {
            return refuse(
                Refusal::BadRequest,
                format!(
                    "request {} is not a regular file of at most {MAX_REQUEST_BYTES} bytes",
                    names::quoted(reference)
                ),
            );
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            StoreError::Refused(
                Refusal::IoFailed,
                format!("{}: {e}", names::quoted(reference)),
            )
        })?;
        (bytes, Source::File(path))
    };
    let (doc, key) = parse(&bytes).map_err(|e| {
        StoreError::Refused(
            Refusal::BadRequest,
            format!("request {}: {e}", names::quoted(reference)),
        )
    })?;
    if doc.project != project {
        return refuse(
            Refusal::BadRequest,
            format!(
                "the request is for project {}, this is {project}",
                names::quoted(&doc.project)
            ),
        );
    }
    if let Source::Branch { name, .. } = &source {
        if name.strip_prefix(BRANCH_PREFIX) != Some(doc.name.as_str()) {
            return refuse(
                Refusal::BadRequest,
                format!(
                    "branch {name} holds a request for {}",
                    names::quoted(&doc.name)
                ),
            );
        }
    }
    Ok(Loaded {
        sha256: sha256_hex(&bytes),
        doc,
        key,
        source,
    })
}

/// Best effort: a registry with an `origin` gets its request branches
/// fetched (a stale copy still works for requests already fetched).
fn fetch_requests(reg: &Registry) {
    if reg.repo.has_origin() {
        let _ = crate::transport::fetch_refs(
            &reg.dir,
            "+refs/heads/byreis/request/*:refs/remotes/origin/byreis/request/*",
        );
    }
}

/// The decision recorded for `name`, if any (verified against the
/// registry's admin keys).
pub fn decision(
    reg: &Registry,
    project: &str,
    name: &str,
    admin_keys: &[SigningPub],
) -> Result<Option<Decision>, StoreError> {
    let path = decision_path(project, name);
    let head = reg.head();
    let Some(bytes) = reg.repo.read_file(&head, &path)? else {
        return Ok(None);
    };
    let sig = reg
        .repo
        .read_file(&head, &format!("{path}.sig"))?
        .unwrap_or_default();
    verify_decision(&bytes, &sig, admin_keys)
        .map(Some)
        .map_err(|e| {
            StoreError::Refused(Refusal::BadRequest, format!("{path} does not verify: {e}"))
        })
}

/// The state of `loaded` given the decision on record for its name.
pub fn state_of(loaded: &Loaded, decision: Option<&Decision>) -> State {
    match decision {
        None => State::Requested,
        Some(d) if d.request_sha256 == loaded.sha256 => match d.state.as_str() {
            "absorbed" => State::Absorbed,
            _ => State::Rejected,
        },
        // A decision on another request for this name: this one is older
        // (superseded) or newer (still requested).
        Some(d) if d.time.as_str() > loaded.doc.time.as_str() => State::Superseded,
        Some(_) => State::Requested,
    }
}

/// Refuses, clearly, any action on a request that is not `requested`.
pub fn require_requested(state: State, d: Option<&Decision>, what: &str) -> Result<(), StoreError> {
    match (state, d) {
        (State::Requested, _) => Ok(()),
        (State::Absorbed, Some(d)) => refuse(Refusal::RequestDecided, format!(
            "cannot {what}: this request was absorbed by {} at counter {} ({}); to take access away, `byreis rotate --remove {}`",
            d.by,
            d.counter.unwrap_or_default(),
            d.time,
            d.name
        )),
        (State::Rejected, Some(d)) => refuse(Refusal::RequestDecided, format!(
            "cannot {what}: this request was rejected by {} ({}){}; the contributor must make a new request",
            d.by,
            d.time,
            d.reason
                .as_deref()
                .map(|r| format!(": {}", names::escape(r)))
                .unwrap_or_default()
        )),
        (State::Superseded, _) => refuse(Refusal::RequestDecided, format!(
            "cannot {what}: this request was superseded (an admin decided on a later request for the same name)"
        )),
        (_, None) => refuse(Refusal::RequestDecided, format!("cannot {what}: state {state}")),
    }
}

/// Compares the fingerprint the admin typed with the one computed from the
/// key's bytes (never from the request file's text): normalised, constant
/// time.
pub fn confirm_fingerprint(loaded: &Loaded, typed: &str) -> Result<(), StoreError> {
    let computed = keys::normalise_fingerprint(&loaded.key.fingerprint());
    let typed = keys::normalise_fingerprint(typed);
    if typed.is_empty() || !ct_eq(typed.as_bytes(), computed.as_bytes()) {
        return refuse(Refusal::FingerprintMismatch,
            "the fingerprint you typed does not match the requested key: do not absorb this request; ask the contributor, over another channel, for the fingerprint `request-access` printed (nothing was changed)",
        );
    }
    Ok(())
}

/// Refuses a request whose text quotes its own key's fingerprint (a
/// hurried admin could copy it from the screen instead of typing what the
/// contributor sent over another channel).
pub fn refuse_quoted_fingerprint(loaded: &Loaded) -> Result<(), StoreError> {
    let fp = keys::normalise_fingerprint(&loaded.key.fingerprint());
    let d = &loaded.doc;
    let text = [
        d.name.as_str(),
        d.email.as_deref().unwrap_or(""),
        d.reason.as_deref().unwrap_or(""),
        d.time.as_str(),
    ]
    .map(keys::normalise_fingerprint)
    .concat();
    // Any 8 consecutive characters of the fingerprint (40 bits) is a quote.
    if (0..=fp.len() - 8).any(|i| text.contains(&fp[i..i + 8])) {
        return refuse(Refusal::BadRequest,
            "the request quotes part of its own key's fingerprint; a request must never carry it (the admin types what the contributor sent over another channel): refused, nothing was changed",
        );
    }
    Ok(())
}

/// Refuses when a request moved since it was read (`stale`). For a pull
/// request, `pull_now` is its state now as the edge read it (open, head);
/// without it a pull request cannot be shown fresh and is refused.
pub fn check_not_stale(
    reg: &Registry,
    loaded: &Loaded,
    pull_now: Option<(bool, String)>,
) -> Result<(), StoreError> {
    match &loaded.source {
        Source::Branch { name, commit } => {
            let now = reg.repo.branch_commit(name)?;
            if now != Some(*commit) {
                return refuse(Refusal::Stale, format!(
                    "request branch {name} changed after you confirmed it (stale): nothing was changed; run the command again and confirm the new request"
                ));
            }
        }
        Source::PullRequest {
            number, head_sha, ..
        } => {
            let Some((open, now)) = pull_now else {
                return refuse(Refusal::Stale, format!(
                    "pull request #{number} could not be read again to check it is unchanged: nothing was changed; run the command again"
                ));
            };
            if !open || now != *head_sha {
                return refuse(Refusal::Stale, format!(
                    "pull request #{number} changed after you confirmed it (stale: {}): nothing was changed; run the command again and confirm the new request",
                    if open { "new commits" } else { "closed" }
                ));
            }
        }
        Source::File(_) => {}
    }
    Ok(())
}

/// Writes `decision`, signed (`request@byreis.dev`), in a signed registry
/// commit of its own, and pushes the registry when it has a remote.
pub fn record_decision(
    reg: &Registry,
    home: &keys::Home,
    decision: &Decision,
    signer: &keys::Signer,
    author: (&str, &str),
) -> Result<(), StoreError> {
    let bytes = crate::documents::to_yaml(decision);
    let sig = sshsig::sign_armored(signer, Namespace::Request, &bytes)?;
    let path = decision_path(&decision.project, &decision.name);
    let changes = [
        Change {
            path: format!("{path}.sig"),
            content: Some(sig.into_bytes().into()),
        },
        Change {
            path,
            content: Some(bytes.into()),
        },
    ];
    let msg = format!(
        "byreis: request of {} for {} {}\n\nFingerprint {} confirmed by {}.",
        decision.name, decision.project, decision.state, decision.fingerprint, decision.by
    );
    reg.commit(&changes, &msg, signer, author)?;
    reg.push_if_remote(home)?;
    Ok(())
}

/// Every request branch of the registry for `project`: local branches and
/// `origin`'s, each name once (local first).
pub fn branches(reg: &Registry) -> Result<Vec<String>, StoreError> {
    fetch_requests(reg);
    let mut out: Vec<String> = Vec::new();
    for (name, _) in reg.repo.branches_with_prefix(BRANCH_PREFIX)? {
        out.push(name);
    }
    for (name, _) in reg
        .repo
        .remote_branches_with_prefix(&format!("origin/{BRANCH_PREFIX}"))?
    {
        let short = name.trim_start_matches("origin/").to_string();
        if !out.contains(&short) {
            out.push(short);
        }
    }
    out.sort();
    Ok(out)
}

/// Builds the request document for `request-access`.
pub fn new_request(
    project: &str,
    name: &str,
    email: Option<&str>,
    reason: Option<&str>,
    key: &AgeRecipient,
    signing_key: Option<&SigningPub>,
) -> Result<(RequestDoc, Vec<u8>), String> {
    let doc = RequestDoc {
        format: REQUEST_FORMAT.into(),
        project: project.into(),
        name: name.into(),
        email: email.map(str::to_string),
        age_recipient: key.as_str().to_string(),
        signing_key: signing_key.map(SigningPub::to_openssh),
        reason: reason.map(str::to_string),
        time: crate::store::now(),
    };
    let bytes = crate::documents::to_yaml(&doc);
    // What an admin will parse: refuse to send what they would refuse.
    parse(&bytes)?;
    Ok((doc, bytes))
}

/// Puts a request on branch `byreis/request/<name>` of the registry at
/// `dir` (one commit on its HEAD adding the request file), and pushes the
/// branch when the registry has an `origin`. Returns whether it pushed.
pub fn put_on_branch(
    dir: &Path,
    doc: &RequestDoc,
    bytes: &[u8],
    signer: &keys::Signer,
    author: (&str, &str),
) -> Result<bool, StoreError> {
    let repo = Repo::open(dir)?;
    let branch = format!("{BRANCH_PREFIX}{}", doc.name);
    let head = repo.head()?;
    let changes = [Change {
        path: request_path(&doc.project, &doc.name),
        content: Some(bytes.to_vec().into()),
    }];
    let msg = format!("byreis: access request of {} for {}", doc.name, doc.project);
    let commit = repo.create_signed_commit(head, &changes, &msg, signer, author)?;
    match repo.local_branch(&branch)? {
        Some(old) => repo.move_named_branch(&branch, old, commit)?,
        None => repo.create_branch(&branch, commit)?,
    }
    if repo.has_origin() {
        crate::transport::push_ref(dir, &format!("+refs/heads/{branch}"))?;
        return Ok(true);
    }
    Ok(false)
}

/// Something about a request an admin must know before being asked
/// anything: its name or key collides with who already has access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// `member-key-differs`, `member-same-key`, `key-of-member`,
    /// `admin-name` or `key-of-admin`.
    pub flag: &'static str,
    /// One sentence for the admin, names escaped.
    pub message: String,
    /// The member or admin it collides with.
    pub with: String,
    /// That member's or admin's age recipient and its fingerprint, from
    /// the verified manifest or roster, when the request's key differs
    /// from it (the request's own key and fingerprint are never given
    /// here: the admin must get the fingerprint from the requester).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub their_recipient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub their_fingerprint: Option<String>,
}

/// How request `loaded` collides with `members` (name → recipient, from
/// the verified manifest) and the admins of the newest verified roster
/// (`roster_version`). Keys are compared as parsed bytes
/// ([`AgeRecipient`] equality), never as strings.
pub fn conflicts(
    loaded: &Loaded,
    members: &std::collections::BTreeMap<String, AgeRecipient>,
    admins: &[crate::documents::Admin],
    roster_version: u64,
) -> Vec<Conflict> {
    let name = &loaded.doc.name;
    let shown = names::escape(name);
    let key = &loaded.key;
    let mut out = Vec::new();
    match members.get(name) {
        Some(theirs) if theirs != key => out.push(Conflict {
            flag: "member-key-differs",
            message: format!(
                "{shown} is already a member with key {} (fingerprint {}); this request carries a DIFFERENT key: absorbing it would be a key replacement, not a new member (a plain absorb refuses it; `rotate --from-request BRANCH --replace` does it). Ask {shown} over another channel whether they changed keys; anyone can make a request under any name",
                theirs.as_str(),
                theirs.fingerprint()
            ),
            with: name.clone(),
            their_recipient: Some(theirs.as_str().to_string()),
            their_fingerprint: Some(theirs.fingerprint()),
        }),
        Some(_) => out.push(Conflict {
            flag: "member-same-key",
            message: format!(
                "{shown} is already a member with this same key: absorbing it gives no new member access"
            ),
            with: name.clone(),
            their_recipient: None,
            their_fingerprint: None,
        }),
        None => {}
    }
    for (other, theirs) in members {
        if other != name && theirs == key {
            out.push(Conflict {
                flag: "key-of-member",
                message: format!(
                    "this request under the name {shown} carries the key of member {}: it is not a new person's key (byreis refuses to give one key two names)",
                    names::escape(other)
                ),
                with: other.clone(),
                their_recipient: None,
                their_fingerprint: None,
            });
        }
    }
    for admin in admins {
        let theirs = AgeRecipient::parse(&admin.age_recipient).ok();
        let same_key = theirs.as_ref() == Some(key);
        if admin.name == *name {
            let about_key = match &theirs {
                Some(_) if same_key => " and carries that admin's own age key".to_string(),
                Some(t) => format!(
                    "; that admin's age key is {} (fingerprint {}) and this request carries a DIFFERENT key",
                    t.as_str(),
                    t.fingerprint()
                ),
                None => String::new(),
            };
            out.push(Conflict {
                flag: "admin-name",
                message: format!(
                    "{shown} is the name of an admin in roster version {roster_version}{about_key}. Admins do not need to ask for access: ask {shown} over another channel whether they made this request"
                ),
                with: admin.name.clone(),
                their_recipient: theirs
                    .as_ref()
                    .filter(|_| !same_key)
                    .map(|t| t.as_str().to_string()),
                their_fingerprint: theirs.as_ref().filter(|_| !same_key).map(|t| t.fingerprint()),
            });
        } else if same_key {
            out.push(Conflict {
                flag: "key-of-admin",
                message: format!(
                    "this request under the name {shown} carries the age key of admin {} (roster version {roster_version}): it is not a new person's key",
                    names::escape(&admin.name)
                ),
                with: admin.name.clone(),
                their_recipient: None,
                their_fingerprint: None,
            });
        }
    }
    out
}
