use alloy_primitives::{keccak256, Address, B256, U256};
use consort_primitives::KECCAK_EMPTY;
use consort_storage::{StateView, StorageError};
use revm::database_interface::{DBErrorMarker, DatabaseRef};
use revm::state::{AccountInfo, Bytecode};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

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

/// How much contract code the analysed-code cache holds, counted in code bytes.
const CODE_CACHE_BYTES: usize = 4 << 20;

/// Analysed contract code by code hash, least recently used first out once it holds more
/// than [`CODE_CACHE_BYTES`]. Code is addressed by its hash, so an entry is right for every
/// block and every view: `eth_call` and `eth_estimateGas` skip the jump-destination
/// analysis (a pass over the whole contract) of the contracts they ran before.
#[derive(Debug)]
struct CodeCache {
    entries: lru::LruCache<B256, Bytecode>,
    bytes: usize,
}

static CODE_CACHE: LazyLock<Mutex<CodeCache>> = LazyLock::new(|| Mutex::new(CodeCache::new()));

fn code_cache() -> MutexGuard<'static, CodeCache> {
    CODE_CACHE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CodeCache {
    fn new() -> Self {
        Self {
            entries: lru::LruCache::unbounded(),
            bytes: 0,
        }
    }

    fn get(&mut self, hash: &B256) -> Option<Bytecode> {
        self.entries.get(hash).cloned()
    }

    fn put(&mut self, hash: B256, code: Bytecode) {
        let len = code.len();
        if len > CODE_CACHE_BYTES {
            return;
        }
        if let Some(old) = self.entries.put(hash, code) {
            self.bytes = self.bytes.saturating_sub(old.len());
        }
        self.bytes = self.bytes.saturating_add(len);
        while self.bytes > CODE_CACHE_BYTES {
            let Some((_, evicted)) = self.entries.pop_lru() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(evicted.len());
        }
    }
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
        if let Some(code) = code_cache().get(&code_hash) {
            return Ok(code);
        }
        let raw = self
            .view
            .code(&code_hash)?
            .ok_or(DbError::MissingCode(code_hash))?;
        let code = bytecode(raw);
        code_cache().put(code_hash, code.clone());
        Ok(code)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(seed: u8, len: usize) -> (B256, Bytecode) {
        // JUMPDEST, then PUSH1s: the analysis marks the first byte only.
        let mut raw = vec![0x5b];
        raw.extend((1..len).map(|i| if i % 2 == 1 { 0x60 } else { seed }));
        let raw = alloy_primitives::Bytes::from(raw);
        (keccak256(&raw), bytecode(raw))
    }

    #[test]
    fn the_code_cache_answers_what_analysis_would_and_stays_within_its_bytes() {
        let mut cache = CodeCache::new();
        let (hash, code) = contract(1, 1_000);
        cache.put(hash, code.clone());
        let cached = cache.get(&hash).unwrap();
        assert_eq!(cached, code);
        assert_eq!(cached.legacy_jump_table(), code.legacy_jump_table());
        // The same code again does not count twice.
        cache.put(hash, code.clone());
        assert_eq!(cache.bytes, code.len());

        // 24 KB contracts until far past the bound: the oldest go, the newest stay.
        let mut hashes = Vec::new();
        for seed in 0..=255u8 {
            let (hash, code) = contract(seed, 24 * 1024);
            cache.put(hash, code);
            hashes.push(hash);
            assert!(cache.bytes <= CODE_CACHE_BYTES, "{} bytes", cache.bytes);
        }
        let total: usize = cache.entries.iter().map(|(_, c)| c.len()).sum();
        assert_eq!(total, cache.bytes);
        assert!(cache.get(&hashes[255]).is_some());
        assert!(cache.get(&hashes[0]).is_none());
        // Code larger than the whole cache is not kept.
        let (hash, code) = contract(7, CODE_CACHE_BYTES + 1);
        cache.put(hash, code);
        assert!(cache.get(&hash).is_none());
    }
}
