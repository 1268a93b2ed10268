//! Besu's QBFT messages: payloads, signed wrappers and their RLP, as on the `istanbul/100` wire.
//! A signature covers `keccak(rlp([code, payload]))`, with the payload exactly as received.

use crate::block::Block;
use alloy_primitives::{keccak256, Address, B256};
use alloy_rlp::{Decodable, Encodable, Header as RlpHeader};
use consort_primitives::{recover_commit_seal_signer, sign_commit_seal, CommitSeal};
use secp256k1::SecretKey;

/// Rounds above this are rejected (Besu's `MAX_ALLOWED_ROUND`, GHSA-23rh-rrqg-wq82).
pub const MAX_ROUND: u32 = 1000;

const PROPOSAL: u8 = 0x12;
const PREPARE: u8 = 0x13;
const COMMIT: u8 = 0x14;
const ROUND_CHANGE: u8 = 0x15;

/// Why bytes are not a valid QBFT message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Malformed RLP or a wrong shape.
    #[error("malformed QBFT message: {0}")]
    Rlp(String),
    /// The message code is not one of QBFT's.
    #[error("unknown QBFT message code {0:#x}")]
    UnknownCode(u8),
    /// The signature does not recover an author.
    #[error("QBFT message signature is invalid")]
    BadSignature,
    /// The round is above [`MAX_ROUND`].
    #[error("round {0} is above the limit {MAX_ROUND}")]
    RoundTooHigh(u32),
    /// The author is not one of the validators the message was checked against.
    #[error("QBFT message author {0} is not a validator")]
    NotValidator(Address),
}

impl From<alloy_rlp::Error> for MessageError {
    fn from(e: alloy_rlp::Error) -> Self {
        MessageError::Rlp(e.to_string())
    }
}

/// `[sequence, round, digest]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreparePayload {
    /// Block height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// Commit-seal digest of the proposed block.
    pub digest: B256,
}

/// `[sequence, round, digest, committedSeal]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPayload {
    /// Block height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// Commit-seal digest of the proposed block.
    pub digest: B256,
    /// The author's seal over `digest`.
    pub seal: CommitSeal,
}

/// The round a validator prepared in and the digest of the block it prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreparedRound {
    /// The prepared round.
    pub round: u32,
    /// The prepared block's commit-seal digest.
    pub digest: B256,
}

/// `[sequence, targetRound, [] | [preparedRound, preparedBlockHash]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundChangePayload {
    /// Block height.
    pub height: u64,
    /// The round the author wants to move to.
    pub round: u32,
    /// What the author last prepared at this height, if anything.
    pub prepared: Option<PreparedRound>,
}

/// `[sequence, round, block]`, or with a fourth block-access-list item (Besu ≥ 26.1).
#[derive(Debug, Clone, PartialEq)]
pub struct ProposalPayload {
    /// Block height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// The proposed block (extraData round = `round`, no seals).
    pub block: Block,
    /// Whether the payload carried Besu 26's (empty) block-access-list item.
    pub with_bal: bool,
}

/// A payload, its signature and the author recovered from it. `raw` is the payload's RLP as
/// signed, kept so a message re-encodes to exactly what was received.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed<P> {
    /// The payload.
    pub payload: P,
    /// 65-byte `r || s || recovery id` signature.
    pub signature: CommitSeal,
    /// The signer.
    pub author: Address,
    raw: Vec<u8>,
}

/// Payloads that can be signed: their code and RLP body. Not nameable outside the crate.
pub trait Payload: Sized {
    /// The message code.
    const CODE: u8;
    /// Appends the payload's RLP.
    fn encode_payload(&self, out: &mut Vec<u8>);
    /// Reads the payload's RLP.
    fn decode_payload(buf: &mut &[u8]) -> Result<Self, MessageError>;
}

