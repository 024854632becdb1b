//! What the coordinator asks ([`Call`]: a [`Request`] in a numbered round with a nonce) and what a
//! party answers ([`Envelope`], as bytes: the party's id, the round and nonce it answers, what
//! kind of answer, the payload, and a checksum of all of it).
//!
//! The checksum catches corrupt and garbage messages; it authenticates nothing (anyone can
//! compute it): authenticating parties is the transport's (per-partner tokens and TLS for HTTP
//! nodes). It is a 64-bit multiply-rotate hash over 8-byte words, not SHA-256, which cost a
//! quarter of federated training's time.
//!
//! The coordinator reads an answer only if it decodes, its checksum matches, and it names the
//! party asked, the current round and the current nonce ([`Received::read`], in place, and
//! [`EnvelopeRef::check`]): garbage, an answer of an earlier round (replayed) or for another nonce
//! (stale) is refused with the party and round named.

use borderlens_risk::features::FeaturePipeline;
use borderlens_risk::gbdt::{BinSplit, Binning, GbdtConfig, Tree};
use serde::{Deserialize, Serialize};

use crate::secagg::Nonce;
use crate::PartyId;

/// What the coordinator asks of a party.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// The party's public key for mask agreement and its fresh session salt ([`Kind::PublicKey`]:
    /// 32 bytes of key, 32 of salt).
    PublicKey,
    /// The members' public keys and salts: agree a secret with each ([`Kind::Ack`]).
    Peers {
        /// Every member's id and public key (the party's own included).
        keys: Vec<(PartyId, [u8; 32])>,
        /// Every member's id and session salt (the party's own included).
        #[serde(default)]
        salts: Vec<(PartyId, [u8; 32])>,
    },
    /// The party's vocabularies: its own feature pipeline ([`Kind::Pipeline`], JSON).
    Vocabulary,
    /// The agreed pipeline: describe your rows with it (history from your own items) and answer
    /// with their summaries ([`Kind::Summaries`], JSON).
    Pipeline {
        /// The union of the parties' pipelines.
        pipeline: FeaturePipeline,
    },
    /// The agreed bins and the training options: bin your rows ([`Kind::Ack`]).
    Binning {
        /// Bins from the union of the summaries.
        binning: Binning,
        /// Training options.
        config: GbdtConfig,
        /// Differential privacy: the noise multiplier of what the party releases from now on
        /// ([`crate::dp`]); none, exact sums. A party whose policy asks for more refuses.
        #[serde(default)]
        noise: Option<f64>,
    },
    /// The masked sums of your rows' weights and labels ([`Kind::Masked`]).
    LabelSums,
    /// The starting score of boosting ([`Kind::Ack`]).
    Init {
        /// Log-odds before any tree.
        init_score: f64,
    },
    /// Start tree `iteration` (from 0): compute your gradients, all your rows in the root;
    /// answer with the root's masked histogram ([`Kind::Masked`]). This tree's histograms
    /// (the root's and every split's) carry the bins of `features` only
    /// ([`crate::summed_features`]).
    Root {
        /// Which tree.
        iteration: usize,
        /// The features whose bins this tree's histograms carry: ascending, the first
        /// feature among them (its bins give a node's totals).
        features: Vec<usize>,
    },
    /// First take the splits `confirm` as the tree's (their children get their ids), then split
    /// the leaves `ahead` without naming their children yet ([`Kind::Masked`]: each split's
    /// left child's histogram, in the order asked, masked together; a left histogram's row
    /// count is the left child's, and the right child's histogram is the node's less the
    /// left's). A split made ahead and never confirmed is forgotten when the tree is applied:
    /// the grower may reach its tree's leaf budget first.
    Split {
        /// Splits made ahead in earlier rounds that the grower took: their children's ids.
        confirm: Vec<Confirm>,
        /// Leaves to split now.
        ahead: Vec<Ahead>,
    },
    /// Tree `iteration` is grown: add it to your model and its leaf values to your rows' scores
    /// ([`Kind::Ack`]; again if it is applied already).
    Apply {
        /// Which tree.
        iteration: usize,
        /// The tree, as every party gets it.
        tree: Tree,
        /// The splits taken since the last split round (as [`Request::Split`]'s).
        #[serde(default)]
        confirm: Vec<Confirm>,
    },
    /// The segments of `dimension` (`origin`, `route`, or `concealment`: the methods of your
    /// findings) your controlled declarations fall in ([`Kind::Segments`]: a JSON list of
    /// names): which exist, never how many.
    Segments {
        /// `origin`, `route` or `concealment`.
        dimension: String,
    },
    /// Your controlled declarations and those with fraud found, per segment of `dimension`
    /// ([`Kind::Masked`]: two words per segment in the order given, then, when `elsewhere`,
    /// two for the declarations in none of them). By `concealment`: your findings (in every
    /// segment, held or not) and those with the method.
    Counts {
        /// `origin`, `route` or `concealment`.
        dimension: String,
        /// The segments counted one by one.
        segments: Vec<String>,
        /// Whether to count the declarations of the other segments together (asked only when
        /// two parties or more have some).
        #[serde(default)]
        elsewhere: bool,
    },
    /// Reveal the round seed of your pair with `dropped` for an earlier round, so that the
    /// survivors' sum of that round can be unmasked ([`Kind::Seed`]).
    Reveal {
        /// The party that sent nothing in that round.
        dropped: PartyId,
        /// The round.
        round: u64,
        /// Its nonce.
        nonce: Nonce,
    },
}

