//! `consort blocks export` and `import`: a chain's blocks as a file of concatenated RLP blocks
//! (Besu's format, commit seals included), and that file replayed into a data directory
//! through the same checks and execution as a block from a peer.

use crate::chain::{Chain, ChainError};
use crate::metrics::ChainMetrics;
use crate::{open_chain, open_existing_chain, NodeArgs, NodeError};
use alloy_consensus::BlockBody;
use alloy_primitives::B256;
use alloy_rlp::{Decodable, Encodable};
use consort_primitives::bft_onchain_hash;
use consort_qbft::Block;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The largest block a file may hold (a 1 Ggas block of calldata is about 60 MB).
pub const MAX_BLOCK_BYTES: usize = 128 << 20;

/// Why an export or import stopped.
#[derive(Debug, thiserror::Error)]
pub enum BlocksError {
    /// The chain could not be opened.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The range asked for is not in the chain.
    #[error("{0}")]
    Range(String),
    /// The file is not a sequence of RLP blocks.
    #[error("{path}: not an RLP block at byte {offset}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where the bad item starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A block was refused; the blocks before it were imported.
    #[error("block {number} refused: {reason}")]
    Refused {
        /// Its number.
        number: u64,
        /// The rule it breaks.
        reason: String,
    },
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    /// The first block written.
    pub first: u64,
    /// The last block written.
    pub last: u64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Blocks executed and stored.
    pub imported: u64,
    /// Blocks the chain already had (the same hash at the same number).
    pub known: u64,
    /// The head afterwards.
    pub head: u64,
    /// Its hash.
    pub head_hash: B256,
    /// Its state root.
    pub state_root: B256,
}

