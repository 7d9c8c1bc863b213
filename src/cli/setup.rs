//! keygen, whoami, registry init, init, trust.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{print_notes, CliError, CliResult, Format};
use crate::diag::{Code, Refusal};
use crate::keys::{self, AgeIdentity, Profile, Signer};
use crate::names::{self, Kind};
use crate::store;
use crate::trust::{self, Pin};
use crate::verify::{self, Context, Project, VerifyError};

pub fn keygen(
    ctx: &Context,
    name: &str,
    email: Option<String>,
    adopt: Option<PathBuf>,
) -> CliResult {
    names::check(Kind::Member, name)?;
    if let Some(e) = &email {
        if e.chars().any(|c| c.is_control() || c == '<' || c == '>') || e.len() > 254 {
            return Err(CliError::Refused(
                Refusal::Usage,
                format!("invalid email {}", names::quoted(e)),
            ));
        }
    }
    let home = &ctx.home;
    home.ensure()?;
    let id_path = home.identity_path();
    let key_path = home.signing_key_path();
    let profile_path = home.profile_path();
    // Refuse before writing anything, so a refusal leaves nothing half-made.
    let mut targets = vec![id_path.clone(), profile_path.clone()];
    if adopt.is_none() {
        targets.push(key_path.clone());
        targets.push(key_path.with_extension("pub"));
    }
    for t in &targets {
        if t.exists() {
            return Err(keys::KeyError::Exists(t.display().to_string()).into());
        }
    }
    let signer_path = match &adopt {
        Some(p) => {
            let abs = p.canonicalize().map_err(|e| {
                CliError::Refused(Refusal::IoFailed, format!("{}: {e}", p.display()))
            })?;
            Signer::load(&abs, &ctx.home.keys)?;
            abs
        }
        None => key_path.clone(),
    };
    let identity = AgeIdentity::generate();
    keys::write_new(&id_path, identity.to_file_text().as_bytes(), 0o600)?;
    let signer = match &adopt {
        Some(_) => Signer::load(&signer_path, &ctx.home.keys)?,
        None => {
            let s = Signer::generate(&format!("{name}@byreis"))?;
            keys::write_new(&key_path, s.to_openssh_private()?.as_bytes(), 0o600)?;
            keys::write_new(
                &key_path.with_extension("pub"),
                format!("{}\n", s.public_openssh_with_comment()).as_bytes(),
                0o644,
            )?;
            s
        }
    };
    let profile = Profile {
        name: name.to_string(),
        email,
        signing_key: signer_path,
    };
    keys::write_new(
        &profile_path,
        serde_yaml::to_string(&profile)
            .expect("profile serializes")
            .as_bytes(),
        0o600,
    )?;
    eprintln!("byreis: created keys for {name} in {}", home.dir.display());
    println!("age recipient:   {}", identity.recipient().as_str());
    println!("signing key:     {}", signer.public.to_openssh());
    println!("key fingerprint: {}", signer.public.fingerprint());
    Ok(())
}

pub fn whoami(ctx: &Context, format: Format) -> CliResult {
    let profile = Profile::load(&ctx.home)?.ok_or(keys::KeyError::NoSigningKey)?;
    let identity = AgeIdentity::load(&ctx.home)?;
    let signer = Signer::load_for(&profile, &ctx.home)?;
    let r = identity.recipient();
    match format {
        Format::Json => println!(
            "{}",
            json!({
                "name": profile.name,
                "email": profile.email,
                "age_recipient": r.as_str(),
                "age_fingerprint": r.fingerprint(),
                "signing_key": signer.public.to_openssh(),
                "signing_fingerprint": signer.public.fingerprint(),
                "identity_source": identity.source,
            })
        ),
        Format::Text => {
            println!("name:                {}", profile.name);
            if let Some(e) = &profile.email {
                println!("email:               {}", names::escape(e));
            }
            println!("age recipient:       {}", r.as_str());
            println!("age fingerprint:     {}", r.fingerprint());
            println!("signing key:         {}", signer.public.to_openssh());
            println!("signing fingerprint: {}", signer.public.fingerprint());
            println!("identity from:       {}", identity.source);
        }
    }
    Ok(())
}

