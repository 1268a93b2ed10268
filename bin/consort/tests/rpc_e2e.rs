//! A dev node driven by alloy's provider over HTTP and WebSocket: deploy a contract, call it,
//! read receipts, events and logs, follow `newHeads` and `logs` subscriptions, and get every
//! transaction and call error with the code and message wallets expect.

mod support;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, TransactionBuilder, TxSignerSync};
use alloy::primitives::{Address, Bytes, TxKind, U256};
use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::{SolCall, SolConstructor, SolEvent};
use serde_json::{json, Value};
use std::time::Duration;
use support::{poll, rpc, start, DEV_KEYS};

sol! {
    contract Token {
        constructor(string name_, string symbol_, uint256 supply);
        function transfer(address to, uint256 value) external returns (bool);
        function balanceOf(address owner) external view returns (uint256);
        function symbol() external view returns (string);
        event Transfer(address indexed from, address indexed to, uint256 value);
    }
}

fn signer(i: usize) -> PrivateKeySigner {
    DEV_KEYS[i].parse().unwrap()
}

const CHAIN_ID: u64 = 1337;

fn sign(signer: &PrivateKeySigner, tx: TxEip1559) -> Bytes {
    support::sign_eip1559(signer, tx)
}

fn transfer_tx(nonce: u64, max_fee: u128, tip: u128, gas: u64, value: U256) -> TxEip1559 {
    TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(Address::repeat_byte(0x42)),
        value,
        access_list: Default::default(),
        input: Bytes::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_lifecycle_receipts_logs_and_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    let owner = signer(0);
    let other = signer(1).address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(owner.clone()))
        .connect_http(node.http.parse().unwrap());
    assert_eq!(provider.get_chain_id().await.unwrap(), CHAIN_ID);

    let ws = ProviderBuilder::new()
        .connect_ws(WsConnect::new(node.ws.clone()))
        .await
        .unwrap();
    let mut heads = ws.subscribe_blocks().await.unwrap();

    // Deploy.
    let mut code = support::token_bytecode();
    code.extend(
        Token::constructorCall::new(("Consort".into(), "CNS".into(), U256::from(1_000u64)))
            .abi_encode(),
    );
    let deploy = TransactionRequest::default().with_deploy_code(code);
    let receipt = provider
        .send_transaction(deploy)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    let token = receipt.contract_address.expect("contract address");
    assert_eq!(receipt.logs().len(), 1, "the mint's Transfer");

    let logs_filter = Filter::new()
        .address(token)
        .event_signature(Token::Transfer::SIGNATURE_HASH);
    let mut logs_sub = ws.subscribe_logs(&logs_filter).await.unwrap();

    // Call.
    let call = TransactionRequest::default()
        .with_to(token)
        .with_input(Token::symbolCall {}.abi_encode());
    let out = provider.call(call).await.unwrap();
    assert_eq!(Token::symbolCall::abi_decode_returns(&out).unwrap(), "CNS");

    // Transfer and its event.
    let transfer = TransactionRequest::default().with_to(token).with_input(
        Token::transferCall {
            to: other,
            value: U256::from(7u64),
        }
        .abi_encode(),
    );
    let receipt = provider
        .send_transaction(transfer)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    let log = receipt.logs().first().expect("Transfer log");
    let event = Token::Transfer::decode_log_data(log.data()).unwrap();
    assert_eq!(
        (event.from, event.to, event.value),
        (owner.address(), other, U256::from(7u64))
    );
    assert_eq!(log.block_hash, receipt.block_hash);
    let fetched = provider
        .get_transaction_receipt(receipt.transaction_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched.block_number, receipt.block_number);

    // eth_getLogs over the whole chain: the mint and the transfer.
    let all = provider
        .get_logs(&logs_filter.clone().from_block(0))
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    // Subscriptions saw the transfer and new heads.
    let sub_log = tokio::time::timeout(Duration::from_secs(30), logs_sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub_log.transaction_hash, Some(receipt.transaction_hash));
    let head = tokio::time::timeout(Duration::from_secs(30), heads.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(head.number >= 1);
    // Block hashes are the BFT on-chain hash, and blocks agree with receipts.
    let block = provider
        .get_block_by_number(receipt.block_number.unwrap().into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(block.header.hash), receipt.block_hash);
    assert_eq!(block.header.mix_hash, consort_primitives::QBFT_MIX_HASH);
    assert_eq!(
        block.header.hash,
        consort_primitives::bft_onchain_hash(&block.header.inner).unwrap()
    );
    let balance = provider
        .call(
            TransactionRequest::default()
                .with_to(token)
                .with_input(Token::balanceOfCall { owner: other }.abi_encode()),
        )
        .await
        .unwrap();
    assert_eq!(U256::from_be_slice(&balance), U256::from(7u64));
}

