//! `consort-bench`: a load generator for any Ethereum JSON-RPC node (consort, Besu, anvil).
//!
//! It derives many senders from one funded key, funds them, pre-signs every transaction (ETH
//! transfers, ERC-20 transfers of a token it deploys, or Caliper's "simple" `open`), then sends
//! them over HTTP or WebSocket to one node or spread over several: as fast as they are accepted
//! (closed loop, `--concurrency` requests in flight) or at a fixed rate (open loop, `--rate`).
//! It follows inclusion through a `newHeads` subscription (over a WebSocket) or by polling the
//! head, reading each new block's transactions, and reports what was submitted and included, throughput, Mgas/s, latency from
//! submission to inclusion (p50/p95/p99), errors by kind and, for nodes that serve metrics,
//! their CPU time and resident memory.

mod client;
mod report;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::{SolCall, SolConstructor};
use alloy_primitives::{keccak256, Address, Bytes, TxKind, B256, I256, U256};
use clap::Parser;
use client::{Client, RpcError};
use report::{Report, Sample};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    /// ETH transfers (21,000 gas each).
    Eth,
    /// ERC-20 `transfer` calls on a token deployed for the run.
    Erc20,
    /// `open(account, amount)` calls on Caliper's "simple" contract deployed for the run: each
    /// stores one new account (a fresh storage slot).
    Open,
}

#[derive(Debug, Parser)]
#[command(
    name = "consort-bench",
    about = "Load generator for Ethereum JSON-RPC nodes"
)]
struct Args {
    /// JSON-RPC URLs (http:// or ws://), comma-separated; transactions are spread over them.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8545")]
    rpc: Vec<String>,
    /// Prometheus endpoints of the nodes (for CPU and memory), comma-separated.
    #[arg(long, value_delimiter = ',')]
    metrics: Vec<String>,
    /// The funded key (hex) that pays for the senders.
    #[arg(
        long,
        default_value = "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63"
    )]
    key: String,
    /// What to send.
    #[arg(long, value_enum, default_value = "eth")]
    kind: Kind,
    /// Senders the transactions are spread over.
    #[arg(long, default_value_t = 100)]
    senders: usize,
    /// Transactions to send.
    #[arg(long, default_value_t = 10_000)]
    txs: usize,
    /// Requests in flight (closed loop).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Transactions per second to offer (open loop); 0 sends as fast as they are accepted.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to wait for inclusion after the last submission.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// A label for the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Instead of sending transactions, call this read-only method for `--seconds`:
    /// eth_blockNumber, eth_chainId, eth_gasPrice, eth_getBalance, eth_getBlockByNumber,
    /// eth_call (a token's `balanceOf`) or eth_getLogs (a token's transfers over the last
    /// 1,000 blocks). The last two deploy the token first.
    #[arg(long)]
    read: Option<String>,
    /// For `--read=eth_getLogs`: token transfers made before the run; it finds them and the
    /// mint of the deployment.
    #[arg(long, default_value_t = 100)]
    logs: usize,
    /// How long a `--read` run lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// How new blocks are noticed: a `newHeads` subscription (the first URL must be ws://),
    /// polling `eth_blockNumber` every 20 ms, or (auto) the first when the first URL is ws://.
    #[arg(long, value_enum, default_value = "auto")]
    follow: Follow,
}

/// How the run notices new blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Follow {
    Auto,
    NewHeads,
    Poll,
}

/// Where new heads come from.
enum Heads {
    Subscribed(alloy::pubsub::Subscription<Value>),
    Polled,
}

impl Heads {
    async fn open(follow: Follow, client: &Client) -> Result<Heads, BenchError> {
        let subscribe = match follow {
            Follow::Auto => client.is_ws(),
            Follow::NewHeads => true,
            Follow::Poll => false,
        };
        if !subscribe {
            return Ok(Heads::Polled);
        }
        match client.new_heads().await? {
            Some(subscription) => Ok(Heads::Subscribed(subscription)),
            None => Err(BenchError::Setup(
                "--follow=new-heads needs a ws:// URL first in --rpc".into(),
            )),
        }
    }

