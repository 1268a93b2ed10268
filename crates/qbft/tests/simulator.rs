//! Deterministic simulation of QBFT validators under network faults, crashes and Byzantine
//! peers (see `sim/`), plus focused tests of the core's buffer bounds, of prepared
//! certificates and of restoring a validator from its persisted state.
//!
//! Each seed draws a scenario (`sim::scenario`): 4, 7 or 10 validators (`seed % 3`); random
//! delays (so reordering), loss, duplication, clock skew and symmetric or one-way partitions
//! until the global stabilization time (GST); crashes, some in the middle of carrying out an
//! input's outputs, with restarts from the last `Persist`; and up to f Byzantine validators
//! (equivocating, silent, replaying, invalid-block and round-change-flooding ones), crashed
//! validators counting toward f while down. Hosts build, check, import and sync blocks.
//!
//! Checked on every step: no two honest validators finalize different blocks at a height,
//! and no two blocks ever gather a quorum of commit seals at one height, whoever sent them;
//! every import is a child of the node's head and passes the seal checks; an honest validator
//! never signs two different Proposals, Prepares or Commits for one (height, round), nor
//! one for a round below a round change it sent, across restarts; every honest seal in a
//! finalized block matches a vote of its signer. At the end: every honest chain links up.
//! Liveness: after GST every honest validator adds `k_heights` heights within a bound derived
//! from the round timeouts (see `World::liveness_bound`).
//!
//! `CONSORT_SIM_SEEDS=N` runs N seeds (split over 4, 7 and 10 validators) instead of the
//! default, `CONSORT_SIM_START=S` starts at seed S, and
//! `CONSORT_SIM_SEED=S cargo test -p consort-qbft --test simulator -- one_seed --nocapture`
//! replays one seed with a trace (`CONSORT_SIM_TRACE_LINES` sets how much is printed,
//! `CONSORT_SIM_TRACE_CAP` how much is kept, `CONSORT_SIM_TRACE_ALL=1` prints a passing
//! seed's trace too).

mod sim;

use std::time::Instant;

/// Seeds run by default, over all validator counts.
const DEFAULT_SEEDS: u64 = 1_050;
/// Share of the seeds for 4, 7 and 10 validators, in percent.
const SHARES: [u64; 3] = [45, 33, 22];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs this validator count's share of the seeds: seeds `start + 3k + index` (the seed picks
/// the validator count as `VALIDATOR_COUNTS[seed % 3]`).
fn run_many(index: u64) {
    let total = env_u64("CONSORT_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let start = env_u64("CONSORT_SIM_START").unwrap_or(0);
    let count = (total * SHARES[index as usize]).div_ceil(100);
    let base = start - start % 3 + index;
    let began = Instant::now();
    let mut failures = Vec::new();
    let (mut virtual_ms, mut events, mut max_round) = (0u64, 0u64, 0u32);
    let mut cov = sim::world::Coverage::default();
    // The slowest recovery after GST, and the one closest to its bound.
    let (mut slowest, mut tightest) = ((0u64, 0u64, 0u64), (0u64, 0u64, 0u64));
    for k in 0..count {
        let seed = base + 3 * k;
        match sim::run_seed(seed, false) {
            Ok(stats) => {
                virtual_ms += stats.virtual_ms;
                events += stats.events;
                max_round = max_round.max(stats.max_round);
                cov.add(&stats.cov);
                if stats.after_gst_ms > slowest.1 {
                    slowest = (seed, stats.after_gst_ms, stats.bound_ms);
                }
                if stats.after_gst_ms * tightest.2.max(1) > tightest.1 * stats.bound_ms {
                    tightest = (seed, stats.after_gst_ms, stats.bound_ms);
                }
            }
            Err(f) => {
                if failures.len() < 8 {
                    // Run it again with a trace for the report.
                    let traced = sim::run_seed(seed, true).err().unwrap_or(f);
                    eprintln!("{}", traced.report(30));
                }
                failures.push(seed);
            }
        }
    }
    let n = sim::scenario::VALIDATOR_COUNTS[index as usize];
    eprintln!(
        "simulator n={n}: {count} seeds in {:.1}s ({:.0} virtual s, {events} events, highest \
         honest round {max_round}), {} failed\n  slowest after GST: seed {} took {}ms of \
         {}ms; closest to its bound: seed {} took {}ms of {}ms\n  {cov:?}",
        began.elapsed().as_secs_f64(),
        virtual_ms as f64 / 1000.0,
        failures.len(),
        slowest.0,
        slowest.1,
        slowest.2,
        tightest.0,
        tightest.1,
        tightest.2
    );
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed for n={n}: {failures:?}\nreplay one with CONSORT_SIM_SEED=<seed> \
         cargo test -p consort-qbft --test simulator -- one_seed --nocapture",
        failures.len()
    );
}

