//! Ethereum TrieTests, plus randomized incremental updates checked against an independent root
//! computation (alloy-trie's `HashBuilder`) and proof verifier.

use alloy_primitives::{keccak256, Bytes, B256};
use consort_trie::{verify_proof, MemoryNodeStore, Trie};
#[path = "../../../tests/support/conformance.rs"]
mod conformance;

fn load(name: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let path = conformance::find("ethereum-tests/TrieTests")?.join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Some(serde_json::from_str(&text).unwrap())
}

fn decode_str(s: &str) -> Vec<u8> {
    match s.strip_prefix("0x") {
        Some(h) => hex::decode(h).unwrap(),
        None => s.as_bytes().to_vec(),
    }
}

/// Applies the operations, committing after every one so each step goes through the store, and
/// checks that the final root matches and that every remaining key proves against it.
fn run(ops: &[(Vec<u8>, Option<Vec<u8>>)], secure: bool, expected: B256, name: &str) {
    let mut store = MemoryNodeStore::default();
    let mut root = consort_trie::empty_root();
    let mut model = std::collections::BTreeMap::new();
    for (key, value) in ops {
        let key = if secure {
            keccak256(key).to_vec()
        } else {
            key.clone()
        };
        let mut trie = Trie::new(&store, root);
        match value {
            Some(v) if !v.is_empty() => {
                trie.insert(&key, v.clone()).unwrap();
                model.insert(key, v.clone());
            }
            _ => {
                trie.remove(&key).unwrap();
                model.remove(&key);
            }
        }
        let update = trie.commit();
        root = update.root;
        store.apply(&update);
    }
    assert_eq!(root, expected, "{name}: root");
    let mut trie = Trie::new(&store, root);
    for (key, value) in &model {
        assert_eq!(
            trie.get(key).unwrap().map(|b| b.to_vec()),
            Some(value.clone()),
            "{name}: get"
        );
        let proof = trie.proof(key).unwrap();
        assert_eq!(
            verify_proof(root, key, &proof).unwrap().map(|b| b.to_vec()),
            Some(value.clone()),
            "{name}: proof"
        );
    }
}

/// The cases of `name` run, `None` when the conformance data is absent.
fn run_file(name: &str, secure: bool) -> Option<usize> {
    let tests = load(name)?;
    for (case, body) in &tests {
        let ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = match &body["in"] {
            serde_json::Value::Array(items) => items
                .iter()
                .map(|kv| {
                    (
                        decode_str(kv[0].as_str().unwrap()),
                        kv[1].as_str().map(decode_str),
                    )
                })
                .collect(),
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, v)| (decode_str(k), v.as_str().map(decode_str)))
                .collect(),
            other => panic!("{case}: unexpected input {other}"),
        };
        let expected: B256 = body["root"].as_str().unwrap().parse().unwrap();
        run(&ops, secure, expected, case);
        // Order does not matter for the *anyorder tests: reversed input gives the same root.
        if name.contains("anyorder") {
            let reversed: Vec<_> = ops.iter().rev().cloned().collect();
            run(&reversed, secure, expected, case);
        }
    }
    Some(tests.len())
}

#[test]
fn trietest() {
    assert_ne!(run_file("trietest.json", false), Some(0));
}

#[test]
fn trietest_secure() {
    assert_ne!(run_file("trietest_secureTrie.json", true), Some(0));
}

#[test]
fn trieanyorder() {
    assert_ne!(run_file("trieanyorder.json", false), Some(0));
}

#[test]
fn trieanyorder_secure() {
    assert_ne!(run_file("trieanyorder_secureTrie.json", true), Some(0));
}

#[test]
fn hex_encoded_securetrie() {
    assert_ne!(run_file("hex_encoded_securetrie_test.json", true), Some(0));
}

/// A small deterministic generator, so a failing seed reproduces.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn reference_root(model: &std::collections::BTreeMap<B256, Vec<u8>>) -> B256 {
    let mut hb = alloy_trie::HashBuilder::default();
    for (k, v) in model {
        hb.add_leaf(alloy_trie::Nibbles::unpack(k), v);
    }
    hb.root()
}

#[test]
fn random_incremental_updates_match_an_independent_root() {
    for seed in 1..=40u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut store = MemoryNodeStore::default();
        let mut root = consort_trie::empty_root();
        let mut model = std::collections::BTreeMap::new();
        // Few distinct keys so that updates and deletions hit existing paths.
        let universe = 1 + rng.next() % 300;
        for _block in 0..12 {
            let mut trie = Trie::new(&store, root);
            for _ in 0..(rng.next() % 60) {
                let key = keccak256((rng.next() % universe).to_be_bytes());
                if rng.next().is_multiple_of(3) {
                    trie.remove(key.as_slice()).unwrap();
                    model.remove(&key);
                } else {
                    let len = 1 + (rng.next() % 70) as usize;
                    let value: Vec<u8> = (0..len).map(|_| rng.next() as u8 | 1).collect();
                    trie.insert(key.as_slice(), value.clone()).unwrap();
                    model.insert(key, value);
                }
            }
            let update = trie.commit();
            store.apply(&update);
            root = update.root;
            assert_eq!(root, reference_root(&model), "seed {seed}");
        }
        // Every key proves, with both this crate's and alloy-trie's verifier; an absent key proves absent.
        let mut trie = Trie::new(&store, root);
        for (key, value) in model.iter().take(20) {
            let proof: Vec<Bytes> = trie.proof(key.as_slice()).unwrap();
            assert_eq!(
                verify_proof(root, key.as_slice(), &proof)
                    .unwrap()
                    .map(|b| b.to_vec()),
                Some(value.clone())
            );
            alloy_trie::proof::verify_proof(
                root,
                alloy_trie::Nibbles::unpack(key),
                Some(value.clone()),
                &proof,
            )
            .unwrap_or_else(|e| panic!("seed {seed}: alloy-trie rejects proof: {e:?}"));
        }
        let absent = keccak256(b"absent");
        if !model.contains_key(&absent) {
            let proof = trie.proof(absent.as_slice()).unwrap();
            assert_eq!(verify_proof(root, absent.as_slice(), &proof).unwrap(), None);
            alloy_trie::proof::verify_proof(
                root,
                alloy_trie::Nibbles::unpack(absent),
                None,
                &proof,
            )
            .unwrap();
        }
        // Emptying the trie removes every stored node but none that is still referenced.
        let mut trie = Trie::new(&store, root);
        for key in model.keys() {
            trie.remove(key.as_slice()).unwrap();
        }
        let update = trie.commit();
        store.apply(&update);
        assert_eq!(update.root, consort_trie::empty_root(), "seed {seed}");
    }
}
