//! The registry of declared fields: one table that says, for every field a trader declares on a
//! goods item, its name, its business words, its type, whether a counterfactual may change it and
//! whether drift watches it.
//!
//! Every place that handles declared fields one by one reads this table instead of listing them:
//! the CSV mapping and reader (`ingest`), the item columns and the conflict check (`store`), the
//! declared values shown beside an explanation (`app`), the fields a counterfactual tries
//! (`risk`) and the inputs drift watches (`app`/`monitor`). Adding a declared field is therefore
//! one entry here plus a store migration that adds its column. A field that has no typed member
//! of [`DeclarationItem`] (an [`DeclaredField::extra`] field, such as a goods description) is
//! kept in [`DeclarationItem::extra`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use chrono::{Datelike, NaiveDate};

use crate::{ControlLabel, DeclarationItem, HsCode, HsError, ItemKey};

/// How a declared value is written and checked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FieldType {
    /// A code or identifier, kept verbatim (trimmed): office, country, party id...
    Code,
    /// Free text, kept verbatim, byte for byte (not trimmed, no case or space folding): a goods
    /// description. See [`check_free_text`] for what a text may not hold.
    Text,
    /// A calendar date.
    Date,
    /// A 6-digit HS code ([`HsCode`]).
    Hs6,
    /// A non-negative amount read on a log scale (price, mass): drift compares `ln(1 + x)`.
    Amount,
    /// A non-negative rate read as it is (a duty rate in percent).
    Rate,
}

impl FieldType {
    /// Whether values of this type are numbers.
    pub fn is_number(self) -> bool {
        matches!(self, FieldType::Amount | FieldType::Rate)
    }

    /// The largest plausible value of a number type: an amount (a price in any currency, a mass
    /// in kg) up to 10^15, a rate up to 10,000 %. Larger values are data errors (`1e308`) that
    /// would swamp sums and logarithms. `None` for types that are not numbers.
    pub fn max(self) -> Option<f64> {
        match self {
            FieldType::Amount => Some(1e15),
            FieldType::Rate => Some(1e4),
            _ => None,
        }
    }
}

/// One declared value, typed by its field's [`FieldType`].
#[derive(Clone, PartialEq, Debug)]
pub enum DeclaredValue {
    /// Not declared (only optional fields may be absent).
    Absent,
    /// A [`FieldType::Code`] or [`FieldType::Text`] value.
    Text(String),
    /// A [`FieldType::Amount`] or [`FieldType::Rate`] value.
    Number(f64),
    /// A [`FieldType::Date`] value.
    Date(NaiveDate),
    /// A [`FieldType::Hs6`] value.
    Hs(HsCode),
}

impl DeclaredValue {
    /// The number, for number values.
    pub fn number(&self) -> Option<f64> {
        match self {
            DeclaredValue::Number(v) => Some(*v),
            _ => None,
        }
    }

    /// Whether the value is absent.
    pub fn is_absent(&self) -> bool {
        matches!(self, DeclaredValue::Absent)
    }
}

impl fmt::Display for DeclaredValue {
    /// The value as declared: codes and text verbatim, dates as `YYYY-MM-DD`, numbers in their
    /// shortest exact form, nothing for an absent value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeclaredValue::Absent => Ok(()),
            DeclaredValue::Text(text) => f.write_str(text),
            DeclaredValue::Number(v) => write!(f, "{v}"),
            DeclaredValue::Date(date) => write!(f, "{date}"),
            DeclaredValue::Hs(code) => f.write_str(code.as_str()),
        }
    }
}

