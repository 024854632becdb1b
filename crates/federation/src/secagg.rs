//! Secure aggregation by pairwise additive masks (after Bonawitz et al. 2017, without the
//! double masking): the coordinator learns the sum of the parties' vectors, not one of them.
//!
//! Every pair of parties `i < j` shares a secret agreed by X25519 key exchange ([`KeyPair`],
//! [`KeyPair::agree`]); the coordinator relays the public keys and never learns the secret. It
//! relays them unauthenticated in this step: a dishonest coordinator could hand out keys of its
//! own and unmask; partners pinning each other's public keys (with the per-partner credentials
//! of HTTP nodes) is what closes that. For
//! each round, a pair's secret, the round number and the round's nonce seed a ChaCha8 stream
//! (8 rounds: Aumasson's "Too Much Crypto" (2019) finds 8 ample, 7 being the most attacked;
//! ChaCha20, then ChaCha12, was the largest single cost of federated training)
//! ([`round_seed`], [`mask_stream`]); party `i` adds the stream of every pair it is in to its
//! vector, with `+` when it is the lower id of the pair and `-` otherwise, in wrapping `u64`
//! arithmetic. Each message on its own is the vector plus a uniformly random vector: uniform, it
//! says nothing. The masks cancel in the sum of all the parties' messages, which is the exact
//! (wrapping) sum of their vectors: with fixed-point histograms, the exact sum.
//!
//! A party that drops out after the others have masked leaves its pairs' masks in their sum; the
//! survivors can reveal the round seeds of their pairs with it ([`round_seed`]: derived per round,
//! the long-term secret stays theirs), and [`unmask`] removes them, leaving the survivors' exact
//! sum. Revealing them lets the coordinator unmask the dropped party's own message of that round
//! if it did arrive: ask for it only when it did not.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::PartyId;

/// A round's nonce: fresh randomness the coordinator draws for each round.
pub type Nonce = [u8; 16];

/// A party's X25519 key pair for agreeing pairwise mask secrets.
pub struct KeyPair {
    secret: StaticSecret,
    public: PublicKey,
}

impl KeyPair {
    /// A key pair from 32 secret bytes (drawn by [`KeyPair::generate`], or given in tests).
    pub fn from_secret(bytes: [u8; 32]) -> KeyPair {
        let secret = StaticSecret::from(bytes);
        let public = PublicKey::from(&secret);
        KeyPair { secret, public }
    }

    /// A key pair from the operating system's randomness.
    pub fn generate() -> Result<KeyPair, String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a key: {e}"))?;
        Ok(KeyPair::from_secret(bytes))
    }

    /// The public key, sent to the other parties through the coordinator.
    pub fn public(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    /// The secret shared with the holder of `peer`'s key (the same on both sides). `None` for a
    /// low-order public key (all-zero shared secret: a peer's key must contribute).
    pub fn agree(&self, peer: &[u8; 32]) -> Option<[u8; 32]> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*peer));
        shared.was_contributory().then(|| shared.to_bytes())
    }
}

/// A pair's secret for one session: SHA-256 of their X25519 agreement and both parties' fresh
/// session salts (the lower id's first). The salts make every session's masks new even when
/// the nodes keep long-term keys (which partners pin): a coordinator choosing the same round
/// and nonce in two sessions cannot make a party mask twice with the same stream.
pub fn pair_secret(agreed: &[u8; 32], lower_salt: &[u8; 32], higher_salt: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"borderlens-federation/pair/v1");
    hash.update(agreed);
    hash.update(lower_salt);
    hash.update(higher_salt);
    hash.finalize().into()
}

/// The seed of a pair's masks in one round: SHA-256 of the pair's secret, the round and its
/// nonce. Revealing it (for [`unmask`]) discloses that round's masks of that pair only.
pub fn round_seed(shared: &[u8; 32], round: u64, nonce: &Nonce) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"borderlens-federation/mask/v1");
    hash.update(shared);
    hash.update(round.to_le_bytes());
    hash.update(nonce);
    hash.finalize().into()
}

