//! Original (uncorrupted) values, one generator per column.

use borderlens_domain::rng::Rng;

use crate::vocab::Vocab;

/// Share of originals with the column empty, as in the FEBRL4 sample (`dataset4a.csv`).
pub(crate) const MISSING: [f64; 11] = [
    0.0, 0.022, 0.010, 0.032, 0.020, 0.084, 0.011, 0.0, 0.010, 0.019, 0.0,
];

/// Share of `address_2` values that are numbered ("unit 4", "locn 2192").
const NUMBERED_ADDRESS_2: f64 = 0.08;
/// Share of street names of two words (a given name and a surname: "hugh mckay crescent").
const TWO_WORD_STREETS: f64 = 0.08;
/// Share of originals whose postcode is not their suburb's usual one.
const OTHER_POSTCODE: f64 = 0.1;

/// Social security ids: a seeded permutation of `1_000_000..10_000_000`, so persons get distinct
/// ids (for up to nine million of them) that look random.
pub(crate) struct SsidKeys([u32; 4]);

const SSID_SPAN: u32 = 9_000_000;

impl SsidKeys {
    pub(crate) fn new(seed: u64) -> SsidKeys {
        let mut rng = Rng::new(seed ^ 0x55D1_D5EE_D000_0001);
        SsidKeys(std::array::from_fn(|_| rng.next_u64() as u32))
    }

    /// The id of person `k`.
    pub(crate) fn ssid(&self, k: usize) -> u32 {
        // A 4-round Feistel network on 24 bits, cycle-walked into the span.
        let mut x = (k % SSID_SPAN as usize) as u32;
        loop {
            let (mut l, mut r) = (x >> 12, x & 0xFFF);
            for key in self.0 {
                let f = (r ^ key).wrapping_mul(0x9E37_79B1);
                let f = (f ^ (f >> 15)).wrapping_mul(0x85EB_CA6B);
                (l, r) = (r, l ^ ((f >> 13) & 0xFFF));
            }
            x = (l << 12) | r;
            if x < SSID_SPAN {
                return 1_000_000 + x;
            }
        }
    }
}

