//! Which CSV column holds which [`DeclarationItem`](borderlens_domain::DeclarationItem) field.

use std::fmt;
use std::path::{Path, PathBuf};

use borderlens_domain::{
    FieldRegistry, CONTAINER_NUMBER, CONTAINER_NUMBER_HEADER, GOODS_DESCRIPTION,
    GOODS_DESCRIPTION_CLEANED, GOODS_DESCRIPTION_CLEANED_HEADER, GOODS_DESCRIPTION_HEADER,
    POSTAL_ITEM_ID, POSTAL_ITEM_ID_HEADER,
};
use chrono::format::{Item, StrftimeItems};

/// A column a mapping can point at: the item's key, one of the registry's declared fields, or
/// one of the two label columns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Field {
    DeclarationId,
    ItemNo,
    /// The declared field at this index of the mapping's [`FieldRegistry`].
    Declared(usize),
    Fraud,
    CriticalFraud,
}

impl Field {
    /// The position of this column in [`ColumnMapping::fields`] order.
    pub(crate) fn index(self, declared: usize) -> usize {
        match self {
            Field::DeclarationId => 0,
            Field::ItemNo => 1,
            Field::Declared(i) => 2 + i,
            Field::Fraud => 2 + declared,
            Field::CriticalFraud => 3 + declared,
        }
    }
}

/// The key of a mapping file that holds the date format rather than a column name.
const DATE_FORMAT_KEY: &str = "date_format";

/// The date format used when a mapping does not name one.
pub const DEFAULT_DATE_FORMAT: &str = "%Y-%m-%d";

/// Maps the item's key, each declared field of a [`FieldRegistry`] and the two label columns to
/// the header name of the CSV column that holds it.
///
/// Optional columns (`item_no`, the registry's optional fields such as `seller_id`, `fraud`,
/// `critical_fraud`) may be unmapped: a missing item number column means every item is item 1,
/// missing party columns mean "not declared", and missing label columns mean "not controlled".
/// When only one of the two label columns is mapped, the other is derived from it
/// (`critical = fraud`, or `fraud = critical > 0`).
#[derive(Clone, PartialEq, Debug)]
pub struct ColumnMapping {
    /// Column of the declaration number.
    pub declaration_id: String,
    /// Column of the item number; `None`: every record is item 1.
    pub item_no: Option<String>,
    /// Column of the fraud label (0/1, empty = not controlled); `None`: no such column.
    pub fraud: Option<String>,
    /// Column of the critical fraud label (0/1/2, empty = not controlled); `None`: no such column.
    pub critical_fraud: Option<String>,
    /// chrono `strftime` format of date fields, [`DEFAULT_DATE_FORMAT`] unless set.
    pub date_format: String,
    /// The declared fields.
    registry: &'static FieldRegistry,
    /// The column of each declared field, in registry order; `None` only on optional fields.
    declared: Vec<Option<String>>,
}

impl ColumnMapping {
    /// The layout of the Korea Customs Service synthetic datasets (`df_syn_*_eng.csv`):
    /// `Declaration ID,Date,Office ID,...,Fraud,Critical Fraud`, no item number column.
    pub fn kcs_default() -> ColumnMapping {
        ColumnMapping::kcs_for(FieldRegistry::standard())
    }

    /// The layout an import without a mapping file reads: the KCS layout, plus the goods
    /// descriptions, the container number and the postal item id when the file's header row
    /// (`headers`) has their usual columns ([`GOODS_DESCRIPTION_HEADER`],
    /// [`GOODS_DESCRIPTION_CLEANED_HEADER`], [`CONTAINER_NUMBER_HEADER`],
    /// [`POSTAL_ITEM_ID_HEADER`]), so that such a file uploaded as is keeps them. A file
    /// without them reads as KCS.
    pub fn kcs_default_for_headers<S: AsRef<str>>(headers: &[S]) -> ColumnMapping {
        let mut mapping = ColumnMapping::kcs_default();
        for (field, header) in [
            (GOODS_DESCRIPTION, GOODS_DESCRIPTION_HEADER),
            (GOODS_DESCRIPTION_CLEANED, GOODS_DESCRIPTION_CLEANED_HEADER),
            (CONTAINER_NUMBER, CONTAINER_NUMBER_HEADER),
            (POSTAL_ITEM_ID, POSTAL_ITEM_ID_HEADER),
        ] {
            if headers.iter().any(|h| h.as_ref().trim() == header) {
                mapping.set_header(field, Some(header.to_string()));
            }
        }
        mapping
    }

