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

use std::collections::{BTreeMap, HashMap, HashSet};

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

/// The secrets-file versions addressed to a party across the history.
struct Walk {
    versions: HashMap<Oid, Version>,
    incomplete: Vec<String>,
    commits: usize,
    manifests_verified: usize,
}

/// Walks every commit reachable from every ref and collects each
/// secrets-file version a verified manifest addressed to `name` (its hash
/// checked against that manifest). Versions whose blob is in `skip` are
/// left out unread (the caller has them already). Each distinct manifest
/// is verified once and kept only as the environments `name` reads.
fn walk(state: &State, name: &str, skip: &HashSet<Oid>) -> Result<Walk, String> {
    let repo = &state.project().repo;
    let mut incomplete = Vec::new();
    if repo.is_shallow() {
        incomplete.push(
            "the clone is shallow: history before the cut is unavailable (git fetch --unshallow)"
                .to_string(),
        );
    }
    let commits = repo.all_reachable_commits().map_err(|e| e.to_string())?;

    // Manifest blob → (environment, file hash) pairs `name` reads under it
    // (None when it does not verify, or is another project's).
    type Reads = Option<Vec<(String, String)>>;
    let mut manifests: HashMap<Oid, Reads> = HashMap::new();
    let reads_of = |m: &crate::documents::Manifest| -> Vec<(String, String)> {
        m.environments
            .iter()
            .filter(|(_, e)| e.readers.iter().any(|r| r == name))
            .map(|(env, e)| (env.clone(), e.sha256.clone()))
            .collect()
    };
    // The pinned manifest is verified already (and at 10,000 files,
    // parsing it again would double the peak memory of a rotation).
    if let Ok(ids) = repo.entry_ids(&state.record().project_commit, &[MANIFEST_PATH]) {
        if let Some(pinned) = ids[0] {
            manifests.insert(pinned, Some(reads_of(state.manifest())));
        }
    }
    // (manifest blob, secrets/ tree) pairs done: a commit that changed
    // neither adds nothing.
    let mut done: HashSet<(Oid, Option<Oid>)> = HashSet::new();
    let mut versions: HashMap<Oid, Version> = HashMap::new();
    let mut verified_count = 0;
    for (commit, time) in &commits {
        let Ok(ids) = repo.entry_ids(commit, &[MANIFEST_PATH, crate::verify::SECRETS_DIR]) else {
            continue;
        };
        let (Some(mblob), secrets_tree) = (ids[0], ids[1]) else {
            continue;
        };
        let reads = match manifests.get(&mblob) {
            Some(r) => r,
            None => {
                let bytes = repo.blob(mblob).unwrap_or_default();
                if !may_name(&bytes, name) {
                    // Cannot make them a reader: not worth parsing (a
                    // manifest of 10,000 files costs tens of MiB to parse).
                    manifests.entry(mblob).or_insert(Some(Vec::new()));
                    continue;
                }
                let sig = repo
                    .read_file(commit, MANIFEST_SIG_PATH)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                // Proposals count too: their files were encrypted to their
                // readers whether or not they landed.
                let m = verify::verify_unpinned(
                    state.roster(),
                    &bytes,
                    &String::from_utf8_lossy(&sig),
                    SignerRule::AdminThen,
                )
                .ok();
                if m.is_some() {
                    verified_count += 1;
                }
                let reads = m
                    .filter(|m| m.project == state.manifest().project)
                    .map(|m| reads_of(&m));
                manifests.entry(mblob).or_insert(reads)
            }
        };
        let Some(reads) = reads else { continue };
        if !done.insert((mblob, secrets_tree)) {
            // Same manifest and files as a commit already walked: only the
            // earliest exposure time can change.
            for (env, _) in reads {
                if let Ok(ids) = repo.entry_ids(commit, &[names::env_file(env)]) {
                    if let Some(v) = ids[0].and_then(|b| versions.get_mut(&b)) {
                        if *time < v.time {
                            v.time = *time;
                            v.commit = commit.clone();
                        }
                    }
                }
            }
            continue;
        }
        let paths: Vec<String> = reads.iter().map(|(env, _)| names::env_file(env)).collect();
        let Ok(ids) = repo.entry_ids(commit, &paths) else {
            continue;
        };
        for ((env, sha256), id) in reads.iter().zip(ids) {
            let Some(blob) = id else { continue };
            if skip.contains(&blob) {
                continue;
            }
            if let Some(v) = versions.get_mut(&blob) {
                if *time < v.time {
                    v.time = *time;
                    v.commit = commit.clone();
                }
                continue;
            }
            let Ok(bytes) = repo.blob(blob) else { continue };
            if sha256_hex(&bytes) != *sha256 {
                continue;
            }
            versions.insert(
                blob,
                Version {
                    env: env.clone(),
                    blob,
                    commit: commit.clone(),
                    time: *time,
                },
            );
        }
    }
    Ok(Walk {
        versions,
        incomplete,
        commits: commits.len(),
        manifests_verified: verified_count,
    })
}