    /// The head's number once a new block is announced, or after a short wait (so the caller
    /// can check whether it is done) the head as polled.
    async fn next(&mut self, client: &Client) -> Result<u64, BenchError> {
        if let Heads::Subscribed(subscription) = self {
            match tokio::time::timeout(Duration::from_millis(200), subscription.recv()).await {
                Ok(Ok(header)) => {
                    if let Ok(number) = quantity(&header["number"]) {
                        return Ok(number);
                    }
                }
                Ok(Err(e)) => {
                    return Err(BenchError::Setup(format!(
                        "the newHeads subscription ended: {e}"
                    )))
                }
                Err(_) => {}
            }
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        quantity(&client.call("eth_blockNumber", json!([])).await?)
    }
}

#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("{0}")]
    Setup(String),
}

/// Fees high enough for any node's minimum, fixed so that signing happens before the run.
const MAX_FEE: u128 = 100_000_000_000;
const PRIORITY_FEE: u128 = 1_000_000_000;

fn signer(hex: &str) -> Result<PrivateKeySigner, BenchError> {
    hex.trim()
        .trim_start_matches("0x")
        .parse()
        .map_err(|e| BenchError::Setup(format!("--key is not a private key: {e}")))
}

/// Sender `i` of a run paid by `funder`: a key derived from the funder's and `i`.
fn derived(funder: &PrivateKeySigner, i: usize) -> Result<PrivateKeySigner, BenchError> {
    let mut seed = funder.to_bytes().to_vec();
    seed.extend_from_slice(&(i as u64).to_be_bytes());
    PrivateKeySigner::from_bytes(&keccak256(seed))
        .map_err(|e| BenchError::Setup(format!("derived key {i}: {e}")))
}

fn sign(signer: &PrivateKeySigner, mut tx: TxEip1559) -> Result<Bytes, BenchError> {
    let sig = signer
        .sign_transaction_sync(&mut tx)
        .map_err(|e| BenchError::Setup(format!("signing: {e}")))?;
    Ok(TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into())
}

fn tx(chain_id: u64, nonce: u64, to: TxKind, value: U256, input: Bytes, gas: u64) -> TxEip1559 {
    TxEip1559 {
        chain_id,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: MAX_FEE,
        max_priority_fee_per_gas: PRIORITY_FEE,
        to,
        value,
        input,
        ..Default::default()
    }
}

fn quantity(v: &Value) -> Result<u64, BenchError> {
    v.as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| BenchError::Setup(format!("not a quantity: {v}")))
}

sol! {
    /// tests/contracts/Token.sol, as far as the runs use it.
    contract Token {
        constructor(string name_, string symbol_, uint256 supply);
        function transfer(address to, uint256 value) external returns (bool);
        function balanceOf(address owner) external view returns (uint256);
    }
    /// tests/contracts/bench/Simple.sol.
    contract Simple {
        function open(string account, int256 amount) external;
    }
}

/// `transfer(to, amount)`.
fn erc20_transfer(to: Address, amount: u64) -> Bytes {
    Token::transferCall {
        to,
        value: U256::from(amount),
    }
    .abi_encode()
    .into()
}

/// `open(account, amount)` of the simple contract.
fn simple_open(account: String, amount: i64) -> Bytes {
    Simple::openCall {
        account,
        amount: I256::try_from(amount).unwrap_or_default(),
    }
    .abi_encode()
    .into()
}

/// The creation code of a compiled artifact (the `bytecode` of its JSON).
fn creation_code(name: &str, artifact: &str) -> Result<Vec<u8>, BenchError> {
    let json: Value =
        serde_json::from_str(artifact).map_err(|e| BenchError::Setup(format!("{name}: {e}")))?;
    let hex = json["bytecode"]
        .as_str()
        .ok_or_else(|| BenchError::Setup(format!("{name} has no bytecode")))?;
    alloy_primitives::hex::decode(hex)
        .map_err(|e| BenchError::Setup(format!("{name} bytecode: {e}")))
}

