//! `byreis kustomize` as a KRM function (issue 16), driven with
//! ResourceLists written from the KRM Functions Specification: no
//! kustomize with exec functions can be installed from the registries
//! here (Debian's kubectl has kustomize built in, but runs no exec
//! function). The Secret it appends is the one `export --format
//! k8s-secret` prints; a refusal is reported in `results`, with exit 1 (3
//! when verification refuses) and no value anywhere.

use crate::common::*;
use serde_yaml::Value;

fn resource_list(function_config: &str) -> String {
    format!(
        "apiVersion: config.kubernetes.io/v1
kind: ResourceList
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: app-config
  data:
    mode: |
      multi
      line
functionConfig:
{function_config}"
    )
}

const CONFIG: &str = "  apiVersion: byreis.dev/v1
  kind: ByreisSecret
  metadata:
    name: app-secrets
    annotations:
      config.kubernetes.io/function: |
        exec:
          path: byreis
  spec:
    environment: prod
    namespace: shop
";

fn kustomize(w: &World, input: &str) -> std::process::Output {
    w.alice_run_stdin(&["kustomize"], input)
}

#[test]
fn the_function_appends_the_secret_export_prints() {
    let w = World::with_secrets();
    let o = kustomize(&w, &resource_list(CONFIG));
    assert_ok(&o, "byreis kustomize");
    let out: Value = serde_yaml::from_str(&stdout(&o)).unwrap();
    assert_eq!(out["kind"], "ResourceList");
    let items = out["items"].as_sequence().unwrap();
    assert_eq!(items.len(), 2, "the input item and the Secret");
    let input: Value = serde_yaml::from_str(&resource_list(CONFIG)).unwrap();
    assert_eq!(
        items[0], input["items"][0],
        "input items pass through unchanged"
    );
    let o = w.alice_run(&[
        "export",
        "prod",
        "--format",
        "k8s-secret",
        "--name",
        "app-secrets",
        "--namespace",
        "shop",
    ]);
    assert_ok(&o, "export k8s-secret");
    let exported: Value = serde_yaml::from_str(&stdout(&o)).unwrap();
    assert_eq!(items[1], exported, "the same Secret as export prints");
    assert!(out["results"].is_null(), "no results on success");

    let only = CONFIG.replace(
        "    namespace: shop\n",
        "    only: [DB]\n    type: Opaque\n",
    );
    let o = kustomize(&w, &resource_list(&only));
    assert_ok(&o, "spec.only");
    let out: Value = serde_yaml::from_str(&stdout(&o)).unwrap();
    let data = out["items"][1]["data"].as_mapping().unwrap();
    assert_eq!(data.len(), 1, "only DB: {data:?}");
}

#[track_caller]
fn assert_reported(o: &std::process::Output, code: i32, needle: &str, what: &str) {
    assert_exit(o, code, what);
    let out: Value =
        serde_yaml::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{what}: {e}\n{}", dump(o)));
    assert_eq!(out["kind"], "ResourceList", "{what}");
    let r = &out["results"][0];
    assert_eq!(r["severity"], "error", "{what}: {out:?}");
    let msg = r["message"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{what}: {msg}");
    assert_eq!(
        out["items"].as_sequence().map(|s| s.len()),
        Some(1),
        "{what}: no Secret appended"
    );
    assert_no_leak(o, &[PROD_DB, PROD_API], what);
}

#[test]
fn refusals_are_results_with_no_value() {
    let w = World::with_secrets();
    let typo = CONFIG.replace("    namespace: shop\n", "    namespce: shop\n");
    assert_reported(
        &kustomize(&w, &resource_list(&typo)),
        1,
        "unknown field spec.namespce",
        "a misspelt field",
    );
    let other = CONFIG.replace("kind: ByreisSecret", "kind: SomethingElse");
    assert_reported(
        &kustomize(&w, &resource_list(&other)),
        1,
        "kind: ByreisSecret",
        "another kind",
    );
    let missing = CONFIG.replace("    environment: prod\n", "    environment: nope\n");
    assert_reported(
        &kustomize(&w, &resource_list(&missing)),
        1,
        "no environment nope",
        "an unknown environment",
    );

    let file = w.secrets_file("prod");
    flip_a_bit(&file);
    assert_reported(
        &kustomize(&w, &resource_list(CONFIG)),
        3,
        "error[file-hash-mismatch]",
        "a tampered file",
    );

    let o = kustomize(&w, "kind: NotAList\n");
    assert_exit(&o, 1, "not a ResourceList");
}