fn signing_hash(code: u8, raw_payload: &[u8]) -> B256 {
    let mut out = Vec::with_capacity(raw_payload.len() + 8);
    RlpHeader {
        list: true,
        payload_length: code.length() + raw_payload.len(),
    }
    .encode(&mut out);
    code.encode(&mut out);
    out.extend_from_slice(raw_payload);
    keccak256(out)
}

impl<P: Payload> Signed<P> {
    /// Signs `payload` with `key`.
    fn sign(payload: P, key: &SecretKey, author: Address) -> Self {
        let mut raw = Vec::new();
        payload.encode_payload(&mut raw);
        let signature = sign_commit_seal(signing_hash(P::CODE, &raw), key);
        Signed {
            payload,
            signature,
            author,
            raw,
        }
    }

    /// Bytes this signed payload occupies (payload as received plus signature).
    fn size(&self) -> usize {
        self.raw.len() + 67
    }

    fn encode(&self, out: &mut Vec<u8>) {
        RlpHeader {
            list: true,
            payload_length: self.raw.len() + self.signature.0.as_slice().length(),
        }
        .encode(out);
        out.extend_from_slice(&self.raw);
        self.signature.0.as_slice().encode(out);
    }

    fn decode(buf: &mut &[u8]) -> Result<Self, MessageError> {
        let mut body = list(buf)?;
        let start = body;
        let payload = P::decode_payload(&mut body)?;
        let raw = start
            .get(..start.len() - body.len())
            .ok_or_else(|| MessageError::Rlp("payload length".into()))?
            .to_vec();
        let sig = alloy_primitives::Bytes::decode(&mut body)?;
        let signature = CommitSeal::try_from(sig.as_ref())
            .map_err(|_| MessageError::Rlp(format!("signature of {} bytes", sig.len())))?;
        if !body.is_empty() {
            return Err(MessageError::Rlp("trailing items in signed data".into()));
        }
        if !is_canonical(&signature) {
            return Err(MessageError::BadSignature);
        }
        let author = recover_commit_seal_signer(signing_hash(P::CODE, &raw), &signature)
            .ok_or(MessageError::BadSignature)?;
        Ok(Signed {
            payload,
            signature,
            author,
            raw,
        })
    }
}

/// secp256k1's group order divided by two: larger `s` values are malleable copies.
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

/// Whether a signature is in the one form Besu accepts: recovery id 0 or 1 and low `s`.
fn is_canonical(signature: &CommitSeal) -> bool {
    let bytes = signature.0;
    let low_s = bytes.get(32..64).is_some_and(|s| s <= &HALF_ORDER[..]);
    low_s && bytes.get(64).is_some_and(|v| *v <= 1)
}

/// Reads a list header and returns its body, advancing `buf` past the list.
fn list<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], MessageError> {
    let header = RlpHeader::decode(buf)?;
    if !header.list {
        return Err(MessageError::Rlp("expected a list".into()));
    }
    let (body, rest) = buf
        .split_at_checked(header.payload_length)
        .ok_or_else(|| MessageError::Rlp("list longer than the input".into()))?;
    *buf = rest;
    Ok(body)
}

fn list_header(payload_length: usize, out: &mut Vec<u8>) {
    RlpHeader {
        list: true,
        payload_length,
    }
    .encode(out);
}

fn round(buf: &mut &[u8]) -> Result<u32, MessageError> {
    let r = u32::decode(buf)?;
    if r > MAX_ROUND {
        return Err(MessageError::RoundTooHigh(r));
    }
    Ok(r)
}

fn finish(body: &[u8]) -> Result<(), MessageError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(MessageError::Rlp("trailing items in payload".into()))
    }
}

impl Payload for PreparePayload {
    const CODE: u8 = PREPARE;
    fn encode_payload(&self, out: &mut Vec<u8>) {
        list_header(
            self.height.length() + self.round.length() + self.digest.length(),
            out,
        );
        self.height.encode(out);
        self.round.encode(out);
        self.digest.encode(out);
    }
    fn decode_payload(buf: &mut &[u8]) -> Result<Self, MessageError> {
        let mut body = list(buf)?;
        let p = PreparePayload {
            height: u64::decode(&mut body)?,
            round: round(&mut body)?,
            digest: B256::decode(&mut body)?,
        };
        finish(body)?;
        Ok(p)
    }
}

