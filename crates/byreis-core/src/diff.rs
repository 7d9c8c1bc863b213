//! `byreis diff [REV]`: the name-level change between an earlier signed
//! state and the current one, for review. Values are never shown; secret
//! names are listed only where you can read both states. That hides them
//! from this output only: the project's plaintext audit log names every
//! secret, environment, member and reason (SECURITY.md).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::agefile;
use crate::documents::{Manifest, Member};
use crate::keys::{AgeIdentity, AgeRecipient};
use crate::names;
use crate::signed::sha256_hex;
use crate::verify::{self, SignerRule, State, VerifyError, MANIFEST_PATH, MANIFEST_SIG_PATH};
use crate::yaml::Secrets;

/// What changed in one environment, by secret name.
#[derive(Debug, Clone, Serialize)]
pub struct EnvDiff {
    pub env: String,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Names `exec` would refuse to pass (a family refuses them and the
    /// current signed state does not allow them here).
    pub loads_code: Vec<String>,
    /// Names a reviewer must look at, each with why.
    pub flags: Vec<Flag>,
    /// New values, only where the caller asked for them (`approve
    /// --show-values`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<(String, String)>,
    /// Whether you could read both states (else names are not known).
    pub readable: bool,
}

/// A name flagged for a reviewer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub reason: String,
}

/// The name-level change of `env` from `old` to `new` (`None`: you cannot
/// read that state). Names `exec` refuses, unless `exec_allow` lists them,
/// are flagged; new and changed values are kept only with `show_values`.
/// `exec_allow` must be the allowances of the **current verified** state
/// for `env` (`Manifest::exec_allow_for`), never a proposed manifest's: a
/// proposal that allows a name and sets it is flagged like any other.
pub fn env_diff(
    env: &str,
    old: Option<&Secrets>,
    new: Option<&Secrets>,
    exec_allow: &[String],
    show_values: bool,
) -> EnvDiff {
    let mut d = EnvDiff {
        env: env.to_string(),
        added: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
        loads_code: Vec::new(),
        flags: Vec::new(),
        values: Vec::new(),
        readable: false,
    };
    let (Some(old), Some(new)) = (old, new) else {
        return d;
    };
    d.readable = true;
    for (k, val) in new {
        match old.get(k) {
            None => d.added.push(k.clone()),
            Some(o) if o != val => d.changed.push(k.clone()),
            _ => {}
        }
        if let Some(why) = crate::exec::refusal(k, exec_allow) {
            d.loads_code.push(k.clone());
            d.flags.push(Flag {
                name: k.clone(),
                reason: format!(
                    "exec refuses it ({why}), so `byreis exec {env}` fails while it is set; {}",
                    crate::exec::fix_for(env, k)
                ),
            });
        }
        if show_values && !matches!(old.get(k), Some(o) if o == val) {
            d.values.push((k.clone(), names::escape(val.expose())));
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            d.removed.push(k.clone());
        }
    }
    d
}

/// Flags every name `author` sets in `d`'s environment, which they cannot
/// read (a submission): they cannot see the other values there, so
/// whatever they add or replace is aimed blind, and a name that makes a
/// program load code, trust another host or send data elsewhere is how an
/// exfiltration attempt looks, whether or not `exec` refuses it.
pub fn flag_blind(d: &mut EnvDiff, author: &str) {
    let author = names::escape(author);
    let env = d.env.clone();
    for k in &d.added {
        d.flags.push(Flag {
            name: k.clone(),
            reason: format!(
                "added by {author}, who cannot read {env}: {author} cannot see what the other \
                 values are, so a new name like this is a classic exfiltration attempt (a \
                 variable that makes the program load code, trust another host or send its \
                 data elsewhere); approve only if you know why it is there"
            ),
        });
    }
    for k in &d.changed {
        d.flags.push(Flag {
            name: k.clone(),
            reason: format!(
                "replaced by {author}, who cannot read {env} and never saw the value it \
                 replaces (a changed URL, host or key can send data elsewhere); approve only \
                 if you know why it changed"
            ),
        });
    }
    d.flags.sort_by(|a, b| a.name.cmp(&b.name));
}

