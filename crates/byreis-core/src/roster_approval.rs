//! k-of-n approvals of roster changes (ADR 0012). With a roster threshold
//! above 1, `admin add/remove/thresholds` put version N+1 on a registry
//! branch `byreis/roster/VERSION-HASH`, signed by the proposer.
//! `byreis approve BRANCH` checks it independently, adds the caller's
//! signature, and lands it once `thresholds.roster` admins of version N
//! **and** of N+1 have signed the exact bytes (each key once): the same
//! rule every verifier applies when it walks the roster chain.

use crate::diag::Refusal;
use crate::documents::{Record, Roster};
use crate::git::{Change, Oid};
use crate::keys::SigningPub;
use crate::registry::{self, Registry, ALLOWED_SIGNERS, REGISTRY_AUDIT};
use crate::signed;
use crate::sshsig::{self, Namespace};
use crate::store::{Actor, StoreError};
use crate::verify::State;

/// A proposed roster version, checked, ready to be shown and signed.
pub struct RosterReview {
    pub branch: String,
    pub version: u64,
    /// What changes, in words (admins added and removed, thresholds).
    pub lines: Vec<String>,
    /// Names of the admins whose signatures count so far.
    pub signed_by: Vec<String>,
    pub need_old: usize,
    pub need_new: usize,
    tip: Oid,
    bytes: Vec<u8>,
    sig: String,
    /// Every path the proposal changes, with its content at the tip.
    files: Vec<(String, Option<Vec<u8>>)>,
    old_keys: Vec<SigningPub>,
    new_keys: Vec<SigningPub>,
}

fn refuse<T>(code: Refusal, m: String) -> Result<T, StoreError> {
    Err(StoreError::Refused(code, m))
}

/// Distinct keys among `keys` with a valid signature over `bytes` in `sig`.
fn signers(sig: &str, bytes: &[u8], keys: &[SigningPub]) -> Vec<SigningPub> {
    let mut out: Vec<SigningPub> = Vec::new();
    for block in sshsig::split_armored(sig) {
        if let Ok(i) = sshsig::verify_armored(&block, Namespace::Roster, bytes, keys) {
            if !out.contains(&keys[i]) {
                out.push(keys[i].clone());
            }
        }
    }
    out
}

fn name_of(roster: &Roster, key: &SigningPub) -> String {
    roster
        .admins
        .iter()
        .find(|a| SigningPub::parse(&a.signing_key).is_ok_and(|k| k == *key))
        .map_or_else(|| key.fingerprint(), |a| a.name.clone())
}

