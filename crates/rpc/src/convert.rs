//! Stored blocks, transactions and receipts in the shapes `eth_` methods return.

use crate::error::{RpcError, RpcResult};
use alloy_consensus::ReceiptEnvelope;
use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_eth::{
    Block, BlockTransactions, Header as RpcHeader, Log as RpcLog, Transaction as RpcTransaction,
    TransactionReceipt,
};
use consort_primitives::{recover_signer, Header, TxEnvelope};
use consort_storage::BlockReader;

/// An RPC header: the stored header with its (BFT on-chain) hash and size.
pub fn rpc_header(header: Header, hash: B256) -> RpcHeader {
    let size = alloy_rlp::Encodable::length(&header);
    RpcHeader {
        hash,
        inner: header,
        total_difficulty: None,
        size: Some(U256::from(size)),
    }
}

/// The price a transaction paid per gas in a block with `base_fee`.
pub fn effective_gas_price(tx: &TxEnvelope, base_fee: Option<u64>) -> u128 {
    tx.effective_gas_price(base_fee)
}

/// A transaction with its block position (None for a pooled transaction).
pub fn rpc_transaction(
    tx: TxEnvelope,
    sender: Address,
    at: Option<(&Header, B256, u64)>,
) -> RpcTransaction {
    let (block_hash, block_number, index, price, ts) = match at {
        Some((h, hash, i)) => (
            Some(hash),
            Some(h.number),
            Some(i),
            Some(effective_gas_price(&tx, h.base_fee_per_gas)),
            Some(h.timestamp),
        ),
        // Pending: geth reports the fee cap as the gas price.
        None => (None, None, None, Some(tx.max_fee_per_gas()), None),
    };
    RpcTransaction {
        inner: alloy_consensus::transaction::Recovered::new_unchecked(tx, sender),
        block_hash,
        block_number,
        transaction_index: index,
        effective_gas_price: price,
        block_timestamp: ts,
    }
}

/// A stored block, with full transactions or their hashes. None if the hash is unknown.
pub fn block<C: BlockReader + ?Sized>(
    store: &C,
    hash: B256,
    full: bool,
) -> RpcResult<Option<Block>> {
    let Some(header) = store.header(&hash)? else {
        return Ok(None);
    };
    let (transactions, tx_list_length) = if full {
        let txs = store.transactions(&hash)?.unwrap_or_default();
        let list_length = alloy_rlp::list_length(&txs);
        let mut out = Vec::with_capacity(txs.len());
        for (i, tx) in txs.into_iter().enumerate() {
            let sender = recover_signer(&tx).map_err(|e| RpcError::Internal(e.to_string()))?;
            out.push(rpc_transaction(tx, sender, Some((&header, hash, i as u64))));
        }
        (BlockTransactions::Full(out), list_length)
    } else {
        // Hashes only: read as stored, no transaction decoded or hashed.
        let txs = store.transaction_hashes(&hash)?.unwrap_or_default();
        (BlockTransactions::Hashes(txs.hashes), txs.list_length)
    };
    let size = block_size(&header, tx_list_length);
    let withdrawals = header
        .withdrawals_root
        .map(|_| alloy_eips::eip4895::Withdrawals::default());
    let mut rpc = rpc_header(header, hash);
    rpc.size = Some(U256::from(size));
    Ok(Some(Block {
        header: rpc,
        uncles: vec![],
        transactions,
        withdrawals,
    }))
}

/// The encoded size of the block `[header, transactions, ommers, withdrawals?]` whose
/// transaction list encodes to `tx_list_length` bytes (no ommers; an empty withdrawals list
/// from Shanghai on).
fn block_size(header: &Header, tx_list_length: usize) -> usize {
    // An empty list encodes as the one byte 0xc0.
    let empty_list = 1;
    let payload = alloy_rlp::Encodable::length(header)
        + tx_list_length
        + empty_list
        + header.withdrawals_root.map_or(0, |_| empty_list);
    alloy_rlp::length_of_length(payload) + payload
}