/// The simple contract's creation code (tests/contracts/bench/Simple.json).
fn simple_deployment() -> Result<Bytes, BenchError> {
    creation_code(
        "Simple.json",
        include_str!("../../../../../tests/contracts/bench/Simple.json"),
    )
    .map(Bytes::from)
}

/// The token's creation code (tests/contracts/Token.json) with ("Bench", "BNC", 10^30).
fn token_deployment() -> Result<Bytes, BenchError> {
    let mut code = creation_code(
        "Token.json",
        include_str!("../../../../../tests/contracts/Token.json"),
    )?;
    code.extend(
        Token::constructorCall {
            name_: "Bench".into(),
            symbol_: "BNC".into(),
            supply: U256::from(10u64).pow(U256::from(30)),
        }
        .abi_encode(),
    );
    Ok(code.into())
}

/// Waits until `hash` has a receipt; errors if it failed or never came.
async fn included(client: &Client, hash: &str, timeout: Duration) -> Result<Value, BenchError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let receipt = client
            .call("eth_getTransactionReceipt", json!([hash]))
            .await?;
        if !receipt.is_null() {
            if receipt["status"] != json!("0x1") {
                return Err(BenchError::Setup(format!(
                    "setup transaction {hash} failed"
                )));
            }
            return Ok(receipt);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::Setup(format!(
        "setup transaction {hash} was not included"
    )))
}

/// Sends `txs` from the funder in order and waits for the last one.
async fn setup_batch(client: &Client, txs: Vec<Bytes>) -> Result<Option<Value>, BenchError> {
    let mut last = None;
    for raw in txs {
        let hash = client.call("eth_sendRawTransaction", json!([raw])).await?;
        last = hash.as_str().map(str::to_string);
    }
    match last {
        Some(hash) => Ok(Some(
            included(client, &hash, Duration::from_secs(60)).await?,
        )),
        None => Ok(None),
    }
}

/// The next nonce of `address`, counting pending transactions.
async fn next_nonce(client: &Client, address: Address) -> Result<u64, BenchError> {
    quantity(
        &client
            .call("eth_getTransactionCount", json!([address, "pending"]))
            .await?,
    )
}

/// Deploys `code` from `funder` (its next nonce is `*nonce`) and waits for its address.
async fn deploy(
    client: &Client,
    funder: &PrivateKeySigner,
    chain_id: u64,
    nonce: &mut u64,
    code: Bytes,
) -> Result<Address, BenchError> {
    let raw = sign(
        funder,
        tx(
            chain_id,
            *nonce,
            TxKind::Create,
            U256::ZERO,
            code,
            3_000_000,
        ),
    )?;
    *nonce += 1;
    let receipt = setup_batch(client, vec![raw]).await?;
    receipt
        .as_ref()
        .and_then(|r| r["contractAddress"].as_str())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| BenchError::Setup("a deployment has no contract address".into()))
}

