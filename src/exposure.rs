//! `doctor --exposure NAME`: every value a party could ever read, across
//! the whole history, and whether each is still in use.
//!
//! Walks every commit reachable from every ref, keeps each manifest whose
//! signature verifies and that made NAME a reader of an environment, and
//! collects every secrets-file version addressed to them (the file's hash
//! must match that manifest). Each distinct file version is decrypted once,
//! with the caller's identity. Values are never printed: each distinct value
//! gets a fingerprint keyed with a random key for this run only, so
//! fingerprints cannot be compared across runs or guessed offline.

use std::collections::{BTreeMap, HashMap};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::agefile;
use crate::git::Oid;
use crate::keys::AgeIdentity;
use crate::names;
use crate::signed::sha256_hex;
use crate::verify::{self, SignerRule, State, MANIFEST_PATH, MANIFEST_SIG_PATH};

/// Where a value stands today.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    /// The value they could read is still the current one.
    Unchanged,
    /// byreis saw the value change (or the secret removed). byreis cannot
    /// know whether the old value was revoked at its issuer.
    ChangedInByreis {
        since_counter: Option<u64>,
        since_time: Option<String>,
    },
    /// An admin recorded, signed, that the old value is revoked at its
    /// issuer.
    Acknowledged {
        by: String,
        time: String,
        note: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct SecretExposure {
    pub env: String,
    pub key: String,
    #[serde(flatten)]
    pub status: Status,
    /// Fingerprints (keyed for this run only) of the distinct values the
    /// party could read.
    pub value_fingerprints: Vec<String>,
    /// The first commit (by commit time) that exposed a version to them.
    pub first_exposed: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub member: String,
    pub complete: bool,
    pub incomplete: Vec<String>,
    pub commits_walked: usize,
    pub manifests_verified: usize,
    pub file_versions: usize,
    pub secrets: Vec<SecretExposure>,
}

impl Report {
    pub fn unchanged(&self) -> usize {
        self.secrets
            .iter()
            .filter(|s| s.status == Status::Unchanged)
            .count()
    }
    pub fn unacknowledged(&self) -> usize {
        self.secrets
            .iter()
            .filter(|s| !matches!(s.status, Status::Acknowledged { .. }))
            .count()
    }
}

/// The distinct values of one secret a party could read, and the first
/// (by commit time) commit that exposed one.
type Seen = (Vec<Zeroizing<String>>, i64, String);

struct Version {
    env: String,
    blob: Oid,
    commit: String,
    time: i64,
}

/// Builds the inventory for member `name`.
pub fn inventory(state: &State, identity: &AgeIdentity, name: &str) -> Result<Report, String> {
    let repo = &state.project.repo;
    let mut incomplete = Vec::new();
    if repo.is_shallow() {
        incomplete.push(
            "the clone is shallow: history before the cut is unavailable (git fetch --unshallow)"
                .to_string(),
        );
    }
    let commits = repo.all_reachable_commits().map_err(|e| e.to_string())?;

    // Manifest blob → verified manifest (or None when it does not verify).
    let mut manifests: HashMap<Oid, Option<crate::documents::Manifest>> = HashMap::new();
    let mut versions: HashMap<Oid, Version> = HashMap::new();
    let mut verified_count = 0;
    for (commit, time) in &commits {
        let Ok(Some((mblob, mbytes))) = repo.read_file_with_id(commit, MANIFEST_PATH) else {
            continue;
        };
        let manifest = manifests.entry(mblob).or_insert_with(|| {
            let sig = repo
                .read_file(commit, MANIFEST_SIG_PATH)
                .ok()
                .flatten()
                .unwrap_or_default();
            let m = verify::verify_manifest(
                &state.roster,
                &mbytes,
                &String::from_utf8_lossy(&sig),
                // Proposals count too: their files were encrypted to their
                // readers whether or not they landed.
                verify::Approvals::NotRequired,
                SignerRule::AdminThen,
            )
            .ok()
            .map(|v| v.value().clone());
            if m.is_some() {
                verified_count += 1;
            }
            m
        });
        let Some(m) = manifest else { continue };
        if m.project != state.manifest.project {
            continue;
        }
        for (env, e) in &m.environments {
            if !e.readers.iter().any(|r| r == name) {
                continue;
            }
            let path = names::env_file(env);
            let Ok(Some((blob, bytes))) = repo.read_file_with_id(commit, &path) else {
                continue;
            };
            if sha256_hex(&bytes) != e.sha256 {
                continue;
            }
            let v = versions.entry(blob).or_insert(Version {
                env: env.clone(),
                blob,
                commit: commit.clone(),
                time: *time,
            });
            if *time < v.time {
                v.time = *time;
                v.commit = commit.clone();
            }
        }
    }

    // Decrypt each distinct version once, on all cores.
    let mut inputs = Vec::new();
    for v in versions.values() {
        if let Ok(Some(bytes)) = repo.read_file(&v.commit, &names::env_file(&v.env)) {
            inputs.push((v.blob, bytes));
        }
    }
    let progress = crate::par::Progress::new("byreis: decrypting history", inputs.len());
    let decrypted = crate::par::map(&inputs, Some(&progress), |(_, bytes)| {
        agefile::decrypt(bytes, identity)
    });

    // (env, key) → distinct exposed values, and when first exposed.
    let mut exposed: BTreeMap<(String, String), Seen> = BTreeMap::new();
    let mut undecryptable = 0;
    for ((blob, _), result) in inputs.iter().zip(decrypted) {
        let v = &versions[blob];
        match result {
            Ok(secrets) => {
                for (key, value) in secrets {
                    let entry = exposed
                        .entry((v.env.clone(), key))
                        .or_insert_with(|| (Vec::new(), v.time, v.commit.clone()));
                    if !entry.0.iter().any(|old| old.as_str() == value.expose()) {
                        entry.0.push(Zeroizing::new(value.expose().to_string()));
                    }
                    if v.time < entry.1 {
                        entry.1 = v.time;
                        entry.2 = v.commit.clone();
                    }
                }
            }
            Err(_) => undecryptable += 1,
        }
    }
    if undecryptable > 0 {
        incomplete.push(format!(
            "{undecryptable} file version(s) addressed to {name} could not be decrypted with your identity (you were not a reader then): ask an admin who was"
        ));
    }

    // Current values, and what the audit log says about changes and acks.
    let mut current: BTreeMap<String, crate::yaml::Secrets> = BTreeMap::new();
    for env in state.manifest.environments.keys() {
        match state.secrets(env, identity) {
            Ok(s) => {
                current.insert(env.clone(), s);
            }
            Err(_) => {
                if exposed.keys().any(|(e, _)| e == env) {
                    incomplete.push(format!(
                        "you cannot read the current {env}, so its status is unknown"
                    ));
                }
            }
        }
    }
    let mut run_key = [0u8; 32];
    getrandom(&mut run_key);
    let fingerprint = |value: &str| {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&run_key).expect("any key length");
        mac.update(value.as_bytes());
        let out = mac.finalize().into_bytes();
        crate::signed::hex(&out[..8])
    };

    let mut secrets = Vec::new();
    for ((env, key), (values, _, first_commit)) in &exposed {
        let now = current.get(env).and_then(|s| s.get(key));
        let still = now.is_some_and(|v| values.iter().any(|old| old.as_str() == v.expose()));
        let status = if still {
            Status::Unchanged
        } else if let Some(ack) = last_ack(state, name, env, key) {
            ack
        } else {
            let (since_counter, since_time) = last_change(state, env, key);
            Status::ChangedInByreis {
                since_counter,
                since_time,
            }
        };
        secrets.push(SecretExposure {
            env: env.clone(),
            key: key.clone(),
            status,
            value_fingerprints: values.iter().map(|v| fingerprint(v)).collect(),
            first_exposed: first_commit.clone(),
        });
    }
    Ok(Report {
        member: name.to_string(),
        complete: incomplete.is_empty(),
        incomplete,
        commits_walked: commits.len(),
        manifests_verified: verified_count,
        file_versions: versions.len(),
        secrets,
    })
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("the system random source is readable");
}

