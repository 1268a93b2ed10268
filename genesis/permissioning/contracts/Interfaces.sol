// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// The views the permissioning contracts need of one another. Every function here is `view`, so
/// Solidity reaches it with STATICCALL: an authorisation check or a rules lookup can never write
/// state or re-enter a mutating function.

interface IAdmin {
    function isAuthorized(address account) external view returns (bool);
}

interface IIngress {
    function RULES_CONTRACT() external view returns (bytes32);
    function ADMIN_CONTRACT() external view returns (bytes32);
    function getContractAddress(bytes32 name) external view returns (address);
    function isAuthorized(address account) external view returns (bool);
}

/// Implemented by both NodeIngress and AccountIngress; only the rules contract registered under
/// "rules" may call it.
interface IRulesChangeSink {
    function emitRulesChangeEvent(bool addsRestrictions) external;
}

interface INodeRules {
    function connectionAllowed(string calldata enodeId, string calldata enodeIp, uint16 enodePort)
        external
        view
        returns (bool);
}

interface IAccountRules {
    function transactionAllowed(
        address sender,
        address target,
        uint256 value,
        uint256 gasPrice,
        uint256 gasLimit,
        bytes calldata payload
    ) external view returns (bool);
}