#[test]
fn seeds_with_4_validators() {
    run_many(0);
}

#[test]
fn seeds_with_7_validators() {
    run_many(1);
}

#[test]
fn seeds_with_10_validators() {
    run_many(2);
}

/// Replays `CONSORT_SIM_SEED` (seed 0 if unset) with a trace.
#[test]
fn one_seed() {
    let seed = env_u64("CONSORT_SIM_SEED").unwrap_or(0);
    let lines = env_u64("CONSORT_SIM_TRACE_LINES").unwrap_or(120) as usize;
    let scenario = sim::scenario::Scenario::from_seed(seed);
    eprintln!("scenario: {}", scenario.describe());
    match sim::run_scenario(scenario, true) {
        Ok(stats) => {
            if std::env::var("CONSORT_SIM_TRACE_ALL").is_ok() {
                for l in sim::run_scenario_trace(seed) {
                    eprintln!("{l}");
                }
            }
            eprintln!("seed {seed} passed: {stats:?}")
        }
        Err(f) => panic!("{}", f.report(lines)),
    }
}

/// Validators flooding everyone with round changes for huge rounds and junk votes for far
/// rounds of this and the next heights (and passing on nothing else) slow block production
/// no more than if they were silent.
#[test]
fn block_production_continues_during_a_flood() {
    for (seed, n, burst) in [(1, 4, 60), (2, 7, 20)] {
        let run = |burst: u64| {
            let mut sc =
                sim::scenario::Scenario::calm(seed, n, "block_production_continues_during_a_flood");
            sc.byzantine = (0..(n - 1) / 3)
                .map(|i| (i, sim::scenario::ByzKind::ConflictingRoundChanger))
                .collect();
            sc.byz_tick_ms = 20;
            sc.flood_burst = burst;
            sc.byz_participates = false;
            sc.k_heights = 12;
            match sim::run_scenario(sc, false) {
                Ok(stats) => stats,
                Err(f) => panic!("{}", f.report(0)),
            }
        };
        let quiet = run(0);
        let flooded = run(burst);
        eprintln!(
            "n={n}: 12 heights in {} virtual ms without the flood, {} ms with {} flood messages",
            quiet.virtual_ms, flooded.virtual_ms, flooded.cov.flood_messages
        );
        assert!(flooded.cov.flood_messages > 20_000);
        assert!(
            flooded.virtual_ms <= quiet.virtual_ms + 2_000,
            "n={n}: the flood slowed production: {} ms against {} ms",
            flooded.virtual_ms,
            quiet.virtual_ms
        );
    }
}

// ---- Focused tests: buffer bounds under floods ----

use consort_qbft::{
    Input, Output, Persisted, QbftMessage, EARLY_MESSAGES_LIMIT, FUTURE_HEIGHT_DISTANCE,
    FUTURE_MESSAGES_BYTES, FUTURE_MESSAGES_LIMIT, MAX_ROUND,
};
use sim::chain::head_of;
use sim::fixture::{
    approve, block_timer, broadcasts, digest, last_persist, msg, new_head, prepares_sent, Net,
};

