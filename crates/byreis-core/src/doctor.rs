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
    pub check: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    pub detail: String,
}

/// The checks, in the order verification runs them.
const STAGES: &[(&str, &[Code])] = &[
    ("config", &[Code::ConfigMissing, Code::ConfigInvalid]),
    (
        "anchor",
        &[
            Code::AnchorNotTrusted,
            Code::AnchorMismatch,
            Code::ProjectMismatch,
        ],
    ),
    (
        "registry",
        &[
            Code::RegistryInsideProject,
            Code::RegistryUnavailable,
            Code::RegistryInvalid,
        ],
    ),
    (
        "roster",
        &[
            Code::RosterAnchorMismatch,
            Code::RosterInvalid,
            Code::RosterRollback,
            Code::RegistryUnconfirmed,
            Code::RegistryMismatch,
        ],
    ),
    (
        "record",
        &[
            Code::ProjectUnconfirmed,
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
            Code::ApprovalsShort,
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

/// The name of the check (stage) that reports `code`.
pub fn stage_name(code: Code) -> &'static str {
    STAGES[stage_of(code)].0
}

fn stage_of(code: Code) -> usize {
    STAGES
        .iter()
        .position(|(_, codes)| codes.contains(&code))
        .unwrap_or(STAGES.len() - 1)
}

/// Whether the state a record pins carries the approvals the thresholds in
/// force require, from the registry alone (ADR 0017): the check that lets
/// the registry's CI catch one admin's record.
fn record_approvals_check(
    project: &str,
    latest: &crate::documents::Roster,
    r: &crate::documents::Record,
) -> Check {
    let name = &format!("approvals {project}");
    match crate::verify::count_record_approvals(latest, r) {
        None if crate::verify::required_approvals(&latest.thresholds) > 1 => check(
            name,
            Status::Fail,
            Some(Code::ApprovalsShort),
            format!("the record carries no approvals (made by an older byreis, or forged), and roster version {} needs {} admins: an admin runs `byreis registry refresh` in a checkout of {project}", latest.version, crate::verify::required_approvals(&latest.thresholds)),
        ),
        None => check(
            name,
            Status::Ok,
            None,
            "the record predates approvals in records; one admin suffices under these thresholds",
        ),
        Some(c) if c.short() => check(
            name,
            Status::Fail,
            Some(Code::ApprovalsShort),
            c.explain(&format!("the state it pins (counter {})", r.counter)),
        ),
        Some(c) => check(
            name,
            Status::Ok,
            None,
            format!("counter {} approved by {} ({} needed)", r.counter, c.by.join(", "), c.need),
        ),
    }
}

fn check(name: &str, status: Status, code: Option<Code>, detail: impl Into<String>) -> Check {
    Check {
        check: name.to_string(),
        status,
        code: code.map(Code::as_str),
        detail: detail.into(),
    }
}

/// Runs every check. The result fails if any check has status `Fail`.
/// Every check. With `decrypt`, also decrypts each environment that
/// identity reads and checks its plaintext (the other checks need public
/// keys only).
pub fn run(ctx: &Context, decrypt: Option<&crate::keys::AgeIdentity>) -> Vec<Check> {
    let mut out = Vec::new();
    let state = match verify::load(ctx) {
        Ok(mut s) => {
            if let Err(e) = s.remember(&ctx.home) {
                crate::notice::push(format!("warning: this machine could not record what it has verified ({e}); it cannot refuse a later rollback to an older state"));
            }
            s
        }
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
    let m = &state.manifest();
    out.push(check(
        "config",
        Status::Ok,
        None,
        format!("project {}", m.project),
    ));
    out.push(check(
        "anchor",
        Status::Ok,
        None,
        state.pin().anchor.clone(),
    ));
    out.push(check(
        "registry",
        Status::Ok,
        None,
        state.registry().dir.display().to_string(),
    ));
    out.push(check(
        "roster",
        Status::Ok,
        None,
        format!(
            "version {}, {} admin(s)",
            state.roster().latest().version,
            state.roster().latest().admins.len()
        ),
    ));
    let expiring = state
        .notes()
        .iter()
        .find(|(c, _)| *c == Code::RecordExpiring);
    out.push(match expiring {
        Some((c, d)) => check("record", Status::Warn, Some(*c), d.clone()),
        None => check(
            "record",
            Status::Ok,
            None,
            format!(
                "counter {}, expires {}",
                state.record().counter,
                state.record().expires
            ),
        ),
    });
    let old_checkout = state
        .notes()
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
        format!("{} entries, chain intact", state.audit().len()),
    ));
    let pending = state
        .notes()
        .iter()
        .find(|(c, _)| *c == Code::ChangePending);
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
    let plaintexts = match (decrypt, &file_failure) {
        (Some(identity), None) => Some(plaintext_check(&state, identity)),
        _ => None,
    };
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
    out.extend(plaintexts);

    // allowed_signers as generated from the verified roster.
    let expected = registry::render_allowed_signers(state.roster().latest());
    out.push(match state.registry().allowed_signers() {
        Ok(Some(b)) if b == expected.as_bytes() => check("allowed-signers", Status::Ok, None, ""),
        Ok(_) => check(
            "allowed-signers",
            Status::Fail,
            Some(Code::AllowedSignersStale),
            "allowed_signers in the registry differs from the verified roster; stock `git verify-commit` would trust other keys",
        ),
        Err(e) => check("allowed-signers", Status::Fail, Some(Code::AllowedSignersStale), e.to_string()),
    });

    let mut locks = state.project().repo.stale_locks();
    locks.extend(state.registry().repo.stale_locks());
    out.push(if locks.is_empty() {
        check("git-locks", Status::Ok, None, "")
    } else {
        check(
            "git-locks",
            Status::Fail,
            Some(Code::GitLockStale),
            locks
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )
    });
    if let Ok(d) = state.registry().repo.dirty_paths(registry::REGISTRY_OWNED) {
        if !d.is_empty() {
            out.push(check(
                "registry-worktree",
                Status::Warn,
                Some(Code::WorktreeChanged),
                format!(
                    "the registry's work tree differs from its HEAD in {} (byreis reads HEAD; the next registry write restores them)",
                    d.iter().map(|p| crate::names::escape(p)).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    out.push(match state.project().repo.dirty_paths(OWNED_PATHS) {
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

/// Decrypts every environment `identity` reads and parses
/// its plaintext as untrusted YAML: a file an admin signed can still hold
/// a document byreis refuses to serve.
fn plaintext_check(state: &verify::State, identity: &crate::keys::AgeIdentity) -> Check {
    let me = identity.recipient();
    let envs: Vec<&String> = state
        .manifest()
        .environments
        .keys()
        .filter(|env| state.readers(env).contains(&me))
        .collect();
    let failure = envs
        .iter()
        .find_map(|env| state.secrets(env, identity).err());
    let total = state.manifest().environments.len();
    match failure {
        Some(e) => check("plaintexts", Status::Fail, Some(e.code), e.detail),
        None => check(
            "plaintexts",
            Status::Ok,
            None,
            format!(
                "{} of {total} environment(s) decrypted with your key and parsed{}",
                envs.len(),
                if envs.len() < total {
                    " (you do not read the others)"
                } else {
                    ""
                }
            ),
        ),
    }
}

pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}

/// Is `path` a file a registry may hold?
fn registry_path_allowed(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["README.md" | "allowed_signers" | "audit.jsonl"] => true,
        [".github", ..] | ["requests", ..] => true,
        ["roster", f] => {
            let stem = f
                .strip_suffix(".yaml.sig")
                .or_else(|| f.strip_suffix(".yaml"));
            stem.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }
        ["projects", p, "record.yaml" | "record.yaml.sig"] => {
            crate::names::check(crate::names::Kind::Project, p).is_ok()
        }
        _ => false,
    }
}

/// Every file under `requests/`: `README.md`, request files that parse as
/// requests for the project and name their path gives, and decisions whose
/// signature (`request@byreis.dev`) is by an admin of some roster version.
fn request_checks(reg: &registry::Registry, admin_keys: &[crate::keys::SigningPub]) -> Check {
    use crate::names::{check as name_ok, Kind};
    let head = reg.head();
    let files = match reg.repo.files_under(&head, &["requests"]) {
        Ok(f) => f,
        Err(e) => {
            return check(
                "requests",
                Status::Fail,
                Some(Code::RequestInvalid),
                e.to_string(),
            )
        }
    };
    let mut bad = Vec::new();
    let (mut requests, mut decisions) = (0, 0);
    for f in &files {
        let parts: Vec<&str> = f.split('/').collect();
        let ok = match parts.as_slice() {
            ["requests", "README.md"] => true,
            ["requests", p, file] if name_ok(Kind::Project, p).is_ok() => {
                if let Some(n) = file.strip_suffix(".decision.yaml.sig") {
                    name_ok(Kind::Member, n).is_ok()
                } else if let Some(n) = file.strip_suffix(".decision.yaml") {
                    decisions += 1;
                    name_ok(Kind::Member, n).is_ok()
                        && reg
                            .repo
                            .read_file(&head, f)
                            .ok()
                            .flatten()
                            .is_some_and(|b| {
                                let sig = reg
                                    .repo
                                    .read_file(&head, &format!("{f}.sig"))
                                    .ok()
                                    .flatten()
                                    .unwrap_or_default();
                                crate::request_doc::verify_decision(&b, &sig, admin_keys)
                                    .is_ok_and(|d| d.project == *p && d.name == n)
                            })
                } else if let Some(n) = file.strip_suffix(".yaml") {
                    requests += 1;
                    reg.repo
                        .read_file(&head, f)
                        .ok()
                        .flatten()
                        .is_some_and(|b| {
                            crate::request_doc::parse(&b)
                                .is_ok_and(|(d, _)| d.project == *p && d.name == n)
                        })
                } else {
                    false
                }
            }
            _ => false,
        };
        if !ok {
            bad.push(crate::names::escape(f));
        }
    }
    if bad.is_empty() {
        check(
            "requests",
            Status::Ok,
            None,
            format!("{requests} request file(s), {decisions} signed decision(s)"),
        )
    } else {
        check(
            "requests",
            Status::Fail,
            Some(Code::RequestInvalid),
            bad.join(", "),
        )
    }
}

/// `byreis registry verify`: keyless checks of a registry repository's
/// HEAD commit against a pinned anchor (for the registry's own CI).
pub fn registry_checks(reg: &registry::Registry, anchor: &str) -> Vec<Check> {
    let mut out = Vec::new();
    let chain = match reg.roster_chain(anchor) {
        Ok(c) => {
            out.push(check(
                "roster",
                Status::Ok,
                None,
                format!("versions 1..{} verify from the anchor", c.latest().version),
            ));
            c
        }
        Err(e) => {
            let code = match e {
                registry::RegistryError::Anchor { .. } => Code::RosterAnchorMismatch,
                _ => Code::RosterInvalid,
            };
            out.push(check("roster", Status::Fail, Some(code), e.to_string()));
            return out;
        }
    };
    let latest = chain.latest();
    let keys = registry::admin_keys(latest);

    // allowed_signers
    let expected = registry::render_allowed_signers(latest);
    out.push(match reg.allowed_signers() {
        Ok(Some(b)) if b == expected.as_bytes() => check("allowed-signers", Status::Ok, None, ""),
        _ => check(
            "allowed-signers",
            Status::Fail,
            Some(Code::AllowedSignersStale),
            "allowed_signers differs from what the verified roster generates",
        ),
    });

    // Project records.
    match reg.projects() {
        Ok(projects) => {
            for p in projects {
                let name = &format!("record {p}");
                let Ok(Some((bytes, sig))) = reg.record_raw(&p) else {
                    out.push(check(
                        name,
                        Status::Fail,
                        Some(Code::RecordMissing),
                        "no record.yaml",
                    ));
                    continue;
                };
                let v = crate::signed::verify(
                    &bytes,
                    &sig,
                    crate::sshsig::Namespace::Record,
                    &keys,
                    // One admin signs a record (ADR 0012).
                    1,
                    crate::signed::parse_yaml::<crate::documents::Record>,
                );
                if let Ok(r) = &v {
                    out.push(record_approvals_check(&p, latest, r));
                }
                out.push(match v {
                    Err(e) => check(name, Status::Fail, Some(Code::RecordInvalid), e.to_string()),
                    Ok(r) if r.roster_version != latest.version || r.project != p => check(
                        name,
                        Status::Fail,
                        Some(Code::RecordInvalid),
                        format!(
                            "names roster version {} / project {}",
                            r.roster_version,
                            crate::names::escape(&r.project)
                        ),
                    ),
                    Ok(r) => match chrono::DateTime::parse_from_rfc3339(&r.expires) {
                        Err(_) => {
                            check(name, Status::Fail, Some(Code::RecordInvalid), "bad expiry")
                        }
                        Ok(exp) => {
                            let left = exp.with_timezone(&chrono::Utc) - chrono::Utc::now();
                            if left < chrono::Duration::zero() {
                                check(
                                    name,
                                    Status::Fail,
                                    Some(Code::RecordExpired),
                                    format!("expired at {}", r.expires),
                                )
                            } else if left < chrono::Duration::days(14) {
                                check(
                                    name,
                                    Status::Warn,
                                    Some(Code::RecordExpiring),
                                    format!("expires at {}", r.expires),
                                )
                            } else if let Some(pending) = &r.pending {
                                check(
                                    name,
                                    Status::Warn,
                                    Some(Code::ChangePending),
                                    format!(
                                        "counter {}, a change to {} is pending",
                                        r.counter, pending.counter
                                    ),
                                )
                            } else {
                                check(
                                    name,
                                    Status::Ok,
                                    None,
                                    format!("counter {}, expires {}", r.counter, r.expires),
                                )
                            }
                        }
                    },
                });
            }
        }
        Err(e) => out.push(check(
            "records",
            Status::Fail,
            Some(Code::RegistryInvalid),
            e.to_string(),
        )),
    }

    // The registry's own audit log.
    let mut all_keys = Vec::new();
    for r in &chain.versions {
        for k in registry::admin_keys(r) {
            if !all_keys.contains(&k) {
                all_keys.push(k);
            }
        }
    }
    out.push(match reg.audit_log() {
        Ok(log) => match crate::audit::verify_log(
            &String::from_utf8_lossy(&log),
            &all_keys,
            "registry",
            latest.audit_head.as_deref(),
        ) {
            Ok(v) => check(
                "registry-audit",
                Status::Ok,
                None,
                format!("{} entries, chain intact", v.len()),
            ),
            Err(e) => check(
                "registry-audit",
                Status::Fail,
                Some(Code::AuditBroken),
                e.to_string(),
            ),
        },
        Err(e) => check(
            "registry-audit",
            Status::Fail,
            Some(Code::AuditBroken),
            e.to_string(),
        ),
    });

    // Requests: well-formed request files, decisions signed by admins.
    out.push(request_checks(reg, &all_keys));

    // Nothing else.
    match reg.repo.all_entries(&reg.head()) {
        Ok(files) => {
            let odd: Vec<String> = files
                .into_iter()
                .filter(|(f, kind)| {
                    *kind != crate::git::EntryKind::Blob || !registry_path_allowed(f)
                })
                .map(|(f, _)| crate::names::escape(&f))
                .collect();
            out.push(if odd.is_empty() {
                check("files", Status::Ok, None, "only registry files")
            } else {
                check(
                    "files",
                    Status::Fail,
                    Some(Code::RegistryUnexpectedFile),
                    odd.join(", "),
                )
            });
        }
        Err(e) => out.push(check(
            "files",
            Status::Fail,
            Some(Code::RegistryInvalid),
            e.to_string(),
        )),
    }
    out
}
