//! Why a transaction was not accepted. Messages are geth's, which wallets and libraries match on.

use alloy_primitives::{Address, U256};
use consort_evm::TxValidationError;

/// A rejected transaction. The pool is unchanged after any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The bytes are not a transaction.
    #[error("invalid transaction: {0}")]
    Decode(String),
    /// The pool already holds this transaction.
    #[error("already known")]
    AlreadyKnown,
    /// The sender already used this nonce.
    #[error("nonce too low: next nonce {next}, tx nonce {nonce}")]
    NonceTooLow {
        /// The sender's next nonce in the head state.
        next: u64,
        /// The transaction's nonce.
        nonce: u64,
    },
    /// A queued transaction would leave too large a gap after the sender's last pending one.
    #[error(
        "nonce too far in future: next executable nonce {next}, tx nonce {nonce}, limit {limit}"
    )]
    NonceTooFarInFuture {
        /// The sender's next executable nonce (head state plus pending transactions).
        next: u64,
        /// The transaction's nonce.
        nonce: u64,
        /// How far ahead a nonce may be.
        limit: u64,
    },
    /// A transaction with the same sender and nonce is in the pool and this one does not pay
    /// enough more to replace it.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// The sender cannot pay the transaction's maximum cost.
    #[error("insufficient funds for gas * price + value: balance {balance}, tx cost {cost}")]
    InsufficientFunds {
        /// The sender's balance in the head state.
        balance: U256,
        /// gas limit × max fee per gas + value.
        cost: U256,
    },
    /// The gas limit is below the intrinsic gas.
    #[error("intrinsic gas too low: gas {gas_limit}, minimum needed {intrinsic}")]
    IntrinsicGasTooLow {
        /// The transaction's gas limit.
        gas_limit: u64,
        /// Its intrinsic gas.
        intrinsic: u64,
    },
    /// The gas limit exceeds the block gas limit.
    #[error("exceeds block gas limit")]
    ExceedsBlockGasLimit,
    /// The signature does not recover a sender.
    #[error("invalid sender: {0}")]
    InvalidSender(String),
    /// Signed for another chain.
    #[error("invalid chain id: {0}")]
    WrongChainId(String),
    /// The price is below `--min-gas-price`.
    #[error("transaction underpriced: gas price {price} below the minimum {minimum}")]
    Underpriced {
        /// max fee per gas (or gas price).
        price: u128,
        /// The node's minimum.
        minimum: u128,
    },
    /// The transaction type is not accepted on this chain or fork.
    #[error("transaction type not supported: {0}")]
    TypeNotSupported(String),
    /// The priority fee exceeds the fee cap.
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    /// Init code above EIP-3860's limit.
    #[error("max initcode size exceeded: {0} bytes")]
    InitCodeTooLarge(usize),
    /// Nonce at 2^64-1 (EIP-2681).
    #[error("nonce has max value")]
    NonceMax,
    /// The encoded transaction is larger than the pool accepts.
    #[error("oversized data: transaction size {size}, limit {limit}")]
    Oversized {
        /// Encoded size in bytes.
        size: usize,
        /// The pool's limit.
        limit: usize,
    },
    /// The sender already has as many transactions in the pool as one sender may.
    #[error("sender has too many transactions in the pool: limit {0}")]
    SenderLimit(usize),
    /// The sender's transactions in the pool would take more bytes than one sender may hold.
    #[error("sender's transactions in the pool exceed {0} bytes")]
    SenderBytesLimit(usize),
    /// The pool is full and this transaction pays less than every one it could evict.
    #[error("txpool is full")]
    PoolFull,
    /// Reading the sender's account failed.
    #[error("state unavailable: {0}")]
    State(String),
    /// The sender may not transact (account permissioning).
    #[error("Sender account not authorized to send transactions: {sender} is not on the Account Allowlist")]
    SenderNotAuthorized {
        /// The sender.
        sender: Address,
    },
    /// The account permissioning contract could not answer.
    #[error("account permissioning check failed: {0}")]
    PermissionCheckFailed(String),
}

impl PoolError {
    /// Besu's `TransactionInvalidReason` name, the `reason` label of
    /// `besu_transaction_pool_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            PoolError::Decode(_) => "INVALID_TRANSACTION_FORMAT",
            PoolError::AlreadyKnown => "TRANSACTION_ALREADY_KNOWN",
            PoolError::NonceTooLow { .. } => "NONCE_TOO_LOW",
            PoolError::NonceTooFarInFuture { .. } => "NONCE_TOO_FAR_IN_FUTURE_FOR_SENDER",
            PoolError::ReplacementUnderpriced => "REPLACEMENT_UNDERPRICED",
            PoolError::InsufficientFunds { .. } => "UPFRONT_COST_EXCEEDS_BALANCE",
            PoolError::IntrinsicGasTooLow { .. } => "INTRINSIC_GAS_EXCEEDS_GAS_LIMIT",
            PoolError::ExceedsBlockGasLimit => "EXCEEDS_BLOCK_GAS_LIMIT",
            PoolError::InvalidSender(_) => "INVALID_SIGNATURE",
            PoolError::WrongChainId(_) => "WRONG_CHAIN_ID",
            PoolError::Underpriced { .. } => "GAS_PRICE_TOO_LOW",
            PoolError::TypeNotSupported(_) => "INVALID_TRANSACTION_FORMAT",
            PoolError::TipAboveFeeCap => "MAX_PRIORITY_FEE_PER_GAS_EXCEEDS_MAX_FEE_PER_GAS",
            PoolError::InitCodeTooLarge(_) => "INITCODE_TOO_LARGE",
            PoolError::NonceMax => "NONCE_OVERFLOW",
            PoolError::Oversized { .. } => "EXCEEDS_TRANSACTION_SIZE_LIMIT",
            PoolError::SenderLimit(_) | PoolError::SenderBytesLimit(_) => {
                "TX_POOL_SENDER_LIMIT_REACHED"
            }
            PoolError::PoolFull => "TX_POOL_FULL",
            PoolError::State(_) => "INTERNAL_ERROR",
            PoolError::SenderNotAuthorized { .. } => "TX_SENDER_NOT_AUTHORIZED",
            PoolError::PermissionCheckFailed(_) => "CHAIN_HEAD_WORLD_STATE_NOT_AVAILABLE",
        }
    }
}

impl From<TxValidationError> for PoolError {
    fn from(e: TxValidationError) -> Self {
        match e {
            TxValidationError::Decode(m) => PoolError::Decode(m),
            TxValidationError::TypeNotActive(ty, fork) => {
                PoolError::TypeNotSupported(format!("type {ty} is not active before {fork}"))
            }
            TxValidationError::ChainId(m) => PoolError::WrongChainId(m),
            TxValidationError::Signature(s) => PoolError::InvalidSender(s.to_string()),
            TxValidationError::IntrinsicGas {
                gas_limit,
                intrinsic,
            } => PoolError::IntrinsicGasTooLow {
                gas_limit,
                intrinsic,
            },
            TxValidationError::InitCodeTooLarge(n) => PoolError::InitCodeTooLarge(n),
            TxValidationError::TipAboveFeeCap => PoolError::TipAboveFeeCap,
            TxValidationError::NonceMax => PoolError::NonceMax,
        }
    }
}
