//! Block execution end to end: signed transactions executed by revm, committed through storage,
//! receipts and balances checked, then read-only calls and gas estimates against that state.

use alloy_consensus::{SignableTransaction, Transaction, TxEip1559, TxLegacy};
use alloy_primitives::{Address, Bytes, Signature, TxKind, B256, U256};
use consort_chainspec::Genesis;
use consort_evm::{
    call, estimate_gas, execute_block, init_genesis, recover_missing_senders, recover_senders,
    CallLimits, CallRequest, ExecutionError, ExecutionMode,
};
use consort_primitives::{public_key_address, Header, TxEnvelope};
use consort_storage::{Store, StoreOptions};
use secp256k1::{Message, SecretKey, SECP256K1};

const CHAIN_ID: u64 = 1337;
const REWARD: u64 = 1_000_000_000;
/// Constructor stores 42 in slot 0 and emits an empty LOG0; runtime returns slot 0.
const INIT_CODE: &str = "602a60005560006000a0600b8060156000396000f360005460005260206000f3";

fn key(i: u8) -> SecretKey {
    SecretKey::from_byte_array(&[i; 32]).unwrap()
}

fn addr(k: &SecretKey) -> Address {
    public_key_address(&k.public_key(SECP256K1))
}

fn sign<T: SignableTransaction<Signature>>(tx: T, k: &SecretKey) -> alloy_consensus::Signed<T> {
    let digest = tx.signature_hash();
    let sig = SECP256K1.sign_ecdsa_recoverable(&Message::from_digest(digest.0), k);
    let (rec, compact) = sig.serialize_compact();
    let signature = Signature::new(
        U256::from_be_slice(&compact[..32]),
        U256::from_be_slice(&compact[32..]),
        i32::from(rec) == 1,
    );
    tx.into_signed(signature)
}

fn transfer(k: &SecretKey, nonce: u64, to: Address, value: u64) -> TxEnvelope {
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value: U256::from(value),
        ..Default::default()
    };
    TxEnvelope::Eip1559(sign(tx, k))
}

