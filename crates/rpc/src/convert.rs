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
use consort_storage::{BlockReader, NewBlock};

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
    let txs = store.transactions(&hash)?.unwrap_or_default();
    let size = block_size(&header, &txs);
    let transactions = if full {
        let mut out = Vec::with_capacity(txs.len());
        for (i, tx) in txs.into_iter().enumerate() {
            let sender = recover_signer(&tx).map_err(|e| RpcError::Internal(e.to_string()))?;
            out.push(rpc_transaction(tx, sender, Some((&header, hash, i as u64))));
        }
        BlockTransactions::Full(out)
    } else {
        BlockTransactions::Hashes(txs.iter().map(|t| *t.tx_hash()).collect())
    };
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

fn block_size(header: &Header, txs: &[TxEnvelope]) -> usize {
    let body = alloy_consensus::Block {
        header: header.clone(),
        body: alloy_consensus::BlockBody {
            transactions: txs.to_vec(),
            ommers: vec![],
            withdrawals: header
                .withdrawals_root
                .map(|_| alloy_eips::eip4895::Withdrawals::default()),
        },
    };
    alloy_rlp::Encodable::length(&body)
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
    let txs = store.transactions(&hash)?.unwrap_or_default();
    let receipts = store.receipts(&hash)?.unwrap_or_default();
    Ok(positioned_logs(
        &header,
        hash,
        txs.iter().map(|tx| *tx.tx_hash()),
        receipts,
    ))
}

/// The logs of a new head, as `logs` subscriptions send them.
pub fn new_block_logs(block: &NewBlock) -> Vec<RpcLog> {
    positioned_logs(
        &block.header,
        block.hash,
        block.transaction_hashes.iter().copied(),
        block.receipts.iter().cloned(),
    )
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
