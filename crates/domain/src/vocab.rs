//! The closed vocabularies of borderlens: lanes, decision sources, the status of a recorded
//! control result, and the label a model learns.
//!
//! Each is an enum parsed once at the edge (command line, HTTP, database row, saved model) and
//! written back as the same lower-case word it always had: [`fmt::Display`], `name()` and serde
//! all use it, so stored rows, saved models and JSON answers do not change. An unknown word is an
//! [`UnknownWord`] error that names it and the accepted ones.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::ControlLabel;

/// A word that is not in a vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{found}': use {}", one_of(accepted))]
pub struct UnknownWord {
    /// The vocabulary, e.g. `lane`.
    pub what: &'static str,
    /// The word found.
    pub found: String,
    /// The words accepted.
    pub accepted: &'static [&'static str],
}

/// `a, b or c`.
fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [only] => (*only).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Defines a vocabulary enum with `ALL`, `NAMES`, `name`, `parse`, `FromStr`, `Display` and
/// serde as its words. Parsing trims and ignores ASCII case; aliases are accepted on input only.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $what:literal {
            $($(#[$vmeta:meta])* $variant:ident = $word:literal $(| $alias:literal)*,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The words, in the order of [`Self::ALL`].
            pub const NAMES: &'static [&'static str] = &[$($word),+];

            /// The word written in the database, in JSON and on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// Parses the word (trimmed, any ASCII case); an unknown word is an error naming it
            /// and the accepted ones.
            pub fn parse(text: &str) -> Result<$name, UnknownWord> {
                let word = text.trim().to_ascii_lowercase();
                match word.as_str() {
                    $($word $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(UnknownWord {
                        what: $what,
                        found: text.to_string(),
                        accepted: $name::NAMES,
                    }),
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(text: &str) -> Result<$name, UnknownWord> {
                $name::parse(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                struct Words;

                impl Visitor<'_> for Words {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a {}: {}", $what, one_of($name::NAMES))
                    }

                    fn visit_str<E: de::Error>(self, text: &str) -> Result<$name, E> {
                        $name::parse(text).map_err(E::custom)
                    }
                }

                deserializer.deserialize_str(Words)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "enum": $name::NAMES,
                    "description": format!("A {}: {}.", $what, one_of($name::NAMES)),
                })
            }
        }
    };
}

vocabulary! {
    /// Where a declaration goes. Ordered as a queue shows them: controls first.
    pub enum Lane: "lane" {
        /// Physical control.
        Red = "red",
        /// Documentary control.
        Yellow = "yellow",
        /// Released without control.
        Green = "green",
    }
}

impl Lane {
    /// Whether the lane is a control (red or yellow): the declaration is selected.
    pub fn is_control(self) -> bool {
        self != Lane::Green
    }
}

vocabulary! {
    /// Why a declaration is in its lane: what the selection policy did, or an officer's override.
    pub enum DecisionSource: "decision source" {
        /// A 100% campaign covers it.
        Campaign = "campaign",
        /// Its score is among the highest.
        Risk = "risk",
        /// Drawn by the uniform random share.
        Random = "random",
        /// Drawn by uncertainty-stratified exploration.
        Explore = "explore",
        /// Documentary band.
        Documentary = "documentary",
        /// Not selected.
        Release = "release",
        /// An officer moved it to another lane (recorded on top of the policy's decision).
        Override = "override",
    }
}

impl DecisionSource {
    /// The sources that are part of the sampling design: red-lane selections whose results
    /// enter the estimates.
    pub const DESIGN: [DecisionSource; 4] = [
        DecisionSource::Campaign,
        DecisionSource::Risk,
        DecisionSource::Random,
        DecisionSource::Explore,
    ];

    /// Whether this selection is part of the sampling design ([`Self::DESIGN`]).
    pub fn is_design_selection(self) -> bool {
        Self::DESIGN.contains(&self)
    }
}

vocabulary! {
    /// What recording a control result did.
    pub enum RecordStatus: "record status" {
        /// Stored now.
        Recorded = "recorded",
        /// The same submission was already stored; nothing changed.
        Duplicate = "duplicate",
    }
}

vocabulary! {
    /// Which label a model learns.
    pub enum LabelKind: "label" {
        /// `fraud == true`.
        Fraud = "fraud",
        /// `critical == 2`: the rare, serious cases.
        Critical = "critical" | "critical-fraud",
    }
}

