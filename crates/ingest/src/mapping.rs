//! Which CSV column holds which [`DeclarationItem`](borderlens_domain::DeclarationItem) field.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::format::{Item, StrftimeItems};

/// One field of a declaration item that a mapping can point at a column.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Field {
    DeclarationId,
    ItemNo,
    Date,
    OfficeId,
    ProcessType,
    ImportType,
    ImportUse,
    PaymentType,
    TransportMode,
    DeclarantId,
    ImporterId,
    SellerId,
    CourierId,
    Hs6,
    DepartureCountry,
    OriginCountry,
    TaxRate,
    TaxType,
    OriginIndicator,
    NetMass,
    ItemPrice,
    Fraud,
    CriticalFraud,
}

impl Field {
    /// Every field, in the order of the KCS layout (item number after the declaration id).
    pub(crate) const ALL: [Field; 23] = [
        Field::DeclarationId,
        Field::ItemNo,
        Field::Date,
        Field::OfficeId,
        Field::ProcessType,
        Field::ImportType,
        Field::ImportUse,
        Field::PaymentType,
        Field::TransportMode,
        Field::DeclarantId,
        Field::ImporterId,
        Field::SellerId,
        Field::CourierId,
        Field::Hs6,
        Field::DepartureCountry,
        Field::OriginCountry,
        Field::TaxRate,
        Field::TaxType,
        Field::OriginIndicator,
        Field::NetMass,
        Field::ItemPrice,
        Field::Fraud,
        Field::CriticalFraud,
    ];

    /// The key of this field in a mapping file (the `DeclarationItem` field name).
    pub(crate) fn key(self) -> &'static str {
        match self {
            Field::DeclarationId => "declaration_id",
            Field::ItemNo => "item_no",
            Field::Date => "date",
            Field::OfficeId => "office_id",
            Field::ProcessType => "process_type",
            Field::ImportType => "import_type",
            Field::ImportUse => "import_use",
            Field::PaymentType => "payment_type",
            Field::TransportMode => "transport_mode",
            Field::DeclarantId => "declarant_id",
            Field::ImporterId => "importer_id",
            Field::SellerId => "seller_id",
            Field::CourierId => "courier_id",
            Field::Hs6 => "hs6",
            Field::DepartureCountry => "departure_country",
            Field::OriginCountry => "origin_country",
            Field::TaxRate => "tax_rate",
            Field::TaxType => "tax_type",
            Field::OriginIndicator => "origin_indicator",
            Field::NetMass => "net_mass",
            Field::ItemPrice => "item_price",
            Field::Fraud => "fraud",
            Field::CriticalFraud => "critical_fraud",
        }
    }

    /// Whether a mapping may leave this field without a column.
    pub(crate) fn optional(self) -> bool {
        matches!(
            self,
            Field::ItemNo
                | Field::SellerId
                | Field::CourierId
                | Field::Fraud
                | Field::CriticalFraud
        )
    }
}

/// The key of a mapping file that holds the date format rather than a column name.
const DATE_FORMAT_KEY: &str = "date_format";

/// The date format used when a mapping does not name one.
pub const DEFAULT_DATE_FORMAT: &str = "%Y-%m-%d";

/// Maps each [`DeclarationItem`](borderlens_domain::DeclarationItem) field to the header name of
/// the CSV column that holds it.
///
/// Optional fields (`item_no`, `seller_id`, `courier_id`, `fraud`, `critical_fraud`) may be
/// `None`: a missing item number column means every item is item 1, missing party columns mean
/// "not declared", and missing label columns mean "not controlled". When only one of the two
/// label columns is mapped, the other is derived from it (`critical = fraud`, or
/// `fraud = critical > 0`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ColumnMapping {
    /// Column of the declaration number.
    pub declaration_id: String,
    /// Column of the item number; `None`: every record is item 1.
    pub item_no: Option<String>,
    /// Column of the acceptance date (parsed with [`ColumnMapping::date_format`]).
    pub date: String,
    /// Column of the customs office.
    pub office_id: String,
    /// Column of the process type code.
    pub process_type: String,
    /// Column of the import type code.
    pub import_type: String,
    /// Column of the import use code.
    pub import_use: String,
    /// Column of the payment type code.
    pub payment_type: String,
    /// Column of the mode of transport code.
    pub transport_mode: String,
    /// Column of the declarant id.
    pub declarant_id: String,
    /// Column of the importer id.
    pub importer_id: String,
    /// Column of the seller id (empty cell = not declared); `None`: no such column.
    pub seller_id: Option<String>,
    /// Column of the courier id (empty cell = no courier); `None`: no such column.
    pub courier_id: Option<String>,
    /// Column of the HS6 code.
    pub hs6: String,
    /// Column of the country of departure.
    pub departure_country: String,
    /// Column of the country of origin.
    pub origin_country: String,
    /// Column of the duty rate in percent.
    pub tax_rate: String,
    /// Column of the tax type code.
    pub tax_type: String,
    /// Column of the origin indicator.
    pub origin_indicator: String,
    /// Column of the net mass in kg.
    pub net_mass: String,
    /// Column of the item price.
    pub item_price: String,
    /// Column of the fraud label (0/1, empty = not controlled); `None`: no such column.
    pub fraud: Option<String>,
    /// Column of the critical fraud label (0/1/2, empty = not controlled); `None`: no such column.
    pub critical_fraud: Option<String>,
    /// chrono `strftime` format of the date column, [`DEFAULT_DATE_FORMAT`] unless set.
    pub date_format: String,
}