/// Whether YAML `text` can hold a scalar equal to `name` (a member name:
/// no spaces, quotes or backslashes). Only an escape (`\`) can spell such
/// a scalar other than verbatim: plain and quoted styles fold line breaks
/// into spaces, and block styles add a newline unless stripped, which
/// leaves the name verbatim too. So a text with no backslash and no
/// occurrence of the name cannot name that member.
fn may_name(text: &[u8], name: &str) -> bool {
    text.contains(&b'\\')
        || text
            .windows(name.len().max(1))
            .any(|w| w == name.as_bytes())
}

/// Builds the inventory for member `name`.
pub fn inventory(state: &State, identity: &AgeIdentity, name: &str) -> Result<Report, String> {
    let repo = &state.project().repo;
    let Walk {
        versions,
        mut incomplete,
        commits,
        manifests_verified: verified_count,
    } = walk(state, name, &HashSet::new())?;

    // Decrypt each distinct version once, on all cores.
    let mut inputs = Vec::new();
    for v in versions.values() {
        if let Ok(bytes) = repo.blob(v.blob) {
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
    for env in state.manifest().environments.keys() {
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

    // Every audit entry's details, parsed once (not once per secret).
    let details: Vec<serde_json::Value> = state
        .audit()
        .iter()
        .map(|v| v.entry.details.value())
        .collect();
    let mut secrets = Vec::new();
    for ((env, key), (values, _, first_commit)) in &exposed {
        let now = current.get(env).and_then(|s| s.get(key));
        let still = now.is_some_and(|v| values.iter().any(|old| old.as_str() == v.expose()));
        let status = if still {
            Status::Unchanged
        } else if let Some(ack) = last_ack(state, &details, name, env, key) {
            ack
        } else {
            let (since_counter, since_time) = last_change(state, &details, env, key);
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
        commits_walked: commits,
        manifests_verified: verified_count,
        file_versions: versions.len(),
        secrets,
    })
}

/// What `rotate --remove` adds to its warning from the inventory: the
/// values a party could read in versions older than the current files.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Earlier {
    /// Environment → secrets whose value in an older version is still the
    /// current value (in an environment they may no longer read).
    pub still_in_use: BTreeMap<String, Vec<String>>,
    /// Changed or removed in byreis since; not acknowledged as revoked at
    /// the issuer (byreis cannot know whether it was).
    pub changed: BTreeMap<String, Vec<String>>,
    /// Changed since, and acknowledged by an admin as revoked at the issuer.
    pub acknowledged: BTreeMap<String, Vec<String>>,
    /// Why the answer may be incomplete (shallow clone, undecryptable
    /// versions).
    pub incomplete: Vec<String>,
}

/// The older half of the inventory for a party being removed: every
/// version addressed to `name` except the current files, which the caller
/// has already read (`current`: environment → its file's blob id). Each
/// such version is decrypted once; the current file of an environment is
/// decrypted only if an older version of it exists.
pub fn earlier(
    state: &State,
    identity: &AgeIdentity,
    name: &str,
    current: &HashSet<Oid>,
) -> Result<Earlier, String> {
    let repo = &state.project().repo;
    let Walk {
        versions,
        mut incomplete,
        ..
    } = walk(state, name, current)?;
    let inputs: Vec<(Oid, Vec<u8>)> = versions
        .values()
        .filter_map(|v| repo.blob(v.blob).ok().map(|b| (v.blob, b)))
        .collect();
    let progress = crate::par::Progress::new("byreis: decrypting history", inputs.len());
    let decrypted = crate::par::map(&inputs, Some(&progress), |(_, bytes)| {
        agefile::decrypt(bytes, identity)
    });
    let mut old: BTreeMap<(String, String), Vec<Zeroizing<String>>> = BTreeMap::new();
    let mut undecryptable = 0;
    for ((blob, _), result) in inputs.iter().zip(decrypted) {
        let env = &versions[blob].env;
        match result {
            Ok(secrets) => {
                for (key, value) in secrets {
                    let values = old.entry((env.clone(), key)).or_default();
                    if !values.iter().any(|v| v.as_str() == value.expose()) {
                        values.push(Zeroizing::new(value.expose().to_string()));
                    }
                }
            }
            Err(_) => undecryptable += 1,
        }
    }
    if undecryptable > 0 {
        incomplete.push(format!(
            "{undecryptable} older file version(s) addressed to {name} could not be decrypted with your identity: run `byreis doctor --exposure {name}` as an admin who could read them"
        ));
    }
    // Only acknowledgements matter here: other entries' details (a
    // rotation's lists every file) are not parsed.
    let details: Vec<serde_json::Value> = state
        .audit()
        .iter()
        .map(|v| {
            if v.entry.action == "exposure-ack" {
                v.entry.details.value()
            } else {
                serde_json::Value::Null
            }
        })
        .collect();
    let mut out = Earlier::default();
    let mut current_values: BTreeMap<String, Option<crate::yaml::Secrets>> = BTreeMap::new();
    for ((env, key), values) in &old {
        let now = current_values
            .entry(env.clone())
            .or_insert_with(|| {
                if !state.manifest().environments.contains_key(env) {
                    return Some(crate::yaml::Secrets::new());
                }
                let read = state.secrets(env, identity).ok();
                if read.is_none() {
                    incomplete.push(format!(
                        "you cannot read the current {env}, so whether its older values are still in use is unknown"
                    ));
                }
                read
            })
            .as_ref();
        let Some(now) = now else { continue };
        let current = now.get(key);
        let bucket = if current.is_some_and(|c| values.iter().any(|v| v.as_str() == c.expose())) {
            &mut out.still_in_use
        } else if last_ack(state, &details, name, env, key).is_some() {
            &mut out.acknowledged
        } else {
            &mut out.changed
        };
        bucket.entry(env.clone()).or_default().push(key.clone());
    }
    out.incomplete = incomplete;
    Ok(out)
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("the system random source is readable");
}

/// The newest audit entry that changed or removed `key` in `env`.
fn last_change(
    state: &State,
    details: &[serde_json::Value],
    env: &str,
    key: &str,
) -> (Option<u64>, Option<String>) {
    let touches = |d: &serde_json::Value| {
        d.get("env").and_then(|e| e.as_str()) == Some(env)
            && ["keys_changed", "keys_removed"].iter().any(|f| {
                d.get(*f)
                    .and_then(|k| k.as_array())
                    .is_some_and(|a| a.iter().any(|k| k.as_str() == Some(key)))
            })
    };
    for (v, d) in state.audit().iter().zip(details).rev() {
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
fn last_ack(
    state: &State,
    details: &[serde_json::Value],
    name: &str,
    env: &str,
    key: &str,
) -> Option<Status> {
    state.audit().iter().zip(details).rev().find_map(|(v, d)| {
        let e = &v.entry;
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

#[cfg(test)]
mod tests {
    use super::may_name;

    /// Every spelling below is parsed as YAML; wherever it yields the
    /// name, `may_name` must say so (a skip would under-report exposure).
    #[test]
    fn a_manifest_names_a_member_only_verbatim_or_through_an_escape() {
        let spellings = [
            "- carol",
            "- 'carol'",
            "- \"carol\"",
            "- \"c\\x61rol\"",
            "- \"\\u0063arol\"",
            "- \"car\\\n  ol\"",
            "- |-\n  carol",
            "- >-\n  carol",
            // Line folding inserts a space: these are not the name.
            "- car\n  ol",
            "- 'car\n  ol'",
            "- \"car\n  ol\"",
            "- >-\n  car\n  ol",
            "- carl",
        ];
        let mut named = 0;
        for s in spellings {
            let doc = format!("readers:\n{s}\n");
            let parsed: std::collections::BTreeMap<String, Vec<String>> =
                serde_yaml::from_str(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
            let names_carol = parsed["readers"].iter().any(|r| r == "carol");
            named += usize::from(names_carol);
            if names_carol {
                assert!(may_name(doc.as_bytes(), "carol"), "{doc}");
            }
        }
        assert_eq!(named, 8, "the first eight spellings are the name");
        assert!(!may_name(b"readers:\n- car\n  ol\n", "carol"));
        assert!(!may_name(b"readers:\n- alice\n", "carol"));
    }
}
