//! `rotate`: change who reads which environment, in one signed, counted,
//! audited change. Every affected file is decrypted and re-encrypted to its
//! new readers with a fresh file key (never a header rewrap: a removed
//! party knew the old file key).
//!
//! Everything is prepared before anything is written: files are decrypted
//! (each with the caller's own stanza tried first) and re-encrypted on all
//! cores, then [`crate::store`] lands the change all or nothing.

use crate::diag::Refusal;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::agefile;
use crate::documents::{Environment, Member, Readers};
use crate::git::{self, Change};
use crate::keys::AgeRecipient;
use crate::names::{self, Kind};
use crate::signed::sha256_hex;
use crate::store::{self, Actor, StoreError};
use crate::verify::{Context, State};

/// What was asked.
#[derive(Debug, Default)]
pub struct Request {
    pub add: Vec<(String, AgeRecipient)>,
    pub remove: Vec<String>,
    /// `rotate --replace NAME=RECIPIENT`: a member's new key replaces the
    /// old one in every environment they read (issue 19).
    pub replace: Vec<(String, AgeRecipient)>,
    /// Empty: every environment (and the default readers for new ones).
    pub envs: Vec<String>,
    /// Why, recorded in the audit entry.
    pub reason: Option<String>,
    /// The access request absorbed, recorded in the audit entry.
    pub request: Option<serde_json::Value>,
    /// `rotate --rekey`: re-encrypt every selected file with fresh file
    /// keys to the same readers (issue 19); no reader changes.
    pub rekey: bool,
}

/// What a removed party (or a replaced key) could read before the
/// rotation.
#[derive(Debug, Clone, Serialize)]
pub struct Exposure {
    pub member: String,
    /// The fingerprint of the key that could read it (for a replacement,
    /// the old key).
    pub fingerprint: String,
    /// `removed`, or `key-replaced` (the member reads on with a new key).
    pub cause: &'static str,
    /// Environment → secret names the party could read in the current
    /// files (values still in use).
    pub could_read: BTreeMap<String, Vec<String>>,
    /// What they could read in older versions (the exposure inventory,
    /// `doctor --exposure`, less the current files).
    pub earlier: crate::exposure::Earlier,
}

/// The plan, computed before anything is written.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub added: BTreeMap<String, Vec<String>>,
    pub removed: BTreeMap<String, Vec<String>>,
    pub files: Vec<String>,
    pub exposures: Vec<Exposure>,
    /// Names or keys being added that an earlier rotation removed: when,
    /// by whom and why (from the verified audit log).
    pub readded: Vec<String>,
    /// Member → the key replaced, the new one and the environments whose
    /// files are re-encrypted to it.
    pub replaced: BTreeMap<String, Replaced>,
}

/// One `--replace`: the old key, the new one, where it applies.
#[derive(Debug, Clone, Serialize)]
pub struct Replaced {
    pub old_fingerprint: String,
    pub fingerprint: String,
    pub envs: Vec<String>,
}

fn refuse<T>(code: Refusal, msg: impl Into<String>) -> Result<T, StoreError> {
    Err(StoreError::Refused(
        code,
        format!("{}; nothing was changed", msg.into()),
    ))
}

/// The member list and reader sets after the rotation.
#[derive(Debug)]
pub struct NewReaders {
    pub members: Vec<Member>,
    pub readers: BTreeMap<String, Readers>,
    pub default_readers: Vec<String>,
    /// Environments re-encrypted although their readers stay (`--rekey`,
    /// or a reader's key replaced).
    pub rekey: BTreeSet<String>,
    /// The change is a `--rekey` (audited as `rekey`).
    pub rekey_only: bool,
}

impl NewReaders {
    /// Whether `env`'s file is written again: its readers change, or it is
    /// re-keyed.
    fn rewrites(&self, env: &str, old: &Readers) -> bool {
        self.readers[env] != *old || self.rekey.contains(env)
    }
}

