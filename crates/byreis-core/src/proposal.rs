//! k-of-n approvals (ADR 0012). When the registry asks for more than one
//! admin, a signed change does not land: it waits on a proposal branch
//! `byreis/proposal/<counter>-<hash>` of the project repository until
//! enough admins approve it with `byreis approve`.
//!
//! The proposal commit holds everything the change would land: the new
//! secrets files, the audit log with the proposer's signed entry, the
//! manifest signed by the proposer (namespace `manifest@byreis.dev`), and
//! `.byreis/approvals.sig` with the proposer's approval (namespace
//! `proposal@byreis.dev`) of the exact manifest bytes. Each approval adds a
//! commit on the branch that changes only `approvals.sig`. The approval that
//! reaches the threshold lands the change like any other (ADR 0010), with
//! the proposer's manifest signature and every approval; verification then
//! counts distinct admins of the manifest's roster version who signed or
//! approved those bytes (`verify::verify_manifest`).

use crate::diag::Refusal;
use std::collections::BTreeSet;

use serde::Serialize;

use crate::agefile;
use crate::audit;
use crate::documents::{self, Admin, Manifest};
use crate::git::{Change, Content, Oid};
use crate::keys::{RecipientKind, SigningPub};
use crate::names;
use crate::registry;
use crate::signed::sha256_hex;
use crate::sshsig::{self, Namespace};
use crate::store::{self, Actor, Landed, SignedManifest, StoreError};
use crate::verify::{
    self, Context, SignerRule, State, APPROVALS_PATH, MANIFEST_PATH, MANIFEST_SIG_PATH, SECRETS_DIR,
};

/// Branch names of proposals start with this.
pub const BRANCH_PREFIX: &str = "byreis/proposal/";

/// A change waiting for approvals.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    /// The proposal branch in the project repository.
    pub branch: String,
    /// The counter the change will have when it lands.
    pub counter: u64,
    /// Distinct admins who signed or approved it so far.
    pub approvals: usize,
    /// How many the registry asks for.
    pub need: usize,
    /// Whether the branch was pushed to the project's `origin`.
    pub pushed: bool,
    /// On a project hosted on GitHub: the pull request opened, or why not
    /// (filled by the CLI from `pull`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    /// The pull request to open for the pushed branch.
    #[serde(skip)]
    pub pull: Option<crate::store::PullDraft>,
}

fn refuse<T>(code: Refusal, msg: impl Into<String>) -> Result<T, StoreError> {
    Err(StoreError::Refused(code, msg.into()))
}

/// Turns a change that needs `need` admins into a proposal branch, signed
/// and approved by the proposer. Nothing else moves: not the project's
/// branch, not the working tree, not the registry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn propose(
    state: &mut State,
    actor: &Actor,
    admin: &Admin,
    manifest: Manifest,
    mut changes: Vec<Change>,
    message: &str,
    need: usize,
) -> Result<Proposal, StoreError> {
    let signed = SignedManifest::sign(manifest, &actor.signer)?;
    let approval = sshsig::sign_armored(&actor.signer, Namespace::Proposal, &signed.bytes)?;
    let branch = branch_name(signed.manifest.counter, &signed.bytes);
    let (manifest, files) = signed.into_changes();
    changes.extend(files);
    changes.push(Change {
        path: APPROVALS_PATH.into(),
        content: Some(approval.into_bytes().into()),
    });
    let repo = &state.project().repo;
    let head = repo.head()?;
    let email = actor.email();
    let msg = format!(
        "{message}\n\nProposal: needs {need} admins; approve with `byreis approve {branch}`."
    );
    let commit =
        repo.create_signed_commit(head, &changes, &msg, &actor.signer, (&admin.name, &email))?;
    repo.create_branch(&branch, commit)?;
    let pushed = push_branch(state, &branch)?;
    let pull = pushed
        .then(|| {
            crate::store::PullDraft::new(
                repo,
                &branch,
                format!("byreis: proposed change, counter {} (needs {need} admins)", manifest.counter),
                format!(
                    "{message}\n\nA signed byreis change by {} that needs {need} admins. Other admins \
                     check it and add their approval with `byreis approve` and this pull request's \
                     number; the approval that reaches {need} lands it. Do not merge this pull \
                     request; byreis closes it once the change has landed.",
                    admin.name
                ),
            )
        })
        .flatten();
    Ok(Proposal {
        branch,
        counter: manifest.counter,
        approvals: 1,
        need,
        pushed,
        pull_request: None,
        pull,
    })
}

