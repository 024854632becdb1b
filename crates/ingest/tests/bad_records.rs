//! Each kind of bad input is reported on the exact record and field, and reading goes on.

use std::io::Write;
use std::path::Path;

use borderlens_domain::{ControlLabel, HsError};
use borderlens_ingest::{
    read_declarations, ColumnMapping, DeclarationReader, FileError, RecordError, RecordProblem,
};

const HEADER: &str = "Declaration ID,Date,Office ID,Process Type,Import Type,Import Use,Payment Type,Mode of Transport,Declarant ID,Importer ID,Seller ID,Courier ID,HS6 Code,Country of Departure,Country of Origin,Tax Rate,Tax Type,Country of Origin Indicator,Net Mass,Item Price,Fraud,Critical Fraud";
const GOOD: &str = "97061800,2020-01-01,30,B,11,21,11,10,ZZR1LT6,QLRUBN9,0VKY2BR,,440890,BE,BE,0.0,FEU1,G,108.0,372254.4,0,0";

/// Column index of a KCS header name.
fn column(name: &str) -> usize {
    HEADER.split(',').position(|h| h == name).unwrap()
}

/// The good row with one field replaced.
fn with_field(name: &str, value: &str) -> String {
    let mut fields: Vec<&str> = GOOD.split(',').collect();
    fields[column(name)] = value;
    fields.join(",")
}

/// Reads `bytes` (a KCS file) and returns the results.
fn read_bytes(bytes: &[u8]) -> Vec<Result<borderlens_domain::DeclarationItem, RecordError>> {
    DeclarationReader::from_reader(Path::new("t.csv"), bytes, &ColumnMapping::kcs_default())
        .unwrap()
        .collect()
}

/// A file of header, good row, `bad` row, good row: the bad one is reported on line 3 and the
/// rows around it are read.
fn bad_row(bad: &[u8]) -> RecordError {
    let mut bytes = Vec::new();
    for part in [HEADER.as_bytes(), b"\n", GOOD.as_bytes(), b"\n", bad, b"\n"] {
        bytes.extend_from_slice(part);
    }
    let second_good = GOOD.replacen("97061800", "97061801", 1);
    bytes.extend_from_slice(second_good.as_bytes());
    bytes.push(b'\n');
    let results = read_bytes(&bytes);
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let last = results[2]
        .as_ref()
        .expect("the record after a bad one is read");
    assert_eq!(last.key.declaration_id, "97061801");
    let err = results[1].clone().expect_err("bad record");
    assert_eq!(err.line, 3);
    err
}

fn check(bad: &str, field: Option<&str>, message: &str) -> RecordError {
    let err = bad_row(bad.as_bytes());
    assert_eq!(err.field.as_deref(), field, "{err}");
    assert_eq!(err.to_string(), format!("t.csv:3: {message}"));
    err
}

#[test]
fn good_row_is_read() {
    let results = read_bytes(format!("{HEADER}\n{GOOD}\n").as_bytes());
    let item = results[0].as_ref().unwrap();
    assert_eq!(item.key.declaration_id, "97061800");
    assert_eq!(item.key.item_no, 1);
    assert_eq!(item.date.to_string(), "2020-01-01");
    assert_eq!(item.seller_id.as_deref(), Some("0VKY2BR"));
    assert_eq!(item.courier_id, None);
    assert_eq!(item.hs6.as_str(), "440890");
    assert_eq!(
        (item.tax_rate, item.net_mass, item.item_price),
        (0.0, 108.0, 372254.4)
    );
    assert_eq!(
        item.label,
        Some(ControlLabel {
            fraud: false,
            critical: 0
        })
    );
}

#[test]
fn wrong_field_count() {
    let short = GOOD.rsplit_once(',').unwrap().0;
    let err = check(short, None, "expected 22 fields, found 21");
    assert_eq!(
        err.reason,
        RecordProblem::FieldCount {
            expected: 22,
            found: 21
        }
    );
    check(&format!("{GOOD},x"), None, "expected 22 fields, found 23");
}

