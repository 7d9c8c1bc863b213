//! set, get, list, unset, edit, exec, doctor.

use std::io::{IsTerminal as _, Read as _, Write as _};

use serde_json::json;
use zeroize::Zeroizing;

use super::{print_notes, CliError, CliResult, Format};
use crate::diag::Refusal;
use crate::doctor;
use crate::keys::AgeIdentity;
use crate::names::{self, Kind};
use crate::secret::SecretValue;
use crate::store::{self, Actor, EnvChange};
use crate::submission::{self, DraftChange};
use crate::verify::{self, Context, State};
use crate::yaml::{self, Secrets};

/// Loads and verifies the state, prints its notes, and remembers counters.
pub(super) fn verified(ctx: &Context) -> Result<State, CliError> {
    let mut state = verify::load(ctx)?;
    print_notes(state.notes());
    remember(ctx, &mut state);
    Ok(state)
}

/// Records what this run verified (high-water marks under $BYREIS_HOME, in
/// every mode); says once when it cannot.
pub(super) fn remember(ctx: &Context, state: &mut State) {
    if let Err(e) = state.remember(&ctx.home) {
        eprintln!("byreis: warning: this machine could not record what it has verified ({e}); it cannot refuse a later rollback to an older state. Give byreis a writable BYREIS_HOME");
    }
}

pub(super) fn check_env(env: &str) -> CliResult {
    names::check(Kind::Environment, env)?;
    Ok(())
}

/// Warns, at once, about each of `names` that `exec` will refuse in `env`
/// (a family refuses it and the signed state does not allow it there).
/// The value is still stored: this is a warning, not a refusal.
fn warn_exec_refuses<'a>(state: &State, env: &str, names: impl IntoIterator<Item = &'a String>) {
    let allowed = state.manifest().exec_allow_for(env);
    for name in names {
        if let Some(why) = crate::exec::refusal(name, &allowed) {
            eprintln!(
                "byreis: warning: `byreis exec {env}` will refuse {name} ({why}); it is stored and `get` serves it, but exec runs nothing while it is set. {}",
                if name.starts_with(crate::exec::RESERVED_PREFIX) {
                    format!("Use another name, or remove it with `byreis unset {env} {name}`")
                } else {
                    format!("If programs really need it, an admin allows it with `byreis exec-allow {env} {name}`")
                }
            );
        }
    }
}

/// An environment that must already exist (for reads).
pub(super) fn require_env(state: &State, env: &str) -> CliResult {
    if state.manifest().environments.contains_key(env) {
        return Ok(());
    }
    let known: Vec<&str> = state
        .manifest()
        .environments
        .keys()
        .map(String::as_str)
        .collect();
    Err(CliError::Refused(Refusal::UnknownEnvironment, format!(
        "no environment {env} in project {} (known: {}); an admin creates one with `byreis set {env} NAME`",
        state.manifest().project,
        if known.is_empty() { "none yet".into() } else { known.join(", ") }
    )))
}

/// Reads the new value: from the argument, else stdin (hidden prompt on a TTY).
fn read_value(value: Option<String>) -> Result<Zeroizing<String>, CliError> {
    if let Some(v) = value {
        eprintln!("byreis: note: a value on the command line can end up in shell history; omit it to read stdin");
        return Ok(Zeroizing::new(v));
    }
    if std::io::stdin().is_terminal() {
        let v = dialoguer::Password::new()
            .with_prompt("Value")
            .allow_empty_password(true)
            .interact()
            .map_err(|e| CliError::Refused(Refusal::IoFailed, e.to_string()))?;
        return Ok(Zeroizing::new(v));
    }
    let mut buf = Zeroizing::new(String::new());
    std::io::stdin()
        .take(yaml::MAX_SECRETS_BYTES as u64 + 1)
        .read_to_string(&mut buf)
        .map_err(|e| {
            CliError::Refused(
                Refusal::IoFailed,
                format!("reading the value from stdin: {e}"),
            )
        })?;
    if buf.len() > yaml::MAX_SECRETS_BYTES {
        return Err(CliError::Refused(
            Refusal::BadInput,
            "the value is larger than 1 MiB".into(),
        ));
    }
    if buf.ends_with('\n') {
        buf.pop();
        if buf.ends_with('\r') {
            buf.pop();
        }
    }
    Ok(buf)
}

fn current(state: &State, env: &str, actor: &Actor) -> Result<Secrets, CliError> {
    if state.manifest().environments.contains_key(env) {
        Ok(state.secrets(env, &actor.identity)?)
    } else {
        Ok(Secrets::new())
    }
}

/// `env`'s current secrets if the actor reads it (a member who is not an
/// admin may propose a value for an environment they cannot read).
fn readable(state: &State, env: &str, actor: &Actor) -> Result<Option<Secrets>, CliError> {
    require_env(state, env)?;
    if state.readers(env).contains(&actor.identity.recipient()) {
        Ok(Some(state.secrets(env, &actor.identity)?))
    } else {
        Ok(None)
    }
}