/// Funds the senders (and deploys the token and hands it out for ERC-20, or deploys the simple
/// contract) and pre-signs the run's transactions, spread round-robin over the senders.
async fn prepare(args: &Args, client: &Client, chain_id: u64) -> Result<Vec<Bytes>, BenchError> {
    let funder = signer(&args.key)?;
    let senders: Vec<PrivateKeySigner> = (0..args.senders.max(1))
        .map(|i| derived(&funder, i))
        .collect::<Result<_, _>>()?;
    let mut nonce = next_nonce(client, funder.address()).await?;
    // Tells this run's `open` accounts from earlier runs' on the same chain.
    let run = nonce;
    let per_sender = args.txs.div_ceil(senders.len()) as u64;
    // Gas for each sender's share at the fixed fee, twice over.
    let funding = U256::from(MAX_FEE) * U256::from(120_000u64) * U256::from(per_sender + 1);
    let mut funds = Vec::with_capacity(senders.len());
    for s in &senders {
        funds.push(sign(
            &funder,
            tx(
                chain_id,
                nonce,
                TxKind::Call(s.address()),
                funding,
                Bytes::new(),
                21_000,
            ),
        )?);
        nonce += 1;
    }
    setup_batch(client, funds).await?;
    let contract = match args.kind {
        Kind::Eth => None,
        Kind::Open => {
            Some(deploy(client, &funder, chain_id, &mut nonce, simple_deployment()?).await?)
        }
        Kind::Erc20 => {
            Some(deploy(client, &funder, chain_id, &mut nonce, token_deployment()?).await?)
        }
    };
    if let (Kind::Erc20, Some(address)) = (args.kind, contract) {
        let mut shares = Vec::with_capacity(senders.len());
        for s in &senders {
            shares.push(sign(
                &funder,
                tx(
                    chain_id,
                    nonce,
                    TxKind::Call(address),
                    U256::ZERO,
                    erc20_transfer(s.address(), per_sender * 10),
                    100_000,
                ),
            )?);
            nonce += 1;
        }
        setup_batch(client, shares).await?;
    }
    let sink = Address::with_last_byte(0xbe);
    let mut signed = Vec::with_capacity(args.txs);
    let mut nonces: Vec<u64> = Vec::with_capacity(senders.len());
    for s in &senders {
        nonces.push(next_nonce(client, s.address()).await?);
    }
    for i in 0..args.txs {
        let k = i % senders.len();
        let raw = match (args.kind, contract) {
            (Kind::Eth, _) | (_, None) => tx(
                chain_id,
                nonces[k],
                TxKind::Call(sink),
                U256::from(1),
                Bytes::new(),
                21_000,
            ),
            (Kind::Erc20, Some(token)) => tx(
                chain_id,
                nonces[k],
                TxKind::Call(token),
                U256::ZERO,
                erc20_transfer(sink, 1),
                60_000,
            ),
            (Kind::Open, Some(simple)) => tx(
                chain_id,
                nonces[k],
                TxKind::Call(simple),
                U256::ZERO,
                simple_open(format!("account-{run}-{i}"), 1_000),
                100_000,
            ),
        };
        signed.push(sign(&senders[k], raw)?);
        nonces[k] += 1;
    }
    Ok(signed)
}

/// Clients of `urls`, at least one.
fn nodes(urls: &[String]) -> Result<Vec<Client>, BenchError> {
    let clients: Vec<Client> = urls
        .iter()
        .map(|u| Client::new(u))
        .collect::<Result<_, _>>()?;
    if clients.is_empty() {
        return Err(BenchError::Setup("no --rpc URL".into()));
    }
    Ok(clients)
}

/// What a node's metrics say of its process: CPU seconds and resident bytes.
async fn process_of(client: &Client) -> Option<(f64, f64)> {
    let text = client.get_text().await.ok()?;
    let read = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    Some((
        read("process_cpu_seconds_total")?,
        read("process_resident_memory_bytes")?,
    ))
}