/// Checks the request against the verified state and works out the new
/// readers of every environment. Touches nothing.
pub fn plan(state: &State, req: &Request) -> Result<(Plan, NewReaders), StoreError> {
    let m = &state.manifest();
    if req.rekey && (!req.add.is_empty() || !req.remove.is_empty() || !req.replace.is_empty()) {
        return refuse(
            Refusal::Usage,
            "--rekey changes no reader: run it on its own, apart from --add, --remove and --replace",
        );
    }
    if req.add.is_empty() && req.remove.is_empty() && req.replace.is_empty() && !req.rekey {
        return refuse(
            Refusal::NothingToDo,
            "nothing to do: give --add NAME=RECIPIENT, --remove NAME or --replace NAME=RECIPIENT, or --rekey",
        );
    }
    if !req.replace.is_empty() && !req.envs.is_empty() {
        return refuse(
            Refusal::Usage,
            "--replace changes a member's key in every environment they read (a member has one key): drop --env",
        );
    }
    for e in &req.envs {
        names::check(Kind::Environment, e).map_err(StoreError::from)?;
        if !m.environments.contains_key(e) {
            return refuse(Refusal::UnknownEnvironment, format!("no environment {e}"));
        }
    }
    let admin_keys: Vec<AgeRecipient> = state
        .roster()
        .latest()
        .admins
        .iter()
        .filter_map(|a| AgeRecipient::parse(&a.age_recipient).ok())
        .collect();
    let mut members = m.members.clone();
    let mut seen = BTreeSet::new();
    let mut replaced: BTreeMap<String, Replaced> = BTreeMap::new();
    for (name, key) in &req.replace {
        names::check(Kind::Member, name).map_err(StoreError::from)?;
        if !seen.insert(name.clone()) || req.remove.contains(name) {
            return refuse(Refusal::Usage, format!("{name} is named twice"));
        }
        if let Some(other) = members.iter().find(|mem| {
            mem.name != *name && AgeRecipient::parse(&mem.recipient).is_ok_and(|r| r == *key)
        }) {
            return refuse(Refusal::AlreadyExists, format!("that key already belongs to member {} (keys are compared as bytes, whatever their spelling)", other.name));
        }
        let Some(mem) = members.iter_mut().find(|mem| mem.name == *name) else {
            return refuse(
                Refusal::UnknownMember,
                format!("{name} is not a member, so there is no key to replace; to add them, use --add {name}=RECIPIENT"),
            );
        };
        let old = AgeRecipient::parse(&mem.recipient).ok();
        if old.as_ref() == Some(key) {
            return refuse(
                Refusal::NothingToDo,
                format!("{name} already has that key ({})", key.fingerprint()),
            );
        }
        if old.as_ref().is_some_and(|o| admin_keys.contains(o)) && !admin_keys.contains(key) {
            return refuse(
                Refusal::RosterRule,
                format!("{name}'s key is an admin key of the registry roster, which --replace does not change; replace an admin's key in the roster (byreis admin remove {name}, then byreis admin add with the new keys), or give the key the roster already names"),
            );
        }
        replaced.insert(
            name.clone(),
            Replaced {
                old_fingerprint: mem.fingerprint.clone(),
                fingerprint: key.fingerprint(),
                envs: Vec::new(),
            },
        );
        mem.recipient = key.as_str().to_string();
        mem.fingerprint = key.fingerprint();
    }
    for (name, key) in &req.add {
        names::check(Kind::Member, name).map_err(StoreError::from)?;
        if !seen.insert(name.clone()) || req.remove.contains(name) {
            return refuse(Refusal::Usage, format!("{name} is named twice"));
        }
        if let Some(other) = members
            .iter()
            .find(|mem| AgeRecipient::parse(&mem.recipient).is_ok_and(|r| r == *key))
        {
            if other.name != *name {
                return refuse(Refusal::AlreadyExists, format!("that key already belongs to member {} (keys are compared as bytes, whatever their spelling)", other.name));
            }
        }
        match members.iter().find(|mem| mem.name == *name) {
            Some(existing)
                if AgeRecipient::parse(&existing.recipient).ok().as_ref() != Some(key) =>
            {
                return refuse(
                    Refusal::AlreadyExists,
                    format!("member {name} already exists with another key ({}); if this is their new key, use --replace {name}=RECIPIENT (or --replace with --from-request)", existing.fingerprint),
                );
            }
            Some(_) => {}
            None => members.push(Member {
                name: name.clone(),
                recipient: key.as_str().to_string(),
                fingerprint: key.fingerprint(),
            }),
        }
    }
    for name in &req.remove {
        names::check(Kind::Member, name).map_err(StoreError::from)?;
        if m.member(name).is_none() {
            return refuse(Refusal::UnknownMember, format!("{name} is not a member"));
        }
    }
    let targets: Vec<String> = if req.envs.is_empty() {
        m.environments.keys().cloned().collect()
    } else {
        req.envs.clone()
    };
    // Names whose key is an admin's, parsed once (not once per file).
    let admin_names: BTreeSet<&str> = members
        .iter()
        .filter(|mem| AgeRecipient::parse(&mem.recipient).is_ok_and(|r| admin_keys.contains(&r)))
        .map(|mem| mem.name.as_str())
        .collect();
    let is_admin = |name: &str| admin_names.contains(name);

    // New lists are shared like the manifest's: an unchanged list is the
    // old one, equal new lists are one allocation.
    let mut readers: BTreeMap<String, Readers> = BTreeMap::new();
    let mut interner = crate::documents::ReadersInterner::default();
    let mut plan = Plan {
        added: BTreeMap::new(),
        removed: BTreeMap::new(),
        files: Vec::new(),
        exposures: Vec::new(),
        readded: Vec::new(),
        replaced: BTreeMap::new(),
    };
    let mut rewritten_same = BTreeSet::new();
    for (env, e) in &m.environments {
        let mut r: BTreeSet<String> = e.readers.iter().cloned().collect();
        if targets.contains(env) {
            for (name, _) in &req.add {
                if r.insert(name.clone()) {
                    plan.added
                        .entry(name.clone())
                        .or_default()
                        .push(env.clone());
                }
            }
            for name in &req.remove {
                if r.remove(name) {
                    plan.removed
                        .entry(name.clone())
                        .or_default()
                        .push(env.clone());
                }
            }
            if !r.iter().any(|n| is_admin(n)) {
                return refuse(
                    Refusal::NoAdminReader,
                    format!("{env} would be left without an admin who can decrypt it"),
                );
            }
            let mut key_replaced = false;
            for (n, rep) in replaced.iter_mut() {
                if e.readers.contains(n) {
                    rep.envs.push(env.clone());
                    key_replaced = true;
                }
            }
            if req.rekey || key_replaced {
                rewritten_same.insert(env.clone());
            }
            if !r.iter().eq(e.readers.iter()) || req.rekey || key_replaced {
                plan.files.push(names::env_file(env));
            }
        }
        let new = if r.iter().eq(e.readers.iter()) {
            e.readers.clone()
        } else {
            interner.intern(r.into_iter().collect::<Vec<_>>().into())
        };
        readers.insert(env.clone(), new);
    }
    let mut default_readers: BTreeSet<String> = m.default_readers.iter().cloned().collect();
    if req.envs.is_empty() {
        for (name, _) in &req.add {
            default_readers.insert(name.clone());
        }
        for name in &req.remove {
            default_readers.remove(name);
        }
        if !default_readers.iter().any(|n| is_admin(n)) {
            return refuse(
                Refusal::NoAdminReader,
                "new environments would have no admin reader",
            );
        }
    }
    if plan.files.is_empty()
        && replaced.is_empty()
        && default_readers.iter().cloned().collect::<Vec<_>>() == m.default_readers
    {
        return refuse(Refusal::NothingToDo, "the readers would not change");
    }
    // Who may stay a member: anyone still reading something.
    members.retain(|mem| {
        readers.values().any(|r| r.contains(&mem.name)) || default_readers.contains(&mem.name)
    });

    plan.readded = removed_before(state, &req.add);
    plan.replaced = replaced;
    Ok((
        plan,
        NewReaders {
            members,
            readers,
            default_readers: default_readers.into_iter().collect(),
            rekey: rewritten_same,
            rekey_only: req.rekey,
        },
    ))
}

