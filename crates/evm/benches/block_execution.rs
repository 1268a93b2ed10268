//! Executing and committing a block of N ETH transfers or N ERC-20-style token transfers
//! (N = 1,000 and 10,000), and the state-root time of such a block. Prints transactions/s and
//! Mgas/s next to criterion's figures.

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{hex, Address, Bytes, Signature, TxKind, B256, U256};
use consort_chainspec::Genesis;
use consort_evm::{execute_block, init_genesis, recover_senders, ExecutionMode};
use consort_primitives::{public_key_address, Header, TxEnvelope, QBFT_MIX_HASH};
use consort_storage::{Store, StoreOptions};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use secp256k1::{Message, SecretKey, SECP256K1};
use std::time::{Duration, Instant};

const CHAIN_ID: u64 = 1337;
const TOKEN: Address = Address::with_last_byte(0xee);
/// transfer(to, amount): balances live at slot = holder address; emits Transfer(from, to, amount).
const TOKEN_CODE: &str = "3354602435818111604b57900333556004358054602435019055602435600052600435337fddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef60206000a3005b600080fd";

struct Fixture {
    genesis: Genesis,
    txs: Vec<TxEnvelope>,
}

fn key(i: u64) -> SecretKey {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&(i + 1).to_be_bytes());
    b[31] = 1;
    SecretKey::from_byte_array(&b).unwrap()
}

fn fixture(n: u64, token: bool) -> Fixture {
    let keys: Vec<SecretKey> = (0..n).map(key).collect();
    let senders: Vec<Address> = keys
        .iter()
        .map(|k| public_key_address(&k.public_key(SECP256K1)))
        .collect();
    let mut alloc = serde_json::Map::new();
    let mut token_storage = serde_json::Map::new();
    for s in &senders {
        alloc.insert(
            format!("{s:x}"),
            serde_json::json!({ "balance": "1000000000000000000000" }),
        );
        token_storage.insert(
            format!("0x{}", hex::encode(B256::left_padding_from(s.as_slice()))),
            "0xffffffff".into(),
        );
    }
    alloc.insert(format!("{TOKEN:x}"), serde_json::json!({ "balance": "0", "code": format!("0x{TOKEN_CODE}"), "storage": token_storage }));
    let json = serde_json::json!({
        "config": { "chainId": CHAIN_ID, "londonBlock": 0, "shanghaiTime": 0, "zeroBaseFee": true, "qbft": {} },
        "gasLimit": "0x3b9aca000", "extraData": "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0",
        "alloc": alloc
    });
    let genesis = Genesis::from_json(&json.to_string()).unwrap();
    let txs = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let recipient = Address::left_padding_from(&(1_000_000 + i as u64).to_be_bytes());
            let (to, input, gas) = if token {
                let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
                data.extend_from_slice(B256::left_padding_from(recipient.as_slice()).as_slice());
                data.extend_from_slice(&U256::from(1).to_be_bytes::<32>());
                (TOKEN, Bytes::from(data), 100_000)
            } else {
                (recipient, Bytes::new(), 21_000)
            };
            let tx = TxEip1559 {
                chain_id: CHAIN_ID,
                nonce: 0,
                gas_limit: gas,
                max_fee_per_gas: 1,
                max_priority_fee_per_gas: 1,
                to: TxKind::Call(to),
                value: U256::from(1),
                input,
                ..Default::default()
            };
            let sig =
                SECP256K1.sign_ecdsa_recoverable(&Message::from_digest(tx.signature_hash().0), k);
            let (rec, c) = sig.serialize_compact();
            TxEnvelope::Eip1559(tx.into_signed(Signature::new(
                U256::from_be_slice(&c[..32]),
                U256::from_be_slice(&c[32..]),
                i32::from(rec) == 1,
            )))
        })
        .collect();
    Fixture { genesis, txs }
}

fn fresh_store(f: &Fixture) -> (tempfile::TempDir, Store, Header, B256) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let (header, hash) = init_genesis(&store, &f.genesis).unwrap();
    (dir, store, header, hash)
}

fn child(parent: &Header, hash: B256) -> Header {
    Header {
        parent_hash: hash,
        number: 1,
        timestamp: parent.timestamp + 1,
        gas_limit: parent.gas_limit,
        base_fee_per_gas: Some(0),
        mix_hash: QBFT_MIX_HASH,
        withdrawals_root: parent.withdrawals_root,
        ..Default::default()
    }
}

/// Executes, hashes and commits the block; returns (gas used, time spent on the state root).
fn run_block(store: &Store, f: &Fixture, parent: &Header, hash: B256) -> (u64, Duration) {
    let mut header = child(parent, hash);
    let senders = recover_senders(&f.txs).unwrap();
    let executed = execute_block(
        store,
        &f.genesis,
        &header,
        f.txs.clone(),
        senders,
        ExecutionMode::Import,
    )
    .unwrap();
    assert!(
        executed.receipts.iter().all(|r| r.status()),
        "every transfer succeeds"
    );
    let t = Instant::now();
    let prepared = store.prepare_state(&executed.changes).unwrap();
    let root_time = t.elapsed();
    header.state_root = prepared.state_root;
    header.gas_used = executed.gas_used;
    store
        .commit_block(
            &header,
            header.hash_slow(),
            &executed.transactions,
            &executed.receipts,
            prepared,
        )
        .unwrap();
    (executed.gas_used, root_time)
}

fn bench(c: &mut Criterion) {
    for (label, token) in [("eth_transfers", false), ("erc20_transfers", true)] {
        for n in [1_000u64, 10_000] {
            let f = fixture(n, token);
            // A direct measurement first, for the figures criterion does not print.
            let (_d, store, parent, hash) = fresh_store(&f);
            let t = Instant::now();
            let (gas, root_time) = run_block(&store, &f, &parent, hash);
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{label}/{n}: {:.0} tx/s, {:.1} Mgas/s, block {:.1} ms, state root {:.1} ms",
                n as f64 / secs,
                gas as f64 / secs / 1e6,
                secs * 1e3,
                root_time.as_secs_f64() * 1e3
            );
            let mut group = c.benchmark_group(label);
            group.sample_size(10).throughput(Throughput::Elements(n));
            group.bench_function(format!("execute_and_commit/{n}"), |b| {
                b.iter_batched(
                    || fresh_store(&f),
                    |(_d, store, parent, hash)| run_block(&store, &f, &parent, hash),
                    BatchSize::PerIteration,
                )
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