fn push_branch(state: &State, branch: &str) -> Result<bool, StoreError> {
    let repo = &state.project().repo;
    if !repo.has_origin() {
        return Ok(false);
    }
    if let Some(dir) = repo.workdir() {
        crate::transport::push_ref(dir, &format!("refs/heads/{branch}"))?;
    }
    Ok(true)
}

pub use crate::diff::EnvDiff;

/// A proposal checked independently by the approving admin, ready to be
/// shown before they sign.
pub struct Review {
    pub branch: String,
    pub counter: u64,
    pub proposer: String,
    /// Names of the admins who signed or approved it so far.
    pub approved_by: Vec<String>,
    pub need: usize,
    /// Reader changes (as `rotate --resume` shows them).
    pub readers: Vec<String>,
    pub envs: Vec<EnvDiff>,
    /// Approvals in the file that do not count (other bytes, non-admins).
    pub void: usize,
    tip: Oid,
    local_branch: bool,
    manifest: Manifest,
    mbytes: Vec<u8>,
    msig: String,
    /// Approval blocks that verify, in order.
    valid_blocks: Vec<String>,
    message: String,
    /// Paths the proposal changes relative to the pinned commit.
    paths: Vec<String>,
}

impl Review {
    /// The commit reviewed (the branch's tip).
    pub fn tip(&self) -> String {
        self.tip.to_string()
    }
}

