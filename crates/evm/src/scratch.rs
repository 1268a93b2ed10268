//! A scratch chain: an empty in-memory state that runs contract creations and calls, so a
//! genesis `alloc` can be made of contracts whose constructors really ran.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use revm::context::result::ExecutionResult;
use revm::context::TxEnv;
use revm::database::{CacheDB, EmptyDB};
use revm::primitives::hardfork::SpecId;
use revm::state::Bytecode;
use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};
use std::collections::BTreeMap;

/// Gas of each scratch transaction.
const SCRATCH_GAS: u64 = 30_000_000;

/// An account a scratch chain left: what a genesis `alloc` entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchAccount {
    /// Runtime code.
    pub code: Bytes,
    /// Non-zero storage slots.
    pub storage: BTreeMap<U256, U256>,
    /// Nonce.
    pub nonce: u64,
}

/// An empty state that transactions run on, with no fees, no balances and no block.
#[derive(Debug, Default)]
pub struct Scratch {
    db: CacheDB<EmptyDB>,
    nonces: BTreeMap<Address, u64>,
}

impl Scratch {
    /// An empty scratch state.
    pub fn new() -> Self {
        Self::default()
    }

    fn run(&mut self, from: Address, kind: TxKind, data: Bytes) -> Result<ExecutionResult, String> {
        let nonce = self.nonces.get(&from).copied().unwrap_or(0);
        let mut cfg = revm::context::CfgEnv::new_with_spec(SpecId::CANCUN);
        cfg.disable_balance_check = true;
        cfg.disable_base_fee = true;
        cfg.disable_nonce_check = true;
        cfg.disable_block_gas_limit = true;
        let tx = TxEnv {
            caller: from,
            gas_limit: SCRATCH_GAS,
            kind,
            data,
            nonce,
            ..Default::default()
        };
        let mut evm = Context::mainnet()
            .with_db(&mut self.db)
            .with_cfg(cfg)
            .build_mainnet();
        let result = evm.transact_commit(tx).map_err(|e| e.to_string())?;
        self.nonces.insert(from, nonce.saturating_add(1));
        match result {
            r @ ExecutionResult::Success { .. } => Ok(r),
            ExecutionResult::Revert { output, .. } => Err(format!("reverted: {output}")),
            ExecutionResult::Halt { reason, .. } => Err(format!("halted: {reason:?}")),
        }
    }

    /// Runs creation code `init` (constructor arguments appended) from `from`; returns the new
    /// contract's address.
    pub fn create(&mut self, from: Address, init: Bytes) -> Result<Address, String> {
        let nonce = self.nonces.get(&from).copied().unwrap_or(0);
        self.run(from, TxKind::Create, init)?;
        Ok(from.create(nonce))
    }

    /// Calls `to` with `data` from `from`, keeping what it changes; returns the output.
    pub fn call(&mut self, from: Address, to: Address, data: Bytes) -> Result<Bytes, String> {
        match self.run(from, TxKind::Call(to), data)? {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            _ => Err("no output".into()),
        }
    }

    /// Moves the contract at `from` (code and storage) to `to`, as if deployed there.
    pub fn relocate(&mut self, from: Address, to: Address) -> Result<(), String> {
        let account = self
            .db
            .cache
            .accounts
            .remove(&from)
            .ok_or_else(|| format!("nothing deployed at {from}"))?;
        self.db.cache.accounts.insert(to, account);
        Ok(())
    }

    /// The contracts the scratch state holds (accounts with code), by address.
    pub fn contracts(&self) -> BTreeMap<Address, ScratchAccount> {
        let mut out = BTreeMap::new();
        for (address, account) in &self.db.cache.accounts {
            let code = account
                .info
                .code
                .clone()
                .or_else(|| {
                    self.db
                        .cache
                        .contracts
                        .get(&account.info.code_hash)
                        .cloned()
                })
                .map(|c: Bytecode| c.original_bytes())
                .unwrap_or_default();
            if code.is_empty() {
                continue;
            }
            let storage = account
                .storage
                .iter()
                .filter(|(_, v)| !v.is_zero())
                .map(|(k, v)| (*k, *v))
                .collect();
            out.insert(
                *address,
                ScratchAccount {
                    code,
                    storage,
                    nonce: account.info.nonce,
                },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constructor_runs_and_its_storage_and_code_are_kept() {
        // Constructor: SSTORE(0, 42); return runtime `PUSH1 0 SLOAD PUSH1 0 MSTORE PUSH1 32
        // PUSH1 0 RETURN` (returns slot 0).
        let runtime = alloy_primitives::hex!("60005460005260206000f3").to_vec();
        let mut init = alloy_primitives::hex!("602a600055").to_vec();
        // CODECOPY the runtime (11 bytes at offset 17) to memory 0 and return it.
        init.extend(alloy_primitives::hex!("600b6011600039600b6000f3"));
        assert_eq!(init.len(), 17);
        init.extend(&runtime);
        let mut scratch = Scratch::new();
        let deployer = Address::repeat_byte(7);
        let at = scratch.create(deployer, init.into()).unwrap();
        assert_eq!(at, deployer.create(0));
        let out = scratch.call(deployer, at, Bytes::new()).unwrap();
        assert_eq!(U256::from_be_slice(&out), U256::from(42));
        let moved = Address::repeat_byte(9);
        scratch.relocate(at, moved).unwrap();
        let contracts = scratch.contracts();
        let c = &contracts[&moved];
        assert_eq!(c.code.as_ref(), runtime.as_slice());
        assert_eq!(c.storage[&U256::ZERO], U256::from(42));
        assert!(!contracts.contains_key(&at));
        assert!(scratch.call(deployer, at, Bytes::new()).unwrap().is_empty());
    }
}
