use super::*;
use proptest::prelude::*;
use serde_json::json;

pub(crate) fn schema() -> &'static FormSchema {
    FormSchema::builtin()
}

pub(crate) fn submission(values: Value) -> Submission {
    Submission {
        submission_id: "sub-0001".to_string(),
        declaration_id: "24NL0001234567".to_string(),
        schema_version: "1.0.0".to_string(),
        values: values.as_object().cloned().unwrap_or_default(),
    }
}

/// A cocaine seizure in a reefer container, as a phone form would send it.
pub(crate) fn cocaine_values() -> Value {
    json!({
        "outcome": "contraband",
        "contraband_type": "drugs",
        "drug_type": "Cocaine",
        "drug_form": "blocks",
        "purity_percent": 82.5,
        "packaging": "bricks_taped",
        "quantity": 312.4,
        "quantity_unit": "kg",
        "concealment_method": "container_structure",
        "inspection_method": ["xray_scan", "physical_full", "sniffer_dog"],
        "inspected_at": "2024-03-01T10:15:00+01:00",
        "place": "Rotterdam, Maasvlakte II terminal",
        "officer_id": "NL-4711",
        "container_number": "csqu 305438 3",
        "remarks": "Anomaly in the X-ray image of the refrigeration unit.\nTwelve bags found."
    })
}

fn tobacco_values() -> Value {
    json!({
        "outcome": "contraband",
        "contraband_type": "tobacco",
        "tobacco_product": "cigarettes",
        "sticks": 2_400_000,
        "brand": "Marlboro",
        "quantity": 12000,
        "quantity_unit": "cartons",
        "concealment_method": "mixed_in_cover_load",
        "inspection_method": ["xray_scan", "physical_partial"],
        "inspected_at": "2024-03-04T14:00:00Z",
        "place": "Antwerp, Deurganckdok",
        "officer_id": "BE-118"
    })
}

fn clean_values() -> Value {
    json!({
        "outcome": "no_irregularity",
        "inspection_method": ["documentary"],
        "inspected_at": "2024-03-05T09:00:00+01:00",
        "place": "Schiphol cargo",
        "officer_id": "NL-0815"
    })
}

fn with(mut values: Value, changes: Value) -> Value {
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            values.as_object_mut().unwrap().remove(key);
        } else {
            values[key] = value.clone();
        }
    }
    values
}

fn errors_of(values: Value) -> ValidationErrors {
    schema().validate(&submission(values)).unwrap_err()
}

#[test]
fn cocaine_seizure_is_valid_normalised_and_critical() {
    let result = schema().validate(&submission(cocaine_values())).unwrap();
    assert_eq!(result.outcome(), "contraband");
    assert_eq!(result.code("drug_type"), Some("cocaine"));
    assert_eq!(result.code("container_number"), Some("CSQU3054383"));
    assert_eq!(
        result.inspected_at().to_rfc3339(),
        "2024-03-01T10:15:00+01:00"
    );
    assert_eq!(
        result.value("inspection_method"),
        Some(&json!(["xray_scan", "physical_full", "sniffer_dog"]))
    );
    // Free text is kept exactly as typed, line break included.
    assert_eq!(result.value("remarks"), cocaine_values().get("remarks"));
    assert_eq!(
        result.label(schema()),
        Some(ControlLabel {
            fraud: true,
            critical: 2
        })
    );
    assert!(!result.is_anonymised());
}

#[test]
fn tobacco_is_fraud_not_critical() {
    let result = schema().validate(&submission(tobacco_values())).unwrap();
    assert_eq!(result.value("sticks"), Some(&json!(2_400_000)));
    assert_eq!(
        result.label(schema()),
        Some(ControlLabel {
            fraud: true,
            critical: 1
        })
    );
}

#[test]
fn no_irregularity_is_compliant_and_not_controlled_has_no_label() {
    let result = schema().validate(&submission(clean_values())).unwrap();
    assert_eq!(
        result.label(schema()),
        Some(ControlLabel {
            fraud: false,
            critical: 0
        })
    );

    let documentary = with(clean_values(), json!({"outcome": "documentary"}));
    let result = schema().validate(&submission(documentary)).unwrap();
    assert_eq!(
        result.label(schema()),
        Some(ControlLabel {
            fraud: false,
            critical: 0
        })
    );

    let revenue = with(
        clean_values(),
        json!({"outcome": "revenue", "revenue_type": "undervaluation", "duty_evaded": 18250.0}),
    );
    let result = schema().validate(&submission(revenue)).unwrap();
    assert_eq!(
        result.label(schema()),
        Some(ControlLabel {
            fraud: true,
            critical: 1
        })
    );

    let not_controlled = with(clean_values(), json!({"outcome": "not_controlled"}));
    let result = schema().validate(&submission(not_controlled)).unwrap();
    assert_eq!(result.label(schema()), None);
}

