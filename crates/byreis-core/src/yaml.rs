//! YAML from people who are not verified signers (invariant 9).
//!
//! Two entry points:
//! - [`parse_secrets`] reads the plaintext of a secrets file (or what an
//!   editor returned): exactly one flat mapping of secret names to strings.
//! - [`from_untrusted`] reads a small document (project config, requests)
//!   into a serde type after [`check_strict`] has walked its event stream.
//!
//! Both refuse aliases, anchors, tags, several documents, duplicate keys,
//! deep nesting and oversized input before any value is built. Signed files
//! (manifest, record, roster) are parsed with serde only after their
//! signature verified, but they pass through [`check_strict`] as well.

use std::collections::{BTreeMap, HashSet};

use saphyr_parser::{Event, Parser};
use zeroize::Zeroizing;

use crate::names::{self, Kind};
use crate::secret::SecretValue;

/// Largest plaintext byreis accepts for one environment.
pub const MAX_SECRETS_BYTES: usize = 1 << 20;
/// Largest config, request or other unsigned document byreis parses.
pub const MAX_DOC_BYTES: usize = 1 << 20;
/// Largest signed document (a manifest of 10,000 environments is ~4 MiB).
pub const MAX_SIGNED_BYTES: usize = 64 << 20;
/// Deepest nesting of mappings and sequences in any document.
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("YAML is too large ({0} bytes; the limit is {1})")]
    TooLarge(usize, usize),
    #[error("YAML syntax error: {0}")]
    Syntax(String),
    #[error("YAML {0} are not allowed here")]
    Forbidden(&'static str),
    #[error("YAML nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("duplicate key {0}")]
    DuplicateKey(String),
    #[error("the document must be one flat mapping of secret names to string values")]
    NotFlatMapping,
    #[error("{0}")]
    Name(#[from] names::NameError),
    #[error("invalid document: {0}")]
    Shape(String),
}

impl YamlError {
    /// The refusal code this error is reported with.
    pub fn code(&self) -> crate::diag::Refusal {
        match self {
            YamlError::Name(e) => e.code(),
            _ => crate::diag::Refusal::BadYaml,
        }
    }
}

fn syntax(e: saphyr_parser::ScanError) -> YamlError {
    YamlError::Syntax(e.to_string())
}

fn refuse_decorations(anchor: usize, tagged: bool) -> Result<(), YamlError> {
    if anchor != 0 {
        return Err(YamlError::Forbidden("anchors"));
    }
    if tagged {
        return Err(YamlError::Forbidden("tags"));
    }
    Ok(())
}

/// Walks the event stream of `text` and refuses anything outside the plain
/// subset byreis accepts: one document, no aliases, anchors or tags, keys
/// that are scalars and unique within their mapping, nesting ≤ [`MAX_DEPTH`].
pub fn check_strict(text: &str) -> Result<(), YamlError> {
    check_strict_limit(text, MAX_DOC_BYTES)
}

/// [`check_strict`] with another size limit.
pub fn check_strict_limit(text: &str, limit: usize) -> Result<(), YamlError> {
    if text.len() > limit {
        return Err(YamlError::TooLarge(text.len(), limit));
    }
    // One frame per open collection: for mappings, the keys seen so far and
    // whether the next scalar is a key.
    enum Frame {
        Seq,
        Map {
            keys: HashSet<String>,
            expect_key: bool,
        },
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut documents = 0;
    for ev in Parser::new_from_str(text) {
        let (ev, _) = ev.map_err(syntax)?;
        // A scalar or a collection start fills one slot of the parent.
        let mut key_of_parent: Option<Option<String>> = None;
        match ev {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError::Forbidden("multiple documents"));
                }
            }
            Event::Alias(_) => return Err(YamlError::Forbidden("aliases")),
            Event::Scalar(value, _, anchor, tag) => {
                refuse_decorations(anchor, tag.is_some())?;
                key_of_parent = Some(Some(value.into_owned()));
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                refuse_decorations(anchor, tag.is_some())?;
                let frame = if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq
                } else {
                    Frame::Map {
                        keys: HashSet::new(),
                        expect_key: true,
                    }
                };
                // The parent slot is consumed before pushing.
                consume_slot(&mut stack, None)?;
                stack.push(frame);
                if stack.len() > MAX_DEPTH {
                    return Err(YamlError::TooDeep);
                }
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
            }
        }
        if let Some(scalar) = key_of_parent {
            consume_slot(&mut stack, scalar)?;
        }
    }

    fn consume_slot(stack: &mut [Frame], scalar: Option<String>) -> Result<(), YamlError> {
        if let Some(Frame::Map { keys, expect_key }) = stack.last_mut() {
            if *expect_key {
                let Some(key) = scalar else {
                    return Err(YamlError::Forbidden("non-scalar keys"));
                };
                if !keys.insert(key.clone()) {
                    return Err(YamlError::DuplicateKey(names::quoted(&key)));
                }
            }
            *expect_key = !*expect_key;
        }
        Ok(())
    }
    Ok(())
}