/// Why a text is not a value of a field.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
pub enum ValueError {
    /// An empty cell for a field that must be declared.
    #[error("empty")]
    Empty,
    /// Not a number.
    #[error("'{value}' is not a number")]
    Number {
        /// the text
        value: String,
    },
    /// A number that is infinite or NaN.
    #[error("'{value}' is not a finite number")]
    NotFinite {
        /// the text
        value: String,
    },
    /// A negative number.
    #[error("'{value}' is negative")]
    Negative {
        /// the text
        value: String,
    },
    /// Not a date in the expected format.
    #[error("'{value}' is not a date in the format '{format}'")]
    Date {
        /// the text
        value: String,
        /// the chrono format expected
        format: String,
    },
    /// Not an HS6 code.
    #[error(transparent)]
    Hs(#[from] HsError),
    /// A date outside [`PLAUSIBLE_YEARS`], or written with a signed year.
    #[error("'{value}' is not a plausible date (years {} to {})", PLAUSIBLE_YEARS.start(), PLAUSIBLE_YEARS.end())]
    DateRange {
        /// the text
        value: String,
    },
    /// A number above the plausible maximum of its field type ([`FieldType::max`]).
    #[error("'{value}' is above the plausible maximum {max:e}")]
    TooLarge {
        /// the text
        value: String,
        /// the largest value accepted
        max: f64,
    },
    /// A free text longer than [`MAX_TEXT_BYTES`] (the value itself is not repeated: it may be
    /// a megabyte).
    #[error("{bytes} bytes of text, more than the {max} a declared text may hold", max = MAX_TEXT_BYTES)]
    TooLong {
        /// the length of the text, in bytes
        bytes: usize,
    },
    /// A control character (NUL, escape...) in a code or text; tabs and line breaks are text.
    #[error("'{}' holds the control character {} at character {}", value.escape_debug(), character.escape_unicode(), position + 1)]
    Control {
        /// the text
        value: String,
        /// the character
        character: char,
        /// its 0-based position (in characters)
        position: usize,
    },
}

/// The years a declared date may fall in: earlier or later ones are typing or export errors
/// (`0000-01-01`, `-2021-01-05`, `20211-01-05`).
pub const PLAUSIBLE_YEARS: std::ops::RangeInclusive<i32> = 1900..=2100;

/// The first control character of `text` other than tab, line feed and carriage return (which
/// a quoted CSV field may hold), with its position in characters.
pub fn control_character(text: &str) -> Option<(usize, char)> {
    text.chars()
        .enumerate()
        .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// `text` when it holds no control character (see [`control_character`]).
pub fn check_text(text: &str) -> Result<&str, ValueError> {
    match control_character(text) {
        None => Ok(text),
        Some((position, character)) => Err(ValueError::Control {
            value: text.to_string(),
            character,
            position,
        }),
    }
}

/// The most bytes (UTF-8) a declared free text ([`FieldType::Text`]) may hold: 4,096.
///
/// Why this bound: the EU customs data model gives the goods description 512 characters
/// (UCC Annex B, data element 18 05 000 000, an..512), and 512 characters of any script take
/// at most 2,048 bytes in UTF-8; a postal CN23 line is far shorter. Twice that leaves room for
/// national systems that allow more, while a cell of a megabyte (a file read with the wrong
/// delimiter, a binary pasted into a column) is refused with the file, line and field named
/// rather than stored and shown on every page.
pub const MAX_TEXT_BYTES: usize = 4096;

/// `text` when it may be stored as a declared free text: at most [`MAX_TEXT_BYTES`] bytes and
/// no control character but tab, line feed and carriage return ([`control_character`]).
///
/// What is refused and why: NUL cannot be stored at all (PostgreSQL's `TEXT` refuses it) and,
/// like the other C0/C1 controls (escape, backspace, bell, DEL...), it is not something a
/// sender types: it comes from binary data or a broken export and would make a page or a
/// terminal show something else than what is stored. Tabs and line breaks are real text: a
/// quoted CSV field holds multi-line descriptions ("2 x shirts\n1 x belt"), kept as they are.
/// Nothing else is changed or refused: leading and trailing spaces, case, any script, emoji
/// and bidirectional marks are the sender's words and are kept byte for byte (pages isolate
/// the text's direction when they show it).
pub fn check_free_text(text: &str) -> Result<&str, ValueError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(ValueError::TooLong { bytes: text.len() });
    }
    check_text(text)
}

/// A value given to a field of another type, or no value for a field that must be declared.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
#[error("field '{field}' ({ty:?}) cannot hold {found:?}")]
pub struct FieldError {
    /// The field.
    pub field: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// The value given.
    pub found: DeclaredValue,
}

type Getter = fn(&DeclarationItem) -> DeclaredValue;
type Setter = fn(&mut DeclarationItem, DeclaredValue) -> Result<(), DeclaredValue>;

/// Where a field's value lives in a [`DeclarationItem`].
#[derive(Clone, Copy)]
enum Slot {
    /// A typed member.
    Member(Getter, Setter),
    /// An entry of [`DeclarationItem::extra`].
    Extra,
}

