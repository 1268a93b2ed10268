//! The genesis file and the genesis block built from it.

use crate::forks::{ForkSchedule, Hardfork};
use crate::json::{normalize_keys, parse_address, parse_b256, parse_hex, parse_u256, Obj};
use crate::qbft::QbftConfig;
use crate::{GenesisError, Result};
use alloy_primitives::{keccak256, Address, Bytes, B256, B64, U256};
use consort_primitives::{
    Header, QbftExtraData, TrieAccount, EMPTY_OMMER_ROOT_HASH, EMPTY_REQUESTS_HASH,
    EMPTY_ROOT_HASH, KECCAK_EMPTY,
};
use consort_trie::{MemoryNodeStore, Trie};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Base fee of a genesis block with London active when the file names none (EIP-1559).
const INITIAL_BASE_FEE: u64 = 1_000_000_000;

/// An account allocated at genesis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenesisAccount {
    /// Starting balance in wei.
    pub balance: U256,
    /// Starting nonce.
    pub nonce: u64,
    /// Contract code, empty for externally owned accounts.
    pub code: Bytes,
    /// Storage slots; zero values are dropped.
    pub storage: BTreeMap<B256, U256>,
}

/// A parsed Besu-format genesis file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    /// The chain id (`config.chainId`), 1 when absent as in Besu.
    pub chain_id: u64,
    /// Fork activations.
    pub forks: ForkSchedule,
    /// The QBFT configuration, if the chain runs QBFT.
    pub qbft: Option<QbftConfig>,
    /// `config.zeroBaseFee`: every block's base fee is zero.
    pub zero_base_fee: bool,
    /// `config.contractSizeLimit`: maximum deployed code size in bytes.
    pub contract_size_limit: Option<u64>,
    /// `config.evmStackSize`: maximum EVM stack depth.
    pub evm_stack_size: Option<u64>,
    /// Genesis header `nonce`.
    pub nonce: u64,
    /// Genesis header `timestamp`.
    pub timestamp: u64,
    /// Genesis header `extraData`.
    pub extra_data: Bytes,
    /// Genesis header `gasLimit`.
    pub gas_limit: u64,
    /// Genesis header `difficulty`.
    pub difficulty: U256,
    /// Genesis header `mixHash`.
    pub mix_hash: B256,
    /// Genesis header `coinbase`.
    pub coinbase: Address,
    /// Genesis header `number` (0 in practice).
    pub number: u64,
    /// Genesis header `gasUsed`.
    pub gas_used: u64,
    /// Genesis header `parentHash`.
    pub parent_hash: B256,
    /// Explicit `baseFeePerGas`.
    pub base_fee_per_gas: Option<u64>,
    /// Explicit `excessBlobGas`.
    pub excess_blob_gas: Option<u64>,
    /// Explicit `blobGasUsed`.
    pub blob_gas_used: Option<u64>,
    /// Explicit `parentBeaconBlockRoot`.
    pub parent_beacon_block_root: Option<B256>,
    /// Allocated accounts.
    pub alloc: BTreeMap<Address, GenesisAccount>,
}

