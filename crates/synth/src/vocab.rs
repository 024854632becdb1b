//! The population the generator draws from: value lists with Zipf-like weights, built once from
//! the embedded word lists plus syllable-generated tails, with a fixed seed (the same for every
//! data set, so every seed draws from the same population).

use std::collections::HashSet;
use std::sync::OnceLock;

use borderlens_domain::rng::Rng;

use crate::words;

/// Seed of the population (not of the data sets).
const VOCAB_SEED: u64 = 0x5EED_F0B1_2004_0004;
/// Generated surnames appended after the real ones.
const SURNAME_TAIL: usize = 70_000;
/// Generated given names appended after the real ones.
const GIVEN_TAIL: usize = 1_000;
/// Generated suburbs over all states (shared out by state weight).
const SUBURB_TAIL: usize = 12_000;
/// Generated `address_2` property names.
const ADDRESS_2_TAIL: usize = 30_000;

/// Walker/Vose alias table: O(1) draws from a fixed discrete distribution.
pub(crate) struct Alias {
    /// Per bucket: the threshold (of 2^32) below which the bucket keeps its own index, and the
    /// alias otherwise (one cache line read per draw).
    buckets: Vec<(u32, u32)>,
}

impl Alias {
    /// A table for `weights` (non-negative, not all zero).
    pub(crate) fn new(weights: &[f64]) -> Alias {
        let n = weights.len();
        assert!(n > 0 && n < u32::MAX as usize, "alias table of {n} weights");
        let total: f64 = weights.iter().sum();
        let mut prob: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias = vec![0u32; n];
        let mut small: Vec<u32> = Vec::new();
        let mut large: Vec<u32> = Vec::new();
        for (i, &p) in prob.iter().enumerate() {
            if p < 1.0 {
                small.push(i as u32);
            } else {
                large.push(i as u32);
            }
        }
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            alias[s as usize] = l;
            prob[l as usize] -= 1.0 - prob[s as usize];
            if prob[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        for i in small.into_iter().chain(large) {
            prob[i as usize] = 1.0;
        }
        let buckets = prob
            .iter()
            .zip(alias)
            .map(|(&p, a)| ((p * 4_294_967_296.0).min(u32::MAX as f64) as u32, a))
            .collect();
        Alias { buckets }
    }

    /// One draw.
    #[inline]
    pub(crate) fn sample(&self, rng: &mut Rng) -> usize {
        let x = rng.next_u64();
        let i = ((x as u128 * self.buckets.len() as u128) >> 64) as usize;
        let (threshold, alias) = self.buckets[i];
        // A full bucket (threshold u32::MAX) keeps its index but for 1 draw in 2^32.
        if (x as u32) < threshold || threshold == u32::MAX {
            i
        } else {
            alias as usize
        }
    }
}

/// Zipf-like weights `(rank + offset)^-exponent` for `n` ranks.
pub(crate) fn zipf(n: usize, exponent: f64, offset: f64) -> Vec<f64> {
    (0..n)
        .map(|r| (r as f64 + offset).powf(-exponent))
        .collect()
}

/// Values with a sampler over them.
pub(crate) struct Table {
    pub(crate) values: Vec<String>,
    alias: Alias,
}

impl Table {
    fn new(values: Vec<String>, weights: &[f64]) -> Table {
        debug_assert_eq!(values.len(), weights.len());
        Table {
            alias: Alias::new(weights),
            values,
        }
    }

    /// A value drawn by weight.
    #[inline]
    pub(crate) fn pick(&self, rng: &mut Rng) -> &str {
        &self.values[self.alias.sample(rng)]
    }

    /// The index of a value drawn by weight.
    #[inline]
    pub(crate) fn pick_index(&self, rng: &mut Rng) -> usize {
        self.alias.sample(rng)
    }
}

/// One state: its suburbs (with a home postcode each) and its postcode ranges.
pub(crate) struct State {
    pub(crate) code: &'static str,
    pub(crate) suburbs: Table,
    pub(crate) postcodes: Vec<u16>,
}

/// Everything values are drawn from.
pub(crate) struct Vocab {
    pub(crate) given: Table,
    pub(crate) surnames: Table,
    /// First words of street names (street words and surnames, flatter than surnames).
    pub(crate) street_bases: Table,
    pub(crate) street_types: Table,
    pub(crate) address_2: Table,
    pub(crate) states: Vec<State>,
    pub(crate) state_alias: Alias,
}

/// A state: code, weight (share of FEBRL4 records, percent), postcode ranges, real suburbs.
type StateSpec = (&'static str, f64, &'static [(u16, u16)], &'static str);

const STATES: &[StateSpec] = &[
    (
        "nsw",
        33.9,
        &[(2000, 2599), (2619, 2899)],
        words::SUBURBS_NSW,
    ),
    ("vic", 24.9, &[(3000, 3999)], words::SUBURBS_VIC),
    ("qld", 18.9, &[(4000, 4999)], words::SUBURBS_QLD),
    ("wa", 9.5, &[(6000, 6799)], words::SUBURBS_WA),
    ("sa", 7.7, &[(5000, 5799)], words::SUBURBS_SA),
    ("tas", 2.6, &[(7000, 7799)], words::SUBURBS_TAS),
    (
        "act",
        1.5,
        &[(2600, 2618), (2900, 2914)],
        words::SUBURBS_ACT,
    ),
    ("nt", 0.7, &[(800, 899)], words::SUBURBS_NT),
];

/// The population, built on first use.
pub(crate) fn vocab() -> &'static Vocab {
    static VOCAB: OnceLock<Vocab> = OnceLock::new();
    VOCAB.get_or_init(build)
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len())]
}