impl Payload for CommitPayload {
    const CODE: u8 = COMMIT;
    fn encode_payload(&self, out: &mut Vec<u8>) {
        let seal = self.seal.0.as_slice();
        list_header(
            self.height.length() + self.round.length() + self.digest.length() + seal.length(),
            out,
        );
        self.height.encode(out);
        self.round.encode(out);
        self.digest.encode(out);
        seal.encode(out);
    }
    fn decode_payload(buf: &mut &[u8]) -> Result<Self, MessageError> {
        let mut body = list(buf)?;
        let height = u64::decode(&mut body)?;
        let round = round(&mut body)?;
        let digest = B256::decode(&mut body)?;
        let seal = alloy_primitives::Bytes::decode(&mut body)?;
        let seal = CommitSeal::try_from(seal.as_ref())
            .map_err(|_| MessageError::Rlp(format!("commit seal of {} bytes", seal.len())))?;
        finish(body)?;
        Ok(CommitPayload {
            height,
            round,
            digest,
            seal,
        })
    }
}

impl Payload for RoundChangePayload {
    const CODE: u8 = ROUND_CHANGE;
    fn encode_payload(&self, out: &mut Vec<u8>) {
        let prepared_len = self
            .prepared
            .map_or(0, |p| p.round.length() + p.digest.length());
        let prepared_total = alloy_rlp::length_of_length(prepared_len) + prepared_len;
        list_header(
            self.height.length() + self.round.length() + prepared_total,
            out,
        );
        self.height.encode(out);
        self.round.encode(out);
        list_header(prepared_len, out);
        if let Some(p) = self.prepared {
            p.round.encode(out);
            p.digest.encode(out);
        }
    }
    fn decode_payload(buf: &mut &[u8]) -> Result<Self, MessageError> {
        let mut body = list(buf)?;
        let height = u64::decode(&mut body)?;
        let target = round(&mut body)?;
        let mut meta = list(&mut body)?;
        let prepared = if meta.is_empty() {
            None
        } else {
            let p = PreparedRound {
                round: round(&mut meta)?,
                digest: B256::decode(&mut meta)?,
            };
            finish(meta)?;
            Some(p)
        };
        finish(body)?;
        Ok(RoundChangePayload {
            height,
            round: target,
            prepared,
        })
    }
}

impl Payload for ProposalPayload {
    const CODE: u8 = PROPOSAL;
    fn encode_payload(&self, out: &mut Vec<u8>) {
        let bal = if self.with_bal { 1 } else { 0 };
        list_header(
            self.height.length() + self.round.length() + self.block.length() + bal,
            out,
        );
        self.height.encode(out);
        self.round.encode(out);
        self.block.encode(out);
        if self.with_bal {
            out.push(alloy_rlp::EMPTY_STRING_CODE);
        }
    }
    fn decode_payload(buf: &mut &[u8]) -> Result<Self, MessageError> {
        let mut body = list(buf)?;
        let height = u64::decode(&mut body)?;
        let round = round(&mut body)?;
        let block = Block::decode(&mut body)?;
        let with_bal = match body.first() {
            None => false,
            Some(&alloy_rlp::EMPTY_STRING_CODE) if body.len() == 1 => true,
            Some(_) => {
                return Err(MessageError::Rlp(
                    "proposals with a block access list are not supported".into(),
                ))
            }
        };
        Ok(ProposalPayload {
            height,
            round,
            block,
            with_bal,
        })
    }
}