fn error_of(v: &Value) -> (i64, String) {
    let e = &v["error"];
    assert!(e.is_object(), "expected an error, got {v}");
    (
        e["code"].as_i64().unwrap(),
        e["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn transaction_and_call_errors_have_geth_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &["--min-gas-price=1000"]);
    let url = node.http.clone();
    let alice = signer(2);
    let nobody: PrivateKeySigner =
        "0101010101010101010101010101010101010101010101010101010101010101"
            .parse()
            .unwrap();
    let gwei = 1_000_000_000u128;

    // A first transaction, then wait until it is mined so its nonce is used.
    let first = sign(
        &alice,
        transfer_tx(0, 10 * gwei, gwei, 21_000, U256::from(1)),
    );
    let hash = rpc(&url, "eth_sendRawTransaction", json!([first]))["result"]
        .as_str()
        .unwrap()
        .to_string();
    poll(Duration::from_secs(30), || {
        rpc(&url, "eth_getTransactionReceipt", json!([hash]))["result"]
            .as_object()
            .cloned()
    })
    .expect("first transaction mined");

    let queued = sign(
        &alice,
        transfer_tx(5, 10 * gwei, gwei, 21_000, U256::from(1)),
    );
    assert!(rpc(&url, "eth_sendRawTransaction", json!([queued]))["result"].is_string());
    let mut legacy = TxLegacy {
        chain_id: Some(1),
        nonce: 1,
        gas_price: 10 * gwei,
        gas_limit: 21_000,
        to: TxKind::Call(Address::ZERO),
        value: U256::ZERO,
        input: Bytes::new(),
    };
    let sig = alice
        .sign_transaction_sync(&mut legacy)
        .unwrap_or_else(|_| {
            // alloy refuses to sign for a chain id other than the signer's; sign the hash directly.
            alloy::signers::SignerSync::sign_hash_sync(&alice, &legacy.signature_hash()).unwrap()
        });
    let wrong_chain: Bytes = TxEnvelope::from(legacy.into_signed(sig))
        .encoded_2718()
        .into();

    let cases: Vec<(&str, Bytes, &str)> = vec![
        (
            "reused nonce",
            sign(
                &alice,
                transfer_tx(0, 10 * gwei, gwei, 21_000, U256::from(2)),
            ),
            "nonce too low",
        ),
        ("same transaction again", queued.clone(), "already known"),
        (
            "replacement without a bump",
            sign(
                &alice,
                transfer_tx(5, 10 * gwei, gwei, 21_000, U256::from(9)),
            ),
            "replacement transaction underpriced",
        ),
        (
            "unfunded sender",
            sign(
                &nobody,
                transfer_tx(0, 10 * gwei, gwei, 21_000, U256::from(1)),
            ),
            "insufficient funds for gas * price + value",
        ),
        (
            "gas below intrinsic",
            sign(
                &alice,
                transfer_tx(1, 10 * gwei, gwei, 20_000, U256::from(1)),
            ),
            "intrinsic gas too low",
        ),
        (
            "gas above block limit",
            sign(
                &alice,
                transfer_tx(1, 10 * gwei, gwei, 40_000_000, U256::from(1)),
            ),
            "exceeds block gas limit",
        ),
        ("other chain", wrong_chain, "invalid chain id"),
        (
            "below min gas price",
            sign(&alice, transfer_tx(1, 999, 1, 21_000, U256::from(1))),
            "transaction underpriced",
        ),
        (
            "not a transaction",
            Bytes::from_static(&[0x02, 0xc0]),
            "invalid transaction",
        ),
    ];
    for (what, raw, message) in cases {
        let (code, text) = error_of(&rpc(&url, "eth_sendRawTransaction", json!([raw])));
        assert_eq!(code, -32000, "{what}: {text}");
        assert!(
            text.starts_with(message),
            "{what}: got '{text}', want '{message}'"
        );
    }
    // A signature that recovers nobody.
    let mut bad = sign(
        &alice,
        transfer_tx(1, 10 * gwei, gwei, 21_000, U256::from(1)),
    )
    .to_vec();
    let n = bad.len();
    bad[n - 33..n - 1].fill(0);
    let (code, text) = error_of(&rpc(
        &url,
        "eth_sendRawTransaction",
        json!([Bytes::from(bad)]),
    ));
    assert_eq!(code, -32000);
    assert!(
        text.starts_with("invalid sender") || text.starts_with("invalid transaction"),
        "{text}"
    );

    // Bad parameters.
    for (method, params) in [
        ("eth_getBalance", json!(["0x1234"])),
        ("eth_getBlockByNumber", json!(["latestest", false])),
        ("eth_sendRawTransaction", json!([])),
        ("eth_call", json!([{"to": 5}])),
    ] {
        let (code, text) = error_of(&rpc(&url, method, params));
        assert_eq!(code, -32602, "{method}: {text}");
    }
    // A method of a group that is not enabled, and one that does not exist.
    assert_eq!(
        error_of(&rpc(&url, "perm_getNodesAllowlist", json!([]))).0,
        -32601
    );
    assert_eq!(
        error_of(&rpc(&url, "eth_noSuchMethod", json!([]))).0,
        -32601
    );

    // execution reverted: deploy code that reverts with Error("nope") whatever it is called with.
    // PUSH the ABI-encoded Error("nope") into memory and REVERT with it.
    let reason = {
        let mut d = vec![0x08, 0xc3, 0x79, 0xa0];
        d.extend([0u8; 31]);
        d.push(0x20);
        d.extend([0u8; 31]);
        d.push(4);
        d.extend(b"nope");
        d.extend([0u8; 28]);
        d
    };
    let mut runtime = Vec::new();
    for (i, chunk) in reason.chunks(32).enumerate() {
        let mut word = chunk.to_vec();
        word.resize(32, 0);
        runtime.push(0x7f); // PUSH32
        runtime.extend(&word);
        runtime.extend([0x60, (i * 32) as u8, 0x52]); // PUSH1 offset MSTORE
    }
    runtime.extend([0x60, reason.len() as u8, 0x60, 0x00, 0xfd]); // PUSH1 len PUSH1 0 REVERT
    let call = json!([{"data": Bytes::from(runtime.clone())}, "latest"]);
    // As a contract creation, the init code itself reverts.
    let v = rpc(&url, "eth_call", call.clone());
    let (code, text) = error_of(&v);
    assert_eq!((code, text.as_str()), (3, "execution reverted: nope"));
    assert_eq!(
        v["error"]["data"].as_str().unwrap(),
        format!("0x{}", alloy::hex::encode(&reason))
    );
    let (code, _) = error_of(&rpc(&url, "eth_estimateGas", call));
    assert_eq!(code, 3);
    // The same code as a state override of an existing address.
    let target = "0x00000000000000000000000000000000000000aa";
    let v = rpc(
        &url,
        "eth_call",
        json!([{"to": target}, "latest", {target: {"code": Bytes::from(runtime)}}]),
    );
    assert_eq!(error_of(&v).1, "execution reverted: nope");

    // A halt other than out-of-gas is reported as itself, out of gas as geth's allowance error.
    let (code, text) = error_of(&rpc(&url, "eth_estimateGas", json!([{"data": "0xfe"}])));
    assert_eq!(code, -32000);
    assert!(!text.contains("allowance"), "{text}");
    let burn = json!([{"data": "0x5b600056", "gas": "0x186a0"}]); // JUMPDEST PUSH1 0 JUMP: loops
    let (code, text) = error_of(&rpc(&url, "eth_estimateGas", burn));
    assert_eq!(code, -32000);
    assert!(text.starts_with("gas required exceeds allowance"), "{text}");

    // Batches answer each request.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "net_version", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "web3_clientVersion", "params": []},
    ]);
    let v = support::post(&url, &batch.to_string());
    let answers = v.as_array().unwrap();
    assert_eq!(answers.len(), 3);
    let by_id = |id: i64| answers.iter().find(|a| a["id"] == id).unwrap()["result"].clone();
    assert_eq!(by_id(1), "0x539");
    assert_eq!(by_id(2), "1337");
    let version = by_id(3);
    let parts: Vec<&str> = version.as_str().unwrap().split('/').collect();
    assert_eq!(parts.len(), 4, "{version}");
    assert_eq!(parts[0], "consort");
    assert!(
        parts[1].starts_with('v') && parts[3].starts_with("rust-"),
        "{version}"
    );

    // txpool: the queued nonce-5 transaction.
    let status = rpc(&url, "txpool_status", json!([]))["result"].clone();
    assert_eq!(status["queued"], "0x1");
    let content = rpc(&url, "txpool_content", json!([]))["result"].clone();
    let queued_by_alice = &content["queued"][alice.address().to_checksum(None)]["5"];
    assert_eq!(queued_by_alice["nonce"], "0x5");
}