/// The verified state and the actor, for a write. A member who is not an
/// admin (by this machine's copy of the registry) fetches the registry
/// first: their change will be encrypted to its admins, so the copy must
/// be current (ADR 0014).
fn for_write(ctx: &Context) -> Result<(State, Actor), CliError> {
    let actor = Actor::load(&ctx.home)?;
    if let Some(location) = submission::registry_to_refresh(ctx, &actor) {
        // Never fetch a location only byreis.yaml names (a project writer
        // could point it at any host).
        let project = verify::Project::open(&ctx.dir)?;
        if !verify::pin_for(ctx, &project)?.may_fetch(&ctx.home) {
            return Err(verify::VerifyError {
                code: crate::diag::Code::RegistryUnconfirmed,
                detail: "a proposal is encrypted to the registry's current admins, so byreis fetches the registry first, and it fetches only a location you named or one its copy of the registry confirms: set BYREIS_REGISTRY, or run `byreis trust --registry LOCATION --anchor FP` (nothing was changed)".into(),
            }
            .into());
        }
        crate::remote::refresh_registry(&ctx.home, &location).map_err(|e| {
            CliError::Refused(e.code(), format!(
                "{e}; a proposal is encrypted to the registry's current admins, so it needs a current copy (nothing was changed)"
            ))
        })?;
    }
    Ok((verified(ctx)?, actor))
}

/// [`readable`], refusing when the actor cannot read `env`: they cannot
/// `what` it.
fn must_read(state: &State, env: &str, actor: &Actor, what: &str) -> Result<Secrets, CliError> {
    readable(state, env, actor)?.ok_or_else(|| {
        CliError::Refused(
            Refusal::NotAReader,
            format!("you do not read {env}, so you cannot {what}; nothing was changed"),
        )
    })
}

/// A change by a member who is not an admin (ADR 0014), on a state
/// verified after fetching the registry ([`for_write`]): added to the
/// member's draft. Nothing else moves.
fn propose(
    state: State,
    actor: &Actor,
    make: impl FnOnce(&State) -> Result<Vec<DraftChange>, CliError>,
) -> CliResult {
    let changes = make(&state)?;
    if changes.iter().all(DraftChange::is_empty) {
        eprintln!("byreis: nothing to propose");
        return Ok(());
    }
    let d = submission::add_to_draft(&state, actor, changes)?;
    for (env, to) in &d.envs {
        eprintln!(
            "byreis: you are not an admin, so this is a proposal: a change to {env} was added to your draft, encrypted only to the admins who read it ({})",
            to.join(", ")
        );
    }
    eprintln!(
        "byreis: your draft ({}) holds {} change(s); nothing else changed, and `get` still serves the signed values. Send it with `byreis submit`",
        d.branch, d.changes
    );
    Ok(())
}

/// `byreis submit [--discard]`.
pub fn submit(ctx: &Context, discard: bool, format: Format) -> CliResult {
    let state = verified(ctx)?;
    let actor = Actor::load(&ctx.home)?;
    if discard {
        let n = submission::discard(&state, &actor)?;
        eprintln!("byreis: dropped your draft ({n} change(s)); nothing was sent");
        return Ok(());
    }
    let mut s = submission::submit(&state, &actor)?;
    crate::pulls::open_for_submission(&mut s);
    if format == Format::Json {
        println!("{}", json!(s));
        return Ok(());
    }
    eprintln!(
        "byreis: submitted {} change(s) as branch {}{}",
        s.changes,
        s.branch,
        if s.pushed {
            " (pushed to origin)"
        } else {
            " (this clone has no origin: it stays here; push it, or an admin approves it in this clone)"
        }
    );
    if let Some(line) = &s.pull_request {
        eprintln!("byreis: {line}");
    }
    eprintln!(
        "byreis: an admin who reads the environments it changes checks and applies it with `byreis approve {}`; until then `get` serves the signed values",
        s.branch
    );
    Ok(())
}

/// A value from a file (`set --from-file`): its bytes exactly, trailing
/// newline included; text only, as every byreis value is.
fn read_file_value(path: &std::path::Path) -> Result<Zeroizing<String>, CliError> {
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(yaml::MAX_SECRETS_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| {
            CliError::Refused(
                Refusal::IoFailed,
                format!("{}: {e}; nothing was changed", path.display()),
            )
        })?;
    if bytes.len() > yaml::MAX_SECRETS_BYTES {
        return Err(CliError::Refused(
            Refusal::BadInput,
            format!(
                "{} is larger than 1 MiB; nothing was changed",
                path.display()
            ),
        ));
    }
    if bytes.contains(&0) || std::str::from_utf8(&bytes).is_err() {
        return Err(CliError::Refused(
            Refusal::BadInput,
            format!(
                "{} is binary (not UTF-8 text, or it holds NUL bytes) and byreis values are text: store it as base64 (`base64 -w0 {} | byreis set ENV NAME`) and decode it where it is used; nothing was changed",
                path.display(),
                path.display()
            ),
        ));
    }
    let text = std::str::from_utf8(&bytes).expect("checked");
    Ok(Zeroizing::new(text.to_string()))
}