/// Fetches (when the project has an `origin`) and checks proposal `reference`
/// against the current verified state, as the issue asks of an approver:
/// it touches only byreis's files; its manifest is signed by a current admin
/// and follows the current one; every file matches its hash and stanza
/// count; the audit log gains exactly the proposer's entry; and every
/// environment the approver is listed for decrypts with their identity.
pub fn review(
    state: &State,
    actor: &Actor,
    reference: &str,
    show_values: bool,
) -> Result<Review, StoreError> {
    let repo = &state.project().repo;
    let name = crate::transport::short_branch(reference);
    if !name.starts_with(BRANCH_PREFIX) || names::escape(name) != name {
        return refuse(Refusal::UnknownReference, format!(
            "{} is not a proposal branch (they are named {BRANCH_PREFIX}COUNTER-HASH; `git branch --list '{BRANCH_PREFIX}*'` lists them)",
            names::quoted(reference)
        ));
    }
    let fetch_note = crate::transport::fetch_branches(repo, repo.workdir(), BRANCH_PREFIX);
    let local_branch = repo.local_branch(name)?.is_some();
    let Some(tip) = repo.branch_commit(name)? else {
        return refuse(
            Refusal::UnknownReference,
            format!("no proposal branch {name}{fetch_note}"),
        );
    };
    // First parents from the tip: approval commits (changing only
    // approvals.sig), then the proposal commit. Its parent, the base, must
    // hold exactly the pinned state's byreis files: the pinned commit, or a
    // descendant of it that changed none of them (an aborted change's
    // restore, unrelated commits).
    let pinned = state.record().project_commit.clone();
    // What a proposal may change, and what its base must hold as pinned.
    let changeable =
        |p: &String| p.starts_with(&format!("{SECRETS_DIR}/")) || p.starts_with(".byreis/");
    let owned = |p: &String| changeable(p) || p == verify::CONFIG_PATH;
    let mut chain = vec![tip.to_string()];
    let (base, paths) = loop {
        let last = chain.last().expect("non-empty").clone();
        let Some(parent) = repo.parent_of(&last)? else {
            return refuse(
                Refusal::ProposalInvalid,
                format!("proposal {name} has no base commit"),
            );
        };
        let parent = parent.to_string();
        let changed = repo.changed_paths(&parent, &last)?;
        if changed.iter().all(|p| p == APPROVALS_PATH) && chain.len() < 256 {
            chain.push(parent);
            continue;
        }
        break (parent, changed);
    };
    let outside: Vec<String> = paths
        .iter()
        .filter(|p| !changeable(p))
        .map(|p| names::escape(p))
        .collect();
    if !outside.is_empty() {
        return refuse(
            Refusal::ProposalInvalid,
            format!(
                "proposal {name} changes files that are not byreis's to change: {}; refused",
                outside.join(", ")
            ),
        );
    }
    let on_pinned = base == pinned
        || (repo.contains(
            Oid::from_str(&base).map_err(crate::git::GitError::Git)?,
            &pinned,
        ) && !repo.changed_paths(&pinned, &base)?.iter().any(owned));
    if !on_pinned {
        return refuse(Refusal::Stale, format!(
            "proposal {name} is stale: it was not made on the current state (counter {}, commit {}); its author must make the change again",
            state.record().counter,
            &pinned[..12.min(pinned.len())]
        ));
    }
    let tip_s = tip.to_string();
    let read =
        |path: &str| -> Result<Option<Vec<u8>>, StoreError> { Ok(repo.read_file(&tip_s, path)?) };
    let Some(mbytes) = read(MANIFEST_PATH)? else {
        return refuse(
            Refusal::ProposalInvalid,
            format!("proposal {name} has no manifest"),
        );
    };
    let msig = String::from_utf8_lossy(&read(MANIFEST_SIG_PATH)?.unwrap_or_default()).into_owned();
    let approvals_text =
        String::from_utf8_lossy(&read(APPROVALS_PATH)?.unwrap_or_default()).into_owned();
    let bad = |m: String| {
        StoreError::Refused(
            Refusal::ProposalInvalid,
            format!("proposal {name}: {m}; refused"),
        )
    };
    let v: verify::Unpinned =
        verify::verify_unpinned(state.roster(), &mbytes, &msig, SignerRule::StillAdmin)
            .map_err(|e| bad(format!("its manifest does not verify: {e}")))?;
    let m: Manifest = (*v).clone();
    let latest = state.roster().latest();
    if m.project != state.manifest().project
        || m.counter != state.record().counter + 1
        || m.previous.as_deref() != Some(state.record().manifest.as_str())
    {
        return Err(bad(format!(
            "its manifest (counter {}) does not follow the current one (counter {}): it is stale",
            m.counter,
            state.record().counter
        )));
    }
    if m.roster_version != latest.version {
        return Err(bad(format!(
            "it was signed under roster version {}, the registry is at {}: it is stale",
            m.roster_version, latest.version
        )));
    }

    // The audit log: the current one plus exactly the proposer's entry.
    let old_audit = repo.read_file(&pinned, audit::PATH)?.unwrap_or_default();
    let new_audit = read(audit::PATH)?.unwrap_or_default();
    let added = new_audit
        .strip_prefix(old_audit.as_slice())
        .ok_or_else(|| bad("its audit log does not extend the current one".into()))?;
    if added.iter().filter(|b| **b == b'\n').count() != 1 {
        return Err(bad("its audit log must gain exactly one entry".into()));
    }
    let entries = audit::verify_log(
        &String::from_utf8_lossy(&new_audit),
        &state.all_admin_keys(),
        &m.project,
        Some(&m.audit_head),
    )
    .map_err(|e| bad(format!("audit log: {e}")))?;
    let last = entries.last().expect("one entry added");
    if last.entry.counter_to != m.counter || last.entry.actor_key != m.signer_key {
        return Err(bad(
            "its audit entry is not the proposer's entry for this counter".into(),
        ));
    }
    // Every difference from the pinned manifest, and whether the kind of
    // change the proposal says it is (its audit action) may make it: a
    // value change that also swaps a key, adds a reader or allows a name
    // for `exec` is refused, with what it would change shown (ADR 0018).
    let lines = crate::rotation::change_lines(state.manifest(), &m);
    check_action(&last.entry.action, &lines).map_err(bad)?;

    // Files: exactly the listed ones, each matching hash and stanza count;
    // decrypted wherever the approver is listed.
    let listing = repo.list_dir(&tip_s, SECRETS_DIR)?;
    let mut seen = BTreeSet::new();
    for (file, kind) in &listing {
        match names::env_of_file(file) {
            Some(env)
                if m.environments.contains_key(env) && *kind == crate::git::EntryKind::Blob =>
            {
                seen.insert(env.to_string());
            }
            _ => {
                return Err(bad(format!(
                    "{SECRETS_DIR}/{} is not a listed regular file",
                    names::escape(file)
                )))
            }
        }
    }
    let me = actor.identity.recipient();
    let mut envs = Vec::new();
    for (env, e) in &m.environments {
        if !seen.contains(env) {
            return Err(bad(format!("{} is missing", names::env_file(env))));
        }
        let path = names::env_file(env);
        let bytes = read(&path)?.unwrap_or_default();
        if sha256_hex(&bytes) != e.sha256 {
            return Err(bad(format!("{path} does not match its manifest hash")));
        }
        let readers: Vec<crate::keys::AgeRecipient> = e
            .readers
            .iter()
            .filter_map(|r| m.member(r))
            .filter_map(|mem| crate::keys::AgeRecipient::parse(&mem.recipient).ok())
            .collect();
        let count = agefile::count_stanzas(&bytes).map_err(|e| bad(format!("{path}: {e}")))?;
        let ssh = readers
            .iter()
            .filter(|r| r.kind() == RecipientKind::SshEd25519)
            .count();
        if readers.len() != e.readers.len()
            || count.x25519 != readers.len() - ssh
            || count.ssh_ed25519 != ssh
            || count.grease > 1
        {
            return Err(bad(format!(
                "{path} has {} recipient stanzas for {} readers",
                count.real(),
                e.readers.len()
            )));
        }
        let changed_file = state
            .manifest()
            .environments
            .get(env)
            .is_none_or(|old| old.sha256 != e.sha256);
        if !changed_file {
            continue;
        }
        let hint = readers.iter().position(|r| *r == me);
        let new = match hint {
            Some(h) => Some(
                agefile::decrypt_hinted(&bytes, &actor.identity, Some(h)).map_err(|err| {
                    bad(format!(
                        "you are listed as a reader of {env} but cannot decrypt its new file ({err})"
                    ))
                })?,
            ),
            None => None,
        };
        let old = if state.manifest().environments.contains_key(env) {
            state.secrets(env, &actor.identity).ok()
        } else {
            Some(Default::default())
        };
        // Flags come from the current verified state's allowances, never
        // from the proposal's own manifest: a proposal that allows a name
        // and sets it is flagged (ADR 0016).
        let d = crate::diff::env_diff(
            env,
            old.as_ref(),
            new.as_ref(),
            &state.manifest().exec_allow_for(env),
            show_values,
        );
        envs.push(d);
    }

    // Approvals so far: the proposer's manifest signature and every valid
    // approval by an admin of the newest roster, each key once.
    let keys = registry::admin_keys(latest);
    let mut approvers: Vec<SigningPub> = admin_key_of(latest, &m.signer)
        .and_then(|k| SigningPub::parse(&k).ok())
        .into_iter()
        .collect();
    let mut valid_blocks = Vec::new();
    let mut void = 0;
    for block in sshsig::split_armored(&approvals_text) {
        match sshsig::verify_armored(&block, Namespace::Proposal, &mbytes, &keys) {
            Ok(i) => {
                if !approvers.contains(&keys[i]) {
                    approvers.push(keys[i].clone());
                }
                valid_blocks.push(block);
            }
            Err(_) => void += 1,
        }
    }
    if approvers.contains(&actor.signer.public) {
        return refuse(Refusal::AlreadyApproved, format!(
            "you have already approved proposal {name} (each key counts once); it needs {} more admin(s)",
            verify::required_approvals(&latest.thresholds).saturating_sub(approvers.len())
        ));
    }
    let approved_by = approvers
        .iter()
        .filter_map(|k| {
            latest
                .admins
                .iter()
                .find(|a| SigningPub::parse(&a.signing_key).is_ok_and(|ak| ak == *k))
                .map(|a| a.name.clone())
        })
        .collect();
    let message = repo.commit_message(chain.last().expect("the proposal commit"))?;
    Ok(Review {
        branch: name.to_string(),
        counter: m.counter,
        proposer: m.signer.clone(),
        approved_by,
        need: verify::required_approvals(&latest.thresholds),
        readers: if lines.is_empty() {
            vec!["no reader or file changes".into()]
        } else {
            lines.into_iter().map(|l| l.text).collect()
        },
        envs,
        void,
        tip,
        local_branch,
        manifest: m,
        mbytes,
        msig,
        valid_blocks,
        message,
        paths,
    })
}

