// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IIngress, IRulesChangeSink} from "./Interfaces.sol";

/// What NodeRules and AccountRules share: the ingress they answer to, the admin check made
/// through that ingress, read-only mode, and the change notification sent to the ingress.
abstract contract RulesBase {
    /// The ingress this rules contract serves (0x…9999 or 0x…8888). Kept in code (immutable), so
    /// it survives copying the runtime code + storage into a genesis alloc.
    address public immutable ingress;

    bool private readOnlyMode;

    constructor(address ingressAddress) {
        require(ingressAddress != address(0), "Ingress address must not be zero");
        ingress = ingressAddress;
    }

    /// An admin is whoever the ingress authorises: the registered admin contract's admins, or
    /// everyone while the ingress has no admin contract registered.
    modifier onlyAdmin() {
        require(ingress.code.length > 0, "Ingress contract not deployed");
        require(IIngress(ingress).isAuthorized(msg.sender), "Sender not authorized");
        _;
    }

    modifier onlyOnEditMode() {
        require(!readOnlyMode, "In read only mode: rules cannot be modified");
        _;
    }

    function isReadOnly() external view returns (bool) {
        return readOnlyMode;
    }

    function enterReadOnly() external onlyAdmin returns (bool) {
        require(!readOnlyMode, "Already in read only mode");
        readOnlyMode = true;
        return true;
    }

    function exitReadOnly() external onlyAdmin returns (bool) {
        require(readOnlyMode, "Not in read only mode");
        readOnlyMode = false;
        return true;
    }

    /// Tells the ingress that the rules changed. Called after the state change, and only when
    /// this contract is the ingress's registered rules contract (the ingress refuses anyone
    /// else), so entries can be loaded before the contract is registered.
    function notifyIngress(bool addsRestrictions) internal {
        IIngress registryView = IIngress(ingress);
        if (registryView.getContractAddress(registryView.RULES_CONTRACT()) == address(this)) {
            IRulesChangeSink(ingress).emitRulesChangeEvent(addsRestrictions);
        }
    }
}
