//! Standard trade identifiers with check digits: ISO 6346 freight container numbers and UPU S10
//! postal item identifiers.
//!
//! Both are parsed once at the edge. [`ContainerNumber::parse`] and [`S10ItemId::parse`] accept the
//! forms people type or print (lowercase, spaces, hyphens), normalise them to the canonical compact
//! upper-case form, check the layout character by character, then verify the check digit. A parsed
//! value is always canonical, so `Display` and `as_str` give e.g. `CSQU3054383` or `RR473124829GB`.
//!
//! Neither check digit catches every single-character error. The known blind spots, which the
//! tests pin down, are:
//! - ISO 6346 writes remainder 10 as check digit 0, so remainders 0 and 10 collide: a digit
//!   substitution that moves the remainder between 0 and 10 goes unnoticed. Letters whose values
//!   differ by 11 (A/K/U, B/L/V, C/M/W, ...) are also interchangeable.
//! - UPU S10 maps both remainder 0 and remainder 6 to check digit 5, so a serial digit substitution
//!   that moves the weighted sum between those remainders goes unnoticed.

use std::fmt;
use std::str::FromStr;

/// What [`IdError`] calls an ISO 6346 container number.
const CONTAINER_KIND: &str = "container number";
/// What [`IdError`] calls a UPU S10 item identifier.
const S10_KIND: &str = "postal item id";

/// Why a text is not a valid identifier.
///
/// `text` is always the normalised form (whitespace and hyphens removed, ASCII letters
/// upper-cased), so `position` in [`IdError::Format`] counts characters of that form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Wrong number of characters after removing separators (empty input lands here too).
    #[error("{kind} '{text}' has {got} characters, expected {expected}")]
    Length {
        /// which identifier was being parsed, e.g. `container number`
        kind: &'static str,
        /// the normalised text
        text: String,
        /// how many characters this identifier has
        expected: usize,
        /// how many characters the text has
        got: usize,
    },
    /// A character that does not belong at its position (a digit where a letter must be, ...).
    #[error("{kind} '{text}' has {found:?} at character {position}, expected {expected}")]
    Format {
        /// which identifier was being parsed, e.g. `container number`
        kind: &'static str,
        /// the normalised text
        text: String,
        /// 1-based position of the offending character in `text`
        position: usize,
        /// the offending character
        found: char,
        /// what the layout allows there
        expected: &'static str,
    },
    /// Well-formed, but the check digit does not match the rest of the identifier.
    #[error("{kind} '{text}' has check digit {found}, expected {expected}")]
    CheckDigit {
        /// which identifier was being parsed, e.g. `container number`
        kind: &'static str,
        /// the normalised text
        text: String,
        /// the check digit computed from the other characters
        expected: u8,
        /// the check digit the text carries
        found: u8,
    },
}