/// Every receipt of a block, in the `eth_getTransactionReceipt` shape.
pub fn block_receipts<C: BlockReader + ?Sized>(
    store: &C,
    hash: B256,
) -> RpcResult<Option<Vec<TransactionReceipt>>> {
    let Some(header) = store.header(&hash)? else {
        return Ok(None);
    };
    let txs = store.transactions(&hash)?.unwrap_or_default();
    let receipts = store.receipts(&hash)?.unwrap_or_default();
    let mut out = Vec::with_capacity(receipts.len());
    let mut previous_cumulative = 0u64;
    let mut log_index = 0u64;
    for (i, (tx, receipt)) in txs.into_iter().zip(receipts).enumerate() {
        let sender = recover_signer(&tx).map_err(|e| RpcError::Internal(e.to_string()))?;
        let cumulative = receipt.cumulative_gas_used();
        let gas_used = cumulative.saturating_sub(previous_cumulative);
        previous_cumulative = cumulative;
        let tx_hash = *tx.tx_hash();
        let contract_address = tx.kind().is_create().then(|| sender.create(tx.nonce()));
        let inner = receipt.map_logs(|log| {
            let rpc = RpcLog {
                inner: log,
                block_hash: Some(hash),
                block_number: Some(header.number),
                block_timestamp: Some(header.timestamp),
                transaction_hash: Some(tx_hash),
                transaction_index: Some(i as u64),
                log_index: Some(log_index),
                removed: false,
            };
            log_index += 1;
            rpc
        });
        out.push(TransactionReceipt {
            inner,
            transaction_hash: tx_hash,
            transaction_index: Some(i as u64),
            block_hash: Some(hash),
            block_number: Some(header.number),
            gas_used,
            effective_gas_price: effective_gas_price(&tx, header.base_fee_per_gas),
            blob_gas_used: None,
            blob_gas_price: None,
            from: sender,
            to: tx.to(),
            contract_address,
        });
    }
    Ok(Some(out))
}

/// The logs of a block in order, with their positions. Reads receipts and transaction hashes
/// only (no sender recovery), since `eth_getLogs` may scan thousands of blocks.
pub fn block_logs<C: BlockReader + ?Sized>(store: &C, hash: B256) -> RpcResult<Vec<RpcLog>> {
    let Some(header) = store.header(&hash)? else {
        return Ok(vec![]);
    };
    let txs = store.transaction_hashes(&hash)?.unwrap_or_default();
    let receipts = store.receipts(&hash)?.unwrap_or_default();
    Ok(positioned_logs(&header, hash, txs.hashes, receipts))
}

/// Each receipt's logs with their block, transaction and log positions.
fn positioned_logs(
    header: &Header,
    hash: B256,
    tx_hashes: impl IntoIterator<Item = B256>,
    receipts: impl IntoIterator<Item = ReceiptEnvelope>,
) -> Vec<RpcLog> {
    let mut out = Vec::new();
    for (i, (tx_hash, receipt)) in tx_hashes.into_iter().zip(receipts).enumerate() {
        for log in receipt.into_logs() {
            out.push(RpcLog {
                inner: log,
                block_hash: Some(hash),
                block_number: Some(header.number),
                block_timestamp: Some(header.timestamp),
                transaction_hash: Some(tx_hash),
                transaction_index: Some(i as u64),
                log_index: Some(out.len() as u64),
                removed: false,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::block_size;
    use alloy_consensus::{Signed, TxLegacy};
    use alloy_primitives::{Signature, TxKind, B256, U256};
    use consort_primitives::{Header, TxEnvelope};

    fn encoded_size(header: &Header, txs: &[TxEnvelope]) -> usize {
        let block = alloy_consensus::Block {
            header: header.clone(),
            body: alloy_consensus::BlockBody {
                transactions: txs.to_vec(),
                ommers: vec![],
                withdrawals: header
                    .withdrawals_root
                    .map(|_| alloy_eips::eip4895::Withdrawals::default()),
            },
        };
        alloy_rlp::Encodable::length(&block)
    }

    #[test]
    fn a_block_s_size_is_its_encoding_s_length() {
        let tx = |n: u64| {
            let tx = TxLegacy {
                nonce: n,
                gas_price: 1,
                gas_limit: 21_000,
                to: TxKind::Call(Default::default()),
                input: vec![7; n as usize * 40].into(),
                ..Default::default()
            };
            TxEnvelope::Legacy(Signed::new_unhashed(
                tx,
                Signature::new(U256::from(1), U256::from(2), false),
            ))
        };
        for withdrawals_root in [None, Some(B256::repeat_byte(1))] {
            let header = Header {
                number: 9,
                withdrawals_root,
                ..Default::default()
            };
            for txs in [vec![], vec![tx(0)], (0..200).map(tx).collect::<Vec<_>>()] {
                assert_eq!(
                    block_size(&header, alloy_rlp::list_length(&txs)),
                    encoded_size(&header, &txs)
                );
            }
        }
    }
}
