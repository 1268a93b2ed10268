// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {Ingress} from "./Ingress.sol";
import {IAccountRules} from "./Interfaces.sol";

/// Account permissioning entry point, placed at 0x0000000000000000000000000000000000008888 and
/// called by the node as `transactionAllowed(sender, target, value, gasPrice, gasLimit, payload)`.
contract AccountIngress is Ingress {
    event AccountPermissionsUpdated(bool addsRestrictions);

    /// True (allow everyone) while no rules contract is registered; otherwise the registered
    /// rules contract's answer (reached with STATICCALL; a revert there propagates).
    function transactionAllowed(
        address sender,
        address target,
        uint256 value,
        uint256 gasPrice,
        uint256 gasLimit,
        bytes calldata payload
    ) external view returns (bool) {
        address rules = registry[RULES_CONTRACT()];
        if (rules == address(0)) {
            return true;
        }
        return IAccountRules(rules).transactionAllowed(sender, target, value, gasPrice, gasLimit, payload);
    }

    function emitRulesChangeEvent(bool addsRestrictions) external {
        address rules = registry[RULES_CONTRACT()];
        require(rules != address(0) && msg.sender == rules, "Only the registered rules contract may emit rules change events");
        emit AccountPermissionsUpdated(addsRestrictions);
    }
}
