// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// The smallest contract validator-contract mode can use, in the style of Besu's example: the
/// validator list in slot 0 (length at slot 0, element i at keccak256(uint256(0)) + i) and a
/// getter. No constructor and no mutators: a genesis preloads slot 0 and the elements. It exists
/// to show that a contract written for Besu's layout works unchanged.
contract MinimalValidatorSet {
    address[] private validators; // slot 0

    /// Selector 0xb7ab4db5.
    function getValidators() external view returns (address[] memory) {
        return validators;
    }
}
