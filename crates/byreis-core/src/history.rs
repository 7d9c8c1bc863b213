//! `doctor --rotation-history`: past rotations from the verified audit
//! log, each matched to the project commit where its counter landed and
//! that commit's signature checked. Public keys only.

use serde::Serialize;

use crate::signed;
use crate::sshsig::{self, Namespace};
use crate::verify::{State, MANIFEST_PATH};

/// One member added to or removed from some environments.
#[derive(Debug, Clone, Serialize)]
pub struct MemberChange {
    pub name: String,
    pub fingerprint: String,
    pub envs: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub actor_key: String,
    pub counter_from: u64,
    pub counter_to: u64,
    pub added: Vec<MemberChange>,
    pub removed: Vec<MemberChange>,
    pub files: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The first commit on this branch whose manifest records this entry
    /// as its audit head.
    pub commit: Option<String>,
    /// Whether that commit's git signature verifies against the roster.
    pub commit_signature_ok: Option<bool>,
    /// The access request the rotation absorbed, as its audit entry names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<serde_json::Value>,
    /// Whether a registry record pinning `counter_to` (not pending) exists
    /// in the registry's history and its signature verifies; `None` when
    /// none was found.
    pub record_ok: Option<bool>,
    /// Findings, never hidden: `commit-missing`, `history-unavailable`
    /// (a shallow clone), `commit-signature-invalid`, `counter-skipped`
    /// (the entry does not continue from the one before it),
    /// `record-missing`, `record-invalid`.
    pub flags: Vec<&'static str>,
}

