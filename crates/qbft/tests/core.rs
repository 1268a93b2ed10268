//! The QBFT core, driven as the node drives it: message codecs, the single-validator flow,
//! empty-block periods, round changes and a four-validator height decided by message passing.

use alloy_primitives::{Address, Bytes, B256};
use consort_primitives::{
    commit_seal_digest, public_key_address, recover_commit_seal_signer, Header, QbftExtraData,
    QBFT_MIX_HASH,
};
use consort_qbft::{
    quorum, Block, Head, Input, Output, PreparePayload, Qbft, QbftMessage, QbftTimings,
    RoundChangePayload,
};
use secp256k1::{SecretKey, SECP256K1};
use std::collections::VecDeque;

const TIMINGS: QbftTimings = QbftTimings {
    block_period_ms: 2_000,
    empty_block_period_ms: 0,
    request_timeout_ms: 4_000,
};

fn key(seed: u8) -> SecretKey {
    SecretKey::from_slice(&[seed; 32]).unwrap()
}

fn address(k: &SecretKey) -> Address {
    public_key_address(&k.public_key(SECP256K1))
}

fn head(validators: &[Address]) -> Head {
    let mut v = validators.to_vec();
    v.sort();
    Head {
        number: 7,
        hash: B256::repeat_byte(7),
        timestamp: 1_000,
        coinbase: Address::ZERO,
        validators: v,
    }
}

/// The block a host would build: extraData with the validators and `round`, no seals.
fn block(head: &Head, round: u32, proposer: Address, txs: usize) -> Block {
    let extra = QbftExtraData {
        vanity: Bytes::from(vec![0u8; 32]),
        validators: head.validators.clone(),
        vote: None,
        round,
        seals: vec![],
    };
    let header = Header {
        parent_hash: head.hash,
        number: head.number + 1,
        beneficiary: proposer,
        timestamp: head.timestamp + 2,
        extra_data: extra.encode(),
        mix_hash: QBFT_MIX_HASH,
        difficulty: alloy_primitives::U256::from(1),
        gas_limit: 30_000_000,
        ..Header::default()
    };
    let mut b = Block {
        header,
        body: Default::default(),
    };
    // Stand-in transactions: the core never looks inside them.
    for _ in 0..txs {
        let tx = alloy_consensus::SignableTransaction::into_signed(
            alloy_consensus::TxLegacy::default(),
            alloy_primitives::Signature::test_signature(),
        );
        b.body
            .transactions
            .push(consort_primitives::TxEnvelope::Legacy(tx));
    }
    b.header.transactions_root =
        alloy_consensus::proofs::calculate_transaction_root(&b.body.transactions);
    b
}

fn broadcasts(out: &[Output]) -> Vec<u8> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast(m) => Some(m.code()),
            _ => None,
        })
        .collect()
}

