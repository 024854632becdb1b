//! Corrupting a copy of an original into a duplicate, the FEBRL way: a few modifications per
//! record, at most two per field, each of a kind that happens to real data (typing, scanning,
//! hearing, abbreviating, omitting, or the wrong value altogether).

use borderlens_domain::rng::Rng;

use crate::person;
use crate::vocab::Vocab;
use crate::words::{ABBREVIATIONS, NICKNAMES};
use crate::{ADDRESS_1, ADDRESS_2, DATE_OF_BIRTH, GIVEN_NAME, POSTCODE, SOC_SEC_ID, STATE};
use crate::{STREET_NUMBER, SUBURB, SURNAME};

/// One kind of modification of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// A character inserted, deleted, substituted (keyboard neighbours preferred) or two swapped.
    Typo,
    /// A scanning confusion (m/rn, l/1, o/0, cl/d, ...).
    Ocr,
    /// A spelling that sounds the same (ph/f, mac/mc, ie/y, doubled letters, ...).
    Phonetic,
    /// A space inserted inside a word.
    SpaceInsert,
    /// Two words run together.
    SpaceDelete,
    /// One word of several left out.
    TokenDrop,
    /// A word abbreviated or expanded (street/st, village/vlge).
    Abbreviate,
    /// A given name replaced by its nickname or back.
    Nickname,
    /// The value left out.
    Missing,
    /// Another value of the same column altogether.
    Replace,
    /// One digit changed (often to a neighbour).
    DigitSub,
    /// Two adjacent digits swapped.
    DigitSwap,
    /// Day and month of a date swapped.
    DayMonthSwap,
}

use Op::*;

/// Which modifications each column gets, with weights. Calibrated on the FEBRL4 sample: the share
/// of changed values that are missing, one or two edits away, or altogether different.
const OPS: [&[(Op, u32)]; 11] = [
    &[],
    &[
        (Typo, 45),
        (Ocr, 4),
        (Phonetic, 10),
        (SpaceInsert, 4),
        (Missing, 10),
        (Replace, 28),
        (Nickname, 8),
    ],
    &[
        (Typo, 50),
        (Ocr, 4),
        (Phonetic, 12),
        (SpaceInsert, 4),
        (Missing, 5),
        (Replace, 32),
    ],
    &[
        (Missing, 18),
        (DigitSub, 15),
        (DigitSwap, 15),
        (Replace, 52),
    ],
    &[
        (Typo, 40),
        (Ocr, 4),
        (SpaceInsert, 15),
        (SpaceDelete, 12),
        (TokenDrop, 5),
        (Abbreviate, 6),
        (Missing, 7),
        (Replace, 8),
    ],
    &[
        (Typo, 32),
        (Ocr, 3),
        (SpaceInsert, 16),
        (SpaceDelete, 10),
        (TokenDrop, 5),
        (Abbreviate, 3),
        (Missing, 27),
        (Replace, 12),
    ],
    &[
        (Typo, 50),
        (Ocr, 4),
        (Phonetic, 8),
        (SpaceInsert, 6),
        (SpaceDelete, 5),
        (Missing, 5),
        (Replace, 22),
    ],
    &[(DigitSub, 35), (DigitSwap, 55), (Replace, 10)],
    &[(Missing, 25), (Typo, 45), (Replace, 30)],
    &[
        (DigitSub, 12),
        (DigitSwap, 15),
        (DayMonthSwap, 8),
        (Missing, 25),
        (Replace, 40),
    ],
    &[(DigitSub, 30), (DigitSwap, 30), (Replace, 40)],
];

/// How often each column is the one modified (FEBRL4 sample: changed values per column).
const FIELD_WEIGHTS: [f64; 11] = [
    0.0, 1400.0, 1420.0, 775.0, 1800.0, 2050.0, 1226.0, 781.0, 246.0, 444.0, 439.0,
];
/// An empty column is picked this much less often (and then gets a value).
const EMPTY_FIELD_FACTOR: f64 = 0.3;
/// Chance that a modification is given name and surname swapped (per modification; FEBRL4: about 4% of records).
const NAME_SWAP: f64 = 0.02;
/// Chance that a modification is `address_1` and `address_2` swapped.
const ADDRESS_SWAP: f64 = 0.012;
/// Chance that a typo comes with a second one in the same value.
const SECOND_TYPO: f64 = 0.25;

