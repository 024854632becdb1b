//! Text shared by every model: the input cap, normalisation (lower case, Unicode-aware word
//! split), hashed word and character n-gram features, and the readability check (script,
//! binary, unknown words).

use serde::Serialize;

/// Descriptions longer than this many bytes are cut (at a character boundary) before any model
/// reads them, so a 1 MB field costs no more than a long description. Real goods descriptions
/// are far shorter (UK parcel descriptions are often cut to 30 characters).
pub const MAX_INPUT_BYTES: usize = 1024;

/// Most words read from one description (after the byte cap).
pub const MAX_WORDS: usize = 64;

/// Width of the hashed feature space (2^20).
pub const FEATURE_BITS: u32 = 20;

/// Cuts a text to [`MAX_INPUT_BYTES`] at a character boundary; says whether it cut.
pub fn cap(text: &str) -> (&str, bool) {
    if text.len() <= MAX_INPUT_BYTES {
        return (text, false);
    }
    let mut end = MAX_INPUT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// The words of a text: lower case, split on anything that is not a letter or digit (Unicode
/// aware), digits dropped (quantities and sizes say little about the goods: "500g" → "g"),
/// words of fewer than two characters dropped, at most [`MAX_WORDS`].
pub fn words(text: &str) -> Vec<String> {
    let (text, _) = cap(text);
    let mut out = Vec::new();
    for raw in text.split(|c: char| !c.is_alphanumeric()) {
        if out.len() >= MAX_WORDS {
            break;
        }
        let word: String = raw
            .chars()
            .filter(|c| !c.is_numeric())
            .flat_map(char::to_lowercase)
            .collect();
        if word.chars().count() >= 2 {
            out.push(word);
        }
    }
    out
}

/// FNV-1a (64-bit), written here because the saved model depends on the hash being the same in
/// every build and on every platform (std's hasher promises neither).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn bucket(h: u64) -> u32 {
    ((h ^ (h >> 32)) as u32) & ((1u32 << FEATURE_BITS) - 1)
}

/// A light English plural stripper for word features ("shirts" → "shirt", "boxes" → "box",
/// "batteries" → "battery"); character n-grams cover the rest of the morphology. Written here:
/// a full stemmer would change more than plurals and add a dependency.
pub fn stem(word: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let n = word.len();
    if n > 4 && word.ends_with("ies") {
        return Cow::Owned(format!("{}y", &word[..n - 3]));
    }
    let es = ["sses", "xes", "ches", "shes"];
    if n > 4 && es.iter().any(|e| word.ends_with(e)) {
        return Cow::Borrowed(&word[..n - 2]);
    }
    if n > 3 && word.ends_with('s') && !["ss", "us", "is"].iter().any(|e| word.ends_with(e)) {
        return Cow::Borrowed(&word[..n - 1]);
    }
    Cow::Borrowed(word)
}

/// Feature id of a word unigram (of its stem).
pub fn word_feature(word: &str) -> u32 {
    bucket(fnv1a(&[b"w", stem(word).as_bytes()]))
}

/// Hashed features of a text, split in two blocks: words (unigrams and bigrams) and character
/// n-grams (3 to 5, within each word padded with `<` `>`). Each list holds one id per
/// occurrence (the caller counts).
pub struct Features {
    /// Word unigram and bigram ids.
    pub words: Vec<u32>,
    /// Character n-gram ids.
    pub chars: Vec<u32>,
}

/// Features of already split words.
pub fn features(words: &[String]) -> Features {
    let mut f = Features {
        words: Vec::with_capacity(words.len() * 2),
        chars: Vec::with_capacity(words.len() * 12),
    };
    for (i, w) in words.iter().enumerate() {
        f.words.push(word_feature(w));
        if i + 1 < words.len() {
            f.words.push(bucket(fnv1a(&[
                b"b",
                stem(w).as_bytes(),
                stem(&words[i + 1]).as_bytes(),
            ])));
        }
        let padded: Vec<char> = std::iter::once('<')
            .chain(w.chars())
            .chain(std::iter::once('>'))
            .collect();
        let mut buf = String::new();
        for n in 3..=5 {
            if padded.len() < n {
                break;
            }
            for start in 0..=padded.len() - n {
                buf.clear();
                buf.extend(&padded[start..start + n]);
                f.chars.push(bucket(fnv1a(&[b"c", buf.as_bytes()])));
            }
        }
    }
    f
}