pub fn registry_init(ctx: &Context, path: &Path, location: Option<&str>) -> CliResult {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        ctx.dir.join(path)
    };
    let anchor = store::registry_init(&ctx.home, &path, location)?;
    eprintln!("byreis: created the admin registry at {}", path.display());
    eprintln!("byreis: give this anchor fingerprint to your team over a channel other than git (in person, a call, a signed chat); they will type it into `byreis trust`:");
    println!("{anchor}");
    Ok(())
}

pub fn init(ctx: &Context, project: &str, registry: &str) -> CliResult {
    let anchor = store::init_project(ctx, project, registry)?;
    eprintln!("byreis: initialised project {project} (counter 1); this machine now trusts anchor {anchor}");
    eprintln!("byreis: commit is signed; teammates run `byreis trust` and type the anchor fingerprint you give them");
    Ok(())
}

pub fn trust(
    ctx: &Context,
    anchor: Option<String>,
    registry_arg: Option<String>,
    project_arg: Option<String>,
    show: bool,
) -> CliResult {
    let project = Project::open(&ctx.dir)?;
    let existing = trust::load(&ctx.home, &project.repo.common_dir())?;
    if show {
        match &existing {
            Some(p) => {
                println!("{}", p.anchor);
                eprintln!("registry: {}", names::escape(&p.registry));
                eprintln!(
                    "seen: roster version {}, counter {}",
                    p.roster_version_seen, p.counter_seen
                );
            }
            None => {
                return Err(VerifyError {
                    code: Code::AnchorNotTrusted,
                    detail: "this machine has not pinned an anchor for this repository".into(),
                }
                .into())
            }
        }
        return Ok(());
    }
    // The project: --project, else BYREIS_PROJECT (the user's), else
    // byreis.yaml's. Re-pinning this repository as another project than
    // the one trusted before needs the user to name it.
    let named = project_arg.or_else(|| {
        std::env::var("BYREIS_PROJECT")
            .ok()
            .filter(|s| !s.is_empty())
    });
    if let Some(n) = &named {
        if *n != project.config.project {
            return Err(VerifyError {
                code: Code::ProjectMismatch,
                detail: format!(
                    "byreis.yaml names project {} but you named {}; nothing was trusted",
                    names::quoted(&project.config.project),
                    names::quoted(n)
                ),
            }
            .into());
        }
    }
    if let Some(old) = existing.as_ref().and_then(|p| p.project.as_deref()) {
        if old != project.config.project && named.is_none() {
            return Err(VerifyError {
                code: Code::ProjectMismatch,
                detail: format!(
                    "this machine trusted this repository as project {}, and byreis.yaml now names {}. Someone who can push to the project may have copied another project's files here. Only if an admin confirms that this repository really is {} now, run `byreis trust --project {}`; nothing was trusted",
                    names::quoted(old),
                    names::quoted(&project.config.project),
                    names::quoted(&project.config.project),
                    project.config.project
                ),
            }
            .into());
        }
    }
    // The location: --registry, else BYREIS_REGISTRY (both the user's), else
    // byreis.yaml's hint, which counts only if the signed roster states it.
    let (location, from_user) = match registry_arg {
        Some(l) => (verify::resolve_location(&ctx.dir, &l)?, true),
        None => match verify::env_registry(ctx)? {
            Some(l) => (l, true),
            None => (project.registry_location()?, false),
        },
    };
    verify::check_registry_outside(&project.repo, &location)?;
    eprintln!(
        "byreis: project {}, registry {}{}",
        names::escape(&project.config.project),
        names::escape(&location),
        if from_user {
            ""
        } else {
            " (named only by byreis.yaml)"
        }
    );
    // Everything the user must give comes before any git runs.
    let typed = match anchor {
        Some(a) => a,
        None if ctx.interactive => dialoguer::Input::<String>::new()
            .with_prompt("Type the anchor fingerprint an admin gave you (over a channel other than this repository)")
            .interact_text()
            .map_err(|e| CliError::Refused(Refusal::IoFailed, e.to_string()))?,
        None => {
            return Err(CliError::Refused(Refusal::NotInteractive,
                "non-interactive run: pass --anchor FP with the fingerprint an admin gave you".into(),
            ))
        }
    };
    if verify::is_url(&location) {
        let dir = verify::registry_dir(&ctx.home, &location);
        if !from_user && !dir.exists() {
            // Cloning a URL only the project names would connect to a host
            // a project writer chose.
            let agreed = ctx.interactive
                && dialoguer::Confirm::new()
                    .with_prompt(format!(
                        "Clone the registry from {}? Only byreis.yaml names it, and anyone who can push to the project can edit that; say yes only if an admin gave you this location",
                        names::escape(&location)
                    ))
                    .default(false)
                    .interact()
                    .map_err(|e| CliError::Refused(Refusal::IoFailed, e.to_string()))?;
            if !agreed {
                return Err(VerifyError {
                    code: Code::RegistryUnconfirmed,
                    detail: format!(
                        "{} is named only by byreis.yaml; nothing was fetched or trusted. Run `byreis trust --registry LOCATION --anchor FP` with the location an admin gave you",
                        names::quoted(&location)
                    ),
                }
                .into());
            }
        }
        if dir.exists() {
            crate::remote::update(&dir)?;
        } else {
            crate::remote::clone(&ctx.home, &location)?;
        }
    }
    let registry = verify::open_registry(&ctx.home, &location)?;
    let c = keys::normalise_fingerprint(&typed);
    if let Some(old) = &existing {
        if !verify::same_location(&old.registry, &location)
            || keys::normalise_fingerprint(&old.anchor) != c
        {
            eprintln!(
                "byreis: warning: replacing the anchor this machine trusted ({} at {}) because you confirmed the new one",
                old.anchor,
                names::escape(&old.registry)
            );
        }
    }
    let same = existing.as_ref().filter(|o| {
        verify::same_location(&o.registry, &location)
            && keys::normalise_fingerprint(&o.anchor) == c
            && o.project.as_deref() == Some(project.config.project.as_str())
    });
    let mut pin = Pin {
        repository: trust::repository_key(&project.repo.common_dir()),
        registry: location,
        anchor: typed,
        roster_version_seen: same.map_or(0, |o| o.roster_version_seen),
        counter_seen: same.map_or(0, |o| o.counter_seen),
        record_revision_seen: same.map_or(0, |o| o.record_revision_seen),
        trusted_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        // The person trusting names this project by running `trust` in it
        // (and sees the name below); from now on byreis.yaml must agree.
        project: Some(project.config.project.clone()),
    };
    // Verify the whole state first (the typed anchor must be the
    // fingerprint of a version of a chain that verifies; the location and
    // the config's hint are checked against the roster), so nothing is
    // pinned that does not verify.
    let root = project.root.clone();
    let common = project.repo.common_dir();
    let run = verify::RunPin {
        pin: pin.clone(),
        stored: true,
        location_from_user: from_user,
        project_from_user: true,
    };
    let mut state = verify::load_with(&ctx.home, project, registry, run).map_err(|e| {
        if e.code == Code::RosterAnchorMismatch {
            VerifyError {
                code: e.code,
                detail: "the fingerprint you typed is not that of any roster version of this registry; nothing was trusted. Check you were given the right fingerprint and the right registry location".into(),
            }
        } else {
            e
        }
    })?;
    // The pin keeps the fingerprint as byreis writes it.
    let version = state.roster().anchor_version;
    pin.anchor = state.spell_anchor().to_string();
    trust::save(&ctx.home, &common, &pin)?;
    state.remember(&ctx.home)?;
    eprintln!(
        "byreis: this machine now trusts anchor {} (roster version {version}) at {} for {}",
        pin.anchor,
        names::escape(&pin.registry),
        root.display()
    );
    eprintln!(
        "byreis: verified: project {} at counter {}",
        state.manifest().project,
        state.manifest().counter
    );
    Ok(())
}