impl ColumnMapping {
    /// The layout of the Korea Customs Service synthetic datasets (`df_syn_*_eng.csv`):
    /// `Declaration ID,Date,Office ID,...,Fraud,Critical Fraud`, no item number column.
    pub fn kcs_default() -> ColumnMapping {
        let s = |text: &str| text.to_string();
        ColumnMapping {
            declaration_id: s("Declaration ID"),
            item_no: None,
            date: s("Date"),
            office_id: s("Office ID"),
            process_type: s("Process Type"),
            import_type: s("Import Type"),
            import_use: s("Import Use"),
            payment_type: s("Payment Type"),
            transport_mode: s("Mode of Transport"),
            declarant_id: s("Declarant ID"),
            importer_id: s("Importer ID"),
            seller_id: Some(s("Seller ID")),
            courier_id: Some(s("Courier ID")),
            hs6: s("HS6 Code"),
            departure_country: s("Country of Departure"),
            origin_country: s("Country of Origin"),
            tax_rate: s("Tax Rate"),
            tax_type: s("Tax Type"),
            origin_indicator: s("Country of Origin Indicator"),
            net_mass: s("Net Mass"),
            item_price: s("Item Price"),
            fraud: Some(s("Fraud")),
            critical_fraud: Some(s("Critical Fraud")),
            date_format: s(DEFAULT_DATE_FORMAT),
        }
    }