impl Genesis {
    /// Reads and parses a genesis file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Parses genesis JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let value = normalize_keys(serde_json::from_str::<Value>(text)?);
        let root = Obj::root(&value)?;
        let empty = serde_json::Map::new();
        let config = root.object("config")?.unwrap_or(Obj {
            path: "config".into(),
            map: &empty,
        });
        let qbft = match config.object("qbft")? {
            Some(q) => Some(QbftConfig::parse(
                &q,
                config.object("transitions")?.as_ref(),
            )?),
            None => None,
        };
        let genesis = Genesis {
            chain_id: config.u64("chainid")?.unwrap_or(1),
            forks: ForkSchedule::parse(&config)?,
            qbft,
            zero_base_fee: config.bool("zerobasefee")?.unwrap_or(false),
            contract_size_limit: config.u64("contractsizelimit")?,
            evm_stack_size: config.u64("evmstacksize")?,
            nonce: root.u64("nonce")?.unwrap_or(0),
            timestamp: root.u64("timestamp")?.unwrap_or(0),
            extra_data: root.bytes("extradata")?.unwrap_or_default(),
            gas_limit: root
                .u64("gaslimit")?
                .ok_or_else(|| GenesisError::field("gaslimit", "is required"))?,
            difficulty: root.u256("difficulty")?.unwrap_or_default(),
            mix_hash: root.b256("mixhash")?.unwrap_or_default(),
            coinbase: root.address("coinbase")?.unwrap_or_default(),
            number: root.u64("number")?.unwrap_or(0),
            gas_used: root.u64("gasused")?.unwrap_or(0),
            parent_hash: root.b256("parenthash")?.unwrap_or_default(),
            base_fee_per_gas: root.u64("basefeepergas")?,
            excess_blob_gas: root.u64("excessblobgas")?,
            blob_gas_used: root.u64("blobgasused")?,
            parent_beacon_block_root: root.b256("parentbeaconblockroot")?,
            alloc: parse_alloc(&root)?,
        };
        if let Some(qbft) = &genesis.qbft {
            if matches!(
                qbft.genesis.validator_selection,
                crate::ValidatorSelection::BlockHeader
            ) {
                genesis.qbft_validators()?;
            }
        }
        Ok(genesis)
    }

    /// The fork active at genesis.
    pub fn genesis_fork(&self) -> Hardfork {
        self.forks.active_at(self.number, self.timestamp)
    }

    /// The validators named in the genesis extraData (QBFT chains).
    pub fn qbft_validators(&self) -> Result<Vec<Address>> {
        QbftExtraData::decode(&self.extra_data)
            .map(|e| e.validators)
            .map_err(|e| GenesisError::field("extradata", e.to_string()))
    }

    /// The state root of the allocation.
    pub fn state_root(&self) -> B256 {
        let mut trie = Trie::new(MemoryNodeStore::default(), EMPTY_ROOT_HASH);
        for (address, account) in &self.alloc {
            let leaf = TrieAccount {
                nonce: account.nonce,
                balance: account.balance,
                storage_root: storage_root(&account.storage),
                code_hash: if account.code.is_empty() {
                    KECCAK_EMPTY
                } else {
                    keccak256(&account.code)
                },
            };
            // Keys are distinct hashes and values non-empty: in-memory insertion cannot fail.
            let _ = trie.insert(keccak256(address).as_slice(), alloy_rlp::encode(leaf));
        }
        trie.root_hash()
    }

    /// The genesis block header, with the fields the forks active at genesis require.
    pub fn header(&self) -> Header {
        self.header_with_state_root(self.state_root())
    }

    /// The genesis header for an already computed state root.
    pub fn header_with_state_root(&self, state_root: B256) -> Header {
        let fork = self.genesis_fork();
        let base_fee = (fork >= Hardfork::London).then(|| {
            self.base_fee_per_gas.unwrap_or(if self.zero_base_fee {
                0
            } else {
                INITIAL_BASE_FEE
            })
        });
        let cancun = fork >= Hardfork::Cancun;
        Header {
            parent_hash: self.parent_hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: self.coinbase,
            state_root,
            transactions_root: EMPTY_ROOT_HASH,
            receipts_root: EMPTY_ROOT_HASH,
            logs_bloom: Default::default(),
            difficulty: self.difficulty,
            number: self.number,
            gas_limit: self.gas_limit,
            gas_used: self.gas_used,
            timestamp: self.timestamp,
            extra_data: self.extra_data.clone(),
            mix_hash: self.mix_hash,
            nonce: B64::from(self.nonce),
            base_fee_per_gas: base_fee,
            withdrawals_root: (fork >= Hardfork::Shanghai).then_some(EMPTY_ROOT_HASH),
            blob_gas_used: cancun.then(|| self.blob_gas_used.unwrap_or(0)),
            excess_blob_gas: cancun.then(|| self.excess_blob_gas.unwrap_or(0)),
            parent_beacon_block_root: cancun
                .then(|| self.parent_beacon_block_root.unwrap_or_default()),
            requests_hash: (fork >= Hardfork::Prague).then_some(EMPTY_REQUESTS_HASH),
            ..Default::default()
        }
    }

    /// The base fee of the child of `parent` (EIP-1559): `None` before London, 0 with
    /// `zeroBaseFee`, the initial 1 gwei on London's first block, otherwise derived from the
    /// parent's gas use.
    pub fn child_base_fee(&self, parent: &Header, child_timestamp: u64) -> Option<u64> {
        let number = parent.number.saturating_add(1);
        if !self
            .forks
            .is_active(Hardfork::London, number, child_timestamp)
        {
            return None;
        }
        if self.zero_base_fee {
            return Some(0);
        }
        match parent.base_fee_per_gas {
            None => Some(INITIAL_BASE_FEE),
            Some(_) => parent.next_block_base_fee(alloy_eips::eip1559::BaseFeeParams::ethereum()),
        }
    }

    /// What `consort genesis inspect` prints: hash, state root, chain id and fork schedule.
    pub fn summary(&self) -> Value {
        let header = self.header();
        let mut forks = serde_json::Map::new();
        for (fork, cond) in self.forks.iter() {
            let value = match cond {
                crate::ForkCondition::Block(b) => serde_json::json!({ "block": b }),
                crate::ForkCondition::Timestamp(t) => serde_json::json!({ "timestamp": t }),
            };
            forks.insert(fork.test_name().to_string(), value);
        }
        let mut out = serde_json::json!({
            "hash": header.hash_slow(),
            "stateRoot": header.state_root,
            "chainId": self.chain_id,
            "forks": forks,
            "genesisFork": self.genesis_fork().test_name(),
            "accounts": self.alloc.len(),
        });
        if let (Some(qbft), Some(map)) = (&self.qbft, out.as_object_mut()) {
            map.insert("consensus".into(), "qbft".into());
            map.insert(
                "blockPeriodSeconds".into(),
                qbft.genesis.block_period_seconds.into(),
            );
            if let Ok(validators) = self.qbft_validators() {
                map.insert("validators".into(), serde_json::json!(validators));
            }
        }
        out
    }
}