async fn run(args: Args) -> Result<Report, BenchError> {
    let clients = nodes(&args.rpc)?;
    let first = &clients[0];
    let chain_id = quantity(&first.call("eth_chainId", json!([])).await?)?;
    let signed = prepare(&args, first, chain_id).await?;
    let metrics: Vec<Client> = args
        .metrics
        .iter()
        .map(|u| Client::new(u))
        .collect::<Result<_, _>>()?;
    let mut before = Vec::new();
    for m in &metrics {
        before.push(process_of(m).await);
    }

    let hashes: Vec<B256> = signed.iter().map(keccak256).collect();
    let submitted: Arc<Mutex<HashMap<B256, Instant>>> = Arc::default();
    let errors: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let signed = Arc::new(signed);
    let start = Instant::now();
    let mut heads = Heads::open(args.follow, first).await?;
    let start_block = quantity(&first.call("eth_blockNumber", json!([])).await?)?;
    let mut workers = Vec::new();
    for w in 0..args.concurrency.max(1) {
        let client = clients[w % clients.len()].clone();
        let (signed, next, submitted, errors) = (
            signed.clone(),
            next.clone(),
            submitted.clone(),
            errors.clone(),
        );
        let rate = args.rate;
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(raw) = signed.get(i) else { break };
                if rate > 0 {
                    let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                match client.call("eth_sendRawTransaction", json!([raw])).await {
                    Ok(_) => {
                        if let Ok(mut s) = submitted.lock() {
                            s.insert(keccak256(raw), sent);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut errors) = errors.lock() {
                            *errors.entry(e.kind()).or_default() += 1;
                        }
                    }
                }
            }
        }));
    }

    // Follow the chain: every transaction of ours in a new block is included, now.
    let mut samples: Vec<Sample> = Vec::with_capacity(hashes.len());
    let (mut gas, mut seen, mut last_block) = (0u64, start_block, start_block);
    let mut sending_done: Option<Instant> = None;
    let mut first_inclusion: Option<Instant> = None;
    loop {
        if sending_done.is_none() && workers.iter().all(|w| w.is_finished()) {
            sending_done = Some(Instant::now());
        }
        let expected = submitted.lock().map_or(0, |s| s.len());
        let finished_sending = sending_done.is_some();
        if finished_sending && samples.len() >= expected {
            break;
        }
        if sending_done.is_some_and(|d| d.elapsed() > Duration::from_secs(args.timeout)) {
            break;
        }
        let head = heads.next(first).await?;
        while seen < head {
            seen += 1;
            let block = first
                .call("eth_getBlockByNumber", json!([format!("{seen:#x}"), false]))
                .await?;
            let now = Instant::now();
            let mut ours = 0;
            if let Ok(sent) = submitted.lock() {
                for h in block["transactions"].as_array().into_iter().flatten() {
                    let Some(hash) = h.as_str().and_then(|s| s.parse::<B256>().ok()) else {
                        continue;
                    };
                    if let Some(at) = sent.get(&hash) {
                        samples.push(Sample {
                            latency: now.saturating_duration_since(*at),
                        });
                        ours += 1;
                    }
                }
            }
            if ours > 0 {
                gas += quantity(&block["gasUsed"]).unwrap_or(0);
                last_block = seen;
                first_inclusion.get_or_insert(now);
            }
        }
    }
    let elapsed = start.elapsed();
    let mut after = Vec::new();
    for m in &metrics {
        after.push(process_of(m).await);
    }
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    let submitted = submitted.lock().map_or(0, |s| s.len());
    Ok(Report::new(
        report::Run {
            label: args.label.clone(),
            kind: format!("{:?}", args.kind).to_lowercase(),
            nodes: clients.len(),
            follow: match heads {
                Heads::Subscribed(_) => "newHeads",
                Heads::Polled => "poll",
            },
            offered: hashes.len(),
            submitted,
            elapsed,
            blocks: last_block.saturating_sub(start_block),
            gas,
            errors,
        },
        samples,
        before.into_iter().zip(after).collect(),
    ))
}

