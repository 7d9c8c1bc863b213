//! What `byreis import` reads (issue 16): byreis's YAML (`ENV: {NAME:
//! value}`, or one environment's flat mapping with `--env`), a dotenv file
//! as python-dotenv reads it, or a JSON object of strings. Every name is
//! checked as `set` checks it; an error never holds a value.

use std::collections::BTreeMap;

use crate::names::{self, Kind};
use crate::secret::SecretValue;
use crate::yaml::{self, Secrets};

/// `byreis import --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Dotenv,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Yaml(#[from] yaml::YamlError),
    #[error("dotenv {0}")]
    Dotenv(#[from] crate::dotenv::DotenvError),
    #[error("JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Name(#[from] names::NameError),
    #[error("{0}")]
    Usage(String),
}

impl ImportError {
    pub fn code(&self) -> crate::diag::Refusal {
        use crate::diag::Refusal;
        match self {
            ImportError::Yaml(e) => e.code(),
            ImportError::Dotenv(_) | ImportError::Json(_) => Refusal::BadInput,
            ImportError::Name(_) => Refusal::BadName,
            ImportError::Usage(_) => Refusal::Usage,
        }
    }
}

/// The environments and secrets `text` holds. `env` names the one
/// environment of a flat format (required for dotenv and JSON; with YAML
/// it makes the document one environment's flat mapping).
pub fn parse(
    text: &str,
    format: Format,
    env: Option<&str>,
    limit: usize,
) -> Result<BTreeMap<String, Secrets>, ImportError> {
    let flat = |secrets: Secrets, env: &str| {
        for k in secrets.keys() {
            names::check(Kind::SecretKey, k)?;
        }
        Ok(BTreeMap::from([(env.to_string(), secrets)]))
    };
    if env.is_some() && text.len() > yaml::MAX_SECRETS_BYTES {
        return Err(yaml::YamlError::TooLarge(text.len(), yaml::MAX_SECRETS_BYTES).into());
    }
    match (format, env) {
        (Format::Yaml, None) => Ok(yaml::parse_import(text, limit)?),
        (Format::Yaml, Some(e)) => flat(yaml::parse_secrets(text)?, e),
        (Format::Dotenv | Format::Json, None) => Err(ImportError::Usage(
            "--format dotenv and --format json hold one environment: name it with --env ENV".into(),
        )),
        (Format::Dotenv, Some(e)) => flat(crate::dotenv::parse(text)?, e),
        (Format::Json, Some(e)) => flat(json_object(text)?, e),
    }
}

/// One JSON object of strings. serde_json's own messages can quote the
/// value they stopped at, so only the position and the kind are kept.
fn json_object(text: &str) -> Result<Secrets, ImportError> {
    struct Pairs(Secrets, Option<String>);
    impl<'de> serde::Deserialize<'de> for Pairs {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Pairs;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object of secret names to strings")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Pairs, A::Error> {
                    let mut out = Secrets::new();
                    let mut twice = None;
                    while let Some(k) = map.next_key::<String>()? {
                        let v: SecretValue = map.next_value()?;
                        if out.contains_key(&k) && twice.is_none() {
                            twice = Some(k.clone());
                        }
                        out.insert(k, v);
                    }
                    Ok(Pairs(out, twice))
                }
            }
            d.deserialize_map(V)
        }
    }
    match serde_json::from_str::<Pairs>(text) {
        Ok(Pairs(_, Some(k))) => Err(ImportError::Json(format!("{k} is given twice"))),
        Ok(Pairs(out, None)) => Ok(out),
        Err(e) => Err(ImportError::Json(format!(
            "line {} column {}: {}",
            e.line(),
            e.column(),
            match e.classify() {
                serde_json::error::Category::Data =>
                    "expected an object whose every value is a string (quote numbers and booleans)",
                serde_json::error::Category::Syntax => "not valid JSON",
                serde_json::error::Category::Eof => "the JSON ends early",
                serde_json::error::Category::Io => "cannot be read",
            }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_an_object_of_strings_and_errors_never_quote_values() {
        let m = parse(
            r#"{"A": "x", "B": "multi\nline"}"#,
            Format::Json,
            Some("prod"),
            1 << 20,
        )
        .unwrap();
        assert_eq!(m["prod"]["B"].expose(), "multi\nline");
        let e = parse(r#"{"PORT": 5432}"#, Format::Json, Some("prod"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("every value is a string") && !e.contains("5432"),
            "{e}"
        );
        let e = parse(r#"{"A": "1", "A": "2"}"#, Format::Json, Some("p"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
        assert!(
            parse("{}", Format::Json, None, 1 << 20).is_err(),
            "--env is required"
        );
        assert!(parse(r#"{"bad name": "x"}"#, Format::Json, Some("p"), 1 << 20).is_err());
    }
}
