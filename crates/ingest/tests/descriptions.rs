//! Goods descriptions through a column mapping: read byte for byte (quotes, commas, line
//! breaks, any script, emoji, surrounding spaces), refused with the file, line and field when
//! they hold a control character or are too long, and any allowed text written by a CSV writer
//! reads back as itself.

use std::path::Path;

use borderlens_domain::{
    DeclarationItem, DeclaredValue, GOODS_DESCRIPTION, GOODS_DESCRIPTION_CLEANED,
};
use borderlens_ingest::{ColumnMapping, DeclarationReader, RecordError, RecordProblem};
use proptest::prelude::*;

const HEADER: &str = "Declaration ID,Date,Office ID,Process Type,Import Type,Import Use,Payment Type,Mode of Transport,Declarant ID,Importer ID,Seller ID,Courier ID,HS6 Code,Country of Departure,Country of Origin,Tax Rate,Tax Type,Country of Origin Indicator,Net Mass,Item Price,Fraud,Critical Fraud,Goods Description,Cleaned Goods Description";
const ROW: &str =
    "2020-01-01,30,B,11,21,11,10,ZZR1LT6,QLRUBN9,0VKY2BR,,610910,BE,BE,0.0,FEU1,G,1.0,37.5,0,0";

/// The KCS layout and the two descriptions, as a mapping file writes it (the one shipped with
/// the described sample).
fn mapping() -> ColumnMapping {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/sample-described/mapping.json"
    ))
    .unwrap();
    ColumnMapping::from_json_str(&text).unwrap()
}

fn read(csv: &str) -> Vec<Result<(DeclarationItem, u64), RecordError>> {
    DeclarationReader::from_reader(Path::new("d.csv"), csv.as_bytes(), &mapping())
        .unwrap()
        .with_lines()
        .collect()
}

fn text(item: &DeclarationItem, name: &str) -> Option<String> {
    match item.extra.get(name) {
        Some(DeclaredValue::Text(text)) => Some(text.clone()),
        None => None,
        Some(other) => panic!("{name} holds {other:?}"),
    }
}

#[test]
fn the_mapping_names_both_descriptions() {
    let mapping = mapping();
    assert_eq!(
        mapping.header_of(GOODS_DESCRIPTION),
        Some("Goods Description")
    );
    assert_eq!(
        mapping.header_of(GOODS_DESCRIPTION_CLEANED),
        Some("Cleaned Goods Description")
    );
}

#[test]
fn descriptions_are_read_byte_for_byte() {
    let csv = format!(
        "{HEADER}\n\
D1,{ROW},\"Mens T-Shirt, size \"\"L\"\", 100% cotton\",\"T-shirts, singlets and other vests; of cotton, knitted or crocheted\"\n\
D2,{ROW},\"2 x shirts\n1 x belt\r\n\tleather \",\n\
D3,{ROW},  เสื้อยืดผ้าฝ้าย  ,棉质T恤 👕🎁\n\
D4,{ROW},,\n\
D5,{ROW},\"   \",\"🧦\"\n"
    );
    let items: Vec<(DeclarationItem, u64)> =
        read(&csv).into_iter().collect::<Result<_, _>>().unwrap();
    let got: Vec<(u64, Option<String>, Option<String>)> = items
        .iter()
        .map(|(item, line)| {
            (
                *line,
                text(item, GOODS_DESCRIPTION),
                text(item, GOODS_DESCRIPTION_CLEANED),
            )
        })
        .collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        got,
        [
            (
                2,
                some("Mens T-Shirt, size \"L\", 100% cotton"),
                some("T-shirts, singlets and other vests; of cotton, knitted or crocheted")
            ),
            (3, some("2 x shirts\n1 x belt\r\n\tleather "), None),
            // Unquoted cells are not trimmed either: the spaces are the sender's.
            (6, some("  เสื้อยืดผ้าฝ้าย  "), some("棉质T恤 👕🎁")),
            (7, None, None),
            (8, some("   "), some("🧦")),
        ]
    );
    // The other fields are read as before (trimmed codes).
    assert_eq!(items[0].0.hs6.as_str(), "610910");
}

#[test]
fn bad_descriptions_name_file_line_and_field_and_reading_goes_on() {
    let huge = "x".repeat(5000);
    let csv = format!(
        "{HEADER}\nD1,{ROW},shoes\u{0},\nD2,{ROW},ok,{huge}\nD3,{ROW},\"bell\u{7}\",\nD4,{ROW},fine,\n"
    );
    let results = read(&csv);
    assert_eq!(results.len(), 4);
    let err = results[0].clone().unwrap_err();
    assert_eq!(
        (err.line, err.field.as_deref()),
        (2, Some("Goods Description"))
    );
    assert!(matches!(
        err.reason,
        RecordProblem::Control {
            character: '\0',
            position: 5
        }
    ));
    let err = results[1].clone().unwrap_err();
    assert_eq!(
        err.to_string(),
        "d.csv:3: field 'Cleaned Goods Description': 5000 bytes of text, more than the 4096 a declared text may hold"
    );
    let err = results[2].clone().unwrap_err();
    assert_eq!(
        (err.line, err.field.as_deref()),
        (4, Some("Goods Description"))
    );
    let (item, line) = results[3].clone().unwrap();
    assert_eq!(
        (text(&item, GOODS_DESCRIPTION).as_deref(), line),
        (Some("fine"), 5)
    );
}

/// Allowed text: anything but the refused control characters (tabs and line breaks are text).
fn allowed() -> impl Strategy<Value = String> {
    "(?s)[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\u{9f}]{1,120}"
}

proptest! {
    #[test]
    fn any_allowed_description_written_by_a_csv_writer_reads_back_as_itself(
        rows in proptest::collection::vec((allowed(), proptest::option::of(allowed())), 1..6)
    ) {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(HEADER.split(',')).unwrap();
        for (n, (sender, cleaned)) in rows.iter().enumerate() {
            let mut record: Vec<String> = vec![format!("D{n}")];
            record.extend(ROW.split(',').map(str::to_string));
            record.push(sender.clone());
            record.push(cleaned.clone().unwrap_or_default());
            writer.write_record(&record).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let items: Vec<DeclarationItem> =
            DeclarationReader::from_reader(Path::new("p.csv"), bytes.as_slice(), &mapping())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        prop_assert_eq!(items.len(), rows.len());
        for (item, (sender, cleaned)) in items.iter().zip(&rows) {
            prop_assert_eq!(text(item, GOODS_DESCRIPTION), Some(sender.clone()));
            prop_assert_eq!(text(item, GOODS_DESCRIPTION_CLEANED), cleaned.clone());
        }
    }
}
