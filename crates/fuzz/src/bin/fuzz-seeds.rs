//! Writes the seed corpus of every fuzz target under `fuzz/corpus/<target>/`: well-formed
//! inputs made by consort's own encoders and the repository's genesis files, so the fuzzers
//! start from what real peers and clients send. Run from the repository root:
//! `cargo run -p consort-fuzz --bin fuzz-seeds`.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{keccak256, Address, Bytes, Signature, TxKind, B256, U256};
use alloy_rlp::Encodable;
use consort_fuzz::validator_keys;
use consort_primitives::{sign_commit_seal, Header, QbftExtraData, TxEnvelope, Vote};
use consort_qbft::{
    Block, CommitPayload, PreparePayload, PreparedRound, QbftMessage, RoundChangePayload,
};
use std::path::Path;

fn write(dir: &Path, target: &str, data: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let name = alloy_primitives::hex::encode(&keccak256(data)[..8]);
    std::fs::write(dir.join(name), data).unwrap_or_else(|e| panic!("{target}: {e}"));
}

fn sign<T: SignableTransaction<Signature>>(tx: T) -> TxEnvelope
where
    TxEnvelope: From<alloy_consensus::Signed<T>>,
{
    let (key, _) = &validator_keys()[0];
    let seal = sign_commit_seal(tx.signature_hash(), key);
    let signature = Signature::new(
        U256::from_be_slice(&seal[..32]),
        U256::from_be_slice(&seal[32..64]),
        seal[64] == 1,
    );
    TxEnvelope::from(tx.into_signed(signature))
}

fn transactions() -> Vec<TxEnvelope> {
    let to = TxKind::Call(Address::repeat_byte(0x42));
    vec![
        sign(TxLegacy {
            chain_id: Some(1337),
            nonce: 0,
            gas_price: 1_000,
            gas_limit: 21_000,
            to,
            value: U256::from(1),
            input: Bytes::new(),
        }),
        sign(TxEip2930 {
            chain_id: 1337,
            nonce: 1,
            gas_price: 1_000,
            gas_limit: 30_000,
            to,
            value: U256::ZERO,
            access_list: vec![alloy_eips::eip2930::AccessListItem {
                address: Address::repeat_byte(1),
                storage_keys: vec![B256::repeat_byte(2)],
            }]
            .into(),
            input: Bytes::from_static(&[0xa9, 0x05, 0x9c, 0xbb]),
        }),
        sign(TxEip1559 {
            chain_id: 1337,
            nonce: 2,
            gas_limit: 100_000,
            max_fee_per_gas: 10_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Create,
            value: U256::ZERO,
            access_list: Default::default(),
            input: Bytes::from_static(&[0x60, 0x00, 0x60, 0x00, 0xf3]),
        }),
    ]
}

fn extra(round: u32, seals: usize, vote: Option<Vote>) -> QbftExtraData {
    QbftExtraData {
        vanity: Bytes::from(vec![0; 32]),
        validators: validator_keys().iter().map(|(_, a)| *a).collect(),
        vote,
        round,
        seals: validator_keys()
            .iter()
            .take(seals)
            .map(|(k, _)| sign_commit_seal(B256::repeat_byte(7), k))
            .collect(),
    }
}

fn block(number: u64, txs: Vec<TxEnvelope>) -> Block {
    let header = Header {
        number,
        gas_limit: 30_000_000,
        timestamp: 1_700_000_000 + number,
        extra_data: extra(0, 0, None).encode(),
        ..Default::default()
    };
    Block {
        header,
        body: alloy_consensus::BlockBody {
            transactions: txs,
            ommers: vec![],
            withdrawals: None,
        },
    }
}