/// A QBFT message as it travels between validators.
#[derive(Debug, Clone, PartialEq)]
pub enum QbftMessage {
    /// A block proposal with its justification (empty in round 0).
    Proposal {
        /// The signed proposal.
        proposal: Signed<ProposalPayload>,
        /// Round-change certificate: the round changes that justify a round > 0.
        round_changes: Vec<Signed<RoundChangePayload>>,
        /// Prepares of the best prepared certificate among them.
        prepares: Vec<Signed<PreparePayload>>,
    },
    /// A vote that the proposal is valid.
    Prepare(Signed<PreparePayload>),
    /// A vote to commit, with the author's seal.
    Commit(Signed<CommitPayload>),
    /// A request to move to a higher round, carrying the author's prepared certificate.
    RoundChange {
        /// The signed round change.
        round_change: Signed<RoundChangePayload>,
        /// The prepared block, if the author prepared one.
        prepared_block: Option<Block>,
        /// The prepares for it.
        prepares: Vec<Signed<PreparePayload>>,
    },
}

fn encode_signed_list<P: Payload>(items: &[Signed<P>], out: &mut Vec<u8>) {
    let mut body = Vec::new();
    for item in items {
        item.encode(&mut body);
    }
    list_header(body.len(), out);
    out.extend_from_slice(&body);
}

fn decode_signed_list<P: Payload>(
    buf: &mut &[u8],
    limit: usize,
) -> Result<Vec<Signed<P>>, MessageError> {
    let mut body = list(buf)?;
    let mut items = Vec::new();
    while !body.is_empty() {
        if items.len() >= limit {
            return Err(MessageError::Rlp(format!(
                "more than {limit} justification items"
            )));
        }
        items.push(Signed::decode(&mut body)?);
    }
    Ok(items)
}

/// Most round changes or prepares a justification may carry (more than any validator set).
const MAX_JUSTIFICATION: usize = 1024;

impl QbftMessage {
    /// Signs a Prepare.
    pub fn prepare(payload: PreparePayload, key: &SecretKey, author: Address) -> Self {
        QbftMessage::Prepare(Signed::sign(payload, key, author))
    }

    /// Signs a Commit.
    pub fn commit(payload: CommitPayload, key: &SecretKey, author: Address) -> Self {
        QbftMessage::Commit(Signed::sign(payload, key, author))
    }

    /// Signs a Proposal (legacy three-item payload, which every Besu and GoQuorum decodes).
    pub fn proposal(
        height: u64,
        round: u32,
        block: Block,
        round_changes: Vec<Signed<RoundChangePayload>>,
        prepares: Vec<Signed<PreparePayload>>,
        key: &SecretKey,
        author: Address,
    ) -> Self {
        let payload = ProposalPayload {
            height,
            round,
            block,
            with_bal: false,
        };
        QbftMessage::Proposal {
            proposal: Signed::sign(payload, key, author),
            round_changes,
            prepares,
        }
    }

    /// Signs a RoundChange.
    pub fn round_change(
        payload: RoundChangePayload,
        prepared_block: Option<Block>,
        prepares: Vec<Signed<PreparePayload>>,
        key: &SecretKey,
        author: Address,
    ) -> Self {
        QbftMessage::RoundChange {
            round_change: Signed::sign(payload, key, author),
            prepared_block,
            prepares,
        }
    }

    /// The message code (0x12 to 0x15).
    pub fn code(&self) -> u8 {
        match self {
            QbftMessage::Proposal { .. } => PROPOSAL,
            QbftMessage::Prepare(_) => PREPARE,
            QbftMessage::Commit(_) => COMMIT,
            QbftMessage::RoundChange { .. } => ROUND_CHANGE,
        }
    }

    /// Roughly the bytes the message occupies in memory and on the wire; bounds buffers.
    pub fn size(&self) -> usize {
        let list = |items: &[Signed<PreparePayload>]| items.iter().map(Signed::size).sum::<usize>();
        match self {
            QbftMessage::Proposal {
                proposal,
                round_changes,
                prepares,
            } => {
                proposal.size()
                    + round_changes.iter().map(Signed::size).sum::<usize>()
                    + list(prepares)
            }
            QbftMessage::Prepare(s) => s.size(),
            QbftMessage::Commit(s) => s.size(),
            QbftMessage::RoundChange {
                round_change,
                prepared_block,
                prepares,
            } => {
                round_change.size()
                    + prepared_block.as_ref().map_or(0, |b| b.length())
                    + list(prepares)
            }
        }
    }