/// Writes blocks `start..end` of `args`' chain to `to`, each as the RLP of
/// `[header, transactions, ommers]` (and withdrawals where the header has a withdrawals root),
/// one after another, as Besu's `blocks export` does: `end` is exclusive and defaults to one
/// past the head, and a range reaching past the head stops at the head. The file appears whole
/// or not at all.
pub fn export(
    args: &NodeArgs,
    start: u64,
    end: Option<u64>,
    to: &Path,
) -> Result<Exported, BlocksError> {
    let (store, _) = open_existing_chain(args)?;
    let head = store.head().map_err(NodeError::from)?.unwrap_or_default().0;
    if start > head {
        return Err(BlocksError::Range(format!(
            "--start-block {start} is beyond the head, block {head}"
        )));
    }
    let end = end.unwrap_or(head.saturating_add(1));
    if end <= start {
        return Err(BlocksError::Range(format!(
            "--end-block {end} must be greater than --start-block {start} (the end is exclusive)"
        )));
    }
    let last = (end - 1).min(head);
    let io = |source| BlocksError::Io {
        path: to.to_path_buf(),
        source,
    };
    let partial = to.with_extension("partial");
    let file = std::fs::File::create(&partial).map_err(io)?;
    let mut out = BufWriter::new(file);
    let written = (|| -> Result<(), BlocksError> {
        let mut buf = Vec::new();
        for number in start..=last {
            let missing = || BlocksError::Range(format!("block {number} is not stored"));
            let header = store
                .header_by_number(number)
                .map_err(NodeError::from)?
                .ok_or_else(missing)?;
            let hash = store
                .canonical_hash(number)
                .map_err(NodeError::from)?
                .ok_or_else(missing)?;
            let transactions = store
                .transactions(&hash)
                .map_err(NodeError::from)?
                .unwrap_or_default();
            let block = Block {
                body: BlockBody {
                    transactions,
                    ommers: Vec::new(),
                    withdrawals: header.withdrawals_root.map(|_| Default::default()),
                },
                header,
            };
            buf.clear();
            block.encode(&mut buf);
            out.write_all(&buf).map_err(io)?;
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&partial, to).map_err(io)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written.map(|()| Exported { first: start, last })
}

/// Imports the blocks of `from` into `args`' chain in order: each is checked against its
/// parent (header rules, a quorum of commit seals from the validators the chain gives it),
/// executed, its roots compared, and committed on its own, so a refused block stops the
/// import with everything before it kept. Blocks the chain already has are passed over; a
/// different block at a stored height is refused.
pub fn import(args: &NodeArgs, from: &Path) -> Result<Imported, BlocksError> {
    let (store, genesis) = open_chain(args)?;
    let registry = consort_metrics::Registry::default();
    let metrics = ChainMetrics::new(&registry).map_err(|e| NodeError::Config(e.to_string()))?;
    let chain = Chain::new(store.clone(), genesis, metrics, None);
    let file = std::fs::File::open(from).map_err(|source| BlocksError::Io {
        path: from.to_path_buf(),
        source,
    })?;
    let mut reader = BlockReader {
        inner: BufReader::new(file),
        path: from.to_path_buf(),
        offset: 0,
    };
    let (mut imported, mut known) = (0, 0);
    while let Some(block) = reader.next_block()? {
        let number = block.header.number;
        let refused = |reason: String| BlocksError::Refused { number, reason };
        let hash = bft_onchain_hash(&block.header).map_err(|e| refused(e.to_string()))?;
        let head = store.head().map_err(NodeError::from)?.unwrap_or_default().0;
        if number <= head {
            match store.canonical_hash(number).map_err(NodeError::from)? {
                Some(stored) if stored == hash => {
                    known += 1;
                    continue;
                }
                _ => {
                    return Err(refused(format!(
                        "the chain already has another block {number} (the file is of \
                         another chain or a fork of this one)"
                    )))
                }
            }
        }
        let proposal = chain.check(&block, now()).map_err(|e| refused(reason(e)))?;
        chain
            .commit(&block, proposal)
            .map_err(|e| refused(reason(e)))?;
        imported += 1;
    }
    let head = store.head_header().map_err(NodeError::from)?;
    Ok(Imported {
        imported,
        known,
        head: head.number,
        head_hash: store
            .canonical_hash(head.number)
            .map_err(NodeError::from)?
            .unwrap_or_default(),
        state_root: head.state_root,
    })
}

fn reason(e: ChainError) -> String {
    match e {
        ChainError::Invalid { reason, .. } => reason,
        other => other.to_string(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads one RLP block after another, each bounded by [`MAX_BLOCK_BYTES`].
struct BlockReader<R> {
    inner: R,
    path: PathBuf,
    offset: u64,
}

impl<R: Read> BlockReader<R> {
    fn next_block(&mut self) -> Result<Option<Block>, BlocksError> {
        let malformed = |offset, reason: String| BlocksError::Malformed {
            path: self.path.clone(),
            offset,
            reason,
        };
        let io = |source| BlocksError::Io {
            path: self.path.clone(),
            source,
        };
        // An RLP list header is at most 9 bytes: the first says how many follow.
        let mut first = [0u8; 1];
        if self.inner.read(&mut first).map_err(io)? == 0 {
            return Ok(None);
        }
        let length_bytes = match first[0] {
            0xc0..=0xf7 => 0,
            b @ 0xf8..=0xff => usize::from(b - 0xf7),
            b => {
                return Err(malformed(
                    self.offset,
                    format!("starts with {b:#04x}, not a list"),
                ))
            }
        };
        let mut item = Vec::with_capacity(9);
        item.push(first[0]);
        item.resize(1 + length_bytes, 0);
        if let Some(rest) = item.get_mut(1..) {
            self.inner
                .read_exact(rest)
                .map_err(|e| malformed(self.offset, format!("truncated list header: {e}")))?;
        }
        let payload_length = match first[0] {
            b @ 0xc0..=0xf7 => usize::from(b - 0xc0),
            _ => {
                let digits = item.get(1..).unwrap_or_default();
                if digits.first() == Some(&0) || (digits.len() == 1 && digits.first() < Some(&56)) {
                    return Err(malformed(self.offset, "non-canonical list length".into()));
                }
                digits
                    .iter()
                    .try_fold(0usize, |n, d| {
                        n.checked_mul(256)?.checked_add(usize::from(*d))
                    })
                    .ok_or_else(|| malformed(self.offset, "list length overflows".into()))?
            }
        };
        let total = item.len().saturating_add(payload_length);
        if total > MAX_BLOCK_BYTES {
            return Err(malformed(
                self.offset,
                format!("a block of {total} bytes is over the {MAX_BLOCK_BYTES}-byte bound"),
            ));
        }
        let head_len = item.len();
        item.resize(total, 0);
        if let Some(rest) = item.get_mut(head_len..) {
            self.inner.read_exact(rest).map_err(|e| {
                malformed(
                    self.offset,
                    format!("truncated: {payload_length} bytes expected: {e}"),
                )
            })?;
        }
        let mut slice = item.as_slice();
        let block = Block::decode(&mut slice).map_err(|e| malformed(self.offset, e.to_string()))?;
        if !slice.is_empty() {
            return Err(malformed(self.offset, "bytes left inside the block".into()));
        }
        self.offset = self.offset.saturating_add(total as u64);
        Ok(Some(block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<Block>, BlocksError> {
        let mut reader = BlockReader {
            inner: bytes,
            path: PathBuf::from("test.rlp"),
            offset: 0,
        };
        let mut out = Vec::new();
        while let Some(b) = reader.next_block()? {
            out.push(b);
        }
        Ok(out)
    }

    fn block(number: u64) -> Block {
        let mut block = Block::default();
        block.header.number = number;
        block
    }

    #[test]
    fn blocks_are_read_back_one_after_another() {
        let mut bytes = Vec::new();
        for n in 0..3 {
            block(n).encode(&mut bytes);
        }
        let read = read_all(&bytes).unwrap();
        assert_eq!(
            read.iter().map(|b| b.header.number).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(read_all(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_bad_item_names_its_offset() {
        let mut bytes = Vec::new();
        block(0).encode(&mut bytes);
        let first = bytes.len() as u64;
        let mut truncated = bytes.clone();
        block(1).encode(&mut truncated);
        truncated.pop();
        for (data, at) in [
            (truncated, first),
            ([bytes.clone(), vec![0x80]].concat(), first),
            ([bytes.clone(), vec![0xc1, 0x80]].concat(), first),
            ([bytes, vec![0xfb, 0xff, 0xff, 0xff, 0xff]].concat(), first),
        ] {
            match read_all(&data) {
                Err(BlocksError::Malformed { offset, .. }) => assert_eq!(offset, at),
                other => panic!("{other:?}"),
            }
        }
    }
}
