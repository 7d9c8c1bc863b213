//! Decrypted plaintext and `import` input: the strict flat-mapping parser.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(secrets) = byreis::yaml::parse_secrets(text) {
            // What parses must round-trip through the writer.
            let again = byreis::yaml::parse_secrets(&byreis::yaml::emit_secrets(&secrets))
                .expect("emitted secrets parse");
            assert_eq!(again, secrets);
        }
        let _ = byreis::yaml::parse_import(text, 1 << 20);
    }
});