fn is_vowel(b: &[u8], i: usize) -> bool {
    matches!(b[i], b'a' | b'e' | b'i' | b'o' | b'u') || (b[i] == b'y' && i > 0)
}

/// Split a word into syllables: one per vowel group, consonants between two groups going to
/// the second as far as they make a valid onset ("har-ri-son", "mit-chell", "camp-bell").
fn syllabify(word: &str) -> Vec<&str> {
    let b = word.as_bytes();
    let mut groups = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if is_vowel(b, i) {
            let start = i;
            while i < b.len() && is_vowel(b, i) {
                i += 1;
            }
            groups.push((start, i));
        } else {
            i += 1;
        }
    }
    let mut parts = Vec::with_capacity(groups.len());
    let mut from = 0;
    for pair in groups.windows(2) {
        let (gap_start, gap_end) = (pair[0].1, pair[1].0);
        let cut = (gap_start..gap_end)
            .find(|&k| words::ONSETS.contains(&&word[k..gap_end]))
            .unwrap_or(gap_end);
        parts.push(&word[from..cut]);
        from = cut;
    }
    parts.push(&word[from..]);
    parts
}

/// Syllables of real words by position, repeated as often as they occur.
struct Syllables {
    first: Vec<String>,
    middle: Vec<String>,
    last: Vec<String>,
}

impl Syllables {
    fn of<'a>(words: impl IntoIterator<Item = &'a str>) -> Syllables {
        let mut pools = Syllables {
            first: Vec::new(),
            middle: Vec::new(),
            last: Vec::new(),
        };
        for word in words {
            if !word.bytes().all(|c| c.is_ascii_lowercase()) {
                continue;
            }
            let parts = syllabify(word);
            if parts.len() < 2 {
                continue;
            }
            pools.first.push(parts[0].to_owned());
            for part in &parts[1..parts.len() - 1] {
                pools.middle.push((*part).to_owned());
            }
            pools.last.push(parts[parts.len() - 1].to_owned());
        }
        pools
    }

    /// A first syllable, sometimes a middle one, and a last one, from different words.
    fn combine(&self, rng: &mut Rng, out: &mut String) {
        out.push_str(&self.first[rng.below(self.first.len())]);
        if !self.middle.is_empty() && rng.next_f64() < 0.25 {
            out.push_str(&self.middle[rng.below(self.middle.len())]);
        }
        out.push_str(&self.last[rng.below(self.last.len())]);
    }
}

/// An Aboriginal-style place word (wagga, mullumbimby, booroondoo).
fn place_word(rng: &mut Rng, out: &mut String) {
    let syllables = 2 + rng.below(3);
    out.push_str(pick(rng, words::PLACE_INITIALS));
    for i in 0..syllables {
        if i > 0 {
            out.push_str(pick(rng, words::PLACE_CONSONANTS));
        }
        out.push_str(pick(rng, words::PLACE_VOWELS));
    }
    if rng.next_f64() < 0.3 {
        out.push_str(pick(rng, &["n", "l", "r", "ng", "k"]));
    }
}

/// Plausible: no letter three times in a row, no more than three consonants or two vowels
/// running, single spaces between words of three letters or more, a length in `min..=max`.
fn plausible(s: &str, min: usize, max: usize) -> bool {
    let b = s.as_bytes();
    if b.len() < min || b.len() > max || b[0] == b' ' || b[b.len() - 1] == b' ' {
        return false;
    }
    if b.windows(3).any(|w| w[0] == w[1] && w[1] == w[2]) || s.contains("  ") {
        return false;
    }
    if s.split(' ').any(|t| t.len() < 3 && t != "st") {
        return false;
    }
    let (mut consonants, mut vowels) = (0, 0);
    for i in 0..b.len() {
        if b[i] == b' ' {
            (consonants, vowels) = (0, 0);
        } else if is_vowel(b, i) {
            (consonants, vowels) = (0, vowels + 1);
        } else {
            (consonants, vowels) = (consonants + 1, 0);
        }
        let vowel_pair_ok = vowels < 3 || (vowels == 3 && matches!(&b[i - 2..=i], b"eau" | b"iou"));
        if consonants > 3 || !vowel_pair_ok {
            return false;
        }
    }
    true
}