/// The parameters of a read-only method, after deploying what it reads (for eth_call and
/// eth_getLogs, a token, with `--logs` transfers for eth_getLogs to find).
async fn read_params(args: &Args, client: &Client, method: &str) -> Result<Value, BenchError> {
    let simple = match method {
        "eth_blockNumber" | "eth_chainId" | "eth_gasPrice" => Some(json!([])),
        "eth_getBalance" => Some(json!([Address::with_last_byte(0xbe), "latest"])),
        "eth_getBlockByNumber" => Some(json!(["latest", false])),
        "eth_call" | "eth_getLogs" => None,
        other => {
            return Err(BenchError::Setup(format!(
                "--read {other}: eth_blockNumber, eth_chainId, eth_gasPrice, eth_getBalance, \
                 eth_getBlockByNumber, eth_call or eth_getLogs"
            )))
        }
    };
    if let Some(params) = simple {
        return Ok(params);
    }
    let chain_id = quantity(&client.call("eth_chainId", json!([])).await?)?;
    let funder = signer(&args.key)?;
    let mut nonce = next_nonce(client, funder.address()).await?;
    let token = deploy(client, &funder, chain_id, &mut nonce, token_deployment()?).await?;
    if method == "eth_call" {
        let data = Bytes::from(
            Token::balanceOfCall {
                owner: funder.address(),
            }
            .abi_encode(),
        );
        let call = json!({"to": token, "data": data});
        return Ok(json!([call, "latest"]));
    }
    let mut transfers = Vec::with_capacity(args.logs);
    for i in 0..args.logs {
        let to = Address::from_word(keccak256((i as u64).to_be_bytes()));
        transfers.push(sign(
            &funder,
            tx(
                chain_id,
                nonce,
                TxKind::Call(token),
                U256::ZERO,
                erc20_transfer(to, 1),
                100_000,
            ),
        )?);
        nonce += 1;
    }
    setup_batch(client, transfers).await?;
    let head = quantity(&client.call("eth_blockNumber", json!([])).await?)?;
    Ok(json!([{
        "address": token,
        "fromBlock": format!("{:#x}", head.saturating_sub(999)),
        "toBlock": format!("{head:#x}"),
    }]))
}

/// Calls `method` from `--concurrency` connections for `--seconds`.
async fn run_reads(args: &Args, method: &str) -> Result<Value, BenchError> {
    let clients = nodes(&args.rpc)?;
    let first = &clients[0];
    let params = read_params(args, first, method).await?;
    let answer = first.call(method, params.clone()).await?;
    let duration = Duration::from_secs(args.seconds.max(1));
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency.max(1) {
        let client = clients[w % clients.len()].clone();
        let (method, params) = (method.to_string(), params.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors: HashMap<String, u64> = HashMap::new();
            while start.elapsed() < duration {
                let sent = Instant::now();
                match client.call(&method, params.clone()).await {
                    Ok(_) => latencies.push(sent.elapsed()),
                    Err(e) => *errors.entry(e.kind()).or_default() += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors: HashMap<String, u64> = HashMap::new();
    for w in workers {
        let (l, e) = w
            .await
            .map_err(|e| BenchError::Setup(format!("a worker failed: {e}")))?;
        latencies.extend(l);
        for (k, n) in e {
            *errors.entry(k).or_default() += n;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort();
    let percentile = |p: f64| report::percentile(&latencies, p);
    Ok(json!({
        "label": args.label,
        "method": method,
        "params": params,
        "answer_items": answer.as_array().map(Vec::len),
        "concurrency": args.concurrency,
        "seconds": seconds,
        "requests": latencies.len(),
        "requests_per_second": latencies.len() as f64 / seconds,
        "latency_ms": {"p50": percentile(0.5), "p95": percentile(0.95), "p99": percentile(0.99)},
        "errors": errors,
    }))
}

fn main() {
    let args = Args::parse();
    let json_out = args.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("consort-bench: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Some(method) = args.read.clone() {
        match runtime.block_on(run_reads(&args, &method)) {
            Ok(report) if json_out => println!("{report}"),
            Ok(r) => println!(
                "{method} at concurrency {}: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, errors {}",
                args.concurrency,
                r["requests_per_second"].as_f64().unwrap_or_default(),
                r["latency_ms"]["p50"].as_f64().unwrap_or_default(),
                r["latency_ms"]["p99"].as_f64().unwrap_or_default(),
                r["errors"]
            ),
            Err(e) => {
                eprintln!("consort-bench: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    match runtime.block_on(run(args)) {
        Ok(report) => {
            if json_out {
                println!("{}", report.json());
            } else {
                print!("{}", report.text());
            }
        }
        Err(e) => {
            eprintln!("consort-bench: {e}");
            std::process::exit(1);
        }
    }
}