pub fn set(
    ctx: &Context,
    env: &str,
    key: &str,
    value: Option<String>,
    from_file: Option<&std::path::Path>,
) -> CliResult {
    let read_value = |v: Option<String>| match from_file {
        Some(p) => read_file_value(p),
        None => read_value(v),
    };
    check_env(env)?;
    names::check(Kind::SecretKey, key)?;
    let (state, actor) = for_write(ctx)?;
    warn_exec_refuses(&state, env, [&key.to_string()]);
    // The one decision of how the change lands (store::route); an
    // admin's direct or proposed change goes on below.
    if store::route(&state, &actor)? == store::Route::Draft {
        let value = SecretValue::new(read_value(value)?);
        return propose(state, &actor, |state| {
            let mut change = DraftChange::between(env, &Secrets::new(), &Secrets::new());
            if let Some(cur) = readable(state, env, &actor)? {
                change
                    .was
                    .insert(key.to_string(), submission::fingerprint(cur.get(key)));
            }
            change.set.insert(key.to_string(), value);
            Ok(vec![change])
        });
    }
    let value = read_value(value)?;
    let mut secrets = current(&state, env, &actor)?;
    let created = !state.manifest().environments.contains_key(env);
    secrets.insert(key.to_string(), SecretValue::new(value));
    let landed = store::commit_change(
        ctx,
        state,
        &actor,
        EnvChange {
            env: env.to_string(),
            secrets,
            action: "set",
        },
    )?;
    super::report(landed, |counter| {
        format!(
            "byreis: set {key} in {env}{} (counter {counter}, signed commit and registry record written)",
            if created { " (new environment)" } else { "" }
        )
    });
    Ok(())
}

pub fn unset(ctx: &Context, env: &str, key: &str) -> CliResult {
    check_env(env)?;
    names::check(Kind::SecretKey, key)?;
    let (state, actor) = for_write(ctx)?;
    // The one decision of how the change lands (store::route); an
    // admin's direct or proposed change goes on below.
    if store::route(&state, &actor)? == store::Route::Draft {
        return propose(state, &actor, |state| {
            let before = must_read(state, env, &actor, "propose removing from it")?;
            let mut after = before.clone();
            if after.remove(key).is_none() {
                return Err(CliError::Refused(
                    Refusal::UnknownKey,
                    format!("{env} has no secret named {key}; nothing was changed"),
                ));
            }
            Ok(vec![DraftChange::between(env, &before, &after)])
        });
    }
    let mut secrets = current(&state, env, &actor)?;
    if secrets.remove(key).is_none() {
        return Err(CliError::Refused(
            Refusal::UnknownKey,
            format!("{env} has no secret named {key}; nothing was changed"),
        ));
    }
    let landed = store::commit_change(
        ctx,
        state,
        &actor,
        EnvChange {
            env: env.to_string(),
            secrets,
            action: "unset",
        },
    )?;
    super::report(landed, |counter| {
        format!("byreis: removed {key} from {env} (counter {counter})")
    });
    Ok(())
}

/// `byreis diff [REV]`: the name-level change from the state at REV.
pub fn diff(ctx: &Context, rev: Option<&str>, format: Format) -> CliResult {
    let state = verified(ctx)?;
    // A revision that names no commit is a usage error (exit 2), not a
    // verification failure (issue 17).
    let rev = match rev {
        Some(r) => match state.project().repo.resolve_commit(r) {
            Ok(c) => Some(c),
            Err(_) => {
                super::render_error(
                    &CliError::Refused(
                        Refusal::Usage,
                        format!(
                            "{} names no commit of this repository (give a commit, tag or branch: `git log --oneline -- .byreis/manifest.yaml` lists the signed states)",
                            names::quoted(r)
                        ),
                    ),
                    format,
                );
                return Err(CliError::Exit(2));
            }
        },
        None => None,
    };
    let identity = AgeIdentity::load(&ctx.home)?;
    let d = crate::diff::diff(&state, &identity, rev.as_deref())?;
    if format == Format::Json {
        println!("{}", json!(d));
        return Ok(());
    }
    let short = |c: &str| c[..12.min(c.len())].to_string();
    println!(
        "from counter {} (commit {}) to counter {} (commit {})",
        d.from_counter,
        short(&d.from_commit),
        d.to_counter,
        short(&d.to_commit)
    );
    for line in &d.readers {
        println!("  {line}");
    }
    for e in &d.envs {
        if !e.readable {
            println!(
                "  {}: the file changed; you cannot read both states, so this output leaves its secret names out (they are not secret: the project's audit log, readable by anyone with the repository, names every secret set)",
                e.env
            );
            continue;
        }
        for (what, list) in [
            ("added", &e.added),
            ("changed", &e.changed),
            ("removed", &e.removed),
        ] {
            if !list.is_empty() {
                println!("  {}: {what}: {}", e.env, list.join(", "));
            }
        }
        if e.added.is_empty() && e.changed.is_empty() && e.removed.is_empty() {
            println!("  {}: re-encrypted, no value changed", e.env);
        }
        for f in &e.flags {
            println!("  {}: FLAGGED {}: {}", e.env, f.name, f.reason);
        }
    }
    if d.readers.is_empty() && d.envs.is_empty() {
        println!("  no change");
    }
    Ok(())
}