/// `count` new distinct values from `make`, none already in `seen`.
fn generate(
    rng: &mut Rng,
    seen: &mut HashSet<String>,
    count: usize,
    min: usize,
    max: usize,
    mut make: impl FnMut(&mut Rng, &mut String),
) -> Vec<String> {
    let mut out = Vec::with_capacity(count);
    let mut s = String::new();
    let mut tries = 0usize;
    while out.len() < count && tries < count * 50 {
        tries += 1;
        s.clear();
        make(rng, &mut s);
        if plausible(&s, min, max) && !seen.contains(&s) {
            seen.insert(s.clone());
            out.push(s.clone());
        }
    }
    out
}

/// The entries not yet in `seen`, in order (a list may repeat a name, or share it with another).
fn fresh(real: Vec<String>, seen: &mut HashSet<String>) -> Vec<String> {
    let mut values = Vec::with_capacity(real.len());
    for v in real {
        if seen.insert(v.clone()) {
            values.push(v);
        }
    }
    values
}

fn split_words(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_owned).collect()
}

fn split_commas(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Zipf weights over real values then a generated tail that falls off faster (by the extra
/// exponent `tail`), so the real values stay the common ones.
fn zipf_with_tail(real: usize, total: usize, exponent: f64, offset: f64, tail: f64) -> Vec<f64> {
    let mut weights = zipf(total, exponent, offset);
    for (r, w) in weights.iter_mut().enumerate().skip(real) {
        *w *= ((real as f64 + offset) / (r as f64 + offset)).powf(tail);
    }
    weights
}

fn build() -> Vocab {
    let mut rng = Rng::new(VOCAB_SEED);

    // Surnames: ~600 real ones on top, then a long tail of syllables of real ones combined.
    let mut seen = HashSet::new();
    let mut surnames = fresh(split_words(words::SURNAMES), &mut seen);
    let real_surnames = surnames.len();
    let pools = Syllables::of(surnames.iter().map(String::as_str));
    surnames.extend(generate(
        &mut rng,
        &mut seen,
        SURNAME_TAIL,
        4,
        13,
        |rng, s| pools.combine(rng, s),
    ));
    let weights = zipf_with_tail(real_surnames, surnames.len(), 1.0, 5.0, 0.5);
    let surnames = Table::new(surnames, &weights);

    let mut seen = HashSet::new();
    let mut given = fresh(split_words(words::GIVEN_NAMES), &mut seen);
    let real_given = given.len();
    for (_, nick) in words::NICKNAMES {
        seen.insert((*nick).to_owned());
    }
    let pools = Syllables::of(given.iter().map(String::as_str));
    given.extend(generate(
        &mut rng,
        &mut seen,
        GIVEN_TAIL,
        3,
        10,
        |rng, s| pools.combine(rng, s),
    ));
    let weights = zipf_with_tail(real_given, given.len(), 1.1, 20.0, 1.0);
    let given = Table::new(given, &weights);

    // Street bases: street words first, then every surname, on a flatter curve.
    let mut seen = HashSet::new();
    let mut bases = fresh(split_words(words::STREET_WORDS), &mut seen);
    let mut real_bases = bases.len();
    for (r, s) in surnames.values.iter().enumerate() {
        if seen.insert(s.clone()) {
            bases.push(s.clone());
        }
        if r + 1 == real_surnames {
            real_bases = bases.len();
        }
    }
    let weights = zipf_with_tail(real_bases, bases.len(), 1.0, 40.0, 1.5);
    let street_bases = Table::new(bases, &weights);

    let types: Vec<String> = words::STREET_TYPES
        .iter()
        .map(|(t, _)| (*t).to_owned())
        .collect();
    let weights: Vec<f64> = words::STREET_TYPES.iter().map(|(_, w)| *w as f64).collect();
    let street_types = Table::new(types, &weights);

    // Suburb syllables: single words of real suburbs (all states).
    let suburb_words: Vec<String> = STATES
        .iter()
        .flat_map(|s| split_commas(s.3))
        .flat_map(|s| s.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let suburb_pools = Syllables::of(suburb_words.iter().map(String::as_str));

    let mut seen = HashSet::new();
    let mut address_2 = fresh(split_commas(words::ADDRESS_2_NAMES), &mut seen);
    let real_address_2 = address_2.len();
    let surname_values = &surnames.values;
    address_2.extend(generate(
        &mut rng,
        &mut seen,
        ADDRESS_2_TAIL,
        4,
        30,
        |rng, s| {
            let x = rng.next_f64();
            if x < 0.4 {
                place_word(rng, s);
            } else if x < 0.6 {
                suburb_pools.combine(rng, s);
                s.push(' ');
                s.push_str(pick(rng, words::ADDRESS_2_SUFFIXES));
            } else if x < 0.8 {
                s.push_str(&surname_values[rng.below(real_surnames)]);
                s.push(' ');
                s.push_str(pick(rng, words::ADDRESS_2_SUFFIXES));
            } else {
                suburb_pools.combine(rng, s);
                s.push_str(pick(rng, words::SUBURB_ENDINGS));
            }
        },
    ));
    let weights = zipf_with_tail(real_address_2, address_2.len(), 0.9, 4.0, 0.0);
    let address_2 = Table::new(address_2, &weights);

    // Suburbs per state, real ones first; the tail shared out by state weight.
    let mut seen = HashSet::new();
    let total_weight: f64 = STATES.iter().map(|s| s.1).sum();
    let mut states = Vec::with_capacity(STATES.len());
    for &(code, weight, ranges, list) in STATES {
        let mut suburbs = fresh(split_commas(list), &mut seen);
        let real = suburbs.len();
        let tail = ((SUBURB_TAIL as f64 * weight / total_weight) as usize).max(60);
        suburbs.extend(generate(&mut rng, &mut seen, tail, 4, 24, |rng, s| {
            let x = rng.next_f64();
            if x < 0.1 {
                s.push_str(pick(rng, words::SUBURB_PREFIXES));
            }
            if x < 0.4 {
                place_word(rng, s);
            } else if x < 0.6 {
                suburb_pools.combine(rng, s);
            } else {
                s.push_str(&suburb_pools.first[rng.below(suburb_pools.first.len())]);
                s.push_str(pick(rng, words::SUBURB_ENDINGS));
            }
            if (0.1..0.6).contains(&x) && rng.next_f64() < 0.2 {
                s.push_str(pick(rng, words::SUBURB_ENDINGS));
            }
        }));
        let span: u32 = ranges.iter().map(|(a, b)| (b - a + 1) as u32).sum();
        let postcodes = (0..suburbs.len())
            .map(|_| {
                let mut x = rng.below(span as usize) as u32;
                for &(a, b) in ranges {
                    let len = (b - a + 1) as u32;
                    if x < len {
                        return a + x as u16;
                    }
                    x -= len;
                }
                unreachable!("postcode offset inside the ranges")
            })
            .collect();
        let weights = zipf_with_tail(real, suburbs.len(), 1.0, 10.0, 0.8);
        states.push(State {
            code,
            suburbs: Table::new(suburbs, &weights),
            postcodes,
        });
    }
    let state_alias = Alias::new(&STATES.iter().map(|s| s.1).collect::<Vec<_>>());

    Vocab {
        given,
        surnames,
        street_bases,
        street_types,
        address_2,
        states,
        state_alias,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_follows_weights() {
        let alias = Alias::new(&[1.0, 0.0, 3.0, 6.0]);
        let mut rng = Rng::new(3);
        let mut counts = [0usize; 4];
        for _ in 0..100_000 {
            counts[alias.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((counts[0] as f64 / 1e5 - 0.1).abs() < 0.01, "{counts:?}");
        assert!((counts[3] as f64 / 1e5 - 0.6).abs() < 0.01, "{counts:?}");
    }

    #[test]
    fn syllables_split_where_english_does() {
        assert_eq!(syllabify("harrison"), ["har", "ri", "son"]);
        assert_eq!(syllabify("mitchell"), ["mit", "chell"]);
        assert_eq!(syllabify("campbell"), ["camp", "bell"]);
        assert_eq!(syllabify("smith"), ["smith"]);
    }

    #[test]
    fn population_is_large_distinct_and_plain_ascii() {
        let v = vocab();
        assert!(v.surnames.values.len() > 60_000);
        assert!(
            v.states
                .iter()
                .map(|s| s.suburbs.values.len())
                .sum::<usize>()
                > 10_000
        );
        for table in [&v.given, &v.surnames, &v.street_bases, &v.address_2] {
            let distinct: HashSet<&String> = table.values.iter().collect();
            assert_eq!(distinct.len(), table.values.len());
            assert!(table
                .values
                .iter()
                .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ')));
        }
    }
}