/// Junk from validator `b`: a Prepare, Commit or Round Change (without certificate) for
/// `height` and `round` with the digest of no block.
fn junk(net: &Net, b: usize, height: u64, round: u32, kind: u32) -> QbftMessage {
    let d = alloy_primitives::B256::repeat_byte((round % 251) as u8 + 1);
    match kind % 3 {
        0 => net.prepare(b, height, round, d),
        1 => net.commit(b, height, round, d),
        _ => net.round_change(b, height, round.max(1), None),
    }
}

#[test]
fn future_height_flood_is_bounded_and_keeps_the_next_heights_messages() {
    let net = Net::new(4);
    let p1 = net.proposer(&net.head, 0);
    let b1 = net.block(&net.head, 0, p1, 0);
    let head1 = head_of(&b1, &net.addrs);
    let p2 = net.proposer(&head1, 0);
    // `v` is behind at height 1; `b` floods; `x` and `p2` are honest at height 2.
    let b = (p2 + 1) % 4;
    let v = (p2 + 2) % 4;
    let x = (p2 + 3) % 4;
    let mut core = net.core(v);
    core.handle(new_head(&net.head));
    // At height 1, messages up to FUTURE_HEIGHT_DISTANCE heights ahead are kept, no farther.
    core.handle(msg(junk(&net, b, 2 + FUTURE_HEIGHT_DISTANCE, 1, 0)));
    assert_eq!(core.future_buffered().0, 0);
    core.handle(msg(junk(&net, b, 1 + FUTURE_HEIGHT_DISTANCE, 1, 0)));
    assert_eq!(core.future_buffered().0, 1);
    // The same message again is kept once.
    core.handle(msg(junk(&net, b, 1 + FUTURE_HEIGHT_DISTANCE, 1, 0)));
    assert_eq!(core.future_buffered().0, 1);
    let within = |core: &consort_qbft::Qbft| {
        let (len, bytes) = core.future_buffered();
        assert!(len <= FUTURE_MESSAGES_LIMIT, "{len} messages buffered");
        assert!(bytes <= FUTURE_MESSAGES_BYTES, "{bytes} bytes buffered");
    };
    // Small junk over heights 2..=13; beyond FUTURE_HEIGHT_DISTANCE nothing is kept.
    for k in 0..3_000u32 {
        let height = 2 + u64::from(k % 12);
        core.handle(msg(junk(&net, b, height, 1 + k % MAX_ROUND, k / 12)));
        within(&core);
    }
    assert_eq!(core.future_buffered().0, FUTURE_MESSAGES_LIMIT);
    // Big messages (round changes carrying a 256 KiB block) hit the byte bound first.
    let mut big = net.block(&head1, 0, b, 0);
    let mut extra = consort_primitives::QbftExtraData::decode(&big.header.extra_data).unwrap();
    extra.vanity = vec![7u8; 256 << 10].into();
    big.header.extra_data = extra.encode();
    let cert = vec![net.signed_prepare(b, 3, 0, digest(&big))];
    for round in 1..=200 {
        core.handle(msg(net.round_change(
            b,
            3,
            round,
            Some((&big, cert.clone())),
        )));
        within(&core);
    }
    assert!(core.future_buffered().1 > FUTURE_MESSAGES_BYTES / 2);
    // A flood aimed at the very next height, in far rounds.
    for k in 0..3_000u32 {
        core.handle(msg(junk(&net, b, 2, 1 + k % MAX_ROUND, k / MAX_ROUND)));
        within(&core);
    }
    assert!(core.future_buffered().0 <= FUTURE_MESSAGES_LIMIT);
    // The honest round-0 messages of height 2 still get in, and count once `v` gets there.
    let block2 = net.block(&head1, 0, p2, 5);
    let d2 = digest(&block2);
    core.handle(msg(net.proposal(p2, 2, 0, block2, &[], vec![])));
    core.handle(msg(net.prepare(p2, 2, 0, d2)));
    core.handle(msg(net.prepare(x, 2, 0, d2)));
    let out = core.handle(new_head(&head1));
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::CheckProposal {
                height: 2,
                round: 0,
                ..
            }
        )),
        "the buffered proposal for height 2 was lost: {out:?}"
    );
    let out = approve(&mut core, &out);
    let sent = broadcasts(&out);
    assert!(
        sent.iter()
            .any(|m| matches!(m, QbftMessage::Commit(c) if c.payload.digest == d2)),
        "the buffered prepares for height 2 were lost: {sent:?}"
    );
}