/// The newest audit entry that changed or removed `key` in `env`.
fn last_change(state: &State, env: &str, key: &str) -> (Option<u64>, Option<String>) {
    let touches = |d: &serde_json::Value| {
        d.get("env").and_then(|e| e.as_str()) == Some(env)
            && ["keys_changed", "keys_removed"].iter().any(|f| {
                d.get(*f)
                    .and_then(|k| k.as_array())
                    .is_some_and(|a| a.iter().any(|k| k.as_str() == Some(key)))
            })
    };
    for v in state.audit.iter().rev() {
        let d = &v.entry.details;
        let hit = touches(d)
            || d.get("envs")
                .and_then(|e| e.as_array())
                .is_some_and(|a| a.iter().any(touches));
        if hit {
            return (Some(v.entry.counter_to), Some(v.entry.time.clone()));
        }
    }
    (None, None)
}

/// The newest signed acknowledgement that `name`'s old value of `key`
/// (in `env`, or in every environment) is revoked at its issuer.
fn last_ack(state: &State, name: &str, env: &str, key: &str) -> Option<Status> {
    state.audit.iter().rev().find_map(|v| {
        let e = &v.entry;
        let d = &e.details;
        let covers = e.action == "exposure-ack"
            && d.get("member").and_then(|m| m.as_str()) == Some(name)
            && d.get("keys")
                .and_then(|k| k.as_array())
                .is_some_and(|a| a.iter().any(|k| k.as_str() == Some(key)))
            && d.get("env")
                .and_then(|x| x.as_str())
                .is_none_or(|x| x == env);
        covers.then(|| Status::Acknowledged {
            by: e.actor.clone(),
            time: e.time.clone(),
            note: d
                .get("note")
                .and_then(|n| n.as_str())
                .unwrap_or("")
                .to_string(),
        })
    })
}
