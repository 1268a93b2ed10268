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

pub use block::{proposer, quorum, seal_block, with_round, Block, BlockError};
pub use core::{Head, Input, Output, Qbft, QbftTimings};
pub use messages::{
    CommitPayload, MessageError, PreparePayload, PreparedRound, ProposalPayload, QbftMessage,
    RoundChangePayload, Signed, MAX_ROUND,
};
