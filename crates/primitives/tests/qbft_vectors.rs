//! Besu's QBFT block-format vectors (`shared/conformance/qbft-vectors.json`).

use alloy_rlp::Decodable;
use consort_primitives::{
    bft_onchain_hash, commit_seal_digest, hex, recover_commit_seal_signer, Address, Bytes,
    CommitSeal, Header, QbftExtraData, Vote, B256,
};
#[path = "../../../tests/support/conformance.rs"]
mod conformance;

fn vectors() -> Option<serde_json::Value> {
    let path = conformance::find("qbft-vectors.json")?;
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Some(serde_json::from_str(&text).unwrap())
}

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn addresses(v: &serde_json::Value) -> Vec<Address> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn besu_block_7528_hashes_and_seals() {
    let Some(all) = vectors() else { return };
    let v = &all["besu_block_7528"];
    let rlp = bytes(&v["sealed_header_rlp"]);
    let header = Header::decode(&mut rlp.as_slice()).unwrap();
    let extra = QbftExtraData::decode(&header.extra_data).unwrap();
    assert_eq!(extra.round, v["round"].as_u64().unwrap() as u32);
    assert_eq!(extra.validators, addresses(&v["validators"]));
    assert_eq!(
        header.beneficiary,
        v["coinbase"].as_str().unwrap().parse::<Address>().unwrap()
    );

    let digest = commit_seal_digest(&header).unwrap();
    assert_eq!(
        digest,
        v["commit_seal_digest"]
            .as_str()
            .unwrap()
            .parse::<B256>()
            .unwrap()
    );
    let mut for_seal = header.clone();
    for_seal.extra_data = extra.encode_for_commit_seal();
    assert_eq!(
        alloy_rlp::encode(&for_seal),
        bytes(&v["header_rlp_for_commit_seal"])
    );

    let hash = bft_onchain_hash(&header).unwrap();
    assert_eq!(
        hash,
        v["onchain_block_hash"]
            .as_str()
            .unwrap()
            .parse::<B256>()
            .unwrap()
    );
    assert_ne!(
        header.hash_slow(),
        hash,
        "the naive hash must differ from the BFT hash"
    );

    let signers: Vec<Address> = extra
        .seals
        .iter()
        .map(|s| recover_commit_seal_signer(digest, s).unwrap())
        .collect();
    assert_eq!(signers, addresses(&v["seal_signers_in_order"]));
    // Re-encoding the decoded extraData reproduces the header bytes exactly.
    assert_eq!(extra.encode(), header.extra_data);
}

#[test]
fn besu_extra_data_codec_vector() {
    let Some(all) = vectors() else { return };
    let v = &all["extra_data_codec"];
    let seal = |r: u8, s: u8| {
        let mut b = [0u8; 65];
        b[31] = r;
        b[63] = s;
        CommitSeal::from(b)
    };
    let expected = QbftExtraData {
        vanity: Bytes::from(bytes(&v["vanity"])),
        validators: addresses(&v["validators"]),
        vote: Some(Vote {
            recipient: v["vote"]["recipient"].as_str().unwrap().parse().unwrap(),
            add: true,
        }),
        round: v["round"].as_u64().unwrap() as u32,
        seals: vec![seal(1, 10), seal(10, 1)],
    };
    let encoded = bytes(&v["encoded"]);
    assert_eq!(QbftExtraData::decode(&encoded).unwrap(), expected);
    assert_eq!(expected.encode().to_vec(), encoded);
}

#[test]
fn genesis_extra_data_examples() {
    let Some(all) = vectors() else { return };
    let v = &all["genesis_extra_data_docs_example"];
    let encoded = bytes(&v["encoded"]);
    let decoded = QbftExtraData::decode(&encoded).unwrap();
    assert_eq!(decoded, QbftExtraData::genesis(addresses(&v["validators"])));
    assert_eq!(decoded.encode().to_vec(), encoded);

    let contract = bytes(&all["contract_mode_genesis_extra_data"]);
    let decoded = QbftExtraData::decode(&contract).unwrap();
    assert_eq!(decoded, QbftExtraData::genesis(vec![]));
    assert_eq!(decoded.encode().to_vec(), contract);
}

#[test]
fn malformed_extra_data_is_rejected_with_a_reason() {
    let cases: &[(&str, &str)] = &[
        ("empty input", ""),
        ("a string instead of a list", "80"),
        ("list shorter than declared", "f87a00"),
        ("round with a leading zero byte", "e7a00000000000000000000000000000000000000000000000000000000000000000c0c0820001c0"),
        ("round wider than four bytes", "eaa00000000000000000000000000000000000000000000000000000000000000000c0c0850100000000c0"),
        ("vote type neither add nor drop", "f83ba00000000000000000000000000000000000000000000000000000000000000000c0d69400000000000000000000000000000000000000010280c0"),
        ("trailing bytes", "e5a00000000000000000000000000000000000000000000000000000000000000000c0c080c000"),
    ];
    for (what, hex_str) in cases {
        let input = hex::decode(hex_str).unwrap();
        assert!(
            QbftExtraData::decode(&input).is_err(),
            "{what} should be rejected"
        );
    }
}

#[test]
fn drop_vote_round_trips_and_legacy_zero_byte_decodes_as_drop() {
    let extra = QbftExtraData {
        vote: Some(Vote {
            recipient: Address::repeat_byte(7),
            add: false,
        }),
        round: 3,
        ..QbftExtraData::genesis(vec![Address::repeat_byte(1)])
    };
    let encoded = extra.encode();
    assert_eq!(QbftExtraData::decode(&encoded).unwrap(), extra);
    // Replace the 0x80 drop byte with a raw 0x00 (legacy encoding).
    let mut legacy = encoded.to_vec();
    let pos = legacy
        .windows(21)
        .position(|w| w[0] == 0x94 && w[1..] == [7u8; 20])
        .unwrap()
        + 21;
    assert_eq!(legacy[pos], 0x80);
    legacy[pos] = 0x00;
    assert_eq!(QbftExtraData::decode(&legacy).unwrap().vote, extra.vote);
}

#[test]
fn only_the_canonical_encoding_is_accepted_where_bytes_must_match_hashes() {
    let extra = QbftExtraData {
        vote: Some(Vote {
            recipient: Address::repeat_byte(7),
            add: false,
        }),
        round: 3,
        seals: vec![CommitSeal::repeat_byte(5)],
        ..QbftExtraData::genesis(vec![Address::repeat_byte(1)])
    };
    let canonical = extra.encode().to_vec();
    assert_eq!(QbftExtraData::decode_canonical(&canonical).unwrap(), extra);

    // A trailing item inside the list: Besu's lenient decoder skips it, and every hash
    // re-encodes without it, so two different headers would share one hash.
    let mut trailing = canonical.clone();
    trailing.push(0x80);
    trailing[1] += 1;
    // The legacy 0x00 drop byte.
    let mut legacy = canonical.clone();
    let pos = legacy
        .windows(21)
        .position(|w| w[0] == 0x94 && w[1..] == [7u8; 20])
        .unwrap()
        + 21;
    legacy[pos] = 0x00;
    for (what, bytes) in [
        ("a trailing item", &trailing),
        ("a 0x00 drop vote", &legacy),
    ] {
        let lenient = QbftExtraData::decode(bytes).unwrap();
        assert_eq!(lenient.encode().to_vec(), canonical, "{what}");
        assert_eq!(
            QbftExtraData::decode_canonical(bytes),
            Err(consort_primitives::QbftExtraDataError::NonCanonical),
            "{what}"
        );
    }
}