#[test]
fn early_vote_flood_keeps_the_votes_for_the_round_at_hand() {
    let net = Net::new(4);
    let p = net.proposer(&net.head, 0);
    let b = (p + 1) % 4;
    let v = (p + 2) % 4;
    let x = (p + 3) % 4;
    let mut core = net.core(v);
    core.handle(new_head(&net.head));
    core.handle(block_timer(&net.head));
    assert_eq!(core.round(), Some(0));
    // Far more junk votes for later rounds (and one each for round 0) than the buffer holds.
    for k in 0..(3 * EARLY_MESSAGES_LIMIT as u32) {
        core.handle(msg(junk(&net, b, 1, k % MAX_ROUND, (k / MAX_ROUND) % 2)));
    }
    // The honest votes of round 0 arrive before its proposal.
    let block = net.block(&net.head, 0, p, 1);
    let d = digest(&block);
    core.handle(msg(net.prepare(x, 1, 0, d)));
    core.handle(msg(net.prepare(p, 1, 0, d)));
    core.handle(msg(net.commit(x, 1, 0, d)));
    core.handle(msg(net.commit(p, 1, 0, d)));
    let out = core.handle(msg(net.proposal(p, 1, 0, block, &[], vec![])));
    let out = approve(&mut core, &out);
    let sent = broadcasts(&out);
    assert!(
        sent.iter()
            .any(|m| matches!(m, QbftMessage::Commit(c) if c.payload.digest == d)),
        "early prepares were crowded out: {sent:?}"
    );
    assert!(
        out.iter().any(|o| matches!(o, Output::Import(_))),
        "early commits were crowded out"
    );
}

#[test]
fn round_change_flood_for_huge_rounds_moves_no_one_alone() {
    let net = Net::new(4);
    let p = net.proposer(&net.head, 0);
    let b = (p + 1) % 4;
    let v = (p + 2) % 4;
    let x = (p + 3) % 4;
    let mut core = net.core(v);
    core.handle(new_head(&net.head));
    core.handle(block_timer(&net.head));
    let began = Instant::now();
    let some_block = net.block(&net.head, 0, b, 9);
    for round in 1..=MAX_ROUND {
        // Without, and with a certificate nobody's prepares prove.
        let cert = (round % 3 == 0).then(|| {
            (
                &some_block,
                vec![net.signed_prepare(b, 1, 0, digest(&some_block))],
            )
        });
        let out = core.handle(msg(net.round_change(b, 1, round, cert)));
        assert!(broadcasts(&out).is_empty(), "round {round}: {out:?}");
    }
    assert_eq!(core.round(), Some(0), "one validator moved us");
    // One honest validator asking for round 2 makes f+1: we follow to the lowest, not to
    // the flooder's MAX_ROUND.
    core.handle(msg(net.round_change(x, 1, 2, None)));
    assert_eq!(core.round(), Some(2));
    // And the height still completes in round 2.
    let p2 = net.proposer(&net.head, 2);
    let rcs: Vec<QbftMessage> = [x, v, p, b]
        .iter()
        .filter(|i| **i != p2)
        .take(3)
        .map(|i| net.round_change(*i, 1, 2, None))
        .collect();
    let block = net.block(&net.head, 2, p2, 3);
    let d = digest(&block);
    if p2 != v {
        let out = core.handle(msg(net.proposal(p2, 1, 2, block, &rcs, vec![])));
        let out = approve(&mut core, &out);
        assert_eq!(prepares_sent(&out), vec![(2, d)]);
    }
    assert!(
        began.elapsed().as_secs() < 20,
        "the flood took {:?}",
        began.elapsed()
    );
}

