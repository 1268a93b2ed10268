//! Writing a genesis allocation into an empty store.

use alloy_primitives::{keccak256, B256};
use consort_chainspec::Genesis;
use consort_primitives::{Header, KECCAK_EMPTY};
use consort_storage::{Account, AccountChange, StateChanges, StorageError, Store};

/// Why a store could not be initialized with a genesis.
#[derive(Debug, thiserror::Error)]
pub enum GenesisInitError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The store already holds a different chain.
    #[error(
        "the database holds a chain with genesis {found}, not {expected}: use another --data-path"
    )]
    OtherChain {
        /// This genesis file's hash.
        expected: B256,
        /// The stored genesis hash.
        found: B256,
    },
    /// The stored state root disagrees with the one computed in memory.
    #[error("genesis state root {stored} differs from the computed {computed}")]
    StateRoot {
        /// Root written through storage.
        stored: B256,
        /// Root computed from the file.
        computed: B256,
    },
}

/// The genesis allocation as state changes.
pub fn genesis_changes(genesis: &Genesis) -> StateChanges {
    let mut changes = StateChanges::default();
    for (address, account) in &genesis.alloc {
        let code_hash = if account.code.is_empty() {
            KECCAK_EMPTY
        } else {
            keccak256(&account.code)
        };
        if !account.code.is_empty() {
            changes.code.insert(code_hash, account.code.clone());
        }
        changes.accounts.insert(
            *address,
            AccountChange {
                account: Some(Account {
                    nonce: account.nonce,
                    balance: account.balance,
                    code_hash,
                }),
                wipe_storage: false,
                storage: account
                    .storage
                    .iter()
                    .map(|(k, v)| ((*k).into(), *v))
                    .collect(),
            },
        );
    }
    changes
}

/// Writes the genesis block into an empty store, or checks that a non-empty store holds the
/// same chain. Returns the genesis header and hash.
pub fn init_genesis(store: &Store, genesis: &Genesis) -> Result<(Header, B256), GenesisInitError> {
    let header = genesis.header();
    let hash = header.hash_slow();
    if store.head()?.is_some() {
        let found = store.canonical_hash(0)?.unwrap_or_default();
        if found != hash {
            return Err(GenesisInitError::OtherChain {
                expected: hash,
                found,
            });
        }
        return Ok((header, hash));
    }
    let prepared = store.prepare_state(&genesis_changes(genesis))?;
    if prepared.state_root != header.state_root {
        return Err(GenesisInitError::StateRoot {
            stored: prepared.state_root,
            computed: header.state_root,
        });
    }
    store.commit_block(&header, hash, &[], &[], prepared)?;
    Ok((header, hash))
}