/// [`Exposure::cause`] of a member removed.
pub const CAUSE_REMOVED: &str = "removed";
/// [`Exposure::cause`] of a member's key replaced.
pub const CAUSE_REPLACED: &str = "key-replaced";

/// The forward-secrecy warning for a removal or a replaced key, in plain
/// words.
pub fn warning(e: &Exposure) -> String {
    let list = |s: &mut String, map: &BTreeMap<String, Vec<String>>| {
        for (env, keys) in map {
            s.push_str(&format!(
                "  {env}: {}\n",
                if keys.is_empty() {
                    "(no secrets)".to_string()
                } else {
                    keys.join(", ")
                }
            ));
        }
    };
    let mut s = if e.cause == CAUSE_REPLACED {
        format!(
            "WARNING: replacing {}'s key {} does not take back what the old key could read.\n\
             - Every commit before this rotation stays decryptable with the old key, for as long as anyone holds it and any clone of the repository.\n\
             - If the old key was lost or stolen, whoever holds it can read every value below: rotate each at the system that issued it, and revoke the old value there.\n\
             The old key could read (values still in use):\n",
            e.member, e.fingerprint
        )
    } else {
        format!(
            "WARNING: removing {} ({}) does not take back what they could read.\n\
             - They know every value they could read before this rotation.\n\
             - Every commit before this rotation stays decryptable with their key, for as long as they keep that key and any clone of the repository.\n\
             - Removal is not remediation: if they may be compromised, rotate every value below at the system that issued it, and revoke the old value there.\n\
             They could read (values still in use):\n",
            e.member, e.fingerprint
        )
    };
    if e.could_read.is_empty() && e.earlier.still_in_use.is_empty() {
        s.push_str("  (nothing in the current files)\n");
    }
    list(&mut s, &e.could_read);
    if !e.earlier.still_in_use.is_empty() {
        s.push_str("In older versions, values still in use today:\n");
        list(&mut s, &e.earlier.still_in_use);
    }
    if !e.earlier.changed.is_empty() {
        s.push_str("In older versions, values changed in byreis since (byreis cannot know whether the old value was revoked at its issuer; check, then record it with `byreis exposure ack`):\n");
        list(&mut s, &e.earlier.changed);
    }
    if !e.earlier.acknowledged.is_empty() {
        s.push_str("In older versions, values an admin recorded as revoked at their issuer:\n");
        list(&mut s, &e.earlier.acknowledged);
    }
    for note in &e.earlier.incomplete {
        s.push_str(&format!("Incomplete: {}\n", names::escape(note)));
    }
    s.push_str(&format!(
        "Full inventory: byreis doctor --exposure {}\n",
        e.member
    ));
    s.push_str("See docs/forward-secrecy-runbook.md.\n");
    s
}

