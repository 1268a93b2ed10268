// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// The storage workload of Hyperledger Caliper's "simple" benchmark, which Besu's published
/// QBFT figures use: `open` stores a new account's balance (one fresh storage slot per call),
/// `query` reads it back and `transfer` moves an amount between two accounts.
contract Simple {
    mapping(string => int256) private balances;

    function open(string calldata account, int256 amount) external {
        balances[account] = amount;
    }

    function query(string calldata account) external view returns (int256) {
        return balances[account];
    }

    function transfer(string calldata from, string calldata to, int256 amount) external {
        balances[from] -= amount;
        balances[to] += amount;
    }
}
