// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IAdmin} from "./Interfaces.sol";

/// The admin list, registered in each ingress under "administration". Admins may change the
/// ingress registry, the rules contracts' lists, and this list. The deployer is the first admin.
/// An admin can neither add nor remove itself, so the list never becomes empty.
contract Admin is IAdmin {
    address[] private admins; // enumeration order
    mapping(address => uint256) private indexOf; // 1-based position in admins; 0 = absent

    event AdminAdded(bool adminAdded, address account, string message);
    event AdminRemoved(bool adminRemoved, address account);

    modifier onlyAdmin() {
        require(indexOf[msg.sender] != 0, "Sender not authorized");
        _;
    }

    modifier notSelf(address account) {
        require(msg.sender != account, "Cannot invoke method with own account as parameter");
        _;
    }

    constructor() {
        add(msg.sender);
        emit AdminAdded(true, msg.sender, "Admin account added successfully");
    }

    function isAuthorized(address account) public view override returns (bool) {
        return indexOf[account] != 0;
    }

    function addAdmin(address account) external onlyAdmin returns (bool) {
        return addOne(account);
    }

    /// Adds each account (the caller's own account is refused, see addAdmin). Returns true iff
    /// every account was newly added.
    function addAdmins(address[] calldata accounts) external onlyAdmin returns (bool) {
        bool allAdded = true;
        for (uint256 i = 0; i < accounts.length; i++) {
            allAdded = addOne(accounts[i]) && allAdded;
        }
        return allAdded;
    }

    /// Returns false (and emits AdminRemoved(false, …)) if the account is not an admin.
    function removeAdmin(address account) external onlyAdmin notSelf(account) returns (bool) {
        bool removed = remove(account);
        emit AdminRemoved(removed, account);
        return removed;
    }

    function getAdmins() external view returns (address[] memory) {
        return admins;
    }

    function addOne(address account) private returns (bool) {
        if (account == msg.sender) {
            emit AdminAdded(false, account, "Adding own account as Admin is not permitted");
            return false;
        }
        if (account == address(0)) {
            emit AdminAdded(false, account, "Admin account must not be the zero address");
            return false;
        }
        if (!add(account)) {
            emit AdminAdded(false, account, "Account is already an Admin");
            return false;
        }
        emit AdminAdded(true, account, "Admin account added successfully");
        return true;
    }

    function add(address account) private returns (bool) {
        if (indexOf[account] != 0) {
            return false;
        }
        admins.push(account);
        indexOf[account] = admins.length;
        return true;
    }

    function remove(address account) private returns (bool) {
        uint256 index = indexOf[account];
        if (index == 0) {
            return false;
        }
        uint256 last = admins.length;
        if (index != last) {
            address moved = admins[last - 1];
            admins[index - 1] = moved;
            indexOf[moved] = index;
        }
        admins.pop();
        delete indexOf[account];
        return true;
    }
}