    /// The signer of the message.
    pub fn author(&self) -> Address {
        match self {
            QbftMessage::Proposal { proposal, .. } => proposal.author,
            QbftMessage::Prepare(s) => s.author,
            QbftMessage::Commit(s) => s.author,
            QbftMessage::RoundChange { round_change, .. } => round_change.author,
        }
    }

    /// Height and round the message is about.
    pub fn height_and_round(&self) -> (u64, u32) {
        match self {
            QbftMessage::Proposal { proposal, .. } => {
                (proposal.payload.height, proposal.payload.round)
            }
            QbftMessage::Prepare(s) => (s.payload.height, s.payload.round),
            QbftMessage::Commit(s) => (s.payload.height, s.payload.round),
            QbftMessage::RoundChange { round_change, .. } => {
                (round_change.payload.height, round_change.payload.round)
            }
        }
    }

    /// The message's RLP (without its code, which the transport carries).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            QbftMessage::Prepare(s) => s.encode(&mut out),
            QbftMessage::Commit(s) => s.encode(&mut out),
            QbftMessage::Proposal {
                proposal,
                round_changes,
                prepares,
            } => {
                let mut body = Vec::new();
                proposal.encode(&mut body);
                let mut justification = Vec::new();
                encode_signed_list(round_changes, &mut justification);
                encode_signed_list(prepares, &mut justification);
                list_header(justification.len(), &mut body);
                body.extend_from_slice(&justification);
                list_header(body.len(), &mut out);
                out.extend_from_slice(&body);
            }
            QbftMessage::RoundChange {
                round_change,
                prepared_block,
                prepares,
            } => {
                let mut first = Vec::new();
                round_change.encode(&mut first);
                round_change_list(first, prepared_block.as_ref(), prepares, &mut out);
            }
        }
        out
    }

    /// The gossip form: the code byte, then the message RLP.
    pub fn encode_wire(&self) -> Vec<u8> {
        let body = self.encode();
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(self.code());
        out.extend_from_slice(&body);
        out
    }

    /// Reads [`QbftMessage::encode_wire`]'s form, checking every signature in it.
    pub fn decode_wire(bytes: &[u8]) -> Result<Self, MessageError> {
        let (&code, body) = bytes
            .split_first()
            .ok_or_else(|| MessageError::Rlp("empty message".into()))?;
        Self::decode(code, body)
    }

    /// Reads [`QbftMessage::encode_wire`]'s form from an untrusted peer, cheapest check first:
    /// the outer signature is recovered (one recovery) and its author must be one of
    /// `validators` before any piggybacked round change or prepare is decoded or recovered, and
    /// a justification may carry at most one item per validator.
    pub fn decode_wire_from(bytes: &[u8], validators: &[Address]) -> Result<Self, MessageError> {
        let (&code, body) = bytes
            .split_first()
            .ok_or_else(|| MessageError::Rlp("empty message".into()))?;
        let admit = |author: Address| {
            if validators.contains(&author) {
                Ok(validators.len())
            } else {
                Err(MessageError::NotValidator(author))
            }
        };
        Self::decode_gated(code, body, &admit)
    }

    /// Decodes a message of type `code`, checking every signature in it.
    pub fn decode(code: u8, bytes: &[u8]) -> Result<Self, MessageError> {
        Self::decode_gated(code, bytes, &|_| Ok(MAX_JUSTIFICATION))
    }

    /// Decodes a message of type `code`. `admit` sees the author of the outer signed payload
    /// before anything else is decoded and answers how many justification items it may carry.
    fn decode_gated(
        code: u8,
        bytes: &[u8],
        admit: &dyn Fn(Address) -> Result<usize, MessageError>,
    ) -> Result<Self, MessageError> {
        let mut buf = bytes;
        let msg = match code {
            PREPARE => {
                let signed = Signed::decode(&mut buf)?;
                admit(signed.author)?;
                QbftMessage::Prepare(signed)
            }
            COMMIT => {
                let signed = Signed::decode(&mut buf)?;
                admit(signed.author)?;
                QbftMessage::Commit(signed)
            }
            PROPOSAL => {
                let mut body = list(&mut buf)?;
                let proposal: Signed<ProposalPayload> = Signed::decode(&mut body)?;
                let limit = admit(proposal.author)?.min(MAX_JUSTIFICATION);
                let mut justification = list(&mut body)?;
                let round_changes = decode_signed_list(&mut justification, limit)?;
                let prepares = decode_signed_list(&mut justification, limit)?;
                finish(justification)?;
                finish(body)?;
                QbftMessage::Proposal {
                    proposal,
                    round_changes,
                    prepares,
                }
            }
            ROUND_CHANGE => {
                let mut body = list(&mut buf)?;
                let round_change: Signed<RoundChangePayload> = Signed::decode(&mut body)?;
                let limit = admit(round_change.author)?.min(MAX_JUSTIFICATION);
                let prepared_block = optional_block(&mut body)?;
                // Besu ≥ 26.1 inserts an (empty) block access list before the prepares.
                if body.first() == Some(&alloy_rlp::EMPTY_STRING_CODE) {
                    body = body.get(1..).unwrap_or_default();
                }
                let prepares = decode_signed_list(&mut body, limit)?;
                finish(body)?;
                QbftMessage::RoundChange {
                    round_change,
                    prepared_block,
                    prepares,
                }
            }
            other => return Err(MessageError::UnknownCode(other)),
        };
        if !buf.is_empty() {
            return Err(MessageError::Rlp("trailing bytes after message".into()));
        }
        Ok(msg)
    }
}

