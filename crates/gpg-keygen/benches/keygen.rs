//! Key generation time per algorithm (`cargo bench -p gpg-keygen --bench keygen`, release profile).
//!
//! A plain harness rather than criterion: RSA-4096 takes seconds per sample and its time varies widely (prime
//! search), so a fixed sample count with min/median/max says more than criterion's confidence intervals would.
//! `GPG_KEYGEN_BENCH_SAMPLES` overrides the sample counts (default 200 for Ed25519, 10 for RSA-4096).

use std::time::{Duration, Instant};

use crd_types::KeyAlgorithm;
use gpg_keygen::keys;

fn measure(algorithm: KeyAlgorithm, samples: usize) {
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let started = Instant::now();
            let key = keys::generate("bench@example.org", algorithm).expect("generation");
            let elapsed = started.elapsed();
            std::hint::black_box(key);
            elapsed
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{:<8} n={:<4} min={:>10.3?} median={:>10.3?} mean={:>10.3?} max={:>10.3?}",
        algorithm.as_str(),
        samples,
        times[0],
        median,
        mean,
        times[times.len() - 1],
    );
}

fn main() {
    // `cargo test --benches` runs bench targets with `--test`-like args; keep that fast.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        measure(KeyAlgorithm::Ed25519, 1);
        return;
    }
    let override_samples: Option<usize> = std::env::var("GPG_KEYGEN_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok());
    measure(KeyAlgorithm::Ed25519, override_samples.unwrap_or(200));
    measure(KeyAlgorithm::Rsa4096, override_samples.unwrap_or(10));
}