#[test]
fn non_utf8_byte_in_a_field() {
    let mut bad = with_field("Importer ID", "QLR#BN9").into_bytes();
    let at = bad.iter().position(|b| *b == b'#').unwrap();
    bad[at] = 0xff;
    let err = bad_row(&bad);
    assert_eq!(err.field.as_deref(), Some("Importer ID"));
    assert_eq!(
        err.reason,
        RecordProblem::NotUtf8 {
            byte: 0xff,
            offset: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "t.csv:3: field 'Importer ID': not valid UTF-8 (byte 0xff at offset 3)"
    );
}

#[test]
fn unparsable_date() {
    check(
        &with_field("Date", "2020-02-30"),
        Some("Date"),
        "field 'Date': '2020-02-30' is not a date in format '%Y-%m-%d'",
    );
    check(
        &with_field("Date", "01/02/2020"),
        Some("Date"),
        "field 'Date': '01/02/2020' is not a date in format '%Y-%m-%d'",
    );
}

#[test]
fn unparsable_numbers() {
    check(
        &with_field("Net Mass", "12kg"),
        Some("Net Mass"),
        "field 'Net Mass': '12kg' is not a number",
    );
    check(
        &with_field("Tax Rate", "abc"),
        Some("Tax Rate"),
        "field 'Tax Rate': 'abc' is not a number",
    );
}

#[test]
fn negative_mass_and_price() {
    check(
        &with_field("Net Mass", "-1.5"),
        Some("Net Mass"),
        "field 'Net Mass': '-1.5' is negative",
    );
    check(
        &with_field("Item Price", "-100"),
        Some("Item Price"),
        "field 'Item Price': '-100' is negative",
    );
}

#[test]
fn nan_and_infinity() {
    check(
        &with_field("Item Price", "NaN"),
        Some("Item Price"),
        "field 'Item Price': 'NaN' is not a finite number",
    );
    check(
        &with_field("Net Mass", "inf"),
        Some("Net Mass"),
        "field 'Net Mass': 'inf' is not a finite number",
    );
    check(
        &with_field("Tax Rate", "1e400"),
        Some("Tax Rate"),
        "field 'Tax Rate': '1e400' is not a finite number",
    );
}

#[test]
fn bad_hs_codes() {
    let err = check(
        &with_field("HS6 Code", "4408901000"),
        Some("HS6 Code"),
        "field 'HS6 Code': HS code '4408901000' has 10 digits, expected 6",
    );
    assert_eq!(
        err.reason,
        RecordProblem::HsCode(HsError::Length {
            code: "4408901000".into(),
            digits: 10
        })
    );
    check(
        &with_field("HS6 Code", "770000"),
        Some("HS6 Code"),
        "field 'HS6 Code': HS code '770000' has no such chapter",
    );
    check(
        &with_field("HS6 Code", "44A890"),
        Some("HS6 Code"),
        "field 'HS6 Code': HS code '44A890' contains a non-digit",
    );
}

#[test]
fn empty_mandatory_fields() {
    for name in [
        "Declaration ID",
        "Date",
        "Office ID",
        "Declarant ID",
        "HS6 Code",
        "Country of Origin",
        "Net Mass",
    ] {
        check(
            &with_field(name, "  "),
            Some(name),
            &format!("field '{name}': empty mandatory field"),
        );
    }
}

#[test]
fn empty_optional_parties_are_none() {
    let row = with_field("Seller ID", " ");
    let results = read_bytes(format!("{HEADER}\n{row}\n").as_bytes());
    assert_eq!(results[0].as_ref().unwrap().seller_id, None);
}

#[test]
fn labels_outside_their_code_lists() {
    check(
        &with_field("Fraud", "2"),
        Some("Fraud"),
        "field 'Fraud': '2' is not a label (expected 0 or 1)",
    );
    check(
        &with_field("Fraud", "yes"),
        Some("Fraud"),
        "field 'Fraud': 'yes' is not a label (expected 0 or 1)",
    );
    check(
        &with_field("Critical Fraud", "3"),
        Some("Critical Fraud"),
        "field 'Critical Fraud': '3' is not a label (expected 0, 1 or 2)",
    );
    check(
        &with_field("Critical Fraud", "1.0"),
        Some("Critical Fraud"),
        "field 'Critical Fraud': '1.0' is not a label (expected 0, 1 or 2)",
    );
}

#[test]
fn inconsistent_labels() {
    let row = |fraud: &str, critical: &str| {
        let row = with_field("Fraud", fraud);
        let mut fields: Vec<&str> = row.split(',').collect();
        fields[column("Critical Fraud")] = critical;
        fields.join(",")
    };
    check(
        &row("0", "2"),
        Some("Critical Fraud"),
        "field 'Critical Fraud': critical fraud 2 with fraud 0 \
         (critical fraud must be above 0 exactly when fraud is 1)",
    );
    check(
        &row("1", "0"),
        Some("Critical Fraud"),
        "field 'Critical Fraud': critical fraud 0 with fraud 1 \
         (critical fraud must be above 0 exactly when fraud is 1)",
    );
    check(
        &row("1", ""),
        Some("Critical Fraud"),
        "field 'Critical Fraud': empty while 'Fraud' is set",
    );
    check(
        &row("", "0"),
        Some("Fraud"),
        "field 'Fraud': empty while 'Critical Fraud' is set",
    );
    // Both empty: not controlled.
    let results = read_bytes(format!("{HEADER}\n{}\n", row("", "")).as_bytes());
    assert_eq!(results[0].as_ref().unwrap().label, None);
    let results = read_bytes(format!("{HEADER}\n{}\n", row("1", "2")).as_bytes());
    assert_eq!(
        results[0].as_ref().unwrap().label,
        Some(ControlLabel {
            fraud: true,
            critical: 2
        })
    );
}

#[test]
fn line_numbers_are_physical_lines() {
    // A quoted field spanning two lines moves the following records down by one line.
    let quoted = with_field("Importer ID", "\"QLR\nBN9\"");
    let bad = with_field("Net Mass", "x");
    let text = format!("{HEADER}\r\n{quoted}\r\n\r\n{bad}\r\n");
    let results = read_bytes(text.as_bytes());
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].as_ref().unwrap().importer_id, "QLR\nBN9");
    assert_eq!(results[1].as_ref().unwrap_err().line, 5);
}