pub fn get(ctx: &Context, env: &str, key: &str, format: Format) -> CliResult {
    check_env(env)?;
    names::check(Kind::SecretKey, key)?;
    let state = verified(ctx)?;
    require_env(&state, env)?;
    let identity = AgeIdentity::load(&ctx.home)?;
    let secrets = state.secrets(env, &identity)?;
    let Some(value) = secrets.get(key) else {
        return Err(CliError::Refused(
            Refusal::UnknownKey,
            format!("{env} has no secret named {key} (`byreis list {env}` shows the names)"),
        ));
    };
    let mut out = std::io::stdout().lock();
    let text = match format {
        Format::Text => Zeroizing::new(format!("{}\n", value.expose())),
        Format::Json => Zeroizing::new(format!(
            "{}\n",
            json!({"env": env, "key": key, "value": value.expose()})
        )),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

pub fn list(ctx: &Context, env: Option<&str>, long: bool, format: Format) -> CliResult {
    if let Some(e) = env {
        check_env(e)?;
    }
    let state = verified(ctx)?;
    if let Some(e) = env {
        require_env(&state, e)?;
    }
    let identity = AgeIdentity::load(&ctx.home)?;
    let me = identity.recipient();
    let envs: Vec<String> = match env {
        Some(e) => vec![e.to_string()],
        None => state.manifest().environments.keys().cloned().collect(),
    };
    let mut listing = Vec::new();
    for e in &envs {
        let readable = state.readers(e).contains(&me) || env.is_some();
        let names: Option<Vec<String>> = if readable {
            Some(state.secrets(e, &identity)?.keys().cloned().collect())
        } else {
            // Still check the file, so a tampered environment is reported.
            state.env_file(e)?;
            None
        };
        listing.push((e.clone(), names));
    }
    let ages = crate::value_age::value_ages(state.audit());
    let age = |e: &str, k: &str| ages.get(&(e.to_string(), k.to_string()));
    let line = |e: &str, k: &str| match age(e, k) {
        Some(a) if long => format!(
            "{k}  changed in byreis on {} by {} (counter {}, {})",
            a.changed,
            names::escape(&a.by),
            a.counter,
            a.action
        ),
        None if long => format!("{k}  no change to it in the signed audit log"),
        _ => k.to_string(),
    };
    match format {
        Format::Json => {
            let v: Vec<_> = listing
                .iter()
                .map(|(e, n)| {
                    let values = n.as_ref().map(|keys| {
                        keys.iter()
                            .map(|k| json!({"name": k, "last_change": age(e, k)}))
                            .collect::<Vec<_>>()
                    });
                    json!({"env": e, "readable": n.is_some(), "keys": n, "values": values})
                })
                .collect();
            println!(
                "{}",
                json!({"project": state.manifest().project, "counter": state.manifest().counter, "environments": v})
            );
        }
        Format::Text => {
            for (e, n) in &listing {
                match n {
                    Some(keys) if env.is_some() => {
                        keys.iter().for_each(|k| println!("{}", line(e, k)))
                    }
                    Some(keys) => {
                        println!("{e}:");
                        keys.iter().for_each(|k| println!("  {}", line(e, k)));
                    }
                    None => println!("{e}: (you are not a reader)"),
                }
            }
        }
    }
    Ok(())
}

const EDIT_HEADER: &str = "# byreis: editing {ENV}. One `NAME: value` per line; names are environment\n# variable names. Quote values with \"…\" to keep special characters exact.\n# Save and quit to apply; quit without saving (or exit non-zero) to cancel.\n";

pub fn edit(ctx: &Context, env: &str) -> CliResult {
    check_env(env)?;
    let (state, actor) = for_write(ctx)?;
    // The one decision of how the change lands (store::route); an
    // admin's direct or proposed change goes on below.
    if store::route(&state, &actor)? == store::Route::Draft {
        return propose(state, &actor, |state| {
            let before = must_read(
                state,
                env,
                &actor,
                &format!("edit it (`byreis set {env} NAME` proposes a value without reading)"),
            )?;
            let Some(after) = edit_secrets(ctx, env, &before)? else {
                return Ok(Vec::new());
            };
            warn_exec_refuses(state, env, after.keys());
            Ok(vec![DraftChange::between(env, &before, &after)])
        });
    }
    let before = current(&state, env, &actor)?;
    let Some(after) = edit_secrets(ctx, env, &before)? else {
        return Ok(());
    };
    warn_exec_refuses(&state, env, after.keys());
    let landed = store::commit_change(
        ctx,
        state,
        &actor,
        EnvChange {
            env: env.to_string(),
            secrets: after,
            action: "edit",
        },
    )?;
    super::report(landed, |counter| {
        format!("byreis: saved {env} (counter {counter})")
    });
    Ok(())
}

/// The first line of the error a failed edit reopens with.
const EDIT_ERROR_MARK: &str = "# byreis: this did not parse: ";

/// `text` without the error lines a previous round put on top.
fn strip_edit_error(text: &str) -> &str {
    if !text.starts_with(EDIT_ERROR_MARK) {
        return text;
    }
    let mut rest = text;
    for _ in 0..3 {
        match rest.split_once('\n') {
            Some((line, tail)) if line.starts_with('#') => rest = tail,
            _ => break,
        }
    }
    rest
}

/// Opens `before` in the editor until it parses; `None` when nothing
/// changed.
fn edit_secrets(ctx: &Context, env: &str, before: &Secrets) -> Result<Option<Secrets>, CliError> {
    let mut text = Zeroizing::new(EDIT_HEADER.replace("{ENV}", env));
    text.push_str(&yaml::emit_secrets(before));
    let after = loop {
        let edited = crate::editor::edit(&format!("{env}.yaml"), &text)?;
        if edited.returned_at_once && *edited.text == *text {
            eprintln!("byreis: warning: the editor returned at once without changes; if it opens a window in the background, give it its wait flag (for example EDITOR=\"code --wait\")");
        }
        match yaml::parse_secrets(&edited.text) {
            Ok(s) => break s,
            // As `kubectl edit` does: the editor opens again on what was
            // typed, the error on top, so nothing typed is lost (issue
            // 17). Saving it unchanged cancels.
            Err(e) if ctx.interactive => {
                if *edited.text == *text && text.starts_with(EDIT_ERROR_MARK) {
                    return Err(CliError::Refused(
                        Refusal::Cancelled,
                        format!("edit cancelled (saved unchanged after an error: {e}); nothing was changed"),
                    ));
                }
                eprintln!("byreis: {e}; reopening the editor with the error on top");
                let mut again = Zeroizing::new(String::with_capacity(edited.text.len() + 256));
                again.push_str(EDIT_ERROR_MARK);
                again.push_str(&e.to_string().replace('\n', " "));
                again.push_str("\n# Fix it and save to try again, or save it unchanged to cancel. Nothing is\n# changed until the file parses.\n");
                again.push_str(strip_edit_error(&edited.text));
                text = again;
            }
            Err(e) => {
                return Err(CliError::Refused(
                    e.code(),
                    format!("{e}; nothing was changed (without a terminal the editor is not reopened: run `byreis edit` at a terminal to fix the file in place)"),
                ))
            }
        }
    };
    if after == *before {
        eprintln!("byreis: no changes to {env}");
        return Ok(None);
    }
    Ok(Some(after))
}

pub fn exec(
    ctx: &Context,
    env: &str,
    overrides: &[String],
    override_all: bool,
    files: &[crate::exec::FileVar],
    command: &[std::ffi::OsString],
) -> CliResult {
    use std::os::unix::process::CommandExt as _;
    check_env(env)?;
    let state = verified(ctx)?;
    require_env(&state, env)?;
    let identity = AgeIdentity::load(&ctx.home)?;
    let secrets = state.secrets(env, &identity)?;
    let child = crate::exec::child_env(
        std::env::vars_os(),
        env,
        &secrets,
        &state.manifest().exec_allow_for(env),
        overrides,
        override_all,
        files,
    )?;
    for name in &child.replaced {
        if child.files.iter().any(|f| &f.var == name) {
            eprintln!(
                "byreis: note: {name} (--file) replaces the inherited variable of the same name"
            );
        } else {
            eprintln!(
                "byreis: note: secret {name} replaces the inherited variable of the same name"
            );
        }
    }
    let (program, args) = command.split_first().expect("clap requires a command");
    if !child.files.is_empty() {
        let values = child
            .files
            .iter()
            .map(|f| crate::editor::FileValue {
                var: f.var.clone(),
                name: f.name.clone(),
                value: Zeroizing::new(secrets[&f.name].expose().to_string()),
            })
            .collect();
        drop(secrets);
        drop(state);
        // byreis stays to remove the files when the program ends.
        return match crate::editor::run_with_files(program, args, child.vars, values) {
            Ok(0) => Ok(()),
            Ok(code) => Err(CliError::Exit(code)),
            Err(e @ crate::editor::RunError::Spawn { .. }) => {
                let exit = match &e {
                    crate::editor::RunError::Spawn { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        127
                    }
                    _ => 126,
                };
                super::render_error(
                    &CliError::Refused(Refusal::ExecFailed, e.to_string()),
                    Format::Text,
                );
                Err(CliError::Exit(exit))
            }
            Err(e) => Err(CliError::Refused(
                match e {
                    crate::editor::RunError::NoTmpfs(_) => Refusal::ExecRefused,
                    _ => Refusal::IoFailed,
                },
                e.to_string(),
            )),
        };
    }
    // The verified state (and a treeless tree's scratch repository) is
    // dropped before the process is replaced: nothing would drop it after.
    drop(secrets);
    drop(state);
    // Resolve the program with the caller's PATH, not one from a secret.
    let err = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(&child.vars)
        .exec();
    // As env, sudo and docker do: 127 when the program is not found, 126
    // when it is there but cannot be run.
    let exit = match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    super::render_error(
        &CliError::Refused(
            Refusal::ExecFailed,
            format!("could not run {}: {err}", program.to_string_lossy()),
        ),
        Format::Text,
    );
    Err(CliError::Exit(exit))
}

/// `byreis exec-allow ENV NAME [--remove]` (admin).
pub fn exec_allow(ctx: &Context, env: &str, name: &str, remove: bool) -> CliResult {
    check_env(env)?;
    names::check(Kind::SecretKey, name)?;
    let state = verified(ctx)?;
    let actor = Actor::load(&ctx.home)?;
    match store::exec_allow(ctx, state, &actor, env, name, remove)? {
        store::ExecAllowed::Unchanged(why) => eprintln!("byreis: {why}"),
        store::ExecAllowed::Changed(landed) => super::report(landed, |counter| {
            if remove {
                format!(
                    "byreis: exec no longer passes {name} in {env}: `byreis exec {env}` refuses it again (counter {counter}, signed and audited)"
                )
            } else {
                format!(
                    "byreis: exec now passes {name} in {env} (counter {counter}, signed and audited as exec-allow); undo with `byreis exec-allow {env} {name} --remove`"
                )
            }
        }),
    }
    Ok(())
}

pub fn doctor(ctx: &Context, decrypt: bool, format: Format) -> CliResult {
    let identity = if decrypt {
        Some(AgeIdentity::load(&ctx.home)?)
    } else {
        None
    };
    report(&doctor::run(ctx, identity.as_ref()), format)
}

/// Prints checks as text or JSON; exit 3 if any failed.
fn report(checks: &[doctor::Check], format: Format) -> CliResult {
    super::print_queued();
    let failed = doctor::failed(checks);
    match format {
        Format::Json => println!("{}", json!({"ok": !failed, "checks": checks})),
        Format::Text => {
            for c in checks {
                println!("{}", super::render::check_line(c));
            }
        }
    }
    if failed {
        return Err(CliError::Exit(super::EXIT_VERIFY));
    }
    Ok(())
}

pub fn registry_verify(
    ctx: &Context,
    path: Option<std::path::PathBuf>,
    anchor: &str,
    format: Format,
) -> CliResult {
    let dir = path.unwrap_or_else(|| ctx.dir.clone());
    let reg = crate::registry::Registry::open(&dir)
        .map_err(|e| CliError::Refused(e.code(), format!("{}: {e}", dir.display())))?;
    report(&doctor::registry_checks(&reg, anchor), format)
}

/// Refuses an import that would create an environment `--new-env` does
/// not name (a typo must not create one), and a `--new-env` that names an
/// existing environment or none of the import's.
fn check_new_envs(
    state: &State,
    envs: &std::collections::BTreeMap<String, Secrets>,
    new_env: &[String],
) -> CliResult {
    let known: Vec<&str> = state
        .manifest()
        .environments
        .keys()
        .map(String::as_str)
        .collect();
    for env in envs.keys() {
        check_env(env)?;
        if !known.contains(&env.as_str()) && !new_env.contains(env) {
            return Err(CliError::Refused(
                Refusal::UnknownEnvironment,
                format!(
                    "the import would create environment {env}, which project {} does not have (known: {}). If you mean to create it, add --new-env {env}; nothing was changed",
                    state.manifest().project,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            ));
        }
    }
    for env in new_env {
        if known.contains(&env.as_str()) {
            return Err(CliError::Refused(
                Refusal::Usage,
                format!("--new-env {env}: {env} already exists; drop --new-env {env}. Nothing was changed"),
            ));
        }
        if !envs.contains_key(env) {
            return Err(CliError::Refused(
                Refusal::Usage,
                format!(
                    "--new-env {env}: the import holds no environment {env}; nothing was changed"
                ),
            ));
        }
    }
    Ok(())
}

pub fn import(
    ctx: &Context,
    file: Option<&std::path::Path>,
    format: crate::import::Format,
    env: Option<&str>,
    new_env: &[String],
) -> CliResult {
    if let Some(e) = env {
        check_env(e)?;
    }
    let mut text = Zeroizing::new(String::new());
    let limit = 256 << 20;
    match file {
        Some(p) => {
            std::fs::File::open(p)
                .and_then(|f| f.take(limit as u64 + 1).read_to_string(&mut text))
                .map_err(|e| {
                    CliError::Refused(Refusal::IoFailed, format!("{}: {e}", p.display()))
                })?;
        }
        None => {
            std::io::stdin()
                .take(limit as u64 + 1)
                .read_to_string(&mut text)?;
        }
    }
    let envs = crate::import::parse(&text, format, env, limit)
        .map_err(|e| CliError::Refused(e.code(), format!("{e}; nothing was changed")))?;
    let (state, actor) = for_write(ctx)?;
    check_new_envs(&state, &envs, new_env)?;
    for (env, new) in &envs {
        warn_exec_refuses(&state, env, new.keys());
    }
    // The one decision of how the change lands (store::route); an
    // admin's direct or proposed change goes on below.
    if store::route(&state, &actor)? == store::Route::Draft {
        return propose(state, &actor, |state| {
            let mut changes = Vec::new();
            for (env, new) in envs {
                let mut change = DraftChange::between(&env, &Secrets::new(), &Secrets::new());
                if let Some(cur) = readable(state, &env, &actor)? {
                    for k in new.keys() {
                        change
                            .was
                            .insert(k.clone(), submission::fingerprint(cur.get(k)));
                    }
                }
                change.set = new;
                changes.push(change);
            }
            Ok(changes)
        });
    }
    let mut changes = Vec::new();
    let mut count = 0;
    for (env, new) in envs {
        let mut secrets = current(&state, &env, &actor)?;
        count += new.len();
        secrets.extend(new);
        changes.push(EnvChange {
            env,
            secrets,
            action: "import",
        });
    }
    let n = changes.len();
    let landed = store::commit_changes(ctx, state, &actor, changes, "import")?;
    let created = if new_env.is_empty() {
        String::new()
    } else {
        format!(", new: {}", new_env.join(", "))
    };
    super::report(landed, |counter| {
        format!("byreis: imported {count} secret(s) into {n} environment(s){created} (counter {counter})")
    });
    Ok(())
}

pub fn rotation_history(ctx: &Context, since: Option<&str>, format: Format) -> CliResult {
    if let Some(s) = since {
        let ok = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
            || (s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok());
        if !ok {
            return Err(CliError::Refused(Refusal::Usage, format!(
                "--since takes YYYY-MM-DD or an RFC 3339 UTC time like 2026-11-22T10:00:00Z, got {}",
                names::quoted(s)
            )));
        }
    }
    let state = verified(ctx)?;
    let rows = crate::history::rotation_history(&state, since);
    let shallow = state.project().repo.is_shallow();
    match format {
        Format::Json => println!(
            "{}",
            json!({
                "project": state.manifest().project,
                "history": if shallow { "unavailable (shallow clone)" } else { "complete" },
                "rotations": rows,
            })
        ),
        Format::Text => {
            if shallow {
                println!("note: this is a shallow clone: commits before its depth are unavailable, not missing (fetch with `git fetch --unshallow`)");
            }
            if rows.is_empty() {
                println!(
                    "no rotations in the audit log{}",
                    since.map(|s| format!(" since {s}")).unwrap_or_default()
                );
            }
            for r in &rows {
                let sig = match r.commit_signature_ok {
                    Some(true) => "signature ok",
                    Some(false) => "SIGNATURE DOES NOT VERIFY",
                    None if shallow => "history unavailable",
                    None => "commit not found",
                };
                let record = match r.record_ok {
                    Some(true) => "registry record ok",
                    Some(false) => "REGISTRY RECORD DOES NOT VERIFY",
                    None => "NO REGISTRY RECORD",
                };
                println!(
                    "#{} {} by {} ({}) counter {}→{}, {} file(s) re-encrypted, commit {} ({sig}), {record}",
                    r.seq,
                    r.time,
                    r.actor,
                    r.actor_key,
                    r.counter_from,
                    r.counter_to,
                    r.files,
                    r.commit.as_deref().map_or("?", |c| &c[..12.min(c.len())]),
                );
                for (what, list) in [("added", &r.added), ("removed", &r.removed)] {
                    for m in list {
                        println!(
                            "    {what} {} ({}) in {}",
                            m.name,
                            m.fingerprint,
                            m.envs.join(", ")
                        );
                    }
                }
                if let Some(req) = &r.request {
                    println!(
                        "    absorbed request of {} ({})",
                        names::escape(req["name"].as_str().unwrap_or("?")),
                        names::escape(req["source"].as_str().unwrap_or("?"))
                    );
                }
                if let Some(reason) = &r.reason {
                    println!("    reason: {}", names::escape(reason));
                }
                if !r.flags.is_empty() {
                    println!("    FLAGGED: {}", r.flags.join(", "));
                }
            }
        }
    }
    // A finding fails the run (exit 3) so CI can gate on it; history that a
    // shallow clone does not have is not a finding.
    let findings = rows
        .iter()
        .flat_map(|r| &r.flags)
        .filter(|f| **f != "history-unavailable")
        .count();
    if findings > 0 {
        eprintln!(
            "byreis: {findings} finding(s) in the rotation history (see FLAGGED; docs/auditing.md says what each means)"
        );
        return Err(CliError::Exit(3));
    }
    Ok(())
}

pub fn deploy_verify(ctx: &Context, format: Format) -> CliResult {
    let mut state = verify::load(ctx)?;
    remember(ctx, &mut state);
    if state.source() != verify::Source::Worktree {
        return Err(verify::VerifyError {
            code: crate::diag::Code::CheckoutNotCurrent,
            detail: format!(
                "the checked-out state is not the one the registry pins (counter {}, commit {}); deploy that commit",
                state.record().counter, state.record().project_commit
            ),
        }
        .into());
    }
    for env in state.manifest().environments.keys() {
        state.env_file(env)?;
    }
    match format {
        Format::Json => println!(
            "{}",
            json!({
                "ok": true,
                "project": state.manifest().project,
                "counter": state.manifest().counter,
                "project_commit": state.record().project_commit,
                "expires": state.record().expires,
                "environments": state.manifest().environments.keys().collect::<Vec<_>>(),
            })
        ),
        Format::Text => println!(
            "verified: project {} counter {} (pinned commit {}), record expires {}",
            state.manifest().project,
            state.manifest().counter,
            state.record().project_commit,
            state.record().expires
        ),
    }
    for (code, msg) in state.notes() {
        eprintln!("byreis: note[{code}]: {msg}");
    }
    Ok(())
}

/// Every name that has been a member of the project: today's members and
/// every name the signed audit log records as added or removed.
fn members_ever(state: &State) -> std::collections::BTreeSet<String> {
    fn walk(
        v: &serde_json::Value,
        under: Option<&str>,
        out: &mut std::collections::BTreeSet<String>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if k == "name" {
                        if let Some(s) = v.as_str() {
                            out.insert(s.to_string());
                        }
                    }
                    walk(v, Some(k), out);
                }
            }
            serde_json::Value::Array(a) => {
                for v in a {
                    if let (Some(s), Some(k)) = (v.as_str(), under) {
                        if k.starts_with("members_") {
                            out.insert(s.to_string());
                        }
                    }
                    walk(v, under, out);
                }
            }
            _ => {}
        }
    }
    let mut out: std::collections::BTreeSet<String> = state
        .manifest()
        .members
        .iter()
        .map(|m| m.name.clone())
        .collect();
    for v in state.audit() {
        walk(&v.entry.details.value(), None, &mut out);
    }
    out
}