#[test]
fn weapons_under_prohibited_restricted_are_critical() {
    let values = with(
        clean_values(),
        json!({"outcome": "prohibited_restricted", "contraband_type": "weapons",
               "quantity": 3, "quantity_unit": "pieces", "concealment_method": "inside_goods"}),
    );
    let result = schema().validate(&submission(values)).unwrap();
    assert_eq!(
        result.label(schema()),
        Some(ControlLabel {
            fraud: true,
            critical: 2
        })
    );
}

#[test]
fn label_needs_the_schema_version_the_result_was_recorded_with() {
    let result = schema().validate(&submission(tobacco_values())).unwrap();
    let mut other: Value = serde_json::to_value(schema()).unwrap();
    other["version"] = "1.1.0".into();
    let other = FormSchema::from_json_str(&other.to_string()).unwrap();
    assert_eq!(result.label(&other), None);
}

#[test]
fn follow_up_not_asked_is_refused_naming_it() {
    let values = with(tobacco_values(), json!({"drug_type": "cocaine"}));
    let errors = errors_of(values);
    assert_eq!(errors.fields(), ["drug_type"]);
    assert_eq!(
        errors.to_string(),
        "drug_type: only asked when contraband_type is drugs"
    );
}

/// An X-ray alarm is recorded with the control (issue 16): asked when the goods were scanned,
/// who raised it asked when there was one; never asked without a scan.
#[test]
fn an_xray_alarm_is_recorded_when_the_goods_were_scanned() {
    let values = with(
        cocaine_values(),
        json!({"nii_alarm": "Alarm", "nii_alarm_by": "both", "nii_scan_id": "syn-1-000010"}),
    );
    let result = schema().validate(&submission(values)).unwrap();
    assert_eq!(result.code("nii_alarm"), Some("alarm"));
    assert_eq!(result.code("nii_alarm_by"), Some("both"));
    let errors = errors_of(with(
        cocaine_values(),
        json!({"nii_alarm": "no_alarm", "nii_alarm_by": "detector"}),
    ));
    assert_eq!(
        errors.to_string(),
        "nii_alarm_by: only asked when nii_alarm is alarm"
    );
    let errors = errors_of(with(
        cocaine_values(),
        json!({"inspection_method": ["physical_full"], "nii_alarm": "alarm"}),
    ));
    assert_eq!(errors.fields(), ["nii_alarm"]);
    assert_eq!(
        errors.to_string(),
        "nii_alarm: only asked when inspection_method is xray_scan"
    );
}

#[test]
fn missing_inspected_at_is_named() {
    let errors = errors_of(with(cocaine_values(), json!({"inspected_at": null})));
    assert_eq!(errors.0, [FieldError::new("inspected_at", "required")]);
    // Blank counts as missing.
    let errors = errors_of(with(cocaine_values(), json!({"inspected_at": "  "})));
    assert_eq!(errors.0, [FieldError::new("inspected_at", "required")]);
}

#[test]
fn missing_follow_up_says_when_it_is_required() {
    let errors = errors_of(with(cocaine_values(), json!({"drug_form": null})));
    assert_eq!(
        errors.to_string(),
        "drug_form: required when contraband_type is drugs"
    );
    let errors = errors_of(with(tobacco_values(), json!({"sticks": null})));
    assert_eq!(
        errors.to_string(),
        "sticks: required when contraband_type is tobacco and tobacco_product is cigarettes or \
         cigars_cigarillos"
    );
}

#[test]
fn unknown_field_is_named_with_a_hint() {
    let errors = errors_of(with(cocaine_values(), json!({"drug_typ": "cocaine"})));
    assert_eq!(
        errors.to_string(),
        "drug_typ: not in form schema v1.0.0 (did you mean drug_type?)"
    );
    let errors = errors_of(with(cocaine_values(), json!({"vessel_name": "Maersk"})));
    assert_eq!(errors.to_string(), "vessel_name: not in form schema v1.0.0");
}

