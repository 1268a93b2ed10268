// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {RulesBase} from "./RulesBase.sol";
import {IAccountRules} from "./Interfaces.sol";

/// The account allowlist: a transaction is allowed iff its sender is listed. The deployer is
/// listed by the constructor.
contract AccountRules is RulesBase, IAccountRules {
    address[] private allowlist; // enumeration order
    mapping(address => uint256) private indexOf; // 1-based position in allowlist; 0 = absent

    event AccountAdded(bool accountAdded, address accountAddress);
    event AccountRemoved(bool accountRemoved, address accountAddress);

    constructor(address ingressAddress) RulesBase(ingressAddress) {
        // The ingress may have no code yet, so no notification here.
        bool added = add(msg.sender);
        emit AccountAdded(added, msg.sender);
    }

    /// Only `sender` is checked; target, value, gas price, gas limit and payload are ignored.
    function transactionAllowed(
        address sender,
        address, /* target */
        uint256, /* value */
        uint256, /* gasPrice */
        uint256, /* gasLimit */
        bytes calldata /* payload */
    ) external view override returns (bool) {
        return indexOf[sender] != 0;
    }

    function accountPermitted(address account) public view returns (bool) {
        return indexOf[account] != 0;
    }

    /// Returns false (and emits AccountAdded(false, …)) if the account is already listed.
    function addAccount(address account) external onlyAdmin onlyOnEditMode returns (bool) {
        bool added = add(account);
        emit AccountAdded(added, account);
        if (added) {
            notifyIngress(false);
        }
        return added;
    }

    /// Adds each account, emitting AccountAdded per account. Returns true iff every account was
    /// newly added (duplicates, also within `accounts`, give false for the repeat).
    function addAccounts(address[] calldata accounts) external onlyAdmin onlyOnEditMode returns (bool) {
        bool allAdded = true;
        bool anyAdded = false;
        for (uint256 i = 0; i < accounts.length; i++) {
            bool added = add(accounts[i]);
            emit AccountAdded(added, accounts[i]);
            allAdded = allAdded && added;
            anyAdded = anyAdded || added;
        }
        if (anyAdded) {
            notifyIngress(false);
        }
        return allAdded;
    }

    /// Returns false (and emits AccountRemoved(false, …)) if the account is not listed.
    function removeAccount(address account) external onlyAdmin onlyOnEditMode returns (bool) {
        bool removed = remove(account);
        emit AccountRemoved(removed, account);
        if (removed) {
            notifyIngress(true);
        }
        return removed;
    }

    function getAccounts() external view returns (address[] memory) {
        return allowlist;
    }

    function getSize() external view returns (uint256) {
        return allowlist.length;
    }

    function getByIndex(uint256 index) external view returns (address account) {
        require(index < allowlist.length, "Index out of range");
        return allowlist[index];
    }

    function add(address account) private returns (bool) {
        if (indexOf[account] != 0) {
            return false;
        }
        allowlist.push(account);
        indexOf[account] = allowlist.length;
        return true;
    }

    function remove(address account) private returns (bool) {
        uint256 index = indexOf[account];
        if (index == 0) {
            return false;
        }
        uint256 last = allowlist.length;
        if (index != last) {
            address moved = allowlist[last - 1];
            allowlist[index - 1] = moved;
            indexOf[moved] = index;
        }
        allowlist.pop();
        delete indexOf[account];
        return true;
    }
}