/// `[roundChangePayload, block or [], [signed prepares]]`: a round change without signature,
/// the form a validator's persisted consensus state takes.
pub(crate) fn encode_unsigned_round_change(
    payload: &RoundChangePayload,
    block: Option<&Block>,
    prepares: &[Signed<PreparePayload>],
) -> Vec<u8> {
    let mut first = Vec::new();
    payload.encode_payload(&mut first);
    let mut out = Vec::new();
    round_change_list(first, block, prepares, &mut out);
    out
}

/// `[first, block or [], [signed prepares]]`: the list a round change and a persisted state share.
fn round_change_list(
    mut body: Vec<u8>,
    block: Option<&Block>,
    prepares: &[Signed<PreparePayload>],
    out: &mut Vec<u8>,
) {
    match block {
        Some(b) => b.encode(&mut body),
        None => list_header(0, &mut body),
    }
    encode_signed_list(prepares, &mut body);
    list_header(body.len(), out);
    out.extend_from_slice(&body);
}

/// A prepared block, or `None` for the empty list that stands for no block.
fn optional_block(body: &mut &[u8]) -> Result<Option<Block>, MessageError> {
    if body.first() == Some(&alloy_rlp::EMPTY_LIST_CODE) {
        *body = body.get(1..).unwrap_or_default();
        return Ok(None);
    }
    Ok(Some(Block::decode(body)?))
}

/// A round change's payload, prepared block and prepares, without its signature.
type UnsignedRoundChange = (
    RoundChangePayload,
    Option<Block>,
    Vec<Signed<PreparePayload>>,
);

/// Reads [`encode_unsigned_round_change`]'s output.
pub(crate) fn decode_unsigned_round_change(
    bytes: &[u8],
) -> Result<UnsignedRoundChange, MessageError> {
    let mut buf = bytes;
    let mut body = list(&mut buf)?;
    let payload = RoundChangePayload::decode_payload(&mut body)?;
    let block = optional_block(&mut body)?;
    let prepares = decode_signed_list(&mut body, MAX_JUSTIFICATION)?;
    finish(body)?;
    finish(buf)?;
    Ok((payload, block, prepares))
}