/// Append `n` in decimal, zero-padded to `width` digits (no formatting machinery: this runs
/// for most values of millions of rows).
pub(crate) fn push_number(s: &mut String, mut n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    while n > 0 || len < width.max(1) {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    for &d in digits[..len].iter().rev() {
        s.push(char::from(d));
    }
}

/// A standard normal draw (Box–Muller, one of the pair).
fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.next_f64();
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Street numbers: log-normal, median about 22, 1 to 3000 (FEBRL4: 24% one digit, 58% two,
/// 14% three).
pub(crate) fn street_number(rng: &mut Rng) -> String {
    let n = (3.1 + 1.15 * normal(rng)).exp().round().clamp(1.0, 3000.0) as u32;
    let mut s = String::with_capacity(4);
    push_number(&mut s, n as u64, 1);
    s
}

pub(crate) fn address_1(v: &Vocab, rng: &mut Rng) -> String {
    let base = v.street_bases.pick(rng);
    let kind = v.street_types.pick(rng);
    if rng.next_f64() < TWO_WORD_STREETS {
        let first = v.given.pick(rng);
        let mut s = String::with_capacity(first.len() + base.len() + kind.len() + 2);
        s.push_str(first);
        s.push(' ');
        s.push_str(base);
        s.push(' ');
        s.push_str(kind);
        s
    } else {
        let mut s = String::with_capacity(base.len() + kind.len() + 1);
        s.push_str(base);
        s.push(' ');
        s.push_str(kind);
        s
    }
}

pub(crate) fn address_2(v: &Vocab, rng: &mut Rng) -> String {
    if rng.next_f64() < NUMBERED_ADDRESS_2 {
        let prefix =
            crate::words::ADDRESS_2_NUMBERED[rng.below(crate::words::ADDRESS_2_NUMBERED.len())];
        let n = if prefix == "locn" || prefix == "rmb" {
            1 + rng.below(9999)
        } else {
            1 + (rng.next_f64().powi(3) * 60.0) as usize
        };
        let mut s = String::with_capacity(prefix.len() + 5);
        s.push_str(prefix);
        s.push(' ');
        push_number(&mut s, n as u64, 1);
        s
    } else {
        v.address_2.pick(rng).to_owned()
    }
}

/// A suburb, its postcode and its state.
pub(crate) fn place(v: &Vocab, rng: &mut Rng) -> (String, String, String) {
    let state = &v.states[v.state_alias.sample(rng)];
    let suburb = state.suburbs.pick_index(rng);
    let postcode = if rng.next_f64() < OTHER_POSTCODE {
        state.postcodes[rng.below(state.postcodes.len())]
    } else {
        state.postcodes[suburb]
    };
    (
        state.suburbs.values[suburb].clone(),
        postcode_string(postcode),
        state.code.to_owned(),
    )
}

pub(crate) fn postcode_string(p: u16) -> String {
    let mut s = String::with_capacity(4);
    push_number(&mut s, p as u64, 4);
    s
}

/// A random postcode of a random suburb.
pub(crate) fn postcode(v: &Vocab, rng: &mut Rng) -> String {
    let state = &v.states[v.state_alias.sample(rng)];
    postcode_string(state.postcodes[state.suburbs.pick_index(rng)])
}

pub(crate) fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// `YYYYMMDD`, 1910–2005.
pub(crate) fn date_of_birth(rng: &mut Rng) -> String {
    let year = 1910 + rng.below(96) as u32;
    let month = 1 + rng.below(12) as u32;
    let day = 1 + rng.below(days_in_month(year, month) as usize) as u32;
    let mut s = String::with_capacity(8);
    push_number(&mut s, year as u64, 4);
    push_number(&mut s, month as u64, 2);
    push_number(&mut s, day as u64, 2);
    s
}

pub(crate) fn ssid_string(id: u32) -> String {
    let mut s = String::with_capacity(7);
    push_number(&mut s, id as u64, 7);
    s
}

/// The original record of person `k`, with `id` in column 0.
pub(crate) fn original(
    v: &Vocab,
    keys: &SsidKeys,
    k: usize,
    id: String,
    rng: &mut Rng,
) -> Vec<String> {
    let mut row = Vec::with_capacity(11);
    row.push(id);
    row.push(v.given.pick(rng).to_owned());
    row.push(v.surnames.pick(rng).to_owned());
    row.push(street_number(rng));
    row.push(address_1(v, rng));
    row.push(address_2(v, rng));
    let (suburb, postcode, state) = place(v, rng);
    row.push(suburb);
    row.push(postcode);
    row.push(state);
    row.push(date_of_birth(rng));
    row.push(ssid_string(keys.ssid(k)));
    debug_assert_eq!(row.len(), crate::COLUMNS.len());
    for (value, &p) in row.iter_mut().zip(MISSING.iter()).skip(1) {
        if p > 0.0 && rng.next_f64() < p {
            value.clear();
            value.shrink_to_fit();
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ssids_are_distinct_seven_digit_numbers() {
        let keys = SsidKeys::new(11);
        let ids: HashSet<u32> = (0..200_000).map(|k| keys.ssid(k)).collect();
        assert_eq!(ids.len(), 200_000);
        assert!(ids.iter().all(|&i| (1_000_000..10_000_000).contains(&i)));
    }

    #[test]
    fn numbers_are_padded() {
        let mut s = String::new();
        push_number(&mut s, 0, 1);
        push_number(&mut s, 42, 4);
        push_number(&mut s, 1234567, 7);
        push_number(&mut s, 5, 0);
        assert_eq!(s, "0004212345675");
    }

    #[test]
    fn dates_are_valid_and_in_range() {
        let mut rng = Rng::new(5);
        for _ in 0..10_000 {
            let d = date_of_birth(&mut rng);
            let (y, m, day): (u32, u32, u32) = (
                d[..4].parse().unwrap(),
                d[4..6].parse().unwrap(),
                d[6..].parse().unwrap(),
            );
            assert!((1910..=2005).contains(&y));
            assert!((1..=12).contains(&m));
            assert!(day >= 1 && day <= days_in_month(y, m));
        }
    }

    #[test]
    fn street_numbers_are_skewed_small() {
        let mut rng = Rng::new(9);
        let mut ns: Vec<u32> = (0..10_000)
            .map(|_| street_number(&mut rng).parse().unwrap())
            .collect();
        ns.sort_unstable();
        assert!(ns[0] >= 1 && ns[ns.len() - 1] <= 3000);
        let median = ns[ns.len() / 2];
        assert!((12..=40).contains(&median), "median {median}");
    }
}
