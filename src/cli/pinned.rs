//! `byreis approve --pinned`: an admin vouches for the state the registry
//! pins now (ADR 0017). Signatures count only from admins of the newest
//! roster version, against its thresholds, so raising a threshold or
//! removing an admin can leave the pinned state short (`approvals-short`);
//! this is how admins bring it back, each after seeing all of it.

use serde_json::json;

use super::{print_notes, CliResult, Format};
use crate::store::Actor;
use crate::verify::{self, Allow, Context};

pub fn approve_pinned(ctx: &Context, yes: bool, show_values: bool, format: Format) -> CliResult {
    let state = verify::load_opts(ctx, Allow::SHORT_APPROVALS)?;
    print_notes(state.notes());
    let actor = Actor::load(&ctx.home)?;
    crate::store::check_writable(&state, &actor)?;
    let m = state.manifest().value();
    let r = state.record().value();
    eprintln!(
        "byreis: the pinned state of {}: counter {}, project commit {}, signed by {} under roster version {}",
        crate::names::escape(&m.project),
        r.counter,
        r.project_commit,
        crate::names::escape(&m.signer),
        m.roster_version
    );
    // Everything an approval vouches for: who holds which key, who reads
    // what, what `exec` passes, and (where you read) the secret names.
    for mem in &m.members {
        eprintln!(
            "byreis:   member {} key {}",
            crate::names::escape(&mem.name),
            mem.fingerprint
        );
    }
    if !m.default_readers.is_empty() {
        eprintln!(
            "byreis:   default readers: {}",
            m.default_readers.join(", ")
        );
    }
    if !m.exec_allow.is_empty() {
        eprintln!(
            "byreis:   exec_allow (every environment): {}",
            m.exec_allow.join(", ")
        );
    }
    let me = actor.identity.recipient();
    for (env, e) in &m.environments {
        eprintln!("byreis:   {env}: readers {}", e.readers.join(", "));
        if !e.exec_allow.is_empty() {
            eprintln!("byreis:   {env}: exec_allow {}", e.exec_allow.join(", "));
        }
        if state.readers(env).contains(&me) {
            let secrets = state.secrets(env, &actor.identity)?;
            let names: Vec<&str> = secrets.keys().map(String::as_str).collect();
            eprintln!("byreis:   {env}: secrets {}", names.join(", "));
            if show_values {
                for (k, v) in &secrets {
                    println!("{env}.{k}={}", v.expose());
                }
            }
        } else {
            eprintln!("byreis:   {env}: you do not read it (its values are not checked by you)");
        }
    }
    super::rotate::confirm(ctx, yes, "Approve the pinned state and sign?")?;
    let (before, after) = crate::store::approve_pinned(ctx, state, &actor)?;
    match format {
        Format::Json => println!(
            "{}",
            json!({"approved_by": after.by, "approvals": after.by.len(), "need": after.need})
        ),
        Format::Text => eprintln!(
            "byreis: approved; the pinned state is approved by {} ({} of {} needed; was {}){}",
            after.by.join(", "),
            after.by.len(),
            after.need,
            before.by.len(),
            if after.short() {
                "; more admins must run `byreis approve --pinned`"
            } else {
                ""
            }
        ),
    }
    Ok(())
}
