//! rotate.

use serde_json::json;

use super::{print_notes, CliError, CliResult, Format};
use crate::diag::Refusal;
use crate::keys::AgeRecipient;
use crate::rotation::{self, Request};
use crate::store::Actor;
use crate::verify::{self, Context};

/// `rotate`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Add a member: NAME=age1… or NAME="ssh-ed25519 AAAA…". With
    /// --from-request, `--add` alone means the requester.
    #[arg(long, value_name = "NAME=RECIPIENT", num_args = 0..=1, default_missing_value = "")]
    pub add: Vec<String>,
    /// Absorb an access request: a request file, or a registry branch
    /// byreis/request/NAME. You type the fingerprint the contributor
    /// sent you over another channel before the key is used.
    #[arg(long, value_name = "REF")]
    pub from_request: Option<String>,
    /// The fingerprint the contributor sent you (non-interactive runs).
    #[arg(long, value_name = "FP", requires = "from_request")]
    pub confirm_fingerprint: Option<String>,
    /// Remove a member. Prints the forward-secrecy warning: what they could
    /// read, now and in older versions (the exposure inventory); removal
    /// does not take it back.
    #[arg(long, value_name = "NAME")]
    pub remove: Vec<String>,
    /// Replace a member's key with a new one in every environment they read
    /// (a lost laptop, a rotated key): NAME=age1… or NAME="ssh-ed25519
    /// AAAA…". Prints the forward-secrecy warning for the old key. With
    /// --from-request, `--replace` alone means the requester, who must
    /// already be a member.
    #[arg(long, value_name = "NAME=RECIPIENT", num_args = 0..=1, default_missing_value = "")]
    pub replace: Vec<String>,
    /// Limit the change to these environments (default: all).
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
    /// Re-encrypt every file (or each `--env`) with fresh file keys to the
    /// same readers: after a suspected compromise of a file key, or on a
    /// schedule. Changes no value and no reader (audited as `rekey`).
    #[arg(long, conflicts_with_all = ["add", "remove", "replace", "from_request"])]
    pub rekey: bool,
    /// Why (recorded in the signed audit entry).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Do not ask for confirmation (required when not interactive).
    #[arg(long)]
    pub yes: bool,
    /// Finish the change a signed registry record names as pending
    /// (after an interruption); shows the change first.
    #[arg(long, conflicts_with_all = ["add", "remove", "replace", "envs", "abort", "from_request"])]
    pub resume: bool,
    /// Abandon the pending change and return to the last complete state.
    #[arg(long, conflicts_with_all = ["add", "remove", "replace", "envs", "from_request"])]
    pub abort: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn rotate(ctx: &Context, args: Args) -> CliResult {
    let Args {
        add,
        from_request,
        confirm_fingerprint,
        remove,
        replace,
        envs,
        reason,
        yes,
        format,
        rekey,
        ..
    } = args;
    if let Some(r) = &reason {
        if r.len() > 1000 || r.chars().any(|c| c.is_control()) {
            return Err(CliError::Refused(
                Refusal::Usage,
                "--reason must be one line of at most 1000 characters".into(),
            ));
        }
    }
    let mut req = Request {
        remove,
        envs,
        reason,
        rekey,
        ..Default::default()
    };
    let replace_requester = replace.iter().any(String::is_empty);
    if replace_requester && add.iter().any(String::is_empty) {
        return Err(CliError::Refused(
            Refusal::Usage,
            "--from-request adds the requester (--add) or replaces their key (--replace), not both"
                .into(),
        ));
    }
    for (flag, list, out) in [
        ("--add", &add, &mut req.add),
        ("--replace", &replace, &mut req.replace),
    ] {
        for a in list {
            if a.is_empty() {
                if from_request.is_none() {
                    return Err(CliError::Refused(
                        Refusal::Usage,
                        format!("{flag} takes NAME=RECIPIENT (or use {flag} --from-request REF)"),
                    ));
                }
                continue;
            }
            let Some((name, key)) = a.split_once('=') else {
                return Err(CliError::Refused(
                    Refusal::Usage,
                    format!(
                        "{flag} takes NAME=RECIPIENT, got {}",
                        crate::names::quoted(a)
                    ),
                ));
            };
            out.push((name.to_string(), AgeRecipient::parse(key)?));
        }
    }
    let state = verify::load(ctx)?;
    crate::timing::phase("state verified");
    print_notes(state.notes());
    let actor = Actor::load(&ctx.home)?;
    crate::store::check_writable(&state, &actor)?;
    let absorbing = match &from_request {
        Some(r) => {
            let loaded = super::requests::confirm_request(ctx, &state, r, confirm_fingerprint)?;
            let name = loaded.doc.name.clone();
            match state.manifest().member(&name) {
                // Never silently: a request in an existing member's name
                // replaces their key only when --replace says so.
                Some(existing) if !replace_requester => {
                    return Err(CliError::Refused(
                        Refusal::AlreadyExists,
                        format!(
                            "{name} is already a member, with key {}; the request carries another key ({}). If {name} replaced their key (a lost laptop, a rotated key), run `byreis rotate --from-request {r} --replace`: the old key's exposure is listed first. Nothing was changed",
                            existing.fingerprint,
                            loaded.key().fingerprint()
                        ),
                    ));
                }
                None if replace_requester => {
                    return Err(CliError::Refused(
                        Refusal::UnknownMember,
                        format!("{name} is not a member, so there is no key to replace; to add them, run `byreis rotate --from-request {r} --add`. Nothing was changed"),
                    ));
                }
                _ => {}
            }
            if replace_requester {
                req.replace.push((name, loaded.key().clone()));
            } else {
                req.add.push((name, loaded.key().clone()));
            }
            let mut r = json!({
                "name": loaded.doc.name,
                "fingerprint": loaded.key().fingerprint(),
                "request_sha256": loaded.sha256,
                "source": loaded.source.to_string(),
            });
            // So that the pull request can be closed by whoever finishes
            // the change (`--resume`, the approval that lands it).
            if let crate::request::Source::PullRequest { number, .. } = &loaded.source {
                r["pull_request"] = json!(number);
            }
            req.request = Some(r);
            Some(loaded)
        }
        None => None,
    };
    let prepared = rotation::prepare(&state, &actor, &req)?;
    crate::timing::phase("files decrypted");
    let preview = &prepared.plan;
    for r in &preview.readded {
        eprintln!("byreis: note: re-adding: {r}");
    }
    for (n, envs) in &preview.added {
        eprintln!("byreis: add {n} to {}", envs.join(", "));
    }
    for (n, envs) in &preview.removed {
        eprintln!("byreis: remove {n} from {}", envs.join(", "));
    }
    for (n, r) in &preview.replaced {
        eprintln!(
            "byreis: replace the key of {n}: {} -> {} (re-encrypting {})",
            r.old_fingerprint,
            r.fingerprint,
            if r.envs.is_empty() {
                "no file: they read no environment now".to_string()
            } else {
                r.envs.join(", ")
            }
        );
    }
    eprintln!(
        "byreis: files to re-encrypt: {}",
        if preview.files.is_empty() {
            "none".into()
        } else {
            preview.files.join(", ")
        }
    );
    // The warning goes to stderr always, --yes or not.
    for e in &preview.exposures {
        eprint!("{}", rotation::warning(e));
    }
    confirm(ctx, yes, "Rotate?")?;
    if !preview.replaced.is_empty() && absorbing.is_some() && ctx.interactive && !yes {
        confirm(
            ctx,
            false,
            "Replace the member's key with the one in the request?",
        )?;
    }
    if !preview.readded.is_empty() && yes && !ctx.interactive {
        eprintln!("byreis: re-adding confirmed by --yes");
    } else if !preview.readded.is_empty() {
        confirm(ctx, false, "Re-add a member who was removed before?")?;
    }
    if let Some(loaded) = &absorbing {
        // The request must still be the one confirmed (`stale` otherwise).
        crate::pulls::check_request_fresh(&state, loaded)?;
    }
    let (plan, mut landed) = rotation::execute(ctx, state, &actor, prepared)?;
    crate::pulls::open_for_landed(&mut landed);
    let (counter, proposal) = match &landed {
        crate::store::Landed::Done(c) => (Some(*c), None),
        crate::store::Landed::Proposed(p) => (None, Some(p.clone())),
    };
    match format {
        Format::Json => println!(
            "{}",
            json!({
                "counter": counter,
                "proposal": proposal,
                "added": plan.added,
                "removed": plan.removed,
                "replaced": plan.replaced,
                "files": plan.files,
                "forward_secrecy_warnings": plan.exposures.iter().map(rotation::warning).collect::<Vec<_>>(),
                "exposures": plan.exposures,
            })
        ),
        Format::Text if rekey => super::report(landed, |counter| {
            format!(
                "byreis: re-keyed (counter {counter}): {} file(s) re-encrypted with fresh file keys to the same readers. Old file keys no longer open the current files; no value changed, and anyone who copied an old file or key can still read what it held: change those values at their issuers",
                plan.files.len()
            )
        }),
        Format::Text => super::report(landed, |counter| {
            let replaced = if plan.replaced.is_empty() {
                String::new()
            } else {
                format!(
                    "; the old key of {} opens none of the current files, but every older commit still (see the warning above)",
                    plan.replaced.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            format!(
                "byreis: rotated (counter {counter}): {} file(s) re-encrypted with fresh file keys{replaced}",
                plan.files.len()
            )
        }),
    }
    if let (Some(loaded), Some(counter)) = (&absorbing, counter) {
        super::requests::record_absorbed(ctx, loaded, counter)?;
    }
    if absorbing.is_some() && proposal.is_some() {
        eprintln!(
            "byreis: the request stays `requested` until the proposal lands; the admin whose approval lands it records it as absorbed"
        );
    }
    Ok(())
}

pub(super) fn confirm(ctx: &Context, yes: bool, prompt: &str) -> CliResult {
    if yes {
        return Ok(());
    }
    if !ctx.interactive {
        return Err(CliError::Refused(
            Refusal::NotInteractive,
            "non-interactive run: pass --yes to confirm; nothing was changed".into(),
        ));
    }
    let ok = dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact()
        .map_err(|e| CliError::Refused(Refusal::IoFailed, e.to_string()))?;
    if ok {
        Ok(())
    } else {
        Err(CliError::Refused(
            Refusal::Cancelled,
            "cancelled; nothing was changed".into(),
        ))
    }
}

/// `rotate --resume`: verify the pending change, show it, finish it.
pub fn resume(ctx: &Context, yes: bool) -> CliResult {
    let state = verify::load(ctx)?;
    let actor = Actor::load(&ctx.home)?;
    // A rotation that absorbed an access request landed but was stopped
    // before the registry recorded the decision: finish that part.
    if state.record().pending.is_none() && record_absorption(ctx, &state, &actor)? {
        return Ok(());
    }
    let (pending, new) = crate::store::verify_pending(&state)?;
    let old = &state.manifest();
    eprintln!(
        "byreis: pending {} from counter {} to {} (commit {})",
        pending.action, old.counter, pending.counter, pending.project_commit
    );
    for line in rotation::describe_change(old, &new) {
        eprintln!("byreis:   {line}");
    }
    confirm(ctx, yes, "Finish this change?")?;
    let counter = crate::store::resume(ctx, state, &actor)?;
    eprintln!("byreis: finished; counter {counter} is current");
    // A rotation that absorbed an access request records its decision
    // after landing; when it was interrupted, do it now.
    let state = verify::load(ctx)?;
    if let Err(e) = crate::proposal::remove_branch_of_landed(&state) {
        eprintln!("byreis: warning: {e}");
    }
    record_absorption(ctx, &state, &actor)?;
    Ok(())
}

/// Records the decision of the request the last rotation absorbed, if the
/// registry does not have it yet. Returns whether it recorded one.
fn record_absorption(
    ctx: &Context,
    state: &verify::State,
    actor: &Actor,
) -> Result<bool, CliError> {
    let Some(last) = state.audit().last().filter(|v| v.entry.action == "rotate") else {
        return Ok(false);
    };
    let details = last.entry.details.value();
    let Some(r) = details.get("request") else {
        return Ok(false);
    };
    super::requests::record_absorbed_after_resume(ctx, state, actor, r, last.entry.counter_to)
}

/// `approve byreis/roster/…`: a proposed roster version.
fn approve_roster(
    ctx: &Context,
    state: &verify::State,
    actor: &Actor,
    reference: &str,
    yes: bool,
    format: Format,
) -> CliResult {
    let review = crate::roster_approval::review(state, reference)?;
    eprintln!(
        "byreis: roster version {} proposed on {}",
        review.version, review.branch
    );
    for line in &review.lines {
        eprintln!("byreis:   {line}");
    }
    eprintln!(
        "byreis: signed so far by {}; it lands with {} admin(s) of version {} and {} of version {}",
        review.signed_by.join(", "),
        review.need_old,
        review.version - 1,
        review.need_new,
        review.version
    );
    confirm(ctx, yes, "Approve and sign?")?;
    let branch = review.branch.clone();
    let landed = crate::roster_approval::approve(ctx, state, actor, review)?;
    if let Some(v) = landed {
        if let Some(p) = crate::pulls::find_for_branch(&state.registry().repo, &branch) {
            p.report(
                &format!("byreis: roster version {v} landed, signed by {} and the admins before. Closed without merging: byreis commits roster versions itself.", actor.profile.name),
                true,
            );
        }
    }
    match (format, landed) {
        (Format::Json, v) => println!("{}", json!({"landed": v.is_some(), "roster_version": v})),
        (Format::Text, Some(v)) => {
            eprintln!("byreis: approved; roster version {v} landed (every project record re-signed under it)")
        }
        (Format::Text, None) => eprintln!(
            "byreis: approved; roster version not landed yet: it needs more signatures (`byreis approve {reference}`)"
        ),
    }
    Ok(())
}

/// `rotate --abort`: return to the last complete state.
pub fn abort(ctx: &Context) -> CliResult {
    let state = verify::load(ctx)?;
    let actor = Actor::load(&ctx.home)?;
    let counter = crate::store::abort(ctx, state, &actor)?;
    eprintln!("byreis: aborted the pending change; counter {counter} is current");
    Ok(())
}

/// The name-level change of each environment, for an approver.
fn print_env_diffs(envs: &[crate::diff::EnvDiff], show_values: bool) {
    for d in envs {
        if !d.readable {
            eprintln!("byreis:   {}: file changes you cannot read (you are not a reader of both states; its values were not checked by you)", d.env);
            continue;
        }
        for (what, names) in [
            ("added", &d.added),
            ("changed", &d.changed),
            ("removed", &d.removed),
        ] {
            if !names.is_empty() {
                eprintln!("byreis:   {}: {what}: {}", d.env, names.join(", "));
            }
        }
        for f in &d.flags {
            eprintln!("byreis:   {}: FLAGGED {}: {}", d.env, f.name, f.reason);
        }
        for (k, v) in &d.values {
            println!("{}.{k}={v}", d.env);
        }
    }
    if !show_values {
        eprintln!("byreis: values are masked (--show-values prints new and changed ones)");
    }
}

/// What an approval was asked to do with its output.
struct Answers {
    yes: bool,
    show_values: bool,
    format: Format,
}

/// Tells a pull request what an approval came to: closed once the change
/// landed, commented while it waits for more approvals.
fn report_to_pull(p: &crate::pulls::Pull, landed: &crate::store::Landed, actor: &Actor) {
    let who = crate::names::escape(&actor.profile.name);
    match landed {
        crate::store::Landed::Done(c) => p.report(
            &format!("byreis: approved by {who}; the change landed at counter {c}. Closed without merging: byreis lands changes itself."),
            true,
        ),
        crate::store::Landed::Proposed(q) => p.report(
            &format!("byreis: approved by {who} ({} of {} admins); it waits on branch {}.", q.approvals, q.need, q.branch),
            false,
        ),
    }
}

/// `approve byreis/submit/…`: a member's proposal, checked and applied by
/// the approver (ADR 0014).
fn approve_submission(
    ctx: &Context,
    state: verify::State,
    actor: &Actor,
    reference: &str,
    pull: Option<&crate::pulls::Pull>,
    a: Answers,
) -> CliResult {
    let Answers {
        yes,
        show_values,
        format,
    } = a;
    crate::store::check_writable(&state, actor)?;
    let review = crate::submission::review(&state, actor, reference, show_values)?;
    if let Some(p) = pull {
        p.check_head(&review.tip())?;
    }
    if review.is_noop() {
        crate::submission::remove_branch(
            &review.branch,
            state.project().repo.workdir(),
            state.project().repo.has_origin(),
        );
        match review.applied_at {
            Some(c) => eprintln!(
                "byreis: {} was applied at counter {c}; its branch is removed",
                review.branch
            ),
            None => eprintln!(
                "byreis: {} changes nothing in the current state; its branch is removed",
                review.branch
            ),
        }
        if let Some(p) = pull {
            p.report(
                "byreis: this submission was already applied, or changes nothing now. Closed without merging.",
                true,
            );
        }
        return Ok(());
    }
    let bases: Vec<String> = review.base_counters.iter().map(u64::to_string).collect();
    eprintln!(
        "byreis: submission {} by {} ({} change(s), made at counter {}; the project is at {})",
        review.branch,
        crate::names::escape(&review.author),
        review.changes,
        bases.join(", "),
        state.manifest().counter
    );
    if !review.author_proved {
        eprintln!(
            "byreis:   WARNING: nothing shows that {} wrote this: the author is only what the branch and the files claim (no author proof for you; members and admins with ssh-ed25519 keys cannot make one). Every change is flagged below",
            crate::names::escape(&review.author)
        );
    }
    for env in &review.blind {
        eprintln!(
            "byreis:   {env}: {} could not read it; their values replace the current ones as shown",
            crate::names::escape(&review.author)
        );
    }
    print_env_diffs(&review.envs, show_values);
    eprintln!("byreis: approving re-encrypts these values yourself to each environment's current readers and signs the change as you");
    confirm(ctx, yes, "Apply and sign?")?;
    let landed = crate::submission::approve(ctx, state, actor, review)?;
    if let Some(p) = pull {
        report_to_pull(p, &landed, actor);
    }
    print_landed(format, landed, "applied the submission");
    Ok(())
}

/// What an approval came to, as JSON or a line.
fn print_landed(format: Format, mut landed: crate::store::Landed, done: &str) {
    crate::pulls::open_for_landed(&mut landed);
    match (format, landed) {
        (Format::Json, crate::store::Landed::Done(c)) => {
            println!("{}", json!({"landed": true, "counter": c}))
        }
        (Format::Json, crate::store::Landed::Proposed(p)) => {
            println!("{}", json!({"landed": false, "proposal": p}))
        }
        (Format::Text, landed) => super::report(landed, |c| {
            format!("byreis: {done}; the change landed (counter {c})")
        }),
    }
}

/// `approve REF`: review a proposal independently, show it, sign.
pub fn approve(
    ctx: &Context,
    reference: &str,
    yes: bool,
    show_values: bool,
    format: Format,
) -> CliResult {
    let state = verify::load(ctx)?;
    print_notes(state.notes());
    let actor = Actor::load(&ctx.home)?;
    if reference.starts_with(crate::registry::ROSTER_BRANCH_PREFIX) {
        return approve_roster(ctx, &state, &actor, reference, yes, format);
    }
    // A pull request of a project on GitHub: its head branch, checked to
    // be what is reviewed.
    let pull = crate::pulls::resolve(
        &state.project().repo,
        reference,
        &[
            crate::submission::BRANCH_PREFIX,
            crate::proposal::BRANCH_PREFIX,
        ],
    )?;
    // Approved by branch name on a GitHub project: its pull request, if
    // any, is told the outcome too.
    let pull = match pull {
        Some(p) => Some(p),
        None => crate::pulls::find_for_branch(
            &state.project().repo,
            crate::remote::short_branch(reference),
        ),
    };
    let branch_of_pull = pull.as_ref().map(|p| p.branch.clone());
    let reference = branch_of_pull.as_deref().unwrap_or(reference);
    if crate::remote::short_branch(reference).starts_with(crate::submission::BRANCH_PREFIX) {
        return approve_submission(
            ctx,
            state,
            &actor,
            reference,
            pull.as_ref(),
            Answers {
                yes,
                show_values,
                format,
            },
        );
    }
    crate::store::check_writable(&state, &actor)?;
    if crate::proposal::is_landed(&state, reference) {
        crate::proposal::remove_branch_of_landed(&state)?;
        eprintln!(
            "byreis: {reference} already landed (counter {}); its branch is removed",
            state.manifest().counter
        );
        if let Some(p) = &pull {
            p.report(&format!("byreis: this change landed at counter {}. Closed without merging: byreis lands changes itself.", state.manifest().counter), true);
        }
        return Ok(());
    }
    let review = crate::proposal::review(&state, &actor, reference, show_values)?;
    if let Some(p) = &pull {
        p.check_head(&review.tip())?;
    }
    eprintln!(
        "byreis: proposal {} by {}: counter {} -> {}",
        review.branch,
        crate::names::escape(&review.proposer),
        state.record().counter,
        review.counter
    );
    eprintln!(
        "byreis: approved so far by {} ({} of {} admins needed)",
        review.approved_by.join(", "),
        review.approved_by.len(),
        review.need
    );
    if review.void > 0 {
        eprintln!(
            "byreis: note: {} approval(s) in it do not verify over this manifest (made for other bytes, or not by a current admin) and do not count",
            review.void
        );
    }
    for line in &review.readers {
        eprintln!("byreis:   {line}");
    }
    print_env_diffs(&review.envs, show_values);
    confirm(ctx, yes, "Approve and sign?")?;
    let landed = crate::proposal::approve(ctx, state, &actor, review)?;
    if matches!(landed, crate::store::Landed::Done(_)) {
        // A landed rotation that absorbed an access request: record it.
        record_absorption(ctx, &verify::load(ctx)?, &actor)?;
    }
    if let Some(p) = &pull {
        report_to_pull(p, &landed, &actor);
    }
    print_landed(format, landed, "approved");
    Ok(())
}