/// Scanning confusions (from, to).
const OCR: &[(&str, &str)] = &[
    ("m", "rn"),
    ("rn", "m"),
    ("l", "1"),
    ("1", "l"),
    ("o", "0"),
    ("0", "o"),
    ("s", "5"),
    ("b", "6"),
    ("g", "9"),
    ("i", "l"),
    ("l", "i"),
    ("cl", "d"),
    ("d", "cl"),
    ("w", "vv"),
    ("h", "b"),
    ("e", "c"),
    ("c", "e"),
    ("u", "v"),
    ("v", "u"),
    ("n", "ri"),
    ("q", "g"),
    ("z", "2"),
    ("8", "3"),
    ("3", "8"),
    ("1", "7"),
    ("5", "6"),
];

/// Spellings that sound alike (from, to).
const PHONETIC: &[(&str, &str)] = &[
    ("ph", "f"),
    ("ck", "k"),
    ("ck", "c"),
    ("c", "k"),
    ("k", "c"),
    ("ie", "y"),
    ("y", "ie"),
    ("ey", "y"),
    ("y", "ey"),
    ("ee", "ea"),
    ("ea", "ee"),
    ("ou", "ow"),
    ("ow", "ou"),
    ("ai", "ay"),
    ("ay", "ai"),
    ("mac", "mc"),
    ("mc", "mac"),
    ("th", "t"),
    ("sch", "sh"),
    ("sh", "sch"),
    ("z", "s"),
    ("s", "z"),
    ("x", "ks"),
    ("ks", "x"),
    ("gh", ""),
    ("ll", "l"),
    ("l", "ll"),
    ("tt", "t"),
    ("t", "tt"),
    ("nn", "n"),
    ("ss", "s"),
    ("rr", "r"),
    ("mm", "m"),
    ("ei", "ie"),
    ("ie", "ei"),
    ("son", "sen"),
    ("sen", "son"),
    ("ine", "ene"),
    ("ae", "e"),
    ("oe", "o"),
    ("i", "y"),
    ("ff", "f"),
    ("f", "ff"),
    ("er", "a"),
    ("our", "or"),
    ("ph", "v"),
];

/// QWERTY neighbours of `a`..`z`.
const KEYBOARD: [&[u8]; 26] = [
    b"qwsz", b"vghn", b"xdfv", b"serfcx", b"wsdr", b"drtgvc", b"ftyhbv", b"gyujnb", b"ujko",
    b"huikmn", b"jiolm", b"kop", b"njk", b"bhjm", b"iklp", b"ol", b"wa", b"edft", b"awedxz",
    b"rfgy", b"yhji", b"cfgb", b"qase", b"zsdc", b"tghu", b"asx",
];

const NUMERIC: [bool; 11] = [
    false, false, false, true, false, false, false, true, false, true, true,
];

/// Modify `row` (an original's values; column 0 is left alone) with one to three modifications
/// on distinct columns, each of which changes the value.
pub(crate) fn corrupt(v: &Vocab, row: &mut [String], rng: &mut Rng) {
    let ops = match rng.below(20) {
        0..=4 => 1,
        5..=12 => 2,
        _ => 3,
    };
    let mut used = [false; 11];
    used[0] = true;
    for _ in 0..ops {
        let x = rng.next_f64();
        if x < NAME_SWAP && !used[GIVEN_NAME] && !used[SURNAME] && row[GIVEN_NAME] != row[SURNAME] {
            row.swap(GIVEN_NAME, SURNAME);
            used[GIVEN_NAME] = true;
            used[SURNAME] = true;
            continue;
        }
        if (NAME_SWAP..NAME_SWAP + ADDRESS_SWAP).contains(&x)
            && !used[ADDRESS_1]
            && !used[ADDRESS_2]
            && row[ADDRESS_1] != row[ADDRESS_2]
        {
            row.swap(ADDRESS_1, ADDRESS_2);
            used[ADDRESS_1] = true;
            used[ADDRESS_2] = true;
            continue;
        }
        let Some(f) = pick_field(row, &used, rng) else {
            break;
        };
        used[f] = true;
        corrupt_field(v, f, &mut row[f], rng);
    }
}