impl LabelKind {
    /// Whether `label` is a positive for this kind.
    pub fn is_positive(self, label: ControlLabel) -> bool {
        match self {
            LabelKind::Fraud => label.fraud,
            LabelKind::Critical => label.critical == 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `name` then `parse` gives the value back, for every value of `T`; and serde writes the
    /// same word as a JSON string and reads it back.
    fn round_trips<T>(all: &[T], names: &[&str])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + FromStr + Serialize,
        T: for<'de> Deserialize<'de>,
        <T as FromStr>::Err: fmt::Debug,
    {
        assert_eq!(all.len(), names.len());
        for (value, name) in all.iter().zip(names) {
            assert_eq!(value.to_string(), *name);
            assert_eq!(name.parse::<T>().unwrap(), *value);
            let json = serde_json::to_string(value).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), *value);
        }
    }

    #[test]
    fn every_word_round_trips_through_name_parse_and_serde() {
        round_trips(Lane::ALL, &["red", "yellow", "green"]);
        round_trips(
            DecisionSource::ALL,
            &[
                "campaign",
                "risk",
                "random",
                "explore",
                "documentary",
                "release",
                "override",
            ],
        );
        round_trips(RecordStatus::ALL, &["recorded", "duplicate"]);
        round_trips(LabelKind::ALL, &["fraud", "critical"]);
    }

    #[test]
    fn an_unknown_word_is_an_error_naming_it_and_the_accepted_ones() {
        let error = Lane::parse("purple").unwrap_err();
        assert_eq!(error.found, "purple");
        assert_eq!(
            error.to_string(),
            "unknown lane 'purple': use red, yellow or green"
        );
        assert_eq!(
            "nonsense".parse::<LabelKind>().unwrap_err().to_string(),
            "unknown label 'nonsense': use fraud or critical"
        );
        assert!(RecordStatus::parse("").is_err());
        let json = serde_json::from_str::<DecisionSource>("\"manual\"").unwrap_err();
        assert!(
            json.to_string()
                .contains("unknown decision source 'manual'")
                && json.to_string().contains("override"),
            "{json}"
        );
        assert!(serde_json::from_str::<Lane>("3").is_err());
    }

    #[test]
    fn parsing_trims_ignores_case_and_accepts_aliases() {
        assert_eq!(Lane::parse(" RED ").unwrap(), Lane::Red);
        assert_eq!(
            LabelKind::parse("Critical-Fraud").unwrap(),
            LabelKind::Critical
        );
        assert_eq!(LabelKind::Critical.name(), "critical");
    }

    #[test]
    fn lanes_sort_controls_first_and_the_design_is_the_red_selections() {
        let mut lanes = vec![Lane::Green, Lane::Red, Lane::Yellow];
        lanes.sort();
        assert_eq!(lanes, [Lane::Red, Lane::Yellow, Lane::Green]);
        assert!(Lane::Yellow.is_control() && !Lane::Green.is_control());
        let design: Vec<_> = DecisionSource::ALL
            .iter()
            .filter(|s| s.is_design_selection())
            .map(|s| s.name())
            .collect();
        assert_eq!(design, ["campaign", "risk", "random", "explore"]);
    }

    #[test]
    fn label_kinds_read_their_own_positives() {
        let critical = ControlLabel {
            fraud: true,
            critical: 2,
        };
        let minor = ControlLabel {
            fraud: true,
            critical: 1,
        };
        assert!(LabelKind::Fraud.is_positive(minor));
        assert!(!LabelKind::Critical.is_positive(minor));
        assert!(LabelKind::Critical.is_positive(critical));
    }

    proptest! {
        /// Any text parses to the value whose name it is (trimmed, any case), or to an error
        /// that quotes it; a value's name always parses back to it.
        #[test]
        fn parse_accepts_exactly_the_names(text in "\\PC{0,12}") {
            match Lane::parse(&text) {
                Ok(lane) => prop_assert_eq!(lane.name(), text.trim().to_ascii_lowercase()),
                Err(e) => {
                    prop_assert_eq!(&e.found, &text);
                    prop_assert!(!Lane::NAMES.contains(&text.trim().to_ascii_lowercase().as_str()));
                }
            }
            match DecisionSource::parse(&text) {
                Ok(source) => prop_assert_eq!(source.name(), text.trim().to_ascii_lowercase()),
                Err(e) => {
                    let quoted = format!("'{text}'");
                    prop_assert!(e.to_string().contains(&quoted));
                }
            }
        }

        #[test]
        fn names_parse_back_in_any_case(i in 0usize..7, upper in any::<u8>(), pad in " {0,2}") {
            let source = DecisionSource::ALL[i];
            let cased: String = source
                .name()
                .chars()
                .enumerate()
                .map(|(k, c)| if upper >> (k % 8) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                .collect();
            prop_assert_eq!(DecisionSource::parse(&format!("{pad}{cased}{pad}")).unwrap(), source);
        }
    }
}