/// Checks the roster proposal on `branch` against the verified state.
pub fn review(state: &State, branch: &str) -> Result<RosterReview, StoreError> {
    let reg: &Registry = state.registry();
    let bad = |m: String| {
        StoreError::Refused(
            Refusal::ProposalInvalid,
            format!("{branch}: {m} (nothing was changed)"),
        )
    };
    // A registry with a remote: its proposals are fetched first.
    let fetch_note =
        crate::transport::fetch_branches(&reg.repo, Some(&reg.dir), registry::ROSTER_BRANCH_PREFIX);
    let tip = reg.repo.branch_commit(branch)?.ok_or_else(|| {
        StoreError::Refused(
            Refusal::UnknownReference,
            format!("{branch}: no such branch in the registry{fetch_note} (nothing was changed)"),
        )
    })?;
    let head = reg.head();
    // Built on the registry's current state (approvals add commits on
    // top of the proposal; the registry must not have moved meanwhile).
    if tip.to_string() == head || !reg.repo.contains(tip, &head) {
        return refuse(Refusal::Stale, format!(
            "{branch} does not build on the registry's current state (stale): the proposer must propose the change again (nothing was changed)"
        ));
    }
    let old = state.roster().latest();
    let version = old.version + 1;
    let path = registry::roster_path(version);
    let sig_path = registry::sig_path(&path);
    let changed = reg.repo.changed_paths(&head, &tip.to_string())?;
    let allowed = |p: &str| {
        p == path
            || p == sig_path
            || p == ALLOWED_SIGNERS
            || p == REGISTRY_AUDIT
            || (p.starts_with("projects/")
                && (p.ends_with("/record.yaml") || p.ends_with("/record.yaml.sig")))
    };
    if let Some(p) = changed.iter().find(|p| !allowed(p)) {
        return Err(bad(format!(
            "it changes {}, which a roster change may not",
            crate::names::escape(p)
        )));
    }
    if !changed.contains(&path) {
        return Err(bad(format!("it has no {path}")));
    }
    let read = |p: &str| reg.repo.read_file(&tip.to_string(), p);
    let bytes = read(&path)?.unwrap_or_default();
    let text = std::str::from_utf8(&bytes).map_err(|_| bad(format!("{path} is not UTF-8")))?;
    let new: Roster = signed::parse_yaml(text).map_err(|e| bad(format!("{path}: {e}")))?;
    registry::check_roster(&new, version).map_err(|e| bad(format!("{path}: {e}")))?;
    let previous = registry::tagged_hash(state.roster().versions.last().expect("chain").bytes());
    if new.previous.as_deref() != Some(previous.as_str()) {
        return Err(bad(format!(
            "{path} does not name version {}'s hash",
            old.version
        )));
    }
    let allowed_signers = read(ALLOWED_SIGNERS)?.unwrap_or_default();
    if allowed_signers != registry::render_allowed_signers(&new).into_bytes() {
        return Err(bad(
            "its allowed_signers does not match the proposed roster".into(),
        ));
    }
    let new_keys = registry::admin_keys(&new);
    for p in changed.iter().filter(|p| p.ends_with("/record.yaml")) {
        let rb = read(p)?.unwrap_or_default();
        let rs = String::from_utf8_lossy(&read(&registry::sig_path(p))?.unwrap_or_default())
            .into_owned();
        let r = signed::verify(
            &rb,
            &rs,
            Namespace::Record,
            &new_keys,
            1,
            signed::parse_yaml::<Record>,
        )
        .map_err(|e| {
            bad(format!(
                "{p} does not verify under the proposed roster ({e})"
            ))
        })?;
        if r.value().roster_version != version {
            return Err(bad(format!("{p} does not name roster version {version}")));
        }
        // A roster change re-signs records; it never moves what they pin,
        // and approvals only add (ADR 0017).
        let now = reg.repo.read_file(&head, p)?.unwrap_or_default();
        if let Ok(cur) = signed::parse_yaml::<Record>(&String::from_utf8_lossy(&now)) {
            let n = r.value();
            let same = n.project == cur.project
                && n.counter == cur.counter
                && n.manifest == cur.manifest
                && n.project_commit == cur.project_commit
                && n.audit_head == cur.audit_head
                && n.pending == cur.pending
                && (cur.manifest_sha512.is_empty() || n.manifest_sha512 == cur.manifest_sha512)
                && cur.approvals.iter().all(|a| n.approvals.contains(a));
            if !same {
                return Err(bad(format!(
                    "{p} pins another state than the current record (counter {}, {}): a roster change may only re-sign records",
                    cur.counter, cur.manifest
                )));
            }
        }
    }
    let log_now = reg.audit_log()?;
    let log_tip = read(REGISTRY_AUDIT)?.unwrap_or_default();
    let extra = log_tip.strip_prefix(log_now.as_slice()).unwrap_or_default();
    if extra.iter().filter(|&&b| b == b'\n').count() != 1 || !extra.ends_with(b"\n") {
        return Err(bad(
            "its registry audit log is not the current one plus one entry".into(),
        ));
    }
    let sig = String::from_utf8_lossy(&read(&sig_path)?.unwrap_or_default()).into_owned();
    let old_keys = registry::admin_keys(old);
    let mut signed_by: Vec<String> = signers(&sig, &bytes, &old_keys)
        .iter()
        .map(|k| name_of(old, k))
        .chain(
            signers(&sig, &bytes, &new_keys)
                .iter()
                .map(|k| name_of(&new, k)),
        )
        .collect();
    signed_by.sort();
    signed_by.dedup();

    let mut lines = Vec::new();
    for a in &new.admins {
        if !old.admins.iter().any(|o| o.signing_key == a.signing_key) {
            let fp = SigningPub::parse(&a.signing_key)
                .map(|k| k.fingerprint())
                .unwrap_or_default();
            lines.push(format!(
                "admin added: {} ({fp})",
                crate::names::escape(&a.name)
            ));
        }
    }
    for a in &old.admins {
        if !new.admins.iter().any(|n| n.signing_key == a.signing_key) {
            lines.push(format!("admin removed: {}", crate::names::escape(&a.name)));
        }
    }
    if new.thresholds != old.thresholds {
        lines.push(format!(
            "thresholds: roster {} -> {}, recipients {} -> {}, values {} -> {}",
            old.thresholds.roster,
            new.thresholds.roster,
            old.thresholds.recipients,
            new.thresholds.recipients,
            old.thresholds.values,
            new.thresholds.values
        ));
    }
    let mut files = Vec::new();
    for p in changed {
        let content = read(&p)?;
        files.push((p, content));
    }
    Ok(RosterReview {
        branch: branch.to_string(),
        version,
        lines,
        signed_by,
        need_old: old.thresholds.roster,
        need_new: new.thresholds.roster,
        tip,
        bytes,
        sig,
        files,
        old_keys,
        new_keys,
    })
}