/// Parses an untrusted document into `T` after [`check_strict`].
pub fn from_untrusted<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    from_untrusted_limit(text, MAX_DOC_BYTES)
}

/// [`from_untrusted`] with another size limit.
pub fn from_untrusted_limit<T: serde::de::DeserializeOwned>(
    text: &str,
    limit: usize,
) -> Result<T, YamlError> {
    check_strict_limit(text, limit)?;
    serde_yaml::from_str(text).map_err(|e| YamlError::Shape(e.to_string()))
}

/// The secrets of one environment, by name, sorted.
pub type Secrets = BTreeMap<String, SecretValue>;

/// Secrets from `(name, value)` pairs, for unit tests.
#[cfg(test)]
pub(crate) fn secrets_of(pairs: &[(&str, &str)]) -> Secrets {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                SecretValue::new(Zeroizing::new(v.to_string())),
            )
        })
        .collect()
}

/// Parses the plaintext of a secrets file: a single flat mapping from secret
/// names (environment-variable names) to strings. Every scalar value is taken
/// exactly as written (`PORT: 8080` is the string "8080"; `X: ~` is "~").
/// An empty document is an empty mapping.
pub fn parse_secrets(text: &str) -> Result<Secrets, YamlError> {
    if text.len() > MAX_SECRETS_BYTES {
        return Err(YamlError::TooLarge(text.len(), MAX_SECRETS_BYTES));
    }
    Ok(walk_secrets(text, false)?.remove("").unwrap_or_default())
}

/// Parses an import document: a mapping of environment names to flat
/// mappings of secrets, with the same rules as [`parse_secrets`].
pub fn parse_import(text: &str, limit: usize) -> Result<BTreeMap<String, Secrets>, YamlError> {
    if text.len() > limit {
        return Err(YamlError::TooLarge(text.len(), limit));
    }
    walk_secrets(text, true)
}

/// The one event walk behind [`parse_secrets`] and [`parse_import`]: a
/// single document that is a flat mapping of secret names to scalars, or
/// (`nested`) a mapping of environment names to such mappings. Aliases,
/// anchors, tags, sequences, deeper nesting, invalid names and duplicate
/// keys are refused here, for both. Flat documents land under the key "".
fn walk_secrets(text: &str, nested: bool) -> Result<BTreeMap<String, Secrets>, YamlError> {
    let secrets_depth = if nested { 2 } else { 1 };
    let shape = || {
        if nested {
            YamlError::Shape(
                "an import is a mapping of environment names to mappings of secret names to values"
                    .into(),
            )
        } else {
            YamlError::NotFlatMapping
        }
    };
    let mut out: BTreeMap<String, Secrets> = BTreeMap::new();
    // The environment whose secrets are being read ("" when flat).
    let mut env: Option<String> = (!nested).then(String::new);
    let mut depth = 0usize;
    let mut documents = 0;
    let mut pending_key: Option<String> = None;
    for ev in Parser::new_from_str(text) {
        let (ev, _) = ev.map_err(syntax)?;
        match ev {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError::Forbidden("multiple documents"));
                }
            }
            Event::Alias(_) => return Err(YamlError::Forbidden("aliases")),
            Event::MappingStart(anchor, tag) => {
                refuse_decorations(anchor, tag.is_some())?;
                depth += 1;
                if depth > secrets_depth || (depth == secrets_depth && env.is_none()) {
                    return Err(shape());
                }
            }
            Event::MappingEnd => {
                if nested && depth == 2 {
                    env = None;
                }
                depth = depth.saturating_sub(1);
            }
            Event::SequenceStart(..) | Event::SequenceEnd => return Err(shape()),
            Event::Scalar(value, style, anchor, tag) => {
                refuse_decorations(anchor, tag.is_some())?;
                if nested && depth == 1 {
                    // An environment name, opening its mapping.
                    if env.is_some() {
                        return Err(shape());
                    }
                    names::check(Kind::Environment, &value)?;
                    if out.contains_key(value.as_ref()) {
                        return Err(YamlError::DuplicateKey(names::quoted(&value)));
                    }
                    out.insert(value.to_string(), Secrets::new());
                    env = Some(value.into_owned());
                } else if depth == secrets_depth {
                    let secrets = out
                        .entry(env.clone().expect("checked at the mapping start"))
                        .or_default();
                    match pending_key.take() {
                        None => {
                            names::check(Kind::SecretKey, &value)?;
                            if secrets.contains_key(value.as_ref()) {
                                return Err(YamlError::DuplicateKey(names::quoted(&value)));
                            }
                            pending_key = Some(value.into_owned());
                        }
                        Some(key) => {
                            let v = SecretValue::new(Zeroizing::new(value.into_owned()));
                            secrets.insert(key, v);
                        }
                    }
                } else if depth == 0
                    && value.is_empty()
                    && style == saphyr_parser::ScalarStyle::Plain
                {
                    // An empty document: no secrets.
                } else {
                    return Err(shape());
                }
            }
        }
    }
    Ok(out)
}