#[test]
fn messages_round_trip_and_recover_their_author() {
    let k = key(3);
    let me = address(&k);
    let h = head(&[me]);
    let b = block(&h, 1, me, 2);
    let digest = commit_seal_digest(&b.header).unwrap();
    let prepare = QbftMessage::prepare(
        PreparePayload {
            height: 8,
            round: 1,
            digest,
        },
        &k,
        me,
    );
    let QbftMessage::Prepare(signed_prepare) = prepare.clone() else {
        unreachable!()
    };
    let rc = QbftMessage::round_change(
        RoundChangePayload {
            height: 8,
            round: 2,
            prepared: Some(consort_qbft::PreparedRound { round: 1, digest }),
        },
        Some(b.clone()),
        vec![signed_prepare.clone()],
        &k,
        me,
    );
    let QbftMessage::RoundChange {
        round_change: signed_rc,
        ..
    } = rc.clone()
    else {
        unreachable!()
    };
    let cases = vec![
        ("prepare", prepare),
        (
            "commit",
            QbftMessage::commit(
                consort_qbft::CommitPayload {
                    height: 8,
                    round: 1,
                    digest,
                    seal: consort_primitives::sign_commit_seal(digest, &k),
                },
                &k,
                me,
            ),
        ),
        ("round change with certificate", rc),
        (
            "round change without",
            QbftMessage::round_change(
                RoundChangePayload {
                    height: 8,
                    round: 1,
                    prepared: None,
                },
                None,
                vec![],
                &k,
                me,
            ),
        ),
        (
            "proposal with justification",
            QbftMessage::proposal(
                8,
                2,
                b.clone(),
                vec![signed_rc],
                vec![signed_prepare],
                &k,
                me,
            ),
        ),
        (
            "round-0 proposal",
            QbftMessage::proposal(8, 0, b, vec![], vec![], &k, me),
        ),
    ];
    for (what, msg) in cases {
        let bytes = msg.encode();
        let decoded =
            QbftMessage::decode(msg.code(), &bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(decoded, msg, "{what}");
        assert_eq!(decoded.author(), me, "{what}");
        assert_eq!(decoded.encode(), bytes, "{what}: re-encoding differs");
        // Any truncation is an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(
                QbftMessage::decode(msg.code(), &bytes[..cut]).is_err(),
                "{what} cut at {cut}"
            );
        }
        // A flipped signature byte either fails or recovers someone else as the signer.
        let mut tampered = bytes.clone();
        let last = tampered.len() - 10;
        tampered[last] ^= 1;
        if let Ok(m) = QbftMessage::decode(msg.code(), &tampered) {
            assert_ne!(m, msg, "{what}: tampering went unnoticed");
        }
    }
    assert!(QbftMessage::decode(0x16, &[0xc0]).is_err());

    // The malleable twin of a valid signature (s' = n - s, flipped recovery id) is refused.
    let prepare = QbftMessage::prepare(
        PreparePayload {
            height: 1,
            round: 0,
            digest: B256::repeat_byte(1),
        },
        &k,
        me,
    );
    let mut bytes = prepare.encode();
    let sig_start = bytes.len() - 65;
    let n = alloy_primitives::U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let s = alloy_primitives::U256::from_be_slice(&bytes[sig_start + 32..sig_start + 64]);
    bytes[sig_start + 32..sig_start + 64].copy_from_slice(&(n - s).to_be_bytes::<32>());
    bytes[sig_start + 64] ^= 1;
    assert!(QbftMessage::decode(0x13, &bytes).is_err());
}

#[test]
fn the_besu_prepare_vector_has_the_documented_shape() {
    // qbft-tests MessageRLPTests: `e3 01 80 a0<digest>` is the payload of sequence 1, round 0.
    let k = key(5);
    let msg = QbftMessage::prepare(
        PreparePayload {
            height: 1,
            round: 0,
            digest: B256::repeat_byte(0xab),
        },
        &k,
        address(&k),
    );
    let bytes = msg.encode();
    assert_eq!(&bytes[..5], &[0xf8, 0x67, 0xe3, 0x01, 0x80]);
    assert_eq!(bytes[5], 0xa0);
    assert_eq!(&bytes[38..40], &[0xb8, 0x41]);
}

#[test]
fn a_single_validator_decides_its_own_block_in_one_step() {
    let k = key(1);
    let me = address(&k);
    let h = head(&[me]);
    let mut core = Qbft::new(k);
    let out = core.handle(Input::NewHead {
        head: h.clone(),
        timings: TIMINGS,
    });
    assert_eq!(
        out,
        vec![Output::ArmBlockTimer {
            height: 8,
            at_ms: 1_002_000
        }]
    );
    let out = core.handle(Input::BlockTimer {
        height: 8,
        now_ms: 1_002_000,
        pending_transactions: true,
    });
    assert!(matches!(
        out[0],
        Output::ArmRoundTimer {
            height: 8,
            round: 0,
            after_ms: 4_000,
            ..
        }
    ));
    assert_eq!(
        out[1],
        Output::BuildBlock {
            height: 8,
            round: 0,
            parent: h.hash
        }
    );
    let out = core.handle(Input::BlockBuilt {
        height: 8,
        round: 0,
        block: Box::new(block(&h, 0, me, 1)),
        now_ms: 1_002_010,
    });
    assert_eq!(
        broadcasts(&out),
        vec![0x12, 0x13, 0x14],
        "proposal, prepare, commit"
    );
    let Some(Output::Import(sealed)) = out.last() else {
        panic!("no import: {out:?}")
    };
    let extra = QbftExtraData::decode(&sealed.header.extra_data).unwrap();
    assert_eq!(extra.round, 0);
    assert_eq!(extra.seals.len(), 1);
    let digest = commit_seal_digest(&sealed.header).unwrap();
    assert_eq!(
        recover_commit_seal_signer(digest, &extra.seals[0]),
        Some(me)
    );
    // Decided: nothing more happens at this height.
    assert!(core
        .handle(Input::RoundTimer {
            height: 8,
            round: 0,
            seq: 1
        })
        .is_empty());
    // If the import failed, the host hands the same head back and the height starts over.
    let out = core.handle(Input::NewHead {
        head: h.clone(),
        timings: TIMINGS,
    });
    assert!(matches!(out[..], [Output::ArmBlockTimer { height: 8, .. }]));
    // The same head while undecided changes nothing.
    assert!(core
        .handle(Input::NewHead {
            head: h.clone(),
            timings: TIMINGS,
        })
        .is_empty());
}