/// Earlier removals (from the verified audit log) of a name or key now
/// being added.
fn removed_before(state: &State, add: &[(String, AgeRecipient)]) -> Vec<String> {
    let mut out = Vec::new();
    if add.is_empty() {
        return out;
    }
    // Removals are recorded by rotations only; other entries' details are
    // not parsed.
    for v in state.audit().iter().filter(|v| v.entry.action == "rotate") {
        let e = &v.entry;
        let details = e.details.value();
        let Some(removed) = details.get("removed").and_then(|r| r.as_array()) else {
            continue;
        };
        for r in removed {
            let name = r.get("name").and_then(|n| n.as_str()).unwrap_or("");
            let fp = r.get("fingerprint").and_then(|n| n.as_str()).unwrap_or("");
            for (n, key) in add {
                if n == name || key.fingerprint() == fp {
                    let why = details
                        .get("reason")
                        .and_then(|r| r.as_str())
                        .map(|r| format!("reason: {}", names::escape(r)))
                        .unwrap_or_else(|| "no reason recorded".into());
                    out.push(format!(
                        "{} ({}) was removed by {} at {} (counter {}; {why})",
                        names::escape(name),
                        fp,
                        e.actor,
                        e.time,
                        e.counter_to
                    ));
                }
            }
        }
    }
    out
}

/// A rotation ready to land: the plan and every file's plaintext.
pub struct Prepared {
    pub plan: Plan,
    new: NewReaders,
    /// The plaintext of every file to re-encrypt, exactly as decrypted.
    plaintexts: BTreeMap<String, crate::secret::SecretBytes>,
    reason: Option<String>,
    request: Option<serde_json::Value>,
}