/// Adds `actor`'s signature to the reviewed proposal. Lands version N+1
/// on the registry's branch once both thresholds are met (returns its
/// version); otherwise records the signature on the proposal branch.
pub fn approve(
    ctx: &crate::verify::Context,
    state: &State,
    actor: &Actor,
    r: RosterReview,
) -> Result<Option<u64>, StoreError> {
    let me = &actor.signer.public;
    if !r.old_keys.contains(me) && !r.new_keys.contains(me) {
        return refuse(
            Refusal::NotAnAdmin,
            "your signing key is not an admin key of either roster version (nothing was changed)"
                .into(),
        );
    }
    let before = (
        signers(&r.sig, &r.bytes, &r.old_keys),
        signers(&r.sig, &r.bytes, &r.new_keys),
    );
    if (before.0.contains(me) || !r.old_keys.contains(me))
        && (before.1.contains(me) || !r.new_keys.contains(me))
    {
        return refuse(
            Refusal::AlreadyApproved,
            format!(
                "you already approved {} (each key counts once; nothing was changed)",
                r.branch
            ),
        );
    }
    let block = sshsig::sign_armored(&actor.signer, Namespace::Roster, &r.bytes)?;
    let mut sig = r.sig.clone();
    if !sig.is_empty() && !sig.ends_with('\n') {
        sig.push('\n');
    }
    sig.push_str(&block);
    let reg = &state.registry();
    let sig_path = registry::sig_path(&registry::roster_path(r.version));
    let admin = state
        .roster()
        .latest()
        .admins
        .iter()
        .find(|a| SigningPub::parse(&a.signing_key).is_ok_and(|k| k == *me))
        .map_or_else(|| me.fingerprint(), |a| a.name.clone());
    let email = actor.email();
    let complete = signers(&sig, &r.bytes, &r.old_keys).len() >= r.need_old
        && signers(&sig, &r.bytes, &r.new_keys).len() >= r.need_new;
    if complete {
        let changes: Vec<Change> = r
            .files
            .iter()
            .map(|(p, content)| Change {
                path: p.clone(),
                content: if *p == sig_path {
                    Some(sig.clone().into_bytes().into())
                } else {
                    content.clone().map(Into::into)
                },
            })
            .collect();
        let msg = format!(
            "byreis: roster version {} (approved)\n\nProposed on {}; the signature by {} completes it.",
            r.version, r.branch, admin
        );
        reg.commit(&changes, &msg, &actor.signer, (&admin, &email))?;
        reg.push_if_remote(&ctx.home)?;
        if let Err(e) = reg.repo.delete_branch(&r.branch) {
            crate::notice::push(format!(
                "warning: roster version {} landed, but its proposal branch {} could not be removed ({e})",
                r.version, r.branch
            ));
        }
        if reg.repo.has_origin() {
            let _ = crate::transport::push_ref(&reg.dir, &format!(":refs/heads/{}", r.branch));
        }
        return Ok(Some(r.version));
    }
    let change = [Change {
        path: sig_path,
        content: Some(sig.into_bytes().into()),
    }];
    let msg = format!(
        "byreis: approval of roster version {} by {admin}",
        r.version
    );
    let new = reg.repo.create_signed_commit(
        Some(r.tip),
        &change,
        &msg,
        &actor.signer,
        (&admin, &email),
    )?;
    if reg.repo.local_branch(&r.branch)?.is_some() {
        reg.repo.move_named_branch(&r.branch, r.tip, new)?;
    } else {
        reg.repo.create_branch(&r.branch, new)?;
    }
    if reg.repo.has_origin() {
        crate::transport::push_ref(&reg.dir, &format!("refs/heads/{}", r.branch))
            .map_err(StoreError::from)?;
    }
    Ok(None)
}