fn member_changes(v: Option<&serde_json::Value>) -> Vec<MemberChange> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|m| MemberChange {
                    name: m["name"].as_str().unwrap_or("").to_string(),
                    fingerprint: m["fingerprint"].as_str().unwrap_or("").to_string(),
                    envs: m["envs"]
                        .as_array()
                        .map(|e| {
                            e.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Audit head → the first commit (walking first parents back from the
/// pinned commit) whose manifest records it. Matching on the audit head,
/// not the counter, tells a landed change from an aborted one that had
/// the same counter.
fn commits_by_audit_head(state: &State) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let repo = &state.project().repo;
    let Ok(chain) = repo.first_parent_chain(&state.record().project_commit) else {
        return out;
    };
    // Newest to oldest: each commit overwrites the entry, so the oldest
    // (the one where the manifest landed) remains. Each distinct manifest
    // blob is parsed once.
    let mut last: Option<(crate::git::Oid, Option<String>)> = None;
    for commit in chain {
        let Ok(Some((blob, bytes))) = repo.read_file_with_id(&commit, MANIFEST_PATH) else {
            continue;
        };
        let head = match &last {
            Some((b, h)) if *b == blob => h.clone(),
            _ => signed::parse_yaml::<crate::documents::Manifest>(&String::from_utf8_lossy(&bytes))
                .ok()
                .map(|m| m.audit_head),
        };
        last = Some((blob, head.clone()));
        if let Some(h) = head {
            out.insert(h, commit);
        }
    }
    out
}

/// Counter → whether some final (not pending) record for the project at
/// that counter, anywhere in the registry's first-parent history, verifies
/// against an admin key of any roster version.
fn records_by_counter(state: &State) -> std::collections::BTreeMap<u64, bool> {
    let mut out = std::collections::BTreeMap::new();
    let reg = &state.registry();
    let path = crate::registry::record_path(&state.manifest().project);
    let keys = state.all_admin_keys();
    let Ok(chain) = reg.repo.first_parent_chain(&reg.head()) else {
        return out;
    };
    let mut seen = std::collections::BTreeSet::new();
    for commit in chain {
        let Ok(Some((blob, bytes))) = reg.repo.read_file_with_id(&commit, &path) else {
            continue;
        };
        if !seen.insert(blob) {
            continue;
        }
        let sig = reg
            .repo
            .read_file(&commit, &crate::registry::sig_path(&path))
            .ok()
            .flatten()
            .unwrap_or_default();
        let parsed =
            signed::parse_yaml::<crate::documents::Record>(&String::from_utf8_lossy(&bytes));
        let Ok(r) = parsed else { continue };
        if r.pending.is_some() {
            continue;
        }
        let ok = signed::verify(
            &bytes,
            &String::from_utf8_lossy(&sig),
            Namespace::Record,
            &keys,
            1,
            signed::parse_yaml::<crate::documents::Record>,
        )
        .is_ok();
        let e = out.entry(r.counter).or_insert(false);
        *e |= ok;
    }
    out
}

/// Whether an entry taking the counter from `from` to `to` breaks the
/// sequence: it does not start where the entry before it (`previous_to`)
/// ended, or does not advance by exactly one.
fn counter_skipped(previous_to: Option<u64>, from: u64, to: u64) -> bool {
    previous_to.is_some_and(|p| from != p) || to != from + 1
}

/// A row's flags, from what the walks found: the rotation's commit (in a
/// shallow clone a missing commit is "history-unavailable", not
/// "commit-missing"), its signature, the counter sequence and the
/// registry record.
fn findings(
    commit_found: bool,
    shallow: bool,
    commit_signature_ok: Option<bool>,
    counter_skipped: bool,
    record_ok: Option<bool>,
) -> Vec<&'static str> {
    let mut flags = Vec::new();
    match (commit_found, shallow) {
        (false, true) => flags.push("history-unavailable"),
        (false, false) => flags.push("commit-missing"),
        _ => {}
    }
    if commit_signature_ok == Some(false) {
        flags.push("commit-signature-invalid");
    }
    if counter_skipped {
        flags.push("counter-skipped");
    }
    match record_ok {
        None => flags.push("record-missing"),
        Some(false) => flags.push("record-invalid"),
        Some(true) => {}
    }
    flags
}

/// Rotation rows from the verified audit log. `since` (a date or time,
/// `YYYY-MM-DD…`) keeps rows at or after it; checks that need the entries
/// before (a skipped counter) still see them.
pub fn rotation_history(state: &State, since: Option<&str>) -> Vec<Row> {
    let commits = commits_by_audit_head(state);
    let records = records_by_counter(state);
    let keys = state.all_admin_keys();
    let repo = &state.project().repo;
    let shallow = repo.is_shallow();
    let mut rows = Vec::new();
    let mut previous_to: Option<u64> = None;
    for v in state.audit() {
        let e = &v.entry;
        let skipped = counter_skipped(previous_to, e.counter_from, e.counter_to);
        previous_to = Some(e.counter_to);
        if e.action != "rotate" || since.is_some_and(|s| e.time.as_str() < s) {
            continue;
        }
        let commit = commits.get(&v.hash).cloned();
        let commit_signature_ok = commit.as_ref().map(|c| {
            matches!(repo.commit_signature(c), Ok(Some((sig, data)))
                if sshsig::verify_armored(&sig, Namespace::Git, &data, &keys).is_ok())
        });
        let record_ok = records.get(&e.counter_to).copied();
        let flags = findings(
            commit.is_some(),
            shallow,
            commit_signature_ok,
            skipped,
            record_ok,
        );
        let details = e.details.value();
        rows.push(Row {
            seq: e.seq,
            time: e.time.clone(),
            actor: e.actor.clone(),
            actor_key: e.actor_key.clone(),
            counter_from: e.counter_from,
            counter_to: e.counter_to,
            added: member_changes(details.get("added")),
            removed: member_changes(details.get("removed")),
            files: details
                .get("files")
                .and_then(|f| f.as_array())
                .map_or(0, Vec::len),
            reason: details
                .get("reason")
                .and_then(|r| r.as_str())
                .map(str::to_string),
            commit,
            commit_signature_ok,
            request: details.get("request").cloned(),
            record_ok,
            flags,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::{counter_skipped, findings};

    #[test]
    fn skipped_counters_are_flagged() {
        // (from, to) of consecutive audit entries.
        let entries = [(0, 1), (1, 2), (3, 4), (4, 6), (6, 7), (7, 7)];
        let mut previous = None;
        let flagged: Vec<bool> = entries
            .iter()
            .map(|&(from, to)| {
                let skipped = counter_skipped(previous, from, to);
                previous = Some(to);
                skipped
            })
            .collect();
        assert_eq!(flagged, [false, false, true, true, false, true]);
    }

    #[test]
    fn each_finding_is_flagged_and_a_clean_row_has_none() {
        assert!(findings(true, false, Some(true), false, Some(true)).is_empty());
        assert_eq!(
            findings(false, false, None, false, Some(true)),
            ["commit-missing"]
        );
        // A shallow clone cannot tell: never reported as tampering.
        assert_eq!(
            findings(false, true, None, false, Some(true)),
            ["history-unavailable"]
        );
        assert_eq!(
            findings(true, false, Some(false), true, None),
            [
                "commit-signature-invalid",
                "counter-skipped",
                "record-missing"
            ]
        );
        assert_eq!(
            findings(true, true, Some(true), false, Some(false)),
            ["record-invalid"]
        );
    }
}
