//! Allowlist contracts: Besu's on-chain permissioning interfaces (node rules v1 and v2, account
//! rules), their ABI encodings and result forms, called read-only through the evm crate.

use alloy_primitives::{Address, Bytes, B256, U256};
use consort_chainspec::Genesis;
use consort_evm::{CallLimits, CallRequest};
use consort_network::Enode;
use consort_primitives::Header;
use consort_storage::Store;
use std::net::IpAddr;
use std::time::Duration;

/// `connectionAllowed(bytes32,bytes32,bytes16,uint16,bytes32,bytes32,bytes16,uint16)`.
pub const NODE_V1_SELECTOR: [u8; 4] = [0x36, 0x20, 0xb1, 0xdf];
/// `connectionAllowed(string,string,uint16)`.
pub const NODE_V2_SELECTOR: [u8; 4] = [0x45, 0xa5, 0x9e, 0x5b];
/// `transactionAllowed(address,address,uint256,uint256,uint256,bytes)`.
pub const ACCOUNT_SELECTOR: [u8; 4] = [0x93, 0x64, 0x21, 0xd5];
/// `getContractAddress(bytes32)` of an ingress contract.
pub const GET_CONTRACT_ADDRESS_SELECTOR: [u8; 4] = [0x0d, 0x20, 0x20, 0xdd];
/// `setContractAddress(bytes32,address)` of an ingress contract.
pub const SET_CONTRACT_ADDRESS_SELECTOR: [u8; 4] = [0xe0, 0x01, 0xf8, 0x41];
/// `addEnode(string,string,uint16)` of the node rules.
pub const ADD_ENODE_SELECTOR: [u8; 4] = [0x39, 0xd6, 0xdd, 0x01];
/// `removeEnode(string,string,uint16)` of the node rules.
pub const REMOVE_ENODE_SELECTOR: [u8; 4] = [0x28, 0xa4, 0xa0, 0x78];
/// `addAccount(address)` of the account rules.
pub const ADD_ACCOUNT_SELECTOR: [u8; 4] = [0xe8, 0x9b, 0x0e, 0x1e];
/// `removeAccount(address)` of the account rules.
pub const REMOVE_ACCOUNT_SELECTOR: [u8; 4] = [0xc4, 0x74, 0x0a, 0x95];
/// `addAdmin(address)` of the admin list.
pub const ADD_ADMIN_SELECTOR: [u8; 4] = [0x70, 0x48, 0x02, 0x75];
/// `removeAdmin(address)` of the admin list.
pub const REMOVE_ADMIN_SELECTOR: [u8; 4] = [0x17, 0x85, 0xf5, 0x3c];
/// Topic of `NodePermissionsUpdated(bool)`, emitted by the node ingress when its rules change.
pub const NODE_PERMISSIONS_UPDATED: B256 = B256::new([
    0x66, 0x12, 0x0f, 0x93, 0x4b, 0x66, 0xd5, 0x21, 0x27, 0xe4, 0x48, 0xf8, 0xe9, 0x4c, 0x24, 0x60,
    0xea, 0x62, 0x82, 0x13, 0x35, 0xe0, 0xdd, 0x18, 0xe8, 0x9e, 0xd3, 0x8a, 0x4a, 0x09, 0xb4, 0x13,
]);
/// The node ingress of Besu's on-chain permissioning.
pub const DEFAULT_NODE_INGRESS: Address = Address::new([
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99, 0x99,
]);
/// The account ingress of Besu's on-chain permissioning.
pub const DEFAULT_ACCOUNT_INGRESS: Address = Address::new([
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x88,
]);
/// How long one permissioning call may run.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The node-rules interface a contract implements (`--permissions-nodes-contract-version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeContractVersion {
    /// EEA client spec v5: one call with both enodes as bytes32/bytes16 words, answering
    /// `0xff…ff` (permitted) or `0x7fff…ff` (denied).
    V1,
    /// EEA client spec v6: one call per enode with strings, answering a bool.
    V2,
}

impl TryFrom<u8> for NodeContractVersion {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            1 => Ok(NodeContractVersion::V1),
            2 => Ok(NodeContractVersion::V2),
            _ => Err("Invalid node Smart contract permissioning interface version".into()),
        }
    }
}