// ---- Focused tests: restoring a validator from what it persisted ----

/// Index of the first `Persist` and of the first broadcast matching `what` in `out`.
fn persist_then(out: &[Output], what: impl Fn(&QbftMessage) -> bool) -> (usize, usize) {
    let persist = out
        .iter()
        .position(|o| matches!(o, Output::Persist(_)))
        .expect("a Persist");
    let sent = out
        .iter()
        .position(|o| matches!(o, Output::Broadcast(m) if what(m)))
        .expect("the broadcast");
    (persist, sent)
}

fn round_changes_sent(out: &[Output]) -> Vec<(u32, Option<consort_qbft::PreparedRound>)> {
    broadcasts(out)
        .into_iter()
        .filter_map(|m| match m {
            QbftMessage::RoundChange { round_change, .. } => {
                Some((round_change.payload.round, round_change.payload.prepared))
            }
            _ => None,
        })
        .collect()
}

/// A restart from `persisted`: a new core, restored, on the same head.
fn restart(net: &Net, v: usize, persisted: &Persisted) -> consort_qbft::Qbft {
    let decoded = Persisted::decode(&persisted.encode()).expect("persisted state decodes");
    assert_eq!(&decoded, persisted, "persisted state round-trips");
    let mut core = net.core(v);
    core.restore(decoded);
    core.handle(new_head(&net.head));
    core
}

#[test]
fn a_restored_validator_never_prepares_another_block_at_or_below_its_round() {
    let net = Net::new(4);
    let h = &net.head;
    let p2 = net.proposer(h, 2);
    let v = (p2 + 1) % 4;
    let others: Vec<usize> = (0..4).filter(|i| *i != v).collect();
    let rcs = |round: u32| -> Vec<QbftMessage> {
        others
            .iter()
            .map(|i| net.round_change(*i, 1, round, None))
            .collect()
    };
    let mut core = net.core(v);
    core.handle(new_head(h));
    core.handle(block_timer(h));
    for rc in rcs(2) {
        core.handle(msg(rc));
    }
    assert_eq!(core.round(), Some(2), "a quorum of round changes moved us");
    let block_a = net.block(h, 2, p2, 1);
    let out = core.handle(msg(net.proposal(
        p2,
        1,
        2,
        block_a.clone(),
        &rcs(2),
        vec![],
    )));
    let out = approve(&mut core, &out);
    assert_eq!(prepares_sent(&out), vec![(2, digest(&block_a))]);
    let (persist, prepare) = persist_then(&out, |m| matches!(m, QbftMessage::Prepare(_)));
    assert!(persist < prepare, "persisted after preparing: {out:?}");
    let persisted = last_persist(&out).unwrap();
    assert_eq!((persisted.height, persisted.round), (1, 2));

    let mut core = restart(&net, v, &persisted);
    // Justified proposals of other blocks for rounds 0, 1 and 2 are all refused.
    for round in 0..=2u32 {
        let p = net.proposer(h, round);
        if p == v {
            continue;
        }
        let justification = if round == 0 { Vec::new() } else { rcs(round) };
        let block = net.block(h, round, p, 100 + u64::from(round));
        let out = core.handle(msg(net.proposal(
            p,
            1,
            round,
            block,
            &justification,
            vec![],
        )));
        let out = [approve(&mut core, &out), out].concat();
        assert!(prepares_sent(&out).is_empty(), "round {round}: {out:?}");
    }
    // Its block timer resumes above round 2, and round 3 proceeds.
    let out = core.handle(block_timer(h));
    assert_eq!(round_changes_sent(&out), vec![(3, None)]);
    let p3 = net.proposer(h, 3);
    if p3 != v {
        let block = net.block(h, 3, p3, 7);
        let out = core.handle(msg(net.proposal(p3, 1, 3, block.clone(), &rcs(3), vec![])));
        let out = approve(&mut core, &out);
        assert_eq!(prepares_sent(&out), vec![(3, digest(&block))]);
    }
}