fn setup() -> (tempfile::TempDir, Store, Genesis, Header, B256) {
    let json = serde_json::json!({
        "config": { "chainId": CHAIN_ID, "berlinBlock": 0, "londonBlock": 0, "shanghaiTime": 0, "cancunTime": 0,
                    "qbft": { "blockperiodseconds": 1, "blockreward": REWARD.to_string(), "miningbeneficiary": "0x00000000000000000000000000000000000000bb" } },
        "gasLimit": "0x1c9c380", "difficulty": "0x1", "extraData": "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0",
        "alloc": { format!("{:x}", addr(&key(1))): { "balance": "1000000000000000000000" },
                   format!("{:x}", addr(&key(2))): { "balance": "1000000000000000000000" } }
    });
    let genesis = Genesis::from_json(&json.to_string()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let (header, hash) = init_genesis(&store, &genesis).unwrap();
    // Initializing again with the same genesis is a no-op.
    assert_eq!(init_genesis(&store, &genesis).unwrap().1, hash);
    (dir, store, genesis, header, hash)
}

fn child_header(parent: &Header, parent_hash: B256) -> Header {
    Header {
        parent_hash,
        number: parent.number + 1,
        timestamp: parent.timestamp + 1,
        gas_limit: parent.gas_limit,
        beneficiary: Address::with_last_byte(0xcc),
        base_fee_per_gas: parent.base_fee_per_gas,
        withdrawals_root: parent.withdrawals_root,
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        mix_hash: consort_primitives::QBFT_MIX_HASH,
        ..Default::default()
    }
}

#[test]
fn a_block_of_transfers_and_a_deployment_executes_and_commits() {
    let (_dir, store, genesis, parent, parent_hash) = setup();
    let (a, b) = (key(1), key(2));
    let recipient = Address::with_last_byte(0x77);
    let deploy = TxEnvelope::Legacy(sign(
        TxLegacy {
            chain_id: Some(CHAIN_ID),
            nonce: 0,
            gas_price: 10_000_000_000,
            gas_limit: 200_000,
            to: TxKind::Create,
            input: Bytes::from(alloy_primitives::hex::decode(INIT_CODE).unwrap()),
            ..Default::default()
        },
        &b,
    ));
    let txs = vec![
        transfer(&a, 0, recipient, 5),
        transfer(&a, 1, recipient, 7),
        deploy,
    ];
    let senders = recover_senders(&txs).unwrap();
    assert_eq!(senders, vec![addr(&a), addr(&a), addr(&b)]);

    let mut header = child_header(&parent, parent_hash);
    let executed = execute_block(
        &store,
        &genesis,
        &header,
        txs.clone(),
        senders,
        ExecutionMode::Import,
    )
    .unwrap();
    assert_eq!(executed.receipts.len(), 3);
    assert!(executed.receipts.iter().all(|r| r.status()));
    assert_eq!(executed.receipts[1].cumulative_gas_used(), 42_000);
    assert!(executed.gas_used > 42_000);
    assert_eq!(
        executed.receipts[2].logs().len(),
        1,
        "the constructor's LOG0"
    );
    let contract = addr(&b).create(0);

    let prepared = store.prepare_state(&executed.changes).unwrap();
    header.state_root = prepared.state_root;
    header.gas_used = executed.gas_used;
    header.receipts_root = executed.receipts_root;
    header.transactions_root = executed.transactions_root;
    header.logs_bloom = executed.logs_bloom;
    let hash = header.hash_slow();
    store
        .commit_block(
            &header,
            hash,
            &executed.transactions,
            &executed.receipts,
            prepared,
        )
        .unwrap();

    let state = store.state_at(1).unwrap();
    assert_eq!(
        state.basic_account(&recipient).unwrap().unwrap().balance,
        U256::from(12)
    );
    assert_eq!(state.basic_account(&addr(&a)).unwrap().unwrap().nonce, 2);
    assert_eq!(
        state.storage(&contract, &U256::ZERO).unwrap(),
        U256::from(42)
    );
    // Tips to the coinbase; the QBFT block reward to the configured beneficiary.
    let base_fee = u128::from(header.base_fee_per_gas.unwrap());
    let tip_total: u128 = executed
        .transactions
        .iter()
        .zip(&executed.receipts)
        .scan(0u64, |prev, (tx, r)| {
            let used = r.cumulative_gas_used() - *prev;
            *prev = r.cumulative_gas_used();
            Some(u128::from(used) * (tx.effective_gas_price(Some(base_fee as u64)) - base_fee))
        })
        .sum();
    assert_eq!(
        state
            .basic_account(&header.beneficiary)
            .unwrap()
            .unwrap()
            .balance,
        U256::from(tip_total)
    );
    assert_eq!(
        state
            .basic_account(&Address::with_last_byte(0xbb))
            .unwrap()
            .unwrap()
            .balance,
        U256::from(REWARD)
    );
    // Stored receipts and the transaction index agree with what was executed.
    assert_eq!(store.receipts(&hash).unwrap().unwrap(), executed.receipts);
    assert_eq!(
        store
            .transaction_location(txs[2].tx_hash())
            .unwrap()
            .unwrap()
            .index,
        2
    );

    // eth_call reads the contract; estimates cover a plain transfer and the contract call.
    let req = CallRequest {
        to: Some(contract),
        ..Default::default()
    };
    let out = call(&store, &genesis, &header, &req, &CallLimits::default()).unwrap();
    assert!(out.success);
    assert_eq!(U256::from_be_slice(&out.output), U256::from(42));
    let transfer_req = CallRequest {
        from: Some(addr(&a)),
        to: Some(recipient),
        value: Some(U256::from(1)),
        ..Default::default()
    };
    assert_eq!(
        estimate_gas(
            &store,
            &genesis,
            &header,
            &transfer_req,
            &CallLimits::default()
        )
        .unwrap(),
        Ok(21_000)
    );
    // A call against genesis state sees no contract.
    let out = call(&store, &genesis, &parent, &req, &CallLimits::default()).unwrap();
    assert!(out.success && out.output.is_empty());
}

#[test]
fn invalid_transactions_fail_an_import_and_are_skipped_when_building() {
    let (_dir, store, genesis, parent, parent_hash) = setup();
    let a = key(1);
    let to = Address::with_last_byte(0x77);
    let header = child_header(&parent, parent_hash);
    let cases: Vec<(&str, TxEnvelope)> = vec![
        ("nonce too high", transfer(&a, 5, to, 1)),
        ("insufficient funds", transfer(&key(3), 0, to, 1)),
        ("wrong chain id", {
            let tx = TxEip1559 {
                chain_id: 1,
                gas_limit: 21_000,
                max_fee_per_gas: 20_000_000_000,
                to: TxKind::Call(to),
                ..Default::default()
            };
            TxEnvelope::Eip1559(sign(tx, &a))
        }),
        ("gas above the block limit", {
            let tx = TxEip1559 {
                chain_id: CHAIN_ID,
                gas_limit: parent.gas_limit + 1,
                max_fee_per_gas: 20_000_000_000,
                to: TxKind::Call(to),
                ..Default::default()
            };
            TxEnvelope::Eip1559(sign(tx, &a))
        }),
    ];
    for (what, bad) in cases {
        let txs = vec![transfer(&a, 0, to, 1), bad.clone()];
        let senders = recover_senders(&txs).unwrap();
        let err = execute_block(
            &store,
            &genesis,
            &header,
            txs.clone(),
            senders.clone(),
            ExecutionMode::Import,
        )
        .unwrap_err();
        assert!(
            matches!(err, ExecutionError::InvalidTransaction { index: 1, .. }),
            "{what}: {err}"
        );
        let built = execute_block(
            &store,
            &genesis,
            &header,
            txs,
            senders,
            ExecutionMode::Build,
        )
        .unwrap();
        assert_eq!(built.transactions.len(), 1, "{what}");
        assert_eq!(built.skipped.len(), 1, "{what}");
        assert_eq!(built.skipped[0].hash, *bad.tx_hash(), "{what}");
    }
    // A signature with a high s value has no sender (EIP-2).
    let good = transfer(&a, 0, to, 1);
    let TxEnvelope::Eip1559(signed) = &good else {
        unreachable!()
    };
    let sig = signed.signature();
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let flipped = Signature::new(sig.r(), n - sig.s(), !sig.v());
    let high_s = TxEnvelope::Eip1559(signed.tx().clone().into_signed(flipped));
    assert!(matches!(
        recover_senders(&[good.clone(), high_s.clone()]),
        Err(ExecutionError::InvalidSignature { index: 1, .. })
    ));
    // A sender known by position is taken as given; the others are still recovered.
    let known = Address::repeat_byte(7);
    assert_eq!(
        recover_missing_senders(&[good.clone(), high_s.clone()], &[None, Some(known)]).unwrap(),
        vec![addr(&a), known]
    );
    assert!(matches!(
        recover_missing_senders(&[high_s, good], &[None]),
        Err(ExecutionError::InvalidSignature { index: 0, .. })
    ));
}