/// Flags every name a submission adds, replaces or removes in `d`'s
/// environment when nothing shows who wrote it (no author proof for the
/// approver): the claimed author may read the environment, but whoever
/// wrote the file may not, so each change is looked at as [`flag_blind`]
/// would, and more.
pub fn flag_unproved(d: &mut EnvDiff, author: &str) {
    let author = names::escape(author);
    let env = d.env.clone();
    let why = format!(
        "nothing shows that {author} wrote this (the file carries no author proof for you, so anyone who can push a branch could have; an ssh-ed25519 key on either side cannot make one): treat it as from an unknown writer who may not read {env}, and approve only if you know why it is there"
    );
    for k in d.added.iter().chain(&d.changed).chain(&d.removed) {
        d.flags.push(Flag {
            name: k.clone(),
            reason: why.clone(),
        });
    }
    d.flags.sort_by(|a, b| a.name.cmp(&b.name));
}

/// The change from the signed state at commit `rev` to the current one.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub from_commit: String,
    pub from_counter: u64,
    pub to_commit: String,
    pub to_counter: u64,
    /// Member and reader changes, as `rotate --resume` shows them.
    pub readers: Vec<String>,
    /// Environments whose file changed.
    pub envs: Vec<EnvDiff>,
}

/// Compares the verified current state with the state at `rev` (default:
/// the parent of the pinned commit). The manifest at `rev` must verify
/// (signed by an admin of the roster version it names) and each file there
/// must match its hash before it is decrypted.
pub fn diff(state: &State, identity: &AgeIdentity, rev: Option<&str>) -> Result<Diff, VerifyError> {
    let repo = &state.project().repo;
    let bad = |m: String| VerifyError {
        code: crate::diag::Code::ManifestInvalid,
        detail: m,
    };
    let pinned = state.record().project_commit.clone();
    let from = match rev {
        Some(r) => repo
            .resolve_commit(r)
            .map_err(|e| bad(format!("{}: {e}", names::quoted(r))))?,
        None => repo
            .parent_of(&pinned)
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("the pinned commit has no parent: give a REV".into()))?
            .to_string(),
    };
    let read = |path: &str| {
        repo.read_file(&from, path)
            .map_err(|e| bad(format!("{path} at {from}: {e}")))
    };
    let mbytes =
        read(MANIFEST_PATH)?.ok_or_else(|| bad(format!("{from} has no signed manifest")))?;
    let msig = read(MANIFEST_SIG_PATH)?.unwrap_or_default();
    let old: Manifest = (*verify::verify_unpinned(
        state.roster(),
        &mbytes,
        &String::from_utf8_lossy(&msig),
        SignerRule::AdminThen,
    )
    .map_err(|e| bad(format!("the manifest at {from} does not verify: {e}")))?)
    .clone();
    if old.project != state.manifest().project {
        return Err(bad(format!(
            "{from} holds project {}, not {}",
            names::quoted(&old.project),
            state.manifest().project
        )));
    }
    let new = &state.manifest();
    let me = identity.recipient();
    let can_read = |m: &Manifest, env: &str| {
        m.environments.get(env).is_some_and(|e| {
            e.readers.iter().any(|r| {
                m.member(r)
                    .and_then(|mem| crate::keys::AgeRecipient::parse(&mem.recipient).ok())
                    .is_some_and(|k| k == me)
            })
        })
    };
    let envs: BTreeSet<&String> = old
        .environments
        .keys()
        .chain(new.environments.keys())
        .collect();
    let mut out = Vec::new();
    for env in envs {
        let (o, n) = (old.environments.get(env), new.environments.get(env));
        if o.map(|e| &e.sha256) == n.map(|e| &e.sha256) {
            continue;
        }
        let before = match o {
            None => Some(Secrets::new()),
            Some(e) if can_read(&old, env) => {
                let bytes = read(&names::env_file(env))?.unwrap_or_default();
                if sha256_hex(&bytes) != e.sha256 {
                    return Err(VerifyError {
                        code: crate::diag::Code::FileHashMismatch,
                        detail: format!(
                            "{} at {from} does not match its signed manifest",
                            names::env_file(env)
                        ),
                    });
                }
                agefile::decrypt(&bytes, identity).ok()
            }
            Some(_) => None,
        };
        let after = match n {
            None => Some(Secrets::new()),
            Some(_) if can_read(new, env) => Some(state.secrets(env, identity)?),
            Some(_) => None,
        };
        out.push(env_diff(
            env,
            before.as_ref(),
            after.as_ref(),
            &new.exec_allow_for(env),
            false,
        ));
    }
    Ok(Diff {
        from_commit: from,
        from_counter: old.counter,
        to_commit: pinned,
        to_counter: new.counter,
        readers: describe_change(&old, new),
        envs: out,
    })
}