#[test]
fn a_restored_validator_carries_its_prepared_certificate() {
    let net = Net::new(4);
    let h = &net.head;
    let p = net.proposer(h, 0);
    let v = (p + 1) % 4;
    let x = (p + 2) % 4;
    let mut core = net.core(v);
    core.handle(new_head(h));
    core.handle(block_timer(h));
    let block = net.block(h, 0, p, 1);
    let d = digest(&block);
    let out = core.handle(msg(net.proposal(p, 1, 0, block, &[], vec![])));
    approve(&mut core, &out);
    core.handle(msg(net.prepare(p, 1, 0, d)));
    let out = core.handle(msg(net.prepare(x, 1, 0, d)));
    let (persist, commit) = persist_then(&out, |m| matches!(m, QbftMessage::Commit(_)));
    assert!(persist < commit, "persisted after committing: {out:?}");
    let persisted = last_persist(&out).unwrap();
    assert_eq!(persisted.round, 0);
    assert!(
        persisted.encode().len() > 300,
        "the certificate's block and prepares are kept"
    );

    let mut core = restart(&net, v, &persisted);
    let out = core.handle(block_timer(h));
    let sent = broadcasts(&out);
    let Some(QbftMessage::RoundChange {
        round_change,
        prepared_block: Some(prepared_block),
        prepares,
    }) = sent.first()
    else {
        panic!("no round change with a certificate: {sent:?}")
    };
    assert_eq!(round_change.payload.round, 1);
    assert_eq!(
        round_change.payload.prepared,
        Some(consort_qbft::PreparedRound {
            round: 0,
            digest: d
        })
    );
    assert_eq!(digest(prepared_block), d);
    assert_eq!(prepares.len(), 3);
}

#[test]
fn a_round_change_is_persisted_and_a_restart_resumes_above_it() {
    let net = Net::new(4);
    let h = &net.head;
    let v = (net.proposer(h, 1) + 1) % 4;
    let mut core = net.core(v);
    core.handle(new_head(h));
    let out = core.handle(block_timer(h));
    let seq = out
        .iter()
        .find_map(|o| match o {
            Output::ArmRoundTimer { seq, .. } => Some(*seq),
            _ => None,
        })
        .unwrap();
    let out = core.handle(Input::RoundTimer {
        height: 1,
        round: 0,
        seq,
    });
    assert_eq!(round_changes_sent(&out), vec![(1, None)]);
    let (persist, rc) = persist_then(&out, |m| matches!(m, QbftMessage::RoundChange { .. }));
    assert!(
        persist < rc,
        "round change sent before it was persisted: {out:?}"
    );
    let persisted = last_persist(&out).unwrap();
    assert_eq!(persisted.round, 1);

    // Having asked for round 1, the restarted validator takes no part in round 1 or below.
    let mut core = restart(&net, v, &persisted);
    let p1 = net.proposer(h, 1);
    let rcs: Vec<QbftMessage> = (0..4)
        .filter(|i| *i != v)
        .map(|i| net.round_change(i, 1, 1, None))
        .collect();
    let out = core.handle(msg(net.proposal(
        p1,
        1,
        1,
        net.block(h, 1, p1, 2),
        &rcs,
        vec![],
    )));
    assert!(approve(&mut core, &out).is_empty() && prepares_sent(&out).is_empty());
    let out = core.handle(block_timer(h));
    assert_eq!(round_changes_sent(&out), vec![(2, None)]);
}

#[test]
fn a_proposer_persists_its_round_before_proposing() {
    let net = Net::new(4);
    let h = &net.head;
    let v = net.proposer(h, 0);
    let mut core = net.core(v);
    core.handle(new_head(h));
    let out = core.handle(block_timer(h));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::BuildBlock { round: 0, .. })));
    let out = core.handle(Input::BlockBuilt {
        height: 1,
        round: 0,
        block: Box::new(net.block(h, 0, v, 1)),
        now_ms: h.timestamp * 1000 + 1000,
    });
    let (persist, proposal) = persist_then(&out, |m| matches!(m, QbftMessage::Proposal { .. }));
    assert!(persist < proposal, "proposed before persisting: {out:?}");
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::Persist(_)))
            .count(),
        1
    );

    // Restarted, it does not build a second block for round 0.
    let mut core = restart(&net, v, &last_persist(&out).unwrap());
    let out = core.handle(block_timer(h));
    assert!(
        !out.iter().any(|o| matches!(o, Output::BuildBlock { .. })),
        "{out:?}"
    );
    assert_eq!(round_changes_sent(&out), vec![(1, None)]);
}