#[test]
fn bad_container_check_digit_is_named() {
    let errors = errors_of(with(
        cocaine_values(),
        json!({"container_number": "CSQU3054384"}),
    ));
    assert_eq!(
        errors.to_string(),
        "container_number: container number 'CSQU3054384' has check digit 4, expected 3"
    );
    let errors = errors_of(with(
        cocaine_values(),
        json!({"postal_item_id": "RR473124828GB"}),
    ));
    assert_eq!(
        errors.to_string(),
        "postal_item_id: postal item id 'RR473124828GB' has check digit 8, expected 9"
    );
}

#[test]
fn several_errors_are_reported_together() {
    let mut bad = submission(with(
        cocaine_values(),
        json!({
            "drug_type": "kokain",
            "purity_percent": 120,
            "inspected_at": "01/03/2024 10:15",
            "officer_id": null,
            "inspection_method": ["xray_scan", "drone", "XRAY_SCAN"],
            "quantity": "312 kg",
            "remarks": "x".repeat(2001),
            "tobacco_product": "cigarettes",
            "colour": "white"
        }),
    ));
    bad.submission_id = String::new();
    bad.schema_version = "0.9.0".to_string();
    let errors = schema().validate(&bad).unwrap_err();
    assert_eq!(
        errors.fields(),
        [
            "submission_id",
            "schema_version",
            "drug_type",
            "purity_percent",
            "tobacco_product",
            "quantity",
            "inspection_method[1]",
            "inspection_method[2]",
            "inspected_at",
            "officer_id",
            "remarks",
            "colour"
        ]
    );
    let reason = |field: &str| errors.get(field).unwrap().reason.clone();
    assert_eq!(reason("submission_id"), "must not be empty");
    assert!(reason("drug_type").starts_with(
        "'kokain' is not in code list drug_type (allowed: cocaine, heroin, cannabis_resin, \
         cannabis_herb, methamphetamine, amphetamine, mdma, fentanyl, ketamine, captagon, ... and \
         1 more)"
    ));
    assert_eq!(reason("purity_percent"), "120 is above the maximum 100");
    assert_eq!(
        reason("tobacco_product"),
        "only asked when contraband_type is tobacco"
    );
    assert_eq!(reason("quantity"), "expected a number, got a string");
    assert!(reason("inspection_method[1]").starts_with("'drone' is not in code list"));
    assert_eq!(reason("inspection_method[2]"), "'xray_scan' is given twice");
    assert!(reason("inspected_at").starts_with("'01/03/2024 10:15' is not an RFC 3339 date-time"));
    assert_eq!(reason("officer_id"), "required");
    assert_eq!(reason("remarks"), "2001 characters, at most 2000 allowed");
    assert!(reason("schema_version").starts_with("'0.9.0' does not match"));
}

#[test]
fn invalid_parent_does_not_cascade_into_its_follow_ups() {
    // contraband_type is wrong, so whether drug_type is asked is unknown: only the parent is
    // reported (and drug_type is still type-checked).
    let errors = errors_of(with(
        cocaine_values(),
        json!({"contraband_type": "narcotics"}),
    ));
    assert_eq!(errors.fields(), ["contraband_type"]);
    let errors = errors_of(with(
        cocaine_values(),
        json!({"contraband_type": "narcotics", "drug_form": 7}),
    ));
    assert_eq!(errors.fields(), ["contraband_type", "drug_form"]);
}

#[test]
fn type_and_range_rules() {
    let errors = errors_of(with(tobacco_values(), json!({"sticks": 10.5})));
    assert_eq!(
        errors.to_string(),
        "sticks: expected a whole number, got 10.5"
    );
    let result = schema().validate(&submission(with(
        tobacco_values(),
        json!({"sticks": 200.0}),
    )));
    assert_eq!(result.unwrap().value("sticks"), Some(&json!(200)));
    let errors = errors_of(with(tobacco_values(), json!({"sticks": -1})));
    assert_eq!(errors.to_string(), "sticks: -1 is below the minimum 0");
    let errors = errors_of(with(tobacco_values(), json!({"sticks": 1e300})));
    assert_eq!(errors.to_string(), "sticks: 1e300 is too large");
    let errors = errors_of(with(
        clean_values(),
        json!({"outcome": ["no_irregularity"]}),
    ));
    assert_eq!(
        errors.to_string(),
        "outcome: expected a code (a string), got a list"
    );
    let errors = errors_of(with(
        clean_values(),
        json!({"inspection_method": "documentary"}),
    ));
    assert_eq!(
        errors.to_string(),
        "inspection_method: expected a list of codes, got a string"
    );
    let errors = errors_of(with(clean_values(), json!({"officer_id": "NL\n0815"})));
    assert_eq!(
        errors.to_string(),
        "officer_id: contains a line break or control character (U+000A)"
    );
    let errors = errors_of(with(clean_values(), json!({"remarks": "bell\u{7}"})));
    assert_eq!(
        errors.to_string(),
        "remarks: contains a control character (U+0007)"
    );
}