#[test]
fn an_empty_block_waits_for_the_empty_block_period() {
    let k = key(1);
    let me = address(&k);
    let h = head(&[me]);
    let mut core = Qbft::new(k);
    let timings = QbftTimings {
        empty_block_period_ms: 10_000,
        ..TIMINGS
    };
    core.handle(Input::NewHead {
        head: h.clone(),
        timings,
    });
    core.handle(Input::BlockTimer {
        height: 8,
        now_ms: 1_002_000,
        pending_transactions: true,
    });
    let out = core.handle(Input::BlockBuilt {
        height: 8,
        round: 0,
        block: Box::new(block(&h, 0, me, 0)),
        now_ms: 1_002_000,
    });
    assert_eq!(
        out,
        vec![Output::ArmBlockTimer {
            height: 8,
            at_ms: 1_004_000
        }],
        "poll again at the block period"
    );
    // The stale round-0 timer does nothing.
    assert!(core
        .handle(Input::RoundTimer {
            height: 8,
            round: 0,
            seq: 1
        })
        .is_empty());
    // A block with a transaction goes out at once.
    core.handle(Input::BlockTimer {
        height: 8,
        now_ms: 1_004_000,
        pending_transactions: true,
    });
    let out = core.handle(Input::BlockBuilt {
        height: 8,
        round: 0,
        block: Box::new(block(&h, 0, me, 1)),
        now_ms: 1_004_000,
    });
    assert!(matches!(out.last(), Some(Output::Import(_))));
    // Past the empty period, an empty block is proposed too.
    let mut core = Qbft::new(key(1));
    core.handle(Input::NewHead {
        head: h.clone(),
        timings,
    });
    core.handle(Input::BlockTimer {
        height: 8,
        now_ms: 1_010_000,
        pending_transactions: true,
    });
    let out = core.handle(Input::BlockBuilt {
        height: 8,
        round: 0,
        block: Box::new(block(&h, 0, me, 0)),
        now_ms: 1_010_000,
    });
    assert!(matches!(out.last(), Some(Output::Import(_))));
}

#[test]
fn a_round_timeout_changes_round_and_rebuilds() {
    let k = key(1);
    let me = address(&k);
    let h = head(&[me]);
    let mut core = Qbft::new(k);
    core.handle(Input::NewHead {
        head: h.clone(),
        timings: TIMINGS,
    });
    let out = core.handle(Input::BlockTimer {
        height: 8,
        now_ms: 1_002_000,
        pending_transactions: true,
    });
    let Output::ArmRoundTimer { seq, .. } = out[0] else {
        panic!()
    };
    // The host never answered the build request; the round times out.
    let out = core.handle(Input::RoundTimer {
        height: 8,
        round: 0,
        seq,
    });
    assert!(matches!(
        out[0],
        Output::ArmRoundTimer {
            round: 1,
            after_ms: 8_000,
            ..
        }
    ));
    assert_eq!(broadcasts(&out), vec![0x15]);
    assert_eq!(
        out.last(),
        Some(&Output::BuildBlock {
            height: 8,
            round: 1,
            parent: h.hash
        })
    );
    assert_eq!(core.round(), Some(1));
    let out = core.handle(Input::BlockBuilt {
        height: 8,
        round: 1,
        block: Box::new(block(&h, 1, me, 0)),
        now_ms: 1_010_000,
    });
    let Some(Output::Import(sealed)) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(
        QbftExtraData::decode(&sealed.header.extra_data)
            .unwrap()
            .round,
        1
    );
}

