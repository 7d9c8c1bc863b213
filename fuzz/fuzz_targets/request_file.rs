//! Access-request files from contributors (a pull request or a branch).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = byreis::request::parse(data);
});
