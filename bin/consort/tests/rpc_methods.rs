//! The JSON-RPC surface method by method against a dev node: state reads at any block
//! parameter, blocks, transactions, receipts, fees, filters, proofs, raw data, QBFT and admin
//! reads, subscriptions, API groups per transport, CORS and the request bounds.

mod support;

use alloy::consensus::{TxEip1559, TxEnvelope};
use alloy::primitives::{keccak256, Address, Bytes, TxKind, U256};
use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::{SolCall, SolConstructor};
use serde_json::{json, Value};
use std::time::Duration;
use support::{http_request_with, poll, post, rpc, start, DEV_KEYS};

sol! {
    contract Token {
        constructor(string name_, string symbol_, uint256 supply);
        function transfer(address to, uint256 value) external returns (bool);
    }
}

const VALIDATOR: &str = "0x1b582902464d7dcf5de2126cd3e0608e4ee12be8";

struct Chain {
    url: String,
    signer: PrivateKeySigner,
    nonce: u64,
}

impl Chain {
    fn send(&mut self, to: TxKind, input: Vec<u8>) -> String {
        let tx = TxEip1559 {
            chain_id: 1337,
            nonce: self.nonce,
            gas_limit: 2_000_000,
            max_fee_per_gas: 10_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to,
            value: U256::ZERO,
            access_list: Default::default(),
            input: input.into(),
        };
        self.nonce += 1;
        let raw = support::sign_eip1559(&self.signer, tx);
        let v = rpc(&self.url, "eth_sendRawTransaction", json!([raw]));
        v["result"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_string()
    }

    fn receipt(&self, hash: &str) -> Value {
        poll(Duration::from_secs(30), || {
            let r = rpc(&self.url, "eth_getTransactionReceipt", json!([hash]))["result"].clone();
            r.is_object().then_some(r)
        })
        .unwrap_or_else(|| panic!("{hash} not mined"))
    }

    fn call(&self, method: &str, params: Value) -> Value {
        let v = rpc(&self.url, method, params.clone());
        assert!(v.get("error").is_none(), "{method} {params}: {v}");
        v["result"].clone()
    }
}

fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_method_answers_in_geth_shape() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &["--rpc-max-logs-range=1000"]);
    let signer: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    let me = signer.address();
    let mut chain = Chain {
        url: node.http.clone(),
        signer,
        nonce: 0,
    };

    // Filters installed before anything happens see what follows.
    let block_filter = chain.call("eth_newBlockFilter", json!([]));
    let pending_filter = chain.call("eth_newPendingTransactionFilter", json!([]));

    let ws = ProviderBuilder::new()
        .connect_ws(WsConnect::new(node.ws.clone()))
        .await
        .unwrap();
    let mut pending_sub = ws.subscribe_pending_transactions().await.unwrap();
    let mut full_sub = ws.subscribe_full_pending_transactions().await.unwrap();

    let mut code = support::token_bytecode();
    code.extend(
        Token::constructorCall::new(("T".into(), "T".into(), U256::from(1_000u64))).abi_encode(),
    );
    let deploy = chain.send(TxKind::Create, code);
    let announced = tokio::time::timeout(Duration::from_secs(10), pending_sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(format!("{announced:#x}"), deploy);
    let whole = tokio::time::timeout(Duration::from_secs(10), full_sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(format!("{:#x}", whole.inner.tx_hash()), deploy);
    assert_eq!(whole.inner.signer(), me);
    let deployed = chain.receipt(&deploy);
    let token = deployed["contractAddress"].as_str().unwrap().to_string();
    let token_addr: Address = token.parse().unwrap();
    let log_filter = chain.call("eth_newFilter", json!([{"address": token}]));
    let later_filter = chain.call(
        "eth_newFilter",
        json!([{"address": token, "fromBlock": "0xffffff"}]),
    );
    let transfer = chain.send(
        TxKind::Call(token_addr),
        Token::transferCall {
            to: Address::repeat_byte(9),
            value: U256::from(3u64),
        }
        .abi_encode(),
    );
    let receipt = chain.receipt(&transfer);
    let block_hash = receipt["blockHash"].as_str().unwrap().to_string();
    let block_number = receipt["blockNumber"].clone();
    assert_eq!(
        chain.call("eth_getFilterChanges", json!([later_filter])),
        json!([]),
        "a filter reports nothing before its fromBlock"
    );

    // Identity and status.
    assert_eq!(chain.call("eth_syncing", json!([])), false);
    assert_eq!(chain.call("eth_accounts", json!([])), json!([]));
    assert_eq!(chain.call("eth_coinbase", json!([])), VALIDATOR);
    assert_eq!(chain.call("eth_mining", json!([])), true);
    assert!(chain.call("eth_protocolVersion", json!([])).is_string());
    assert_eq!(chain.call("net_listening", json!([])), true);
    assert_eq!(chain.call("net_peerCount", json!([])), "0x0");
    assert_eq!(
        chain.call("web3_sha3", json!(["0x68656c6c6f"])),
        "0x1c8aff950685c2ed4bc3174f3472287b56d9517b9c948127319a09a7a36deac8"
    );
    let modules = chain.call("rpc_modules", json!([]));
    assert!(modules["eth"].is_string() && modules["qbft"].is_string());

    // State at every kind of block parameter.
    let genesis_balance = chain.call("eth_getBalance", json!([me, "earliest"]));
    assert_eq!(genesis_balance, "0x130ee8e7179044400000");
    let latest = chain.call("eth_getBalance", json!([me, "latest"]));
    assert_ne!(latest, genesis_balance, "gas was paid");
    for tag in ["safe", "finalized", "pending"] {
        assert_eq!(
            chain.call("eth_getBalance", json!([me, tag])),
            latest,
            "{tag}"
        );
    }
    assert_eq!(
        chain.call("eth_getBalance", json!([me, {"blockNumber": "0x0"}])),
        genesis_balance
    );
    assert_eq!(
        chain.call(
            "eth_getBalance",
            json!([me, {"blockHash": block_hash, "requireCanonical": true}])
        ),
        chain.call("eth_getBalance", json!([me, block_number.clone()]))
    );
    assert_eq!(
        rpc(&chain.url, "eth_getBalance", json!([me, "0xffffff"]))["error"]["code"],
        -32000
    );
    assert_eq!(
        chain.call("eth_getTransactionCount", json!([me, "latest"])),
        "0x2"
    );
    assert_eq!(
        chain.call("eth_getTransactionCount", json!([me, "earliest"])),
        "0x0"
    );
    let code = chain.call("eth_getCode", json!([token, "latest"]));
    assert!(code.as_str().unwrap().len() > 100);
    assert_eq!(chain.call("eth_getCode", json!([token, "earliest"])), "0x");
    // Token storage slot 2 is totalSupply.
    assert_eq!(
        chain.call("eth_getStorageAt", json!([token, "0x2", "latest"])),
        format!("{:#066x}", 1000)
    );

    // Blocks and transactions.
    let by_hash = chain.call("eth_getBlockByHash", json!([block_hash, true]));
    let by_number = chain.call("eth_getBlockByNumber", json!([block_number, true]));
    assert_eq!(by_hash, by_number);
    assert_eq!(by_hash["hash"], block_hash);
    assert_eq!(by_hash["miner"], VALIDATOR);
    assert_eq!(by_hash["difficulty"], "0x1");
    assert_eq!(by_hash["transactions"][0]["hash"], transfer);
    assert_eq!(by_hash["withdrawals"], json!([]));
    let hashes_only = chain.call("eth_getBlockByNumber", json!([block_number, false]));
    assert_eq!(hashes_only["transactions"][0], transfer);
    assert_eq!(
        chain.call("eth_getBlockByNumber", json!(["0xffffff", false])),
        Value::Null
    );
    assert_eq!(
        chain.call("eth_getBlockTransactionCountByHash", json!([block_hash])),
        "0x1"
    );
    assert_eq!(
        chain.call(
            "eth_getBlockTransactionCountByNumber",
            json!([block_number])
        ),
        "0x1"
    );
    let tx = chain.call("eth_getTransactionByHash", json!([transfer]));
    assert_eq!(tx["from"], format!("{me:#x}"));
    assert_eq!(tx["blockHash"], block_hash);
    assert_eq!(
        chain.call(
            "eth_getTransactionByBlockHashAndIndex",
            json!([block_hash, "0x0"])
        ),
        tx
    );
    assert_eq!(
        chain.call(
            "eth_getTransactionByBlockNumberAndIndex",
            json!([block_number, "0x0"])
        ),
        tx
    );
    assert_eq!(
        chain.call(
            "eth_getTransactionByBlockNumberAndIndex",
            json!([block_number, "0x5"])
        ),
        Value::Null
    );
    let receipts = chain.call("eth_getBlockReceipts", json!([block_number]));
    assert_eq!(receipts[0], receipt);
    assert_eq!(receipt["logs"][0]["logIndex"], "0x0");
    assert_eq!(receipt["status"], "0x1");

    // Fees.
    let history = chain.call("eth_feeHistory", json!(["0x3", "latest", [25, 75]]));
    assert_eq!(history["baseFeePerGas"].as_array().unwrap().len(), 4);
    assert_eq!(history["reward"].as_array().unwrap().len(), 3);
    assert!(hex_u64(&chain.call("eth_maxPriorityFeePerGas", json!([]))) >= 1000);
    assert!(hex_u64(&chain.call("eth_gasPrice", json!([]))) >= 1000);
    assert_eq!(
        rpc(
            &chain.url,
            "eth_feeHistory",
            json!(["0x3", "latest", [75, 25]])
        )["error"]["code"],
        -32602
    );

    // Filters.
    let blocks = chain.call("eth_getFilterChanges", json!([block_filter]));
    assert!(blocks.as_array().unwrap().contains(&json!(block_hash)));
    assert_eq!(
        chain.call("eth_getFilterChanges", json!([block_filter])),
        json!([]),
        "only new blocks"
    );
    let pending = chain.call("eth_getFilterChanges", json!([pending_filter]));
    assert!(pending.as_array().unwrap().contains(&json!(transfer)));
    let logs = chain.call("eth_getFilterChanges", json!([log_filter]));
    assert_eq!(
        logs.as_array().unwrap().len(),
        1,
        "the transfer, not the earlier mint"
    );
    assert_eq!(
        chain
            .call("eth_getFilterLogs", json!([log_filter]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(chain.call("eth_uninstallFilter", json!([log_filter])), true);
    assert_eq!(
        chain.call("eth_uninstallFilter", json!([log_filter])),
        false
    );
    let gone = rpc(&chain.url, "eth_getFilterChanges", json!([log_filter]));
    assert_eq!(gone["error"]["message"], "filter not found");
    let all = chain.call(
        "eth_getLogs",
        json!([{"address": token, "fromBlock": "earliest"}]),
    );
    assert_eq!(all.as_array().unwrap().len(), 2);
    let by_block = chain.call("eth_getLogs", json!([{"blockHash": block_hash}]));
    assert_eq!(by_block.as_array().unwrap().len(), 1);

    // Proofs: the account proof's root node hashes to the head's state root.
    let head = chain.call("eth_getBlockByNumber", json!(["latest", false]));
    let proof = chain.call("eth_getProof", json!([token, ["0x2"], "latest"]));
    let first: Bytes = serde_json::from_value(proof["accountProof"][0].clone()).unwrap();
    assert_eq!(
        format!("{:#x}", keccak256(&first)),
        head["stateRoot"].as_str().unwrap()
    );
    assert_eq!(proof["storageProof"][0]["value"], "0x3e8");
    assert_eq!(
        rpc(&chain.url, "eth_getProof", json!([token, [], "earliest"]))["error"]["code"],
        -32000
    );

    // Raw data decodes back to what the other methods say.
    let raw_header: Bytes =
        serde_json::from_value(chain.call("debug_getRawHeader", json!([block_number]))).unwrap();
    let header: alloy::consensus::Header =
        alloy::rlp::Decodable::decode(&mut raw_header.as_ref()).unwrap();
    assert_eq!(
        format!(
            "{:#x}",
            consort_primitives::bft_onchain_hash(&header).unwrap()
        ),
        block_hash
    );
    let raw_block: Bytes =
        serde_json::from_value(chain.call("debug_getRawBlock", json!([block_number]))).unwrap();
    let block: alloy::consensus::Block<TxEnvelope> =
        alloy::rlp::Decodable::decode(&mut raw_block.as_ref()).unwrap();
    assert_eq!(block.body.transactions.len(), 1);
    let raw_receipts = chain.call("debug_getRawReceipts", json!([block_number]));
    assert_eq!(raw_receipts.as_array().unwrap().len(), 1);
    let raw_tx: Bytes =
        serde_json::from_value(chain.call("debug_getRawTransaction", json!([transfer]))).unwrap();
    assert_eq!(format!("{:#x}", keccak256(&raw_tx)), transfer);

    // QBFT and admin reads.
    assert_eq!(
        chain.call("qbft_getValidatorsByBlockNumber", json!(["latest"])),
        json!([VALIDATOR])
    );
    assert_eq!(
        chain.call("qbft_getValidatorsByBlockHash", json!([block_hash])),
        json!([VALIDATOR])
    );
    assert_eq!(chain.call("qbft_getRequestTimeoutSeconds", json!([])), 4);
    // Blocks 1 to the transfer's (the range's end is exclusive and at most the head, as in
    // Besu, so wait for a block after it): all proposed by the one validator.
    let mined = hex_u64(&block_number);
    poll(Duration::from_secs(30), || {
        (hex_u64(&chain.call("eth_blockNumber", json!([]))) > mined).then_some(())
    })
    .expect("no block after the transfer's");
    let signers = chain.call(
        "qbft_getSignerMetrics",
        json!(["0x1", format!("{:#x}", mined + 1)]),
    );
    assert_eq!(signers[0]["address"], VALIDATOR);
    assert_eq!(hex_u64(&signers[0]["proposedBlockCount"]), mined);
    assert_eq!(hex_u64(&signers[0]["lastProposedBlockNumber"]), mined);
    let info = chain.call("admin_nodeInfo", json!([]));
    let id = info["id"].as_str().unwrap();
    assert_eq!(id.len(), 128);
    let enode = info["enode"].as_str().unwrap();
    assert!(
        enode.starts_with(&format!("enode://{id}@127.0.0.1:")),
        "{enode}"
    );
    assert_eq!(
        info["ports"]["listener"].as_u64().unwrap().to_string(),
        enode.rsplit(':').next().unwrap()
    );
    assert_eq!(chain.call("admin_peers", json!([])), json!([]));
    let bad = rpc(
        &chain.url,
        "admin_addPeer",
        json!(["enode://1234@127.0.0.1:30303"]),
    );
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid enode URL"),
        "{bad}"
    );
    // A peer that is not running: accepted (it is dialled until it answers), then removed.
    let absent = "enode://069a2438f21a3330a6a26d20d15cb8aa53d4ec3074f7da967e2738f99c11c824837d0223efbd4d59e83dd4da0ff32cc7d551995f18c8cbb5f8da06aff4816566@127.0.0.1:9";
    assert_eq!(chain.call("admin_addPeer", json!([absent])), true);
    assert_eq!(chain.call("admin_removePeer", json!([absent])), true);
    assert_eq!(chain.call("net_peerCount", json!([])), "0x0");

    // A queued transaction is visible as pending-pool data with no block.
    let mut far = Chain {
        url: chain.url.clone(),
        signer: chain.signer.clone(),
        nonce: 9,
    };
    let queued = far.send(TxKind::Call(Address::ZERO), vec![]);
    let pooled = chain.call("eth_getTransactionByHash", json!([queued]));
    assert_eq!(pooled["blockHash"], Value::Null);
    assert_eq!(pooled["nonce"], "0x9");
    assert_eq!(
        chain.call("eth_getTransactionCount", json!([me, "pending"])),
        "0x2",
        "a gap is not pending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transports_serve_their_own_api_groups_with_cors_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(
        dir.path(),
        &[
            "--rpc-ws-api=ETH",
            "--rpc-http-cors-origins=http://dapp.example",
            "--rpc-http-max-batch-size=2",
            "--rpc-max-logs-range=2",
        ],
    );
    let ws = ProviderBuilder::new()
        .connect_ws(WsConnect::new(node.ws.clone()))
        .await
        .unwrap();
    let chain_id: String = ws.raw_request("eth_chainId".into(), ()).await.unwrap();
    assert_eq!(chain_id, "0x539");
    let err = ws
        .raw_request::<_, String>("net_version".into(), ())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("-32601") || err.to_string().contains("not found"),
        "{err}"
    );
    assert_eq!(rpc(&node.http, "net_version", json!([]))["result"], "1337");

    // CORS: the configured origin is echoed, another is not.
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).to_string();
    let (_, head, _) = http_request_with(
        &node.http,
        "POST",
        &body,
        &[("Origin", "http://dapp.example")],
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: http://dapp.example"),
        "{head}"
    );
    let (_, head, _) = http_request_with(
        &node.http,
        "POST",
        &body,
        &[("Origin", "http://evil.example")],
    );
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{head}"
    );

    // Batch bound.
    let one = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []});
    let ok = post(&node.http, &json!([one, one]).to_string());
    assert_eq!(ok.as_array().unwrap().len(), 2);
    let too_many = post(&node.http, &json!([one, one, one]).to_string());
    assert!(too_many.to_string().contains("error"), "{too_many}");

    // Log range bound: the requested range counts, whatever the head.
    let v = rpc(
        &node.http,
        "eth_getLogs",
        json!([{"fromBlock": "0x0", "toBlock": "0x5"}]),
    );
    assert_eq!(v["error"]["code"], -32005, "{v}");
}