/// One position of an identifier layout: which characters it allows, and how to say so.
type Slot = (fn(char) -> bool, &'static str);

fn is_letter(c: char) -> bool {
    c.is_ascii_uppercase()
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn is_category(c: char) -> bool {
    matches!(c, 'U' | 'J' | 'Z')
}

const OWNER: Slot = (is_letter, "an owner code letter A-Z");
const CATEGORY: Slot = (is_category, "an equipment category U, J or Z");
const SERIAL: Slot = (is_digit, "a serial number digit");
const CHECK: Slot = (is_digit, "a check digit");
const SERVICE: Slot = (is_letter, "a service indicator letter A-Z");
const COUNTRY: Slot = (is_letter, "a country code letter A-Z");

/// ISO 6346: owner code (3 letters), category, serial (6 digits), check digit.
const CONTAINER_LAYOUT: [Slot; 11] = [
    OWNER, OWNER, OWNER, CATEGORY, SERIAL, SERIAL, SERIAL, SERIAL, SERIAL, SERIAL, CHECK,
];

/// UPU S10: service indicator (2 letters), serial (8 digits), check digit, country (2 letters).
const S10_LAYOUT: [Slot; 13] = [
    SERVICE, SERVICE, SERIAL, SERIAL, SERIAL, SERIAL, SERIAL, SERIAL, SERIAL, SERIAL, CHECK,
    COUNTRY, COUNTRY,
];

/// Removes whitespace and hyphens and upper-cases ASCII letters (other characters are kept as
/// they are, so the layout check reports them).
fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Checks `text` against `layout`; on success `text` is ASCII, so byte slicing is safe.
fn check_layout(kind: &'static str, text: &str, layout: &[Slot]) -> Result<(), IdError> {
    let got = text.chars().count();
    if got != layout.len() {
        return Err(IdError::Length {
            kind,
            text: text.to_string(),
            expected: layout.len(),
            got,
        });
    }
    for (index, (found, (allowed, expected))) in text.chars().zip(layout).enumerate() {
        if !allowed(found) {
            return Err(IdError::Format {
                kind,
                text: text.to_string(),
                position: index + 1,
                found,
                expected,
            });
        }
    }
    Ok(())
}

/// Value of an ASCII digit character (the caller has checked it is one).
fn digit_value(byte: u8) -> u8 {
    byte.wrapping_sub(b'0')
}

/// ISO 6346 letter values: A=10, then counting up while skipping multiples of 11 (B=12 .. Z=38).
const LETTER_VALUES: [u32; 26] = [
    10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 34, 35, 36,
    37, 38,
];

/// The ISO 6346 weighted sum mod 11 of owner code, category and serial (before folding 10 to 0).
/// `None` unless `first10` is 4 ASCII letters (either case) followed by 6 ASCII digits.
fn iso6346_remainder(first10: &str) -> Option<u32> {
    let bytes = first10.as_bytes();
    if bytes.len() != 10 {
        return None;
    }
    let mut sum = 0u32;
    for (position, &byte) in bytes.iter().enumerate() {
        let value = match position {
            0..=3 if byte.is_ascii_alphabetic() => {
                LETTER_VALUES[usize::from(byte.to_ascii_uppercase() - b'A')]
            }
            4..=9 if byte.is_ascii_digit() => u32::from(byte - b'0'),
            _ => return None,
        };
        sum += value << position;
    }
    Some(sum % 11)
}

/// The ISO 6346 check digit of the first ten characters of a container number (owner code,
/// category identifier, serial number), e.g. `CSQU305438` gives `3`.
///
/// Each character's value (digits as themselves, letters per the ISO 6346 table A=10, B=12, ..,
/// skipping multiples of 11) is multiplied by 2^position; the sum mod 11 is the check digit, with
/// remainder 10 written as 0. Returns `None` unless the text is 4 ASCII letters (either case)
/// followed by 6 ASCII digits; the category letter is not restricted here, [`ContainerNumber::parse`]
/// does that.
pub fn iso6346_check_digit(first10: &str) -> Option<u8> {
    iso6346_remainder(first10).map(|remainder| (remainder % 10) as u8)
}

/// S10 weights of the eight serial digits.
const S10_WEIGHTS: [u32; 8] = [8, 6, 4, 2, 3, 5, 9, 7];

/// The S10 weighted sum of the serial digits mod 11. `None` unless `serial8` is 8 ASCII digits.
fn s10_remainder(serial8: &str) -> Option<u32> {
    let bytes = serial8.as_bytes();
    if bytes.len() != 8 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = bytes
        .iter()
        .zip(S10_WEIGHTS)
        .map(|(&byte, weight)| u32::from(byte - b'0') * weight)
        .sum();
    Some(sum % 11)
}

/// The UPU S10 check digit of an 8-digit serial number, e.g. `47312482` gives `9`.
///
/// The digits are weighted 8, 6, 4, 2, 3, 5, 9, 7 and summed; the check digit is 11 minus the sum
/// mod 11, with 10 written as 0 and 11 as 5. Returns `None` unless the text is 8 ASCII digits.
pub fn s10_check_digit(serial8: &str) -> Option<u8> {
    s10_remainder(serial8).map(|remainder| match 11 - remainder {
        10 => 0,
        11 => 5,
        digit => digit as u8,
    })
}

/// An ISO 6346 freight container number, e.g. `CSQU3054383`: owner code `CSQ`, equipment category
/// `U`, serial number `305438`, check digit `3`. Invariant: canonical (11 characters, upper case,
/// no separators) with a valid check digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ContainerNumber(String);

impl ContainerNumber {
    /// Parses a container number, ignoring whitespace and hyphens and accepting lowercase, so
    /// `CSQU3054383`, `csqu 305438 3` and `CSQU-305438-3` all give `CSQU3054383`.
    pub fn parse(text: &str) -> Result<ContainerNumber, IdError> {
        let text = normalise(text);
        check_layout(CONTAINER_KIND, &text, &CONTAINER_LAYOUT)?;
        let found = digit_value(text.as_bytes()[10]);
        match iso6346_check_digit(&text[..10]) {
            Some(expected) if expected == found => Ok(ContainerNumber(text)),
            // The layout check guarantees `Some`; a `None` would still be reported, never accepted.
            expected => Err(IdError::CheckDigit {
                kind: CONTAINER_KIND,
                text,
                expected: expected.unwrap_or(u8::MAX),
                found,
            }),
        }
    }

    /// The canonical form, e.g. `CSQU3054383`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The three-letter owner code, e.g. `CSQ`.
    pub fn owner_code(&self) -> &str {
        &self.0[..3]
    }

    /// The equipment category identifier: `U` (freight container), `J` (detachable freight
    /// container-related equipment) or `Z` (trailer or chassis).
    pub fn category(&self) -> char {
        char::from(self.0.as_bytes()[3])
    }

    /// The six-digit serial number, e.g. `305438`.
    pub fn serial(&self) -> &str {
        &self.0[4..10]
    }

    /// The check digit, e.g. `3`.
    pub fn check_digit(&self) -> u8 {
        digit_value(self.0.as_bytes()[10])
    }
}

impl fmt::Display for ContainerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ContainerNumber {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ContainerNumber::parse(text)
    }
}

/// A UPU S10 postal item identifier, e.g. `RR473124829GB`: service indicator `RR`, serial number
/// `47312482`, check digit `9`, country `GB`. Invariant: canonical (13 characters, upper case, no
/// separators) with a valid check digit. The country code is checked for shape only, not against
/// the ISO 3166 list.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct S10ItemId(String);

impl S10ItemId {
    /// Parses an S10 identifier, ignoring whitespace and hyphens and accepting lowercase, so
    /// `RR473124829GB` and `rr 473 124 829 gb` both give `RR473124829GB`.
    pub fn parse(text: &str) -> Result<S10ItemId, IdError> {
        let text = normalise(text);
        check_layout(S10_KIND, &text, &S10_LAYOUT)?;
        let found = digit_value(text.as_bytes()[10]);
        match s10_check_digit(&text[2..10]) {
            Some(expected) if expected == found => Ok(S10ItemId(text)),
            // The layout check guarantees `Some`; a `None` would still be reported, never accepted.
            expected => Err(IdError::CheckDigit {
                kind: S10_KIND,
                text,
                expected: expected.unwrap_or(u8::MAX),
                found,
            }),
        }
    }

    /// The canonical form, e.g. `RR473124829GB`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The two-letter service indicator, e.g. `RR` (registered letter) or `EE` (EMS).
    pub fn service_indicator(&self) -> &str {
        &self.0[..2]
    }

    /// The eight-digit serial number, e.g. `47312482`.
    pub fn serial(&self) -> &str {
        &self.0[2..10]
    }

    /// The check digit, e.g. `9`.
    pub fn check_digit(&self) -> u8 {
        digit_value(self.0.as_bytes()[10])
    }

    /// The two-letter ISO 3166 country code of the issuing postal operator, e.g. `GB`.
    pub fn country(&self) -> &str {
        &self.0[11..]
    }
}

impl fmt::Display for S10ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for S10ItemId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        S10ItemId::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_container(input: &str, expect: Result<&str, IdError>) {
        let got = ContainerNumber::parse(input).map(|id| id.to_string());
        assert_eq!(got, expect.map(str::to_string), "input {input:?}");
    }

    fn check_s10(input: &str, expect: Result<&str, IdError>) {
        let got = S10ItemId::parse(input).map(|id| id.to_string());
        assert_eq!(got, expect.map(str::to_string), "input {input:?}");
    }

    fn length(kind: &'static str, text: &str, expected: usize, got: usize) -> IdError {
        IdError::Length {
            kind,
            text: text.into(),
            expected,
            got,
        }
    }

    fn format(
        kind: &'static str,
        text: &str,
        position: usize,
        found: char,
        expected: &'static str,
    ) -> IdError {
        IdError::Format {
            kind,
            text: text.into(),
            position,
            found,
            expected,
        }
    }

    fn check_digit(kind: &'static str, text: &str, expected: u8, found: u8) -> IdError {
        IdError::CheckDigit {
            kind,
            text: text.into(),
            expected,
            found,
        }
    }

    const C: &str = CONTAINER_KIND;
    const S: &str = S10_KIND;

    #[test]
    fn letter_values_follow_the_iso6346_rule() {
        // A=10, then count up skipping every multiple of 11.
        let mut expected = Vec::new();
        let mut value = 10;
        while expected.len() < 26 {
            if value % 11 != 0 {
                expected.push(value);
            }
            value += 1;
        }
        assert_eq!(LETTER_VALUES.to_vec(), expected);
        assert_eq!((LETTER_VALUES[10], LETTER_VALUES[11]), (21, 23)); // K, L
        assert_eq!((LETTER_VALUES[20], LETTER_VALUES[21]), (32, 34)); // U, V
    }

    #[test]
    fn container_examples() {
        // The example of ISO 6346 itself, and other numbers with check digits computed by hand.
        check_container("CSQU3054383", Ok("CSQU3054383"));
        check_container("MSKU9070323", Ok("MSKU9070323"));
        check_container("TGHU0123450", Ok("TGHU0123450"));
        check_container("HLXU1234561", Ok("HLXU1234561"));
        check_container("AAAU0000007", Ok("AAAU0000007"));
        check_container("ZZZZ9999996", Ok("ZZZZ9999996"));
        check_container("ABCJ0000000", Err(check_digit(C, "ABCJ0000000", 4, 0)));
        // Normalisation.
        check_container("csqu3054383", Ok("CSQU3054383"));
        check_container(" CSQU 305438 3 ", Ok("CSQU3054383"));
        check_container("CSQU-305438-3", Ok("CSQU3054383"));
        check_container("csq u\t305 438-3\n", Ok("CSQU3054383"));
        // Wrong check digit.
        check_container("CSQU3054384", Err(check_digit(C, "CSQU3054384", 3, 4)));
        check_container("csqu 305438 0", Err(check_digit(C, "CSQU3054380", 3, 0)));
        // Wrong length.
        check_container("", Err(length(C, "", 11, 0)));
        check_container(" - ", Err(length(C, "", 11, 0)));
        check_container("CSQU305438", Err(length(C, "CSQU305438", 11, 10)));
        check_container("CSQU30543833", Err(length(C, "CSQU30543833", 11, 12)));
        // Wrong characters, reported at their 1-based position.
        let letter = "an owner code letter A-Z";
        check_container("C5QU3054383", Err(format(C, "C5QU3054383", 2, '5', letter)));
        check_container(
            "CSQX3054383",
            Err(format(
                C,
                "CSQX3054383",
                4,
                'X',
                "an equipment category U, J or Z",
            )),
        );
        check_container(
            "CSQUA054383",
            Err(format(C, "CSQUA054383", 5, 'A', "a serial number digit")),
        );
        check_container(
            "CSQU305438X",
            Err(format(C, "CSQU305438X", 11, 'X', "a check digit")),
        );
        check_container(
            "CSQU305438３",
            Err(format(C, "CSQU305438３", 11, '３', "a check digit")),
        );
        check_container("ÇSQU3054383", Err(format(C, "ÇSQU3054383", 1, 'Ç', letter)));
        check_container("CS_U3054383", Err(format(C, "CS_U3054383", 3, '_', letter)));
    }

    #[test]
    fn container_parts() {
        let id = ContainerNumber::parse("csqu 305438 3").unwrap();
        assert_eq!(id.as_str(), "CSQU3054383");
        assert_eq!(
            (
                id.owner_code(),
                id.category(),
                id.serial(),
                id.check_digit()
            ),
            ("CSQ", 'U', "305438", 3)
        );
        assert_eq!("CSQU3054383".parse::<ContainerNumber>(), Ok(id));
    }

    #[test]
    fn iso6346_helper() {
        assert_eq!(iso6346_check_digit("CSQU305438"), Some(3));
        assert_eq!(iso6346_check_digit("csqu305438"), Some(3));
        assert_eq!(iso6346_check_digit("CSQU30543"), None);
        assert_eq!(iso6346_check_digit("CSQU3054383"), None);
        assert_eq!(iso6346_check_digit("CSQ1305438"), None);
        assert_eq!(iso6346_check_digit("CSQUX05438"), None);
        assert_eq!(iso6346_check_digit("CSQU30543é"), None);
        assert_eq!(iso6346_check_digit(""), None);
    }

    #[test]
    fn iso6346_known_blind_spots() {
        // Remainder 0 and remainder 10 both give check digit 0: one serial digit apart, both valid.
        assert_eq!(iso6346_remainder("CSQU066907"), Some(0));
        assert_eq!(iso6346_remainder("CSQU266907"), Some(10));
        check_container("CSQU0669070", Ok("CSQU0669070"));
        check_container("CSQU2669070", Ok("CSQU2669070"));
        // C=13 and M=24 differ by 11, so swapping them keeps the check digit.
        check_container("MSQU3054383", Ok("MSQU3054383"));
    }

    #[test]
    fn s10_examples() {
        check_s10("RR473124829GB", Ok("RR473124829GB"));
        check_s10("EE123456785US", Ok("EE123456785US"));
        check_s10("CP000000005DE", Ok("CP000000005DE")); // sum mod 11 = 0, 11 is written as 5
        check_s10("LX000000014FR", Ok("LX000000014FR"));
        check_s10("RA987654326CN", Ok("RA987654326CN"));
        // Normalisation.
        check_s10("rr473124829gb", Ok("RR473124829GB"));
        check_s10("RR 473 124 829 GB", Ok("RR473124829GB"));
        check_s10(" rr-473124829-gb\n", Ok("RR473124829GB"));
        // Wrong check digit.
        check_s10("RR473124828GB", Err(check_digit(S, "RR473124828GB", 9, 8)));
        check_s10("RR473124849GB", Err(check_digit(S, "RR473124849GB", 6, 9)));
        // Wrong length.
        check_s10("", Err(length(S, "", 13, 0)));
        check_s10("RR473124829G", Err(length(S, "RR473124829G", 13, 12)));
        check_s10("RR4731248299GB", Err(length(S, "RR4731248299GB", 13, 14)));
        // Wrong characters.
        check_s10(
            "R1473124829GB",
            Err(format(
                S,
                "R1473124829GB",
                2,
                '1',
                "a service indicator letter A-Z",
            )),
        );
        check_s10(
            "RR47312482OGB",
            Err(format(S, "RR47312482OGB", 11, 'O', "a check digit")),
        );
        check_s10(
            "RR4731248299B",
            Err(format(
                S,
                "RR4731248299B",
                12,
                '9',
                "a country code letter A-Z",
            )),
        );
        check_s10(
            "RRO73124829GB",
            Err(format(S, "RRO73124829GB", 3, 'O', "a serial number digit")),
        );
        check_s10(
            "RR473124829GÖ",
            Err(format(
                S,
                "RR473124829GÖ",
                13,
                'Ö',
                "a country code letter A-Z",
            )),
        );
    }

    #[test]
    fn s10_parts() {
        let id = S10ItemId::parse("rr 473 124 829 gb").unwrap();
        assert_eq!(id.as_str(), "RR473124829GB");
        assert_eq!(
            (
                id.service_indicator(),
                id.serial(),
                id.check_digit(),
                id.country()
            ),
            ("RR", "47312482", 9, "GB")
        );
        assert_eq!("RR473124829GB".parse::<S10ItemId>(), Ok(id));
    }

    #[test]
    fn s10_helper() {
        assert_eq!(s10_check_digit("47312482"), Some(9));
        assert_eq!(s10_check_digit("12345678"), Some(5)); // 11 - 6
        assert_eq!(s10_check_digit("00000000"), Some(5)); // 11 is written as 5
        assert_eq!(s10_check_digit("00000001"), Some(4));
        assert_eq!(s10_check_digit("00000010"), Some(2)); // 11 - 9
        assert_eq!(s10_check_digit("00000008"), Some(0)); // 56 mod 11 = 1, 11 - 1 = 10 written as 0
        assert_eq!(s10_check_digit("4731248"), None);
        assert_eq!(s10_check_digit("473124829"), None);
        assert_eq!(s10_check_digit("4731248A"), None);
        assert_eq!(s10_check_digit(""), None);
    }

    #[test]
    fn s10_known_blind_spot() {
        // Remainder 0 and remainder 6 both give check digit 5: one serial digit apart, both valid.
        assert_eq!(s10_remainder("00000000"), Some(0));
        assert_eq!(s10_remainder("00002000"), Some(6));
        check_s10("RR000000005GB", Ok("RR000000005GB"));
        check_s10("RR000020005GB", Ok("RR000020005GB"));
    }

    #[test]
    fn error_messages() {
        let err = ContainerNumber::parse("CSQU3054384").unwrap_err();
        assert_eq!(
            err.to_string(),
            "container number 'CSQU3054384' has check digit 4, expected 3"
        );
        let err = ContainerNumber::parse("CSQX3054383").unwrap_err();
        assert_eq!(
            err.to_string(),
            "container number 'CSQX3054383' has 'X' at character 4, expected an equipment category U, J or Z"
        );
        let err = S10ItemId::parse("RR47312482GB").unwrap_err();
        assert_eq!(
            err.to_string(),
            "postal item id 'RR47312482GB' has 12 characters, expected 13"
        );
    }

    fn category() -> impl Strategy<Value = char> {
        prop::sample::select(vec!['U', 'J', 'Z'])
    }

    proptest! {
        #[test]
        fn container_with_computed_check_digit_round_trips(
            owner in "[A-Z]{3}",
            category in category(),
            serial in "[0-9]{6}",
        ) {
            let first10 = format!("{owner}{category}{serial}");
            let check = iso6346_check_digit(&first10).unwrap();
            let text = format!("{first10}{check}");
            let id = ContainerNumber::parse(&text).unwrap();
            prop_assert_eq!(id.to_string(), text.clone());
            prop_assert_eq!(
                (id.owner_code(), id.category(), id.serial(), id.check_digit()),
                (owner.as_str(), category, serial.as_str(), check)
            );
            prop_assert_eq!(ContainerNumber::parse(&id.to_string()), Ok(id.clone()));
            let spaced = format!("{} {category}-{serial} {check}", owner.to_lowercase());
            prop_assert_eq!(ContainerNumber::parse(&spaced), Ok(id));
        }

        /// Every single-digit change of the serial or check digit is rejected with `CheckDigit`,
        /// except the documented 0/10 collision, where the changed number is (wrongly but by the
        /// standard) valid.
        #[test]
        fn container_single_digit_change_is_detected(
            owner in "[A-Z]{3}",
            category in category(),
            serial in "[0-9]{6}",
            position in 4usize..11,
            delta in 1u8..10,
        ) {
            let first10 = format!("{owner}{category}{serial}");
            let check = iso6346_check_digit(&first10).unwrap();
            let mut bytes = format!("{first10}{check}").into_bytes();
            let new_digit = (digit_value(bytes[position]) + delta) % 10;
            bytes[position] = b'0' + new_digit;
            let changed = String::from_utf8(bytes).unwrap();
            let result = ContainerNumber::parse(&changed);
            if position == 10 {
                prop_assert_eq!(result, Err(check_digit(C, &changed, check, new_digit)));
            } else {
                let before = iso6346_remainder(&first10).unwrap();
                let after = iso6346_remainder(&changed[..10]).unwrap();
                // 2^position is invertible mod 11, so the remainder always moves.
                prop_assert_ne!(before, after);
                if before.min(after) == 0 && before.max(after) == 10 {
                    prop_assert_eq!(result.map(|id| id.to_string()), Ok(changed));
                } else {
                    prop_assert_eq!(result, Err(check_digit(C, &changed, (after % 10) as u8, check)));
                }
            }
        }

        #[test]
        fn container_parse_never_panics(text in "\\PC{0,24}") {
            if let Ok(id) = ContainerNumber::parse(&text) {
                prop_assert_eq!(ContainerNumber::parse(id.as_str()), Ok(id.clone()));
            }
        }

        #[test]
        fn container_parse_never_panics_near_valid(text in "[A-Za-z0-9 \\-]{8,14}") {
            if let Ok(id) = ContainerNumber::parse(&text) {
                prop_assert_eq!(id.as_str().len(), 11);
                prop_assert_eq!(ContainerNumber::parse(id.as_str()), Ok(id.clone()));
            }
        }

        #[test]
        fn s10_with_computed_check_digit_round_trips(
            service in "[A-Z]{2}",
            serial in "[0-9]{8}",
            country in "[A-Z]{2}",
        ) {
            let check = s10_check_digit(&serial).unwrap();
            let text = format!("{service}{serial}{check}{country}");
            let id = S10ItemId::parse(&text).unwrap();
            prop_assert_eq!(id.to_string(), text.clone());
            prop_assert_eq!(
                (id.service_indicator(), id.serial(), id.check_digit(), id.country()),
                (service.as_str(), serial.as_str(), check, country.as_str())
            );
            let spaced = format!(
                "{} {} {} {check}{} ",
                service.to_lowercase(),
                &serial[..3],
                &serial[3..],
                country.to_lowercase()
            );
            prop_assert_eq!(S10ItemId::parse(&spaced), Ok(id));
        }

        /// Every single-digit change of the serial or check digit is rejected with `CheckDigit`,
        /// except the documented 0/6 collision (both remainders give check digit 5).
        #[test]
        fn s10_single_digit_change_is_detected(
            service in "[A-Z]{2}",
            serial in "[0-9]{8}",
            country in "[A-Z]{2}",
            position in 2usize..11,
            delta in 1u8..10,
        ) {
            let check = s10_check_digit(&serial).unwrap();
            let mut bytes = format!("{service}{serial}{check}{country}").into_bytes();
            let new_digit = (digit_value(bytes[position]) + delta) % 10;
            bytes[position] = b'0' + new_digit;
            let changed = String::from_utf8(bytes).unwrap();
            let result = S10ItemId::parse(&changed);
            if position == 10 {
                prop_assert_eq!(result, Err(check_digit(S, &changed, check, new_digit)));
            } else {
                let before = s10_remainder(&serial).unwrap();
                let after = s10_remainder(&changed[2..10]).unwrap();
                // Every weight is invertible mod 11, so the remainder always moves.
                prop_assert_ne!(before, after);
                if before.min(after) == 0 && before.max(after) == 6 {
                    prop_assert_eq!(result.map(|id| id.to_string()), Ok(changed));
                } else {
                    let expected = s10_check_digit(&changed[2..10]).unwrap();
                    prop_assert_eq!(result, Err(check_digit(S, &changed, expected, check)));
                }
            }
        }

        #[test]
        fn s10_parse_never_panics(text in "\\PC{0,24}") {
            if let Ok(id) = S10ItemId::parse(&text) {
                prop_assert_eq!(S10ItemId::parse(id.as_str()), Ok(id.clone()));
            }
        }

        #[test]
        fn s10_parse_never_panics_near_valid(text in "[A-Za-z0-9 \\-]{10,16}") {
            if let Ok(id) = S10ItemId::parse(&text) {
                prop_assert_eq!(id.as_str().len(), 13);
                prop_assert_eq!(S10ItemId::parse(id.as_str()), Ok(id.clone()));
            }
        }
    }
}
