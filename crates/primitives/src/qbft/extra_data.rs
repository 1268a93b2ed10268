use alloy_primitives::{Address, Bytes, FixedBytes};
use alloy_rlp::{Decodable, Encodable, Header as RlpHeader};

/// A committed seal: a secp256k1 signature `r || s || recId` with `recId` in {0, 1}.
pub type CommitSeal = FixedBytes<65>;

/// A validator vote carried in a block's extraData (block-header validator mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    /// The validator proposed for addition or removal.
    pub recipient: Address,
    /// `true` to add the recipient, `false` to drop it.
    pub add: bool,
}

/// The QBFT `extraData` field: `RLP([vanity, validators, vote, round, committedSeals])`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QbftExtraData {
    /// Free-form vanity bytes, 32 bytes when written by a validator.
    pub vanity: Bytes,
    /// The validators after this block (empty in validator-contract mode).
    pub validators: Vec<Address>,
    /// An optional validator vote.
    pub vote: Option<Vote>,
    /// The round in which the block was committed.
    pub round: u32,
    /// The committed seals of a quorum of validators.
    pub seals: Vec<CommitSeal>,
}

/// Why an extraData field could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QbftExtraDataError {
    /// The bytes are not valid RLP of the expected shape.
    #[error("invalid QBFT extraData RLP: {0}")]
    Rlp(#[from] alloy_rlp::Error),
    /// A vote item has a type byte other than `0xff` (add) or empty/`0x00` (drop).
    #[error("invalid QBFT vote type byte 0x{0:02x}")]
    VoteType(u8),
    /// Bytes follow the extraData list.
    #[error("{0} trailing bytes after the QBFT extraData list")]
    TrailingBytes(usize),
    /// The extraData decodes, but not from its one canonical encoding (extra list items, a
    /// legacy `0x00` drop vote, non-minimal RLP): the hashes, which re-encode it, would cover
    /// other bytes than the block carries.
    #[error("QBFT extraData is not in its canonical encoding")]
    NonCanonical,
}

const VOTE_ADD: u8 = 0xff;

impl QbftExtraData {
    /// The genesis extraData for a validator set: zero vanity, no vote, round 0, no seals.
    pub fn genesis(validators: Vec<Address>) -> Self {
        Self {
            vanity: Bytes::from(vec![0u8; 32]),
            validators,
            ..Self::default()
        }
    }

    /// Decodes extraData as Besu does: trailing items inside the list are ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, QbftExtraDataError> {
        let mut buf = bytes;
        let outer = RlpHeader::decode(&mut buf)?;
        if !outer.list {
            return Err(alloy_rlp::Error::UnexpectedString.into());
        }
        let (mut payload, rest) = buf
            .split_at_checked(outer.payload_length)
            .ok_or(alloy_rlp::Error::InputTooShort)?;
        if !rest.is_empty() {
            return Err(QbftExtraDataError::TrailingBytes(rest.len()));
        }
        let vanity = Bytes::decode(&mut payload)?;
        let validators = Vec::<Address>::decode(&mut payload)?;
        let vote = decode_vote(&mut payload)?;
        let round = u32::decode(&mut payload)?;
        let seals = Vec::<CommitSeal>::decode(&mut payload)?;
        Ok(Self {
            vanity,
            validators,
            vote,
            round,
            seals,
        })
    }

    /// Decodes extraData that must be exactly [`QbftExtraData::encode`]'s output, so the bytes a
    /// block carries are the bytes its hash and commit seals cover. Blocks built, proposed and
    /// imported are held to this; [`QbftExtraData::decode`] stays lenient for reading.
    pub fn decode_canonical(bytes: &[u8]) -> Result<Self, QbftExtraDataError> {
        let extra = Self::decode(bytes)?;
        if extra.encode().as_ref() != bytes {
            return Err(QbftExtraDataError::NonCanonical);
        }
        Ok(extra)
    }

    /// The full encoding, as stored in a sealed block header.
    pub fn encode(&self) -> Bytes {
        self.encode_parts(self.round, &self.seals)
    }

    /// The encoding hashed for a committed seal: round kept, seals removed.
    pub fn encode_for_commit_seal(&self) -> Bytes {
        self.encode_parts(self.round, &[])
    }

    /// The encoding hashed for the on-chain block hash: round 0, seals removed.
    pub fn encode_for_onchain_hash(&self) -> Bytes {
        self.encode_parts(0, &[])
    }

    fn encode_parts(&self, round: u32, seals: &[CommitSeal]) -> Bytes {
        let vote = self.vote.map(VoteItem);
        let payload_length = self.vanity.length()
            + self.validators.length()
            + vote.as_ref().map_or(1, Encodable::length)
            + round.length()
            + alloy_rlp::list_length::<CommitSeal, CommitSeal>(seals);
        let mut out = Vec::with_capacity(payload_length + 4);
        RlpHeader {
            list: true,
            payload_length,
        }
        .encode(&mut out);
        self.vanity.encode(&mut out);
        self.validators.encode(&mut out);
        match &vote {
            Some(v) => v.encode(&mut out),
            None => RlpHeader {
                list: true,
                payload_length: 0,
            }
            .encode(&mut out),
        }
        round.encode(&mut out);
        alloy_rlp::encode_list::<CommitSeal, CommitSeal>(seals, &mut out);
        out.into()
    }
}

struct VoteItem(Vote);

impl VoteItem {
    fn type_len(&self) -> usize {
        if self.0.add {
            2
        } else {
            1
        }
    }
}

impl Encodable for VoteItem {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        let payload_length = self.0.recipient.length() + self.type_len();
        RlpHeader {
            list: true,
            payload_length,
        }
        .encode(out);
        self.0.recipient.encode(out);
        if self.0.add {
            VOTE_ADD.encode(out);
        } else {
            out.put_u8(alloy_rlp::EMPTY_STRING_CODE);
        }
    }

    fn length(&self) -> usize {
        let payload_length = self.0.recipient.length() + self.type_len();
        payload_length + alloy_rlp::length_of_length(payload_length)
    }
}

fn decode_vote(buf: &mut &[u8]) -> Result<Option<Vote>, QbftExtraDataError> {
    let header = RlpHeader::decode(buf)?;
    if !header.list {
        return Err(alloy_rlp::Error::UnexpectedString.into());
    }
    let (mut item, rest) = buf
        .split_at_checked(header.payload_length)
        .ok_or(alloy_rlp::Error::InputTooShort)?;
    *buf = rest;
    if item.is_empty() {
        return Ok(None);
    }
    let recipient = Address::decode(&mut item)?;
    let type_header = RlpHeader::decode(&mut item)?;
    if type_header.list {
        return Err(alloy_rlp::Error::UnexpectedList.into());
    }
    let type_bytes = item
        .get(..type_header.payload_length)
        .ok_or(alloy_rlp::Error::InputTooShort)?;
    let add = match type_bytes {
        [] | [0x00] => false,
        [VOTE_ADD] => true,
        [other, ..] => return Err(QbftExtraDataError::VoteType(*other)),
    };
    Ok(Some(Vote { recipient, add }))
}