impl Request {
    /// What the request is called in errors and logs.
    pub fn name(&self) -> String {
        match self {
            Request::PublicKey => "public key".into(),
            Request::Peers { .. } => "peer keys".into(),
            Request::Vocabulary => "vocabularies".into(),
            Request::Pipeline { .. } => "feature summaries".into(),
            Request::Binning { .. } => "binning".into(),
            Request::LabelSums => "label sums".into(),
            Request::Init { .. } => "starting score".into(),
            Request::Root { iteration, .. } => format!("tree {iteration}, root histogram"),
            Request::Split { ahead, .. } => match ahead.as_slice() {
                [one] => format!("split of node {}", one.node),
                more => format!(
                    "split of nodes {}",
                    more.iter()
                        .map(|a| a.node.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            Request::Apply { iteration, .. } => format!("apply tree {iteration}"),
            Request::Reveal { dropped, .. } => format!("reveal seed of party {dropped}"),
            Request::Segments { dimension } => format!("segments by {dimension}"),
            Request::Counts { dimension, .. } => format!("counts by {dimension}"),
        }
    }

    /// The kind of answer expected.
    pub fn answer_kind(&self) -> Kind {
        match self {
            Request::PublicKey => Kind::PublicKey,
            Request::Vocabulary => Kind::Pipeline,
            Request::Pipeline { .. } => Kind::Summaries,
            Request::Segments { .. } => Kind::Segments,
            Request::LabelSums
            | Request::Counts { .. }
            | Request::Root { .. }
            | Request::Split { .. } => Kind::Masked,
            Request::Reveal { .. } => Kind::Seed,
            Request::Peers { .. }
            | Request::Binning { .. }
            | Request::Init { .. }
            | Request::Apply { .. } => Kind::Ack,
        }
    }
}

/// A split the grower took: node `node`, split ahead in an earlier round, has children `left`
/// and `right`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirm {
    /// The node split.
    pub node: usize,
    /// Its left child's id.
    pub left: usize,
    /// Its right child's id.
    pub right: usize,
}

/// A leaf to split ahead: its id, the feature and how the bins go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ahead {
    /// The leaf.
    pub node: usize,
    /// Feature split on.
    pub feature: usize,
    /// How bins go.
    pub split: BinSplit,
}

/// A request in its round: the round number (increasing), the round's nonce, and the members
/// taking part (their masks cancel in the round's sum).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Call {
    /// Round number, increasing by one per round.
    pub round: u64,
    /// Fresh randomness of the round.
    pub nonce: Nonce,
    /// Ids of the parties taking part, ascending.
    pub members: Vec<PartyId>,
    /// What is asked.
    pub request: Request,
}

