use super::*;
use crate::validate::tests::{generate_valid, schema};
use crate::Submission;
use proptest::prelude::*;
use serde_json::json;

fn plus(hours: i32) -> Option<FixedOffset> {
    FixedOffset::east_opt(hours * 3600)
}

fn ok(answers: &[(&str, &str)]) -> Map<String, Value> {
    coerce(schema(), answers.iter().copied(), None).unwrap_or_else(|e| panic!("{e}"))
}

fn refused(answers: &[(&str, &str)]) -> ValidationErrors {
    coerce(schema(), answers.iter().copied(), None).unwrap_err()
}

fn submission(values: Map<String, Value>) -> Submission {
    Submission {
        submission_id: "cli-bd611497f135a11d".to_string(),
        declaration_id: "D-1".to_string(),
        schema_version: "1.0.0".to_string(),
        values,
    }
}

/// What `borderlens controls record --set` sent for these answers before the rules were one:
/// the CLI derives the submission id of a result from this text (a re-run must find the result
/// it stored), so it must not change for answers that were accepted then.
#[test]
fn command_line_answers_read_as_they_did() {
    let cocaine = [
        ("outcome", "Contraband"),
        ("contraband_type", "drugs"),
        ("drug_type", "cocaine"),
        ("drug_form", "powder"),
        ("purity_percent", "87.5"),
        ("quantity", "12"),
        ("quantity_unit", "kg"),
        ("concealment_method", "false_compartment"),
        ("inspection_method", "physical_full, sniffer_dog"),
        ("inspected_at", "2021-01-05T10:30:00+01:00"),
        ("place", "Terminal 3"),
        ("officer_id", "O17"),
        ("container_number", "csqu 305438 3"),
        (
            "remarks",
            "<script>alert(1)</script> \"bricks\"\nbehind panel",
        ),
    ];
    let values = ok(&cocaine);
    assert_eq!(
        Value::Object(values.clone()).to_string(),
        r#"{"concealment_method":"false_compartment","container_number":"csqu 305438 3","contraband_type":"drugs","drug_form":"powder","drug_type":"cocaine","inspected_at":"2021-01-05T10:30:00+01:00","inspection_method":["physical_full","sniffer_dog"],"officer_id":"O17","outcome":"Contraband","place":"Terminal 3","purity_percent":87.5,"quantity":12,"quantity_unit":"kg","remarks":"<script>alert(1)</script> \"bricks\"\nbehind panel"}"#
    );
    // And the stored text (whose SHA-256 recognises a retry) is the one stored before.
    let stored = schema().validate(&submission(values)).unwrap().to_json();
    assert_eq!(
        stored,
        r#"{"submission_id":"cli-bd611497f135a11d","declaration_id":"D-1","schema_version":"1.0.0","outcome":"contraband","inspected_at":"2021-01-05T10:30:00+01:00","anonymised":false,"values":{"concealment_method":"false_compartment","container_number":"CSQU3054383","contraband_type":"drugs","drug_form":"powder","drug_type":"cocaine","inspected_at":"2021-01-05T10:30:00+01:00","inspection_method":["physical_full","sniffer_dog"],"officer_id":"O17","outcome":"contraband","place":"Terminal 3","purity_percent":87.5,"quantity":12.0,"quantity_unit":"kg","remarks":"<script>alert(1)</script> \"bricks\"\nbehind panel"}}"#
    );

    let tobacco = [
        ("outcome", "contraband"),
        ("contraband_type", "tobacco"),
        ("tobacco_product", "cigarettes"),
        ("sticks", "200.0"),
        ("brand", "Marlboro"),
        ("quantity", "1e3"),
        ("quantity_unit", "sticks"),
        ("concealment_method", "none"),
        ("inspection_method", "[\"xray_scan\"]"),
        ("inspected_at", "2021-01-05T10:30:00Z"),
        ("place", "Gate 2"),
        ("officer_id", "O5"),
        ("postal_item_id", "rr 473 124 829 gb"),
    ];
    assert_eq!(
        Value::Object(ok(&tobacco)).to_string(),
        r#"{"brand":"Marlboro","concealment_method":"none","contraband_type":"tobacco","inspected_at":"2021-01-05T10:30:00Z","inspection_method":["xray_scan"],"officer_id":"O5","outcome":"contraband","place":"Gate 2","postal_item_id":"rr 473 124 829 gb","quantity":1000.0,"quantity_unit":"sticks","sticks":200.0,"tobacco_product":"cigarettes"}"#
    );
}