#[test]
fn remarks_are_stored_as_typed() {
    let markup = "<script>alert('x')</script> & \"quotes\"  ";
    let result = schema()
        .validate(&submission(with(
            clean_values(),
            json!({"remarks": markup}),
        )))
        .unwrap();
    assert_eq!(result.value("remarks"), Some(&json!(markup)));
}

#[test]
fn envelope_problems_are_named() {
    let long = "x".repeat(129);
    let mut bad = submission(clean_values());
    bad.declaration_id = long;
    bad.submission_id = "a\u{0}b".to_string();
    let errors = schema().validate(&bad).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "submission_id: contains a control character (U+0000); declaration_id: 129 characters, \
         at most 128 allowed"
    );
}

#[test]
fn parse_submission_reports_syntax_and_shape() {
    let errors = schema()
        .parse_submission("{\"submission_id\": ")
        .unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].field, "");
    assert!(
        errors.0[0].reason.starts_with("not valid JSON: "),
        "{errors}"
    );

    let errors = schema().parse_submission("[1, 2]").unwrap_err();
    assert_eq!(errors.to_string(), "expected a JSON object, got a list");

    let errors = schema()
        .parse_submission(
            r#"{"submission_id": 5, "schema_version": "1.0.0", "values": [], "outcome": "x"}"#,
        )
        .unwrap_err();
    assert_eq!(
        errors.to_string(),
        "submission_id: expected a string, got a number; declaration_id: required; values: \
         expected an object of answers, got a list; outcome: unknown key (a submission has \
         submission_id, declaration_id, schema_version and values; form fields go in values)"
    );

    let text = serde_json::to_string(&submission(cocaine_values())).unwrap();
    let parsed = schema().parse_submission(&text).unwrap();
    assert_eq!(
        parsed,
        schema().validate(&submission(cocaine_values())).unwrap()
    );
}

#[test]
fn read_submission_takes_the_envelope_apart_or_names_every_problem() {
    let value = serde_json::to_value(submission(cocaine_values())).unwrap();
    let read = schema().read_submission(value).unwrap();
    assert_eq!(read, submission(cocaine_values()));

    // A wrong shape: the same problems, answers included, as parse_submission names them.
    for text in [
        r#"{"submission_id": 5, "schema_version": "1.0.0", "values": [], "outcome": "x"}"#,
        r#"{"submission_id": "s", "declaration_id": "d", "schema_version": "1.0.0",
            "values": {"outcome": "lost", "vessel": "x"}, "priority": 1}"#,
        r#"{"submission_id": "s", "declaration_id": "d", "schema_version": "1.0.0"}"#,
        "[1, 2]",
        "null",
    ] {
        let value: Value = serde_json::from_str(text).unwrap();
        let read = schema().read_submission(value).unwrap_err();
        assert_eq!(read, schema().parse_submission(text).unwrap_err(), "{text}");
    }
    let value = json!({"submission_id": "s", "declaration_id": "d", "schema_version": "1.0.0",
        "values": {"outcome": "lost", "vessel": "x"}, "priority": 1});
    assert_eq!(
        schema().read_submission(value).unwrap_err().fields(),
        [
            "priority",
            "outcome",
            "inspection_method",
            "inspected_at",
            "place",
            "officer_id",
            "vessel"
        ]
    );
}