impl std::fmt::Display for NodeContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeContractVersion::V1 => "1",
            NodeContractVersion::V2 => "2",
        })
    }
}

/// Why a permissioning call gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// Nothing exists at the contract address in the state read.
    #[error("Permissioning contract does not exist at {0}")]
    Missing(Address),
    /// The call reverted or halted.
    #[error("{what} permissioning smart contract call failed: {reason}")]
    Failed {
        /// Which rules.
        what: &'static str,
        /// Revert or halt reason.
        reason: String,
    },
    /// The call returned something the interface does not allow.
    #[error("Unexpected result from {what} permissioning smart contract: 0x{output}")]
    Unexpected {
        /// Which rules.
        what: &'static str,
        /// The output, hex.
        output: String,
    },
    /// The state could not be read or executed.
    #[error("{what} permissioning smart contract call could not run: {reason}")]
    Execution {
        /// Which rules.
        what: &'static str,
        /// The failure.
        reason: String,
    },
}

/// What the account rules are told about a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxFacts {
    /// The sender.
    pub sender: Address,
    /// The recipient, `None` for a contract creation.
    pub to: Option<Address>,
    /// Value sent.
    pub value: U256,
    /// The legacy / EIP-2930 gas price; 0 for EIP-1559 and later types (as Besu).
    pub gas_price: u128,
    /// Gas limit.
    pub gas_limit: u64,
    /// Call data.
    pub input: Bytes,
}

impl TxFacts {
    /// The facts of a signed transaction from `sender`.
    pub fn of(tx: &consort_primitives::TxEnvelope, sender: Address) -> Self {
        use alloy_consensus::Transaction;
        let legacy_price = matches!(
            tx,
            consort_primitives::TxEnvelope::Legacy(_) | consort_primitives::TxEnvelope::Eip2930(_)
        );
        TxFacts {
            sender,
            to: tx.to(),
            value: tx.value(),
            gas_price: if legacy_price {
                tx.gas_price().unwrap_or_default()
            } else {
                0
            },
            gas_limit: tx.gas_limit(),
            input: tx.input().clone(),
        }
    }
}

fn word_u256(v: U256) -> [u8; 32] {
    v.to_be_bytes::<32>()
}

fn word_u64(v: u64) -> [u8; 32] {
    word_u256(U256::from(v))
}

fn word_address(a: Address) -> [u8; 32] {
    let mut w = [0u8; 32];
    if let Some(tail) = w.get_mut(12..) {
        tail.copy_from_slice(a.as_slice());
    }
    w
}

/// ABI `string`/`bytes` tail: length word, then the data padded to 32 bytes.
fn abi_dynamic(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&word_u64(data.len() as u64));
    out.extend_from_slice(data);
    let pad = (32 - data.len() % 32) % 32;
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// The host text Besu passes for an enode: dotted IPv4, or bracketed compact IPv6.
pub fn enode_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `connectionAllowed(string enodeId, string enodeIp, uint16 enodePort)` for one enode.
pub fn node_v2_payload(enode: &Enode) -> Vec<u8> {
    enode_call(NODE_V2_SELECTOR, enode)
}

/// A call taking `(string enodeId, string enodeIp, uint16 enodePort)`: Besu's v2 form of an
/// enode, with the ID in lower-case hex and the host as [`enode_host`] writes it.
pub fn enode_call(selector: [u8; 4], enode: &Enode) -> Vec<u8> {
    let id = hex::encode(enode.id);
    let host = enode_host(enode.addr.ip());
    let mut out = selector.to_vec();
    let id_tail = 32 + id.len().div_ceil(32) * 32;
    out.extend_from_slice(&word_u64(0x60));
    out.extend_from_slice(&word_u64(0x60 + id_tail as u64));
    out.extend_from_slice(&word_u64(u64::from(enode.addr.port())));
    abi_dynamic(&mut out, id.as_bytes());
    abi_dynamic(&mut out, host.as_bytes());
    out
}