/// One declared field: what every room needs to know about it.
#[derive(Clone, Copy)]
pub struct DeclaredField {
    /// The name: the mapping key, the store column and the API key (`origin_country`).
    pub name: &'static str,
    /// Business words an officer reads (`country of origin`).
    pub words: &'static str,
    /// The type.
    pub ty: FieldType,
    /// Whether every item must declare it (a mapping must name its column, a cell must not be
    /// empty); an optional field may be absent.
    pub required: bool,
    /// Whether a counterfactual explanation may propose another value: a fact about the goods
    /// or the trade an officer can check, never a choice that only routes the declaration
    /// around controls (the customs office is not tried).
    pub counterfactual: bool,
    /// Whether drift monitoring compares its distribution between periods.
    pub drift: bool,
    /// Its column header in the Korea Customs Service synthetic layout, if it has one.
    pub kcs_header: Option<&'static str>,
    slot: Slot,
}

impl fmt::Debug for DeclaredField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeclaredField")
            .field("name", &self.name)
            .field("ty", &self.ty)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl PartialEq for DeclaredField {
    /// Fields are equal when everything but where the value lives is equal (two fields of one
    /// name in one registry are refused, so the name decides within a registry).
    fn eq(&self, other: &Self) -> bool {
        (self.name, self.words, self.ty, self.required)
            == (other.name, other.words, other.ty, other.required)
            && (self.counterfactual, self.drift, self.kcs_header)
                == (other.counterfactual, other.drift, other.kcs_header)
    }
}

impl DeclaredField {
    /// A field without a typed member of [`DeclarationItem`]: its value is kept in
    /// [`DeclarationItem::extra`]. Optional, not tried by counterfactuals, not watched by drift,
    /// no KCS column, until the builder methods say otherwise.
    pub const fn extra(name: &'static str, words: &'static str, ty: FieldType) -> DeclaredField {
        DeclaredField {
            name,
            words,
            ty,
            required: false,
            counterfactual: false,
            drift: false,
            kcs_header: None,
            slot: Slot::Extra,
        }
    }

    /// The same field, watched by drift.
    pub const fn watched(mut self) -> DeclaredField {
        self.drift = true;
        self
    }

    /// The same field, read from `header` in the KCS layout.
    pub const fn kcs(mut self, header: &'static str) -> DeclaredField {
        self.kcs_header = Some(header);
        self
    }

    /// The value of this field on `item` ([`DeclaredValue::Absent`] when not declared).
    pub fn get(&self, item: &DeclarationItem) -> DeclaredValue {
        match self.slot {
            Slot::Member(get, _) => get(item),
            Slot::Extra => item
                .extra
                .get(self.name)
                .cloned()
                .unwrap_or(DeclaredValue::Absent),
        }
    }

    /// Sets this field on `item`; fails when `value` is not of the field's type, or is absent
    /// on a required field.
    pub fn set(&self, item: &mut DeclarationItem, value: DeclaredValue) -> Result<(), FieldError> {
        let fail = |found| FieldError {
            field: self.name,
            ty: self.ty,
            found,
        };
        if value.is_absent() && self.required {
            return Err(fail(value));
        }
        if !self.accepts(&value) {
            return Err(fail(value));
        }
        match self.slot {
            Slot::Member(_, set) => set(item, value).map_err(fail),
            Slot::Extra => {
                if value.is_absent() {
                    item.extra.remove(self.name);
                } else {
                    item.extra.insert(self.name, value);
                }
                Ok(())
            }
        }
    }

    /// Whether `value` has this field's type (absent always has).
    fn accepts(&self, value: &DeclaredValue) -> bool {
        matches!(
            (self.ty, value),
            (_, DeclaredValue::Absent)
                | (FieldType::Code | FieldType::Text, DeclaredValue::Text(_))
                | (
                    FieldType::Amount | FieldType::Rate,
                    DeclaredValue::Number(_)
                )
                | (FieldType::Date, DeclaredValue::Date(_))
                | (FieldType::Hs6, DeclaredValue::Hs(_))
        )
    }