/// Which script a letter belongs to, for the readability check (a short table of the scripts
/// parcel descriptions are likely to arrive in, rather than a Unicode-script dependency).
pub fn script(c: char) -> &'static str {
    match c as u32 {
        0x0041..=0x024F | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xFF21..=0xFF5A => {
            "Latin"
        }
        0x0370..=0x03FF | 0x1F00..=0x1FFF => "Greek",
        0x0400..=0x052F => "Cyrillic",
        0x0590..=0x05FF => "Hebrew",
        0x0600..=0x06FF | 0x0750..=0x077F => "Arabic",
        0x0900..=0x097F => "Devanagari",
        0x0E00..=0x0E7F => "Thai",
        0x1100..=0x11FF | 0xAC00..=0xD7AF => "Hangul",
        0x3040..=0x30FF => "Kana",
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF => "Han",
        _ => "other",
    }
}

/// What the readability check found.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Readability {
    /// Whether the models can read the text; when false, `reason` says why and no code is guessed.
    pub readable: bool,
    /// Why not (or a note, such as "cut to 1024 bytes").
    pub reason: Option<String>,
    /// Letters counted.
    pub letters: usize,
    /// Share of letters in Latin script.
    pub latin_share: f64,
    /// The most frequent non-Latin script, if any.
    pub other_script: Option<String>,
    /// Words read.
    pub words: usize,
    /// Share of the words the model saw in training.
    pub known_share: f64,
    /// Whether the text was cut to [`MAX_INPUT_BYTES`].
    pub truncated: bool,
}

/// Least share of Latin letters for a text to be read.
pub const MIN_LATIN_SHARE: f64 = 0.7;
/// Largest share of letters from Latin Extended-A/B and Extended Additional (ă, đ, ơ, ư, ạ, ł…)
/// for a text to be read: English, and the Western European words of Latin-1 (é, ü, ñ), have
/// almost none; Vietnamese has one in five.
pub const MAX_EXTENDED_LATIN_SHARE: f64 = 0.1;

/// Least share of known words (of three letters or more) for a text to be read.
pub const MIN_KNOWN_SHARE: f64 = 0.34;