/// The stored text is what idempotency compares (by its SHA-256): pinned for a fixed input, so
/// that a retry of a result stored by an earlier release is still recognised.
#[test]
fn stored_text_is_pinned() {
    use sha2::{Digest, Sha256};
    let result = schema().validate(&submission(cocaine_values())).unwrap();
    let stored = result.to_json();
    assert_eq!(
        stored,
        r#"{"submission_id":"sub-0001","declaration_id":"24NL0001234567","schema_version":"1.0.0","outcome":"contraband","inspected_at":"2024-03-01T10:15:00+01:00","anonymised":false,"values":{"concealment_method":"container_structure","container_number":"CSQU3054383","contraband_type":"drugs","drug_form":"blocks","drug_type":"cocaine","inspected_at":"2024-03-01T10:15:00+01:00","inspection_method":["xray_scan","physical_full","sniffer_dog"],"officer_id":"NL-4711","outcome":"contraband","packaging":"bricks_taped","place":"Rotterdam, Maasvlakte II terminal","purity_percent":82.5,"quantity":312.4,"quantity_unit":"kg","remarks":"Anomaly in the X-ray image of the refrigeration unit.\nTwelve bags found."}}"#
    );
    assert_eq!(stored, serde_json::to_string(&result).unwrap());
    assert_eq!(
        borderlens_domain::hex::encode(&Sha256::digest(stored.as_bytes())),
        STORED_SHA256
    );
}

const STORED_SHA256: &str = "40c5ac23f6c31a74a0b74c50190bde5fc4e5cdd40d695e3fd467fc0096306d89";

#[test]
fn stored_results_read_back_equal() {
    for values in [cocaine_values(), tobacco_values(), clean_values()] {
        let result = schema().validate(&submission(values)).unwrap();
        assert_eq!(schema().read_stored(&result.to_json()).unwrap(), result);
    }
    // An anonymised result (imported from a partner) reads back anonymised.
    let key =
        crate::exchange::AnonymiseKey::new(b"a secret of the sending administration").unwrap();
    let result = schema().validate(&submission(cocaine_values())).unwrap();
    let document = crate::exchange::export(&[result], "NL", Some(&key)).unwrap();
    let shared = crate::exchange::import(&document.to_json(), schema()).unwrap();
    let again = schema().read_stored(&shared[0].to_json()).unwrap();
    assert!(again.is_anonymised());
    assert_eq!(again, shared[0]);

    let errors = schema().read_stored("{\"values\": {}}").unwrap_err();
    assert!(
        errors
            .to_string()
            .starts_with("not a stored control result: "),
        "{errors}"
    );
    let mut tampered: Value = serde_json::from_str(
        &schema()
            .validate(&submission(clean_values()))
            .unwrap()
            .to_json(),
    )
    .unwrap();
    tampered["values"]["outcome"] = json!("lost");
    let errors = schema().read_stored(&tampered.to_string()).unwrap_err();
    assert_eq!(errors.fields(), ["outcome"]);
}

#[test]
fn result_round_trips_through_its_submission() {
    for values in [cocaine_values(), tobacco_values(), clean_values()] {
        let result = schema().validate(&submission(values)).unwrap();
        let again = schema().validate(&result.to_submission()).unwrap();
        assert_eq!(again, result);
        let text = serde_json::to_string(&result.to_submission()).unwrap();
        assert_eq!(schema().parse_submission(&text).unwrap(), result);
    }
}

#[test]
fn control_result_serialises_for_reports() {
    let result = schema().validate(&submission(clean_values())).unwrap();
    let value = serde_json::to_value(&result).unwrap();
    assert_eq!(value["outcome"], "no_irregularity");
    assert_eq!(value["inspected_at"], "2024-03-05T09:00:00+01:00");
    assert_eq!(value["values"]["officer_id"], "NL-0815");
}

#[test]
fn conditions_on_codes_fields_and_any() {
    // A v1.1 draft: a laboratory reference asked when the laboratory was used or drugs seized.
    let mut draft: Value = serde_json::to_value(schema()).unwrap();
    draft["version"] = "1.1.0".into();
    draft["fields"].as_array_mut().unwrap().push(json!({
        "name": "lab_reference", "label": "Laboratory reference", "type": "text",
        "max_length": 40, "required": true,
        "when": {"any": [
            {"field": "inspection_method", "in": ["laboratory"]},
            {"field": "contraband_type", "in": ["drugs", "precursors"]}
        ]}
    }));
    let draft = FormSchema::from_json_str(&draft.to_string()).unwrap();
    let condition = draft.field("lab_reference").unwrap().when.clone().unwrap();
    assert_eq!(
        condition.to_string(),
        "inspection_method is laboratory or contraband_type is drugs or precursors"
    );
    assert_eq!(condition.fields(), ["inspection_method", "contraband_type"]);
    let mut clean = submission(with(
        clean_values(),
        json!({"inspection_method": ["documentary", "LABORATORY"]}),
    ));
    clean.schema_version = "1.1.0".into();
    let errors = draft.validate(&clean).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "lab_reference: required when inspection_method is laboratory or contraband_type is \
         drugs or precursors"
    );
    clean
        .values
        .insert("lab_reference".into(), json!("LAB-2024-0042"));
    assert!(draft.validate(&clean).is_ok());
    clean
        .values
        .insert("inspection_method".into(), json!(["documentary"]));
    let errors = draft.validate(&clean).unwrap_err();
    assert_eq!(errors.fields(), ["lab_reference"]);
    assert!(errors.0[0].reason.starts_with("only asked when"));
}