impl Call {
    /// The call as bytes for a transport (JSON; floats round-trip exactly, bin bounds travel as
    /// bits).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a call serialises")
    }

    /// Reads a call; says what is wrong with bytes that are not one.
    pub fn decode(bytes: &[u8]) -> Result<Call, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a call: {e}"))
    }
}

/// What kind of answer an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Done, no payload.
    Ack,
    /// A public key and a session salt (32 bytes each).
    PublicKey,
    /// A feature pipeline (JSON).
    Pipeline,
    /// Feature summaries (JSON).
    Summaries,
    /// Masked words (little-endian `u64`s).
    Masked,
    /// A round seed (32 bytes).
    Seed,
    /// Segment names (JSON).
    Segments,
    /// The party refuses the request: the payload says why (UTF-8).
    Refused,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Ack => 0,
            Kind::PublicKey => 1,
            Kind::Pipeline => 2,
            Kind::Summaries => 3,
            Kind::Masked => 4,
            Kind::Seed => 5,
            Kind::Refused => 6,
            Kind::Segments => 7,
        }
    }

    fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            0 => Kind::Ack,
            1 => Kind::PublicKey,
            2 => Kind::Pipeline,
            3 => Kind::Summaries,
            4 => Kind::Masked,
            5 => Kind::Seed,
            6 => Kind::Refused,
            7 => Kind::Segments,
            _ => return None,
        })
    }
}

const MAGIC: &[u8; 4] = b"BLF2";
/// Magic, party, round, nonce, kind, payload length.
const HEADER: usize = 4 + 4 + 8 + 16 + 1 + 4;
const DIGEST: usize = 8;

/// A 64-bit checksum of `bytes` (length included): word by word, multiply and rotate, in four
/// lanes (a chain of multiplications one word after another is bound by their latency: four
/// independent ones run together), folded at the end.
fn checksum(bytes: &[u8]) -> [u8; DIGEST] {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(29);
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
    let mut lanes = [
        mix(0x6C62_272E_07BB_0142, bytes.len() as u64),
        0x243F_6A88_85A3_08D3,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
    ];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, c) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = mix(*lane, word(c));
        }
    }
    let mut h = lanes[0];
    let mut words = blocks.remainder().chunks_exact(8);
    for c in &mut words {
        h = mix(h, word(c));
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    h = mix(h, u64::from_le_bytes(last));
    for lane in &lanes[1..] {
        h = mix(h, *lane);
    }
    // Final avalanche (SplitMix64's).
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (h ^ (h >> 31)).to_le_bytes()
}

/// What an answer carries: bytes, or masked words (sums), written little-endian straight into
/// the envelope without a copy of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Bytes as they are.
    Bytes(&'a [u8]),
    /// Words masked as they are written ([`crate::secagg::mask_into`]): `me`'s words, with
    /// its peers' secrets, for the round and nonce of the envelope.
    Masked {
        /// The party masking.
        me: PartyId,
        /// Its words before masking.
        words: &'a [u64],
        /// The other members and the secret shared with each.
        peers: &'a [(PartyId, [u8; 32])],
    },
}

impl Payload<'_> {
    fn byte_len(&self) -> usize {
        match self {
            Payload::Bytes(b) => b.len(),
            Payload::Masked { words, .. } => 8 * words.len(),
        }
    }
}

/// A party's answer to one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Who answers.
    pub party: PartyId,
    /// The round answered.
    pub round: u64,
    /// The nonce of the round answered.
    pub nonce: Nonce,
    /// What the payload is.
    pub kind: Kind,
    /// The answer.
    pub payload: Vec<u8>,
}

/// An envelope read in place ([`Envelope::parse`]): its payload is a slice of the bytes read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeRef<'a> {
    /// Who answers.
    pub party: PartyId,
    /// The round answered.
    pub round: u64,
    /// The nonce of the round answered.
    pub nonce: Nonce,
    /// What the payload is.
    pub kind: Kind,
    /// The answer.
    pub payload: &'a [u8],
}

