//! What executing a block changed in the state, in the form storage applies it.

use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_rlp::{RlpDecodable, RlpEncodable};
use std::collections::BTreeMap;

/// An account's fields other than its storage root.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Account {
    /// Transactions sent (or contracts created).
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// Hash of the account's code.
    pub code_hash: B256,
}

impl Account {
    /// An account with no code, nonce 0 and this balance.
    pub fn with_balance(balance: U256) -> Self {
        Self {
            nonce: 0,
            balance,
            code_hash: consort_primitives::KECCAK_EMPTY,
        }
    }
}

/// How one account changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// The account afterwards; `None` when it was deleted (self-destruct, EIP-161).
    pub account: Option<Account>,
    /// Whether all storage the account had before was cleared first.
    pub wipe_storage: bool,
    /// Slots written, with their new values; zero deletes a slot.
    pub storage: BTreeMap<U256, U256>,
}

/// Every state change of a block (or of a genesis allocation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateChanges {
    /// Changed accounts.
    pub accounts: BTreeMap<Address, AccountChange>,
    /// Code deployed, by hash.
    pub code: BTreeMap<B256, Bytes>,
}