fn pick_field(row: &[String], used: &[bool; 11], rng: &mut Rng) -> Option<usize> {
    let weight = |f: usize| {
        if used[f] {
            0.0
        } else if row[f].is_empty() {
            FIELD_WEIGHTS[f] * EMPTY_FIELD_FACTOR
        } else {
            FIELD_WEIGHTS[f]
        }
    };
    let total: f64 = (1..11).map(weight).sum();
    if total <= 0.0 {
        return None;
    }
    let mut x = rng.next_f64() * total;
    let mut last = None;
    for f in 1..11 {
        let w = weight(f);
        if w > 0.0 {
            if x < w {
                return Some(f);
            }
            x -= w;
            last = Some(f);
        }
    }
    last
}

/// Change `value` (column `f`) by one modification drawn for the column.
fn corrupt_field(v: &Vocab, f: usize, value: &mut String, rng: &mut Rng) {
    if value.is_empty() {
        // A value where the original has none.
        replace(v, f, value, rng);
        return;
    }
    let ops = OPS[f];
    let total: u32 = ops.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total as usize) as u32;
    let mut op = ops[0].0;
    for &(o, w) in ops {
        if x < w {
            op = o;
            break;
        }
        x -= w;
    }
    let changed = match op {
        Typo => {
            if rng.next_f64() < SECOND_TYPO {
                // The second may undo the first (the same two letters swapped back).
                let original = value.clone();
                typo(value, rng);
                typo(value, rng);
                while *value == original {
                    typo(value, rng);
                }
            } else {
                typo(value, rng);
            }
            true
        }
        Ocr => rewrite(value, OCR, rng),
        Phonetic => rewrite(value, PHONETIC, rng),
        SpaceInsert => space_insert(value, rng),
        SpaceDelete => space_delete(value, rng),
        TokenDrop => token_drop(value, rng),
        Abbreviate => abbreviate(value, rng),
        Nickname => nickname(value, rng),
        Missing => {
            value.clear();
            true
        }
        Replace => replace(v, f, value, rng),
        DigitSub => digit_sub(value, rng),
        DigitSwap => digit_swap(value, rng),
        DayMonthSwap => day_month_swap(value),
    };
    if !changed {
        if NUMERIC[f] && digit_sub(value, rng) {
            return;
        }
        typo(value, rng);
    }
}

/// A random lowercase letter.
fn letter(rng: &mut Rng) -> u8 {
    b'a' + rng.below(26) as u8
}

/// A keyboard neighbour of `c` (a letter or digit), or a random letter.
fn near(c: u8, rng: &mut Rng) -> u8 {
    match c {
        b'a'..=b'z' => {
            let n = KEYBOARD[(c - b'a') as usize];
            n[rng.below(n.len())]
        }
        b'0' => b'1',
        b'9' => b'8',
        b'1'..=b'8' => {
            if rng.below(2) == 0 {
                c - 1
            } else {
                c + 1
            }
        }
        _ => letter(rng),
    }
}

fn set_byte(s: &mut String, i: usize, c: u8) {
    let mut buf = [0u8; 4];
    s.replace_range(i..i + 1, char::from(c).encode_utf8(&mut buf));
}

/// A random index `i` with `pred(i)`, by reservoir sampling (no allocation).
fn random_index(len: usize, rng: &mut Rng, pred: impl Fn(usize) -> bool) -> Option<usize> {
    let mut seen = 0usize;
    let mut chosen = None;
    for i in 0..len {
        if pred(i) {
            seen += 1;
            if rng.below(seen) == 0 {
                chosen = Some(i);
            }
        }
    }
    chosen
}