/// Every secret name the signed audit log records as set, changed or
/// removed, in `env` (or in any environment).
fn names_ever(state: &State, env: Option<&str>) -> std::collections::BTreeSet<String> {
    fn walk(
        v: &serde_json::Value,
        env: Option<&str>,
        out: &mut std::collections::BTreeSet<String>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                let here = m.get("env").and_then(|e| e.as_str());
                if env.is_none() || here == env {
                    for k in ["keys_added", "keys_changed", "keys_removed"] {
                        for n in m.get(k).and_then(|a| a.as_array()).into_iter().flatten() {
                            if let Some(n) = n.as_str() {
                                out.insert(n.to_string());
                            }
                        }
                    }
                }
                for v in m.values() {
                    walk(v, env, out);
                }
            }
            serde_json::Value::Array(a) => {
                for v in a {
                    walk(v, env, out);
                }
            }
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    for v in state.audit() {
        walk(&v.entry.details.value(), env, &mut out);
    }
    out
}

pub fn exposure(ctx: &Context, name: &str, require_ack: bool, format: Format) -> CliResult {
    names::check(Kind::Member, name)?;
    let state = verified(ctx)?;
    // A typo must not give an auditor a clean "0 secret(s)" (issue 17).
    let ever = members_ever(&state);
    if !ever.contains(name) {
        let hint = names::closest(name, &ever)
            .map(|k| format!(" Did you mean {k}?"))
            .unwrap_or_default();
        super::render_error(
            &CliError::Refused(
                Refusal::UnknownMember,
                format!(
                    "{name} has never been a member of project {} (members now and in the signed audit log: {}).{hint}",
                    state.manifest().project,
                    ever.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            format,
        );
        return Err(CliError::Exit(2));
    }
    let identity = AgeIdentity::load(&ctx.home)?;
    let report = crate::exposure::inventory(&state, &identity, name)
        .map_err(|m| CliError::Refused(Refusal::GitFailed, m))?;
    match format {
        Format::Json => println!("{}", json!(report)),
        Format::Text => {
            println!(
                "exposure of {name}: {} secret(s) across {} file version(s), {} commits walked{}",
                report.secrets.len(),
                report.file_versions,
                report.commits_walked,
                if report.complete { "" } else { " (INCOMPLETE)" }
            );
            for why in &report.incomplete {
                println!("  incomplete: {why}");
            }
            for s in &report.secrets {
                let status = match &s.status {
                    crate::exposure::Status::Unchanged => "UNCHANGED (the value they could read is still in use)".to_string(),
                    crate::exposure::Status::ChangedInByreis { since_counter, since_time } => format!(
                        "changed in byreis{} (byreis cannot know whether the old value was revoked at its issuer)",
                        match (since_counter, since_time) {
                            (Some(c), Some(t)) => format!(" at counter {c}, {t}"),
                            _ => String::new(),
                        }
                    ),
                    crate::exposure::Status::Acknowledged { by, time, note } => {
                        format!("acknowledged by {by} at {time}: {}", names::escape(note))
                    }
                };
                println!(
                    "  {}/{}: {status}; {} value(s) seen",
                    s.env,
                    s.key,
                    s.value_fingerprints.len()
                );
            }
        }
    }
    let open = if require_ack {
        report.unacknowledged()
    } else {
        report.unchanged()
    };
    if open > 0 {
        return Err(CliError::Exit(super::EXIT_EXPOSED));
    }
    Ok(())
}

pub fn exposure_ack(
    ctx: &Context,
    name: &str,
    env: Option<&str>,
    keys: &[String],
    note: &str,
) -> CliResult {
    let state = verified(ctx)?;
    // Only what was ever there is acknowledged (issue 17: `NOPE` was signed
    // into the audit log).
    let ever = members_ever(&state);
    if !ever.contains(name) {
        let hint = names::closest(name, &ever)
            .map(|k| format!(" Did you mean {k}?"))
            .unwrap_or_default();
        return Err(CliError::Refused(
            Refusal::UnknownMember,
            format!(
                "{name} has never been a member of project {}; nothing was changed.{hint}",
                state.manifest().project
            ),
        ));
    }
    if let Some(e) = env {
        require_env(&state, e)?;
    }
    let known = names_ever(&state, env);
    for k in keys {
        if !known.contains(k) {
            let hint = names::closest(k, &known)
                .map(|c| format!(" Did you mean {c}?"))
                .unwrap_or_default();
            return Err(CliError::Refused(
                Refusal::UnknownKey,
                format!(
                    "{k} was never a secret of {} (by the signed audit log); nothing was changed.{hint}",
                    env.unwrap_or("any environment")
                ),
            ));
        }
    }
    let actor = Actor::load(&ctx.home)?;
    let landed = store::ack_exposure(ctx, state, &actor, name, env, keys, note)?;
    super::report(landed, |counter| {
        format!(
            "byreis: recorded that {name}'s old values of {} are revoked at their issuers (counter {counter})",
            keys.join(", ")
        )
    });
    Ok(())
}