/// Plans the rotation and decrypts every file it needs, on all cores.
/// Touches nothing.
pub fn prepare(state: &State, actor: &Actor, req: &Request) -> Result<Prepared, StoreError> {
    let (mut plan, new) = plan(state, req)?;
    let m = &state.manifest();
    // Whose reading this rotation ends: removed members, and the old keys
    // of replaced ones.
    let exposed: Vec<(&String, &'static str)> = req
        .remove
        .iter()
        .map(|n| (n, CAUSE_REMOVED))
        .chain(req.replace.iter().map(|(n, _)| (n, CAUSE_REPLACED)))
        .collect();
    let exposed_reads = |e: &Environment| exposed.iter().any(|(n, _)| e.readers.contains(*n));
    let me = actor.identity.recipient();
    let affected: BTreeSet<String> = m
        .environments
        .keys()
        .filter(|env| new.rewrites(env, &m.environments[*env].readers))
        .cloned()
        .collect();
    // Files to decrypt: every affected one (the caller must read them all),
    // and the others a removed party could read, where the caller can.
    let mut needed = Vec::new();
    for (env, e) in &m.environments {
        let removed_reads = exposed_reads(e);
        let hint = state.readers(env).iter().position(|r| *r == me);
        if affected.contains(env) && hint.is_none() {
            return Err(crate::verify::VerifyError {
                code: crate::diag::Code::IdentityNotRecipient,
                detail: format!(
                    "you are not a reader of {env}, so you cannot re-encrypt it; an admin who reads it must run this rotation (nothing was changed)"
                ),
            }
            .into());
        }
        if affected.contains(env) || (removed_reads && hint.is_some()) {
            needed.push((env.as_str(), hint));
        }
    }
    // A batch at a time: read, then hash, count stanzas and decrypt on all
    // cores. Kept for every file: the plaintext bytes of those to
    // re-encrypt (a few hundred bytes each, not a parsed map), and the
    // secret names of those a removed party could read.
    let progress = crate::par::Progress::new("byreis: decrypting  ", needed.len());
    let mut plaintexts = BTreeMap::new();
    let mut names_read: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for chunk in needed.chunks(crate::git::PACK_BATCH) {
        let files = chunk
            .iter()
            .map(|(env, hint)| Ok((state.env_file_unchecked(env)?, *hint)))
            .collect::<Result<Vec<_>, crate::verify::VerifyError>>()?;
        let results = crate::par::map(&files, Some(&progress), |(file, hint)| {
            agefile::decrypt_plaintext(file.check()?, &actor.identity, *hint)
                .map_err(StoreError::from)
        });
        for ((env, _), r) in chunk.iter().zip(results) {
            let (plaintext, secrets) = r?;
            if affected.contains(*env) {
                plaintexts.insert(env.to_string(), plaintext);
            }
            if exposed_reads(&m.environments[*env]) {
                names_read.insert(env.to_string(), secrets.into_keys().collect());
            }
        }
    }
    crate::timing::phase("current files decrypted");
    for &(name, cause) in &exposed {
        let mut could_read = BTreeMap::new();
        for (env, e) in &m.environments {
            if e.readers.contains(name) {
                let keys = match names_read.get(env) {
                    Some(keys) => keys.clone(),
                    None => {
                        vec!["(names unknown: you are not a reader of this environment)".to_string()]
                    }
                };
                could_read.insert(env.clone(), keys);
            }
        }
        let mem = m.member(name).expect("checked by plan");
        // The current files are read above; the inventory adds every older
        // version addressed to them.
        let paths: Vec<String> = m
            .environments
            .iter()
            .filter(|(_, e)| e.readers.contains(name))
            .map(|(env, _)| names::env_file(env))
            .collect();
        let current: std::collections::HashSet<git::Oid> = state
            .project()
            .repo
            .entry_ids(&state.record().project_commit, &paths)
            .map_err(StoreError::from)?
            .into_iter()
            .flatten()
            .collect();
        let earlier = crate::exposure::earlier(state, &actor.identity, name, &current)
            .unwrap_or_else(|e| crate::exposure::Earlier {
                incomplete: vec![format!("the history could not be walked: {e}")],
                ..Default::default()
            });
        plan.exposures.push(Exposure {
            member: name.clone(),
            fingerprint: mem.fingerprint.clone(),
            cause,
            could_read,
            earlier,
        });
    }
    if !exposed.is_empty() {
        crate::timing::phase("older versions walked (exposure inventory)");
    }
    Ok(Prepared {
        plan,
        new,
        plaintexts,
        reason: req.reason.clone(),
        request: req.request.clone(),
    })
}

/// Re-encrypts every affected file with a fresh file key (on all cores),
/// then signs, audits, commits and records, all or nothing.
pub fn execute(
    ctx: &Context,
    mut state: State,
    actor: &Actor,
    prepared: Prepared,
) -> Result<(Plan, store::Landed), StoreError> {
    let admin = store::check_writable(&state, actor)?.clone();
    let Prepared {
        plan,
        new,
        plaintexts,
        reason,
        request,
    } = prepared;
    let rewrites: BTreeSet<String> = state
        .manifest()
        .environments
        .iter()
        .filter(|(env, e)| new.rewrites(env, &e.readers))
        .map(|(env, _)| env.clone())
        .collect();
    let rekey = new.rekey_only;
    let NewReaders {
        members,
        readers,
        default_readers,
        ..
    } = new;
    let recipient_of = |n: &String| {
        let m = members
            .iter()
            .find(|m| &m.name == n)
            .expect("reader is a member");
        AgeRecipient::parse(&m.recipient).expect("verified or checked key")
    };
    // Environments with the same new readers share one parsed recipient
    // list (most projects have a handful of distinct sets, not one per file).
    // Reader lists are shared (see `Readers`), so moving them into the new
    // manifest copies no names.
    let mut readers = readers;
    let mut sets: Vec<Vec<AgeRecipient>> = Vec::new();
    let mut jobs = Vec::new();
    let mut new_envs = BTreeMap::new();
    {
        let mut set_of: BTreeMap<&[String], usize> = BTreeMap::new();
        for env in state.manifest().environments.keys() {
            let new_readers = &readers[env];
            if rewrites.contains(env) {
                let set = *set_of.entry(new_readers).or_insert_with(|| {
                    sets.push(new_readers.iter().map(recipient_of).collect());
                    sets.len() - 1
                });
                jobs.push((env.clone(), set));
            }
        }
    }
    for (env, e) in &state.manifest().environments {
        if !rewrites.contains(env) {
            let readers = readers.remove(env).expect("planned for every environment");
            new_envs.insert(
                env.clone(),
                Environment {
                    readers,
                    sha256: e.sha256.clone(),
                    exec_allow: e.exec_allow.clone(),
                },
            );
        }
    }
    // PACK_BATCH files at a time: encrypt on all cores, store the batch as
    // one pack, keep only blob ids and hashes. Memory stays bounded by a
    // batch whatever the number of files; the blobs stay unreferenced
    // until the commit (ADR 0010).
    let mut plaintexts = plaintexts;
    let repo = &state.project().repo;
    let progress = crate::par::Progress::new("byreis: re-encrypting", jobs.len());
    let mut changes = Vec::with_capacity(jobs.len() + 1);
    for chunk in jobs.chunks(git::PACK_BATCH) {
        let files = crate::par::map(chunk, Some(&progress), |(env, set)| {
            agefile::encrypt_plaintext(&plaintexts[env], &sets[*set])
        });
        let files = files.into_iter().collect::<Result<Vec<_>, _>>()?;
        let ids = repo.store_blobs(&files.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
        for (((env, _), file), id) in chunk.iter().zip(&files).zip(ids) {
            // Plaintext no longer needed: dropped (and zeroized) now.
            plaintexts.remove(env);
            new_envs.insert(
                env.clone(),
                Environment {
                    readers: readers.remove(env).expect("planned for every environment"),
                    sha256: sha256_hex(file),
                    exec_allow: state.manifest().environments[env].exec_allow.clone(),
                },
            );
            changes.push(Change {
                path: names::env_file(env),
                content: Some(git::Content::Stored(id)),
            });
        }
    }
    let fp = |n: &str| {
        members
            .iter()
            .chain(state.manifest().members.iter())
            .find(|m| m.name == n)
            .map(|m| m.fingerprint.clone())
            .unwrap_or_default()
    };
    let mut details = serde_json::json!({
        "added": plan.added.iter().map(|(n, envs)| serde_json::json!({"name": n, "fingerprint": fp(n), "envs": envs})).collect::<Vec<_>>(),
        "removed": plan.removed.iter().map(|(n, envs)| serde_json::json!({"name": n, "fingerprint": fp(n), "envs": envs})).collect::<Vec<_>>(),
        "files": plan.files,
    });
    if !plan.replaced.is_empty() {
        details["replaced"] = serde_json::json!(plan
            .replaced
            .iter()
            .map(|(n, r)| serde_json::json!({"name": n, "old_fingerprint": r.old_fingerprint, "fingerprint": r.fingerprint, "envs": r.envs}))
            .collect::<Vec<_>>());
    }
    if let Some(r) = request {
        details["request"] = r;
    }
    if let Some(r) = reason {
        details["reason"] = serde_json::Value::String(r);
    }
    let action = if rekey { "rekey" } else { "rotate" };
    let (mut manifest, audit_change) =
        store::next_manifest(&state, actor, &admin, action, details)?;
    manifest.members = members;
    manifest.environments = new_envs;
    manifest.default_readers = default_readers;
    changes.push(audit_change);
    let counter = manifest.counter;
    let msg = if rekey {
        format!("byreis: rekey: fresh file keys, same readers and values (counter {counter})")
    } else {
        format!("byreis: rotate recipients (counter {counter})")
    };
    let landed = store::land_state(ctx, &mut state, actor, &admin, manifest, changes, &msg)?;
    Ok((plan, landed))
}

pub use crate::diff::{change_lines, describe_change, ChangeLine, Touches};
