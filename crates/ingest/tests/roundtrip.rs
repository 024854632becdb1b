//! Property tests: valid rows read back as the items they were written from (any column order,
//! quoting, embedded newlines), with the right line numbers; arbitrary bytes never panic.

use std::path::Path;

use borderlens_domain::{ControlLabel, DeclarationItem, HsCode, ItemKey};
use borderlens_ingest::{ColumnMapping, DeclarationReader};
use chrono::NaiveDate;
use proptest::prelude::*;

const FIELDS: usize = 23;

fn mapping() -> ColumnMapping {
    let mut mapping = ColumnMapping::kcs_default();
    mapping.item_no = Some("Item No".into());
    mapping
}

/// The header of a declared field under [`mapping`].
fn header(m: &ColumnMapping, name: &str) -> String {
    m.header_of(name).unwrap().to_string()
}

/// (header, value) of every column of `item` under [`mapping`].
fn columns(item: &DeclarationItem) -> [(String, String); FIELDS] {
    let m = mapping();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let (fraud, critical) = match item.label {
        None => (String::new(), String::new()),
        Some(l) => (u8::from(l.fraud).to_string(), l.critical.to_string()),
    };
    [
        (m.declaration_id.clone(), item.key.declaration_id.clone()),
        (m.item_no.clone().unwrap(), item.key.item_no.to_string()),
        (header(&m, "date"), item.date.format("%Y-%m-%d").to_string()),
        (header(&m, "office_id"), item.office_id.clone()),
        (header(&m, "process_type"), item.process_type.clone()),
        (header(&m, "import_type"), item.import_type.clone()),
        (header(&m, "import_use"), item.import_use.clone()),
        (header(&m, "payment_type"), item.payment_type.clone()),
        (header(&m, "transport_mode"), item.transport_mode.clone()),
        (header(&m, "declarant_id"), item.declarant_id.clone()),
        (header(&m, "importer_id"), item.importer_id.clone()),
        (header(&m, "seller_id"), opt(&item.seller_id)),
        (header(&m, "courier_id"), opt(&item.courier_id)),
        (header(&m, "hs6"), item.hs6.to_string()),
        (
            header(&m, "departure_country"),
            item.departure_country.clone(),
        ),
        (header(&m, "origin_country"), item.origin_country.clone()),
        (header(&m, "tax_rate"), item.tax_rate.to_string()),
        (header(&m, "tax_type"), item.tax_type.clone()),
        (
            header(&m, "origin_indicator"),
            item.origin_indicator.clone(),
        ),
        (header(&m, "net_mass"), item.net_mass.to_string()),
        (header(&m, "item_price"), item.item_price.to_string()),
        (m.fraud.clone().unwrap(), fraud),
        (m.critical_fraud.clone().unwrap(), critical),
    ]
}

/// Declared text: non-empty, no surrounding whitespace, may hold commas, quotes and newlines.
fn code() -> impl Strategy<Value = String> {
    "[A-Za-z0-9é,\"]([A-Za-z0-9 ,\"\n]{0,6}[A-Za-z0-9])?"
}

/// A number up to `max`, the plausible maximum of its field: everyday values and any float.
fn number(max: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..max.min(1e7),
        any::<f64>()
            .prop_map(f64::abs)
            .prop_filter("finite, plausible", move |x| x.is_finite() && *x <= max),
        Just(max),
    ]
}

fn amount() -> impl Strategy<Value = f64> {
    number(1e15)
}

fn rate() -> impl Strategy<Value = f64> {
    number(1e4)
}

fn item() -> impl Strategy<Value = DeclarationItem> {
    let key = (code(), 1u32..=u32::MAX).prop_map(|(declaration_id, item_no)| ItemKey {
        declaration_id,
        item_no,
    });
    let date = (0i64..40_000).prop_map(|days| {
        NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + chrono::Duration::days(days)
    });
    let hs6 = (1u32..=97, 0u32..10_000)
        .prop_filter("chapter 77 is reserved", |(chapter, _)| *chapter != 77)
        .prop_map(|(chapter, rest)| HsCode::parse(&format!("{chapter:02}{rest:04}")).unwrap());
    let label = prop_oneof![
        Just(None),
        Just(Some(ControlLabel {
            fraud: false,
            critical: 0
        })),
        Just(Some(ControlLabel {
            fraud: true,
            critical: 1
        })),
        Just(Some(ControlLabel {
            fraud: true,
            critical: 2
        })),
    ];
    let codes = prop::collection::vec(code(), 13);
    (
        key,
        date,
        codes,
        proptest::option::of(code()),
        proptest::option::of(code()),
        hs6,
        (rate(), amount(), amount()),
        label,
    )
        .prop_map(
            |(
                key,
                date,
                c,
                seller_id,
                courier_id,
                hs6,
                (tax_rate, net_mass, item_price),
                label,
            )| {
                DeclarationItem {
                    key,
                    date,
                    office_id: c[0].clone(),
                    process_type: c[1].clone(),
                    import_type: c[2].clone(),
                    import_use: c[3].clone(),
                    payment_type: c[4].clone(),
                    transport_mode: c[5].clone(),
                    declarant_id: c[6].clone(),
                    importer_id: c[7].clone(),
                    seller_id,
                    courier_id,
                    hs6,
                    departure_country: c[8].clone(),
                    origin_country: c[9].clone(),
                    tax_rate,
                    tax_type: c[10].clone(),
                    origin_indicator: c[11].clone(),
                    net_mass,
                    item_price,
                    label,
                    extra: Default::default(),
                }
            },
        )
}