    /// Loads a mapping file: a JSON object from our field names (`declaration_id`, `item_no`,
    /// `date`, ..., `critical_fraud`) to header names, plus an optional `date_format` key.
    /// Optional fields may be absent or `null`; every other field must be present; unknown keys
    /// are an error naming the key.
    pub fn from_json_file(path: &Path) -> Result<ColumnMapping, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError {
            path: path.to_path_buf(),
            problem: MappingProblem::Io(source),
        })?;
        Self::parse_json(&text, path)
    }

    /// Same as [`ColumnMapping::from_json_file`], from JSON text (errors name `<json>`).
    pub fn from_json_str(text: &str) -> Result<ColumnMapping, MappingError> {
        Self::parse_json(text, Path::new("<json>"))
    }

    fn parse_json(text: &str, path: &Path) -> Result<ColumnMapping, MappingError> {
        let fail = |problem| MappingError {
            path: path.to_path_buf(),
            problem,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| fail(MappingProblem::Json(e)))?;
        let object = value
            .as_object()
            .ok_or_else(|| fail(MappingProblem::NotObject))?;
        let mut mapping = ColumnMapping::kcs_default();
        let mut seen = [false; Field::ALL.len()];
        for (key, value) in object {
            if key == DATE_FORMAT_KEY {
                let format = value
                    .as_str()
                    .ok_or_else(|| fail(MappingProblem::NotString { key: key.clone() }))?;
                if !valid_date_format(format) {
                    return Err(fail(MappingProblem::DateFormat {
                        format: format.to_string(),
                    }));
                }
                mapping.date_format = format.to_string();
                continue;
            }
            let Some(position) = Field::ALL.iter().position(|f| f.key() == key) else {
                return Err(fail(MappingProblem::UnknownKey { key: key.clone() }));
            };
            let field = Field::ALL[position];
            let header = match value {
                serde_json::Value::Null if field.optional() => None,
                serde_json::Value::String(header) => {
                    if header.trim().is_empty() {
                        return Err(fail(MappingProblem::EmptyHeader { key: key.clone() }));
                    }
                    Some(header.clone())
                }
                _ => return Err(fail(MappingProblem::NotString { key: key.clone() })),
            };
            mapping.set(field, header);
            seen[position] = true;
        }
        let missing: Vec<String> = Field::ALL
            .iter()
            .zip(seen)
            .filter(|(field, seen)| !seen && !field.optional())
            .map(|(field, _)| field.key().to_string())
            .collect();
        if !missing.is_empty() {
            return Err(fail(MappingProblem::MissingKeys { keys: missing }));
        }
        for (field, seen) in Field::ALL.iter().zip(seen) {
            if !seen && field.optional() {
                mapping.set(*field, None);
            }
        }
        Ok(mapping)
    }

    /// The header name mapped to `field`, `None` when an optional field has no column.
    pub(crate) fn header(&self, field: Field) -> Option<&str> {
        let header = match field {
            Field::DeclarationId => &self.declaration_id,
            Field::ItemNo => return self.item_no.as_deref(),
            Field::Date => &self.date,
            Field::OfficeId => &self.office_id,
            Field::ProcessType => &self.process_type,
            Field::ImportType => &self.import_type,
            Field::ImportUse => &self.import_use,
            Field::PaymentType => &self.payment_type,
            Field::TransportMode => &self.transport_mode,
            Field::DeclarantId => &self.declarant_id,
            Field::ImporterId => &self.importer_id,
            Field::SellerId => return self.seller_id.as_deref(),
            Field::CourierId => return self.courier_id.as_deref(),
            Field::Hs6 => &self.hs6,
            Field::DepartureCountry => &self.departure_country,
            Field::OriginCountry => &self.origin_country,
            Field::TaxRate => &self.tax_rate,
            Field::TaxType => &self.tax_type,
            Field::OriginIndicator => &self.origin_indicator,
            Field::NetMass => &self.net_mass,
            Field::ItemPrice => &self.item_price,
            Field::Fraud => return self.fraud.as_deref(),
            Field::CriticalFraud => return self.critical_fraud.as_deref(),
        };
        Some(header)
    }

    /// Points `field` at `header`. `None` on a mandatory field is ignored (the caller only passes
    /// `None` for optional fields).
    fn set(&mut self, field: Field, header: Option<String>) {
        let slot = match field {
            Field::ItemNo => return self.item_no = header,
            Field::SellerId => return self.seller_id = header,
            Field::CourierId => return self.courier_id = header,
            Field::Fraud => return self.fraud = header,
            Field::CriticalFraud => return self.critical_fraud = header,
            Field::DeclarationId => &mut self.declaration_id,
            Field::Date => &mut self.date,
            Field::OfficeId => &mut self.office_id,
            Field::ProcessType => &mut self.process_type,
            Field::ImportType => &mut self.import_type,
            Field::ImportUse => &mut self.import_use,
            Field::PaymentType => &mut self.payment_type,
            Field::TransportMode => &mut self.transport_mode,
            Field::DeclarantId => &mut self.declarant_id,
            Field::ImporterId => &mut self.importer_id,
            Field::Hs6 => &mut self.hs6,
            Field::DepartureCountry => &mut self.departure_country,
            Field::OriginCountry => &mut self.origin_country,
            Field::TaxRate => &mut self.tax_rate,
            Field::TaxType => &mut self.tax_type,
            Field::OriginIndicator => &mut self.origin_indicator,
            Field::NetMass => &mut self.net_mass,
            Field::ItemPrice => &mut self.item_price,
        };
        if let Some(header) = header {
            *slot = header;
        }
    }
}

impl Default for ColumnMapping {
    /// [`ColumnMapping::kcs_default`].
    fn default() -> Self {
        ColumnMapping::kcs_default()
    }
}

/// Whether chrono understands every specifier of `format`.
fn valid_date_format(format: &str) -> bool {
    !format.trim().is_empty() && !StrftimeItems::new(format).any(|item| matches!(item, Item::Error))
}

/// A mapping file that cannot be used; names the file and what is wrong with it.
#[derive(Debug)]
pub struct MappingError {
    /// The mapping file (`<json>` for [`ColumnMapping::from_json_str`]).
    pub path: PathBuf,
    /// What is wrong.
    pub problem: MappingProblem,
}

/// What is wrong with a mapping file.
#[derive(Debug)]
pub enum MappingProblem {
    /// The file cannot be read.
    Io(std::io::Error),
    /// The text is not JSON.
    Json(serde_json::Error),
    /// The JSON is not an object.
    NotObject,
    /// A key that is neither a field name nor `date_format`.
    UnknownKey {
        /// the key as written
        key: String,
    },
    /// Mandatory fields without a column.
    MissingKeys {
        /// the field names
        keys: Vec<String>,
    },
    /// A value that is not a string (or `null` for an optional field).
    NotString {
        /// the key whose value is wrong
        key: String,
    },
    /// A header name that is empty.
    EmptyHeader {
        /// the key whose value is empty
        key: String,
    },
    /// A `date_format` that chrono does not understand.
    DateFormat {
        /// the format as written
        format: String,
    },
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mapping file '{}': ", self.path.display())?;
        match &self.problem {
            MappingProblem::Io(e) => write!(f, "cannot read it: {e}"),
            MappingProblem::Json(e) => write!(f, "not valid JSON: {e}"),
            MappingProblem::NotObject => {
                f.write_str("expected a JSON object of field name -> header name")
            }
            MappingProblem::UnknownKey { key } => {
                write!(f, "unknown key '{key}' (known keys: ")?;
                for field in Field::ALL {
                    write!(f, "{}, ", field.key())?;
                }
                write!(f, "{DATE_FORMAT_KEY})")
            }
            MappingProblem::MissingKeys { keys } => {
                write!(f, "missing key(s) {}", quoted_list(keys))
            }
            MappingProblem::NotString { key } => {
                write!(f, "the value of '{key}' must be a string")
            }
            MappingProblem::EmptyHeader { key } => {
                write!(f, "the header name of '{key}' is empty")
            }
            MappingProblem::DateFormat { format } => {
                write!(f, "'{format}' is not a valid chrono date format")
            }
        }
    }
}