/// A call taking one address.
pub fn address_call(selector: [u8; 4], address: Address) -> Vec<u8> {
    let mut out = selector.to_vec();
    out.extend_from_slice(&word_address(address));
    out
}

/// The `bytes32` an ingress registers a contract under ("rules", "administration").
pub fn contract_key(name: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    let bytes = name.as_bytes();
    let n = bytes.len().min(32);
    if let (Some(dst), Some(src)) = (key.get_mut(..n), bytes.get(..n)) {
        dst.copy_from_slice(src);
    }
    key
}

/// `setContractAddress(bytes32 name, address contract)` of an ingress.
pub fn set_contract_address_call(name: &str, contract: Address) -> Vec<u8> {
    let mut out = SET_CONTRACT_ADDRESS_SELECTOR.to_vec();
    out.extend_from_slice(&contract_key(name));
    out.extend_from_slice(&word_address(contract));
    out
}

/// `getContractAddress(bytes32 name)` of an ingress.
pub fn get_contract_address_call(name: &str) -> Vec<u8> {
    let mut out = GET_CONTRACT_ADDRESS_SELECTOR.to_vec();
    out.extend_from_slice(&contract_key(name));
    out
}

fn v1_enode(out: &mut Vec<u8>, enode: &Enode) {
    out.extend_from_slice(&enode.id);
    let ip16 = match enode.addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    out.extend_from_slice(&ip16);
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&word_u64(u64::from(enode.addr.port())));
}

/// The v1 `connectionAllowed` payload: both enodes as (high, low, ip, port) words.
pub fn node_v1_payload(source: &Enode, destination: &Enode) -> Vec<u8> {
    let mut out = NODE_V1_SELECTOR.to_vec();
    v1_enode(&mut out, source);
    v1_enode(&mut out, destination);
    out
}

/// `transactionAllowed(sender, target, value, gasPrice, gasLimit, payload)`, encoded as Besu
/// does: a payload whose length is a multiple of 32 (the empty one included) gets 32 more zero
/// bytes, which Solidity ignores.
pub fn account_payload(tx: &TxFacts) -> Vec<u8> {
    let mut out = ACCOUNT_SELECTOR.to_vec();
    out.extend_from_slice(&word_address(tx.sender));
    out.extend_from_slice(&word_address(tx.to.unwrap_or_default()));
    out.extend_from_slice(&word_u256(tx.value));
    out.extend_from_slice(&word_u256(U256::from(tx.gas_price)));
    out.extend_from_slice(&word_u64(tx.gas_limit));
    out.extend_from_slice(&word_u64(0xc0));
    out.extend_from_slice(&word_u64(tx.input.len() as u64));
    out.extend_from_slice(&tx.input);
    out.extend(std::iter::repeat_n(0u8, 32 - tx.input.len() % 32));
    out
}

/// Reads an ABI bool answer: exactly 32 bytes, `…01` or `…00`.
pub fn decode_bool(what: &'static str, output: &[u8]) -> Result<bool, ContractError> {
    let unexpected = || ContractError::Unexpected {
        what,
        output: hex::encode(output),
    };
    let word: [u8; 32] = output.try_into().map_err(|_| unexpected())?;
    match U256::from_be_bytes(word) {
        v if v == U256::from(1) => Ok(true),
        v if v.is_zero() => Ok(false),
        _ => Err(unexpected()),
    }
}

/// Reads a v1 node answer: `0xff…ff` permitted, `0x7fff…ff` denied, anything else an error.
pub fn decode_v1(output: &[u8]) -> Result<bool, ContractError> {
    let permitted = [0xffu8; 32];
    let mut denied = [0xffu8; 32];
    if let Some(first) = denied.first_mut() {
        *first = 0x7f;
    }
    if output == permitted {
        Ok(true)
    } else if output == denied {
        Ok(false)
    } else {
        Err(ContractError::Unexpected {
            what: "node",
            output: hex::encode(output),
        })
    }
}

/// The chain a contract is read from.
#[derive(Debug, Clone)]
pub struct ContractReader {
    /// The database.
    pub store: std::sync::Arc<Store>,
    /// The chain configuration.
    pub genesis: std::sync::Arc<Genesis>,
}