#[test]
fn with_lines_pairs_items_with_their_line() {
    let text = format!(
        "{HEADER}\n{GOOD}\nbroken\n{}\n",
        with_field("Declaration ID", "2")
    );
    let reader = DeclarationReader::from_reader(
        Path::new("t.csv"),
        text.as_bytes(),
        &ColumnMapping::kcs_default(),
    )
    .unwrap();
    let lines: Vec<Result<u64, u64>> = reader
        .with_lines()
        .map(|r| r.map(|(_, line)| line).map_err(|e| e.line))
        .collect();
    assert_eq!(lines, vec![Ok(2), Err(3), Ok(4)]);
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

#[test]
fn file_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let kcs = ColumnMapping::kcs_default();

    let path = write_file(dir.path(), "empty.csv", b"");
    let err = read_declarations(&path, &kcs).err().unwrap();
    assert!(matches!(err, FileError::Empty { .. }));
    assert_eq!(
        err.to_string(),
        format!("'{}' is empty: no header line", path.display())
    );

    let path = dir.path().join("absent.csv");
    let err = read_declarations(&path, &kcs).err().unwrap();
    assert!(matches!(err, FileError::Open { .. }));
    assert!(err.to_string().contains("absent.csv"), "{err}");

    let header = HEADER.replace(",Net Mass", "").replace(",Fraud", "");
    let path = write_file(dir.path(), "missing.csv", header.as_bytes());
    let err = read_declarations(&path, &kcs).err().unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "'{}': missing column(s) 'Net Mass', 'Fraud'",
            path.display()
        )
    );

    let mut header = HEADER.as_bytes().to_vec();
    header[column_offset("Tax Type")] = 0xfe;
    let path = write_file(dir.path(), "latin1.csv", &header);
    let err = read_declarations(&path, &kcs).err().unwrap();
    assert!(
        matches!(err, FileError::HeaderNotUtf8 { column: 17, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("latin1.csv"), "{err}");

    let header = format!("{HEADER},Net Mass");
    let path = write_file(dir.path(), "twice.csv", header.as_bytes());
    let err = read_declarations(&path, &kcs).err().unwrap();
    assert!(matches!(err, FileError::DuplicateColumn { ref column, .. } if column == "Net Mass"));
}

fn column_offset(name: &str) -> usize {
    HEADER.find(name).unwrap()
}

#[test]
fn byte_order_mark_and_header_only() {
    let text = format!("\u{feff}{HEADER}\n");
    let results = read_bytes(text.as_bytes());
    assert!(results.is_empty());
    let text = format!("\u{feff}{HEADER}\n{GOOD}\n");
    assert!(read_bytes(text.as_bytes())[0].is_ok());
}

#[test]
fn custom_mapping_with_item_numbers_and_date_format() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write_file(
        dir.path(),
        "mapping.json",
        br#"{"declaration_id": "DECL_NO", "item_no": "ITEM", "date": "ACCEPTED",
            "office_id": "OFFICE", "process_type": "PROC", "import_type": "ITYPE",
            "import_use": "IUSE", "payment_type": "PAY", "transport_mode": "MODE",
            "declarant_id": "DECLARANT", "importer_id": "IMPORTER", "hs6": "HS",
            "departure_country": "DEP", "origin_country": "ORIG", "tax_rate": "RATE",
            "tax_type": "TTYPE", "origin_indicator": "OIND", "net_mass": "NET",
            "item_price": "PRICE", "critical_fraud": "RESULT", "date_format": "%d/%m/%Y"}"#,
    );
    let mapping = ColumnMapping::from_json_file(&mapping).unwrap();
    let data = "DECL_NO;ITEM;ACCEPTED;OFFICE;PROC;ITYPE;IUSE;PAY;MODE;DECLARANT;IMPORTER;HS;DEP;ORIG;RATE;TTYPE;OIND;NET;PRICE;RESULT\n"
        .replace(';', ",")
        + "D1,2,31/12/2020,30,B,11,21,11,10,X,Y,4408.90,BE,BE,5,A,G,1,2,2\n"
        + "D1,0,31/12/2020,30,B,11,21,11,10,X,Y,440890,BE,BE,5,A,G,1,2,\n"
        + "D2,3,2020-12-31,30,B,11,21,11,10,X,Y,440890,BE,BE,5,A,G,1,2,\n";
    let path = write_file(dir.path(), "custom.csv", data.as_bytes());
    let results: Vec<_> = read_declarations(&path, &mapping).unwrap().collect();
    let item = results[0].as_ref().unwrap();
    assert_eq!(item.key.item_no, 2);
    assert_eq!(item.date.to_string(), "2020-12-31");
    assert_eq!(item.hs6.as_str(), "440890");
    assert_eq!(
        (item.seller_id.as_deref(), item.courier_id.as_deref()),
        (None, None)
    );
    assert_eq!(
        item.label,
        Some(ControlLabel {
            fraud: true,
            critical: 2
        })
    );
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: field 'ITEM': '0' is not an item number (a whole number from 1)",
            path.display()
        )
    );
    let err = results[2].as_ref().unwrap_err();
    assert_eq!(err.field.as_deref(), Some("ACCEPTED"));
    assert_eq!(err.line, 4);
}

