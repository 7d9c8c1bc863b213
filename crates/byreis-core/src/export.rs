//! Verified values in the formats deploys read (issue 16): dotenv, JSON,
//! shell and a Kubernetes `Secret`. Pure functions from already verified
//! values to the whole output, built in memory: a value a format cannot
//! carry is refused before anything is written, never mangled.

use std::collections::BTreeMap;

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::yaml::Secrets;

/// An output format of `byreis export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Dotenv,
    Json,
    Shell,
    K8sSecret,
}

/// What a `Secret` names and carries beyond the values.
#[derive(Debug, Clone)]
pub struct SecretMeta<'a> {
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub kind: &'a str,
    pub project: &'a str,
    pub environment: &'a str,
    pub counter: u64,
    /// Hex SHA-256 of the signed manifest's bytes.
    pub manifest_sha256: &'a str,
}

/// A value or a name the format cannot carry, or a bad `Secret` field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExportError(pub String);

/// Room for every value `factor` times over, so the zeroizing output is
/// never reallocated (a reallocation would leave an unzeroized copy).
fn capacity(secrets: &Secrets, factor: usize) -> usize {
    secrets
        .iter()
        .map(|(k, v)| k.len() + 16 + factor * v.expose().len())
        .sum()
}

fn refuse<T>(msg: String) -> Result<T, ExportError> {
    Err(ExportError(msg))
}