/// Four cores exchanging every broadcast in order decide the same block, sealed by a quorum.
#[test]
fn four_validators_decide_one_block_by_message_passing() {
    let keys: Vec<SecretKey> = (1..=4).map(key).collect();
    let addrs: Vec<Address> = keys.iter().map(address).collect();
    let h = head(&addrs);
    let mut cores: Vec<Qbft> = keys.iter().map(|k| Qbft::new(*k)).collect();
    let mut queue: VecDeque<(usize, Input)> = VecDeque::new();
    for i in 0..4 {
        queue.push_back((
            i,
            Input::NewHead {
                head: h.clone(),
                timings: TIMINGS,
            },
        ));
        queue.push_back((
            i,
            Input::BlockTimer {
                height: 8,
                now_ms: 1_002_000,
                pending_transactions: true,
            },
        ));
    }
    let mut imported: Vec<Option<Block>> = vec![None; 4];
    let mut steps = 0;
    while let Some((i, input)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 10_000, "did not converge");
        for output in cores[i].handle(input) {
            match output {
                Output::Broadcast(m) => {
                    let wire = m.encode();
                    for j in (0..4).filter(|j| *j != i) {
                        let m = QbftMessage::decode(m.code(), &wire).unwrap();
                        queue.push_back((j, Input::Message(Box::new(m))));
                    }
                }
                Output::BuildBlock { round, .. } => {
                    let me = cores[i].address();
                    queue.push_back((
                        i,
                        Input::BlockBuilt {
                            height: 8,
                            round,
                            block: Box::new(block(&h, round, me, 1)),
                            now_ms: 1_002_000,
                        },
                    ));
                }
                Output::CheckProposal {
                    height,
                    round,
                    digest,
                    ..
                } => {
                    queue.push_back((
                        i,
                        Input::ProposalChecked {
                            height,
                            round,
                            digest,
                            valid: true,
                        },
                    ));
                }
                Output::Import(b) => imported[i] = Some(*b),
                Output::ArmBlockTimer { .. }
                | Output::ArmRoundTimer { .. }
                | Output::Persist(_) => {}
            }
        }
    }
    let first = imported[0].clone().expect("validator 0 decided");
    let digest = commit_seal_digest(&first.header).unwrap();
    for (i, b) in imported.iter().enumerate() {
        let b = b
            .as_ref()
            .unwrap_or_else(|| panic!("validator {i} did not decide"));
        assert_eq!(
            consort_primitives::bft_onchain_hash(&b.header).unwrap(),
            consort_primitives::bft_onchain_hash(&first.header).unwrap()
        );
        let seals = QbftExtraData::decode(&b.header.extra_data).unwrap().seals;
        assert!(
            seals.len() >= quorum(4),
            "validator {i}: {} seals",
            seals.len()
        );
        for seal in seals {
            let signer = recover_commit_seal_signer(digest, &seal).unwrap();
            assert!(addrs.contains(&signer));
        }
    }
}

#[test]
fn messages_from_non_validators_and_old_heights_are_ignored() {
    let k = key(1);
    let me = address(&k);
    let h = head(&[me, address(&key(2))]);
    let mut core = Qbft::new(k);
    core.handle(Input::NewHead {
        head: h.clone(),
        timings: TIMINGS,
    });
    let outsider = key(9);
    for height in [7, 8] {
        let msg = QbftMessage::proposal(
            height,
            0,
            block(&h, 0, address(&outsider), 1),
            vec![],
            vec![],
            &outsider,
            address(&outsider),
        );
        assert!(
            core.handle(Input::Message(Box::new(msg))).is_empty(),
            "height {height}"
        );
    }
}

#[test]
fn a_failed_import_restarts_the_height_above_the_round_it_acted_in() {
    let k = key(1);
    let me = address(&k);
    let h = head(&[me]);
    let mut core = Qbft::new(k);
    core.handle(Input::NewHead {
        head: h.clone(),
        timings: TIMINGS,
    });
    core.handle(Input::BlockTimer {
        height: 8,
        now_ms: 1_002_000,
        pending_transactions: true,
    });
    let out = core.handle(Input::BlockBuilt {
        height: 8,
        round: 0,
        block: Box::new(block(&h, 0, me, 1)),
        now_ms: 1_002_000,
    });
    assert!(out.iter().any(|o| matches!(o, Output::Import(_))));
    // The import failed and the host offers the same head again: round 0, where this
    // validator already prepared and committed, is not entered a second time.
    core.handle(Input::NewHead {
        head: h.clone(),
        timings: TIMINGS,
    });
    let out = core.handle(Input::BlockTimer {
        height: 8,
        now_ms: 1_003_000,
        pending_transactions: true,
    });
    assert_eq!(core.round(), Some(1), "{out:?}");
}