fn main() {
    let out = Path::new("fuzz/corpus");
    let txs = transactions();
    for tx in &txs {
        write(out, "transaction", &tx.encoded_2718());
    }
    let blocks = [block(1, vec![]), block(2, txs.clone())];
    for b in &blocks {
        let mut rlp = Vec::new();
        b.encode(&mut rlp);
        write(out, "block", &rlp);
    }

    let [(k1, a1), (k2, a2), (k3, a3), _] = *validator_keys();
    let digest = B256::repeat_byte(9);
    let prepare = |key, author| {
        QbftMessage::prepare(
            PreparePayload {
                height: 2,
                round: 0,
                digest,
            },
            key,
            author,
        )
    };
    let prepares: Vec<_> = [(&k1, a1), (&k2, a2), (&k3, a3)]
        .into_iter()
        .filter_map(|(k, a)| match prepare(k, a) {
            QbftMessage::Prepare(s) => Some(s),
            _ => None,
        })
        .collect();
    let round_change = QbftMessage::round_change(
        RoundChangePayload {
            height: 2,
            round: 1,
            prepared: Some(PreparedRound { round: 0, digest }),
        },
        Some(blocks[1].clone()),
        prepares.clone(),
        &k2,
        a2,
    );
    let round_changes: Vec<_> = match &round_change {
        QbftMessage::RoundChange { round_change, .. } => vec![round_change.clone()],
        _ => vec![],
    };
    let messages = [
        prepare(&k1, a1),
        QbftMessage::commit(
            CommitPayload {
                height: 2,
                round: 0,
                digest,
                seal: sign_commit_seal(digest, &k1),
            },
            &k1,
            a1,
        ),
        QbftMessage::round_change(
            RoundChangePayload {
                height: 2,
                round: 3,
                prepared: None,
            },
            None,
            vec![],
            &k3,
            a3,
        ),
        round_change,
        QbftMessage::proposal(2, 0, blocks[1].clone(), vec![], vec![], &k1, a1),
        QbftMessage::proposal(2, 1, blocks[1].clone(), round_changes, prepares, &k2, a2),
    ];
    for m in &messages {
        write(out, "qbft_message", &m.encode_wire());
    }

    let vote = Some(Vote {
        recipient: Address::repeat_byte(5),
        add: true,
    });
    for e in [extra(0, 0, None), extra(2, 3, vote), extra(0, 4, None)] {
        write(out, "extra_data", &e.encode());
        write(out, "extra_data", &e.encode_for_commit_seal());
    }

    for url in [
        "enode://6f8a80d14311c39f35f516fa664deaaaa13e85b2f7493f37f6144d86991ec012937307647bd3b9a82abe2974e1407241d54947bbb39763a4cac9f77166ad92a0@10.3.58.6:30303",
        "enode://6f8a80d14311c39f35f516fa664deaaaa13e85b2f7493f37f6144d86991ec012937307647bd3b9a82abe2974e1407241d54947bbb39763a4cac9f77166ad92a0@10.3.58.6:30303?discport=30301",
        "enode://6f8a80d14311c39f35f516fa664deaaaa13e85b2f7493f37f6144d86991ec012937307647bd3b9a82abe2974e1407241d54947bbb39763a4cac9f77166ad92a0@[::1]:30303",
    ] {
        write(out, "enode", url.as_bytes());
    }

    for request in [
        vec![0u64],
        vec![1, 0, 128],
        vec![2, 1, 16],
        vec![1, u64::MAX, u64::MAX],
    ] {
        write(out, "sync_request", &alloy_rlp::encode(request));
    }
    let mut payload = Vec::new();
    5u64.encode(&mut payload);
    B256::repeat_byte(1).encode(&mut payload);
    B256::repeat_byte(2).encode(&mut payload);
    let mut status = Vec::new();
    alloy_rlp::Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(&mut status);
    status.extend_from_slice(&payload);
    write(out, "sync_answer", &status);
    let headers: Vec<Header> = blocks.iter().map(|b| b.header.clone()).collect();
    write(out, "sync_answer", &alloy_rlp::encode(&headers));
    let bodies: Vec<Vec<TxEnvelope>> = vec![vec![], txs.clone()];
    write(out, "sync_answer", &alloy_rlp::encode(&bodies));

    for file in [
        "chainspecs/dev.json",
        "genesis/qbft-4/genesis.json",
        "genesis/qbft-4/permissioned-genesis.json",
        "genesis/qbft-4/validator-contract-genesis.json",
    ] {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        write(out, "genesis", &data);
    }

    write(
        out,
        "permissions_toml",
        b"nodes-allowlist=[\"enode://6f8a80d14311c39f35f516fa664deaaaa13e85b2f7493f37f6144d86991ec012937307647bd3b9a82abe2974e1407241d54947bbb39763a4cac9f77166ad92a0@127.0.0.1:30303\"]\naccounts-allowlist=[\"0xfe3b557e8fb62b89f4916b721be55ceb828dbd73\"]\n",
    );
    write(
        out,
        "permissions_toml",
        b"# empty lists\nnodes-allowlist=[]\naccounts-allowlist=[]\n",
    );

    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"eth_getBalance","params":["0xfe3b557e8fb62b89f4916b721be55ceb828dbd73","latest"]}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"eth_call","params":[{"to":"0x4242424242424242424242424242424242424242","data":"0x70a08231"},{"blockHash":"0x0101010101010101010101010101010101010101010101010101010101010101"},{"0x4242424242424242424242424242424242424242":{"balance":"0x1"}}]}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"eth_getLogs","params":[{"fromBlock":"0x0","toBlock":"latest","address":["0x4242424242424242424242424242424242424242"],"topics":[null,["0x0101010101010101010101010101010101010101010101010101010101010101"]]}]}"#,
        r#"[{"jsonrpc":"2.0","id":5,"method":"eth_chainId"},{"jsonrpc":"2.0","method":"eth_subscribe","params":["newHeads"]}]"#,
    ] {
        write(out, "rpc_request", body.as_bytes());
    }
}