/// The audit actions of changes that only write values.
const VALUE_ACTIONS: [&str; 5] = ["set", "unset", "edit", "import", "approve-submission"];

/// Refuses a proposal whose manifest changes what its audit action never
/// changes (ADR 0018): values actions change files (and make environments
/// read by the default readers), `exec-allow` changes allowances,
/// `exposure-ack` nothing, `rotate` members, readers and files. No byreis
/// command changes a member's key under the same name, so that is refused
/// whatever the action; nor does one change the manifest's format or
/// branch. Every refusal lists what the proposal would change.
fn check_action(action: &str, lines: &[crate::rotation::ChangeLine]) -> Result<(), String> {
    use crate::rotation::Touches;
    let allowed: &[Touches] = match action {
        a if VALUE_ACTIONS.contains(&a) => &[Touches::Values],
        "exec-allow" | "exec-allow-remove" => &[Touches::ExecAllow],
        "exposure-ack" => &[],
        "rotate" => &[Touches::Recipients, Touches::Values],
        // Fresh file keys, same readers: only the files' bytes change.
        "rekey" => &[Touches::Values],
        other => {
            return Err(format!(
                "its audit entry names action {}, which byreis never proposes",
                names::quoted(other)
            ))
        }
    };
    let beyond: Vec<&str> = lines
        .iter()
        .filter(|l| !allowed.contains(&l.touches))
        .map(|l| l.text.as_str())
        .collect();
    if beyond.is_empty() {
        return Ok(());
    }
    let kind = match action {
        a if VALUE_ACTIONS.contains(&a) => "a change of values",
        "rotate" => "a change of readers",
        "rekey" => "new file keys for the same readers",
        "exposure-ack" => "an acknowledgement that changes nothing signed",
        _ => "a change of exec allowances",
    };
    Err(format!(
        "it is `{action}` ({kind}), but its manifest also changes: {}. No `byreis {action}` makes that change (a member's new key is `rotate --remove` then `rotate --add`; readers change with `rotate`, allowances with `exec-allow`, each a proposal of its own); ask its author to make the change again",
        beyond.join("; ")
    ))
}

