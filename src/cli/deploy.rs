//! Handing verified values to a deploy (issue 16): `byreis export`.

use std::io::Write as _;

use crate::diag::Refusal;
use crate::export::{self, SecretMeta};
use crate::keys::AgeIdentity;
use crate::verify::Context;
use crate::yaml::Secrets;

use super::{CliError, CliResult};

/// `byreis export`'s `--format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// `NAME="value"` lines (python-dotenv, `set -a; . FILE`)
    Dotenv,
    /// One JSON object `{NAME: value}`
    Json,
    /// `export NAME='value'` lines, safe to `eval` in bash, dash and zsh
    Shell,
    /// A Kubernetes `v1` Secret (needs --name)
    K8sSecret,
}

/// What `export --format k8s-secret` names.
#[derive(Debug, Default)]
pub struct SecretArgs {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub kind: Option<String>,
}

/// Verifies exactly as `get` does, builds the whole output in memory and
/// only then writes it: a refusal writes nothing to stdout.
pub fn export(
    ctx: &Context,
    env: &str,
    format: ExportFormat,
    only: &[String],
    secret: SecretArgs,
    as_env: bool,
) -> CliResult {
    super::daily::check_env(env)?;
    if as_env && matches!(format, ExportFormat::K8sSecret) {
        return Err(CliError::Refused(
            Refusal::Usage,
            "--as-env is for values that become environment variables (dotenv, json, shell); a Secret's keys are judged where it is mounted".into(),
        ));
    }
    if !matches!(format, ExportFormat::K8sSecret)
        && (secret.name.is_some() || secret.namespace.is_some() || secret.kind.is_some())
    {
        return Err(CliError::Refused(
            Refusal::Usage,
            "--name, --namespace and --type belong to --format k8s-secret".into(),
        ));
    }
    let name = match (format, &secret.name) {
        (ExportFormat::K8sSecret, None) => {
            return Err(CliError::Refused(
                Refusal::Usage,
                "--format k8s-secret needs --name NAME (the Secret's metadata.name)".into(),
            ))
        }
        (_, n) => n.clone(),
    };
    if let Some(n) = &name {
        let kind = secret.kind.as_deref().unwrap_or("Opaque");
        export::check_names(n, secret.namespace.as_deref(), kind)
            .map_err(|e| CliError::Refused(Refusal::Usage, e.to_string()))?;
    }
    let (state, secrets) = verified_values(ctx, env, only)?;
    if as_env {
        crate::exec::check_variable_names(
            "export --as-env refused (nothing was written)",
            env,
            secrets.keys(),
            &state.manifest().exec_allow_for(env),
        )?;
    }
    let text = match format {
        ExportFormat::Dotenv => export::dotenv(&secrets),
        ExportFormat::Json => Ok(export::json(&secrets)),
        ExportFormat::Shell => export::shell(&secrets),
        ExportFormat::K8sSecret => {
            let kind = secret.kind.as_deref().unwrap_or("Opaque");
            secret_text(
                &state,
                &secrets,
                env,
                name.as_deref().expect("checked"),
                secret.namespace.as_deref(),
                kind,
            )
        }
    }
    .map_err(|e| {
        CliError::Refused(
            Refusal::Unrepresentable,
            format!("{e}; nothing was written"),
        )
    })?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The environment's values (or `only` them), from a state verified
/// exactly as `get` verifies it.
fn verified_values(
    ctx: &Context,
    env: &str,
    only: &[String],
) -> Result<(crate::verify::State, Secrets), CliError> {
    let state = super::daily::verified(ctx)?;
    super::daily::require_env(&state, env)?;
    let identity = AgeIdentity::load(&ctx.home)?;
    let all = state.secrets(env, &identity)?;
    if only.is_empty() {
        return Ok((state, all));
    }
    for n in only {
        crate::names::check(crate::names::Kind::SecretKey, n)?;
    }
    // Checked names only (above): safe to show as they are.
    let missing: Vec<&str> = only
        .iter()
        .filter(|n| !all.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(CliError::Refused(
            Refusal::UnknownKey,
            format!(
                "{env} has no secret named {} (`byreis list {env}` shows the names); nothing was written",
                missing.join(", ")
            ),
        ));
    }
    let picked = all.into_iter().filter(|(k, _)| only.contains(k)).collect();
    Ok((state, picked))
}

/// The `Secret` of `secrets`, annotated with the verified state.
fn secret_text(
    state: &crate::verify::State,
    secrets: &Secrets,
    env: &str,
    name: &str,
    namespace: Option<&str>,
    kind: &str,
) -> Result<zeroize::Zeroizing<String>, export::ExportError> {
    let sha = state
        .record()
        .manifest
        .strip_prefix("sha256:")
        .unwrap_or(&state.record().manifest)
        .to_string();
    export::k8s_secret(
        secrets,
        &SecretMeta {
            name,
            namespace,
            kind,
            project: &state.manifest().project,
            environment: env,
            counter: state.manifest().counter,
            manifest_sha256: &sha,
        },
    )
}

/// `byreis kustomize`: a KRM function (the KRM Functions Specification).
/// A `ResourceList` on stdin whose `functionConfig` is a `ByreisSecret`
/// (`apiVersion: byreis.dev/v1`; `metadata.name`, `spec.environment`,
/// optional `spec.namespace`, `spec.type`, `spec.only`); on stdout the same
/// list with the `Secret` that `export --format k8s-secret` prints
/// appended. A refusal is a `ResourceList` whose `results` hold the error,
/// with exit 1 (3 when verification refuses), and no value in it.
pub fn kustomize(ctx: &Context) -> CliResult {
    use std::io::Read as _;
    let mut input = String::new();
    std::io::stdin()
        .take(crate::yaml::MAX_SIGNED_BYTES as u64 + 1)
        .read_to_string(&mut input)
        .map_err(|e| {
            CliError::Refused(Refusal::IoFailed, format!("reading the ResourceList: {e}"))
        })?;
    let list: serde_yaml::Value = match serde_yaml::from_str(&input) {
        Ok(v @ serde_yaml::Value::Mapping(_)) => v,
        _ => serde_yaml::Value::Null,
    };
    let items: Vec<serde_yaml::Value> = list["items"].as_sequence().cloned().unwrap_or_default();
    let result = if list["kind"] != "ResourceList" {
        Err(CliError::Refused(
            Refusal::BadInput,
            "stdin is not a KRM ResourceList (kind: ResourceList); `byreis kustomize` is run by kustomize as an exec function".into(),
        ))
    } else {
        function_config(&list["functionConfig"]).and_then(|c| {
            let (state, secrets) = verified_values(ctx, &c.environment, &c.only)?;
            secret_text(
                &state,
                &secrets,
                &c.environment,
                &c.name,
                c.namespace.as_deref(),
                &c.kind,
            )
            .map_err(|e| {
                CliError::Refused(
                    Refusal::Unrepresentable,
                    format!("{e}; nothing was written"),
                )
            })
        })
    };
    let mut out = zeroize::Zeroizing::new(String::from(
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n",
    ));
    for item in &items {
        let text = serde_yaml::to_string(item).map_err(|e| {
            CliError::Refused(
                Refusal::BadInput,
                format!("an item of the ResourceList: {e}"),
            )
        })?;
        push_item(&mut out, &text);
    }
    match result {
        Ok(secret) => {
            // Room first: a reallocation would leave a copy of the values.
            out.reserve(secret.len() + 2 * secret.lines().count() + 8);
            push_item(&mut out, &secret);
            let mut o = std::io::stdout().lock();
            o.write_all(out.as_bytes())?;
            o.flush()?;
            Ok(())
        }
        Err(e) => {
            // The same text main() prints on stderr (cli/render.rs).
            let message = super::render::error_text(&e);
            let results = serde_yaml::to_string(&serde_yaml::Value::Sequence(vec![
                serde_yaml::Value::Mapping(
                    [
                        ("message".into(), message.trim_end().into()),
                        ("severity".into(), "error".into()),
                    ]
                    .into_iter()
                    .collect(),
                ),
            ]))
            .unwrap_or_default();
            out.push_str("results:\n");
            for line in results.lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
            let mut o = std::io::stdout().lock();
            o.write_all(out.as_bytes())?;
            o.flush()?;
            Err(e)
        }
    }
}

/// One item of a YAML sequence: `- ` before the first line of `text`, two
/// spaces before the others.
fn push_item(out: &mut String, text: &str) {
    for (i, line) in text.lines().enumerate() {
        out.push_str(if i == 0 { "- " } else { "  " });
        out.push_str(line);
        out.push('\n');
    }
}

/// A `ByreisSecret` function config.
struct FunctionConfig {
    name: String,
    environment: String,
    namespace: Option<String>,
    kind: String,
    only: Vec<String>,
}

fn function_config(v: &serde_yaml::Value) -> Result<FunctionConfig, CliError> {
    let bad = |m: String| CliError::Refused(Refusal::BadInput, format!("functionConfig: {m}"));
    if v["apiVersion"] != "byreis.dev/v1" || v["kind"] != "ByreisSecret" {
        return Err(bad(
            "expected apiVersion: byreis.dev/v1 and kind: ByreisSecret".into(),
        ));
    }
    let name = v["metadata"]["name"]
        .as_str()
        .ok_or_else(|| bad("metadata.name (the Secret's name) is required".into()))?
        .to_string();
    let spec = v["spec"]
        .as_mapping()
        .ok_or_else(|| bad("spec is required (spec.environment at least)".into()))?;
    for k in spec.keys() {
        let known = ["environment", "namespace", "type", "only"];
        if !k.as_str().is_some_and(|k| known.contains(&k)) {
            return Err(bad(format!(
                "unknown field spec.{} (known: {})",
                k.as_str().unwrap_or("?"),
                known.join(", ")
            )));
        }
    }
    let text = |k: &str| -> Result<Option<String>, CliError> {
        match spec.get(k) {
            None => Ok(None),
            Some(serde_yaml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!("spec.{k} must be a string"))),
        }
    };
    let environment =
        text("environment")?.ok_or_else(|| bad("spec.environment is required".into()))?;
    super::daily::check_env(&environment)?;
    let only = match spec.get("only") {
        None => Vec::new(),
        Some(serde_yaml::Value::Sequence(s)) => s
            .iter()
            .map(|n| {
                n.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("spec.only is a list of names".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("spec.only is a list of names".into())),
    };
    let namespace = text("namespace")?;
    let kind = text("type")?.unwrap_or_else(|| "Opaque".into());
    export::check_names(&name, namespace.as_deref(), &kind).map_err(|e| {
        bad(e
            .to_string()
            .replace("--name", "metadata.name")
            .replace("--namespace", "spec.namespace")
            .replace("--type", "spec.type"))
    })?;
    Ok(FunctionConfig {
        name,
        environment,
        namespace,
        kind,
        only,
    })
}