#[test]
fn web_form_answers_read_by_type() {
    let values = coerce(
        schema(),
        [
            ("outcome", "contraband"),
            ("contraband_type", "drugs"),
            ("inspection_method", "documentary"),
            ("inspection_method", "physical_full"),
            ("inspected_at", "2024-03-01T10:15"),
            ("remarks", "  <script>alert(1)</script>  "),
            ("place", ""),
            ("officer_id", "   "),
            ("quantity", " 05 "),
            ("purity_percent", ".5"),
        ],
        plus(1),
    )
    .unwrap();
    assert_eq!(values["outcome"], "contraband");
    assert_eq!(
        values["inspection_method"],
        json!(["documentary", "physical_full"])
    );
    assert_eq!(values["inspected_at"], "2024-03-01T10:15:00+01:00");
    assert_eq!(
        values["remarks"], "  <script>alert(1)</script>  ",
        "text is kept exactly as typed"
    );
    assert_eq!(values["quantity"], json!(5));
    assert_eq!(values["purity_percent"], json!(0.5));
    assert!(!values.contains_key("place"), "an empty answer is left out");
    assert!(!values.contains_key("officer_id"), "so is a blank one");
}

#[test]
fn the_field_type_decides_not_the_look_of_the_text() {
    let values = ok(&[
        ("officer_id", "4711"),
        ("place", "null"),
        ("remarks", "[1, 2]"),
        ("outcome", "true"),
        ("container_number", "12"),
    ]);
    assert_eq!(values["officer_id"], "4711");
    assert_eq!(values["place"], "null");
    assert_eq!(values["remarks"], "[1, 2]");
    assert_eq!(values["outcome"], "true");
    assert_eq!(values["container_number"], "12");
}

#[test]
fn numbers_are_decimal_text_or_refused_naming_the_field() {
    for (text, expected) in [
        ("12", json!(12)),
        ("-3", json!(-3)),
        ("87.5", json!(87.5)),
        ("1e3", json!(1000.0)),
        ("1.5E-1", json!(0.15)),
        ("007", json!(7)),
        (".25", json!(0.25)),
        ("-.5", json!(-0.5)),
        ("1e-400", json!(0.0)),
    ] {
        assert_eq!(ok(&[("quantity", text)])["quantity"], expected, "{text}");
    }
    for text in [
        "12 kg", "+5", "5.", "inf", "NaN", "0x10", "1_000", "1,5", "e3", "-", ".", "1e", "1e+",
        "١٢", "--1",
    ] {
        let errors = refused(&[("quantity", text)]);
        let error = errors
            .get("quantity")
            .unwrap_or_else(|| panic!("{text}: {errors}"));
        assert!(error.reason.contains("is not a number"), "{text}: {error}");
    }
    let errors = refused(&[("duty_evaded", "1e400")]);
    assert_eq!(
        errors.get("duty_evaded").unwrap().reason,
        "'1e400' is too large a number"
    );
}

