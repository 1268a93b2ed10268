use alloy_primitives::{keccak256, Address, B256, U256};
use consort_primitives::KECCAK_EMPTY;
use consort_storage::{StateView, StorageError};
use revm::database_interface::{DBErrorMarker, DatabaseRef};
use revm::state::{AccountInfo, Bytecode};

/// A storage failure seen by revm.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An account names code the store does not have.
    #[error("code {0} is missing from the store")]
    MissingCode(B256),
}

impl DBErrorMarker for DbError {}

/// revm's view of consort's state at one block.
#[derive(Clone, Debug)]
pub struct StoreDb<'a> {
    view: StateView<'a>,
    /// State tests define BLOCKHASH(n) as keccak256 of n in decimal.
    test_block_hashes: bool,
}

impl<'a> StoreDb<'a> {
    /// Reads through `view`.
    pub fn new(view: StateView<'a>) -> Self {
        Self {
            view,
            test_block_hashes: false,
        }
    }

    /// Reads through `view`, answering BLOCKHASH as the state tests expect.
    pub fn for_state_tests(view: StateView<'a>) -> Self {
        Self {
            view,
            test_block_hashes: true,
        }
    }
}

pub(crate) fn bytecode(raw: alloy_primitives::Bytes) -> Bytecode {
    if raw.is_empty() {
        return Bytecode::new();
    }
    Bytecode::new_raw_checked(raw.clone()).unwrap_or_else(|_| Bytecode::new_legacy(raw))
}

impl DatabaseRef for StoreDb<'_> {
    type Error = DbError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.view.basic_account(&address)?.map(|a| AccountInfo {
            balance: a.balance,
            nonce: a.nonce,
            code_hash: a.code_hash,
            code: (a.code_hash == KECCAK_EMPTY).then(Bytecode::new),
            ..Default::default()
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::new());
        }
        let raw = self
            .view
            .code(&code_hash)?
            .ok_or(DbError::MissingCode(code_hash))?;
        Ok(bytecode(raw))
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self.view.storage(&address, &index)?)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        if self.test_block_hashes {
            return Ok(keccak256(number.to_string()));
        }
        Ok(self.view.block_hash(number)?.unwrap_or_default())
    }
}
