// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IAdmin} from "./Interfaces.sol";

/// A small name → address registry, the base of NodeIngress and AccountIngress.
///
/// The ingress contracts sit at fixed addresses in genesis (0x…9999 for nodes, 0x…8888 for
/// accounts); everything else (the rules contract, the admin contract) is found through this
/// registry, so the rules can be replaced without touching the node's configuration.
///
/// Storage layout (fixed; a genesis `alloc` may seed these slots directly, as Besu's genesis files
/// for the ConsenSys permissioning contracts do):
///   slot 0  bytes32                      rulesKey      = "rules"
///   slot 1  bytes32                      adminKey      = "administration"
///   slot 2  mapping(bytes32 => address)  registry
///   slot 3  bytes32[]                    contractKeys
///   slot 4  mapping(bytes32 => uint256)  indexOf       (1-based position in contractKeys; 0 = absent)
///   slot 5  uint256                      version       = 1000000 (1.0.0)
///
/// The contract has no immutables and never uses address(this) in its constructor, so copying
/// only its runtime code and storage to another address gives a working copy. If slot 0 or slot 1
/// is zero (code placed in genesis without its storage), the default keys are used.
abstract contract Ingress {
    bytes32 private constant DEFAULT_RULES_KEY = "rules";
    bytes32 private constant DEFAULT_ADMIN_KEY = "administration";

    bytes32 internal rulesKey = DEFAULT_RULES_KEY; // slot 0
    bytes32 internal adminKey = DEFAULT_ADMIN_KEY; // slot 1
    mapping(bytes32 => address) internal registry; // slot 2
    bytes32[] internal contractKeys; // slot 3
    mapping(bytes32 => uint256) internal indexOf; // slot 4
    uint256 internal version = 1000000; // slot 5

    event RegistryUpdated(address contractAddress, bytes32 contractName);

    modifier onlyAuthorized() {
        require(isAuthorized(msg.sender), "Not authorized to update contract registry");
        _;
    }

    /// The registry key of the rules contract (slot 0, or "rules" if slot 0 is unset).
    function RULES_CONTRACT() public view returns (bytes32) {
        bytes32 key = rulesKey;
        return key == bytes32(0) ? DEFAULT_RULES_KEY : key;
    }

    /// The registry key of the admin contract (slot 1, or "administration" if slot 1 is unset).
    function ADMIN_CONTRACT() public view returns (bytes32) {
        bytes32 key = adminKey;
        return key == bytes32(0) ? DEFAULT_ADMIN_KEY : key;
    }

    function getContractAddress(bytes32 name) public view returns (address) {
        require(name != bytes32(0), "Contract name must not be empty");
        return registry[name];
    }

    function getContractVersion() external view returns (uint256) {
        return version;
    }

    function getSize() external view returns (uint256) {
        return contractKeys.length;
    }

    function getAllContractKeys() external view returns (bytes32[] memory) {
        return contractKeys;
    }

    /// True for every account while no admin contract is registered (the bootstrap rule), then
    /// whatever the registered admin contract says.
    function isAuthorized(address account) public view returns (bool) {
        address admin = registry[ADMIN_CONTRACT()];
        if (admin == address(0)) {
            return true;
        }
        return IAdmin(admin).isAuthorized(account);
    }

    function setContractAddress(bytes32 name, address addr) external onlyAuthorized returns (bool) {
        require(name != bytes32(0), "Contract name must not be empty");
        require(addr != address(0), "Contract address must not be zero");
        if (name == RULES_CONTRACT() || name == ADMIN_CONTRACT()) {
            // A rules or admin entry without code would make every permission check (or every
            // registry change, for the admin entry) revert.
            require(addr.code.length > 0, "Rules and admin contracts must have code");
        }
        if (indexOf[name] == 0) {
            contractKeys.push(name);
            indexOf[name] = contractKeys.length;
        }
        registry[name] = addr;
        emit RegistryUpdated(addr, name);
        return true;
    }

    /// Removes `name`; returns false (and changes nothing) if it is not registered. Removing the
    /// admin entry brings back the bootstrap rule (everyone authorised).
    function removeContract(bytes32 name) external onlyAuthorized returns (bool) {
        require(name != bytes32(0), "Contract name must not be empty");
        uint256 index = indexOf[name];
        if (index == 0) {
            // Also covers an entry seeded into `registry` in genesis without a key list entry.
            if (registry[name] == address(0)) {
                return false;
            }
        } else {
            uint256 last = contractKeys.length;
            if (index != last) {
                bytes32 moved = contractKeys[last - 1];
                contractKeys[index - 1] = moved;
                indexOf[moved] = index;
            }
            contractKeys.pop();
            delete indexOf[name];
        }
        delete registry[name];
        emit RegistryUpdated(address(0), name);
        return true;
    }
}
