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
) -> CliResult {
    super::daily::check_env(env)?;
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
    let state = super::daily::verified(ctx)?;
    super::daily::require_env(&state, env)?;
    let identity = AgeIdentity::load(&ctx.home)?;
    let all = state.secrets(env, &identity)?;
    let secrets: Secrets = if only.is_empty() {
        all
    } else {
        let missing: Vec<&str> = only
            .iter()
            .filter(|n| !all.contains_key(*n))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(CliError::Refused(Refusal::UnknownKey, format!(
                "{env} has no secret named {} (`byreis list {env}` shows the names); nothing was written",
                missing.join(", ")
            )));
        }
        all.into_iter().filter(|(k, _)| only.contains(k)).collect()
    };
    let text = match format {
        ExportFormat::Dotenv => export::dotenv(&secrets),
        ExportFormat::Json => Ok(export::json(&secrets)),
        ExportFormat::Shell => export::shell(&secrets),
        ExportFormat::K8sSecret => {
            let sha = state
                .record
                .manifest
                .strip_prefix("sha256:")
                .unwrap_or(&state.record.manifest)
                .to_string();
            export::k8s_secret(
                &secrets,
                &SecretMeta {
                    name: name.as_deref().expect("checked"),
                    namespace: secret.namespace.as_deref(),
                    kind: secret.kind.as_deref().unwrap_or("Opaque"),
                    project: &state.manifest.project,
                    environment: env,
                    counter: state.manifest.counter,
                    manifest_sha256: &sha,
                },
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