/// What a line of [`change_lines`] changes, so a reviewer can tell a
/// change of values from one of who reads them (ADR 0018).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches {
    /// A secrets file's bytes, or a new environment read by exactly the
    /// current default readers: what `set`, `edit`, `import` change.
    Values,
    /// Members, their keys and fingerprints, readers, default readers:
    /// who can decrypt.
    Recipients,
    /// A member's key or listed fingerprint under the same name: a
    /// recipient change that no byreis command makes (a new key is a
    /// removal and an addition), so never part of an honest proposal.
    MemberKey,
    /// Names `exec` passes although a family refuses them.
    ExecAllow,
    /// The manifest's format or the branch signed writes land on.
    Settings,
}

/// One difference between two manifests, as a reviewer reads it.
#[derive(Debug, Clone)]
pub struct ChangeLine {
    pub touches: Touches,
    pub text: String,
}

/// A member's key as a reviewer compares it: parsed, so two spellings of
/// one key are one key; its fingerprint computed from the key, never
/// taken from the manifest's own `fingerprint` field.
fn key_of(m: &Member) -> (Option<AgeRecipient>, String) {
    match AgeRecipient::parse(&m.recipient) {
        Ok(k) => {
            let fp = k.fingerprint();
            (Some(k), fp)
        }
        Err(_) => (None, format!("unparsable key, listed as {}", m.fingerprint)),
    }
}

