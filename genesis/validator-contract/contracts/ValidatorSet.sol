// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// consort's QBFT validator contract (validator-contract mode). The node calls getValidators()
/// read-only on the post-state of block N-1 to learn the validators of block N.
///
/// Storage layout (fixed; a genesis preloads it directly, because constructors do not run in
/// genesis, and compile.mjs fails if it changes):
///   slot 0  address[] validators                  length at slot 0, element i at keccak256(uint256(0)) + i
///   slot 1  mapping(address => bool) admins       admins[a] at keccak256(pad32(a) ++ uint256(1)) = 1
///   slot 2  uint256 adminCount                    number of admins
///   slot 3  mapping(address => uint256) indexOf   1-based position of a in validators, 0 = absent,
///                                                 at keccak256(pad32(a) ++ uint256(3))
/// Slot 0 is the layout of Besu's example validator contract, so a genesis written for that
/// layout lists the same validators here; it must also set slots 1-3 for the mutators to work.
///
/// Rules: only admins change either set. The validator set never becomes empty (the last
/// validator cannot be removed) and an admin cannot remove itself, so at least one admin always
/// remains. No immutables: the runtime code plus its storage can be placed at any address.
contract ValidatorSet {
    address[] private validators; // slot 0
    mapping(address => bool) private admins; // slot 1
    uint256 public adminCount; // slot 2
    mapping(address => uint256) private indexOf; // slot 3

    event ValidatorAdded(address indexed validator);
    event ValidatorRemoved(address indexed validator);
    event AdminAdded(address indexed admin);
    event AdminRemoved(address indexed admin);

    modifier onlyAdmin() {
        require(admins[msg.sender], "ValidatorSet: caller is not an admin");
        _;
    }

    /// For an ordinary deployment. Both lists must be non-empty and free of duplicates and of
    /// the zero address.
    constructor(address[] memory initialValidators, address[] memory initialAdmins) {
        require(initialValidators.length != 0, "ValidatorSet: no initial validators");
        require(initialAdmins.length != 0, "ValidatorSet: no initial admins");
        for (uint256 i = 0; i < initialValidators.length; i++) {
            _addValidator(initialValidators[i]);
        }
        for (uint256 i = 0; i < initialAdmins.length; i++) {
            _addAdmin(initialAdmins[i]);
        }
    }

    /// The current validators (selector 0xb7ab4db5). The order is not significant and changes
    /// when a validator is removed.
    function getValidators() external view returns (address[] memory) {
        return validators;
    }

    function isValidator(address account) external view returns (bool) {
        return indexOf[account] != 0;
    }

    function isAdmin(address account) external view returns (bool) {
        return admins[account];
    }

    function addValidator(address validator) external onlyAdmin {
        _addValidator(validator);
    }

    /// Swap and pop: the last validator moves into the removed one's position.
    function removeValidator(address validator) external onlyAdmin {
        uint256 position = indexOf[validator];
        require(position != 0, "ValidatorSet: not a validator");
        uint256 count = validators.length;
        require(count > 1, "ValidatorSet: cannot remove the last validator");
        if (position != count) {
            address moved = validators[count - 1];
            validators[position - 1] = moved;
            indexOf[moved] = position;
        }
        validators.pop();
        delete indexOf[validator];
        emit ValidatorRemoved(validator);
    }

    function addAdmin(address admin) external onlyAdmin {
        _addAdmin(admin);
    }

    function removeAdmin(address admin) external onlyAdmin {
        require(admin != msg.sender, "ValidatorSet: an admin cannot remove itself");
        require(admins[admin], "ValidatorSet: not an admin");
        delete admins[admin];
        adminCount -= 1;
        emit AdminRemoved(admin);
    }

    function _addValidator(address validator) private {
        require(validator != address(0), "ValidatorSet: zero address");
        require(indexOf[validator] == 0, "ValidatorSet: already a validator");
        validators.push(validator);
        indexOf[validator] = validators.length;
        emit ValidatorAdded(validator);
    }

    function _addAdmin(address admin) private {
        require(admin != address(0), "ValidatorSet: zero address");
        require(!admins[admin], "ValidatorSet: already an admin");
        admins[admin] = true;
        adminCount += 1;
        emit AdminAdded(admin);
    }
}