pub fn registry_pull(ctx: &Context) -> CliResult {
    let project = Project::open(&ctx.dir)?;
    // Only the registry this machine trusts is ever fetched: never one that
    // only byreis.yaml names (a project writer could point it at any host).
    let run = verify::pin_for(ctx, &project)?;
    if !run.may_fetch(&ctx.home) {
        return Err(VerifyError {
            code: Code::RegistryUnconfirmed,
            detail: format!(
                "`registry pull` fetches only a registry location you named or one this machine's copy of the registry confirms, and {} was found only through byreis.yaml, which anyone who can push to the project can edit; set BYREIS_REGISTRY to the location an admin gave you, or run `byreis trust --registry LOCATION --anchor FP`",
                names::quoted(&run.pin.registry)
            ),
        }
        .into());
    }
    let location = run.pin.registry;
    let dir = verify::registry_dir(&ctx.home, &location);
    match crate::remote::refresh_registry(&ctx.home, &location)? {
        crate::remote::Refreshed::Cloned => {
            eprintln!("byreis: cloned the registry to {}", dir.display())
        }
        crate::remote::Refreshed::Updated => {
            eprintln!("byreis: updated the registry copy at {}", dir.display())
        }
        crate::remote::Refreshed::NoRemote => eprintln!(
            "byreis: the registry at {} has no remote; nothing to pull",
            dir.display()
        ),
    }
    // A pinned state short of approvals still teaches this machine the
    // newest roster and record (what an admin needs to `approve --pinned`);
    // reads keep refusing it.
    let mut state = verify::load_opts(ctx, verify::Allow::SHORT_APPROVALS)?;
    print_notes(state.notes());
    state.remember(&ctx.home)?;
    eprintln!(
        "byreis: verified: project {} at counter {}",
        state.manifest().project,
        state.manifest().counter
    );
    Ok(())
}

