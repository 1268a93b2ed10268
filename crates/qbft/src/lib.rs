//! QBFT consensus as a pure state machine: Besu's message formats and signatures, and the
//! height/round logic of the QBFT spec. No sockets, clocks, threads or randomness: the host feeds
//! [`Input`]s (messages, timer expiries, built and checked blocks, new heads) and carries out the
//! [`Output`]s (broadcasts, timers, blocks to build, check or import).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod block;
mod core;
mod messages;
mod votes;

pub use block::{proposer, quorum, seal_block, with_round, Block, BlockError};
pub use core::{
    Head, Input, Output, Persisted, Qbft, QbftConfig, QbftTimings, EARLY_MESSAGES_BYTES,
    EARLY_MESSAGES_LIMIT, FUTURE_HEIGHT_DISTANCE, FUTURE_MESSAGES_BYTES, FUTURE_MESSAGES_LIMIT,
    ROUND_CHANGES_PER_AUTHOR,
};
pub use messages::{
    CommitPayload, MessageError, PreparePayload, PreparedRound, ProposalPayload, QbftMessage,
    RoundChangePayload, Signed, MAX_ROUND,
};
pub use votes::{is_epoch_block, update_for_block, PendingVotes, VoteTally};