    /// Reads a declared value from text (trimmed; empty is absent, an error on a required
    /// field). Numbers must be finite, non-negative and at most [`FieldType::max`]; dates follow
    /// the chrono `date_format` and fall in [`PLAUSIBLE_YEARS`]; codes hold no control character
    /// but tabs and line breaks ([`control_character`]).
    ///
    /// A free text ([`FieldType::Text`]) is not trimmed: it is kept byte for byte, as the sender
    /// wrote it ([`check_free_text`] says what is refused); only an empty text is absent.
    pub fn parse(&self, text: &str, date_format: &str) -> Result<DeclaredValue, ValueError> {
        let text = if self.ty == FieldType::Text {
            text
        } else {
            text.trim()
        };
        if text.is_empty() {
            return if self.required {
                Err(ValueError::Empty)
            } else {
                Ok(DeclaredValue::Absent)
            };
        }
        let owned = || text.to_string();
        Ok(match self.ty {
            FieldType::Code => DeclaredValue::Text(check_text(text)?.to_string()),
            FieldType::Text => DeclaredValue::Text(check_free_text(text)?.to_string()),
            FieldType::Hs6 => DeclaredValue::Hs(HsCode::parse(text)?),
            FieldType::Date => {
                let date =
                    NaiveDate::parse_from_str(text, date_format).map_err(|_| ValueError::Date {
                        value: owned(),
                        format: date_format.to_string(),
                    })?;
                // chrono reads `%Y` with a sign (`-2021`, `+2021`): a sign the format does not
                // write is a signed year.
                let signs = |s: &str| s.matches(['+', '-']).count();
                if !PLAUSIBLE_YEARS.contains(&date.year()) || signs(text) > signs(date_format) {
                    return Err(ValueError::DateRange { value: owned() });
                }
                DeclaredValue::Date(date)
            }
            FieldType::Amount | FieldType::Rate => {
                let number: f64 = text
                    .parse()
                    .map_err(|_| ValueError::Number { value: owned() })?;
                if !number.is_finite() {
                    return Err(ValueError::NotFinite { value: owned() });
                }
                if number < 0.0 {
                    return Err(ValueError::Negative { value: owned() });
                }
                if let Some(max) = self.ty.max().filter(|&max| number > max) {
                    return Err(ValueError::TooLarge {
                        value: owned(),
                        max,
                    });
                }
                DeclaredValue::Number(number)
            }
        })
    }
}

/// A typed member of [`DeclarationItem`] as a registry entry.
macro_rules! member {
    ($name:literal, $words:literal, $header:literal, $ty:ident, $member:ident, $variant:ident) => {
        DeclaredField {
            name: $name,
            words: $words,
            ty: FieldType::$ty,
            required: true,
            counterfactual: false,
            drift: false,
            kcs_header: Some($header),
            slot: Slot::Member(
                |item| DeclaredValue::$variant(item.$member.clone()),
                |item, value| match value {
                    DeclaredValue::$variant(v) => {
                        item.$member = v;
                        Ok(())
                    }
                    other => Err(other),
                },
            ),
        }
    };
}

/// An optional text member (`Option<String>`) as a registry entry.
macro_rules! optional_member {
    ($name:literal, $words:literal, $header:literal, $member:ident) => {
        DeclaredField {
            name: $name,
            words: $words,
            ty: FieldType::Code,
            required: false,
            counterfactual: false,
            drift: false,
            kcs_header: Some($header),
            slot: Slot::Member(
                |item| {
                    item.$member
                        .clone()
                        .map_or(DeclaredValue::Absent, DeclaredValue::Text)
                },
                |item, value| match value {
                    DeclaredValue::Text(v) => {
                        item.$member = Some(v);
                        Ok(())
                    }
                    DeclaredValue::Absent => {
                        item.$member = None;
                        Ok(())
                    }
                    other => Err(other),
                },
            ),
        }
    };
}

impl DeclaredField {
    const fn tried(mut self) -> DeclaredField {
        self.counterfactual = true;
        self
    }
}