/// `NAME="value"` lines, one per secret (multi-line values inside the
/// quotes), read back byte for byte by python-dotenv (`dotenv_values`,
/// with its default interpolation), by `set -a; . FILE` in sh, bash and
/// zsh. Each value is written in the first form that all of them read
/// the same way: `"…"` as is; `"…"` with `\\` and `\"` escaped; `'…'`.
/// Refused: carriage returns and NUL (python-dotenv's reader turns CR
/// into a newline), `${` (python-dotenv expands it in every quoting), and
/// a value with `$` or a backquote together with `'` or `\`.
pub fn dotenv(secrets: &Secrets) -> Result<Zeroizing<String>, ExportError> {
    let mut out = Zeroizing::new(String::with_capacity(capacity(secrets, 2)));
    for (name, value) in secrets {
        let v = value.expose();
        let why = |what: &str| {
            refuse(format!(
                "{name}'s value {what}, which dotenv cannot carry for every reader (python-dotenv, sh); use --format json or --format shell for it, or leave it out (--only)"
            ))
        };
        if v.contains('\0') {
            return why("contains a NUL byte");
        }
        if v.contains('\r') {
            return why("contains a carriage return (python-dotenv reads it as a newline)");
        }
        if v.contains("${") {
            return why("contains `${` (python-dotenv expands it as a variable)");
        }
        let expands = v.contains('$') || v.contains('`');
        out.push_str(name);
        out.push('=');
        if !expands && !v.contains('"') && !v.contains('\\') {
            out.push('"');
            out.push_str(v);
            out.push('"');
        } else if !expands && !v.ends_with('\\') {
            out.push('"');
            for c in v.chars() {
                if c == '\\' || c == '"' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else if !v.contains('\'') && !v.contains('\\') {
            out.push('\'');
            out.push_str(v);
            out.push('\'');
        } else if expands {
            return why("has `$` or a backquote together with a quote or backslash");
        } else {
            return why("ends with a backslash");
        }
        out.push('\n');
    }
    Ok(out)
}

/// One JSON object `{NAME: value}`, and a newline.
pub fn json(secrets: &Secrets) -> Zeroizing<String> {
    let map: BTreeMap<&str, &str> = secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    let mut out = Zeroizing::new(String::with_capacity(capacity(secrets, 6) + 4));
    // serde_json writes into the reserved buffer (a JSON escape is at most
    // six bytes per input byte), so no copy is left behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(out.capacity()));
    serde_json::to_writer(&mut *buf, &map).expect("strings serialize");
    out.push_str(std::str::from_utf8(&buf).expect("JSON is UTF-8"));
    out.push('\n');
    out
}

/// `export NAME='…'` lines, safe to `eval` in bash, dash and zsh: every
/// value in single quotes, a `'` written as `'\''`. NUL is refused (no
/// shell variable can hold it).
pub fn shell(secrets: &Secrets) -> Result<Zeroizing<String>, ExportError> {
    let mut out = Zeroizing::new(String::with_capacity(capacity(secrets, 4)));
    for (name, value) in secrets {
        let v = value.expose();
        if v.contains('\0') {
            return refuse(format!(
                "{name}'s value contains a NUL byte, which no shell variable can hold; use --format json"
            ));
        }
        out.push_str("export ");
        out.push_str(name);
        out.push_str("='");
        for c in v.chars() {
            if c == '\'' {
                out.push_str("'\\''");
            } else {
                out.push(c);
            }
        }
        out.push_str("'\n");
    }
    Ok(out)
}

/// A DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`), at most `max` long.
fn dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks the fields of a `Secret` as the Kubernetes API would.
pub fn check_meta(meta: &SecretMeta) -> Result<(), ExportError> {
    check_names(meta.name, meta.namespace, meta.kind)
}

/// [`check_meta`] of the fields the user gives (`--name`, `--namespace`,
/// `--type`), before anything is verified or decrypted.
pub fn check_names(name: &str, namespace: Option<&str>, kind: &str) -> Result<(), ExportError> {
    if name.len() > 253 || !name.split('.').all(|l| dns_label(l, 63)) {
        return refuse(format!(
            "--name {name:?} is not a Kubernetes object name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
        ));
    }
    if let Some(ns) = namespace {
        if !dns_label(ns, 63) {
            return refuse(format!(
                "--namespace {ns:?} is not a Kubernetes namespace: lower-case letters, digits and '-', at most 63 characters"
            ));
        }
    }
    let type_ok = !kind.is_empty()
        && kind.len() <= 253
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./-_".contains(&b));
    if !type_ok {
        return refuse(format!(
            "--type {kind:?} is not a Secret type (for example Opaque or kubernetes.io/tls)"
        ));
    }
    Ok(())
}

/// A `v1` `Secret`: values base64 in `data`, and annotations naming the
/// verified state (project, environment, counter, manifest digest) so a
/// change of state changes the object and can trigger a rollout.
pub fn k8s_secret(secrets: &Secrets, meta: &SecretMeta) -> Result<Zeroizing<String>, ExportError> {
    check_meta(meta)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    for name in secrets.keys() {
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return refuse(format!(
                "{name} is not a Secret data key (letters, digits, '-', '.', '_')"
            ));
        }
    }
    let mut annotations = serde_yaml::Mapping::new();
    for (k, v) in [
        ("byreis.dev/project", meta.project.to_string()),
        ("byreis.dev/environment", meta.environment.to_string()),
        ("byreis.dev/counter", meta.counter.to_string()),
        (
            "byreis.dev/manifest-sha256",
            meta.manifest_sha256.to_string(),
        ),
    ] {
        annotations.insert(k.into(), v.into());
    }
    let mut metadata = serde_yaml::Mapping::new();
    metadata.insert("name".into(), meta.name.into());
    if let Some(ns) = meta.namespace {
        metadata.insert("namespace".into(), ns.into());
    }
    metadata.insert("annotations".into(), annotations.into());
    let mut head = serde_yaml::Mapping::new();
    head.insert("apiVersion".into(), "v1".into());
    head.insert("kind".into(), "Secret".into());
    head.insert("metadata".into(), metadata.into());
    head.insert("type".into(), meta.kind.into());
    // Names only above (serde_yaml quotes them); the values are written
    // below straight into zeroizing memory, base64 needing no quoting.
    let mut out = Zeroizing::new(
        serde_yaml::to_string(&serde_yaml::Value::Mapping(head))
            .map_err(|e| ExportError(format!("cannot write the Secret: {e}")))?,
    );
    out.reserve(capacity(secrets, 2));
    if secrets.is_empty() {
        out.push_str("data: {}\n");
    } else {
        out.push_str("data:\n");
        for (name, value) in secrets {
            out.push_str("  ");
            out.push_str(name);
            out.push_str(": ");
            let mut encoded = Zeroizing::new(String::new());
            b64.encode_string(value.expose().as_bytes(), &mut encoded);
            // An empty value is `""`, not YAML's null (as kubectl writes it).
            out.push_str(if encoded.is_empty() { "\"\"" } else { &encoded });
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::secrets_of;

    #[test]
    fn dotenv_picks_a_form_every_reader_reads_alike() {
        let s = secrets_of(&[
            ("A", "plain value"),
            ("B", "say \"hi\" \\o/"),
            ("C", "cost $5 `now`"),
            ("D", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"),
        ]);
        let out = dotenv(&s).unwrap();
        assert_eq!(
            out.as_str(),
            "A=\"plain value\"\nB=\"say \\\"hi\\\" \\\\o/\"\nC='cost $5 `now`'\nD=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\n\"\n"
        );
    }

    #[test]
    fn dotenv_refuses_what_it_cannot_carry_and_names_it() {
        for v in ["a\rb", "${HOME}", "$x 'q'", "`x` \\", "ends\\"] {
            let e = dotenv(&secrets_of(&[("K", v)])).unwrap_err().to_string();
            assert!(e.starts_with("K's value"), "{v:?}: {e}");
            assert!(!e.contains(v), "the value is never echoed: {e}");
        }
    }

    #[test]
    fn shell_quotes_single_quotes() {
        let out = shell(&secrets_of(&[("K", "it's")])).unwrap();
        assert_eq!(out.as_str(), "export K='it'\\''s'\n");
    }

    #[test]
    fn k8s_names_are_checked() {
        let meta = |name, ns, kind| SecretMeta {
            name,
            namespace: ns,
            kind,
            project: "demo",
            environment: "prod",
            counter: 3,
            manifest_sha256: "00",
        };
        assert!(check_meta(&meta("app-secrets", Some("prod"), "Opaque")).is_ok());
        assert!(check_meta(&meta("a.b", None, "kubernetes.io/tls")).is_ok());
        assert!(check_meta(&meta("App", None, "Opaque")).is_err());
        assert!(check_meta(&meta("a", Some("-x"), "Opaque")).is_err());
        assert!(check_meta(&meta("a", None, "bad type")).is_err());
        let out = k8s_secret(&secrets_of(&[("DB", "pw")]), &meta("a", None, "Opaque")).unwrap();
        assert!(out.contains("byreis.dev/counter: '3'"), "{}", out.as_str());
        assert!(out.contains("DB: cHc="), "{}", out.as_str());
    }
}
