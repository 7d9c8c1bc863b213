//! Manifest, registry record, roster and project config: the strict YAML
//! check, then the typed parse every signed or config document goes through.
#![no_main]
use byreis::documents::{Config, Manifest, Record, Roster};
use byreis::signed::parse_yaml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = byreis::yaml::check_strict(text);
        let _ = parse_yaml::<Manifest>(text);
        let _ = parse_yaml::<Record>(text);
        let _ = parse_yaml::<Roster>(text);
        let _ = byreis::yaml::from_untrusted::<Config>(text);
    }
});