/// The declared fields of the standard layout, in the order of the KCS files.
fn standard_fields() -> Vec<DeclaredField> {
    vec![
        member!("date", "date of acceptance", "Date", Date, date, Date),
        member!(
            "office_id",
            "customs office",
            "Office ID",
            Code,
            office_id,
            Text
        )
        // Not tried by counterfactuals: "declare at another office" would teach evasion; a
        // counterfactual says what about the goods would look normal (see
        // `RiskModel::counterfactual`).
        .watched(),
        member!(
            "process_type",
            "process type",
            "Process Type",
            Code,
            process_type,
            Text
        ),
        member!(
            "import_type",
            "import type",
            "Import Type",
            Code,
            import_type,
            Text
        ),
        member!(
            "import_use",
            "import use",
            "Import Use",
            Code,
            import_use,
            Text
        ),
        member!(
            "payment_type",
            "payment type",
            "Payment Type",
            Code,
            payment_type,
            Text
        ),
        member!(
            "transport_mode",
            "mode of transport",
            "Mode of Transport",
            Code,
            transport_mode,
            Text
        )
        .tried()
        .watched(),
        member!(
            "declarant_id",
            "declarant",
            "Declarant ID",
            Code,
            declarant_id,
            Text
        ),
        member!(
            "importer_id",
            "importer",
            "Importer ID",
            Code,
            importer_id,
            Text
        ),
        optional_member!("seller_id", "seller", "Seller ID", seller_id),
        optional_member!("courier_id", "courier", "Courier ID", courier_id),
        member!("hs6", "HS code", "HS6 Code", Hs6, hs6, Hs).tried(),
        member!(
            "departure_country",
            "country of departure",
            "Country of Departure",
            Code,
            departure_country,
            Text
        )
        .tried()
        .watched(),
        member!(
            "origin_country",
            "country of origin",
            "Country of Origin",
            Code,
            origin_country,
            Text
        )
        .tried()
        .watched(),
        member!(
            "tax_rate",
            "tax rate (%)",
            "Tax Rate",
            Rate,
            tax_rate,
            Number
        )
        .watched(),
        member!("tax_type", "tax type", "Tax Type", Code, tax_type, Text)
            .tried()
            .watched(),
        member!(
            "origin_indicator",
            "origin indicator",
            "Country of Origin Indicator",
            Code,
            origin_indicator,
            Text
        )
        .tried(),
        member!(
            "net_mass",
            "net mass (kg)",
            "Net Mass",
            Amount,
            net_mass,
            Number
        )
        .tried()
        .watched(),
        member!(
            "item_price",
            "item price",
            "Item Price",
            Amount,
            item_price,
            Number
        )
        .tried()
        .watched(),
        // The goods descriptions (issue 14): free text, kept byte for byte. Not tried by
        // counterfactuals (a counterfactual does not propose other words for the goods) and not
        // watched by drift (text drift will be read from what the HS room derives, not from raw
        // strings). No KCS column: the KCS files carry no description; a file that has them
        // maps them (`data/sample-described/mapping.json`).
        DeclaredField::extra(
            GOODS_DESCRIPTION,
            "goods description (as declared by the sender)",
            FieldType::Text,
        ),
        // A second description when a broker or postal operator supplied a cleaned one (often
        // written by software from the sender's text) beside the sender's: both are kept, so
        // that an officer sees what the sender wrote and what was made of it.
        DeclaredField::extra(
            GOODS_DESCRIPTION_CLEANED,
            "cleaned goods description (broker/operator)",
            FieldType::Text,
        ),
        // The transport unit the goods travel in (issue 15): kept as declared, like every
        // code; a valid ISO 6346 container number or UPU S10 postal item id links the item to
        // the X-ray scans of that container or parcel (an invalid one is shown, not linked).
        DeclaredField::extra(
            CONTAINER_NUMBER,
            "container number (ISO 6346)",
            FieldType::Code,
        ),
        DeclaredField::extra(POSTAL_ITEM_ID, "postal item id (UPU S10)", FieldType::Code),
    ]
}

/// The name of the sender's goods description in [`FieldRegistry::standard`].
pub const GOODS_DESCRIPTION: &str = "goods_description";
/// The name of the broker's or operator's cleaned description in [`FieldRegistry::standard`].
pub const GOODS_DESCRIPTION_CLEANED: &str = "goods_description_cleaned";
/// The usual header of the sender's description in a KCS-layout file that carries one (the
/// KCS files themselves carry none): an import without a mapping file reads it when present.
pub const GOODS_DESCRIPTION_HEADER: &str = "Goods Description";
/// The usual header of the cleaned description beside [`GOODS_DESCRIPTION_HEADER`].
pub const GOODS_DESCRIPTION_CLEANED_HEADER: &str = "Cleaned Goods Description";
/// The name of an item's declared container number in [`FieldRegistry::standard`].
pub const CONTAINER_NUMBER: &str = "container_number";
/// The name of an item's declared postal item id in [`FieldRegistry::standard`].
pub const POSTAL_ITEM_ID: &str = "postal_item_id";
/// The usual header of [`CONTAINER_NUMBER`] in a KCS-layout file that carries one.
pub const CONTAINER_NUMBER_HEADER: &str = "Container Number";
/// The usual header of [`POSTAL_ITEM_ID`] in a KCS-layout file that carries one.
pub const POSTAL_ITEM_ID_HEADER: &str = "Postal Item ID";