    /// [`ColumnMapping::kcs_default_for_headers`] on the header row of a CSV file's bytes (a
    /// file whose header cannot be read gets the KCS layout, and the reader's error).
    pub fn kcs_default_for_csv(bytes: &[u8]) -> ColumnMapping {
        let headers = header_row(csv::ReaderBuilder::new().flexible(true).from_reader(bytes));
        ColumnMapping::kcs_default_for_headers(&headers)
    }

    /// The mapping for files imported together without a mapping file: the descriptions are
    /// read when every file's header row has them (files are read with one mapping, and a
    /// mapped column missing from one file would refuse it). A file that cannot be opened
    /// counts as not having them; its import then names the problem.
    pub fn kcs_default_for_files(paths: &[PathBuf]) -> ColumnMapping {
        let rows: Vec<Vec<String>> = paths
            .iter()
            .map(
                |path| match csv::ReaderBuilder::new().flexible(true).from_path(path) {
                    Ok(reader) => header_row(reader),
                    Err(_) => Vec::new(),
                },
            )
            .collect();
        let common: Vec<&String> = match rows.first() {
            Some(first) => first
                .iter()
                .filter(|h| rows.iter().all(|r| r.contains(h)))
                .collect(),
            None => Vec::new(),
        };
        ColumnMapping::kcs_default_for_headers(&common)
    }

    /// The KCS layout for the fields of `registry`: fields without a KCS header are unmapped.
    pub fn kcs_for(registry: &'static FieldRegistry) -> ColumnMapping {
        ColumnMapping {
            declaration_id: "Declaration ID".to_string(),
            item_no: None,
            fraud: Some("Fraud".to_string()),
            critical_fraud: Some("Critical Fraud".to_string()),
            date_format: DEFAULT_DATE_FORMAT.to_string(),
            registry,
            declared: registry
                .fields()
                .iter()
                .map(|f| f.kcs_header.map(str::to_string))
                .collect(),
        }
    }