#[test]
fn reads_the_sample_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/sample");
    for (name, rows) in [
        ("df_syn_train_eng.csv", 37_385),
        ("df_syn_valid_eng.csv", 8_134),
    ] {
        let reader = read_declarations(&root.join(name), &ColumnMapping::kcs_default()).unwrap();
        let mut good = 0;
        for result in reader {
            let item = result.unwrap_or_else(|e| panic!("{e}"));
            assert!(item.label.is_some());
            good += 1;
        }
        assert_eq!(good, rows, "{name}");
    }
}

/// `n` good rows with distinct declaration ids from `first`, one per line.
fn good_rows(first: u32, n: u32) -> String {
    (first..first + n)
        .map(|id| with_field("Declaration ID", &id.to_string()) + "\n")
        .collect()
}

#[test]
fn an_unterminated_quote_mid_file_is_reported_with_the_rows_it_swallowed() {
    // Line 5 opens a quote in Seller ID that never closes: csv reads the 189 rows after it
    // into that field, to the end of the file.
    let broken = with_field("Seller ID", "\"0VKY2BR");
    let text = format!(
        "{HEADER}\n{}{broken}\n{}",
        good_rows(1, 3),
        good_rows(100, 189)
    );
    let results = read_bytes(text.as_bytes());
    assert_eq!(results.len(), 4, "{results:?}");
    assert!(results[..3].iter().all(|r| r.is_ok()));
    let err = results[3].clone().unwrap_err();
    assert_eq!(err.line, 5);
    assert_eq!(err.field.as_deref(), Some("Seller ID"));
    assert_eq!(
        err.reason,
        RecordProblem::UnclosedQuote {
            opened: 5,
            records: 189,
            first: 6,
            last: 194
        }
    );
    assert_eq!(
        err.to_string(),
        "t.csv:5: field 'Seller ID': the quote opened on line 5 is not closed: 189 following \
         record(s) (lines 6 to 194) were read into this field and are not imported; close the \
         quote and import the file again"
    );
}