impl std::error::Error for MappingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            MappingProblem::Io(e) => Some(e),
            MappingProblem::Json(e) => Some(e),
            _ => None,
        }
    }
}

/// `'a', 'b', 'c'`.
pub(crate) fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("'{item}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_json() -> serde_json::Map<String, serde_json::Value> {
        let mapping = ColumnMapping::kcs_default();
        Field::ALL
            .iter()
            .filter_map(|f| {
                mapping
                    .header(*f)
                    .map(|h| (f.key().to_string(), serde_json::Value::from(h)))
            })
            .collect()
    }

    #[test]
    fn kcs_layout_round_trips_through_json() {
        let text = serde_json::Value::Object(full_json()).to_string();
        assert_eq!(
            ColumnMapping::from_json_str(&text).unwrap(),
            ColumnMapping::kcs_default()
        );
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        let mut object = full_json();
        object.remove("seller_id");
        object.insert("courier_id".into(), serde_json::Value::Null);
        object.insert("item_no".into(), "ITEM".into());
        object.insert("date_format".into(), "%d/%m/%Y".into());
        let mapping =
            ColumnMapping::from_json_str(&serde_json::Value::Object(object).to_string()).unwrap();
        assert_eq!(mapping.seller_id, None);
        assert_eq!(mapping.courier_id, None);
        assert_eq!(mapping.item_no.as_deref(), Some("ITEM"));
        assert_eq!(mapping.date_format, "%d/%m/%Y");
        assert_eq!(mapping.fraud.as_deref(), Some("Fraud"));
    }

    #[test]
    fn unknown_key_is_named() {
        let mut object = full_json();
        object.insert("net_weight".into(), "NW".into());
        let err = ColumnMapping::from_json_str(&serde_json::Value::Object(object).to_string())
            .unwrap_err();
        assert!(
            matches!(&err.problem, MappingProblem::UnknownKey { key } if key == "net_weight"),
            "{err}"
        );
        assert!(err
            .to_string()
            .starts_with("mapping file '<json>': unknown key 'net_weight'"));
    }

    #[test]
    fn missing_mandatory_keys_are_named() {
        let mut object = full_json();
        object.remove("hs6");
        object.remove("date");
        let err = ColumnMapping::from_json_str(&serde_json::Value::Object(object).to_string())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "mapping file '<json>': missing key(s) 'date', 'hs6'"
        );
    }

    #[test]
    fn null_on_mandatory_field_and_bad_values_are_rejected() {
        let mut object = full_json();
        object.insert("hs6".into(), serde_json::Value::Null);
        let err = ColumnMapping::from_json_str(&serde_json::Value::Object(object).to_string())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "mapping file '<json>': the value of 'hs6' must be a string"
        );
        let mut object = full_json();
        object.insert("date_format".into(), "%Y-%Q".into());
        let err = ColumnMapping::from_json_str(&serde_json::Value::Object(object).to_string())
            .unwrap_err();
        assert!(
            matches!(err.problem, MappingProblem::DateFormat { .. }),
            "{err}"
        );
        let err = ColumnMapping::from_json_str("[1]").unwrap_err();
        assert!(matches!(err.problem, MappingProblem::NotObject));
        let err = ColumnMapping::from_json_str("{").unwrap_err();
        assert!(matches!(err.problem, MappingProblem::Json(_)));
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.json");
        let err = ColumnMapping::from_json_file(&path).unwrap_err();
        assert!(err.to_string().contains("absent.json"), "{err}");
        let path = dir.path().join("mapping.json");
        std::fs::write(&path, r#"{"declaration_id": "DECL_NO", "bogus": "X"}"#).unwrap();
        let err = ColumnMapping::from_json_file(&path).unwrap_err();
        assert!(err.to_string().contains("mapping.json"), "{err}");
        assert!(err.to_string().contains("unknown key 'bogus'"), "{err}");
    }
}