    /// The declared fields this mapping reads.
    pub fn registry(&self) -> &'static FieldRegistry {
        self.registry
    }

    /// The header of the declared field `name`; `None` when unmapped or not a declared field.
    pub fn header_of(&self, name: &str) -> Option<&str> {
        let i = self.registry.position(name)?;
        self.declared[i].as_deref()
    }

    /// Points the declared field `name` at `header` (`None`: unmapped). Returns `false`, and
    /// changes nothing, when there is no such field or it is required and `header` is `None`.
    pub fn set_header(&mut self, name: &str, header: Option<String>) -> bool {
        match self.registry.position(name) {
            Some(i) if header.is_some() || !self.registry.fields()[i].required => {
                self.declared[i] = header;
                true
            }
            _ => false,
        }
    }

    /// Every column, in the order of the KCS layout (item number after the declaration id).
    pub(crate) fn fields(&self) -> impl Iterator<Item = Field> {
        let declared = self.declared.len();
        [Field::DeclarationId, Field::ItemNo]
            .into_iter()
            .chain((0..declared).map(Field::Declared))
            .chain([Field::Fraud, Field::CriticalFraud])
    }

    /// The number of columns [`ColumnMapping::fields`] yields.
    pub(crate) fn n_fields(&self) -> usize {
        self.declared.len() + 4
    }

    /// The key of `field` in a mapping file (the field name).
    pub(crate) fn key(&self, field: Field) -> &'static str {
        match field {
            Field::DeclarationId => "declaration_id",
            Field::ItemNo => "item_no",
            Field::Declared(i) => self.registry.fields()[i].name,
            Field::Fraud => "fraud",
            Field::CriticalFraud => "critical_fraud",
        }
    }

    /// Whether a mapping may leave `field` without a column.
    pub(crate) fn optional(&self, field: Field) -> bool {
        match field {
            Field::DeclarationId => false,
            Field::Declared(i) => !self.registry.fields()[i].required,
            Field::ItemNo | Field::Fraud | Field::CriticalFraud => true,
        }
    }

    /// Loads a mapping file: a JSON object from our field names (`declaration_id`, `item_no`,
    /// `date`, ..., `critical_fraud`) to header names, plus an optional `date_format` key.
    /// Optional fields may be absent or `null`; every other field must be present; unknown keys
    /// are an error naming the key.
    pub fn from_json_file(path: &Path) -> Result<ColumnMapping, MappingError> {
        Self::from_json_file_for(path, FieldRegistry::standard())
    }

    /// Same as [`ColumnMapping::from_json_file`], for the fields of `registry`.
    pub fn from_json_file_for(
        path: &Path,
        registry: &'static FieldRegistry,
    ) -> Result<ColumnMapping, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError {
            path: path.to_path_buf(),
            problem: MappingProblem::Io(source),
        })?;
        Self::parse_json(&text, path, registry)
    }

    /// Same as [`ColumnMapping::from_json_file`], from JSON text (errors name `<json>`).
    pub fn from_json_str(text: &str) -> Result<ColumnMapping, MappingError> {
        Self::from_json_str_for(text, FieldRegistry::standard())
    }

    /// Same as [`ColumnMapping::from_json_str`], for the fields of `registry`.
    pub fn from_json_str_for(
        text: &str,
        registry: &'static FieldRegistry,
    ) -> Result<ColumnMapping, MappingError> {
        Self::parse_json(text, Path::new("<json>"), registry)
    }

    fn parse_json(
        text: &str,
        path: &Path,
        registry: &'static FieldRegistry,
    ) -> Result<ColumnMapping, MappingError> {
        let fail = |problem| MappingError {
            path: path.to_path_buf(),
            problem,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| fail(MappingProblem::Json(e)))?;
        let object = value
            .as_object()
            .ok_or_else(|| fail(MappingProblem::NotObject))?;
        let mut mapping = ColumnMapping::kcs_for(registry);
        let fields: Vec<Field> = mapping.fields().collect();
        let mut seen = vec![false; fields.len()];
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
            let Some(position) = fields.iter().position(|f| mapping.key(*f) == key) else {
                return Err(fail(MappingProblem::UnknownKey {
                    key: key.clone(),
                    known: fields.iter().map(|f| mapping.key(*f)).collect(),
                }));
            };
            let field = fields[position];
            let header = match value {
                serde_json::Value::Null if mapping.optional(field) => None,
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
        let missing: Vec<String> = fields
            .iter()
            .zip(&seen)
            .filter(|(field, seen)| !**seen && !mapping.optional(**field))
            .map(|(field, _)| mapping.key(*field).to_string())
            .collect();
        if !missing.is_empty() {
            return Err(fail(MappingProblem::MissingKeys { keys: missing }));
        }
        for (field, seen) in fields.iter().zip(seen) {
            if !seen && mapping.optional(*field) {
                mapping.set(*field, None);
            }
        }
        Ok(mapping)
    }

    /// The mapping as a mapping file reads it ([`ColumnMapping::from_json_str_for`]): every
    /// field name to its header (`null` when an optional field is unmapped), then `date_format`;
    /// pretty-printed, one key a line, in the order of [`ColumnMapping::fields`].
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\n");
        for field in self.fields() {
            let header = match self.header(field) {
                Some(header) => serde_json::Value::from(header),
                None => serde_json::Value::Null,
            };
            out.push_str(&format!(
                "  {}: {header},\n",
                serde_json::Value::from(self.key(field))
            ));
        }
        out.push_str(&format!(
            "  {}: {}\n}}\n",
            serde_json::Value::from(DATE_FORMAT_KEY),
            serde_json::Value::from(self.date_format.as_str())
        ));
        out
    }

    /// The header name mapped to `field`, `None` when an optional field has no column.
    pub(crate) fn header(&self, field: Field) -> Option<&str> {
        match field {
            Field::DeclarationId => Some(&self.declaration_id),
            Field::ItemNo => self.item_no.as_deref(),
            Field::Declared(i) => self.declared[i].as_deref(),
            Field::Fraud => self.fraud.as_deref(),
            Field::CriticalFraud => self.critical_fraud.as_deref(),
        }
    }

    /// Points `field` at `header`. `None` on a mandatory field is ignored (the caller only passes
    /// `None` for optional fields).
    fn set(&mut self, field: Field, header: Option<String>) {
        match field {
            Field::ItemNo => self.item_no = header,
            Field::Fraud => self.fraud = header,
            Field::CriticalFraud => self.critical_fraud = header,
            Field::DeclarationId => {
                if let Some(header) = header {
                    self.declaration_id = header;
                }
            }
            Field::Declared(i) => {
                if header.is_some() || !self.registry.fields()[i].required {
                    self.declared[i] = header;
                }
            }
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
        /// the keys a mapping may use
        known: Vec<&'static str>,
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
            MappingProblem::UnknownKey { key, known } => {
                write!(f, "unknown key '{key}' (known keys: ")?;
                for known in known {
                    write!(f, "{known}, ")?;
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

/// The header row of a CSV reader, lossily decoded; empty when it cannot be read.
fn header_row<R: std::io::Read>(mut reader: csv::Reader<R>) -> Vec<String> {
    reader
        .byte_headers()
        .map(|row| {
            row.iter()
                .map(|h| String::from_utf8_lossy(h).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_json() -> serde_json::Map<String, serde_json::Value> {
        let mapping = ColumnMapping::kcs_default();
        mapping
            .fields()
            .filter_map(|f| {
                mapping
                    .header(f)
                    .map(|h| (mapping.key(f).to_string(), serde_json::Value::from(h)))
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
    fn a_mapping_written_as_json_reads_back_as_itself() {
        let mut mapping = ColumnMapping::kcs_default();
        mapping.set_header("goods_description", Some("Goods \"Description\"".into()));
        mapping.date_format = "%d/%m/%Y".into();
        let text = mapping.to_json();
        assert!(text.contains("\"seller_id\": \"Seller ID\",\n"), "{text}");
        assert!(text.contains("\"item_no\": null,\n"), "{text}");
        assert!(
            text.ends_with("\"date_format\": \"%d/%m/%Y\"\n}\n"),
            "{text}"
        );
        assert_eq!(ColumnMapping::from_json_str(&text).unwrap(), mapping);
        assert_eq!(
            ColumnMapping::from_json_str(&ColumnMapping::kcs_default().to_json()).unwrap(),
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
        assert_eq!(mapping.header_of("seller_id"), None);
        assert_eq!(mapping.header_of("courier_id"), None);
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
            matches!(&err.problem, MappingProblem::UnknownKey { key, .. } if key == "net_weight"),
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

    /// A field added to the registry is a mapping key and a column read into the item, with
    /// nothing else to change here.
    #[test]
    fn a_field_added_to_the_registry_is_mapped_and_read() {
        use borderlens_domain::{DeclaredField, DeclaredValue, FieldType};
        static WITH_NOTE: std::sync::LazyLock<FieldRegistry> = std::sync::LazyLock::new(|| {
            FieldRegistry::extended([DeclaredField::extra(
                "test_note",
                "test note",
                FieldType::Text,
            )])
            .unwrap()
        });
        let mut object = full_json();
        object.insert("test_note".into(), "Remarks".into());
        let text = serde_json::Value::Object(object).to_string();
        let mapping = ColumnMapping::from_json_str_for(&text, &WITH_NOTE).unwrap();
        assert_eq!(mapping.header_of("test_note"), Some("Remarks"));
        // The standard registry does not know the key.
        let err = ColumnMapping::from_json_str(&text).unwrap_err();
        assert!(err.to_string().contains("unknown key 'test_note'"), "{err}");

        let csv = "Declaration ID,Date,Office ID,Process Type,Import Type,Import Use,\
Payment Type,Mode of Transport,Declarant ID,Importer ID,Seller ID,Courier ID,HS6 Code,\
Country of Departure,Country of Origin,Tax Rate,Tax Type,Country of Origin Indicator,\
Net Mass,Item Price,Fraud,Critical Fraud,Remarks
D1,2020-01-01,30,B,11,21,11,10,DEC,IMP,,,440890,BE,BE,8,FEU1,G,108,1000,,, fragile \n\
D2,2020-01-01,30,B,11,21,11,10,DEC,IMP,,,440890,BE,BE,8,FEU1,G,108,1000,,,\n";
        let items: Vec<_> =
            crate::DeclarationReader::from_reader(Path::new("n.csv"), csv.as_bytes(), &mapping)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        // A free text is kept as it is in the cell, spaces included.
        assert_eq!(
            items[0].extra.get("test_note"),
            Some(&DeclaredValue::Text(" fragile ".into()))
        );
        assert!(items[1].extra.is_empty());
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

    #[test]
    fn without_a_mapping_file_the_descriptions_are_read_when_the_header_has_them() {
        let kcs = "Declaration ID,Date,Office ID\n1,2020-01-01,30\n";
        assert_eq!(
            ColumnMapping::kcs_default_for_csv(kcs.as_bytes()),
            ColumnMapping::kcs_default()
        );
        let described = "\u{feff}Declaration ID,Date,Goods Description,Cleaned Goods Description\n";
        let m = ColumnMapping::kcs_default_for_csv(described.as_bytes());
        assert_eq!(m.header_of(GOODS_DESCRIPTION), Some("Goods Description"));
        assert_eq!(
            m.header_of(GOODS_DESCRIPTION_CLEANED),
            Some("Cleaned Goods Description")
        );
        let sender_only = ColumnMapping::kcs_default_for_headers(&["Goods Description"]);
        assert_eq!(
            sender_only.header_of(GOODS_DESCRIPTION),
            Some("Goods Description")
        );
        assert_eq!(sender_only.header_of(GOODS_DESCRIPTION_CLEANED), None);
        // Not a CSV header at all: the KCS layout, and the reader's error later.
        assert_eq!(
            ColumnMapping::kcs_default_for_csv(b"\xff\xfe\x00\x00\"unterminated"),
            ColumnMapping::kcs_default()
        );
        // Files read together: only what every one of them has.
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        std::fs::write(&a, described).unwrap();
        std::fs::write(&b, "Declaration ID,Date,Goods Description\n").unwrap();
        let both = ColumnMapping::kcs_default_for_files(&[a.clone(), b.clone()]);
        assert_eq!(both.header_of(GOODS_DESCRIPTION), Some("Goods Description"));
        assert_eq!(both.header_of(GOODS_DESCRIPTION_CLEANED), None);
        let missing = dir.path().join("missing.csv");
        let with_missing = ColumnMapping::kcs_default_for_files(&[a, missing]);
        assert_eq!(with_missing, ColumnMapping::kcs_default());
        assert_eq!(
            ColumnMapping::kcs_default_for_files(&[]),
            ColumnMapping::kcs_default()
        );
    }
}