fn storage_root(storage: &BTreeMap<B256, U256>) -> B256 {
    if storage.is_empty() {
        return EMPTY_ROOT_HASH;
    }
    let mut trie = Trie::new(MemoryNodeStore::default(), EMPTY_ROOT_HASH);
    for (slot, value) in storage {
        let _ = trie.insert(keccak256(slot).as_slice(), alloy_rlp::encode(value));
    }
    trie.root_hash()
}

fn parse_alloc(root: &Obj<'_>) -> Result<BTreeMap<Address, GenesisAccount>> {
    let mut out = BTreeMap::new();
    let Some(alloc) = root.object("alloc")? else {
        return Ok(out);
    };
    for (key, value) in alloc.map {
        let field = format!("alloc.{key}");
        let address = parse_address(key).map_err(|r| GenesisError::field(&field, r))?;
        let map = value
            .as_object()
            .ok_or_else(|| GenesisError::field(&field, "expected an account object"))?;
        let obj = Obj {
            path: field.clone(),
            map,
        };
        let mut storage = BTreeMap::new();
        if let Some(slots) = obj.object("storage")? {
            for (slot, v) in slots.map {
                let name = format!("{field}.storage.{slot}");
                let slot = parse_b256(slot).map_err(|r| GenesisError::field(&name, r))?;
                let v = match v {
                    Value::String(s) => parse_b256(s).map(|b| U256::from_be_bytes(b.0)),
                    other => parse_u256(other),
                }
                .map_err(|r| GenesisError::field(&name, r))?;
                if !v.is_zero() {
                    storage.insert(slot, v);
                }
            }
        }
        let code = match obj.string("code")? {
            Some(s) => {
                Bytes::from(parse_hex(s).map_err(|r| GenesisError::field(obj.name("code"), r))?)
            }
            None => Bytes::new(),
        };
        let account = GenesisAccount {
            balance: obj.u256("balance")?.unwrap_or_default(),
            nonce: obj.u64("nonce")?.unwrap_or(0),
            code,
            storage,
        };
        if out.insert(address, account).is_some() {
            return Err(GenesisError::field(&field, "address allocated twice"));
        }
    }
    Ok(out)
}