fn admin_key_of(roster: &documents::Roster, name: &str) -> Option<String> {
    roster
        .admins
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.signing_key.clone())
}

/// Adds the caller's approval. The approval that reaches the threshold
/// lands the change (ADR 0010); an earlier one is committed on the
/// proposal branch (and pushed when the project has an `origin`).
pub fn approve(
    ctx: &Context,
    mut state: State,
    actor: &Actor,
    review: Review,
) -> Result<Landed, StoreError> {
    let admin = store::check_writable(&state, actor)?.clone();
    let mine = sshsig::sign_armored(&actor.signer, Namespace::Proposal, &review.mbytes)?;
    let mut text = review.valid_blocks.concat();
    text.push_str(&mine);
    let count = review.approved_by.len() + 1;
    let email = actor.email();
    let author = (admin.name.as_str(), email.as_str());
    let repo = &state.project().repo;
    if count < review.need {
        let msg = format!(
            "byreis: approve {} ({count} of {})",
            review.branch, review.need
        );
        let commit = repo.create_signed_commit(
            Some(review.tip),
            &[Change {
                path: APPROVALS_PATH.into(),
                content: Some(text.into_bytes().into()),
            }],
            &msg,
            &actor.signer,
            author,
        )?;
        if review.local_branch {
            repo.move_named_branch(&review.branch, review.tip, commit)
                .map_err(|e| match e {
                    crate::git::GitError::Raced => StoreError::Refused(Refusal::BranchMoved, format!(
                        "proposal {} moved while you approved it (another approval?); run `byreis approve {}` again",
                        review.branch, review.branch
                    )),
                    e => e.into(),
                })?;
        } else {
            repo.create_branch(&review.branch, commit)?;
        }
        let pushed = push_branch(&state, &review.branch)?;
        return Ok(Landed::Proposed(Proposal {
            branch: review.branch,
            counter: review.counter,
            approvals: count,
            need: review.need,
            pushed,
            pull_request: None,
            pull: None,
        }));
    }
    // The threshold is reached: land exactly what was proposed, with every
    // approval.
    let tip = review.tip.to_string();
    let mut changes = Vec::new();
    for p in &review.paths {
        if p == MANIFEST_PATH || p == MANIFEST_SIG_PATH || p == APPROVALS_PATH {
            continue;
        }
        changes.push(Change {
            path: p.clone(),
            content: repo.read_file(&tip, p)?.map(Content::Bytes),
        });
    }
    changes.push(Change {
        path: APPROVALS_PATH.into(),
        content: Some(text.into_bytes().into()),
    });
    let mut names_list = review.approved_by.clone();
    names_list.push(admin.name.clone());
    let first = review.message.lines().next().unwrap_or("byreis: change");
    let message = format!(
        "{first}\n\nProposed by {} ({}); approved by {}.",
        review.proposer,
        review.branch,
        names_list.join(", ")
    );
    let counter = review.counter;
    store::land_state_signed(
        ctx,
        &mut state,
        actor,
        &admin,
        SignedManifest {
            manifest: review.manifest,
            bytes: review.mbytes,
            sig: review.msig,
        },
        changes,
        &message,
    )?;
    if let Err(e) = remove_landed_branch(&state.project().repo, &review.branch) {
        crate::notice::push(format!(
            "warning: the change landed, but its proposal branch {} could not be removed ({e}); `byreis doctor` names a stale lock if that is why; then run `byreis approve {}` again",
            review.branch, review.branch
        ));
    }
    Ok(Landed::Done(counter))
}