#[test]
fn local_date_times_get_the_offset_only_when_one_is_given() {
    let read = |text: &str, offset: Option<FixedOffset>| {
        coerce(schema(), [("inspected_at", text)], offset).unwrap()["inspected_at"].clone()
    };
    assert_eq!(
        read("2024-03-01T10:15", plus(-3)),
        "2024-03-01T10:15:00-03:00"
    );
    assert_eq!(
        read(" 2024-03-01T10:15:07 ", plus(0)),
        "2024-03-01T10:15:07+00:00"
    );
    assert_eq!(
        read("2024-03-01T10:15:07.250", plus(9)),
        "2024-03-01T10:15:07.250+09:00"
    );
    // Already with an offset, or not a date-time: as typed, for validation to judge.
    assert_eq!(
        read("2024-03-01T10:15:00+02:00", plus(9)),
        "2024-03-01T10:15:00+02:00"
    );
    assert_eq!(read("yesterday", plus(1)), "yesterday");
    assert_eq!(read("2024-13-01T10:15", plus(1)), "2024-13-01T10:15");
    // The command line has no device offset: the officer types it.
    assert_eq!(read("2024-03-01T10:15", None), "2024-03-01T10:15");
    let result = schema().validate(&submission(ok(&[
        ("outcome", "no_irregularity"),
        ("inspection_method", "documentary"),
        ("inspected_at", "2024-03-01T10:15"),
        ("place", "p"),
        ("officer_id", "o"),
    ])));
    assert!(result
        .unwrap_err()
        .get("inspected_at")
        .unwrap()
        .reason
        .contains("is not an RFC 3339 date-time"));
}

#[test]
fn lists_of_codes() {
    assert_eq!(
        ok(&[("inspection_method", " documentary ,xray_scan")])["inspection_method"],
        json!(["documentary", "xray_scan"])
    );
    assert_eq!(
        ok(&[
            ("inspection_method", "documentary"),
            ("inspection_method", "[\"sniffer_dog\", \"laboratory\"]"),
        ])["inspection_method"],
        json!(["documentary", "sniffer_dog", "laboratory"])
    );
    let errors = refused(&[("inspection_method", "documentary,,xray_scan,")]);
    assert_eq!(
        errors.fields(),
        [
            "outcome",
            "inspection_method[1]",
            "inspection_method[3]",
            "inspected_at",
            "place",
            "officer_id"
        ]
    );
    assert_eq!(
        errors.get("inspection_method[1]").unwrap().reason,
        "empty item (codes are separated by commas)"
    );
    let errors = refused(&[("inspection_method", "[\"documentary\", 7]")]);
    assert!(errors
        .get("inspection_method")
        .unwrap()
        .reason
        .contains("is not a JSON list of codes"));
}

#[test]
fn one_answer_per_field_and_only_the_forms_fields() {
    let errors = refused(&[("outcome", "contraband"), ("outcome", "revenue")]);
    assert_eq!(
        errors.get("outcome").unwrap().reason,
        "answered 2 times, give one answer"
    );
    // A blank repeat is no answer.
    assert_eq!(
        ok(&[("outcome", "revenue"), ("outcome", " ")])["outcome"],
        "revenue"
    );
    let errors = refused(&[(" drug_typ ", "cocaine"), ("vessel", "")]);
    assert_eq!(
        errors.get("drug_typ").unwrap().reason,
        "not in form schema v1.0.0 (did you mean drug_type?)"
    );
    assert_eq!(
        errors.get("vessel").unwrap().reason,
        "not in form schema v1.0.0"
    );
}