/// Writes secrets as canonical YAML: sorted names, double-quoted values with
/// JSON escapes (a subset of YAML's double-quoted style), so that any value,
/// multi-line or not, survives a round trip exactly.
pub fn emit_secrets(secrets: &Secrets) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    if secrets.is_empty() {
        out.push_str("{}\n");
        return out;
    }
    for (k, v) in secrets {
        out.push_str(k);
        out.push_str(": ");
        let quoted = Zeroizing::new(serde_json::to_string(v.expose()).expect("string serializes"));
        out.push_str(&quoted);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expose(s: &Secrets) -> Vec<(String, String)> {
        s.iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect()
    }

    #[test]
    fn flat_mapping_exact_strings() {
        let s = parse_secrets("A: 1\nB: true\nC: \"x\\ny\"\nD: ~\nE: ''\n").unwrap();
        assert_eq!(
            expose(&s),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "true".into()),
                ("C".into(), "x\ny".into()),
                ("D".into(), "~".into()),
                ("E".into(), "".into()),
            ]
        );
        assert!(parse_secrets("").unwrap().is_empty());
        assert!(parse_secrets("{}\n").unwrap().is_empty());
    }

    #[test]
    fn round_trip() {
        let text = "K: \"line1\\nline2\\t\\\"q\\\" é \\u0001\"\nZ: plain\n";
        let s = parse_secrets(text).unwrap();
        let again = parse_secrets(&emit_secrets(&s)).unwrap();
        assert_eq!(expose(&s), expose(&again));
    }

    #[test]
    fn refusals() {
        for (text, why) in [
            ("A: 1\nA: 2\n", "duplicate"),
            ("A: &x 1\nB: *x\n", "anchors"),
            ("A: !!str 1\n", "tags"),
            ("A: 1\n---\nB: 2\n", "multiple"),
            ("A:\n  B: 1\n", "flat"),
            ("A: [1]\n", "flat"),
            ("- 1\n", "flat"),
            ("just a string\n", "flat"),
            ("bad-name: 1\n", "secret name"),
            ("A: \"unterminated\n", "syntax"),
        ] {
            let err = parse_secrets(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn import_documents() {
        let envs = parse_import(
            "prod:\n  A: 1\n  B: \"x y\"\nstaging: {A: 2}\n",
            MAX_DOC_BYTES,
        )
        .unwrap();
        assert_eq!(
            expose(&envs["prod"]),
            vec![("A".into(), "1".into()), ("B".into(), "x y".into())]
        );
        assert_eq!(expose(&envs["staging"]), vec![("A".into(), "2".into())]);
        for bad in [
            "prod:\n  A: 1\nprod:\n  B: 2\n",
            "prod:\n  A: 1\n  A: 2\n",
            "Prod:\n  A: 1\n",
            "prod:\n  bad-name: 1\n",
            "prod:\n  A:\n    B: 1\n",
            "prod: [1]\n",
            "prod: &x\n  A: 1\n",
            "A: 1\n",
        ] {
            assert!(parse_import(bad, MAX_DOC_BYTES).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn strict_documents() {
        assert!(check_strict("a: 1\nb: [1, 2]\nc: {d: e}\n").is_ok());
        assert!(check_strict("a: 1\na: 2\n").is_err());
        assert!(check_strict("a: {x: 1, x: 2}\n").is_err());
        assert!(check_strict("a: &r 1\n").is_err());
        assert!(check_strict("a: !t 1\n").is_err());
        assert!(check_strict("a: 1\n---\nb: 1\n").is_err());
        assert!(check_strict("? [1]\n: 1\n").is_err());
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert!(matches!(check_strict(&deep), Err(YamlError::TooDeep)));
        // Sequences of mappings with the same keys are fine.
        assert!(check_strict("- a: 1\n- a: 2\n").is_ok());
    }
}
