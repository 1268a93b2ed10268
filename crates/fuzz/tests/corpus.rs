//! Every fuzz target over its committed corpus (`fuzz/corpus/<target>/`), then over seeded
//! mutations of each entry (bit flips, byte changes, insertions, deletions, truncations and
//! splices with another entry; 20,000 per target), so `make test` catches a decoder that panics on what libFuzzer
//! once found or on inputs near the corpus. A failure names the target and prints the input.

use consort_fuzz::TARGETS;
use std::path::{Path, PathBuf};

/// Mutations tried per target, spread over its corpus entries (`CONSORT_FUZZ_MUTATIONS` for
/// more).
const MUTATIONS: usize = 20_000;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    entries
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

/// xorshift64*: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0x81, 0xb7, 0xf7, 0xff];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(data.len().max(1));
        match rng.below(7) {
            0 if !data.is_empty() => data[at] ^= 1 << rng.below(8),
            1 if !data.is_empty() => data[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => data.insert(at.min(data.len()), rng.next() as u8),
            3 if !data.is_empty() => {
                data.remove(at);
            }
            4 => data.truncate(at),
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1);
                let at = at.min(data.len());
                data.splice(at..at, other[from..from + len].iter().copied());
            }
            _ if !data.is_empty() => data[at] = data[at].wrapping_add(rng.next() as u8),
            _ => data.push(rng.next() as u8),
        }
    }
    data
}

fn run(target: &str, f: fn(&[u8]), data: &[u8], what: &str) {
    if std::panic::catch_unwind(|| f(data)).is_err() {
        panic!(
            "fuzz target {target} panicked on {what}: {}",
            alloy_primitives::hex::encode(data)
        );
    }
}

#[test]
fn every_target_survives_its_corpus_and_mutations_of_it() {
    let mutations = std::env::var("CONSORT_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MUTATIONS);
    for &(target, f) in TARGETS {
        let entries = corpus(target);
        assert!(!entries.is_empty(), "fuzz/corpus/{target} is empty");
        for (path, data) in &entries {
            run(target, f, data, &path.display().to_string());
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
        let per_entry = (mutations / entries.len()).max(1);
        for (i, (path, data)) in entries.iter().enumerate() {
            let other = &entries[(i + 1) % entries.len()].1;
            for n in 0..per_entry {
                let input = mutate(&mut rng, data, other);
                run(
                    target,
                    f,
                    &input,
                    &format!("mutation {n} of {}", path.display()),
                );
            }
        }
    }
}
