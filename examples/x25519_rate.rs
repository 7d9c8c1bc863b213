//! Measures this machine's X25519 rates, for `scripts/bench-rotate.sh`:
//! key agreements (ECDH) and public-key derivations per second, on one
//! core and then on every core at once (what a parallel rotation can
//! actually get on a shared machine, where a second core is rarely a whole
//! second core). Prints four numbers:
//! `agreements derivations all_core_agreements all_core_derivations`.
// An example program prints its result.
#![allow(clippy::disallowed_macros)]

use std::time::Instant;

/// (agreements/s, derivations/s) on the calling thread.
fn rates(n: u32) -> (f64, f64) {
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
    (agreements, derivations)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let (a1, d1) = rates(n);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let all: Vec<(f64, f64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores).map(|_| s.spawn(|| rates(n))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    let (an, dn) = all.iter().fold((0.0, 0.0), |(a, d), (x, y)| (a + x, d + y));
    println!("{a1:.0} {d1:.0} {an:.0} {dn:.0}");
}