/// Every difference between manifest `old` and `new` except the chain
/// fields (counter, previous, signer, time, audit head): members added,
/// removed or given another key or fingerprint under the same name,
/// readers, default readers, `exec_allow` (per environment and
/// manifest-wide), environments and their files, the write branch and the
/// format. Fingerprints shown are computed from the keys.
pub fn change_lines(old: &Manifest, new: &Manifest) -> Vec<ChangeLine> {
    let mut out = Vec::new();
    let mut push = |touches, text: String| out.push(ChangeLine { touches, text });
    if old.format != new.format {
        push(
            Touches::Settings,
            format!("manifest format: {} -> {}", old.format, new.format),
        );
    }
    if old.branch.is_some() && old.branch != new.branch {
        push(
            Touches::Settings,
            format!(
                "signed writes move from branch {} to {}",
                old.branch.as_deref().unwrap_or("(none)"),
                new.branch.as_deref().unwrap_or("(none)")
            ),
        );
    }
    for m in &new.members {
        let (key, fp) = key_of(m);
        match old.member(&m.name) {
            None => push(Touches::Recipients, format!("new member {} ({fp})", m.name)),
            Some(o) => {
                let (okey, ofp) = key_of(o);
                if okey.is_none() || key.is_none() || okey != key {
                    push(
                        Touches::MemberKey,
                        format!(
                            "member {}: KEY CHANGED under the same name, {ofp} -> {fp}: whoever holds the new key reads what {} reads, and the old key no longer does",
                            m.name, m.name
                        ),
                    );
                } else if o.fingerprint != m.fingerprint {
                    push(
                        Touches::MemberKey,
                        format!(
                            "member {}: listed fingerprint changed ({} -> {}; the key, {fp}, is the same)",
                            m.name, o.fingerprint, m.fingerprint
                        ),
                    );
                }
            }
        }
        if key.is_some() && m.fingerprint != fp {
            push(
                Touches::MemberKey,
                format!(
                    "member {}: its listed fingerprint {} is not its key's ({fp})",
                    m.name, m.fingerprint
                ),
            );
        }
    }
    for m in &old.members {
        if new.member(&m.name).is_none() {
            push(
                Touches::Recipients,
                format!("member {} removed ({})", m.name, key_of(m).1),
            );
        }
    }
    let set = |list: &[String]| -> BTreeSet<String> { list.iter().cloned().collect() };
    let (dbefore, dafter) = (set(&old.default_readers), set(&new.default_readers));
    let added: Vec<&str> = dafter.difference(&dbefore).map(String::as_str).collect();
    let removed: Vec<&str> = dbefore.difference(&dafter).map(String::as_str).collect();
    if !added.is_empty() {
        push(
            Touches::Recipients,
            format!(
                "default readers (of environments made later) added: {}",
                added.join(", ")
            ),
        );
    }
    if !removed.is_empty() {
        push(
            Touches::Recipients,
            format!(
                "default readers (of environments made later) removed: {}",
                removed.join(", ")
            ),
        );
    }
    let (gbefore, gafter) = (set(&old.exec_allow), set(&new.exec_allow));
    for n in gafter.difference(&gbefore) {
        push(
            Touches::ExecAllow,
            format!("exec_allow in every environment added: {n}"),
        );
    }
    for n in gbefore.difference(&gafter) {
        push(
            Touches::ExecAllow,
            format!("exec_allow in every environment removed: {n}"),
        );
    }
    let envs: BTreeSet<&String> = old
        .environments
        .keys()
        .chain(new.environments.keys())
        .collect();
    for env in envs {
        let (o, n) = (old.environments.get(env), new.environments.get(env));
        let before: BTreeSet<String> = o.map(|e| set(&e.readers)).unwrap_or_default();
        let after: BTreeSet<String> = n.map(|e| set(&e.readers)).unwrap_or_default();
        // A new environment read by exactly the current default readers is
        // what a value change makes; any other reader set is a recipient
        // change.
        let readers_touch = if o.is_none() && after == dbefore {
            Touches::Values
        } else {
            Touches::Recipients
        };
        if o.is_none() {
            push(
                readers_touch,
                format!(
                    "{env}: new environment, read by {}",
                    after.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        } else if n.is_none() {
            push(Touches::Recipients, format!("{env}: environment removed"));
        } else {
            let added: Vec<&str> = after.difference(&before).map(String::as_str).collect();
            let removed: Vec<&str> = before.difference(&after).map(String::as_str).collect();
            if !added.is_empty() {
                push(
                    Touches::Recipients,
                    format!("{env}: readers added: {}", added.join(", ")),
                );
            }
            if !removed.is_empty() {
                push(
                    Touches::Recipients,
                    format!("{env}: readers removed: {}", removed.join(", ")),
                );
            }
        }
        if n.is_some() && o.map(|e| &e.sha256) != n.map(|e| &e.sha256) {
            push(Touches::Values, format!("{env}: file changes"));
        }
        if n.is_some() {
            let before: BTreeSet<String> = old.exec_allow_for(env).into_iter().collect();
            let after: BTreeSet<String> = new.exec_allow_for(env).into_iter().collect();
            for name in after.difference(&before) {
                let why = crate::exec::family_of(name)
                    .map(|f| format!(" although {f}"))
                    .unwrap_or_default();
                push(
                    Touches::ExecAllow,
                    format!(
                        "{env}: exec_allow added: {name} (`byreis exec {env}` will pass it to programs{why})"
                    ),
                );
            }
            for name in before.difference(&after) {
                push(
                    Touches::ExecAllow,
                    format!(
                        "{env}: exec_allow removed: {name} (`byreis exec {env}` refuses it again)"
                    ),
                );
            }
        }
    }
    out
}

/// Lines describing how two manifests differ ([`change_lines`]), or one
/// saying nothing but the chain did.
pub fn describe_change(old: &Manifest, new: &Manifest) -> Vec<String> {
    let mut out: Vec<String> = change_lines(old, new).into_iter().map(|l| l.text).collect();
    if out.is_empty() {
        out.push("no reader or file changes".into());
    }
    out
}
