// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {Ingress} from "./Ingress.sol";
import {INodeRules} from "./Interfaces.sol";

/// Node permissioning entry point, placed at 0x0000000000000000000000000000000000009999 and
/// called by the node (interface version 2) as
/// `connectionAllowed(string enodeId, string enodeIp, uint16 enodePort)`, once per endpoint.
contract NodeIngress is Ingress {
    event NodePermissionsUpdated(bool addsRestrictions);

    /// False (deny everyone) while no rules contract is registered; otherwise the registered
    /// rules contract's answer (reached with STATICCALL; a revert there propagates).
    function connectionAllowed(string calldata enodeId, string calldata enodeIp, uint16 enodePort)
        external
        view
        returns (bool)
    {
        address rules = registry[RULES_CONTRACT()];
        if (rules == address(0)) {
            return false;
        }
        return INodeRules(rules).connectionAllowed(enodeId, enodeIp, enodePort);
    }

    function emitRulesChangeEvent(bool addsRestrictions) external {
        address rules = registry[RULES_CONTRACT()];
        require(rules != address(0) && msg.sender == rules, "Only the registered rules contract may emit rules change events");
        emit NodePermissionsUpdated(addsRestrictions);
    }
}
