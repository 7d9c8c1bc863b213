//! Measures this machine's X25519 rates on one core, for
//! `scripts/bench-rotate.sh`: key agreements (ECDH) and public-key
//! derivations per second. Prints two numbers: `agreements derivations`.

use std::time::Instant;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let secret = x25519_dalek::StaticSecret::random_from_rng(rand_core::OsRng);
    let mut point = x25519_dalek::PublicKey::from(&secret);
    let start = Instant::now();
    for _ in 0..n {
        let shared = secret.diffie_hellman(&point);
        point = x25519_dalek::PublicKey::from(*shared.as_bytes());
    }
    let agreements = f64::from(n) / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut bytes = [7u8; 32];
    for _ in 0..n {
        let s = x25519_dalek::StaticSecret::from(bytes);
        bytes = *x25519_dalek::PublicKey::from(&s).as_bytes();
    }
    let derivations = f64::from(n) / start.elapsed().as_secs_f64();
    println!("{agreements:.0} {derivations:.0}");
}