/// `len` mask words from a round seed.
pub fn mask_stream(seed: [u8; 32], len: usize) -> Vec<u64> {
    let mut words = vec![0; len];
    apply(&mut words, seed, true);
    words
}

/// Adds (`add`) or takes away the stream of `seed` to or from `words`, wrapping.
fn apply(words: &mut [u64], seed: [u8; 32], add: bool) {
    let mut rng = ChaCha8Rng::from_seed(seed);
    let mut block = [0u8; 512];
    for chunk in words.chunks_mut(64) {
        add_block(chunk, &mut rng, &mut block, add);
    }
}

/// Adds (`add`) or takes away the next `chunk.len()` words (64 at most) of `rng`'s stream to or
/// from `chunk`, wrapping: streams are always drawn in these blocks, so every way of masking
/// draws the same masks.
fn add_block(chunk: &mut [u64], rng: &mut ChaCha8Rng, block: &mut [u8; 512], add: bool) {
    let bytes = &mut block[..chunk.len() * 8];
    rng.fill_bytes(bytes);
    for (w, m) in chunk.iter_mut().zip(bytes.chunks_exact(8)) {
        let m = u64::from_le_bytes(m.try_into().unwrap_or([0; 8]));
        *w = if add {
            w.wrapping_add(m)
        } else {
            w.wrapping_sub(m)
        };
    }
}

/// Party `me`'s `words` masked for a round with the members `peers` (their ids and the secrets
/// `me` shares with them; `me` itself is not among them): the stream of each pair added when
/// `me` has the lower id, taken away otherwise.
pub fn mask(
    me: PartyId,
    words: &[u64],
    peers: &[(PartyId, [u8; 32])],
    round: u64,
    nonce: &Nonce,
) -> Vec<u64> {
    let mut masked = words.to_vec();
    mask_in_place(me, &mut masked, peers, round, nonce);
    masked
}

/// [`mask`], in place.
pub fn mask_in_place(
    me: PartyId,
    words: &mut [u64],
    peers: &[(PartyId, [u8; 32])],
    round: u64,
    nonce: &Nonce,
) {
    for (peer, shared) in peers {
        apply(words, round_seed(shared, round, nonce), me < *peer);
    }
}

/// [`mask_in_place`] of `words`, appended to `out` as little-endian bytes: one pass over the
/// words (the streams are added 64 words at a time while they are in the cache), and the
/// message is written without a copy of its own.
pub fn mask_into(
    me: PartyId,
    words: &[u64],
    peers: &[(PartyId, [u8; 32])],
    round: u64,
    nonce: &Nonce,
    out: &mut Vec<u8>,
) {
    let mut streams: Vec<(ChaCha8Rng, bool)> = peers
        .iter()
        .map(|(peer, shared)| {
            let rng = ChaCha8Rng::from_seed(round_seed(shared, round, nonce));
            (rng, me < *peer)
        })
        .collect();
    out.reserve(8 * words.len());
    let mut block = [0u8; 512];
    let mut buffer = [0u64; 64];
    let mut bytes = [0u8; 512];
    // Each stream is drawn in the blocks `apply` draws it in ([`add_block`]): the same masks.
    for chunk in words.chunks(64) {
        let buffer = &mut buffer[..chunk.len()];
        buffer.copy_from_slice(chunk);
        for (rng, add) in &mut streams {
            add_block(buffer, rng, &mut block, *add);
        }
        let bytes = &mut bytes[..chunk.len() * 8];
        for (b, w) in bytes.chunks_exact_mut(8).zip(buffer.iter()) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(bytes);
    }
}

/// The wrapping sum of several messages (masked vectors of the same length); `None` when their
/// lengths differ.
pub fn sum(messages: &[Vec<u64>]) -> Option<Vec<u64>> {
    let first = messages.first()?;
    if messages.iter().any(|m| m.len() != first.len()) {
        return None;
    }
    let mut total = vec![0u64; first.len()];
    for message in messages {
        for (t, w) in total.iter_mut().zip(message) {
            *t = t.wrapping_add(*w);
        }
    }
    Some(total)
}