#[test]
fn persisted_state_round_trips_and_rejects_damage() {
    let net = Net::new(4);
    let h = &net.head;
    let p = net.proposer(h, 0);
    let v = (p + 1) % 4;
    let x = (p + 2) % 4;
    let mut core = net.core(v);
    core.handle(new_head(h));
    core.handle(block_timer(h));
    let block = net.block(h, 0, p, 1);
    let d = digest(&block);
    let out = core.handle(msg(net.proposal(p, 1, 0, block, &[], vec![])));
    let without = last_persist(&approve(&mut core, &out)).unwrap();
    core.handle(msg(net.prepare(p, 1, 0, d)));
    let with = last_persist(&core.handle(msg(net.prepare(x, 1, 0, d)))).unwrap();
    assert_ne!(without, with);
    for persisted in [without, with] {
        let bytes = persisted.encode();
        assert_eq!(Persisted::decode(&bytes).unwrap(), persisted);
        assert_eq!(Persisted::decode(&bytes).unwrap().encode(), bytes);
        for cut in 0..bytes.len() {
            assert!(Persisted::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0x80);
        assert!(Persisted::decode(&longer).is_err());
    }
}

/// A proposer that asked for a new block on a quorum of unprepared round changes proposes
/// it with that quorum as justification, even if a prepared round change arrives while the
/// block is built (with it, the justification would demand the prepared block instead).
#[test]
fn a_round_change_arriving_while_the_block_is_built_does_not_spoil_the_proposal() {
    let net = Net::new(4);
    let h = &net.head;
    let p = net.proposer(h, 2);
    let others: Vec<usize> = (0..4).filter(|i| *i != p).collect();
    let mut core = net.core(p);
    core.handle(new_head(h));
    core.handle(block_timer(h));
    // Two unprepared round changes for round 2 and our own make a quorum: build a block.
    core.handle(msg(net.round_change(others[0], 1, 2, None)));
    let out = core.handle(msg(net.round_change(others[1], 1, 2, None)));
    let out = [out, core.handle(msg(net.round_change(p, 1, 2, None)))].concat();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::BuildBlock { round: 2, .. })),
        "{out:?}"
    );
    // Meanwhile the third validator's round change arrives, prepared in round 1.
    let p1 = net.proposer(h, 1);
    let prepared = net.block(h, 1, p1, 4);
    let prepares = (0..3)
        .map(|i| net.signed_prepare(i, 1, 1, digest(&prepared)))
        .collect();
    core.handle(msg(net.round_change(
        others[2],
        1,
        2,
        Some((&prepared, prepares)),
    )));
    let out = core.handle(Input::BlockBuilt {
        height: 1,
        round: 2,
        block: Box::new(net.block(h, 2, p, 8)),
        now_ms: h.timestamp * 1000 + 9_000,
    });
    let proposal = broadcasts(&out)
        .into_iter()
        .find(|m| matches!(m, QbftMessage::Proposal { .. }))
        .expect("a proposal");
    // Every other validator accepts it as justified.
    for v in others {
        let mut other = net.core(v);
        other.handle(new_head(h));
        let out = other.handle(msg(proposal.clone()));
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::CheckProposal { round: 2, .. })),
            "validator {v} refused the proposal: {out:?}"
        );
    }
}

// ---- Focused tests: prepared certificates in round changes and proposals ----