#[test]
fn a_refusal_names_every_problem_once_in_form_order() {
    let errors = refused(&[
        ("outcome", "contraband"),
        ("contraband_type", "tobacco"),
        ("drug_type", "cocaine"),
        ("quantity", "12000 cartons"),
        ("quantity_unit", "cartons"),
        ("concealment_method", "none"),
        ("inspection_method", "xray_scan,drone"),
        ("inspected_at", "2024-03-01T10:15:00+01:00"),
        ("place", "Antwerp"),
        ("officer_id", "BE-118"),
        ("vessel", "MSC Gülsün"),
    ]);
    assert_eq!(
        errors.to_string(),
        "drug_type: only asked when contraband_type is drugs; tobacco_product: required when \
         contraband_type is tobacco; quantity: '12000 cartons' is not a number (digits, with . \
         for decimals); inspection_method[1]: 'drone' is not in code list inspection_method \
         (allowed: documentary, physical_partial, physical_full, xray_scan, sniffer_dog, \
         trace_detection, laboratory); vessel: not in form schema v1.0.0"
    );
    // A follow-up of an unreadable answer is neither required nor refused.
    let errors = refused(&[
        ("outcome", "contraband"),
        ("contraband_type", "drugs"),
        ("contraband_type", "tobacco"),
        ("drug_type", "cocaine"),
    ]);
    assert_eq!(
        errors.fields(),
        [
            "contraband_type",
            "quantity",
            "quantity_unit",
            "concealment_method",
            "inspection_method",
            "inspected_at",
            "place",
            "officer_id"
        ]
    );
    let errors = refused(&[
        ("outcome", "no_irregularity"),
        ("inspection_method", "documentary,"),
        ("inspected_at", "2024-03-01T10:15:00+01:00"),
        ("place", "p"),
        ("officer_id", "o"),
    ]);
    assert_eq!(errors.fields(), ["inspection_method[1]"]);
}

/// The text a form field would carry for a JSON answer.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any valid submission, typed into a form field by field, reads back into the same result.
    #[test]
    fn valid_answers_typed_as_text_give_the_same_result(seed in any::<u64>(), local in any::<bool>()) {
        let submission = generate_valid(schema(), seed);
        let typed: Vec<(String, String)> = submission
            .values
            .iter()
            .map(|(name, value)| (name.clone(), as_text(value)))
            .collect();
        let offset = if local { plus(5) } else { None };
        let values = coerce(schema(), typed, offset);
        prop_assert!(values.is_ok(), "{:?}", values);
        let again = Submission { values: values.unwrap(), ..submission.clone() };
        let expected = schema().validate(&submission).unwrap();
        let result = schema().validate(&again).unwrap();
        prop_assert_eq!(result.to_json(), expected.to_json());
    }

    /// Whatever is typed, coerce answers without panicking; a refusal names fields only.
    #[test]
    fn coerce_never_panics(
        answers in prop::collection::vec(
            (
                prop_oneof![
                    proptest::sample::select(
                        schema().fields().iter().map(|f| f.name.clone()).collect::<Vec<_>>()
                    ),
                    ".{0,12}".prop_map(String::from),
                ],
                prop_oneof![
                    "[-+.eE0-9 ,\\[\\]\"a-z:T]{0,24}".prop_map(String::from),
                    ".{0,40}".prop_map(String::from),
                ],
            ),
            0..16,
        ),
        local in any::<bool>(),
    ) {
        let offset = if local { plus(-7) } else { None };
        if let Err(errors) = coerce(schema(), answers, offset) {
            prop_assert!(!errors.errors().is_empty());
        }
    }

    /// Text is kept exactly as typed, whatever it looks like.
    #[test]
    fn text_is_kept_as_typed(text in ".{1,60}") {
        prop_assume!(!text.trim().is_empty());
        let values = coerce(schema(), [("remarks", text.as_str())], None).unwrap();
        prop_assert_eq!(&values["remarks"], &Value::String(text.clone()));
    }

    /// A number written as Rust writes a double reads back as that double.
    #[test]
    fn numbers_read_back_exactly(x in any::<f64>(), whole in any::<i64>()) {
        prop_assume!(x.is_finite());
        // Rust writes huge and tiny doubles without an exponent: both forms must read.
        for text in [x.to_string(), format!("{x:e}")] {
            let values = coerce(schema(), [("duty_evaded", text.as_str())], None).unwrap();
            prop_assert_eq!(values["duty_evaded"].as_f64(), Some(x), "{}", text);
        }
        let values = coerce(schema(), [("sticks", whole.to_string())], None).unwrap();
        prop_assert_eq!(values["sticks"].as_i64(), Some(whole));
    }
}