/// Four validator keys sorted by address, and a head after a block by nobody, so the proposer
/// of round r is validator r.
fn four_validators() -> (Vec<SecretKey>, Head) {
    let mut keys: Vec<SecretKey> = (1..=4).map(key).collect();
    keys.sort_by_key(address);
    let h = head(&keys.iter().map(address).collect::<Vec<_>>());
    (keys, h)
}

fn prepares_for(
    keys: &[SecretKey],
    round: u32,
    digest: B256,
) -> Vec<consort_qbft::Signed<PreparePayload>> {
    keys.iter()
        .map(|k| {
            let QbftMessage::Prepare(p) = QbftMessage::prepare(
                PreparePayload {
                    height: 8,
                    round,
                    digest,
                },
                k,
                address(k),
            ) else {
                unreachable!()
            };
            p
        })
        .collect()
}

/// A round change to `target` by `k`, carrying `prepared` (the block and its prepares) if given.
fn round_change_by(
    k: &SecretKey,
    target: u32,
    prepared: Option<(Block, B256, Vec<consort_qbft::Signed<PreparePayload>>)>,
) -> QbftMessage {
    let meta = prepared
        .as_ref()
        .map(|(_, digest, _)| consort_qbft::PreparedRound {
            round: 0,
            digest: *digest,
        });
    let (block, prepares) = match prepared {
        Some((b, _, p)) => (Some(b), p),
        None => (None, vec![]),
    };
    QbftMessage::round_change(
        RoundChangePayload {
            height: 8,
            round: target,
            prepared: meta,
        },
        block,
        prepares,
        k,
        address(k),
    )
}

fn feed(core: &mut Qbft, msgs: Vec<QbftMessage>) -> Vec<Output> {
    msgs.into_iter()
        .flat_map(|m| core.handle(Input::Message(Box::new(m))))
        .collect()
}

/// Validator 1, the proposer of round 1, gets round changes to round 1 from the others,
/// validator 0's carrying `prepared` as prepared in round 0 with `prepares`.
fn round_changes_to_the_next_proposer(
    keys: &[SecretKey],
    h: &Head,
    prepared: Block,
    digest: B256,
    prepares: Vec<consort_qbft::Signed<PreparePayload>>,
) -> (Qbft, Vec<Output>) {
    let mut core = Qbft::new(keys[1]);
    core.handle(Input::NewHead {
        head: h.clone(),
        timings: TIMINGS,
    });
    let out = feed(
        &mut core,
        vec![
            round_change_by(&keys[0], 1, Some((prepared, digest, prepares))),
            round_change_by(&keys[2], 1, None),
            round_change_by(&keys[3], 1, None),
        ],
    );
    (core, out)
}

#[test]
fn a_prepared_block_with_a_swapped_body_is_not_proposed_again() {
    let (keys, h) = four_validators();
    let prepared = block(&h, 0, address(&keys[0]), 1);
    let digest = commit_seal_digest(&prepared.header).unwrap();
    let prepares = prepares_for(&keys[..3], 0, digest);
    // Same header, so the same digest and valid prepares, but other transactions.
    let mut swapped = prepared.clone();
    swapped.body = block(&h, 0, address(&keys[0]), 2).body;

    let (_, out) = round_changes_to_the_next_proposer(&keys, &h, swapped, digest, prepares);
    // The swapped certificate is refused; the quorum of the others (with our own round change)
    // makes us build a fresh block instead.
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::CheckProposal { .. })),
        "{out:?}"
    );
    assert!(!broadcasts(&out).contains(&0x12), "{out:?}");
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::BuildBlock { round: 1, .. })),
        "{out:?}"
    );
}

#[test]
fn a_prepared_block_is_checked_by_the_host_before_it_is_proposed_again() {
    for valid in [true, false] {
        let (keys, h) = four_validators();
        let prepared = block(&h, 0, address(&keys[0]), 1);
        let digest = commit_seal_digest(&prepared.header).unwrap();
        let prepares = prepares_for(&keys[..3], 0, digest);
        let (mut core, out) =
            round_changes_to_the_next_proposer(&keys, &h, prepared.clone(), digest, prepares);
        assert!(
            !broadcasts(&out).contains(&0x12),
            "proposed before the check: {out:?}"
        );
        let Some(Output::CheckProposal {
            round: 1,
            digest: reproposed,
            block,
            ..
        }) = out
            .iter()
            .find(|o| matches!(o, Output::CheckProposal { .. }))
        else {
            panic!("no check asked for: {out:?}")
        };
        assert_eq!(block.body, prepared.body);
        let out = core.handle(Input::ProposalChecked {
            height: 8,
            round: 1,
            digest: *reproposed,
            valid,
        });
        let sent = broadcasts(&out);
        if valid {
            assert_eq!(sent, vec![0x12, 0x13], "{out:?}");
        } else {
            assert!(sent.is_empty(), "an invalid block was proposed: {out:?}");
        }
    }
}