/// Proposal branches here (local or fetched from `origin`) whose change
/// absorbs the access request whose file hashes to `sha256`, by the
/// proposer's audit entry. Informational (`request show`): approving
/// checks everything.
pub fn absorbing(state: &State, sha256: &str) -> Vec<String> {
    let repo = &state.project().repo;
    let mut branches = repo.branches_with_prefix(BRANCH_PREFIX).unwrap_or_default();
    for (name, tip) in repo
        .remote_branches_with_prefix(&format!("origin/{BRANCH_PREFIX}"))
        .unwrap_or_default()
    {
        let short = name.strip_prefix("origin/").unwrap_or(&name).to_string();
        if !branches.iter().any(|(b, _)| *b == short) {
            branches.push((short, tip));
        }
    }
    branches
        .into_iter()
        .filter(|(_, tip)| {
            let log = repo
                .read_file(&tip.to_string(), audit::PATH)
                .ok()
                .flatten()
                .unwrap_or_default();
            let last = log.split(|b| *b == b'\n').rfind(|l| !l.is_empty());
            last.and_then(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
                .is_some_and(|e| {
                    e["action"] == "rotate"
                        && e["details"]["request"]["request_sha256"].as_str() == Some(sha256)
                })
        })
        .map(|(b, _)| b)
        .collect()
}

/// The branch of a proposal of manifest `bytes` at `counter`.
fn branch_name(counter: u64, bytes: &[u8]) -> String {
    format!("{BRANCH_PREFIX}{counter}-{}", &sha256_hex(bytes)[..8])
}

/// Deletes a landed proposal's branch here, then on `origin` (best
/// effort there). Fails when the local branch cannot be deleted (a stale
/// lock a kill left, which `doctor` names).
fn remove_landed_branch(repo: &crate::git::Repo, branch: &str) -> Result<(), crate::git::GitError> {
    if repo.local_branch(branch)?.is_none() {
        return Ok(());
    }
    repo.delete_branch(branch)?;
    if repo.has_origin() {
        if let Some(dir) = repo.workdir() {
            let _ = crate::transport::push_ref(dir, &format!(":refs/heads/{branch}"));
        }
    }
    Ok(())
}

/// Whether `branch` is the proposal of the manifest that is pinned now
/// (it landed; an approval killed before it removed the branch leaves it).
pub fn is_landed(state: &State, branch: &str) -> bool {
    branch == branch_name(state.manifest().counter, state.manifest().bytes())
}

/// After `rotate --resume` landed the pinned manifest: the proposal branch
/// of that exact manifest, if a killed approval left one, has served its
/// purpose. Other proposal branches stay (they are history the exposure
/// inventory walks).
pub fn remove_branch_of_landed(state: &State) -> Result<(), StoreError> {
    let branch = branch_name(state.manifest().counter, state.manifest().bytes());
    remove_landed_branch(&state.project().repo, &branch).map_err(|e| {
        StoreError::Refused(Refusal::GitFailed, format!(
            "proposal {branch} landed (counter {}), but its branch could not be removed: {e}. `byreis doctor` names a stale lock if that is why; remove it and run this again",
            state.manifest().counter
        ))
    })
}
