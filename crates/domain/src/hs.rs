//! Harmonized System codes: six digits are the part shared world-wide (WCO); national extensions
//! (8 or 10 digits) are a different thing and are rejected where an HS6 is expected.

use std::fmt;

/// A 6-digit HS subheading, e.g. `440890`. Invariant: six ASCII digits, chapter 01..=97, not 77
/// (chapter 77 is reserved by the WCO for future use).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct HsCode([u8; 6]);

/// Why a text is not an HS6 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HsError {
    /// Empty after removing separators.
    #[error("empty HS code")]
    Empty,
    /// A character other than a digit, `.` or space.
    #[error("HS code '{0}' contains a non-digit")]
    NonDigit(String),
    /// Wrong number of digits (national 8/10-digit codes land here).
    #[error("HS code '{code}' has {digits} digits, expected 6")]
    Length {
        /// the code as given
        code: String,
        /// how many digits it had
        digits: usize,
    },
    /// Chapter 00, 77 (reserved) or above 97.
    #[error("HS code '{0}' has no such chapter")]
    Chapter(String),
}

impl HsCode {
    /// A valid code used where a value is needed before the declared one is known.
    pub(crate) const PLACEHOLDER: HsCode = HsCode(*b"010000");

    /// Parses `440890`, `4408.90` or `4408 90`. Leading zeros matter (`071080` is chapter 07).
    pub fn parse(text: &str) -> Result<HsCode, HsError> {
        let trimmed = text.trim();
        let mut digits = [0u8; 6];
        let mut n_digits = 0usize;
        for c in trimmed.chars() {
            match c {
                '.' | ' ' => {}
                '0'..='9' => {
                    if n_digits < 6 {
                        digits[n_digits] = c as u8;
                    }
                    n_digits += 1;
                }
                _ => return Err(HsError::NonDigit(trimmed.to_string())),
            }
        }
        if n_digits == 0 {
            return Err(HsError::Empty);
        }
        if n_digits != 6 {
            return Err(HsError::Length {
                code: trimmed.to_string(),
                digits: n_digits,
            });
        }
        let chapter = (digits[0] - b'0') * 10 + (digits[1] - b'0');
        if chapter == 0 || chapter == 77 || chapter > 97 {
            return Err(HsError::Chapter(trimmed.to_string()));
        }
        Ok(HsCode(digits))
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        // Invariant: ASCII digits only.
        std::str::from_utf8(&self.0).unwrap_or("000000")
    }

    /// HS chapter, two digits (`44`).
    pub fn chapter(&self) -> &str {
        &self.as_str()[..2]
    }

    /// HS heading, four digits (`4408`).
    pub fn heading(&self) -> &str {
        &self.as_str()[..4]
    }
}

impl fmt::Display for HsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expect: Result<&str, HsError>) {
        assert_eq!(
            HsCode::parse(input)
                .map(|c| c.to_string())
                .as_deref()
                .map_err(Clone::clone),
            expect.as_ref().map(|s| *s).map_err(Clone::clone)
        );
    }

    #[test]
    fn examples() {
        check("440890", Ok("440890"));
        check(" 4408.90 ", Ok("440890"));
        check("071080", Ok("071080"));
        check("", Err(HsError::Empty));
        check(
            "4408901000",
            Err(HsError::Length {
                code: "4408901000".into(),
                digits: 10,
            }),
        );
        check(
            "71080",
            Err(HsError::Length {
                code: "71080".into(),
                digits: 5,
            }),
        );
        check("77aa00", Err(HsError::NonDigit("77aa00".into())));
        check("770000", Err(HsError::Chapter("770000".into())));
        check("980000", Err(HsError::Chapter("980000".into())));
    }

    #[test]
    fn parts() {
        let code = HsCode::parse("440890").unwrap();
        assert_eq!((code.chapter(), code.heading()), ("44", "4408"));
    }

    proptest! {
        #[test]
        fn valid_codes_round_trip(chapter in 1u32..=97, rest in 0u32..10_000) {
            prop_assume!(chapter != 77);
            let text = format!("{chapter:02}{rest:04}");
            let code = HsCode::parse(&text).unwrap();
            prop_assert_eq!(code.to_string(), text);
        }

        #[test]
        fn never_panics(text in "\\PC{0,16}") {
            let _ = HsCode::parse(&text);
        }

        #[test]
        fn wrong_lengths_rejected(digits in "[0-9]{1,12}") {
            prop_assume!(digits.len() != 6);
            let rejected = matches!(HsCode::parse(&digits), Err(HsError::Length { .. }));
            prop_assert!(rejected);
        }
    }
}
