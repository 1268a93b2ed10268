//! Transactions travel between peers in batches, one gossip message in the form of eth/68's
//! `Transactions` message: an RLP list whose items are transactions, a legacy one as its own
//! RLP list and a typed one as a byte string holding its EIP-2718 encoding.
//!
//! What JSON-RPC accepts waits in a [`TxBatch`] for at most [`TX_BATCH_INTERVAL`], or until
//! the batch holds [`TX_BATCH_BYTES`]. Gossipsub keeps state for every message it sees: the
//! seen IDs, the message cache, and peer scoring's record of who delivered each message, held
//! for two minutes. At a few thousand transactions a second, one message per transaction made
//! that state the largest part of a validator's memory.

use alloy_rlp::{Encodable, Header};
use std::sync::Mutex;
use std::time::Duration;

/// Longest a transaction waits before it is gossiped.
pub const TX_BATCH_INTERVAL: Duration = Duration::from_millis(50);
/// A batch is sent as soon as its items reach this size; one message is at most this plus the
/// largest transaction the pool accepts.
pub const TX_BATCH_BYTES: usize = 64 * 1024;

/// Transactions waiting to be gossiped together.
#[derive(Debug, Default)]
pub struct TxBatch {
    /// The RLP items so far, concatenated.
    items: Mutex<Vec<u8>>,
}

impl TxBatch {
    /// Adds one transaction (its EIP-2718 encoding). A batch that is now full comes back as
    /// the message to send at once.
    pub fn push(&self, raw: &[u8]) -> Option<Vec<u8>> {
        let full = {
            let mut items = self.items();
            push_item(&mut items, raw);
            (items.len() >= TX_BATCH_BYTES).then(|| std::mem::take(&mut *items))
        };
        full.map(|items| message(&items))
    }

    /// The batch so far as a message to send, if it holds anything.
    pub fn take(&self) -> Option<Vec<u8>> {
        let items = std::mem::take(&mut *self.items());
        (!items.is_empty()).then(|| message(&items))
    }

    fn items(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One message carrying `txs` (each its EIP-2718 encoding), as the simulator gossips them.
#[cfg(test)]
pub fn encode<'a>(txs: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut items = Vec::new();
    for raw in txs {
        push_item(&mut items, raw);
    }
    message(&items)
}

/// The transactions of a message, each as its EIP-2718 encoding, or what makes the message
/// malformed. An item is not decoded as a transaction here.
pub fn decode(data: &[u8]) -> Result<Vec<&[u8]>, alloy_rlp::Error> {
    let mut rest = data;
    let mut items = Header::decode_bytes(&mut rest, true)?;
    if !rest.is_empty() {
        return Err(alloy_rlp::Error::UnexpectedLength);
    }
    let mut txs = Vec::new();
    while !items.is_empty() {
        let start = items;
        let header = Header::decode(&mut items)?;
        let header_len = start.len() - items.len();
        // `Header::decode` checked that the payload is there.
        let (tx, next) = if header.list {
            start.split_at(header_len + header.payload_length)
        } else if header_len == 0 {
            // A single byte below 0x80 is its own encoding; no transaction is one byte long,
            // so the item is kept for the transaction decoder to refuse.
            start.split_at(1)
        } else {
            items.split_at(header.payload_length)
        };
        txs.push(tx);
        items = next;
    }
    Ok(txs)
}

/// Appends one transaction as an item: a legacy transaction is already an RLP list, a typed
/// one becomes a byte string.
fn push_item(items: &mut Vec<u8>, raw: &[u8]) {
    if raw
        .first()
        .is_some_and(|b| *b >= alloy_rlp::EMPTY_LIST_CODE)
    {
        items.extend_from_slice(raw);
    } else {
        raw.encode(items);
    }
}

fn message(items: &[u8]) -> Vec<u8> {
    let header = Header {
        list: true,
        payload_length: items.len(),
    };
    let mut out = Vec::with_capacity(header.length() + items.len());
    header.encode(&mut out);
    out.extend_from_slice(items);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{transfer, typed_transfer, DEV_KEY_0};
    use alloy_eips::eip2718::Encodable2718;
    use alloy_rlp::Decodable;
    use consort_primitives::TxEnvelope;

    fn typed(nonce: u64) -> Vec<u8> {
        typed_transfer(DEV_KEY_0, 1337, nonce).encoded_2718()
    }

    #[test]
    fn typed_and_legacy_transactions_come_back_as_sent() {
        let legacy = transfer(DEV_KEY_0, 1337, 7).encoded_2718();
        assert!(legacy[0] >= 0xc0, "a legacy transaction is an RLP list");
        let sent = [typed(0), legacy, typed(1)];
        let message = encode(sent.iter().map(Vec::as_slice));
        let got = decode(&message).unwrap();
        assert_eq!(got, sent.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // It is eth/68's `Transactions` body: a list of network-encoded transactions.
        let envelopes = Vec::<TxEnvelope>::decode(&mut message.as_slice()).unwrap();
        assert_eq!(envelopes.len(), 3);
        assert_eq!(decode(&encode([])).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn malformed_messages_are_refused() {
        let good = encode([typed(0).as_slice()]);
        let mut trailing = good.clone();
        trailing.push(0x80);
        let mut short = good.clone();
        short.pop();
        // An outer list whose item claims more bytes than the list holds.
        let overlong = [0xc3, 0xb9, 0xff, 0xff];
        for junk in [
            &[][..],
            &[0x02, 0x01],
            &[0x82, 0x02, 0x01],
            &trailing,
            &short,
            &overlong,
        ] {
            assert!(decode(junk).is_err(), "{junk:02x?}");
        }
        // A one-byte item is kept (for the transaction decoder to refuse), not misread.
        assert_eq!(decode(&[0xc1, 0x02]).unwrap(), vec![&[0x02][..]]);
    }

    #[test]
    fn a_batch_is_sent_when_full_and_never_much_larger() {
        let batch = TxBatch::default();
        assert_eq!(batch.take(), None, "nothing to send");
        let tx = typed(0);
        let pushed = 3 * TX_BATCH_BYTES / tx.len();
        let sent: Vec<Vec<u8>> = (0..pushed).filter_map(|_| batch.push(&tx)).collect();
        assert!(
            sent.len() >= 2,
            "a full batch is sent at once: {} sent",
            sent.len()
        );
        for message in &sent {
            assert!(
                message.len() <= TX_BATCH_BYTES + tx.len() + 8,
                "{} bytes",
                message.len()
            );
        }
        let rest = batch.take().map_or(0, |m| decode(&m).unwrap().len());
        let counted: usize = sent.iter().map(|m| decode(m).unwrap().len()).sum();
        assert_eq!(
            counted + rest,
            pushed,
            "every transaction in exactly one message"
        );
        assert!(decode(&sent[0]).unwrap().len() > 100, "many per message");
        assert_eq!(batch.take(), None, "taken once");
    }
}