#[test]
fn a_justification_whose_round_changes_disagree_on_a_prepared_round_is_refused() {
    let (keys, h) = four_validators();
    let b = block(&h, 0, address(&keys[0]), 1);
    let c = block(&h, 0, address(&keys[0]), 2);
    let digest_b = commit_seal_digest(&b.header).unwrap();
    let digest_c = commit_seal_digest(&c.header).unwrap();
    let signed_rc = |m: QbftMessage| match m {
        QbftMessage::RoundChange { round_change, .. } => round_change,
        _ => unreachable!(),
    };
    let justification = |rcs: Vec<QbftMessage>| {
        let (proposed, _) = consort_qbft::with_round(&b, 1).unwrap();
        QbftMessage::proposal(
            8,
            1,
            proposed,
            rcs.into_iter().map(signed_rc).collect(),
            prepares_for(&keys[..3], 0, digest_b),
            &keys[1],
            address(&keys[1]),
        )
    };
    let checks = |msg: QbftMessage| {
        let mut core = Qbft::new(keys[2]);
        core.handle(Input::NewHead {
            head: h.clone(),
            timings: TIMINGS,
        });
        let out = core.handle(Input::Message(Box::new(msg)));
        out.iter()
            .any(|o| matches!(o, Output::CheckProposal { .. }))
    };
    let agreeing = justification(vec![
        round_change_by(&keys[0], 1, Some((b.clone(), digest_b, vec![]))),
        round_change_by(&keys[2], 1, None),
        round_change_by(&keys[3], 1, None),
    ]);
    assert!(checks(agreeing), "a valid justification was refused");
    // Validator 3 claims another block prepared in round 0; the best claim still names b.
    let disagreeing = justification(vec![
        round_change_by(&keys[3], 1, Some((c, digest_c, vec![]))),
        round_change_by(&keys[2], 1, None),
        round_change_by(&keys[0], 1, Some((b.clone(), digest_b, vec![]))),
    ]);
    assert!(
        !checks(disagreeing),
        "round changes naming two blocks for round 0 were accepted"
    );
}

#[test]
fn a_message_from_a_non_validator_is_refused_before_its_justification_is_read() {
    let (keys, h) = four_validators();
    let validators = h.validators.clone();
    let b = block(&h, 0, address(&keys[0]), 1);
    let digest = commit_seal_digest(&b.header).unwrap();
    let stranger = key(9);
    let wire = |author: &SecretKey, prepares| {
        round_change_by(author, 1, Some((b.clone(), digest, prepares))).encode_wire()
    };
    // The last byte is the last prepare's recovery id: 7 makes that signature invalid.
    let mut forged = wire(&stranger, prepares_for(&keys[..3], 0, digest));
    *forged.last_mut().unwrap() = 7;
    assert_eq!(
        QbftMessage::decode_wire(&forged),
        Err(consort_qbft::MessageError::BadSignature),
        "a full decode reads the justification"
    );
    assert_eq!(
        QbftMessage::decode_wire_from(&forged, &validators),
        Err(consort_qbft::MessageError::NotValidator(address(&stranger))),
    );
    // A validator's message carries at most one prepare per validator.
    let five = prepares_for(&[keys[0], keys[1], keys[2], keys[3], key(9)], 0, digest);
    let crowded = wire(&keys[0], five);
    assert!(QbftMessage::decode_wire(&crowded).is_ok());
    assert!(matches!(
        QbftMessage::decode_wire_from(&crowded, &validators),
        Err(consort_qbft::MessageError::Rlp(e)) if e.contains("more than 4")
    ));
    let fine = wire(&keys[0], prepares_for(&keys[..3], 0, digest));
    assert!(QbftMessage::decode_wire_from(&fine, &validators).is_ok());
}
