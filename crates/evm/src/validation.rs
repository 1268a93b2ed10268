//! Stateless transaction checks: decoding, fork support, signature, intrinsic gas and size
//! limits. What the transaction pool applies before anything touches state.

use crate::spec::spec_id;
use alloy_consensus::Transaction;
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::Address;
use consort_chainspec::Hardfork;
use consort_primitives::{recover_signer, TxEnvelope};
use revm::context_interface::cfg::gas::calculate_initial_tx_gas;

/// EIP-3860 limit on init code size (twice EIP-170's code size limit).
pub const MAX_INITCODE_SIZE: usize = 2 * 24_576;

/// Why a raw transaction is not valid on its own.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxValidationError {
    /// The bytes are not a transaction.
    #[error("transaction could not be decoded: {0}")]
    Decode(String),
    /// The transaction type is not active at this fork.
    #[error("transaction type {0} is not supported before {1}")]
    TypeNotActive(u8, Hardfork),
    /// EIP-155 replay protection used before Spurious Dragon, or a chain id other than this chain's.
    #[error("invalid chain id: {0}")]
    ChainId(String),
    /// The signature does not recover a sender.
    #[error(transparent)]
    Signature(#[from] consort_primitives::SignerError),
    /// The gas limit does not cover the intrinsic gas.
    #[error("intrinsic gas too low: gas limit {gas_limit} is below the intrinsic gas {intrinsic}")]
    IntrinsicGas {
        /// The transaction's gas limit.
        gas_limit: u64,
        /// What it must at least pay.
        intrinsic: u64,
    },
    /// Init code exceeds EIP-3860's limit.
    #[error("max initcode size exceeded: {0} bytes")]
    InitCodeTooLarge(usize),
    /// The tip cap exceeds the fee cap.
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    /// The nonce is at its maximum (EIP-2681).
    #[error("nonce has max value")]
    NonceMax,
}

/// A transaction that passed the stateless checks.
#[derive(Debug, Clone)]
pub struct ValidTransaction {
    /// The decoded transaction.
    pub tx: TxEnvelope,
    /// Its recovered sender.
    pub sender: Address,
    /// Its intrinsic gas at the fork it was checked for.
    pub intrinsic_gas: u64,
}

/// Intrinsic gas of a transaction under `fork` (with EIP-7623's floor from Prague).
pub fn intrinsic_gas(tx: &TxEnvelope, fork: Hardfork) -> u64 {
    let (accounts, keys) = tx.access_list().map_or((0, 0), |l| {
        (
            l.len() as u64,
            l.iter().map(|i| i.storage_keys.len() as u64).sum(),
        )
    });
    let auths = tx.authorization_list().map_or(0, |a| a.len() as u64);
    let gas = calculate_initial_tx_gas(
        spec_id(fork),
        tx.input(),
        tx.kind().is_create(),
        accounts,
        keys,
        auths,
        None,
    );
    gas.initial_regular_gas
        .saturating_add(gas.initial_state_gas)
        .max(gas.floor_gas)
}

/// Decodes an EIP-2718 transaction and applies every check that needs no state.
pub fn validate_raw_transaction(
    raw: &[u8],
    fork: Hardfork,
    chain_id: u64,
) -> Result<ValidTransaction, TxValidationError> {
    let mut buf = raw;
    let tx =
        TxEnvelope::decode_2718(&mut buf).map_err(|e| TxValidationError::Decode(e.to_string()))?;
    if !buf.is_empty() {
        return Err(TxValidationError::Decode(format!(
            "{} trailing bytes",
            buf.len()
        )));
    }
    validate_transaction(tx, fork, chain_id)
}

/// Applies every check that needs no state to a decoded transaction.
pub fn validate_transaction(
    tx: TxEnvelope,
    fork: Hardfork,
    chain_id: u64,
) -> Result<ValidTransaction, TxValidationError> {
    let required = match tx {
        TxEnvelope::Legacy(_) => Hardfork::Frontier,
        TxEnvelope::Eip2930(_) => Hardfork::Berlin,
        TxEnvelope::Eip1559(_) => Hardfork::London,
        TxEnvelope::Eip4844(_) => Hardfork::Cancun,
        TxEnvelope::Eip7702(_) => Hardfork::Prague,
    };
    if fork < required {
        return Err(TxValidationError::TypeNotActive(
            alloy_eips::Typed2718::ty(&tx),
            required,
        ));
    }
    match tx.chain_id() {
        Some(id) if id != chain_id => {
            return Err(TxValidationError::ChainId(format!(
                "{id}, this chain is {chain_id}"
            )))
        }
        Some(_) if matches!(tx, TxEnvelope::Legacy(_)) && fork < Hardfork::SpuriousDragon => {
            return Err(TxValidationError::ChainId(
                "EIP-155 signatures are not valid before Spurious Dragon".into(),
            ))
        }
        _ => {}
    }
    if tx.nonce() == u64::MAX {
        return Err(TxValidationError::NonceMax);
    }
    if let Some(tip) = tx.max_priority_fee_per_gas() {
        if tip > tx.max_fee_per_gas() {
            return Err(TxValidationError::TipAboveFeeCap);
        }
    }
    if fork >= Hardfork::Shanghai && tx.kind().is_create() && tx.input().len() > MAX_INITCODE_SIZE {
        return Err(TxValidationError::InitCodeTooLarge(tx.input().len()));
    }
    let intrinsic = intrinsic_gas(&tx, fork);
    if tx.gas_limit() < intrinsic {
        return Err(TxValidationError::IntrinsicGas {
            gas_limit: tx.gas_limit(),
            intrinsic,
        });
    }
    let sender = if fork >= Hardfork::Homestead {
        recover_signer(&tx)?
    } else {
        // Frontier accepted signatures with a high s value.
        consort_primitives::recover_address_unchecked_s(tx.signature_hash(), tx.signature())?
    };
    Ok(ValidTransaction {
        tx,
        sender,
        intrinsic_gas: intrinsic,
    })
}