pub fn registry_refresh(ctx: &Context) -> CliResult {
    let state = verify::load_opts(ctx, verify::Allow::EXPIRED)?;
    super::print_notes(state.notes());
    let actor = crate::store::Actor::load(&ctx.home)?;
    let project = state.manifest().project.clone();
    let expires = crate::store::refresh(ctx, state, &actor)?;
    eprintln!("byreis: re-signed the record of {project}; it now expires at {expires}");
    Ok(())
}

pub fn admin_list(ctx: &Context, format: Format) -> CliResult {
    let state = verify::load_opts(ctx, verify::Allow::EXPIRED)?;
    let roster = state.roster().latest();
    match format {
        Format::Json => {
            let admins: Vec<_> = roster
                .admins
                .iter()
                .map(|a| {
                    let key =
                        crate::keys::SigningPub::parse(&a.signing_key).expect("verified roster");
                    json!({
                        "name": a.name,
                        "email": a.email,
                        "signing_key": a.signing_key,
                        "signing_fingerprint": key.fingerprint(),
                        "age_recipient": a.age_recipient,
                    })
                })
                .collect();
            println!(
                "{}",
                json!({"roster_version": roster.version, "thresholds": {"roster": roster.thresholds.roster, "recipients": roster.thresholds.recipients, "values": roster.thresholds.values}, "record_expiry_days": roster.record_expiry_days, "admins": admins})
            );
        }
        Format::Text => {
            println!(
                "roster version {} (record expiry {} days)",
                roster.version, roster.record_expiry_days
            );
            for a in &roster.admins {
                let key = crate::keys::SigningPub::parse(&a.signing_key).expect("verified roster");
                println!(
                    "{}  {}  {}",
                    a.name,
                    key.fingerprint(),
                    a.email.as_deref().map(names::escape).unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

pub fn admin_add(
    ctx: &Context,
    name: String,
    signing_key: &str,
    age: String,
    email: Option<String>,
) -> CliResult {
    // A path to a .pub file, or the key text itself (any type: a key that
    // is not ssh-ed25519 is refused with that reason, not as a missing file).
    let key_text = if std::path::Path::new(signing_key).is_file() {
        std::fs::read_to_string(signing_key)
            .map_err(|e| CliError::Refused(Refusal::IoFailed, format!("{signing_key}: {e}")))?
    } else {
        signing_key.to_string()
    };
    let state = verify::load(ctx)?;
    let change = crate::store::AdminChange::Add(crate::documents::Admin {
        name: name.clone(),
        email,
        signing_key: key_text.trim().to_string(),
        age_recipient: age,
    });
    let Some(version) = land_roster_change(ctx, &state, change, false)? else {
        return Ok(());
    };
    eprintln!("byreis: {name} is an admin from roster version {version}; every project record was re-signed under it");
    eprintln!("byreis: {name} reads no secrets yet: add them to a project with `byreis rotate --add {name}=RECIPIENT`");
    Ok(())
}

pub fn admin_thresholds(
    ctx: &Context,
    roster: Option<usize>,
    recipients: Option<usize>,
    values: Option<usize>,
) -> CliResult {
    if roster.is_none() && recipients.is_none() && values.is_none() {
        return Err(CliError::Refused(
            Refusal::Usage,
            "give at least one of --roster, --recipients, --values".into(),
        ));
    }
    let state = verify::load(ctx)?;
    let old = &state.roster().latest().thresholds;
    let t = crate::documents::Thresholds {
        roster: roster.unwrap_or(old.roster),
        recipients: recipients.unwrap_or(old.recipients),
        values: values.unwrap_or(old.values),
    };
    let change = crate::store::AdminChange::Thresholds(t.clone());
    let Some(version) = land_roster_change(ctx, &state, change, false)? else {
        return Ok(());
    };
    eprintln!(
        "byreis: roster version {version}: thresholds roster {}, recipients {}, values {}",
        t.roster, t.recipients, t.values
    );
    let need = crate::verify::required_approvals(&t);
    if need > 1 {
        eprintln!("byreis: from now on every change to this project's secrets needs {need} admins: the first makes a proposal, others run `byreis approve REF`");
    }
    Ok(())
}

pub fn admin_location(ctx: &Context, location: &str) -> CliResult {
    let state = verify::load(ctx)?;
    let change = crate::store::AdminChange::Location(location.to_string());
    let Some(version) = land_roster_change(ctx, &state, change, true)? else {
        return Ok(());
    };
    eprintln!(
        "byreis: roster version {version} states the registry lives at {}; teammates and CI use `byreis trust --registry LOCATION` or BYREIS_REGISTRY with it",
        names::escape(location)
    );
    Ok(())
}

/// Makes roster change `change` as this machine's admin and reports it.
/// Returns the new version once it landed (`None`: it waits for
/// approvals). With `anchor_for_ci`, prints the new version's fingerprint
/// on stdout: pinned to it, a fresh machine never accepts a roster from
/// before this version.
fn land_roster_change(
    ctx: &Context,
    state: &verify::State,
    change: crate::store::AdminChange,
    anchor_for_ci: bool,
) -> Result<Option<u64>, CliError> {
    let actor = crate::store::Actor::load(&ctx.home)?;
    let mut outcome = crate::store::change_roster(ctx, state, &actor, change)?;
    crate::pulls::open_for_roster(&mut outcome);
    let Some(version) = outcome.report() else {
        return Ok(None);
    };
    if let (true, crate::store::RosterChange::Landed { anchor, .. }) = (anchor_for_ci, &outcome) {
        println!("{anchor}");
        eprintln!(
            "byreis: anchor of roster version {version} (printed above): give it to CI as BYREIS_ANCHOR (and to new teammates for `byreis trust --anchor`); a fresh machine pinned to it never accepts a roster from before this version"
        );
    }
    Ok(Some(version))
}

pub fn admin_remove(ctx: &Context, name: &str) -> CliResult {
    let state = verify::load(ctx)?;
    let roster = state.roster().latest();
    let member = roster
        .admins
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| crate::keys::AgeRecipient::parse(&a.age_recipient).ok())
        .and_then(|r| {
            state
                .manifest()
                .members
                .iter()
                .find(|m| crate::keys::AgeRecipient::parse(&m.recipient).is_ok_and(|x| x == r))
                .cloned()
        });
    let change = crate::store::AdminChange::Remove(name.to_string());
    let Some(version) = land_roster_change(ctx, &state, change, true)? else {
        return Ok(());
    };
    eprintln!("byreis: {name} is no longer an admin from roster version {version}: their signatures no longer count, including on anything they sign later with an old date");
    if let Some(m) = member {
        let envs: Vec<&String> = state
            .manifest()
            .environments
            .iter()
            .filter(|(_, e)| e.readers.contains(&m.name))
            .map(|(n, _)| n)
            .collect();
        eprintln!(
            "WARNING: {name} is still a reader in project {} (as member {}) of: {}.\n\
             Removing an admin does not remove a reader. Run `byreis rotate --remove {}` in this project.\n\
             Even then, they know every value they could read, and every commit before that rotation stays decryptable with their key for as long as they keep it and any clone. Rotate those values at their issuers. See docs/forward-secrecy-runbook.md.",
            state.manifest().project,
            m.name,
            envs.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            m.name
        );
    } else {
        eprintln!("byreis: if {name} reads secrets in any project, run `byreis rotate --remove` there too: removing an admin does not remove a reader (docs/forward-secrecy-runbook.md)");
    }
    Ok(())
}