impl ContractReader {
    /// Whether an account exists at `address` in the state after `header` (Besu's check:
    /// existence, not code).
    pub fn exists(&self, header: &Header, address: Address) -> Result<bool, ContractError> {
        let view = self
            .store
            .state_at(header.number)
            .map_err(|e| ContractError::Execution {
                what: "permissioning",
                reason: e.to_string(),
            })?;
        view.account(&address)
            .map(|a| a.is_some())
            .map_err(|e| ContractError::Execution {
                what: "permissioning",
                reason: e.to_string(),
            })
    }

    /// Calls `to` with `data` on the state after `header`, as Besu's simulator does: from the
    /// zero address, gas up to the block's gas limit, no fees.
    pub fn call(
        &self,
        what: &'static str,
        header: &Header,
        to: Address,
        data: Vec<u8>,
    ) -> Result<Bytes, ContractError> {
        let req = CallRequest {
            to: Some(to),
            input: data.into(),
            gas: Some(header.gas_limit),
            ..CallRequest::default()
        };
        let limits = CallLimits {
            gas_cap: header.gas_limit,
            timeout: CALL_TIMEOUT,
        };
        let outcome = consort_evm::call(&self.store, &self.genesis, header, &req, &limits)
            .map_err(|e| ContractError::Execution {
                what,
                reason: e.to_string(),
            })?;
        if !outcome.success {
            let reason = if outcome.reverted {
                format!("reverted (0x{})", hex::encode(&outcome.output))
            } else {
                outcome.halt.unwrap_or_else(|| "halted".into())
            };
            return Err(ContractError::Failed { what, reason });
        }
        Ok(outcome.output)
    }