/// The survivors' exact sum from the sum of their masked messages `survivors_sum`, when party
/// `dropped` was a member of the round but sent nothing: `revealed` holds, for each survivor, its
/// id and the round seed of its pair with `dropped` ([`round_seed`]).
pub fn unmask(
    survivors_sum: &[u64],
    dropped: PartyId,
    revealed: &[(PartyId, [u8; 32])],
) -> Vec<u64> {
    let mut words = survivors_sum.to_vec();
    for (survivor, seed) in revealed {
        // The survivor added the stream if its id is the lower one: take it away again.
        apply(&mut words, *seed, *survivor > dropped);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u8) -> Vec<KeyPair> {
        (0..n).map(|i| KeyPair::from_secret([i + 1; 32])).collect()
    }

    fn peers_of(keys: &[KeyPair], me: usize, members: &[usize]) -> Vec<(PartyId, [u8; 32])> {
        members
            .iter()
            .filter(|&&p| p != me)
            .map(|&p| (p as PartyId, keys[me].agree(&keys[p].public()).unwrap()))
            .collect()
    }

    #[test]
    fn masking_into_bytes_gives_the_masks_of_masking_in_place() {
        let peers = [(0, [7u8; 32]), (2, [9u8; 32])];
        for len in [0, 1, 63, 64, 65, 200] {
            let words: Vec<u64> = (0..len as u64).map(|i| i.wrapping_mul(0x9E37)).collect();
            let mut in_place = words.clone();
            mask_in_place(1, &mut in_place, &peers, 5, &[3; 16]);
            let mut out = vec![0xAA];
            mask_into(1, &words, &peers, 5, &[3; 16], &mut out);
            assert_eq!(out[0], 0xAA);
            assert_eq!(
                crate::message::bytes_to_words(&out[1..]).unwrap(),
                in_place,
                "{len} words"
            );
        }
    }

    #[test]
    fn pairwise_masks_cancel_in_the_sum() {
        let keys = keys(4);
        let members = [0, 1, 2, 3];
        let nonce = [7u8; 16];
        let vectors: Vec<Vec<u64>> = (0..4u64)
            .map(|p| (0..50).map(|i| p * 1000 + i).collect())
            .collect();
        let masked: Vec<Vec<u64>> = members
            .iter()
            .map(|&p| {
                mask(
                    p as PartyId,
                    &vectors[p],
                    &peers_of(&keys, p, &members),
                    9,
                    &nonce,
                )
            })
            .collect();
        assert_ne!(masked[0], vectors[0]);
        assert_eq!(sum(&masked), sum(&vectors));
    }

    #[test]
    fn survivors_reveal_round_seeds_to_unmask_their_sum() {
        let keys = keys(3);
        let members = [0, 1, 2];
        let (round, nonce) = (4, [1u8; 16]);
        let vectors: Vec<Vec<u64>> = (0..3u64).map(|p| vec![p + 1; 20]).collect();
        // Party 1 drops after 0 and 2 have masked with it.
        let masked: Vec<Vec<u64>> = [0usize, 2]
            .iter()
            .map(|&p| {
                mask(
                    p as PartyId,
                    &vectors[p],
                    &peers_of(&keys, p, &members),
                    round,
                    &nonce,
                )
            })
            .collect();
        let partial = sum(&masked).unwrap();
        assert_ne!(
            partial,
            sum(&[vectors[0].clone(), vectors[2].clone()]).unwrap()
        );
        let revealed: Vec<(PartyId, [u8; 32])> = [0usize, 2]
            .iter()
            .map(|&p| {
                let shared = keys[p].agree(&keys[1].public()).unwrap();
                (p as PartyId, round_seed(&shared, round, &nonce))
            })
            .collect();
        assert_eq!(
            unmask(&partial, 1, &revealed),
            sum(&[vectors[0].clone(), vectors[2].clone()]).unwrap()
        );
    }

    #[test]
    fn a_low_order_key_is_refused() {
        let me = KeyPair::from_secret([3; 32]);
        assert_eq!(me.agree(&[0; 32]), None);
    }
}
