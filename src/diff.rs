//! `byreis diff [REV]`: the name-level change between an earlier signed
//! state and the current one, for review. Values are never shown; secret
//! names are listed only where you can read both states. That hides them
//! from this output only: the project's plaintext audit log names every
//! secret, environment, member and reason (SECURITY.md).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::agefile;
use crate::documents::Manifest;
use crate::keys::AgeIdentity;
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
    let repo = &state.project.repo;
    let bad = |m: String| VerifyError {
        code: crate::diag::Code::ManifestInvalid,
        detail: m,
    };
    let pinned = state.record.project_commit.clone();
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
    let old: Manifest = verify::verify_manifest(
        &state.roster,
        &mbytes,
        &String::from_utf8_lossy(&msig),
        verify::Approvals::NotRequired,
        SignerRule::AdminThen,
    )
    .map_err(|e| bad(format!("the manifest at {from} does not verify: {e}")))?
    .value()
    .clone();
    if old.project != state.manifest.project {
        return Err(bad(format!(
            "{from} holds project {}, not {}",
            names::quoted(&old.project),
            state.manifest.project
        )));
    }
    let new = &state.manifest;
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
        readers: crate::rotation::describe_change(&old, new),
        envs: out,
    })
}