    /// The contract an ingress has registered under `name` ("rules", "administration"), if any.
    pub fn registered(&self, header: &Header, ingress: Address, name: &str) -> Option<Address> {
        let data = get_contract_address_call(name);
        let out = self.call("ingress", header, ingress, data).ok()?;
        let word = out.get(12..32)?;
        let address = Address::from_slice(word);
        (!address.is_zero()).then_some(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::keccak256;

    fn selector(signature: &str) -> [u8; 4] {
        let h = keccak256(signature.as_bytes());
        [h[0], h[1], h[2], h[3]]
    }

    #[test]
    fn selectors_are_the_keccak_of_the_signatures() {
        assert_eq!(
            selector(
                "connectionAllowed(bytes32,bytes32,bytes16,uint16,bytes32,bytes32,bytes16,uint16)"
            ),
            NODE_V1_SELECTOR
        );
        assert_eq!(
            selector("connectionAllowed(string,string,uint16)"),
            NODE_V2_SELECTOR
        );
        assert_eq!(
            selector("transactionAllowed(address,address,uint256,uint256,uint256,bytes)"),
            ACCOUNT_SELECTOR
        );
        assert_eq!(
            selector("getContractAddress(bytes32)"),
            GET_CONTRACT_ADDRESS_SELECTOR
        );
        assert_eq!(
            selector("setContractAddress(bytes32,address)"),
            SET_CONTRACT_ADDRESS_SELECTOR
        );
        assert_eq!(
            selector("addEnode(string,string,uint16)"),
            ADD_ENODE_SELECTOR
        );
        assert_eq!(
            selector("removeEnode(string,string,uint16)"),
            REMOVE_ENODE_SELECTOR
        );
        assert_eq!(selector("addAccount(address)"), ADD_ACCOUNT_SELECTOR);
        assert_eq!(selector("removeAccount(address)"), REMOVE_ACCOUNT_SELECTOR);
        assert_eq!(selector("addAdmin(address)"), ADD_ADMIN_SELECTOR);
        assert_eq!(selector("removeAdmin(address)"), REMOVE_ADMIN_SELECTOR);
        assert_eq!(
            keccak256("NodePermissionsUpdated(bool)".as_bytes()),
            NODE_PERMISSIONS_UPDATED
        );
    }

    fn enode(ip: &str, port: u16) -> Enode {
        // The generator point's x and y: a valid public key.
        let id = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
        format!("enode://{id}@{ip}:{port}").parse().unwrap()
    }

    #[test]
    fn the_v2_payload_is_the_standard_abi_encoding() {
        let p = node_v2_payload(&enode("10.0.0.1", 30303));
        assert_eq!(&p[..4], &NODE_V2_SELECTOR);
        let words: Vec<&[u8]> = p[4..].chunks(32).collect();
        assert_eq!(U256::from_be_slice(words[0]), U256::from(0x60));
        // 128 hex characters take 4 words after the length word.
        assert_eq!(U256::from_be_slice(words[1]), U256::from(0x60 + 32 + 128));
        assert_eq!(U256::from_be_slice(words[2]), U256::from(30303));
        assert_eq!(U256::from_be_slice(words[3]), U256::from(128));
        assert_eq!(
            &p[4 + 4 * 32..4 + 8 * 32],
            hex::encode(enode("10.0.0.1", 1).id).as_bytes()
        );
        assert_eq!(U256::from_be_slice(words[8]), U256::from(8));
        assert_eq!(&words[9][..8], b"10.0.0.1");
        assert!(words[9][8..].iter().all(|b| *b == 0));
        assert_eq!(p.len(), 4 + 10 * 32);
        let v6 = node_v2_payload(&enode("[2001:db8::1]", 1));
        assert!(v6.windows(13).any(|w| w == b"[2001:db8::1]"));
    }

    #[test]
    fn the_v1_payload_maps_ipv4_into_ipv6_and_left_aligns_it() {
        let a = enode("10.3.58.6", 30303);
        let p = node_v1_payload(&a, &a);
        assert_eq!(p.len(), 4 + 8 * 32);
        assert_eq!(&p[4..68], &a.id);
        let ip_word = &p[68..100];
        assert_eq!(
            &ip_word[..16],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 3, 58, 6]
        );
        assert_eq!(&ip_word[16..], &[0u8; 16]);
        assert_eq!(U256::from_be_slice(&p[100..132]), U256::from(30303));
    }

    #[test]
    fn the_account_payload_pads_as_besu_does() {
        let tx = TxFacts {
            sender: Address::repeat_byte(1),
            to: None,
            value: U256::from(5),
            gas_price: 7,
            gas_limit: 21_000,
            input: Bytes::new(),
        };
        let p = account_payload(&tx);
        // Six head words, the length word, then 32 zero bytes for the empty payload.
        assert_eq!(p.len(), 4 + 7 * 32 + 32);
        assert_eq!(&p[4 + 12..4 + 32], Address::repeat_byte(1).as_slice());
        assert_eq!(&p[4 + 32..4 + 64], &[0u8; 32]);
        assert_eq!(U256::from_be_slice(&p[4 + 160..4 + 192]), U256::from(0xc0));
        let three = account_payload(&TxFacts {
            input: Bytes::from(vec![1, 2, 3]),
            ..tx.clone()
        });
        assert_eq!(three.len(), 4 + 7 * 32 + 32);
        assert_eq!(&three[4 + 224..4 + 227], &[1, 2, 3]);
        let full = account_payload(&TxFacts {
            input: Bytes::from(vec![9; 32]),
            ..tx
        });
        assert_eq!(full.len(), 4 + 7 * 32 + 32 + 32);
    }

    #[test]
    fn answers_outside_the_interface_are_errors() {
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(decode_bool("node", &one), Ok(true));
        assert_eq!(decode_bool("node", &[0u8; 32]), Ok(false));
        one[31] = 2;
        assert!(decode_bool("node", &one).is_err());
        assert!(decode_bool("node", &[]).is_err());
        assert!(decode_bool("node", &[0u8; 64]).is_err());
        assert_eq!(decode_v1(&[0xff; 32]), Ok(true));
        let mut denied = [0xff; 32];
        denied[0] = 0x7f;
        assert_eq!(decode_v1(&denied), Ok(false));
        assert!(decode_v1(&[0u8; 32]).is_err());
        let mut abi_true = [0u8; 32];
        abi_true[31] = 1;
        assert!(
            decode_v1(&abi_true).is_err(),
            "an ABI true is an error in v1"
        );
    }
}
