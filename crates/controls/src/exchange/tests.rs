use super::*;
use crate::validate::tests::{cocaine_values, generate_valid, schema, submission};
use borderlens_domain::ControlLabel;
use proptest::prelude::*;
use serde_json::json;

fn key() -> AnonymiseKey {
    AnonymiseKey::new(b"a secret of the sending administration").unwrap()
}

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-03-02T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn results() -> Vec<ControlResult> {
    let mut out = vec![schema().validate(&submission(cocaine_values())).unwrap()];
    for seed in 0..20 {
        out.push(schema().validate(&generate_valid(schema(), seed)).unwrap());
    }
    out
}

#[test]
fn hmac_matches_rfc_4231() {
    // Test case 2.
    assert_eq!(
        hex::encode(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // Test case 6: a key longer than the block is hashed first.
    assert_eq!(
        hex::encode(&hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn pseudonyms_are_fixed_for_a_key_and_an_id() {
    // Computed by the hand-written HMAC this crate had before it used the `hmac` crate: an
    // exchange partner's stored pseudonyms must keep matching.
    assert_eq!(
        key().declaration_pseudonym("DECL-2024-000123"),
        "379e12ea5e3973b2299fd6a7d993667b1f179005ee87769be5d4bd7777d2bf31"
    );
    assert_eq!(
        key().submission_pseudonym("sub-7f3a"),
        "ae41fb537a028aed75a0701c42f8670b57afe539f0cce351b28daf50f6333572"
    );
    // A key longer than SHA-256's block (64 bytes) is hashed first.
    let long: Vec<u8> = (0..100).collect();
    assert_eq!(
        AnonymiseKey::new(&long)
            .unwrap()
            .declaration_pseudonym("DECL, \"quoted\""),
        "085d1dd8d57a5d92ea081cb43b88ae3b4378661b2cbaebb41a51937eeb184175"
    );
}

#[test]
fn short_keys_are_refused_and_debug_hides_the_key() {
    assert_eq!(
        AnonymiseKey::new(b"short").unwrap_err().to_string(),
        "anonymisation key: 5 bytes, at least 16 needed"
    );
    assert_eq!(format!("{:?}", key()), "AnonymiseKey(38 bytes)");
}

#[test]
fn plain_round_trip_gives_the_same_results() {
    let results = results();
    let document = export_at(&results, "NL", None, at()).unwrap();
    assert!(!document.anonymised);
    assert_eq!(document.generated_at, at());
    let json = document.to_json();
    assert!(json.contains("\"generated_at\": \"2024-03-02T08:00:00Z\""));
    let imported = import(&json, schema()).unwrap();
    assert_eq!(imported, results);
    let parsed: ExchangeDocument = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, document);
}

#[test]
fn anonymised_round_trip_keeps_findings_but_not_identities() {
    let results = results();
    let document = export_at(&results, "NL", Some(&key()), at()).unwrap();
    assert!(document.anonymised);
    let imported = import(&document.to_json(), schema()).unwrap();
    assert_eq!(imported.len(), results.len());
    for (original, shared) in results.iter().zip(&imported) {
        assert!(shared.is_anonymised());
        assert_ne!(shared.declaration_id(), original.declaration_id());
        assert_eq!(
            shared.declaration_id(),
            key().declaration_pseudonym(original.declaration_id())
        );
        assert_eq!(shared.declaration_id().len(), 64);
        assert_ne!(shared.submission_id(), original.submission_id());
        assert_eq!(shared.outcome(), original.outcome());
        assert_eq!(shared.label(schema()), original.label(schema()));
        for field in [
            "officer_id",
            "place",
            "remarks",
            "container_number",
            "postal_item_id",
        ] {
            assert_eq!(shared.value(field), None, "{field}");
        }
        let date = original
            .inspected_at()
            .date_naive()
            .format("%Y-%m-%d")
            .to_string();
        assert_eq!(shared.code("inspected_at"), Some(date.as_str()));
        assert_eq!(
            shared.inspected_at().date_naive(),
            original.inspected_at().date_naive()
        );
        for (field, value) in original.values() {
            let rule = schema().field(field).unwrap().anonymise;
            if rule == Anonymise::Keep {
                assert_eq!(shared.value(field), Some(value), "{field}");
            }
        }
    }
    let cocaine = &imported[0];
    assert_eq!(cocaine.code("drug_type"), Some("cocaine"));
    assert_eq!(
        cocaine.code("concealment_method"),
        Some("container_structure")
    );
    assert_eq!(
        cocaine.label(schema()),
        Some(ControlLabel {
            fraud: true,
            critical: 2
        })
    );

    // The same declaration gets the same pseudonym under the same key, another under another.
    let again = export_at(&results[..1], "NL", Some(&key()), at()).unwrap();
    assert_eq!(
        again.results[0].declaration_id,
        document.results[0].declaration_id
    );
    let other = AnonymiseKey::new(b"another administration secret").unwrap();
    let other = export_at(&results[..1], "NL", Some(&other), at()).unwrap();
    assert_ne!(
        other.results[0].declaration_id,
        document.results[0].declaration_id
    );

    // Imported anonymised results can be passed on, anonymised only.
    let err = export_at(&imported, "BE", None, at()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot export: results[0] is anonymised and can only be exported anonymised"
    );
    let passed_on = export_at(&imported, "BE", Some(&key()), at()).unwrap();
    assert_eq!(
        import(&passed_on.to_json(), schema()).unwrap().len(),
        results.len()
    );
}

#[test]
fn anonymised_document_must_not_carry_personal_fields() {
    let results = results();
    let mut document = export_at(&results[..1], "NL", Some(&key()), at()).unwrap();
    document.results[0]
        .values
        .insert("officer_id".into(), json!("NL-4711"));
    document.results[0]
        .values
        .insert("inspected_at".into(), json!("2024-03-01T10:15:00+01:00"));
    let err = import(&document.to_json(), schema()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "exchange document: results[0].inspected_at: '2024-03-01T10:15:00+01:00' is not a date \
         YYYY-MM-DD (anonymised results carry only the date); results[0].officer_id: removed by \
         anonymisation: must not appear in an anonymised result"
    );
}

#[test]
fn import_errors_name_record_and_field() {
    let results = results();
    let mut document = export_at(&results[..4], "NL", None, at()).unwrap();
    document.results[0]
        .values
        .insert("drug_type".into(), json!("tobacco"));
    document.results[3].values.remove("inspected_at");
    document.results[2].submission_id = document.results[1].submission_id.clone();
    let err = import(&document.to_json(), schema()).unwrap_err();
    let ExchangeError::Invalid(errors) = &err else {
        panic!("{err}")
    };
    assert_eq!(
        errors.fields(),
        [
            "results[0].drug_type",
            "results[2].submission_id",
            "results[3].inspected_at"
        ]
    );
    assert!(errors.0[0]
        .reason
        .starts_with("'tobacco' is not in code list drug_type"));
    assert_eq!(errors.0[1].reason, "same as results[1]");
    assert_eq!(errors.0[2].reason, "required");
}

#[test]
fn import_checks_the_document() {
    assert!(matches!(import("{", schema()), Err(ExchangeError::Json(_))));
    let err = import("[]", schema()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "exchange document: expected a JSON object, got a list"
    );

    let err = import(
        r#"{"format": "other", "format_version": 3, "schema_version": "2.0.0"}"#,
        schema(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "exchange document: format: is 'other', expected 'borderlens-control-results'; \
         format_version: 3 is not supported (this reader knows 1 and 2); schema_version: results were \
         recorded with form schema v2.0.0, this import validates with v1.0.0: load that \
         version's schema"
    );

    let err = import(
        r#"{"format": "borderlens-control-results", "format_version": 1,
            "schema_version": "1.0.0", "sender": "", "generated_at": "yesterday",
            "anonymised": "yes", "extra": 1, "results": [7, {"values": {}}]}"#,
        schema(),
    )
    .unwrap_err();
    let ExchangeError::Invalid(errors) = &err else {
        panic!("{err}")
    };
    assert_eq!(
        errors.fields(),
        [
            "sender",
            "generated_at",
            "anonymised",
            "extra",
            "results[0]",
            "results[1].submission_id",
            "results[1].declaration_id",
            "results[1].outcome",
            "results[1].inspection_method",
            "results[1].inspected_at",
            "results[1].place",
            "results[1].officer_id",
        ]
    );
}

#[test]
fn export_refuses_mixed_versions_and_bad_senders() {
    let results = results();
    assert_eq!(
        export_at(&results, " ", None, at())
            .unwrap_err()
            .to_string(),
        "cannot export: sender must not be empty"
    );
    let mut other: Value = serde_json::to_value(schema()).unwrap();
    other["version"] = "1.1.0".into();
    let other = FormSchema::from_json_str(&other.to_string()).unwrap();
    let err = export_with_schema(&other, &results, "NL", None, at()).unwrap_err();
    assert!(
        err.to_string()
            .contains("results[0] was recorded with form schema v1.0.0"),
        "{err}"
    );
    let empty = export_at(&[], "NL", None, at()).unwrap();
    assert_eq!(empty.schema_version, "1.0.0");
    assert_eq!(import(&empty.to_json(), schema()).unwrap(), []);
}

/// The keys a written document has are the ones its JSON Schema declares, and the schema's
/// required keys are always written.
#[test]
fn json_schema_matches_what_we_write() {
    let json_schema: Value = serde_json::from_str(JSON_SCHEMA).unwrap();
    assert_eq!(
        json_schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let keys = |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };
    let strings = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let results = results();
    let contexts = vec![Some(full_context()); results.len()];
    let document = export_with_context(schema(), &results, &contexts, "NL", None, at()).unwrap();
    let written = serde_json::to_value(&document).unwrap();
    assert_eq!(keys(&written), keys(&json_schema["properties"]));
    assert!(strings(&json_schema["required"]).is_subset(&keys(&written)));
    assert_eq!(json_schema["properties"]["format"]["const"], FORMAT);
    assert_eq!(
        json_schema["properties"]["format_version"]["enum"],
        serde_json::json!(READ_VERSIONS)
    );
    assert_eq!(written["format_version"], FORMAT_VERSION);
    let result_schema = &json_schema["$defs"]["result"];
    let context_schema = &json_schema["$defs"]["context"];
    for result in written["results"].as_array().unwrap() {
        assert_eq!(keys(result), keys(&result_schema["properties"]));
        assert_eq!(
            keys(&result["context"]),
            keys(&context_schema["properties"])
        );
        for value in result["values"].as_object().unwrap().values() {
            assert!(value.is_string() || value.is_number() || value.is_array());
        }
    }
}

/// docs/controls.md, split into fenced blocks: (prose since the previous block, language, body).
fn docs_blocks() -> Vec<(String, String, String)> {
    let docs = include_str!("../../../../docs/controls.md");
    let mut blocks = Vec::new();
    let mut prose = String::new();
    let mut lines = docs.lines();
    while let Some(line) = lines.next() {
        if let Some(language) = line.trim().strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push((
                std::mem::take(&mut prose),
                language.to_string(),
                body.join("\n"),
            ));
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    blocks
}

/// Every JSON example in docs/controls.md is checked: exchange documents by [`import`],
/// submissions by [`FormSchema::parse_submission`]. An example whose introduction says
/// "refused" must fail, with exactly the messages of the `text` block that follows it (one
/// problem per line); any other must pass.
#[test]
fn documentation_examples_are_checked() {
    let blocks = docs_blocks();
    let mut checked = 0;
    for (i, (prose, language, text)) in blocks.iter().enumerate() {
        if language != "json" {
            continue;
        }
        let value: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("docs example is not JSON ({e}):\n{text}"));
        let outcome: Result<(), Vec<String>> = if value.get("format").is_some() {
            import(text, schema()).map(|_| ()).map_err(|e| match e {
                ExchangeError::Invalid(errors) => {
                    errors.0.iter().map(ToString::to_string).collect()
                }
                other => vec![other.to_string()],
            })
        } else if value.get("values").is_some() {
            schema()
                .parse_submission(text)
                .map(|_| ())
                .map_err(|errors| errors.0.iter().map(ToString::to_string).collect())
        } else {
            continue;
        };
        checked += 1;
        let last_paragraph = prose.trim_end().rsplit("\n\n").next().unwrap_or_default();
        match (last_paragraph.contains("refused"), outcome) {
            (false, Err(e)) => panic!("docs example refused:\n{}\n{text}", e.join("\n")),
            (true, Ok(())) => panic!("docs example should be refused:\n{text}"),
            (true, Err(found)) => {
                let expected = blocks
                    .get(i + 1)
                    .filter(|(_, language, _)| language == "text")
                    .map(|(_, _, body)| body.clone())
                    .unwrap_or_else(|| panic!("no text block after refused example:\n{text}"));
                assert_eq!(found.join("\n"), expected.trim());
            }
            (false, Ok(())) => {}
        }
    }
    assert!(checked >= 6, "found only {checked} examples");
}

/// The field table and code lists of docs/controls.md list what the built-in schema has.
#[test]
fn documentation_lists_every_field_and_code() {
    let docs = include_str!("../../../../docs/controls.md");
    for field in schema().fields() {
        let row = format!("| `{}` | {} |", field.name, field.kind.name());
        assert!(docs.contains(&row), "docs lack the row {row}");
    }
    for (name, codes) in schema().code_lists() {
        let heading = format!("\n### {name}\n");
        let start = docs
            .find(&heading)
            .unwrap_or_else(|| panic!("docs lack {heading}"));
        let section = &docs[start + heading.len()..];
        let section = &section[..section.find("\n#").unwrap_or(section.len())];
        let rows = section.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(rows, codes.len(), "code list {name}");
        for code in codes {
            assert!(
                section.contains(&format!("| `{}` |", code.code)),
                "{name}: {}",
                code.code
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn exports_round_trip(seeds in prop::collection::vec(any::<u64>(), 0..12), anonymise in any::<bool>()) {
        let results: Vec<ControlResult> = seeds
            .iter()
            .enumerate()
            .map(|(i, seed)| {
                let mut s = generate_valid(schema(), *seed);
                s.submission_id = format!("sub-{i}");
                schema().validate(&s).unwrap()
            })
            .collect();
        let key = key();
        let document = export_at(&results, "NL", anonymise.then_some(&key), at()).unwrap();
        let imported = import(&document.to_json(), schema()).unwrap();
        if anonymise {
            prop_assert_eq!(imported.len(), results.len());
            for (a, b) in results.iter().zip(&imported) {
                prop_assert_eq!(a.label(schema()), b.label(schema()));
            }
        } else {
            prop_assert_eq!(imported, results);
        }
    }

    #[test]
    fn import_never_panics(value in crate::validate::tests::arbitrary_json(), wrap in any::<bool>()) {
        let text = if wrap {
            json!({"format": FORMAT, "format_version": 1, "schema_version": "1.0.0",
                   "sender": "NL", "generated_at": "2024-03-02T08:00:00Z",
                   "anonymised": value.is_object(), "results": [value]}).to_string()
        } else {
            value.to_string()
        };
        let _ = import(&text, schema());
    }
}

fn full_context() -> ResultContext {
    ResultContext {
        origin_country: Some("CN".into()),
        departure_country: Some("HK".into()),
        transport_mode: Some("10".into()),
        hs_chapter: Some("85".into()),
        selection_probability: Some(0.25),
    }
}

/// Format version 2 carries each result's context through an anonymised export and back;
/// a version 1 document is still read; a context that could carry anything but codes is refused.
#[test]
fn context_goes_through_and_is_checked() {
    let results = results();
    let key = AnonymiseKey::new(b"a key of sixteen bytes").unwrap();
    let mut contexts = vec![None; results.len()];
    contexts[0] = Some(full_context());
    let document =
        export_with_context(schema(), &results, &contexts, "NL", Some(&key), at()).unwrap();
    assert_eq!(document.format_version, 2);
    let read = import_document(&document.to_json(), schema()).unwrap();
    assert_eq!(read.sender, "NL");
    assert_eq!(read.format_version, 2);
    assert!(read.anonymised);
    assert_eq!(read.generated_at, at());
    assert_eq!(read.results[0].1, Some(full_context()));
    assert_eq!(read.results[0].1.as_ref().unwrap().route(), "HK/10");
    assert!(read.results[1..].iter().all(|(_, c)| c.is_none()));

    // The same document written as version 1, without contexts, still reads.
    let mut v1: Value = serde_json::from_str(&document.to_json()).unwrap();
    v1["format_version"] = 1.into();
    for result in v1["results"].as_array_mut().unwrap() {
        result.as_object_mut().unwrap().remove("context");
    }
    let read = import_document(&v1.to_string(), schema()).unwrap();
    assert_eq!(read.format_version, 1);
    assert!(read.results.iter().all(|(_, c)| c.is_none()));
    // ... but a version 1 document cannot carry a context.
    v1["results"][0]["context"] = serde_json::json!({"origin_country": "CN"});
    let err = import_document(&v1.to_string(), schema()).unwrap_err();
    assert!(
        err.to_string().contains("results[0].context: unknown key"),
        "{err}"
    );

    let mut bad: Value = serde_json::from_str(&document.to_json()).unwrap();
    bad["results"][0]["context"] = serde_json::json!({
        "origin_country": "JANSENACME", "hs_chapter": "8", "selection_probability": 1e-9
    });
    bad["results"][2]["context"] = serde_json::json!({"transport_mode": "TRUCK1"});
    bad["results"][1]["context"] = serde_json::json!({"importer": "ACME"});
    let ExchangeError::Invalid(errors) = import_document(&bad.to_string(), schema()).unwrap_err()
    else {
        panic!("not a validation error")
    };
    assert_eq!(
        errors.fields(),
        [
            "results[0].context.origin_country",
            "results[0].context.hs_chapter",
            "results[0].context.selection_probability",
            "results[1].context",
            "results[2].context.transport_mode",
        ]
    );
    // An anonymised document whose ids are not pseudonyms (a real declaration number) is
    // refused.
    let mut plain_ids: Value = serde_json::from_str(&document.to_json()).unwrap();
    plain_ids["results"][0]["declaration_id"] = "24NL0001234567".into();
    let err = import_document(&plain_ids.to_string(), schema()).unwrap_err();
    assert!(
        err.to_string()
            .contains("results[0].declaration_id: not a keyed pseudonym"),
        "{err}"
    );
    let mut wrong = contexts.clone();
    wrong[1] = Some(ResultContext {
        hs_chapter: Some("850".into()),
        ..ResultContext::default()
    });
    let err = export_with_context(schema(), &results, &wrong, "NL", None, at()).unwrap_err();
    assert!(
        err.to_string().contains("results[1].context.hs_chapter"),
        "{err}"
    );
}