impl Envelope {
    /// The envelope as bytes, checksum last.
    pub fn encode(&self) -> Vec<u8> {
        Envelope::write(
            self.party,
            self.round,
            self.nonce,
            self.kind,
            Payload::Bytes(&self.payload),
        )
    }

    /// An envelope of `payload` as bytes, checksum last ([`Envelope::encode`] without making
    /// an [`Envelope`] first).
    pub fn write(
        party: PartyId,
        round: u64,
        nonce: Nonce,
        kind: Kind,
        payload: Payload<'_>,
    ) -> Vec<u8> {
        let len = payload.byte_len();
        let mut bytes = Vec::with_capacity(HEADER + len + DIGEST);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&party.to_le_bytes());
        bytes.extend_from_slice(&round.to_le_bytes());
        bytes.extend_from_slice(&nonce);
        bytes.push(kind.code());
        bytes.extend_from_slice(&(len as u32).to_le_bytes());
        match payload {
            Payload::Bytes(b) => bytes.extend_from_slice(b),
            Payload::Masked { me, words, peers } => {
                crate::secagg::mask_into(me, words, peers, round, &nonce, &mut bytes)
            }
        }
        let digest = checksum(&bytes);
        bytes.extend_from_slice(&digest);
        bytes
    }

    /// Reads an envelope; says what is wrong with bytes that are not one.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, String> {
        let e = Envelope::parse(bytes)?;
        Ok(Envelope {
            party: e.party,
            round: e.round,
            nonce: e.nonce,
            kind: e.kind,
            payload: e.payload.to_vec(),
        })
    }

    /// [`Envelope::decode`] without copying the payload.
    pub fn parse(bytes: &[u8]) -> Result<EnvelopeRef<'_>, String> {
        if bytes.len() < HEADER + DIGEST {
            return Err(format!("{} bytes, not an envelope", bytes.len()));
        }
        if &bytes[..4] != MAGIC {
            return Err("not an envelope (magic)".into());
        }
        let (body, digest) = bytes.split_at(bytes.len() - DIGEST);
        if checksum(body) != digest {
            return Err("checksum does not match: the message is corrupt".into());
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let party = u32_at(4);
        let round = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        let nonce: Nonce = bytes[16..32].try_into().unwrap();
        let kind =
            Kind::from_code(bytes[32]).ok_or_else(|| format!("unknown kind {}", bytes[32]))?;
        let len = u32_at(33) as usize;
        if HEADER + len != body.len() {
            return Err(format!(
                "payload of {len} bytes announced, {} present",
                body.len() - HEADER
            ));
        }
        Ok(EnvelopeRef {
            party,
            round,
            nonce,
            kind,
            payload: &body[HEADER..],
        })
    }

    /// Whether this envelope answers `call` as `party` should ([`EnvelopeRef::check`]).
    pub fn check(&self, party: PartyId, call: &Call) -> Result<(), String> {
        EnvelopeRef {
            party: self.party,
            round: self.round,
            nonce: self.nonce,
            kind: self.kind,
            payload: &self.payload,
        }
        .check(party, call)
    }
}

/// An envelope read from bytes it keeps ([`Received::read`]): the payload is not copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Who answers.
    pub party: PartyId,
    /// The round answered.
    pub round: u64,
    /// The nonce of the round answered.
    pub nonce: Nonce,
    /// What the payload is.
    pub kind: Kind,
    bytes: Vec<u8>,
}

impl Received {
    /// Reads an envelope ([`Envelope::parse`]), keeping its bytes.
    pub fn read(bytes: Vec<u8>) -> Result<Received, String> {
        let e = Envelope::parse(&bytes)?;
        let (party, round, nonce, kind) = (e.party, e.round, e.nonce, e.kind);
        Ok(Received {
            party,
            round,
            nonce,
            kind,
            bytes,
        })
    }

    /// The answer.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[HEADER..self.bytes.len() - DIGEST]
    }

    /// The envelope read in place.
    pub fn envelope(&self) -> EnvelopeRef<'_> {
        EnvelopeRef {
            party: self.party,
            round: self.round,
            nonce: self.nonce,
            kind: self.kind,
            payload: self.payload(),
        }
    }
}

