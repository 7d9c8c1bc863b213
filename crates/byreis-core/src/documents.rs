//! The YAML documents byreis signs: roster, project record, manifest, and
//! the unsigned project config. Field meanings are in `docs/formats.md`.
//!
//! Adding an optional field is not a format break; anything else bumps the
//! `format` string, which readers check exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const ROSTER_FORMAT: &str = "byreis-roster/1";
pub const RECORD_FORMAT: &str = "byreis-record/1";
pub const MANIFEST_FORMAT: &str = "byreis-manifest/1";
pub const CONFIG_FORMAT: &str = "byreis-config/1";

/// How many distinct admin signatures each kind of change needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub roster: usize,
    pub recipients: usize,
    pub values: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            roster: 1,
            recipients: 1,
            values: 1,
        }
    }
}

/// One admin in a roster version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `ssh-ed25519 AAAA…`
    pub signing_key: String,
    /// `age1…`
    pub age_recipient: String,
}

/// `roster/N.yaml` in the registry. Version 1's SHA-256 is the trust anchor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Roster {
    pub format: String,
    pub version: u64,
    /// `sha256:HEX` of roster version N-1's bytes; absent for version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub thresholds: Thresholds,
    /// How long a project record stays valid after it is signed.
    pub record_expiry_days: u32,
    pub admins: Vec<Admin>,
    /// `sha256:HEX` of the last line of the registry's `audit.jsonl` when
    /// this version was made (absent in version 1), so a truncated registry
    /// audit log is detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<String>,
    /// The registry's canonical location (a git URL, or an absolute path),
    /// stated by its admins (ADR 0015): a machine that found the registry
    /// through a project's `byreis.yaml` accepts it only when this says
    /// that is where the registry lives. Absent in registries made before
    /// it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// `projects/NAME/record.yaml` in the registry: what is current.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub format: String,
    pub project: String,
    pub counter: u64,
    /// `sha256:HEX` of `.byreis/manifest.yaml` at `counter`.
    pub manifest: String,
    /// The project commit (hex object id) in which that manifest landed.
    pub project_commit: String,
    /// `sha256:HEX` of the last audit line at `counter`.
    pub audit_head: String,
    pub roster_version: u64,
    pub signer: String,
    pub signer_key: String,
    /// RFC 3339, informational.
    pub issued: String,
    /// RFC 3339; the record is refused after this moment.
    pub expires: String,
    /// +1 on every signed write of this record (begun, finished, aborted,
    /// refreshed, re-signed for a roster change). Machines remember the
    /// highest they saw, so an older record (an aborted change's pending
    /// record, say) cannot be replayed to them.
    #[serde(default)]
    pub revision: u64,
    /// SHA-512 (hex) of the bytes of the manifest `manifest` names. Readers
    /// check it as they check `manifest`; it lets the signatures below be
    /// verified from the registry alone (ADR 0017). Empty in records made
    /// before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manifest_sha512: String,
    /// The proof that the pinned manifest was approved: SSHSIG blobs
    /// (base64) over its bytes, in namespace `manifest@byreis.dev` (its
    /// signature) or `proposal@byreis.dev` (approvals, `byreis approve
    /// --pinned` included). Only those of admins of the newest roster
    /// version count, against that version's thresholds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<String>,
    /// A change an admin has begun but not finished. While it is set, the
    /// fields above still describe the current state; only the change named
    /// here can be resumed (`byreis rotate --resume`) or abandoned (`--abort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// A begun change: the exact manifest and commit it will make current.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// The record's counter + 1.
    pub counter: u64,
    /// `sha256:HEX` of the new manifest.
    pub manifest: String,
    /// The project commit that holds it (not yet on the branch, or not yet
    /// recorded as current).
    pub project_commit: String,
    pub audit_head: String,
    /// `set`, `unset`, `edit`, `rotate`, …
    pub action: String,
}

/// A member: someone who can be a reader of environments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: String,
    /// `age1…`
    pub recipient: String,
    /// Typeable fingerprint of the recipient key bytes.
    pub fingerprint: String,
}

