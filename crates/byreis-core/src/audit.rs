//! The audit log, `.byreis/audit.jsonl`: append-only, one signed JSON entry
//! per line, each naming the hash of the line before it. The manifest
//! records the hash of the last line, so truncation and edits are detected.

use serde::{Deserialize, Serialize};

use crate::keys::{Signer, SigningPub};
use crate::signed::sha256_hex;
use crate::sshsig::{self, Namespace};

pub const PATH: &str = ".byreis/audit.jsonl";
const SIG_FIELD: &str = ",\"sig\":\"";

/// An entry's `details`, kept as the exact JSON text it was signed in and
/// parsed only where it is read: a rotation's entry names every file it
/// re-encrypted, and a parsed log of a large project costs many times its
/// text in memory.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Details(Box<serde_json::value::RawValue>);

impl Details {
    pub fn new(value: &serde_json::Value) -> Details {
        Details(serde_json::value::to_raw_value(value).expect("a JSON value serializes"))
    }

    /// The parsed object (`Null` if the text is not JSON, which a line
    /// that deserialized cannot be).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }
}

impl From<serde_json::Value> for Details {
    fn from(value: serde_json::Value) -> Details {
        Details::new(&value)
    }
}

impl PartialEq for Details {
    fn eq(&self, other: &Details) -> bool {
        self.0.get() == other.0.get()
    }
}

impl std::fmt::Debug for Details {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.get())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub seq: u64,
    pub time: String,
    pub project: String,
    pub actor: String,
    pub actor_key: String,
    pub action: String,
    pub counter_from: u64,
    pub counter_to: u64,
    pub roster_version: u64,
    pub prev: Option<String>,
    pub details: Details,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit line {0}: {1}")]
    Line(usize, String),
    #[error("the audit log's last entry hashes to {found}, but the manifest records {expected} (entries removed or added)")]
    Head { found: String, expected: String },
    #[error("could not sign the audit entry: {0}")]
    Sign(String),
}

impl AuditError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        match self {
            AuditError::Line(..) | AuditError::Head { .. } => crate::diag::Refusal::AuditInvalid,
            AuditError::Sign(_) => crate::diag::Refusal::SigningFailed,
        }
    }
}

/// `sha256:HEX` of one line (without its newline).
pub fn line_hash(line: &str) -> String {
    format!("sha256:{}", sha256_hex(line.as_bytes()))
}

/// Serializes and signs `entry` into one line (no newline).
pub fn make_line(entry: &Entry, signer: &Signer) -> Result<String, AuditError> {
    let body = serde_json::to_string(entry).map_err(|e| AuditError::Sign(e.to_string()))?;
    let sig = sshsig::sign_base64(signer, Namespace::Audit, body.as_bytes())
        .map_err(|e| AuditError::Sign(e.to_string()))?;
    let open = body.strip_suffix('}').expect("a JSON object ends with }");
    Ok(format!("{open}{SIG_FIELD}{sig}\"}}"))
}

/// A line whose signature verified, with the index of its signer's key.
#[derive(Debug, Clone)]
pub struct Verified {
    pub entry: Entry,
    pub hash: String,
    pub signer: usize,
}

/// Verifies every line of `text`: signature by one of `keys`, `seq` counting
/// from 1, each `prev` naming the line before, the last line hashing to
/// `expected_head` (when given), and every entry for `project`.
pub fn verify_log(
    text: &str,
    keys: &[SigningPub],
    project: &str,
    expected_head: Option<&str>,
) -> Result<Vec<Verified>, AuditError> {
    let mut out: Vec<Verified> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let err = |m: String| AuditError::Line(n, m);
        let Some(at) = line.rfind(SIG_FIELD) else {
            return Err(err("no signature".into()));
        };
        let sig = line[at + SIG_FIELD.len()..]
            .strip_suffix("\"}")
            .ok_or_else(|| err("malformed signature field".into()))?;
        let body = format!("{}}}", &line[..at]);
        let signer = sshsig::verify_base64(sig, Namespace::Audit, body.as_bytes(), keys)
            .map_err(|e| err(format!("signature: {e}")))?;
        let entry: Entry = serde_json::from_str(&body).map_err(|e| err(e.to_string()))?;
        if entry.seq != n as u64 {
            return Err(err(format!("seq is {}, expected {n}", entry.seq)));
        }
        let expected_prev = out.last().map(|v| v.hash.clone());
        if entry.prev != expected_prev {
            return Err(err(
                "prev does not name the line before it (chain broken)".into()
            ));
        }
        if entry.project != project {
            return Err(err(format!(
                "entry is for project {:?}",
                crate::names::escape(&entry.project)
            )));
        }
        if keys[signer].fingerprint() != entry.actor_key {
            return Err(err("actor_key is not the key that signed".into()));
        }
        out.push(Verified {
            entry,
            hash: line_hash(line),
            signer,
        });
    }
    if let Some(expected) = expected_head {
        let found = out.last().map(|v| v.hash.clone()).unwrap_or_default();
        if found != expected {
            return Err(AuditError::Head {
                found,
                expected: expected.to_string(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, prev: Option<String>, s: &Signer) -> Entry {
        Entry {
            seq,
            time: "2026-01-01T00:00:00Z".into(),
            project: "p".into(),
            actor: "a".into(),
            actor_key: s.public.fingerprint(),
            action: "set".into(),
            counter_from: seq - 1,
            counter_to: seq,
            roster_version: 1,
            prev,
            details: serde_json::json!({"env": "prod"}).into(),
        }
    }

    #[test]
    fn chain_verifies_and_detects_tampering() {
        let s = Signer::generate("a").unwrap();
        let keys = [s.public.clone()];
        let l1 = make_line(&entry(1, None, &s), &s).unwrap();
        let l2 = make_line(&entry(2, Some(line_hash(&l1)), &s), &s).unwrap();
        let log = format!("{l1}\n{l2}\n");
        let v = verify_log(&log, &keys, "p", Some(&line_hash(&l2))).unwrap();
        assert_eq!(v.len(), 2);
        // Truncated.
        assert!(verify_log(&format!("{l1}\n"), &keys, "p", Some(&line_hash(&l2))).is_err());
        // Reordered.
        assert!(verify_log(&format!("{l2}\n{l1}\n"), &keys, "p", None).is_err());
        // Edited.
        let edited = l2.replace("\"prod\"", "\"stag\"");
        assert!(verify_log(&format!("{l1}\n{edited}\n"), &keys, "p", None).is_err());
        // Signed by someone else.
        let o = Signer::generate("o").unwrap();
        let forged = make_line(&entry(2, Some(line_hash(&l1)), &o), &o).unwrap();
        assert!(verify_log(&format!("{l1}\n{forged}\n"), &keys, "p", None).is_err());
    }
}
