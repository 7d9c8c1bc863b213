//! `byreis doctor`: every check, with public keys only. Each check reports
//! ok, warn (does not fail), fail (with a stable code) or skipped (an
//! earlier check it depends on failed).

use serde::Serialize;

use crate::diag::Code;
use crate::registry;
use crate::verify::{self, Context, OWNED_PATHS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    pub detail: String,
}

/// The checks, in the order verification runs them.
const STAGES: &[(&str, &[Code])] = &[
    ("config", &[Code::ConfigMissing, Code::ConfigInvalid]),
    ("anchor", &[Code::AnchorNotTrusted, Code::AnchorMismatch]),
    (
        "registry",
        &[Code::RegistryUnavailable, Code::RegistryInvalid],
    ),
    (
        "roster",
        &[
            Code::RosterAnchorMismatch,
            Code::RosterInvalid,
            Code::RosterRollback,
        ],
    ),
    (
        "record",
        &[
            Code::RecordMissing,
            Code::RecordInvalid,
            Code::RecordExpired,
            Code::RecordRollback,
        ],
    ),
    (
        "manifest",
        &[
            Code::ManifestMissing,
            Code::ManifestInvalid,
            Code::ManifestNotPinned,
            Code::ManifestRollback,
            Code::ManifestAhead,
            Code::PinnedCommitMissing,
        ],
    ),
    ("audit", &[Code::AuditBroken]),
    (
        "files",
        &[
            Code::FileUnlisted,
            Code::FileMissing,
            Code::FileNotRegular,
            Code::FileHashMismatch,
            Code::RecipientsMismatch,
            Code::FileMalformed,
        ],
    ),
];

fn stage_of(code: Code) -> usize {
    STAGES
        .iter()
        .position(|(_, codes)| codes.contains(&code))
        .unwrap_or(STAGES.len() - 1)
}

fn check(
    name: &'static str,
    status: Status,
    code: Option<Code>,
    detail: impl Into<String>,
) -> Check {
    Check {
        check: name,
        status,
        code: code.map(Code::as_str),
        detail: detail.into(),
    }
}

/// Runs every check. The result fails if any check has status `Fail`.
pub fn run(ctx: &Context) -> Vec<Check> {
    let mut out = Vec::new();
    let state = match verify::load(ctx) {
        Ok(s) => s,
        Err(e) => {
            let failed = stage_of(e.code);
            for (i, (name, _)) in STAGES.iter().enumerate() {
                out.push(match i.cmp(&failed) {
                    std::cmp::Ordering::Less => check(name, Status::Ok, None, ""),
                    std::cmp::Ordering::Equal => {
                        check(name, Status::Fail, Some(e.code), e.detail.clone())
                    }
                    std::cmp::Ordering::Greater => check(
                        name,
                        Status::Skipped,
                        None,
                        format!("needs {}", STAGES[failed].0),
                    ),
                });
            }
            return out;
        }
    };
    let m = &state.manifest;
    out.push(check(
        "config",
        Status::Ok,
        None,
        format!("project {}", m.project),
    ));
    out.push(check("anchor", Status::Ok, None, state.pin.anchor.clone()));
    out.push(check(
        "registry",
        Status::Ok,
        None,
        state.registry.dir.display().to_string(),
    ));
    out.push(check(
        "roster",
        Status::Ok,
        None,
        format!(
            "version {}, {} admin(s)",
            state.roster.latest().version,
            state.roster.latest().admins.len()
        ),
    ));
    let expiring = state.notes.iter().find(|(c, _)| *c == Code::RecordExpiring);
    out.push(match expiring {
        Some((c, d)) => check("record", Status::Warn, Some(*c), d.clone()),
        None => check(
            "record",
            Status::Ok,
            None,
            format!(
                "counter {}, expires {}",
                state.record.counter, state.record.expires
            ),
        ),
    });
    let old_checkout = state
        .notes
        .iter()
        .find(|(c, _)| *c == Code::CheckoutNotCurrent);
    out.push(match old_checkout {
        Some((c, d)) => check("manifest", Status::Warn, Some(*c), d.clone()),
        None => check(
            "manifest",
            Status::Ok,
            None,
            format!("counter {}, signed by {}", m.counter, m.signer),
        ),
    });
    out.push(check(
        "audit",
        Status::Ok,
        None,
        format!("{} entries, chain intact", state.audit.len()),
    ));
    let pending = state.notes.iter().find(|(c, _)| *c == Code::ChangePending);
    out.push(match pending {
        Some((c, d)) => check("transaction", Status::Fail, Some(*c), d.clone()),
        None => check("transaction", Status::Ok, None, "no change pending"),
    });

    // Every listed file: hash and recipient count.
    let mut file_failure = None;
    for env in m.environments.keys() {
        if let Err(e) = state.env_file(env) {
            file_failure = Some(e);
            break;
        }
    }
    out.push(match file_failure {
        Some(e) => check("files", Status::Fail, Some(e.code), e.detail),
        None => check(
            "files",
            Status::Ok,
            None,
            format!(
                "{} environment file(s) match the manifest",
                m.environments.len()
            ),
        ),
    });

    // allowed_signers as generated from the verified roster.
    let expected = registry::render_allowed_signers(state.roster.latest());
    out.push(match state.registry.allowed_signers() {
        Ok(Some(b)) if b == expected.as_bytes() => check("allowed-signers", Status::Ok, None, ""),
        Ok(_) => check(
            "allowed-signers",
            Status::Fail,
            Some(Code::AllowedSignersStale),
            "allowed_signers in the registry differs from the verified roster; stock `git verify-commit` would trust other keys",
        ),
        Err(e) => check("allowed-signers", Status::Fail, Some(Code::AllowedSignersStale), e.to_string()),
    });

    out.push(match state.project.repo.dirty_paths(OWNED_PATHS) {
        Ok(d) if d.is_empty() => check("worktree", Status::Ok, None, ""),
        Ok(d) => check(
            "worktree",
            Status::Warn,
            Some(Code::WorktreeChanged),
            format!(
                "uncommitted changes: {}",
                d.iter()
                    .map(|p| crate::names::escape(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(e) => check(
            "worktree",
            Status::Warn,
            Some(Code::WorktreeChanged),
            e.to_string(),
        ),
    });
    out
}

pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}
