//! docs/auditing.md promises its command block works with stock tools:
//! this runs exactly that block against a real project.

use crate::common::*;

#[test]
fn the_documented_stock_tool_commands_pass() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/auditing.md"))
        .expect("docs/auditing.md");
    let start = doc
        .find("<!-- audit-commands:start -->")
        .expect("start marker");
    let end = doc.find("<!-- audit-commands:end -->").expect("end marker");
    let block = &doc[start..end];
    let body = block
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block between the markers");
    assert!(body.contains("ssh-keygen -Y verify") && body.contains("verify-commit"));

    let w = World::with_secrets();
    let script = w.root.join("audit.sh");
    std::fs::write(&script, format!("set -euo pipefail\n{body}")).unwrap();
    let identity = identity_file(&w.alice);
    let mut cmd = clean_command("bash", &w.root, &w.proj);
    cmd.arg(&script)
        .env("REG", &w.reg)
        .env("PROJECT", "demo")
        .env("IDENTITY", &identity);
    let o = output(&mut cmd, None);
    assert_ok(&o, "the documented audit commands");

    // And they catch a forged file (step 5 fails).
    std::fs::write(
        w.secrets_file("prod"),
        w.age_encrypt("DB: x\n", &[&w.alice.recipient]),
    )
    .unwrap();
    let mut cmd = clean_command("bash", &w.root, &w.proj);
    cmd.arg(&script)
        .env("REG", &w.reg)
        .env("PROJECT", "demo")
        .env("IDENTITY", &identity);
    let o = output(&mut cmd, None);
    assert_failed(&o, "the documented commands on a forged file");
}
