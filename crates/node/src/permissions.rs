//! Setting up permissioning from the command line and plugging it into the pool.

use crate::{NodeArgs, NodeError};
use alloy_primitives::Address;
use consort_chainspec::Genesis;
use consort_network::Enode;
use consort_permissioning::{
    ContractReader, NodeContractVersion, PermissioningMetrics, Permissions, PermissionsConfig,
    Purpose, TxFacts, TxRefusal,
};
use consort_primitives::TxEnvelope;
use consort_storage::Store;
use consort_txpool::{Admission, PoolError};
use std::sync::Arc;

/// The rules the flags ask for, or `None` when no permissioning is enabled.
pub(crate) fn setup(
    args: &NodeArgs,
    store: &Arc<Store>,
    genesis: &Arc<Genesis>,
    registry: &consort_metrics::Registry,
    static_nodes: &[Enode],
) -> Result<Option<Arc<Permissions>>, NodeError> {
    args.warn_about_permissions();
    args.check_permissions()
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let nodes_contract = match (
        args.permissions_nodes_contract_enabled,
        args.permissions_nodes_contract_address,
    ) {
        (true, Some(address)) => {
            let version = match args.permissions_nodes_contract_version {
                1 => NodeContractVersion::V1,
                _ => NodeContractVersion::V2,
            };
            Some((address, version))
        }
        _ => None,
    };
    let accounts_contract: Option<Address> = args
        .permissions_accounts_contract_address
        .filter(|_| args.permissions_accounts_contract_enabled);
    let local = args.local_permissions();
    if local.nodes_file.is_none()
        && local.accounts_file.is_none()
        && nodes_contract.is_none()
        && accounts_contract.is_none()
    {
        return Ok(None);
    }
    let metrics = PermissioningMetrics::new(registry)?;
    let config = PermissionsConfig {
        local,
        nodes_contract,
        accounts_contract,
        bootnodes: args.bootnodes.clone(),
        static_nodes: static_nodes.to_vec(),
    };
    let reader = ContractReader {
        store: store.clone(),
        genesis: genesis.clone(),
    };
    let permissions =
        Permissions::new(config, reader, metrics).map_err(|e| NodeError::Config(e.to_string()))?;
    Ok(Some(Arc::new(permissions)))
}

/// The pool's door: a transaction enters only from a sender the rules permit on the head.
#[derive(Debug)]
pub(crate) struct PoolAdmission {
    pub(crate) permissions: Arc<Permissions>,
    pub(crate) store: Arc<Store>,
}

impl Admission for PoolAdmission {
    fn admit(&self, tx: &TxEnvelope, sender: Address) -> Result<(), PoolError> {
        let head = self
            .store
            .head_header()
            .map_err(|e| PoolError::State(e.to_string()))?;
        match self
            .permissions
            .check_transaction(&TxFacts::of(tx, sender), Purpose::Pool, &head)
        {
            Ok(()) => Ok(()),
            Err(TxRefusal::NotPermitted { sender }) => {
                Err(PoolError::SenderNotAuthorized { sender })
            }
            Err(e @ TxRefusal::CheckFailed(_)) => {
                Err(PoolError::PermissionCheckFailed(e.to_string()))
            }
        }
    }
}