/// One typing error; always changes a non-empty `s` and never empties it.
fn typo(s: &mut String, rng: &mut Rng) {
    if s.is_empty() {
        s.push(char::from(letter(rng)));
        return;
    }
    let kind = rng.below(100);
    let len = s.len();
    if kind < 25 && len > 1 {
        // Deletion.
        let i = rng.below(len);
        s.remove(i);
        return;
    }
    if kind < 45 {
        // Insertion, usually of a key next to a neighbouring letter.
        let i = rng.below(len + 1);
        let b = s.as_bytes();
        let c = if rng.next_f64() < 0.5 {
            near(b[i.min(len - 1)], rng)
        } else {
            letter(rng)
        };
        s.insert(i, char::from(c));
        return;
    }
    if kind < 65 {
        // Transposition of two adjacent different characters.
        let b = s.as_bytes();
        if let Some(i) = random_index(len.saturating_sub(1), rng, |i| b[i] != b[i + 1]) {
            let (x, y) = (b[i], b[i + 1]);
            set_byte(s, i, y);
            set_byte(s, i + 1, x);
            return;
        }
    }
    // Substitution, usually by a keyboard neighbour.
    let b = s.as_bytes();
    let i = random_index(len, rng, |i| b[i] != b' ').unwrap_or(0);
    let old = b[i];
    let mut c = if rng.next_f64() < 0.7 {
        near(old, rng)
    } else {
        letter(rng)
    };
    if c == old {
        c = if old == b'a' { b'e' } else { b'a' };
    }
    set_byte(s, i, c);
}

/// Apply one of `rules` that matches (a random rule, then a random place).
fn rewrite(s: &mut String, rules: &[(&str, &str)], rng: &mut Rng) -> bool {
    let Some(r) = random_index(rules.len(), rng, |r| s.contains(rules[r].0)) else {
        return false;
    };
    let (from, to) = rules[r];
    let count = s.matches(from).count();
    let k = rng.below(count);
    let Some((pos, _)) = s.match_indices(from).nth(k) else {
        return false;
    };
    s.replace_range(pos..pos + from.len(), to);
    true
}

fn space_insert(s: &mut String, rng: &mut Rng) -> bool {
    let b = s.as_bytes();
    let Some(i) = random_index(b.len(), rng, |i| i > 0 && b[i - 1] != b' ' && b[i] != b' ') else {
        return false;
    };
    s.insert(i, ' ');
    true
}

fn space_delete(s: &mut String, rng: &mut Rng) -> bool {
    let b = s.as_bytes();
    let Some(i) = random_index(b.len(), rng, |i| b[i] == b' ') else {
        return false;
    };
    s.remove(i);
    true
}

fn token_drop(s: &mut String, rng: &mut Rng) -> bool {
    let tokens = s.split(' ').filter(|t| !t.is_empty()).count();
    if tokens < 2 {
        return false;
    }
    let drop = rng.below(tokens);
    let kept: Vec<&str> = s
        .split(' ')
        .filter(|t| !t.is_empty())
        .enumerate()
        .filter(|&(i, _)| i != drop)
        .map(|(_, t)| t)
        .collect();
    *s = kept.join(" ");
    true
}

fn abbreviate(s: &mut String, rng: &mut Rng) -> bool {
    // Candidate (token index, replacement).
    let mut seen = 0usize;
    let mut chosen: Option<(usize, &str)> = None;
    for (i, t) in s.split(' ').enumerate() {
        for &(long, short) in ABBREVIATIONS {
            let other = if t == long {
                short
            } else if t == short {
                long
            } else {
                continue;
            };
            seen += 1;
            if rng.below(seen) == 0 {
                chosen = Some((i, other));
            }
        }
    }
    let Some((at, other)) = chosen else {
        return false;
    };
    let replaced: Vec<&str> = s
        .split(' ')
        .enumerate()
        .map(|(i, t)| if i == at { other } else { t })
        .collect();
    *s = replaced.join(" ");
    true
}

fn nickname(s: &mut String, rng: &mut Rng) -> bool {
    let Some(i) = random_index(NICKNAMES.len(), rng, |i| {
        NICKNAMES[i].0 == s.as_str() || NICKNAMES[i].1 == s.as_str()
    }) else {
        return false;
    };
    let (full, nick) = NICKNAMES[i];
    let new = if s.as_str() == full { nick } else { full };
    s.clear();
    s.push_str(new);
    true
}

