//! JSON-RPC errors with the codes and messages geth and Besu return, which clients match on.

use alloy_primitives::Bytes;
use consort_txpool::PoolError;
use jsonrpsee::types::ErrorObjectOwned;

/// Why a JSON-RPC call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Parameters are missing or malformed (-32602).
    #[error("{0}")]
    InvalidParams(String),
    /// The transaction pool rejected a transaction (-32000, geth's message).
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The call reverted (code 3, revert data in `data`).
    #[error("execution reverted{}", .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Reverted {
        /// The decoded `Error(string)` reason, if any.
        reason: Option<String>,
        /// The raw revert data.
        data: Bytes,
    },
    /// Execution failed for another reason (-32000).
    #[error("{0}")]
    Execution(String),
    /// The block or state asked for is unknown or outside the history window (-32000).
    #[error("{0}")]
    Unavailable(String),
    /// A query would exceed a bound (-32005).
    #[error("{0}")]
    LimitExceeded(String),
    /// A `perm_*` call failed (Besu's code and message).
    #[error(transparent)]
    Permissioning(#[from] consort_permissioning::AllowlistError),
    /// The method exists but not in this configuration (-32604, Besu's "Method not enabled").
    #[error("Method not enabled")]
    MethodNotEnabled,
    /// Anything else (-32603).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias for this crate.
pub type RpcResult<T> = Result<T, RpcError>;

impl RpcError {
    /// Besu's `RpcErrorType` name, the `errorType` label of `besu_rpc_errors_count_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            RpcError::InvalidParams(_) => "INVALID_PARAMS",
            RpcError::Pool(e) => e.reason(),
            RpcError::Reverted { .. } => "REVERT_ERROR",
            RpcError::Execution(_) => "EXECUTION_ERROR",
            RpcError::Unavailable(_) => "WORLD_STATE_UNAVAILABLE",
            RpcError::LimitExceeded(_) => "EXCEEDS_RPC_MAX_BLOCK_RANGE",
            RpcError::Permissioning(e) => e.kind(),
            RpcError::MethodNotEnabled => "METHOD_NOT_ENABLED",
            RpcError::Internal(_) => "INTERNAL_ERROR",
        }
    }

    fn code(&self) -> i32 {
        match self {
            RpcError::InvalidParams(_) => -32602,
            RpcError::Reverted { .. } => 3,
            RpcError::LimitExceeded(_) => -32005,
            RpcError::Internal(_) => -32603,
            RpcError::MethodNotEnabled => -32604,
            RpcError::Permissioning(e) => e.code(),
            RpcError::Pool(consort_txpool::PoolError::SenderNotAuthorized { .. }) => -32007,
            RpcError::Pool(consort_txpool::PoolError::PermissionCheckFailed(_)) => -32008,
            RpcError::Pool(_) | RpcError::Execution(_) | RpcError::Unavailable(_) => -32000,
        }
    }
}

impl From<RpcError> for ErrorObjectOwned {
    fn from(e: RpcError) -> Self {
        let data = match &e {
            RpcError::Reverted { data, .. } => Some(data.to_string()),
            _ => None,
        };
        ErrorObjectOwned::owned(e.code(), e.to_string(), data)
    }
}

impl From<consort_storage::StorageError> for RpcError {
    fn from(e: consort_storage::StorageError) -> Self {
        use consort_storage::StorageError as E;
        match e {
            E::StateUnavailable { .. } | E::ProofUnavailable { .. } => {
                RpcError::Unavailable(e.to_string())
            }
            other => RpcError::Internal(other.to_string()),
        }
    }
}

impl From<consort_txpool::SubmitError> for RpcError {
    fn from(e: consort_txpool::SubmitError) -> Self {
        use consort_txpool::SubmitError as E;
        match e {
            E::Poisoned => RpcError::Internal(e.to_string()),
            E::Head(e) => e.into(),
            E::Pool(e) => RpcError::Pool(e),
        }
    }
}

impl From<consort_evm::ExecutionError> for RpcError {
    fn from(e: consort_evm::ExecutionError) -> Self {
        match e {
            consort_evm::ExecutionError::InvalidTransaction { reason, .. } => {
                RpcError::Execution(reason)
            }
            consort_evm::ExecutionError::Storage(s) => RpcError::Unavailable(s.to_string()),
            e @ consort_evm::ExecutionError::Timeout { .. } => RpcError::Execution(e.to_string()),
            other => RpcError::Internal(other.to_string()),
        }
    }
}

/// Decodes Solidity's `Error(string)` revert payload.
pub fn revert_reason(data: &[u8]) -> Option<String> {
    let body = data.strip_prefix(&[0x08, 0xc3, 0x79, 0xa0])?;
    let word = |i: usize| -> Option<usize> {
        let w = body.get(i * 32..i * 32 + 32)?;
        if w.get(..24)?.iter().any(|b| *b != 0) {
            return None;
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(w.get(24..)?);
        usize::try_from(u64::from_be_bytes(n)).ok()
    };
    let offset = word(0)?;
    let len_word = body.get(offset..offset.checked_add(32)?)?;
    if len_word.get(..24)?.iter().any(|b| *b != 0) {
        return None;
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(len_word.get(24..)?);
    let len = usize::try_from(u64::from_be_bytes(n)).ok()?;
    let start = offset.checked_add(32)?;
    let text = body.get(start..start.checked_add(len)?)?;
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revert_reasons_decode_and_garbage_does_not() {
        // Error("insufficient balance")
        let reason = b"insufficient balance";
        let mut data = vec![0x08, 0xc3, 0x79, 0xa0];
        data.extend_from_slice(&[0u8; 31]);
        data.push(0x20);
        data.extend_from_slice(&[0u8; 31]);
        data.push(reason.len() as u8);
        data.extend_from_slice(reason);
        data.extend_from_slice(&[0u8; 12]);
        assert_eq!(
            revert_reason(&data).as_deref(),
            Some("insufficient balance")
        );
        for bad in [
            &[][..],
            &[0x08, 0xc3, 0x79, 0xa0],
            &data[..40],
            &[1, 2, 3, 4, 5],
        ] {
            assert_eq!(revert_reason(bad), None);
        }
        let e = RpcError::Reverted {
            reason: Some("no".into()),
            data: Bytes::new(),
        };
        assert_eq!(e.to_string(), "execution reverted: no");
        assert_eq!(ErrorObjectOwned::from(e).code(), 3);
    }
}