#[test]
fn a_proposal_must_re_propose_the_best_prepared_block_with_proof() {
    let net = Net::new(4);
    let h = &net.head;
    let p1 = net.proposer(h, 1);
    let v = (p1 + 1) % 4;
    let others: Vec<usize> = (0..4).filter(|i| *i != v).collect();
    let p0 = net.proposer(h, 0);
    let prepared = net.block(h, 0, p0, 1);
    let d = digest(&prepared);
    let prepares: Vec<_> = (0..3).map(|i| net.signed_prepare(i, 1, 0, d)).collect();
    // The round-1 quorum: one round change carries a certificate for `prepared`.
    let rcs: Vec<QbftMessage> = others
        .iter()
        .enumerate()
        .map(|(k, i)| {
            let cert = (k == 0).then(|| (&prepared, prepares.clone()));
            net.round_change(*i, 1, 1, cert)
        })
        .collect();
    let fresh = net.block(h, 1, p1, 9);
    let reproposed = consort_qbft::with_round(&prepared, 1).unwrap().0;
    let checked = |m: QbftMessage| {
        let mut core = net.core(v);
        core.handle(new_head(h));
        core.handle(msg(m))
            .iter()
            .any(|o| matches!(o, Output::CheckProposal { round: 1, .. }))
    };
    // A new block instead of the prepared one is refused, with or without the prepares.
    assert!(!checked(net.proposal(
        p1,
        1,
        1,
        fresh.clone(),
        &rcs,
        vec![]
    )));
    assert!(!checked(net.proposal(
        p1,
        1,
        1,
        fresh,
        &rcs,
        prepares.clone()
    )));
    // The prepared block without a quorum of its prepares is refused.
    assert!(!checked(net.proposal(
        p1,
        1,
        1,
        reproposed.clone(),
        &rcs,
        prepares[..2].to_vec()
    )));
    // A round change claiming a certificate it does not carry (a forged claim of the
    // proposer's own) is refused too.
    let forged_block = net.block(h, 1, p1, 5);
    let claim = consort_qbft::with_round(&forged_block, 0).unwrap().1;
    let forged = QbftMessage::round_change(
        consort_qbft::RoundChangePayload {
            height: 1,
            round: 1,
            prepared: Some(consort_qbft::PreparedRound {
                round: 0,
                digest: claim,
            }),
        },
        None,
        Vec::new(),
        &net.keys[p1],
        net.addrs[p1],
    );
    let mut forged_rcs = rcs[1..].to_vec();
    forged_rcs.push(forged);
    assert!(!checked(net.proposal(
        p1,
        1,
        1,
        forged_block,
        &forged_rcs,
        vec![]
    )));
    // The prepared block, its round replaced, with its prepares, is accepted.
    assert!(checked(net.proposal(p1, 1, 1, reproposed, &rcs, prepares)));
}

#[test]
fn a_round_change_with_an_unproven_certificate_is_ignored() {
    let net = Net::new(4);
    let h = &net.head;
    let v = net.proposer(h, 1);
    let others: Vec<usize> = (0..4).filter(|i| *i != v).collect();
    let mut core = net.core(v);
    core.handle(new_head(h));
    core.handle(block_timer(h));
    // A certificate for a block only one prepare supports.
    let bogus = net.block(h, 0, others[2], 3);
    let one = vec![net.signed_prepare(others[2], 1, 0, digest(&bogus))];
    let out = core.handle(msg(net.round_change(others[2], 1, 1, Some((&bogus, one)))));
    assert!(out.is_empty(), "{out:?}");
    core.handle(msg(net.round_change(others[0], 1, 1, None)));
    let out = core.handle(msg(net.round_change(others[1], 1, 1, None)));
    // Two valid round changes (f+1) bring us to round 1; with ours they are a quorum, and
    // none is prepared: we build a new block rather than re-propose the bogus one.
    assert_eq!(core.round(), Some(1));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::BuildBlock { round: 1, .. })),
        "{out:?}"
    );
    assert!(!broadcasts(&out)
        .iter()
        .any(|m| matches!(m, QbftMessage::Proposal { .. })));
}
