use consort_chainspec::Hardfork;
use revm::primitives::hardfork::SpecId;

/// The revm rules for a fork. Constantinople maps to Petersburg: revm does not implement
/// EIP-1283, which Petersburg removed again.
pub fn spec_id(fork: Hardfork) -> SpecId {
    match fork {
        Hardfork::Frontier => SpecId::FRONTIER,
        Hardfork::Homestead => SpecId::HOMESTEAD,
        Hardfork::Tangerine => SpecId::TANGERINE,
        Hardfork::SpuriousDragon => SpecId::SPURIOUS_DRAGON,
        Hardfork::Byzantium => SpecId::BYZANTIUM,
        Hardfork::Constantinople | Hardfork::Petersburg => SpecId::PETERSBURG,
        Hardfork::Istanbul => SpecId::ISTANBUL,
        Hardfork::Berlin => SpecId::BERLIN,
        Hardfork::London => SpecId::LONDON,
        Hardfork::Paris => SpecId::MERGE,
        Hardfork::Shanghai => SpecId::SHANGHAI,
        Hardfork::Cancun => SpecId::CANCUN,
        Hardfork::Prague => SpecId::PRAGUE,
        Hardfork::Osaka => SpecId::OSAKA,
    }
}
