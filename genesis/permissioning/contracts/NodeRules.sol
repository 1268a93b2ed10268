// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {RulesBase} from "./RulesBase.sol";
import {INodeRules} from "./Interfaces.sol";

/// The node allowlist: a set of (enodeId, ip, port) entries, matched exactly.
///
/// Entries are keyed by keccak256(abi.encodePacked(enodeId, ip, port)), the key Besu-era
/// contracts used. The match is byte-for-byte: enodeId must be stored as the node sends it
/// (128 lower-case hex characters, no 0x) and ip in the node's textual form (dotted IPv4,
/// bracketed compact IPv6, or a host name).
contract NodeRules is RulesBase, INodeRules {
    struct Enode {
        string enodeId;
        string ip;
        uint16 port;
    }

    bytes32[] private keys; // enumeration order
    mapping(bytes32 => uint256) private indexOf; // 1-based position in keys; 0 = absent
    mapping(bytes32 => Enode) private enodes;

    event NodeAdded(bool nodeAdded, string enodeId, string enodeIp, uint16 enodePort);
    event NodeRemoved(bool nodeRemoved, string enodeId, string enodeIp, uint16 enodePort);

    constructor(address ingressAddress) RulesBase(ingressAddress) {}

    function connectionAllowed(string calldata enodeId, string calldata enodeIp, uint16 enodePort)
        external
        view
        override
        returns (bool)
    {
        return indexOf[keyOf(enodeId, enodeIp, enodePort)] != 0;
    }

    function enodePermitted(string calldata enodeId, string calldata enodeIp, uint16 enodePort)
        external
        view
        returns (bool)
    {
        return indexOf[keyOf(enodeId, enodeIp, enodePort)] != 0;
    }

    /// Returns false (and emits NodeAdded(false, …)) if the entry is already listed.
    function addEnode(string calldata enodeId, string calldata enodeIp, uint16 enodePort)
        external
        onlyAdmin
        onlyOnEditMode
        returns (bool)
    {
        bytes32 key = keyOf(enodeId, enodeIp, enodePort);
        bool added = indexOf[key] == 0;
        if (added) {
            keys.push(key);
            indexOf[key] = keys.length;
            enodes[key] = Enode(enodeId, enodeIp, enodePort);
        }
        emit NodeAdded(added, enodeId, enodeIp, enodePort);
        if (added) {
            notifyIngress(false);
        }
        return added;
    }

    /// Returns false (and emits NodeRemoved(false, …)) if the entry is not listed. The last key
    /// is moved into the freed position, so enumeration order is not stable across removals.
    function removeEnode(string calldata enodeId, string calldata enodeIp, uint16 enodePort)
        external
        onlyAdmin
        onlyOnEditMode
        returns (bool)
    {
        bytes32 key = keyOf(enodeId, enodeIp, enodePort);
        uint256 index = indexOf[key];
        bool removed = index != 0;
        if (removed) {
            uint256 last = keys.length;
            if (index != last) {
                bytes32 moved = keys[last - 1];
                keys[index - 1] = moved;
                indexOf[moved] = index;
            }
            keys.pop();
            delete indexOf[key];
            delete enodes[key];
        }
        emit NodeRemoved(removed, enodeId, enodeIp, enodePort);
        if (removed) {
            notifyIngress(true);
        }
        return removed;
    }

    function getSize() external view returns (uint256) {
        return keys.length;
    }

    function getByIndex(uint256 index)
        external
        view
        returns (string memory enodeId, string memory ip, uint16 port)
    {
        require(index < keys.length, "Index out of range");
        Enode storage e = enodes[keys[index]];
        return (e.enodeId, e.ip, e.port);
    }

    function keyOf(string calldata enodeId, string calldata enodeIp, uint16 enodePort)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked(enodeId, enodeIp, enodePort));
    }
}