/// Writes `items` with columns in `order`; returns the bytes and each record's first line.
fn write_csv(items: &[DeclarationItem], order: &[usize]) -> (Vec<u8>, Vec<u64>) {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = columns(&items[0]);
    writer
        .write_record(order.iter().map(|&i| header[i].0.as_str()))
        .unwrap();
    let mut lines = Vec::new();
    let mut line = 2u64;
    for item in items {
        let cols = columns(item);
        lines.push(line);
        line += 1 + cols
            .iter()
            .map(|(_, v)| v.matches('\n').count() as u64)
            .sum::<u64>();
        writer
            .write_record(order.iter().map(|&i| cols[i].1.as_str()))
            .unwrap();
    }
    (writer.into_inner().unwrap(), lines)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_rows_read_back_as_written(
        items in prop::collection::vec(item(), 1..20),
        order in Just((0..FIELDS).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let (bytes, lines) = write_csv(&items, &order);
        let reader = DeclarationReader::from_reader(Path::new("p.csv"), bytes.as_slice(), &mapping())
            .unwrap();
        let read: Vec<(DeclarationItem, u64)> = reader
            .with_lines()
            .collect::<Result<_, _>>()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected: Vec<(DeclarationItem, u64)> = items.into_iter().zip(lines).collect();
        prop_assert_eq!(read, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(reader) = DeclarationReader::from_reader(Path::new("x.csv"), bytes.as_slice(), &mapping()) {
            for result in reader {
                let _ = result.map_err(|e| e.to_string());
            }
        }
    }

    #[test]
    fn arbitrary_records_never_panic_and_stay_on_their_lines(
        body in prop::collection::vec(
            prop_oneof![
                Just(b','), Just(b'"'), Just(b'\n'), Just(b'\r'), Just(b'0'), Just(b'1'),
                Just(b'-'), Just(b'.'), Just(b'e'), Just(0xff), any::<u8>(),
            ],
            0..2048,
        ),
    ) {
        let mut bytes = mapping_header();
        bytes.extend_from_slice(&body);
        let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n").replace('\r', "\n");
        let total_lines = 1 + text.matches('\n').count() as u64;
        let reader = DeclarationReader::from_reader(Path::new("x.csv"), bytes.as_slice(), &mapping())
            .unwrap();
        let mut previous = 1;
        for result in reader {
            let line = match &result {
                Ok(_) => continue,
                Err(e) => {
                    prop_assert!(!e.to_string().is_empty());
                    e.line
                }
            };
            prop_assert!(line > previous && line <= total_lines, "line {} after {}", line, previous);
            previous = line;
        }
    }
}

fn mapping_header() -> Vec<u8> {
    let dummy = DeclarationItem {
        key: ItemKey {
            declaration_id: "D".into(),
            item_no: 1,
        },
        date: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
        office_id: "x".into(),
        process_type: "x".into(),
        import_type: "x".into(),
        import_use: "x".into(),
        payment_type: "x".into(),
        transport_mode: "x".into(),
        declarant_id: "x".into(),
        importer_id: "x".into(),
        seller_id: None,
        courier_id: None,
        hs6: HsCode::parse("440890").unwrap(),
        departure_country: "x".into(),
        origin_country: "x".into(),
        tax_rate: 0.0,
        tax_type: "x".into(),
        origin_indicator: "x".into(),
        net_mass: 0.0,
        item_price: 0.0,
        label: None,
        extra: Default::default(),
    };
    let names: Vec<String> = columns(&dummy).into_iter().map(|(h, _)| h).collect();
    format!("{}\n", names.join(",")).into_bytes()
}