/// A fresh value for column `f`.
fn fresh_value(v: &Vocab, f: usize, rng: &mut Rng) -> String {
    match f {
        GIVEN_NAME => v.given.pick(rng).to_owned(),
        SURNAME => v.surnames.pick(rng).to_owned(),
        STREET_NUMBER => person::street_number(rng),
        ADDRESS_1 => person::address_1(v, rng),
        ADDRESS_2 => person::address_2(v, rng),
        SUBURB => person::place(v, rng).0,
        POSTCODE => person::postcode(v, rng),
        STATE => v.states[v.state_alias.sample(rng)].code.to_owned(),
        DATE_OF_BIRTH => person::date_of_birth(rng),
        SOC_SEC_ID => person::ssid_string(1_000_000 + rng.below(9_000_000) as u32),
        _ => unreachable!("column {f} is not generated"),
    }
}

fn replace(v: &Vocab, f: usize, s: &mut String, rng: &mut Rng) -> bool {
    for _ in 0..10 {
        let new = fresh_value(v, f, rng);
        if new != *s {
            *s = new;
            return true;
        }
    }
    false
}

fn digit_sub(s: &mut String, rng: &mut Rng) -> bool {
    let b = s.as_bytes();
    let Some(i) = random_index(b.len(), rng, |i| b[i].is_ascii_digit()) else {
        return false;
    };
    let old = b[i];
    let c = if rng.next_f64() < 0.6 {
        near(old, rng)
    } else {
        let d = b'0' + rng.below(9) as u8;
        if d >= old {
            d + 1
        } else {
            d
        }
    };
    set_byte(s, i, c);
    true
}

fn digit_swap(s: &mut String, rng: &mut Rng) -> bool {
    let b = s.as_bytes();
    let Some(i) = random_index(b.len().saturating_sub(1), rng, |i| {
        b[i] != b[i + 1] && b[i].is_ascii_digit() && b[i + 1].is_ascii_digit()
    }) else {
        return false;
    };
    let (x, y) = (b[i], b[i + 1]);
    set_byte(s, i, y);
    set_byte(s, i + 1, x);
    true
}

fn day_month_swap(s: &mut String) -> bool {
    let b = s.as_bytes();
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let (month, day) = (&s[4..6], &s[6..8]);
    if month == day || day > "12" || day == "00" {
        return false;
    }
    let swapped = format!("{}{}{}", &s[..4], day, month);
    *s = swapped;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::vocab;

    #[test]
    fn every_modification_changes_the_value() {
        let v = vocab();
        let mut rng = Rng::new(17);
        let samples = [
            "",
            "michaela",
            "neumann",
            "8",
            "stanley street",
            "miami",
            "winston hills",
            "4223",
            "nsw",
            "19151111",
            "5304218",
        ];
        for _ in 0..2_000 {
            for f in 1..11 {
                let mut s = samples[f].to_owned();
                corrupt_field(v, f, &mut s, &mut rng);
                assert_ne!(s, samples[f], "column {f}");
                assert!(s.is_ascii());
                if NUMERIC[f] {
                    assert!(s.bytes().all(|c| c.is_ascii_digit()), "column {f}: {s}");
                }
            }
        }
    }

    #[test]
    fn rules_do_what_they_say() {
        let mut rng = Rng::new(1);
        let mut s = "19451203".to_owned();
        assert!(day_month_swap(&mut s));
        assert_eq!(s, "19450312");
        let mut s = "19451231".to_owned();
        assert!(!day_month_swap(&mut s));
        let mut s = "william".to_owned();
        assert!(nickname(&mut s, &mut rng));
        assert!(s == "bill" || s == "will", "{s}");
        let mut s = "light street".to_owned();
        assert!(abbreviate(&mut s, &mut rng));
        assert_eq!(s, "light st");
        let mut s = "light street".to_owned();
        assert!(token_drop(&mut s, &mut rng));
        assert!(s == "light" || s == "street");
        let mut s = "pine hill".to_owned();
        assert!(space_delete(&mut s, &mut rng));
        assert_eq!(s, "pinehill");
        let mut s = "aaaa".to_owned();
        assert!(!digit_swap(&mut s, &mut rng));
    }
}