static STANDARD: LazyLock<FieldRegistry> = LazyLock::new(|| FieldRegistry {
    fields: standard_fields(),
});

/// A registry that would have two fields of one name.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("the declared field '{0}' is registered twice")]
pub struct DuplicateField(pub &'static str);

/// The declared fields, in order: the standard ones, then any [`DeclaredField::extra`] ones.
#[derive(Clone, PartialEq, Debug)]
pub struct FieldRegistry {
    fields: Vec<DeclaredField>,
}

impl FieldRegistry {
    /// The fields every declaration item has.
    pub fn standard() -> &'static FieldRegistry {
        &STANDARD
    }

    /// The standard fields followed by `extra` ones.
    pub fn extended(
        extra: impl IntoIterator<Item = DeclaredField>,
    ) -> Result<FieldRegistry, DuplicateField> {
        let mut fields = standard_fields();
        for field in extra {
            if fields.iter().any(|f| f.name == field.name) {
                return Err(DuplicateField(field.name));
            }
            fields.push(field);
        }
        Ok(FieldRegistry { fields })
    }

    /// Every field, in order.
    pub fn fields(&self) -> &[DeclaredField] {
        &self.fields
    }

    /// The field named `name`.
    pub fn get(&self, name: &str) -> Option<&DeclaredField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The index of the field named `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// An item from its key, its label and one value per field, in registry order.
    pub fn build(
        &self,
        key: ItemKey,
        values: impl IntoIterator<Item = DeclaredValue>,
        label: Option<ControlLabel>,
    ) -> Result<DeclarationItem, FieldError> {
        let mut item = DeclarationItem {
            key,
            // Placeholders: every member has a required or optional field in the standard
            // registry (see the tests), so each is set below or the build fails.
            date: NaiveDate::MIN,
            office_id: String::new(),
            process_type: String::new(),
            import_type: String::new(),
            import_use: String::new(),
            payment_type: String::new(),
            transport_mode: String::new(),
            declarant_id: String::new(),
            importer_id: String::new(),
            seller_id: None,
            courier_id: None,
            hs6: HsCode::PLACEHOLDER,
            departure_country: String::new(),
            origin_country: String::new(),
            tax_rate: 0.0,
            tax_type: String::new(),
            origin_indicator: String::new(),
            net_mass: 0.0,
            item_price: 0.0,
            label,
            extra: BTreeMap::new(),
        };
        let mut values = values.into_iter();
        for field in &self.fields {
            let value = values.next().unwrap_or(DeclaredValue::Absent);
            field.set(&mut item, value)?;
        }
        Ok(item)
    }

    /// The values of `item`, in registry order.
    pub fn values(&self, item: &DeclarationItem) -> Vec<DeclaredValue> {
        self.fields.iter().map(|f| f.get(item)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DeclarationItem {
        let registry = FieldRegistry::standard();
        let texts = [
            "2024-03-01",
            "030",
            "B",
            "11",
            "21",
            "11",
            "10",
            "DEC1",
            "IMP1",
            "",
            "COU1",
            "8471.30",
            "CN",
            "VN",
            "8",
            "A",
            "B",
            "12.5",
            "1000",
        ];
        let values = registry
            .fields()
            .iter()
            .zip(texts)
            .map(|(f, t)| f.parse(t, "%Y-%m-%d").unwrap());
        let key = ItemKey {
            declaration_id: "D1".into(),
            item_no: 2,
        };
        registry.build(key, values, None).unwrap()
    }

    #[test]
    fn every_member_has_one_standard_field() {
        let item = sample();
        assert_eq!(item.date, NaiveDate::from_ymd_opt(2024, 3, 1).unwrap());
        assert_eq!(item.office_id, "030");
        assert_eq!(item.seller_id, None);
        assert_eq!(item.courier_id.as_deref(), Some("COU1"));
        assert_eq!(item.hs6.as_str(), "847130");
        assert_eq!(item.origin_country, "VN");
        assert_eq!(item.net_mass, 12.5);
        assert_eq!(item.item_price, 1000.0);
        // Every member differs from its placeholder, so each was set by one field.
        let registry = FieldRegistry::standard();
        let values = registry.values(&item);
        let rebuilt = registry.build(item.key.clone(), values, None).unwrap();
        assert_eq!(rebuilt, item);
        let names: Vec<&str> = registry.fields().iter().map(|f| f.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert_eq!(names.len(), 23);
    }

    #[test]
    fn a_missing_required_value_or_a_wrong_type_is_refused() {
        let registry = FieldRegistry::standard();
        let item = sample();
        let mut values = registry.values(&item);
        values[1] = DeclaredValue::Absent;
        let err = registry.build(item.key.clone(), values, None).unwrap_err();
        assert_eq!(err.field, "office_id");
        let mut values = registry.values(&item);
        values[17] = DeclaredValue::Text("heavy".into());
        let err = registry.build(item.key.clone(), values, None).unwrap_err();
        assert_eq!(err.field, "net_mass");
        assert!(err.to_string().contains("net_mass"), "{err}");
    }

    #[test]
    fn parse_checks_numbers_dates_and_codes() {
        let registry = FieldRegistry::standard();
        let mass = registry.get("net_mass").unwrap();
        assert_eq!(mass.parse(" 3.5 ", "%Y"), Ok(DeclaredValue::Number(3.5)));
        assert!(matches!(
            mass.parse("-1", ""),
            Err(ValueError::Negative { .. })
        ));
        assert!(matches!(
            mass.parse("inf", ""),
            Err(ValueError::NotFinite { .. })
        ));
        assert!(matches!(
            mass.parse("x", ""),
            Err(ValueError::Number { .. })
        ));
        assert_eq!(mass.parse("", ""), Err(ValueError::Empty));
        let seller = registry.get("seller_id").unwrap();
        assert_eq!(seller.parse("  ", ""), Ok(DeclaredValue::Absent));
        let date = registry.get("date").unwrap();
        assert!(matches!(
            date.parse("01/03/2024", "%Y-%m-%d"),
            Err(ValueError::Date { .. })
        ));
        let hs = registry.get("hs6").unwrap();
        assert!(matches!(hs.parse("12345", ""), Err(ValueError::Hs(_))));
    }

    #[test]
    fn parse_refuses_implausible_dates_and_magnitudes() {
        let registry = FieldRegistry::standard();
        let date = registry.get("date").unwrap();
        for text in [
            "-2021-01-05",
            "0000-01-01",
            "+2021-01-05",
            "1899-12-31",
            "2101-01-01",
        ] {
            assert_eq!(
                date.parse(text, "%Y-%m-%d"),
                Err(ValueError::DateRange {
                    value: text.to_string()
                }),
                "{text}"
            );
        }
        let err = date.parse("0000-01-01", "%Y-%m-%d").unwrap_err();
        assert_eq!(
            err.to_string(),
            "'0000-01-01' is not a plausible date (years 1900 to 2100)"
        );
        for (text, day) in [("1900-01-01", (1900, 1, 1)), ("2100-12-31", (2100, 12, 31))] {
            let expected = NaiveDate::from_ymd_opt(day.0, day.1, day.2).unwrap();
            assert_eq!(
                date.parse(text, "%Y-%m-%d"),
                Ok(DeclaredValue::Date(expected))
            );
        }
        let slashes = date.parse("05/01/-2021", "%d/%m/%Y");
        assert!(
            matches!(slashes, Err(ValueError::DateRange { .. })),
            "{slashes:?}"
        );

        let price = registry.get("item_price").unwrap();
        let rate = registry.get("tax_rate").unwrap();
        for (field, text, max) in [
            (price, "1e308", 1e15),
            (price, "1000000000000001", 1e15),
            (rate, "10000.5", 1e4),
        ] {
            assert_eq!(
                field.parse(text, ""),
                Err(ValueError::TooLarge {
                    value: text.to_string(),
                    max
                })
            );
        }
        assert_eq!(
            price.parse("1e308", "").unwrap_err().to_string(),
            "'1e308' is above the plausible maximum 1e15"
        );
        assert_eq!(price.parse("1e15", ""), Ok(DeclaredValue::Number(1e15)));
        assert_eq!(rate.parse("754.3", ""), Ok(DeclaredValue::Number(754.3)));
    }

    #[test]
    fn parse_refuses_control_characters_in_codes() {
        let registry = FieldRegistry::standard();
        let importer = registry.get("importer_id").unwrap();
        for (text, character, position) in [
            ("\0QLR", '\0', 0),
            ("QL\u{1b}R", '\u{1b}', 2),
            ("Q\u{7f}", '\u{7f}', 1),
        ] {
            assert_eq!(
                importer.parse(text, ""),
                Err(ValueError::Control {
                    value: text.to_string(),
                    character,
                    position
                })
            );
        }
        assert_eq!(
            importer.parse("AB\0C", "").unwrap_err().to_string(),
            "'AB\\0C' holds the control character \\u{0} at character 3"
        );
        // Tabs and line breaks are text (a quoted CSV field may hold them).
        assert_eq!(
            importer.parse("QLR\nBN9", ""),
            Ok(DeclaredValue::Text("QLR\nBN9".into()))
        );
        let note = DeclaredField::extra("test_note", "test note", FieldType::Text);
        assert!(matches!(
            note.parse("a\u{0}b", ""),
            Err(ValueError::Control { .. })
        ));
        assert_eq!(
            note.parse("a\tb", ""),
            Ok(DeclaredValue::Text("a\tb".into()))
        );
    }

    #[test]
    fn goods_descriptions_are_kept_byte_for_byte() {
        let registry = FieldRegistry::standard();
        for name in [GOODS_DESCRIPTION, GOODS_DESCRIPTION_CLEANED] {
            let field = registry.get(name).unwrap();
            assert_eq!(field.ty, FieldType::Text);
            assert!(!field.required && !field.counterfactual && !field.drift);
            assert_eq!(field.kcs_header, None);
            for text in [
                "  Mens cotton T-Shirt, size \"L\"  ",
                "2 x shirts\r\n1 x belt\n\tleather",
                "เสื้อยืดผ้าฝ้าย",
                "棉质T恤 👕🎁",
                "   ",
                "CAFÉ au lait ",
            ] {
                assert_eq!(
                    field.parse(text, ""),
                    Ok(DeclaredValue::Text(text.to_string())),
                    "{text:?}"
                );
            }
            assert_eq!(field.parse("", ""), Ok(DeclaredValue::Absent));
        }
    }

    #[test]
    fn free_text_refuses_control_characters_and_huge_cells() {
        let field = FieldRegistry::standard().get(GOODS_DESCRIPTION).unwrap();
        assert!(matches!(
            field.parse("shoes\0", ""),
            Err(ValueError::Control {
                character: '\0',
                position: 5,
                ..
            })
        ));
        assert!(matches!(
            field.parse("a\u{85}b", ""),
            Err(ValueError::Control { .. })
        ));
        let longest = "é".repeat(MAX_TEXT_BYTES / 2);
        assert_eq!(
            field.parse(&longest, ""),
            Ok(DeclaredValue::Text(longest.clone()))
        );
        let huge = "x".repeat(1 << 20);
        let err = field.parse(&huge, "").unwrap_err();
        assert_eq!(err, ValueError::TooLong { bytes: 1 << 20 });
        assert_eq!(
            err.to_string(),
            "1048576 bytes of text, more than the 4096 a declared text may hold"
        );
        assert_eq!(
            field.parse(&format!("{longest}e"), ""),
            Err(ValueError::TooLong {
                bytes: MAX_TEXT_BYTES + 1
            })
        );
    }

    proptest::proptest! {
        /// Any text without a refused control character, up to the bound, reads back as itself.
        #[test]
        fn allowed_free_text_reads_back_as_itself(text in "(?s)[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\u{9f}]{1,300}") {
            let field = FieldRegistry::standard().get(GOODS_DESCRIPTION).unwrap();
            proptest::prop_assert_eq!(field.parse(&text, ""), Ok(DeclaredValue::Text(text.clone())));
        }
    }

    #[test]
    fn an_extra_field_lives_in_extra_and_names_are_unique() {
        let note = DeclaredField::extra("test_note", "test note", FieldType::Text);
        let registry = FieldRegistry::extended([note]).unwrap();
        let item = sample();
        let mut values = FieldRegistry::standard().values(&item);
        values.push(DeclaredValue::Text("fragile".into()));
        let built = registry.build(item.key.clone(), values, None).unwrap();
        assert_eq!(
            built.extra.get("test_note"),
            Some(&DeclaredValue::Text("fragile".into()))
        );
        assert_eq!(
            registry.get("test_note").unwrap().get(&built).to_string(),
            "fragile"
        );
        assert_eq!(
            registry.get("test_note").unwrap().get(&item),
            DeclaredValue::Absent
        );
        let twice = DeclaredField::extra("hs6", "again", FieldType::Code);
        assert_eq!(
            FieldRegistry::extended([twice]).unwrap_err(),
            DuplicateField("hs6")
        );
    }
}