#[test]
fn edit_distance_is_levenshtein() {
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("drug_typ", "drug_type"), 1);
}

// ---- generated submissions ---------------------------------------------------------------------

/// SplitMix64, local to the tests.
pub(crate) struct TestRng(u64);

impl TestRng {
    pub(crate) fn new(seed: u64) -> TestRng {
        TestRng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn random_case(rng: &mut TestRng, text: &str) -> String {
    if rng.coin() {
        text.to_string()
    } else {
        text.to_uppercase()
    }
}

fn random_text(rng: &mut TestRng, max: usize, multiline: bool) -> String {
    const CHARS: &[char] = &[
        'a', 'Z', '0', ' ', '-', 'é', 'ß', '中', '<', '&', '"', '\'', '🚢',
    ];
    let length = 1 + rng.below(max.min(80));
    let mut text: String = (0..length)
        .map(|_| {
            if multiline && rng.below(10) == 0 {
                '\n'
            } else {
                CHARS[rng.below(CHARS.len())]
            }
        })
        .collect();
    if text.trim().is_empty() {
        text.push('x');
    }
    text
}

fn random_container(rng: &mut TestRng) -> String {
    let letters: String = (0..3)
        .map(|_| char::from(b'A' + rng.below(26) as u8))
        .collect();
    let category = ['U', 'J', 'Z'][rng.below(3)];
    let serial: String = (0..6)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect();
    let first10 = format!("{letters}{category}{serial}");
    let check = borderlens_domain::iso6346_check_digit(&first10).unwrap();
    let text = format!("{first10}{check}");
    if rng.coin() {
        text.to_lowercase()
    } else {
        format!("{}-{}-{}", &text[..4], &text[4..10], &text[10..])
    }
}

fn random_s10(rng: &mut TestRng) -> String {
    let service: String = (0..2)
        .map(|_| char::from(b'A' + rng.below(26) as u8))
        .collect();
    let serial: String = (0..8)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect();
    let check = borderlens_domain::s10_check_digit(&serial).unwrap();
    let country: String = (0..2)
        .map(|_| char::from(b'A' + rng.below(26) as u8))
        .collect();
    format!("{service}{serial}{check}{country}")
}

fn random_datetime(rng: &mut TestRng) -> String {
    let seconds = 946_684_800 + rng.below(1_300_000_000) as i64;
    let offset = FixedOffset::east_opt((rng.below(105) as i32 - 48) * 900).unwrap();
    let utc = DateTime::from_timestamp(seconds, 0).unwrap();
    let local = utc.with_timezone(&offset);
    if offset.local_minus_utc() == 0 && rng.coin() {
        local.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        local.to_rfc3339()
    }
}

/// A valid submission for `schema`: every asked field answered when required (and with
/// probability 1/2 otherwise), codes in random case, identifiers in loose forms.
pub(crate) fn generate_valid(schema: &FormSchema, seed: u64) -> Submission {
    let mut rng = TestRng::new(seed);
    let mut answers: BTreeMap<String, Value> = BTreeMap::new();
    let mut values = Map::new();
    let no_broken = BTreeSet::new();
    for field in schema.fields() {
        let asked = field
            .when
            .as_ref()
            .map_or(Some(true), |c| evaluate(c, &answers, &no_broken));
        if asked != Some(true) || (!field.required && rng.coin()) {
            continue;
        }
        let codes = || -> Vec<String> {
            let list = schema
                .code_list(field.code_list.as_deref().unwrap())
                .unwrap();
            list.iter().map(|c| c.code.clone()).collect()
        };
        let (given, normal) = match field.kind {
            FieldType::Code => {
                let all = codes();
                let code = all[rng.below(all.len())].clone();
                (
                    Value::String(random_case(&mut rng, &code)),
                    Value::String(code),
                )
            }
            FieldType::Codes => {
                let mut all = codes();
                let count = 1 + rng.below(all.len());
                for i in (1..all.len()).rev() {
                    all.swap(i, rng.below(i + 1));
                }
                all.truncate(count);
                let given = all
                    .iter()
                    .map(|c| Value::String(random_case(&mut rng, c)))
                    .collect();
                (Value::Array(given), Value::from(all))
            }
            FieldType::Text => {
                let text = random_text(&mut rng, field.max_length.unwrap(), field.multiline);
                (Value::String(text.clone()), Value::String(text))
            }
            FieldType::Number | FieldType::Integer => {
                let min = field.min.unwrap_or(-1e6);
                let max = field.max.unwrap_or(min + 1e7);
                let mut x = min + rng.unit() * (max - min);
                if field.kind == FieldType::Integer {
                    x = x.floor().max(min);
                    (Value::from(x as i64), Value::from(x as i64))
                } else {
                    (Value::from(x), Value::from(x))
                }
            }
            FieldType::Datetime => {
                let text = random_datetime(&mut rng);
                (Value::String(text.clone()), Value::String(text))
            }
            FieldType::ContainerNumber => {
                let text = random_container(&mut rng);
                (Value::String(text.clone()), Value::String(text))
            }
            FieldType::S10Id => {
                let text = random_s10(&mut rng);
                (Value::String(text.clone()), Value::String(text))
            }
        };
        values.insert(field.name.clone(), given);
        answers.insert(field.name.clone(), normal);
    }
    Submission {
        submission_id: format!("sub-{seed}"),
        declaration_id: format!("decl-{}", seed % 1000),
        schema_version: schema.version().to_string(),
        values,
    }
}

/// Arbitrary JSON, biased towards the form's field names and codes.
pub(crate) fn arbitrary_json() -> impl Strategy<Value = Value> {
    let schema = schema();
    let mut words: Vec<String> = schema.fields().iter().map(|f| f.name.clone()).collect();
    for list in schema.code_lists().values() {
        words.extend(list.iter().map(|c| c.code.clone()));
    }
    words.extend(
        [
            "CSQU3054383",
            "RR473124829GB",
            "2024-03-01T10:15:00Z",
            "2024-03-01",
        ]
        .map(String::from),
    );
    let word = proptest::sample::select(words);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::from),
        word.clone().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 40, 8, move |inner| {
        let key = prop_oneof![word.clone(), "[a-z_]{0,12}".prop_map(String::from)];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_submission_never_panics_on_text(text in "[{}\\[\\]\",:0-9a-z_ .\\-]{0,200}|.{0,200}") {
        let _ = schema().parse_submission(&text);
    }

    #[test]
    fn parse_submission_never_panics_on_json(value in arbitrary_json()) {
        let _ = schema().parse_submission(&value.to_string());
    }

    #[test]
    fn validate_never_panics_on_arbitrary_values(
        values in prop::collection::btree_map(
            prop_oneof![
                proptest::sample::select(
                    schema().fields().iter().map(|f| f.name.clone()).collect::<Vec<_>>()
                ),
                ".{0,12}".prop_map(String::from),
            ],
            arbitrary_json(),
            0..20,
        ),
        seed in any::<u64>(),
    ) {
        // Start from a valid submission and overwrite some answers with junk.
        let mut submission = generate_valid(schema(), seed);
        submission.values.extend(values);
        if let Ok(result) = schema().validate(&submission) {
            prop_assert_eq!(schema().validate(&result.to_submission()).unwrap(), result);
        }
    }

    #[test]
    fn valid_generated_submissions_round_trip(seed in any::<u64>()) {
        let submission = generate_valid(schema(), seed);
        let result = schema().validate(&submission);
        prop_assert!(result.is_ok(), "{:?}\n{}", submission, result.unwrap_err());
        let result = result.unwrap();
        let label = result.label(schema());
        prop_assert_eq!(label.is_none(), result.outcome() == "not_controlled");
        prop_assert_eq!(schema().validate(&result.to_submission()).unwrap(), result.clone());
        let text = serde_json::to_string(&result.to_submission()).unwrap();
        prop_assert_eq!(schema().parse_submission(&text).unwrap(), result);
    }
}