impl EnvelopeRef<'_> {
    /// Whether this envelope answers `call` as `party` should: its id, the call's round and
    /// nonce, and the kind asked for (or a refusal). Says what does not match: an earlier round
    /// is a replayed message.
    pub fn check(&self, party: PartyId, call: &Call) -> Result<(), String> {
        if self.party != party {
            return Err(format!("the message is signed as party {}", self.party));
        }
        if self.round < call.round {
            return Err(format!(
                "replayed message of round {} (this is round {})",
                self.round, call.round
            ));
        }
        if self.round != call.round {
            return Err(format!("message of a future round {}", self.round));
        }
        if self.nonce != call.nonce {
            return Err("the message answers another nonce: stale or replayed".into());
        }
        let expected = call.request.answer_kind();
        if self.kind != expected && self.kind != Kind::Refused {
            return Err(format!("a {:?} answer, expected {:?}", self.kind, expected));
        }
        Ok(())
    }
}

/// Words as little-endian bytes.
pub fn words_to_bytes(words: &[u64]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(words.len() * 8);
    for w in words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes
}

/// Little-endian bytes as words; `None` when the length is not a multiple of 8.
pub fn bytes_to_words(bytes: &[u8]) -> Option<Vec<u64>> {
    if bytes.len() % 8 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_travel_as_bytes_and_garbage_is_named() {
        let calls = [
            Request::Init {
                init_score: -3.141_592_653_589_793e-3,
            },
            Request::Split {
                confirm: vec![Confirm {
                    node: 2,
                    left: 5,
                    right: 6,
                }],
                ahead: vec![Ahead {
                    node: 4,
                    feature: 7,
                    split: BinSplit::Categorical {
                        left: vec![true, false, true],
                    },
                }],
            },
            Request::Peers {
                keys: vec![(0, [1; 32]), (2, [255; 32])],
                salts: vec![(0, [3; 32]), (2, [4; 32])],
            },
            Request::Reveal {
                dropped: 1,
                round: 12,
                nonce: [7; 16],
            },
        ];
        for request in calls {
            let call = Call {
                round: u64::MAX - 1,
                nonce: [9; 16],
                members: vec![0, 1, 2],
                request,
            };
            let back = Call::decode(&call.encode()).unwrap();
            assert_eq!(format!("{back:?}"), format!("{call:?}"));
        }
        let err = Call::decode(b"{\"round\": 1}").unwrap_err();
        assert!(err.starts_with("not a call"), "{err}");
    }

    #[test]
    fn envelopes_round_trip_and_corruption_is_caught() {
        let envelope = Envelope {
            party: 2,
            round: 17,
            nonce: [5; 16],
            kind: Kind::Masked,
            payload: words_to_bytes(&[1, 2, u64::MAX]),
        };
        let bytes = envelope.encode();
        assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
        for at in [0, 5, 20, 40, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert!(Envelope::decode(&bad).is_err(), "flip at {at}");
        }
        assert!(Envelope::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(Envelope::decode(b"hello").is_err());
        // Words written straight into an envelope are the bytes of their words; read in
        // place, the payload is the same.
        let words = [1, 2, u64::MAX];
        // (masked with no peer: the words as they are)
        let unmasked = Payload::Masked {
            me: 2,
            words: &words,
            peers: &[],
        };
        let written = Envelope::write(2, 17, [5; 16], Kind::Masked, unmasked);
        assert_eq!(written, bytes);
        let received = Received::read(written).unwrap();
        assert_eq!(received.payload(), envelope.payload.as_slice());
        assert_eq!((received.party, received.round), (2, 17));
        // Every length (the checksum's lanes and tail), every flipped byte caught.
        for len in 0..70 {
            let payload: Vec<u8> = (0..len as u8).collect();
            let bytes = Envelope::write(1, 3, [0; 16], Kind::Pipeline, Payload::Bytes(&payload));
            assert_eq!(Envelope::parse(&bytes).unwrap().payload, payload.as_slice());
            for at in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[at] ^= 0x80;
                assert!(Envelope::parse(&bad).is_err(), "length {len}, flip at {at}");
            }
        }
    }
}