/// Checks whether the models can read a text: not empty, not binary (control characters,
/// replacement characters from invalid UTF-8), mostly Latin letters, and with enough words the
/// model knows (`known` says whether a word was seen in training).
pub fn readability(text: &str, known: &dyn Fn(&str) -> bool) -> Readability {
    let (capped, truncated) = cap(text);
    let mut r = Readability {
        readable: false,
        reason: None,
        letters: 0,
        latin_share: 0.0,
        other_script: None,
        words: 0,
        known_share: 0.0,
        truncated,
    };
    if capped.trim().is_empty() {
        r.reason = Some("empty description".into());
        return r;
    }
    let mut control = 0usize;
    let mut latin = 0usize;
    let mut extended = 0usize;
    let mut others: Vec<(&'static str, usize)> = Vec::new();
    for c in capped.chars() {
        if c == '\u{FFFD}' || (c.is_control() && !c.is_whitespace()) {
            control += 1;
        } else if c.is_alphabetic() {
            r.letters += 1;
            match script(c) {
                "Latin" => {
                    latin += 1;
                    if matches!(c as u32, 0x0100..=0x024F | 0x1E00..=0x1EFF) {
                        extended += 1;
                    }
                }
                s => match others.iter_mut().find(|(name, _)| *name == s) {
                    Some((_, n)) => *n += 1,
                    None => others.push((s, 1)),
                },
            }
        }
    }
    others.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    r.other_script = others.first().map(|(s, _)| s.to_string());
    if control > 0 {
        r.reason = Some(format!(
            "binary or corrupt text ({control} control or invalid characters)"
        ));
        return r;
    }
    if r.letters == 0 {
        r.reason = Some("no letters: nothing describes the goods".into());
        return r;
    }
    r.latin_share = latin as f64 / r.letters as f64;
    if r.latin_share < MIN_LATIN_SHARE {
        r.reason = Some(format!(
            "cannot read: {:.0}% of the letters are {} script, which the models were not trained on",
            100.0 * (1.0 - r.latin_share),
            r.other_script.as_deref().unwrap_or("non-Latin")
        ));
        return r;
    }
    let extended_share = extended as f64 / r.letters as f64;
    if extended_share > MAX_EXTENDED_LATIN_SHARE {
        r.reason = Some(format!(
            "cannot read: {:.0}% of the letters carry diacritics of a language the models were not trained on (such as Vietnamese)",
            100.0 * extended_share
        ));
        return r;
    }
    let ws = words(capped);
    r.words = ws.len();
    let long: Vec<&String> = ws.iter().filter(|w| w.chars().count() >= 3).collect();
    let pool: Vec<&String> = if long.is_empty() {
        ws.iter().collect()
    } else {
        long
    };
    if pool.is_empty() {
        r.reason = Some("no words: nothing describes the goods".into());
        return r;
    }
    let known_n = pool.iter().filter(|w| known(w)).count();
    r.known_share = known_n as f64 / pool.len() as f64;
    if r.known_share < MIN_KNOWN_SHARE {
        r.reason = Some(format!(
            "cannot read: {known_n} of {} words are known to the models",
            pool.len()
        ));
        return r;
    }
    r.readable = true;
    if truncated {
        r.reason = Some(format!("cut to {MAX_INPUT_BYTES} bytes"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn words_are_lower_case_without_digits() {
        assert_eq!(
            words("Frozen SHRIMP 500g, bag-of-10"),
            ["frozen", "shrimp", "bag", "of"]
        );
        assert_eq!(words("Crème brûlée"), ["crème", "brûlée"]);
        assert!(words("   ").is_empty());
    }

    #[test]
    fn plurals_share_the_word_feature() {
        for (a, b) in [
            ("shirts", "shirt"),
            ("boxes", "box"),
            ("batteries", "battery"),
            ("watches", "watch"),
        ] {
            assert_eq!(stem(a), b);
            assert_eq!(word_feature(a), word_feature(b));
        }
        for w in ["glass", "cactus", "analysis", "gas", "é"] {
            assert_eq!(stem(w), w);
        }
    }

    #[test]
    fn cap_cuts_at_a_character_boundary() {
        let long = "é".repeat(2000);
        let (c, cut) = cap(&long);
        assert!(cut);
        assert!(c.len() <= MAX_INPUT_BYTES);
        assert!(c.chars().all(|ch| ch == 'é'));
    }

    #[test]
    fn features_have_words_bigrams_and_char_grams() {
        let f = features(&words("cotton shirt"));
        assert_eq!(f.words.len(), 3);
        // "<cotton>" has 8 chars: 6 + 5 + 4 n-grams; "<shirt>" 7 chars: 5 + 4 + 3
        assert_eq!(f.chars.len(), 15 + 12);
        assert_eq!(f.words[0], word_feature("cotton"));
    }

    #[test]
    fn readability_routes_what_cannot_be_read() {
        let all = |_: &str| true;
        let none = |_: &str| false;
        assert!(readability("cotton shirt", &all).readable);
        assert_eq!(
            readability("", &all).reason.as_deref(),
            Some("empty description")
        );
        assert!(!readability("ข้าวหอมมะลิ", &all).readable);
        assert_eq!(
            readability("电动汽车", &all).other_script.as_deref(),
            Some("Han")
        );
        assert!(!readability("ab\u{0}\u{1}cd", &all).readable);
        assert!(!readability("cotton shirt", &none).readable);
        assert!(!readability("12345 678", &all).readable);
        assert!(!readability("điện thoại thông minh", &all).readable);
        assert!(readability("crème brûlée, café au lait", &all).readable);
        let huge = "shirt ".repeat(200_000);
        let r = readability(&huge, &all);
        assert!(r.readable && r.truncated);
    }

    proptest! {
        #[test]
        fn any_text_is_answered_without_panic(s in "\\PC{0,200}") {
            let r = readability(&s, &|w: &str| w.len() % 2 == 0);
            prop_assert!(r.readable || r.reason.is_some());
            let ws = words(&s);
            prop_assert!(ws.len() <= MAX_WORDS);
            let f = features(&ws);
            prop_assert!(f.words.iter().chain(&f.chars).all(|&x| x < (1 << FEATURE_BITS)));
        }
    }
}