/// The reader names of an environment, sorted. Shared: most projects
/// have a handful of distinct reader sets across all their environments,
/// so equal lists are one allocation (a manifest of 10,000 files would
/// otherwise hold 10,000 copies of the same names). Serialized as a plain
/// sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Readers(std::sync::Arc<[String]>);

impl std::ops::Deref for Readers {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl From<Vec<String>> for Readers {
    fn from(names: Vec<String>) -> Readers {
        Readers(names.into())
    }
}

impl Serialize for Readers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Readers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Readers, D::Error> {
        Vec::<String>::deserialize(d).map(Readers::from)
    }
}

/// Hands out one shared [`Readers`] per distinct list.
#[derive(Default)]
pub struct ReadersInterner(std::collections::HashSet<Readers>);

impl ReadersInterner {
    pub fn intern(&mut self, readers: Readers) -> Readers {
        if let Some(shared) = self.0.get(&readers) {
            return shared.clone();
        }
        self.0.insert(readers.clone());
        readers
    }
}

/// Deserializes the manifest's environments, sharing equal reader lists.
fn environments_shared<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Environment>, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = BTreeMap<String, Environment>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a mapping from environment names to environments")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            let mut interner = ReadersInterner::default();
            while let Some((name, mut env)) = map.next_entry::<String, Environment>()? {
                env.readers = interner.intern(env.readers);
                if out.insert(name, env).is_some() {
                    return Err(serde::de::Error::custom("duplicate environment"));
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visit)
}

/// One environment in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Member names that can decrypt `secrets/ENV.enc.yaml`, sorted.
    pub readers: Readers,
    /// SHA-256 (hex) of the file's exact bytes.
    pub sha256: String,
    /// Secret names of this environment that `exec` passes although a
    /// family refuses them (`byreis exec-allow ENV NAME`), sorted. Absent
    /// when empty, so manifests without it keep their bytes (ADR 0016).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_allow: Vec<String>,
}

/// `.byreis/manifest.yaml` in the project: the signed statement of who reads
/// what and the hash of every secrets file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub project: String,
    pub counter: u64,
    /// `sha256:HEX` of the previous manifest's bytes; absent at counter 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub roster_version: u64,
    pub signer: String,
    pub signer_key: String,
    /// RFC 3339, informational (never used to decide validity).
    pub time: String,
    /// `sha256:HEX` of the last line of `.byreis/audit.jsonl`.
    pub audit_head: String,
    pub members: Vec<Member>,
    /// Readers given to an environment when it is first created.
    pub default_readers: Vec<String>,
    #[serde(default, deserialize_with = "environments_shared")]
    pub environments: BTreeMap<String, Environment>,
    /// Secret names that `exec` passes in **every** environment although a
    /// family refuses them: the form before ADR 0016, still honoured.
    /// byreis now writes allowances per environment
    /// ([`Environment::exec_allow`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_allow: Vec<String>,
    /// The project branch signed writes land on (ADR 0015); a write from
    /// any other branch is refused before anything is signed. Absent in
    /// manifests made before it existed (the first write records it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

impl Manifest {
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The names `exec` passes in `env` although a family refuses them:
    /// the environment's own `exec_allow` and the manifest-wide one.
    pub fn exec_allow_for(&self, env: &str) -> Vec<String> {
        let mut names = self.exec_allow.clone();
        if let Some(e) = self.environments.get(env) {
            names.extend(e.exec_allow.iter().cloned());
        }
        names.sort();
        names.dedup();
        names
    }
}

/// `byreis.yaml` at the project root. Not trusted by itself: the registry
/// location and anchor must match what this machine pinned (invariant 8).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub format: String,
    pub project: String,
    /// A path (relative to the project root, or absolute) to a registry
    /// clone, or a git URL (https://, ssh://, git@host:path, file://).
    pub registry: String,
    /// Fingerprint of a roster version (version 1 when the project was
    /// made). A hint: what counts is the anchor this machine pinned.
    pub anchor: String,
}

/// Serializes a document for signing.
pub fn to_yaml<T: Serialize>(doc: &T) -> Vec<u8> {
    serde_yaml::to_string(doc)
        .expect("byreis documents serialize")
        .into_bytes()
}
