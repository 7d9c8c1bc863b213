//! The files of an access request (docs/request-access-runbook.md): the
//! contributor's request and the admin's signed decision, as bytes in and
//! typed documents out. Reading them from a registry, and acting on them,
//! is `request`'s work.

use serde::{Deserialize, Serialize};

use crate::keys::{AgeRecipient, SigningPub};
use crate::names::{self, Kind};
use crate::sshsig::Namespace;

/// Request branches in the registry are named `byreis/request/<name>`.
pub const BRANCH_PREFIX: &str = "byreis/request/";
pub const REQUEST_FORMAT: &str = "byreis-request/1";
pub const DECISION_FORMAT: &str = "byreis-request-decision/1";
/// Requests are small: public keys and a few lines of text.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// A request file: `requests/<project>/<name>.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDoc {
    pub format: String,
    pub project: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub age_recipient: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub time: String,
}

/// An admin's decision on a request:
/// `requests/<project>/<name>.decision.yaml` and its `.sig`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub format: String,
    pub project: String,
    pub name: String,
    /// `absorbed` or `rejected`.
    pub state: String,
    /// The fingerprint of the request's age key, as the admin confirmed it.
    pub fingerprint: String,
    /// SHA-256 of the request file's exact bytes.
    pub request_sha256: String,
    /// The request branch's commit the admin confirmed, when it was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_commit: Option<String>,
    pub by: String,
    pub by_key: String,
    pub time: String,
    /// The project counter the absorbing rotation landed at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<u64>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

pub fn request_path(project: &str, name: &str) -> String {
    format!("requests/{project}/{name}.yaml")
}

pub fn decision_path(project: &str, name: &str) -> String {
    format!("requests/{project}/{name}.decision.yaml")
}

fn check_text(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.chars().count() > max {
        return Err(format!("{what} is longer than {max} characters"));
    }
    Ok(())
}

/// Parses untrusted request bytes: strict YAML, known fields only, ASCII
/// names, a key that parses. Text fields may hold anything printable;
/// they are escaped wherever they are shown.
pub fn parse(bytes: &[u8]) -> Result<(RequestDoc, AgeRecipient), String> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(format!("larger than {MAX_REQUEST_BYTES} bytes"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let doc: RequestDoc = crate::yaml::from_untrusted(text).map_err(|e| e.to_string())?;
    if doc.format != REQUEST_FORMAT {
        return Err(format!(
            "format is {}, expected {REQUEST_FORMAT}",
            names::quoted(&doc.format)
        ));
    }
    names::check(Kind::Project, &doc.project).map_err(|e| e.to_string())?;
    names::check(Kind::Member, &doc.name).map_err(|e| e.to_string())?;
    if let Some(e) = &doc.email {
        if e.is_empty()
            || e.len() > 254
            || !e.bytes().all(|b| b.is_ascii_graphic())
            || !e.contains('@')
        {
            return Err(format!("email {} is not an address", names::quoted(e)));
        }
    }
    if let Some(r) = &doc.reason {
        check_text("reason", r, 1000)?;
    }
    check_text("time", &doc.time, 64)?;
    let key = AgeRecipient::parse(&doc.age_recipient).map_err(|e| e.to_string())?;
    if let Some(k) = &doc.signing_key {
        SigningPub::parse(k).map_err(|e| e.to_string())?;
    }
    Ok((doc, key))
}

/// Checks a decision file's signature (namespace `request@byreis.dev`,
/// one of `admin_keys`) and parses it.
pub fn verify_decision(
    bytes: &[u8],
    sig: &[u8],
    admin_keys: &[SigningPub],
) -> Result<Decision, String> {
    let v = crate::signed::verify(
        bytes,
        &String::from_utf8_lossy(sig),
        Namespace::Request,
        admin_keys,
        1,
        crate::signed::parse_yaml::<Decision>,
    )
    .map_err(|e| e.to_string())?;
    Ok(v.value().clone())
}