#[test]
fn a_quote_closed_by_a_later_quote_reports_the_rows_between_and_reading_goes_on() {
    // A record with a legitimate two-line field first: the broken quote opens on line 4.
    let multiline = with_field("Importer ID", "\"QLR\nBN9\"");
    let broken = with_field("Seller ID", "\"0VKY2BR");
    // The next quote (line 20) ends the field; the record ends with line 20.
    let closing = with_field("Courier ID", "\"C1\"");
    let text = format!(
        "{HEADER}\n{multiline}\n{broken}\n{}{closing}\n{}",
        good_rows(1, 15),
        good_rows(50, 2)
    );
    let results = read_bytes(text.as_bytes());
    assert_eq!(results.len(), 4, "{results:?}");
    assert_eq!(results[0].as_ref().unwrap().importer_id, "QLR\nBN9");
    let err = results[1].clone().unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (4, Some("Seller ID")));
    assert_eq!(
        err.reason,
        RecordProblem::UnclosedQuote {
            opened: 4,
            records: 15,
            first: 5,
            last: 19
        }
    );
    let ids: Vec<&str> = results[2..]
        .iter()
        .map(|r| r.as_ref().unwrap().key.declaration_id.as_str())
        .collect();
    assert_eq!(ids, ["50", "51"]);
}

#[test]
fn a_quoted_field_may_hold_line_breaks_and_short_lines() {
    // Several lines, commas and a CR LF inside one field: one field, not swallowed records.
    let value = "a,b\r\nc, d\n,,,\ne";
    let row = with_field("Importer ID", &format!("\"{value}\""));
    let text = format!("{HEADER}\n{row}\n{GOOD}\n");
    let results = read_bytes(text.as_bytes());
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0].as_ref().unwrap().importer_id, value);
    assert!(results[1].is_ok());
}

#[test]
fn control_characters_in_ids_and_codes_are_refused_and_reading_goes_on() {
    let err = check(
        &with_field("Declaration ID", "\u{0}97061800"),
        Some("Declaration ID"),
        "field 'Declaration ID': control character \\u{0} at character 1 \
         (codes, ids and texts hold printable text, tabs and line breaks)",
    );
    assert_eq!(
        err.reason,
        RecordProblem::Control {
            character: '\0',
            position: 0
        }
    );
    check(
        &with_field("Office ID", "3\u{0}0"),
        Some("Office ID"),
        "field 'Office ID': control character \\u{0} at character 2 \
         (codes, ids and texts hold printable text, tabs and line breaks)",
    );
    check(
        &with_field("Seller ID", "0VK\u{1b}Y"),
        Some("Seller ID"),
        "field 'Seller ID': control character \\u{1b} at character 4 \
         (codes, ids and texts hold printable text, tabs and line breaks)",
    );
}

#[test]
fn implausible_dates_and_magnitudes_are_refused() {
    for date in ["-2021-01-05", "0000-01-01", "2101-01-01"] {
        check(
            &with_field("Date", date),
            Some("Date"),
            &format!("field 'Date': '{date}' is not a plausible date (years 1900 to 2100)"),
        );
    }
    check(
        &with_field("Item Price", "1e308"),
        Some("Item Price"),
        "field 'Item Price': '1e308' is above the plausible maximum 1e15",
    );
    check(
        &with_field("Net Mass", "2000000000000000"),
        Some("Net Mass"),
        "field 'Net Mass': '2000000000000000' is above the plausible maximum 1e15",
    );
    check(
        &with_field("Tax Rate", "12000"),
        Some("Tax Rate"),
        "field 'Tax Rate': '12000' is above the plausible maximum 1e4",
    );
}
