//! request-access (contributor) and request list/show/reject (admin).

use std::path::PathBuf;

use serde_json::json;

use super::{CliError, CliResult, Format};
use crate::diag::Refusal;
use crate::keys::{AgeIdentity, KeyError, Profile, Signer};
use crate::names;
use crate::request::{self, Decision, Loaded, State};
use crate::store::Actor;
use crate::verify::{self, Context, Project};

/// `request-access`: writes a request (public keys only) to a file or to a
/// branch of the registry, and prints the key's fingerprint for the
/// contributor to send over another channel.
pub fn request_access(
    ctx: &Context,
    name: &str,
    email: Option<String>,
    reason: Option<String>,
    out: Option<PathBuf>,
) -> CliResult {
    let project = Project::open(&ctx.dir)?;
    let identity = match AgeIdentity::load(&ctx.home) {
        Ok(i) => i,
        Err(KeyError::NoIdentity) if ctx.interactive => {
            let create = dialoguer::Confirm::new()
                .with_prompt(format!(
                    "You have no byreis identity yet. Create one now (byreis keygen --name {name})?"
                ))
                .default(true)
                .interact()
                .map_err(|e| CliError::Refused(Refusal::IoFailed, e.to_string()))?;
            if !create {
                return Err(CliError::Refused(
                    Refusal::KeyMissing,
                    "no identity: run `byreis keygen --name NAME` first; nothing was sent".into(),
                ));
            }
            super::setup::keygen(ctx, name, email.clone(), None)?;
            AgeIdentity::load(&ctx.home)?
        }
        Err(KeyError::NoIdentity) => {
            return Err(CliError::Refused(
                Refusal::KeyMissing,
                format!("no identity: run `byreis keygen --name {name}` first; nothing was sent"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let signer = match Profile::load(&ctx.home)? {
        Some(p) => Signer::load_for(&p, &ctx.home).ok(),
        None => None,
    };
    let key = identity.recipient();
    let (doc, bytes) = request::new_request(
        &project.config.project,
        name,
        email.as_deref(),
        reason.as_deref(),
        &key,
        signer.as_ref().map(|s| &s.public),
    )
    .map_err(|m| CliError::Refused(Refusal::Usage, m))?;
    match out {
        Some(path) => {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| {
                    let code = if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Refusal::AlreadyExists
                    } else {
                        Refusal::IoFailed
                    };
                    CliError::Refused(
                        code,
                        format!("{}: {e} (byreis does not overwrite files)", path.display()),
                    )
                })?;
            f.write_all(&bytes)?;
            eprintln!(
                "byreis: wrote the request to {}: hand it to an admin by any channel (it holds public keys only)",
                path.display()
            );
        }
        None if crate::github::registry_repo(&project.registry_location()?).is_some() => {
            let location = project.registry_location()?;
            let repo = crate::github::registry_repo(&location).expect("checked");
            let client = crate::github::Client::from_env().map_err(CliError::from)?;
            let branch = format!("{}{name}", request::BRANCH_PREFIX);
            let title = format!("Access request: {name} for {}", doc.project);
            let body = format!(
                "{name} asks for read access to the secrets of project `{}`, made with `byreis request-access`.\n\nThis pull request adds one file with public keys only. It grants nothing by itself and is never merged: an admin who can confirm the requester's key fingerprint over another channel absorbs it with byreis, which records the decision in the registry and closes this pull request.",
                doc.project
            );
            let opened = crate::github::open_request(
                &client,
                &repo,
                &branch,
                &request::request_path(&doc.project, name),
                &bytes,
                &title,
                &body,
            )
            .map_err(CliError::from)?;
            eprintln!(
                "byreis: request opened as pull request #{} on {repo} ({}), from your fork {}",
                opened.number, opened.url, opened.fork
            );
        }
        None => {
            let location = project.registry_location()?;
            let dir = verify::registry_dir(&ctx.home, &location);
            if verify::is_url(&location) && !dir.exists() {
                crate::remote::clone(&ctx.home, &location)?;
            }
            let Some(signer) = signer else {
                return Err(CliError::Refused(Refusal::KeyMissing,
                    "no signing key to sign the request commit: use --out FILE, or run `byreis keygen`".into(),
                ));
            };
            let mail = email
                .clone()
                .unwrap_or_else(|| format!("{name}@byreis.invalid"));
            let pushed = request::put_on_branch(&dir, &doc, &bytes, &signer, (name, &mail))?;
            eprintln!(
                "byreis: request written on branch {}{name} of the registry {}",
                request::BRANCH_PREFIX,
                if pushed {
                    "and pushed to its origin".to_string()
                } else {
                    format!("at {}", dir.display())
                }
            );
        }
    }
    let fp = key.fingerprint();
    eprintln!(
        "byreis: your key's fingerprint is below. Send it to an admin over ANOTHER channel (in person, a call, a chat you already trust), not with the request: the admin must type it to let you in.\n"
    );
    println!("{fp}");
    Ok(())
}

fn admin_keys(state: &verify::State) -> Vec<crate::keys::SigningPub> {
    state.all_admin_keys()
}

/// The request `reference` with its decision and state.
fn load_with_state(
    state: &verify::State,
    reference: &str,
) -> Result<(Loaded, Option<Decision>, State), CliError> {
    let loaded = crate::pulls::load_request(state, reference)?;
    let d = request::decision(
        state.registry(),
        &state.manifest().project,
        &loaded.doc.name,
        &admin_keys(state),
    )?;
    let st = request::state_of(&loaded, d.as_ref());
    Ok((loaded, d, st))
}

/// How a request still waiting for a decision collides with who already
/// has access: a member's name (with another key or the same one), a
/// member's key under another name, an admin's name or age key (newest
/// verified roster). Shown before an admin is asked anything.
fn conflicts(state: &verify::State, loaded: &Loaded, st: State) -> Vec<request::Conflict> {
    if st != State::Requested {
        return Vec::new();
    }
    let roster = state.roster().latest();
    request::conflicts(loaded, state.recipients(), &roster.admins, roster.version)
}

/// Whether the newest audit entry is a rotation that absorbed the request
/// whose file hashes to `sha256`.
fn absorbed_by_last_rotation(state: &verify::State, sha256: &str) -> bool {
    state
        .audit()
        .last()
        .filter(|v| v.entry.action == "rotate")
        .is_some_and(|v| {
            v.entry.details.value()["request"]["request_sha256"].as_str() == Some(sha256)
        })
}

/// Shows what may be shown before a fingerprint is typed: nothing derived
/// from the key.
fn describe(loaded: &Loaded, st: State) -> Vec<String> {
    let d = &loaded.doc;
    vec![
        format!(
            "request from {}{} for project {}",
            names::escape(&d.name),
            d.email
                .as_deref()
                .map(|e| format!(" <{}>", names::escape(e)))
                .unwrap_or_default(),
            names::escape(&d.project)
        ),
        format!("made {} ({})", names::escape(&d.time), loaded.source),
        format!("state: {st}"),
    ]
}

pub fn list(ctx: &Context, format: Format) -> CliResult {
    let state = verify::load(ctx)?;
    let mut refs = request::branches(state.registry())?;
    if let Some(repo) = crate::github::registry_repo(&state.pin().registry) {
        let client = crate::github::Client::from_env().map_err(CliError::from)?;
        for (n, _) in crate::github::open_request_pulls(&client, &repo).map_err(CliError::from)? {
            refs.push(n.to_string());
        }
    }
    let mut rows = Vec::new();
    for branch in refs {
        match load_with_state(&state, &branch) {
            Ok((l, _, st)) => rows.push(json!({
                "ref": branch,
                "name": l.doc.name,
                "email": l.doc.email,
                "time": l.doc.time,
                "state": st,
                "flags": conflicts(&state, &l, st),
            })),
            Err(e) => rows.push(json!({"ref": branch, "state": "invalid", "error": match e {
                CliError::Verify(v) => v.detail,
                CliError::Refused(_, m) => m,
                CliError::Exit(c) => format!("exit {c}"),
            }})),
        }
    }
    match format {
        Format::Json => println!("{}", json!({ "requests": rows })),
        Format::Text => {
            if rows.is_empty() {
                eprintln!("byreis: no request branches in the registry (file requests are absorbed with `rotate --from-request FILE`)");
            }
            for r in &rows {
                let flags: Vec<&serde_json::Value> =
                    r["flags"].as_array().into_iter().flatten().collect();
                let names_of: Vec<&str> = flags.iter().filter_map(|f| f["flag"].as_str()).collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    r["ref"].as_str().unwrap_or_default(),
                    names::escape(r["name"].as_str().unwrap_or("-")),
                    r["state"].as_str().unwrap_or_default(),
                    names::escape(r["time"].as_str().unwrap_or("-")),
                    if names_of.is_empty() {
                        "-".to_string()
                    } else {
                        names_of.join(",")
                    },
                );
                for f in flags {
                    eprintln!(
                        "byreis: warning: {}: {}",
                        names::escape(r["ref"].as_str().unwrap_or_default()),
                        f["message"].as_str().unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}

pub fn show(ctx: &Context, reference: &str) -> CliResult {
    let state = verify::load(ctx)?;
    let (loaded, d, st) = load_with_state(&state, reference)?;
    for line in describe(&loaded, st) {
        println!("{line}");
    }
    for c in conflicts(&state, &loaded, st) {
        println!("warning: {}", c.message);
    }
    let decided = d
        .as_ref()
        .is_some_and(|d| d.request_sha256 == loaded.sha256);
    if !decided && absorbed_by_last_rotation(&state, &loaded.sha256) {
        println!(
            "note: the last rotation absorbed this request, but its decision is not recorded (that rotation was stopped); run `byreis rotate --resume` to record it"
        );
    }
    if !decided {
        for b in crate::proposal::absorbing(&state, &loaded.sha256) {
            println!(
                "note: proposal {b} absorbs this request and waits for approvals (`byreis approve {b}`)"
            );
        }
    }
    if let Some(d) = d.filter(|d| d.request_sha256 == loaded.sha256) {
        println!(
            "decided: {} by {} at {}{}",
            d.state,
            names::escape(&d.by),
            d.time,
            d.counter
                .map(|c| format!(" (counter {c})"))
                .unwrap_or_default()
        );
    }
    // The reason is shown only here and after a typed confirmation, never
    // before the fingerprint prompt of an absorb: a request could quote a
    // fingerprint in it for a hurried admin to copy.
    if let Some(r) = &loaded.doc.reason {
        println!("reason: {}", names::escape(r));
    }
    Ok(())
}

pub fn reject(ctx: &Context, reference: &str, reason: Option<String>) -> CliResult {
    if let Some(r) = &reason {
        if r.len() > 1000 || r.chars().any(char::is_control) {
            return Err(CliError::Refused(
                Refusal::Usage,
                "--reason must be one line of at most 1000 characters".into(),
            ));
        }
    }
    let state = verify::load(ctx)?;
    let actor = Actor::load(&ctx.home)?;
    let admin = crate::store::check_writable(&state, &actor)?.clone();
    let (loaded, d, st) = match load_with_state(&state, reference) {
        Ok(x) => x,
        Err(e) => return reject_malformed_pull(&state, &admin.name, reference, reason, e),
    };
    if let Some(done) = finish_decided(&state, &loaded, d.as_ref(), st, "reject it") {
        return done;
    }
    request::require_requested(st, d.as_ref(), "reject it")?;
    decide(
        ctx, &state, &actor, &admin, &loaded, "rejected", None, reason,
    )?;
    eprintln!(
        "byreis: rejected the request of {} (recorded, signed, in the registry); nobody was given access",
        names::escape(&loaded.doc.name)
    );
    Ok(())
}

/// `request reject N` of an open pull request of the GitHub registry that
/// is not a valid request (malformed file, more files, another project…):
/// there is no request to record a decision for, so byreis closes the pull
/// request with a comment saying why, and records nothing. Any other
/// failure (`err`, the API failing, a closed pull request) stands.
fn reject_malformed_pull(
    state: &verify::State,
    admin: &str,
    reference: &str,
    reason: Option<String>,
    err: CliError,
) -> CliResult {
    let Some(repo) = crate::github::registry_repo(&state.pin().registry) else {
        return Err(err);
    };
    let Some(Ok(number)) = crate::github::pull_number(reference, &repo) else {
        return Err(err);
    };
    let Ok(client) = crate::github::Client::from_env() else {
        return Err(err);
    };
    let why = match crate::github::read_request(&client, &repo, number) {
        Err(crate::github::PullReadError::Invalid(m)) => m,
        Err(crate::github::PullReadError::Api(_)) => return Err(err),
        Ok(pr) if !pr.open => return Err(err),
        // Read, but refused when checked: that refusal says why.
        Ok(_) => match crate::pulls::load_request(state, reference) {
            Err(e) => e.to_string(),
            // It loads: the failure was elsewhere (the decision record).
            Ok(_) => return Err(err),
        },
    };
    let comment = format!(
        "Rejected by {} with byreis: this pull request is not a valid access request ({}).{} Nothing was recorded in the registry.",
        names::escape(admin),
        names::escape(&why),
        reason
            .map(|r| format!(" {}", names::escape(&r)))
            .unwrap_or_default()
    );
    crate::github::close_with_comment(&client, &repo, number, &comment).map_err(CliError::from)?;
    eprintln!(
        "byreis: pull request #{number} of {repo} is not a valid request ({}); closed it with a comment. Nothing was recorded in the registry",
        names::escape(&why)
    );
    Ok(())
}

/// For `rotate --from-request`: loads the request, refuses any state but
/// `requested`, shows what may be shown, and has the admin type the
/// fingerprint they received over another channel before anything derived
/// from the key appears.
pub fn confirm_request(
    ctx: &Context,
    state: &verify::State,
    reference: &str,
    typed: Option<String>,
) -> Result<Loaded, CliError> {
    let (loaded, d, st) = load_with_state(state, reference)?;
    if let Some(done) = finish_decided(state, &loaded, d.as_ref(), st, "absorb it") {
        done?;
    }
    request::require_requested(st, d.as_ref(), "absorb it")?;
    request::refuse_quoted_fingerprint(&loaded)?;
    for line in describe(&loaded, st) {
        eprintln!("byreis: {line}");
    }
    // Before the fingerprint prompt: a request under a member's or an
    // admin's name is not a new member, whatever fingerprint is typed.
    for c in conflicts(state, &loaded, st) {
        eprintln!("byreis: warning: {}", c.message);
    }
    let typed = match typed {
        Some(t) => t,
        None if ctx.interactive => dialoguer::Input::<String>::new()
            .with_prompt(format!(
                "Type the fingerprint {} sent you over another channel (not from this screen or the request)",
                names::escape(&loaded.doc.name)
            ))
            .interact_text()
            .map_err(|e| CliError::Refused(Refusal::IoFailed, e.to_string()))?,
        None => {
            return Err(CliError::Refused(Refusal::NotInteractive,
                "non-interactive run: pass --confirm-fingerprint FP with the fingerprint the contributor sent you over another channel; nothing was changed".into(),
            ))
        }
    };
    request::confirm_fingerprint(&loaded, &typed)?;
    eprintln!(
        "byreis: fingerprint confirmed for {} ({})",
        names::escape(&loaded.doc.name),
        loaded.key().fingerprint()
    );
    if let Some(r) = &loaded.doc.reason {
        eprintln!("byreis: reason given: {}", names::escape(r));
    }
    Ok(loaded)
}

/// After an absorbing rotation landed at `counter`: the decision, signed,
/// in a registry commit of its own.
pub fn record_absorbed(ctx: &Context, loaded: &Loaded, counter: u64) -> CliResult {
    let state = verify::load(ctx)?;
    let actor = Actor::load(&ctx.home)?;
    let admin = crate::store::check_writable(&state, &actor)?.clone();
    decide(
        ctx,
        &state,
        &actor,
        &admin,
        loaded,
        "absorbed",
        Some(counter),
        None,
    )?;
    eprintln!(
        "byreis: recorded in the registry that the request of {} was absorbed at counter {counter}",
        names::escape(&loaded.doc.name)
    );
    Ok(())
}

/// Records an admin's decision on `loaded` in the registry (signed file,
/// signed commit of its own, pushed when the registry has a remote).
#[allow(clippy::too_many_arguments)]
fn decide(
    ctx: &Context,
    state: &verify::State,
    actor: &Actor,
    admin: &crate::documents::Admin,
    loaded: &Loaded,
    what: &str,
    counter: Option<u64>,
    reason: Option<String>,
) -> CliResult {
    let decision = Decision {
        format: request::DECISION_FORMAT.into(),
        project: loaded.doc.project.clone(),
        name: loaded.doc.name.clone(),
        state: what.into(),
        fingerprint: loaded.key().fingerprint(),
        request_sha256: loaded.sha256.clone(),
        request_commit: match &loaded.source {
            request::Source::Branch { commit, .. } => Some(commit.to_string()),
            request::Source::PullRequest { head_sha, .. } => Some(head_sha.clone()),
            request::Source::File(_) => None,
        },
        by: admin.name.clone(),
        by_key: actor.signer.public.fingerprint(),
        time: crate::store::now(),
        counter,
        reason,
    };
    sign_and_record(ctx, state, actor, &admin.name, &decision)?;
    close_decided_pull(state, loaded, &decision);
    Ok(())
}

/// What the pull request of a decided request is closed with.
fn decision_comment(d: &Decision) -> String {
    match d.counter {
        Some(c) if d.state == "absorbed" => format!(
            "Absorbed by {} with byreis: project `{}` counter {c}. The registry records the decision in a commit of its own; this pull request's commits are not merged.",
            d.by, d.project
        ),
        _ => format!(
            "Rejected by {} with byreis{}. Nothing was granted.",
            d.by,
            d.reason
                .as_deref()
                .map(|r| format!(": {}", names::escape(r)))
                .unwrap_or_default()
        ),
    }
}

/// Closes the pull request a decided request came from. A failure does
/// not undo what landed: it says what did land and how to finish (issue
/// 17), and the same command run again closes it.
fn close_decided_pull(state: &verify::State, loaded: &Loaded, d: &Decision) -> bool {
    let request::Source::PullRequest { number, .. } = &loaded.source else {
        return true;
    };
    match crate::pulls::close_request_pull(state, loaded, &decision_comment(d)) {
        Ok(()) => {
            eprintln!("byreis: pull request #{number} commented and closed (not merged)");
            true
        }
        Err(e) => {
            eprintln!(
                "byreis: warning: the request of {} is {}{} and the decision is recorded in the registry, but closing pull request #{number} failed: {}",
                names::escape(&d.name),
                d.state,
                d.counter.map(|c| format!(" at counter {c}")).unwrap_or_default(),
                e
            );
            eprintln!(
                "byreis: to finish, run the same command again (it closes #{number} and changes nothing else), or close #{number} by hand without merging it"
            );
            false
        }
    }
}

/// The same absorb or reject run again on a request already decided whose
/// pull request is still open (closing it failed before): closes it now
/// and changes nothing else. `None` when there is nothing to finish.
fn finish_decided(
    state: &verify::State,
    loaded: &Loaded,
    d: Option<&Decision>,
    st: State,
    what: &str,
) -> Option<CliResult> {
    let d = d?;
    let done = matches!(
        (st, what, d.state.as_str()),
        (State::Absorbed, "absorb it", "absorbed") | (State::Rejected, "reject it", "rejected")
    );
    if !done || !matches!(loaded.source, request::Source::PullRequest { .. }) {
        return None;
    }
    eprintln!(
        "byreis: the request of {} was already {}{} by {} ({}); closing its pull request, which was left open",
        names::escape(&d.name),
        d.state,
        d.counter.map(|c| format!(" at counter {c}")).unwrap_or_default(),
        names::escape(&d.by),
        d.time
    );
    Some(if close_decided_pull(state, loaded, d) {
        Err(CliError::Exit(0))
    } else {
        Err(CliError::Exit(1))
    })
}

/// After `rotate --resume` finished a rotation whose audit entry names an
/// absorbed request: records the decision from that entry (signed by this
/// admin) unless one for the same request bytes exists. The pull request a
/// GitHub request came from is not closed here: the admin closes it.
/// Records that the last rotation absorbed request `r`, if its decision is
/// not in the registry yet (the rotation was interrupted after it landed,
/// or was finished by `--resume`). Returns whether it recorded one.
pub fn record_absorbed_after_resume(
    ctx: &Context,
    state: &verify::State,
    actor: &Actor,
    r: &serde_json::Value,
    counter: u64,
) -> Result<bool, CliError> {
    let (Some(name), Some(fp), Some(sha)) = (
        r["name"].as_str(),
        r["fingerprint"].as_str(),
        r["request_sha256"].as_str(),
    ) else {
        return Ok(false);
    };
    let project = &state.manifest().project;
    let existing = request::decision(state.registry(), project, name, &admin_keys(state))?;
    if existing.is_some_and(|d| d.request_sha256 == sha) {
        return Ok(false);
    }
    let admin = crate::store::check_writable(state, actor)?.clone();
    let decision = Decision {
        format: request::DECISION_FORMAT.into(),
        project: project.clone(),
        name: name.to_string(),
        state: "absorbed".into(),
        fingerprint: fp.to_string(),
        request_sha256: sha.to_string(),
        request_commit: None,
        by: admin.name.clone(),
        by_key: actor.signer.public.fingerprint(),
        time: crate::store::now(),
        counter: Some(counter),
        reason: None,
    };
    sign_and_record(ctx, state, actor, &admin.name, &decision)?;
    eprintln!(
        "byreis: recorded in the registry that the request of {} was absorbed at counter {counter}",
        names::escape(name)
    );
    // The pull request it came from, named in the signed audit entry: only
    // ever one of the pinned registry's own repository.
    if let (Some(number), Some(repo)) = (
        r["pull_request"].as_u64(),
        crate::github::registry_repo(&state.pin().registry),
    ) {
        let comment = format!(
            "byreis: absorbed at counter {counter} by {}. Closed without merging: the registry records the decision in a commit of its own.",
            names::escape(&admin.name)
        );
        match crate::github::Client::from_env()
            .and_then(|c| crate::github::close_with_comment(&c, &repo, number, &comment))
        {
            Ok(()) => eprintln!("byreis: pull request #{number} of {repo} commented and closed"),
            Err(e) => eprintln!(
                "byreis: warning: could not close pull request #{number} of {repo}: {e}; close it on GitHub"
            ),
        }
    }
    Ok(true)
}

/// Signs `decision` as `admin_name` and records it in the registry.
fn sign_and_record(
    ctx: &Context,
    state: &verify::State,
    actor: &Actor,
    admin_name: &str,
    decision: &Decision,
) -> CliResult {
    let email = actor.email();
    request::record_decision(
        state.registry(),
        &ctx.home,
        decision,
        &actor.signer,
        (admin_name, &email),
    )?;
    Ok(())
}
