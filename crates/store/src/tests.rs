//! Store behaviour, on both backends: each scenario below runs on a temporary SQLite file and,
//! when `BORDERLENS_TEST_DATABASE_URL` names a PostgreSQL database, in a fresh schema of that
//! database (dropped afterwards). Without the variable the PostgreSQL runs print "SKIPPED" and
//! pass, unless `BORDERLENS_REQUIRE_POSTGRES=1` (CI), where they fail.

use std::fmt::Display;

use borderlens_domain::{
    ControlLabel, DecisionSource, DeclarationItem, DeclaredField, DeclaredValue, FieldRegistry,
    FieldType, HsCode, ItemKey, Lane, GOODS_DESCRIPTION, GOODS_DESCRIPTION_CLEANED,
};
use chrono::NaiveDate;
use tempfile::TempDir;

use crate::{
    Accounts, Audit, Controls, Decisions, FieldDifference, HsReadings, HsSignals, ImportOutcome,
    ItemFilter, Items, LoginGate, NewControlResult, NewDecision, NewHsReading, PartyLink,
    PartyLinks, Recorded, Registry, SharingFilter, Store, StoreError, SCHEMA_VERSION,
};

/// The store under test (SQLite or PostgreSQL: the same type).
type Subject = Store;

/// [`Items::import_stream`] of a plain iterator.
fn import(
    store: &mut Subject,
    source: &str,
    items: impl IntoIterator<Item = (DeclarationItem, u64)>,
) -> Result<ImportOutcome, StoreError> {
    store.import_stream(source, &mut items.into_iter().map(Ok))
}

/// [`Items::import_stream`] of an iterator of items or errors.
fn try_import<E: Display>(
    store: &mut Subject,
    source: &str,
    items: impl IntoIterator<Item = Result<(DeclarationItem, u64), E>>,
) -> Result<ImportOutcome, StoreError> {
    store.import_stream(
        source,
        &mut items
            .into_iter()
            .map(|item| item.map_err(|e| e.to_string())),
    )
}

/// A PostgreSQL store in a fresh schema, dropped with it.
struct PgSubject {
    store: Store,
    schema: crate::pg::testing::TestSchema,
}

/// Connects to a fresh schema of `BORDERLENS_TEST_DATABASE_URL`, or says why not (`None`:
/// skipped).
fn pg_open() -> Option<PgSubject> {
    let schema = crate::pg::testing::TestSchema::create()?;
    let store = Store::connect(schema.url()).unwrap();
    Some(PgSubject { store, schema })
}

/// One `#[test]` per backend for each scenario: `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let (_dir, mut store) = super::open();
                    super::$name(&mut store);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let Some(mut subject) = super::pg_open() else {
                        return;
                    };
                    super::$name(&mut subject.store);
                    drop(subject.store);
                    drop(subject.schema);
                }
            )*
        }
    };
}

on_both_backends!(
    import_twice_is_idempotent,
    label_is_added_later_and_never_removed,
    conflict_keeps_the_original,
    failed_import_rolls_back_everything,
    audit_log_is_append_only,
    audit_entries_of_an_action_prefix_skip_the_others,
    declared_fields_cannot_be_updated,
    model_versions_increment,
    scores_are_replaced_per_model_version,
    items_are_filtered_and_ordered,
    large_import_streams_in_one_transaction,
    decisions_are_made_once_and_overridden_beside_the_original,
    control_results_are_idempotent_and_labels_only_grow,
    foreign_results_are_kept_apart_whole_and_idempotent,
    users_are_added_once_with_a_known_role_and_a_hash,
    api_tokens_find_their_user_until_revoked,
    sessions_carry_user_role_and_csrf_token_until_they_expire_or_end,
    the_same_key_twice_in_one_import_meets_the_first,
    login_failures_are_counted_per_key_and_wait_until_the_window_passes,
    items_sharing_a_party_or_code_and_label_counts_look_only_before_the_date,
    a_field_added_to_the_registry_with_its_migration_is_stored_read_and_compared,
    a_declaration_is_read_with_all_its_items_in_one_query,
    long_conflicting_values_are_shortened,
    goods_descriptions_are_stored_byte_for_byte_final_and_compared,
    any_allowed_description_reads_back_byte_for_byte,
    hs_readings_are_derived_once_per_item_and_model_beside_the_declared_code,
    party_links_are_replaced_whole_and_relate_declarations_of_linked_parties,
    the_xray_catalogue_is_replaced_per_library_and_found_by_container_or_parcel,
);

fn scan(id: &str, container: Option<&str>, package: Option<&str>) -> crate::CataloguedScan {
    crate::CataloguedScan {
        scan_id: id.into(),
        scanned_at: format!("2026-03-0{}T10:00:00", id.len() % 9 + 1),
        cargo_type: if container.is_some() {
            "container"
        } else {
            "parcel"
        }
        .into(),
        container_id: container.map(str::to_string),
        package_id: package.map(str::to_string),
        purpose: "risk".into(),
        outcome: None,
        source: "real".into(),
        projected: false,
        licence: "internal".into(),
        redistributable: false,
        views: 1,
    }
}

fn the_xray_catalogue_is_replaced_per_library_and_found_by_container_or_parcel(
    store: &mut Subject,
) {
    use crate::NiiCatalogue as _;
    // Items carry their container number and postal item id as declared, final.
    let mut boxed = item("C1", 1, 1, None);
    boxed.extra.insert(
        borderlens_domain::CONTAINER_NUMBER,
        DeclaredValue::Text("csqu 305438 3".into()),
    );
    let mut posted = item("P1", 1, 2, None);
    posted.extra.insert(
        borderlens_domain::POSTAL_ITEM_ID,
        DeclaredValue::Text("RR473124829GB".into()),
    );
    import(store, "t.csv", lines(vec![boxed.clone(), posted.clone()])).unwrap();
    assert_eq!(store.item(&key("C1", 1)).unwrap().unwrap(), boxed);
    assert_eq!(store.item(&key("P1", 1)).unwrap().unwrap(), posted);
    for column in ["container_number", "postal_item_id"] {
        let err = store
            .execute_raw(&format!(
                "UPDATE declaration_items SET {column} = 'X' WHERE declaration_id = 'C1'"
            ))
            .unwrap_err();
        assert!(err.contains("never overwritten"), "{err}");
    }

    let a = vec![
        scan("S1", Some("CSQU3054383"), None),
        scan("S22", None, Some("RR473124829GB")),
        scan("S333", None, None),
    ];
    assert_eq!(store.replace_nii_catalogue("/lib/a", &a).unwrap(), 3);
    assert_eq!(
        store
            .replace_nii_catalogue("/lib/b", &[scan("S1", Some("CSQU3054383"), None)])
            .unwrap(),
        1
    );
    let found = |c: &[&str], p: &[&str]| -> Vec<(String, String)> {
        let c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        store
            .nii_scans_of(&c, &p)
            .unwrap()
            .into_iter()
            .map(|s| (s.library, s.scan.scan_id))
            .collect()
    };
    assert_eq!(
        found(&["CSQU3054383"], &[]),
        [
            ("/lib/a".to_string(), "S1".to_string()),
            ("/lib/b".into(), "S1".into())
        ]
    );
    assert_eq!(
        found(&[], &["RR473124829GB"]),
        [("/lib/a".into(), "S22".into())]
    );
    assert_eq!(found(&["CSQU3054383"], &["RR473124829GB"]).len(), 3);
    assert!(found(&[], &[]).is_empty());
    assert!(found(&["MSCU1234565"], &[]).is_empty());
    let stored = store.nii_scans_of(&[], &["RR473124829GB".into()]).unwrap();
    assert_eq!(stored[0].scan, a[1]);
    let mut sorted = a.clone();
    sorted.sort_by(|x, y| x.scan_id.cmp(&y.scan_id));
    assert_eq!(store.nii_catalogue_of("/lib/a").unwrap(), sorted);
    assert!(store.nii_catalogue_of("/lib/none").unwrap().is_empty());
    // A scan finds its declarations: the declared value is compared in canonical form.
    let of = |c: &[&str], p: &[&str]| -> Vec<String> {
        let c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
        let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        store
            .items_of_transport(&c, &p, 10)
            .unwrap()
            .into_iter()
            .map(|d| d.key.declaration_id)
            .collect()
    };
    assert_eq!(of(&["CSQU3054383"], &[]), ["C1"]);
    assert_eq!(of(&["CSQU3054383"], &["RR473124829GB"]), ["P1", "C1"]);
    assert_eq!(
        store
            .declarations_of_transport(&["CSQU3054383".into()], &["RR473124829GB".into()])
            .unwrap(),
        ["C1", "P1"]
    );
    assert!(store
        .declarations_of_transport(&[], &[])
        .unwrap()
        .is_empty());
    assert!(of(&[], &[]).is_empty());
    assert!(of(&["CSQU305438"], &[]).is_empty());
    // Replaced whole: the library's other rows go.
    store
        .replace_nii_catalogue("/lib/a", &[scan("S4", None, None)])
        .unwrap();
    assert_eq!(
        store.nii_catalogue_counts().unwrap(),
        [("/lib/a".to_string(), 1), ("/lib/b".to_string(), 1)]
    );
    // Refused whole, naming what, keeping the rows.
    for (bad, field) in [
        (
            vec![scan("S5", None, None), scan("S5", None, None)],
            "scan_id",
        ),
        (vec![scan("", None, None)], "scan_id"),
        (vec![scan("S6", Some(""), None)], "container_id"),
        (
            vec![crate::CataloguedScan {
                views: 0,
                ..scan("S7", None, None)
            }],
            "views",
        ),
    ] {
        let err = store.replace_nii_catalogue("/lib/a", &bad).unwrap_err();
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    assert!(store.replace_nii_catalogue(" ", &a).is_err());
    assert_eq!(store.nii_catalogue_counts().unwrap()[0].1, 1);
    // Never updated in place; each replacement audited.
    let err = store
        .execute_raw("UPDATE nii_scans SET outcome = 'seized'")
        .unwrap_err();
    assert!(err.contains("never updated"), "{err}");
    let audited = store
        .audit_entries(100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "catalogue_nii_library")
        .count();
    assert_eq!(audited, 3);
}

fn party_link(party: &str, group: &str, to: &str, p: f64) -> PartyLink {
    PartyLink {
        party_id: party.into(),
        group_id: group.into(),
        linked_to: to.into(),
        probability: p,
    }
}

fn party_links_are_replaced_whole_and_relate_declarations_of_linked_parties(store: &mut Subject) {
    let with = |id: &str, day: u32, importer: &str, declarant: &str| {
        let mut d = item(id, 1, day, None);
        d.importer_id = importer.into();
        d.declarant_id = declarant.into();
        d
    };
    let items = vec![
        with("P", 9, "IMP-A", "DEC-A"),  // the declaration asked about
        with("I", 3, "IMP-A", "DEC-X"),  // same importer
        with("J", 4, "IMP-A2", "DEC-X"), // importer linked to IMP-A
        with("K", 5, "IMP-Z", "DEC-A2"), // declarant linked to DEC-A
        with("M", 6, "DEC-A2", "DEC-X"), // a linked declarant as importer: another role
        with("N", 7, "IMP-Z", "DEC-X"),  // nothing shared
    ];
    import(store, "a.csv", lines(items)).unwrap();
    let related = |store: &Subject| -> Vec<(String, String)> {
        store
            .related_items("IMP-A", "DEC-A", "P", 10)
            .unwrap()
            .into_iter()
            .map(|(d, link)| (d.key.declaration_id, link))
            .collect()
    };
    assert_eq!(related(store), [("I".to_string(), "importer".to_string())]);
    assert!(store.party_group("IMP-A").unwrap().is_empty());

    let links = [
        party_link("IMP-A", "IMP-A", "IMP-A2", 0.97),
        party_link("IMP-A2", "IMP-A", "IMP-A", 0.97),
        party_link("DEC-A", "DEC-A", "DEC-A2", 1.0),
        party_link("DEC-A2", "DEC-A", "DEC-A", 1.0),
    ];
    assert_eq!(store.replace_party_links("run 1", &links).unwrap(), 4);
    assert_eq!(store.party_link_counts().unwrap(), (4, 2));
    let group = store.party_group("IMP-A2").unwrap();
    assert_eq!(group.len(), 2);
    assert_eq!(group[0].link, links[0]);
    assert_eq!(group[0].run, "run 1");
    assert_eq!(
        related(store),
        [
            ("K".to_string(), "linked declarant".to_string()),
            ("J".to_string(), "linked importer".to_string()),
            ("I".to_string(), "importer".to_string()),
        ],
        "newest first; a linked party counts in its own role only"
    );

    // Bad links refuse the whole run and keep the previous one.
    for (bad, field) in [
        (vec![party_link("IMP-A", "G", "IMP-A", 0.9)], "linked_to"),
        (
            vec![
                party_link("A", "G", "B", 0.9),
                party_link("B", "G", "A", 0.9),
                party_link("A", "G", "B", 0.9),
            ],
            "appears twice",
        ),
        (vec![party_link("A", "G", "B", 0.9)], "linked_to"),
        (
            vec![
                party_link("A", "G", "B", 1.5),
                party_link("B", "G", "A", 1.5),
            ],
            "probability",
        ),
    ] {
        let error = store.replace_party_links("bad", &bad).unwrap_err();
        assert!(error.to_string().contains(field), "{error}");
    }
    assert_eq!(store.party_link_counts().unwrap(), (4, 2));

    // A new run replaces the previous one whole.
    let second = [
        party_link("IMP-A", "IMP-A", "IMP-Z", 0.8),
        party_link("IMP-Z", "IMP-A", "IMP-A", 0.8),
    ];
    store.replace_party_links("run 2", &second).unwrap();
    assert_eq!(store.party_link_counts().unwrap(), (2, 1));
    assert!(store.party_group("DEC-A").unwrap().is_empty());
    assert_eq!(
        related(store),
        [
            ("N".to_string(), "linked importer".to_string()),
            ("K".to_string(), "linked importer".to_string()),
            ("I".to_string(), "importer".to_string()),
        ]
    );
    // Links are never updated in place; each run is audited.
    assert!(store
        .execute_raw("UPDATE party_links SET probability = 0")
        .is_err());
    let audit = store.audit_entries(50).unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "replace_party_links")
            .count(),
        2
    );
}

/// A reading of item `id`/1 by `model`: chapter mismatch `chapter`, read as chapter 85.
fn hs_reading(id: &str, model: &str, chapter: Option<f64>) -> NewHsReading {
    NewHsReading {
        signals: HsSignals {
            key: key(id, 1),
            model: model.into(),
            model_version: "hs-lexical-1".into(),
            outcome: "classified".into(),
            suggestions: vec![("854411".into(), 0.7), ("854442".into(), 0.2)],
            chapter_mismatch: chapter,
            heading_mismatch: chapter.map(|c| (c + 1.0) / 2.0),
            hs6_mismatch: Some(1.0),
            reads_as_chapter: Some("85".into()),
            reads_as_heading: Some("8544".into()),
            reads_as_hs6: Some("854411".into()),
            vague_probability: Some(0.05),
            review: false,
            cleaned_disagreement: None,
        },
        reading_json: format!(r#"{{"kind":"derived","model":"{model}"}}"#),
    }
}

fn hs_readings_are_derived_once_per_item_and_model_beside_the_declared_code(store: &mut Subject) {
    let items = vec![
        described("A", "insulated copper wire", None),
        described("B", "cotton t-shirt", Some("T-shirts, of cotton, knitted")),
        item("C", 1, 1, None),
    ];
    import(store, "d.csv", lines(items)).unwrap();
    // What is left to read: the items with a description, not those without.
    let todo = store.items_without_hs_reading("m1", 10).unwrap();
    let ids: Vec<&str> = todo.iter().map(|d| d.key.declaration_id.as_str()).collect();
    assert_eq!(ids, ["A", "B"]);
    assert_eq!(store.items_without_hs_reading("m1", 1).unwrap().len(), 1);
    assert_eq!(
        store
            .save_hs_readings(&[hs_reading("A", "m1", Some(0.98))])
            .unwrap(),
        1
    );
    let stored = store.hs_reading(&key("A", 1), "m1").unwrap().unwrap();
    assert_eq!(stored.signals, hs_reading("A", "m1", Some(0.98)).signals);
    assert_eq!(stored.reading_json, r#"{"kind":"derived","model":"m1"}"#);
    assert!(!stored.computed_at.is_empty());
    assert_eq!(store.hs_reading(&key("A", 1), "m2").unwrap(), None);
    let todo = store.items_without_hs_reading("m1", 10).unwrap();
    assert_eq!(todo.len(), 1);
    assert_eq!(todo[0].key, key("B", 1));
    // Another model version reads everything again.
    assert_eq!(store.items_without_hs_reading("m2", 10).unwrap().len(), 2);
    // Written once: the same item and model again keeps the first reading.
    assert_eq!(
        store
            .save_hs_readings(&[
                hs_reading("A", "m1", Some(0.1)),
                hs_reading("B", "m1", None),
                hs_reading("A", "m2", Some(0.5)),
            ])
            .unwrap(),
        2
    );
    let signals = store.hs_signals("m1").unwrap();
    assert_eq!(signals.len(), 2);
    assert_eq!(signals[0].chapter_mismatch, Some(0.98));
    assert_eq!(signals[1].chapter_mismatch, None);
    assert_eq!(signals[1].heading_mismatch, None);
    assert_eq!(
        store.hs_read_models().unwrap(),
        vec![("m1".to_string(), 2), ("m2".to_string(), 1)]
    );
    // The declared code and text are untouched.
    let a = store.item(&key("A", 1)).unwrap().unwrap();
    assert_eq!(a, described("A", "insulated copper wire", None));
    // Refused, keeping nothing: an unknown item, a non-probability, bad JSON.
    let err = store
        .save_hs_readings(&[hs_reading("C", "m3", None), hs_reading("Z", "m3", None)])
        .unwrap_err();
    assert!(err.to_string().contains("Z/1"), "{err}");
    assert!(err.to_string().contains("not in the store"), "{err}");
    assert!(store.hs_signals("m3").unwrap().is_empty());
    let err = store
        .save_hs_readings(&[hs_reading("C", "m3", Some(1.5))])
        .unwrap_err();
    assert!(err.to_string().contains("chapter_mismatch"), "{err}");
    let mut bad = hs_reading("C", "m3", None);
    bad.reading_json = "{".into();
    assert!(store.save_hs_readings(&[bad]).is_err());
    // Never updated.
    let err = store
        .execute_raw("UPDATE hs_readings SET chapter_mismatch = 0")
        .unwrap_err();
    assert!(err.contains("never updated"), "{err}");
    let audit = store.audit_entries(10).unwrap();
    assert!(audit.iter().any(|e| e.action == "save_hs_readings"));
}

fn a_declaration_is_read_with_all_its_items_in_one_query(store: &mut Subject) {
    let items = vec![
        item("M", 3, 1, None),
        item("M", 1, 1, label(0)),
        item("N", 1, 1, None),
    ];
    import(store, "m.csv", lines(items)).unwrap();
    let declaration = store.declaration("M").unwrap().unwrap();
    assert_eq!(declaration.id(), "M");
    let numbers: Vec<u32> = declaration.items().iter().map(|i| i.key.item_no).collect();
    assert_eq!(numbers, [1, 3]);
    assert_eq!(declaration.items()[0], item("M", 1, 1, label(0)));
    assert!(store.declaration("absent").unwrap().is_none());
}

/// The standard fields and a test field, as the goods description will come: an entry of the
/// registry...
static WITH_NOTE: std::sync::LazyLock<FieldRegistry> = std::sync::LazyLock::new(|| {
    FieldRegistry::extended([DeclaredField::extra(
        "test_note",
        "test note",
        FieldType::Text,
    )])
    .unwrap()
});

/// ... and the migration that adds its column (declared values are never overwritten: the
/// column joins the trigger that refuses updates).
const NOTE_MIGRATION: &str = r#"
ALTER TABLE declaration_items ADD COLUMN test_note TEXT;
{refuse|declaration_items_test_note_is_final|BEFORE UPDATE OF test_note ON declaration_items||declared fields of declaration_items are never overwritten}
"#;

fn a_field_added_to_the_registry_with_its_migration_is_stored_read_and_compared(
    store: &mut Subject,
) {
    // An item stored before the field existed reads back without it.
    import(store, "old.csv", lines(vec![item("OLD", 1, 1, None)])).unwrap();
    store.migrate_raw(NOTE_MIGRATION).unwrap();
    store.set_fields(&WITH_NOTE);
    let note = |text: &str| {
        let mut noted = item("NEW", 1, 2, None);
        noted
            .extra
            .insert("test_note", DeclaredValue::Text(text.to_string()));
        noted
    };
    let outcome = import(store, "new.csv", lines(vec![note("fragile")])).unwrap();
    assert_eq!(outcome.inserted, 1);
    let stored = store.item(&key("NEW", 1)).unwrap().unwrap();
    assert_eq!(stored, note("fragile"));
    let old = store.item(&key("OLD", 1)).unwrap().unwrap();
    assert_eq!(old, item("OLD", 1, 1, None));
    // The same value again changes nothing; another value is a conflict on the new field.
    let outcome = import(store, "again.csv", lines(vec![note("fragile")])).unwrap();
    assert_eq!(outcome.unchanged, 1);
    let outcome = import(store, "other.csv", lines(vec![note("sturdy")])).unwrap();
    assert_eq!(outcome.conflicts.len(), 1);
    let difference = &outcome.conflicts[0].differences[0];
    assert_eq!(
        (
            difference.field,
            difference.stored.as_str(),
            difference.incoming.as_str()
        ),
        ("test_note", "fragile", "sturdy")
    );
    assert_eq!(
        store.item(&key("NEW", 1)).unwrap().unwrap(),
        note("fragile")
    );
    // The migration made it final, as every declared field.
    let err = store
        .execute_raw("UPDATE declaration_items SET test_note = 'x' WHERE declaration_id = 'NEW'")
        .unwrap_err();
    assert!(err.contains("never overwritten"), "{err}");
    // A store that does not know the field still reads every item.
    store.set_fields(FieldRegistry::standard());
    let mut without = note("fragile");
    without.extra.clear();
    assert_eq!(store.item(&key("NEW", 1)).unwrap().unwrap(), without);
}

/// `item(id, 1, 1, None)` with the sender's description and, when given, a cleaned one.
fn described(id: &str, sender: &str, cleaned: Option<&str>) -> DeclarationItem {
    let mut described = item(id, 1, 1, None);
    described
        .extra
        .insert(GOODS_DESCRIPTION, DeclaredValue::Text(sender.to_string()));
    if let Some(cleaned) = cleaned {
        described.extra.insert(
            GOODS_DESCRIPTION_CLEANED,
            DeclaredValue::Text(cleaned.to_string()),
        );
    }
    described
}

fn goods_descriptions_are_stored_byte_for_byte_final_and_compared(store: &mut Subject) {
    let texts = [
        ("A", "  2 x \"Shirts\", cotton\r\n1 x belt\tleather  ", None),
        (
            "B",
            "เสื้อยืดผ้าฝ้าย 棉质T恤 👕",
            Some("T-shirts, of cotton, knitted"),
        ),
        ("C", "   ", Some("Ｆｕｌｌ ｗｉｄｔｈ and é (e\u{301})")),
    ];
    let items: Vec<DeclarationItem> = texts
        .iter()
        .map(|(id, sender, cleaned)| described(id, sender, *cleaned))
        .collect();
    let mut all = items.clone();
    all.push(item("D", 1, 1, None));
    assert_eq!(import(store, "d.csv", lines(all)).unwrap().inserted, 4);
    for expected in &items {
        let stored = store.item(&expected.key).unwrap().unwrap();
        assert_eq!(&stored, expected);
    }
    assert!(store.item(&key("D", 1)).unwrap().unwrap().extra.is_empty());
    // The stored bytes are the declared bytes (not only equal after reading back).
    assert_eq!(
        store.query_text_raw(
            "SELECT goods_description FROM declaration_items WHERE declaration_id = 'A'"
        ),
        Ok(Some(texts[0].1.to_string()))
    );
    // Final, like every declared field.
    for column in [GOODS_DESCRIPTION, GOODS_DESCRIPTION_CLEANED] {
        let err = store
            .execute_raw(&format!(
                "UPDATE declaration_items SET {column} = 'cleaned up' WHERE declaration_id = 'B'"
            ))
            .unwrap_err();
        assert!(err.contains("never overwritten"), "{err}");
    }
    // Another description later is a conflict; the original stands.
    let outcome = import(
        store,
        "later.csv",
        lines(vec![described(
            "B",
            "T-shirts",
            Some("T-shirts, of cotton, knitted"),
        )]),
    )
    .unwrap();
    assert_eq!(outcome.conflicts.len(), 1);
    assert_eq!(outcome.conflicts[0].differences[0].field, GOODS_DESCRIPTION);
    assert_eq!(store.item(&key("B", 1)).unwrap().unwrap(), items[1]);
    // Text a reader refuses is refused here too, naming the field: NUL (PostgreSQL cannot
    // store it), a huge cell.
    for (bad, why) in [
        ("shoes\0".to_string(), "control character"),
        ("x".repeat(5000), "more than the 4096"),
    ] {
        let err = import(store, "bad.csv", lines(vec![described("E", &bad, None)])).unwrap_err();
        assert!(matches!(err, StoreError::InvalidItem { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(GOODS_DESCRIPTION) && message.contains(why),
            "{message}"
        );
    }
    assert!(store.item(&key("E", 1)).unwrap().is_none());
}

fn any_allowed_description_reads_back_byte_for_byte(store: &mut Subject) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    // Any text but the refused control characters (tabs and line breaks allowed), any script,
    // leading and trailing spaces; a cleaned text or none.
    let text = "(?s)[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\u{9f}]{1,200}";
    let strategy = (text, proptest::option::of(text));
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    // `run` takes an `Fn`: the store and the case number are borrowed through cells.
    let store = std::cell::RefCell::new(store);
    let n = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |(sender, cleaned)| {
            n.set(n.get() + 1);
            let id = format!("P{}", n.get());
            let expected = described(&id, &sender, cleaned.as_deref());
            let mut store = store.borrow_mut();
            let outcome = import(&mut store, "p.csv", lines(vec![expected.clone()])).unwrap();
            prop_assert_eq!(outcome.inserted, 1);
            let stored = store.item(&expected.key).unwrap().unwrap();
            prop_assert_eq!(stored, expected);
            Ok(())
        })
        .unwrap();
}

fn the_same_key_twice_in_one_import_meets_the_first(store: &mut Subject) {
    let outcome = import(
        store,
        "a.csv",
        lines(vec![
            item("A", 1, 1, None),
            item("B", 1, 1, None),
            item("A", 1, 1, label(1)),
            item("A", 1, 1, label(0)),
        ]),
    )
    .unwrap();
    assert_eq!(
        (outcome.inserted, outcome.unchanged, outcome.labelled),
        (2, 0, 1)
    );
    assert_eq!(outcome.conflicts.len(), 1);
    assert_eq!(outcome.conflicts[0].line, 5);
    assert_eq!(outcome.conflicts[0].differences[0].field, "label");
    assert_eq!(store.item(&key("A", 1)).unwrap().unwrap().label, label(1));
    assert_eq!(store.count_items().unwrap(), 2);
}

#[test]
fn open_any_opens_either_backend_behind_the_trait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("any.db");
    let mut store = crate::open_any(path.to_str().unwrap()).unwrap();
    assert_eq!(store.kind(), "sqlite");
    assert_eq!(store.location(), path.display().to_string());
    let outcome = store
        .import("a.csv", lines(vec![item("A", 1, 1, None)]))
        .unwrap();
    assert_eq!(outcome.inserted, 1);
    let err = store
        .try_import("b.csv", vec![Err::<(DeclarationItem, u64), _>("stopped")])
        .unwrap_err();
    assert!(matches!(err, StoreError::Aborted { .. }), "{err}");
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let Some(schema) = crate::pg::testing::TestSchema::create() else {
        return;
    };
    let mut store = crate::open_any(schema.url()).unwrap();
    assert_eq!(store.kind(), "postgresql");
    let outcome = store
        .import("a.csv", lines(vec![item("A", 1, 1, None)]))
        .unwrap();
    assert_eq!(outcome.inserted, 1);
    drop(store);
}

/// What only PostgreSQL has to show: the schema table, reconnecting, and writers on several
/// connections at once.
mod postgres_only {
    use super::*;
    use std::thread;

    #[test]
    fn connect_migrates_once_and_reconnecting_keeps_the_data() {
        let Some(mut subject) = pg_open() else {
            return;
        };
        assert_eq!(subject.store.schema_version().unwrap(), SCHEMA_VERSION);
        import(
            &mut subject.store,
            "a.csv",
            lines(vec![item("A", 1, 1, None)]),
        )
        .unwrap();
        drop(subject.store);
        let store = Store::connect(subject.schema.url()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.count_items().unwrap(), 1);
        assert!(store.location().contains("search_path"));
    }

    #[test]
    fn a_version_5_store_migrates_to_6_keeping_its_decisions() {
        let Some(schema) = crate::pg::testing::TestSchema::create() else {
            return;
        };
        let mut client = ::postgres::Client::connect(schema.url(), ::postgres::NoTls).unwrap();
        crate::schema::migrate_postgres_to(&mut client, schema.url(), 5).unwrap();
        client.batch_execute(V5_ROWS).unwrap();
        let version: i64 = client
            .query_one("SELECT version FROM schema_version", &[])
            .unwrap()
            .get(0);
        assert_eq!(version, 5);
        drop(client);
        let mut store = Store::connect(schema.url()).unwrap();
        check_migrated_from_version_5(&mut store);
        drop(store);
        drop(schema);
    }

    #[test]
    fn newer_schema_is_refused() {
        let Some(mut subject) = pg_open() else {
            return;
        };
        subject
            .store
            .execute_raw("UPDATE schema_version SET version = 99")
            .unwrap();
        drop(subject.store);
        let err = Store::connect(subject.schema.url()).err().unwrap();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_bad_url_names_the_store_without_its_password() {
        let Some(url) = crate::pg::testing::database_url() else {
            return;
        };
        drop(url);
        let err = Store::connect("postgres://ana:s3cret@127.0.0.1:1/nowhere")
            .err()
            .unwrap();
        let message = err.to_string();
        assert!(
            message.contains("postgres://ana:***@127.0.0.1:1/nowhere"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn a_copied_schema_holds_every_row_and_goes_on_numbering() {
        let Some(mut subject) = pg_open() else {
            return;
        };
        let store = &mut subject.store;
        import(
            store,
            "a.csv",
            lines(vec![item("A", 1, 1, None), item("B", 1, 2, None)]),
        )
        .unwrap();
        store.save_model("m", "{}", b"x").unwrap();
        store
            .record_control_result(&result("s1", "A", true, "{}"))
            .unwrap();
        store.add_user("ana", "officer", HASH).unwrap();
        store.add_api_token("ana", &digest(1)).unwrap();
        let audit = store.audit_entries(100).unwrap();
        drop(subject.store);

        let copy = crate::pg::testing::TestSchema::copy_of(&subject.schema).unwrap();
        let mut copied = Store::connect(copy.url()).unwrap();
        assert_eq!(copied.count_items().unwrap(), 2);
        assert_eq!(copied.item(&key("A", 1)).unwrap().unwrap().label, label(1));
        assert_eq!(copied.list_models().unwrap().len(), 1);
        assert_eq!(copied.audit_entries(100).unwrap(), audit);
        assert_eq!(
            copied.user_for_token(&digest(1)).unwrap().unwrap().name,
            "ana"
        );
        // Identities go on after the copied rows; the rules still hold.
        let second = copied
            .record_control_result(&result("s2", "B", false, "{}"))
            .unwrap();
        let results = copied.control_results().unwrap();
        assert_eq!(results.len(), 2);
        assert!(second.id() > results[0].id, "{second:?} {results:?}");
        assert_eq!(copied.save_model("m", "{}", b"y").unwrap(), 2);
        let err = copied
            .execute_raw("DELETE FROM control_results")
            .unwrap_err();
        assert!(err.contains("append-only"), "{err}");
        // The template is untouched.
        let template = Store::connect(subject.schema.url()).unwrap();
        assert_eq!(template.control_results().unwrap().len(), 1);
        drop((copied, template));
        drop(copy);
    }

    #[test]
    fn a_login_attempt_does_not_wait_for_the_stores_write_lock() {
        let Some(subject) = pg_open() else {
            return;
        };
        let url = subject.schema.url().to_string();
        let mut login = Store::connect(&url).unwrap();
        // Another connection holds the write lock, as a long import does.
        let mut holder = Store::connect(&url).unwrap();
        holder.execute_raw("BEGIN").unwrap();
        holder
            .execute_raw("SELECT pg_advisory_xact_lock(hashtext(coalesce(current_schema(), '')))")
            .unwrap();
        let (done, answer) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let now = login.clock_ms().unwrap();
            let gate = login.begin_login(&["user:x".to_string()], now, 60_000, 5);
            let _ = done.send(gate.map(|g| matches!(g, LoginGate::Counted(_))));
        });
        let counted = answer
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the login attempt waited for the write lock");
        assert!(counted.unwrap());
        holder.execute_raw("ROLLBACK").unwrap();
        drop((holder, subject.store));
    }

    #[test]
    fn concurrent_writers_queue_and_see_each_other() {
        let Some(subject) = pg_open() else {
            return;
        };
        let url = subject.schema.url().to_string();
        let mut store = subject.store;
        import(&mut store, "a.csv", lines(vec![item("A", 1, 1, None)])).unwrap();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                thread::spawn(move || {
                    let mut store = Store::connect(&url).unwrap();
                    let versions: Vec<u32> = (0..10)
                        .map(|_| store.save_model("m", "{}", b"x").unwrap())
                        .collect();
                    // Every worker submits the same result: one is new, the rest duplicates.
                    let recorded = store
                        .record_control_result(&result("same", "A", true, r#"{"n": 1}"#))
                        .unwrap();
                    (versions, recorded)
                })
            })
            .collect();
        let mut versions = Vec::new();
        let mut new = 0;
        for worker in workers {
            let (mine, recorded) = worker.join().unwrap();
            versions.extend(mine);
            new += usize::from(matches!(recorded, Recorded::New(_)));
        }
        versions.sort_unstable();
        assert_eq!(versions, (1..=40).collect::<Vec<u32>>());
        assert_eq!(new, 1);
        assert_eq!(store.control_results().unwrap().len(), 1);
        assert_eq!(store.list_models().unwrap().len(), 40);
        drop(store);
        drop(subject.schema);
    }
}

fn open() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("borderlens.db")).unwrap();
    (dir, store)
}

fn key(id: &str, item_no: u32) -> ItemKey {
    ItemKey {
        declaration_id: id.to_string(),
        item_no,
    }
}

fn label(critical: u8) -> Option<ControlLabel> {
    Some(ControlLabel {
        fraud: critical > 0,
        critical,
    })
}

fn item(id: &str, item_no: u32, day: u32, label: Option<ControlLabel>) -> DeclarationItem {
    DeclarationItem {
        key: key(id, item_no),
        date: NaiveDate::from_ymd_opt(2020, 1, day).unwrap(),
        office_id: "30".into(),
        process_type: "B".into(),
        import_type: "11".into(),
        import_use: "21".into(),
        payment_type: "11".into(),
        transport_mode: "10".into(),
        declarant_id: "ZZR1LT6".into(),
        importer_id: "QLRUBN9".into(),
        seller_id: Some("0VKY2BR".into()),
        courier_id: None,
        hs6: HsCode::parse("440890").unwrap(),
        departure_country: "BE".into(),
        origin_country: "BE".into(),
        tax_rate: 8.0,
        tax_type: "FEU1".into(),
        origin_indicator: "G".into(),
        net_mass: 108.0,
        item_price: 372254.4,
        label,
        extra: Default::default(),
    }
}

fn lines(items: Vec<DeclarationItem>) -> impl Iterator<Item = (DeclarationItem, u64)> {
    items.into_iter().zip(2u64..)
}

#[test]
fn open_sets_wal_foreign_keys_and_schema_version() {
    let (dir, store) = open();
    assert_eq!(store.kind(), "sqlite");
    let mut store = store;
    assert_eq!(
        store.query_text_raw("PRAGMA journal_mode"),
        Ok(Some("wal".to_string()))
    );
    assert_eq!(
        store.query_text_raw("SELECT CAST(foreign_keys AS TEXT) FROM pragma_foreign_keys"),
        Ok(Some("1".to_string()))
    );
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    drop(store);
    // Reopening migrates nothing and keeps the data.
    let store = Store::open(&dir.path().join("borderlens.db")).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn synchronous_is_normal_unless_full_is_asked_for() {
    use crate::synchronous_setting;
    assert_eq!(synchronous_setting(None).unwrap(), "NORMAL");
    assert_eq!(synchronous_setting(Some("")).unwrap(), "NORMAL");
    assert_eq!(synchronous_setting(Some("Full")).unwrap(), "FULL");
    assert_eq!(synchronous_setting(Some(" normal ")).unwrap(), "NORMAL");
    let error = synchronous_setting(Some("off")).unwrap_err().to_string();
    assert!(error.contains("use normal or full"), "{error}");
    // The process environment is not set by the tests: the default.
    if std::env::var_os(crate::SYNCHRONOUS_ENV).is_none() {
        assert_eq!(open().1.synchronous().unwrap(), Some("normal"));
    }
}

#[test]
fn newer_schema_is_refused() {
    let (dir, mut store) = open();
    store.execute_raw("PRAGMA user_version = 99").unwrap();
    drop(store);
    let err = Store::open(&dir.path().join("borderlens.db"))
        .err()
        .unwrap();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("borderlens.db"), "{err}");
}

fn import_twice_is_idempotent(store: &mut Subject) {
    let items = vec![
        item("A", 1, 2, label(0)),
        item("A", 2, 2, label(2)),
        item("B", 1, 1, None),
    ];
    let first = import(store, "train.csv", lines(items.clone())).unwrap();
    assert_eq!((first.inserted, first.unchanged, first.labelled), (3, 0, 0));
    assert!(first.conflicts.is_empty());
    let second = import(store, "train.csv", lines(items.clone())).unwrap();
    assert_eq!(
        (second.inserted, second.unchanged, second.labelled),
        (0, 3, 0)
    );
    assert!(second.conflicts.is_empty());
    assert_eq!(store.count_items().unwrap(), 3);
    for original in &items {
        assert_eq!(store.item(&original.key).unwrap().as_ref(), Some(original));
    }
    let audit = store.audit_entries(10).unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(
        (
            audit[0].action.as_str(),
            audit[0].subject.as_str(),
            audit[0].actor.as_str()
        ),
        ("import", "train.csv", "system")
    );
    assert_eq!(
        audit[0].detail_json,
        r#"{"inserted":0,"unchanged":3,"labelled":0,"conflicts":0}"#
    );
    assert_eq!(
        audit[1].detail_json,
        r#"{"inserted":3,"unchanged":0,"labelled":0,"conflicts":0}"#
    );
}

fn label_is_added_later_and_never_removed(store: &mut Subject) {
    import(store, "declared.csv", lines(vec![item("A", 1, 1, None)])).unwrap();
    let outcome = import(
        store,
        "controls.csv",
        lines(vec![item("A", 1, 1, label(1))]),
    )
    .unwrap();
    assert_eq!(
        (outcome.inserted, outcome.unchanged, outcome.labelled),
        (0, 0, 1)
    );
    assert_eq!(store.item(&key("A", 1)).unwrap().unwrap().label, label(1));
    let labelled = store
        .query_text_raw(
            "SELECT label_source || '|' || coalesce(labelled_at, '') FROM declaration_items",
        )
        .unwrap()
        .unwrap();
    let (source, labelled_at) = labelled.split_once('|').unwrap();
    assert_eq!(source, "controls.csv");
    assert!(!labelled_at.is_empty());
    // A later file without the label changes nothing.
    let outcome = import(store, "declared.csv", lines(vec![item("A", 1, 1, None)])).unwrap();
    assert_eq!(outcome.unchanged, 1);
    assert_eq!(store.item(&key("A", 1)).unwrap().unwrap().label, label(1));
}

fn conflict_keeps_the_original(store: &mut Subject) {
    let original = item("A", 1, 1, label(0));
    import(store, "first.csv", lines(vec![original.clone()])).unwrap();

    let mut changed = original.clone();
    changed.net_mass = 99.5;
    changed.hs6 = HsCode::parse("440891").unwrap();
    changed.label = label(2);
    let relabelled = item("A", 1, 1, label(1));
    let outcome = import(store, "second.csv", vec![(changed, 7), (relabelled, 9)]).unwrap();
    assert_eq!(
        (outcome.inserted, outcome.unchanged, outcome.labelled),
        (0, 0, 0)
    );
    assert_eq!(outcome.conflicts.len(), 2);
    let first = &outcome.conflicts[0];
    assert_eq!((first.key.clone(), first.line), (key("A", 1), 7));
    let fields: Vec<_> = first.differences.iter().map(|d| d.field).collect();
    assert_eq!(fields, ["hs6", "net_mass"]);
    assert_eq!(
        (
            first.differences[1].stored.as_str(),
            first.differences[1].incoming.as_str()
        ),
        ("108", "99.5")
    );
    let second = &outcome.conflicts[1];
    assert_eq!(second.line, 9);
    assert_eq!(second.differences.len(), 1);
    assert_eq!(second.differences[0].field, "label");
    assert_eq!(second.differences[0].stored, "fraud=0 critical=0");
    assert_eq!(second.differences[0].incoming, "fraud=1 critical=1");

    assert_eq!(store.item(&key("A", 1)).unwrap(), Some(original));
    let recorded = store.conflicts_for(&key("A", 1)).unwrap();
    assert_eq!(recorded.len(), 3);
    assert_eq!(
        (
            recorded[0].source.as_str(),
            recorded[0].line,
            recorded[0].field.as_str()
        ),
        ("second.csv", 7, "hs6")
    );
    assert_eq!(
        store.audit_entries(1).unwrap()[0].detail_json,
        r#"{"inserted":0,"unchanged":0,"labelled":0,"conflicts":2}"#
    );
}

fn long_conflicting_values_are_shortened(store: &mut Subject) {
    let mut original = item("A", 1, 1, None);
    original.importer_id = "é".repeat(100_000);
    import(store, "first.csv", lines(vec![original.clone()])).unwrap();
    let mut changed = original.clone();
    changed.importer_id = "x".repeat(100_000);
    let outcome = import(store, "second.csv", vec![(changed, 5)]).unwrap();
    let difference = &outcome.conflicts[0].differences[0];
    assert_eq!(difference.field, "importer_id");
    let expected_stored = format!("{}…", "é".repeat(199));
    let expected_incoming = format!("{}…", "x".repeat(199));
    assert_eq!(difference.stored, expected_stored);
    assert_eq!(difference.incoming, expected_incoming);
    let recorded = store.conflicts_for(&key("A", 1)).unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].stored.as_str(), recorded[0].incoming.as_str()),
        (expected_stored.as_str(), expected_incoming.as_str())
    );
    // Short values are kept whole, and the stored item is untouched.
    assert_eq!(
        FieldDifference::new("hs6", "440890", "440891").stored,
        "440890"
    );
    assert_eq!(store.item(&key("A", 1)).unwrap(), Some(original));
}

fn failed_import_rolls_back_everything(store: &mut Subject) {
    let mut bad = item("C", 1, 3, None);
    bad.net_mass = f64::NAN;
    let items = vec![item("A", 1, 1, None), item("B", 1, 2, label(0)), bad];
    let err = import(store, "bad.csv", lines(items)).unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidItem { line: 4, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "import of 'bad.csv', line 4: item C/1: net_mass NaN is not a finite non-negative number"
    );
    assert_eq!(store.count_items().unwrap(), 0);
    assert!(store.audit_entries(10).unwrap().is_empty());

    // An error from the stream (e.g. Ctrl-C) aborts the same way.
    let stream = vec![
        Ok((item("A", 1, 1, None), 2)),
        Err("interrupted by the user"),
    ];
    let err = try_import(store, "big.csv", stream).unwrap_err();
    assert_eq!(
        err.to_string(),
        "import of 'big.csv' aborted, nothing of it was kept: interrupted by the user"
    );
    assert_eq!(store.count_items().unwrap(), 0);
    assert!(store.audit_entries(10).unwrap().is_empty());
}

fn audit_log_is_append_only(store: &mut Subject) {
    store.set_actor("officer 17");
    let id = store
        .append_audit("officer 17", "override", "A/1", r#"{"reason":"tip-off"}"#)
        .unwrap();
    let err = store
        .execute_raw(&format!(
            "UPDATE audit_log SET actor = 'someone else' WHERE id = {id}"
        ))
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = store.execute_raw("DELETE FROM audit_log").unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let entries = store.audit_entries(10).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].actor, "officer 17");
    assert_eq!(entries[0].detail_json, r#"{"reason":"tip-off"}"#);
    let err = store
        .append_audit("officer 17", "override", "A/1", "not json")
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
}

/// The entries of one kind of action, newest first, however many others came after them; the
/// prefix's `_` and `%` are themselves, not wildcards.
fn audit_entries_of_an_action_prefix_skip_the_others(store: &mut Subject) {
    for (action, subject) in [
        ("federation_open", "s1"),
        ("federationXopen", "not-this"),
        ("import", "a.csv"),
        ("federation_rounds", "s1"),
        ("controls_export", "NL"),
        ("federation_%", "odd"),
    ] {
        store.append_audit("x", action, subject, "{}").unwrap();
    }
    for _ in 0..5 {
        store.append_audit("x", "import", "b.csv", "{}").unwrap();
    }
    assert!(store
        .audit_entries(5)
        .unwrap()
        .iter()
        .all(|e| e.action == "import"));
    let of = |prefix: &str, limit: usize| -> Vec<String> {
        store
            .audit_entries_of(prefix, limit)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect()
    };
    assert_eq!(
        of("federation_", 10),
        ["federation_%", "federation_rounds", "federation_open"]
    );
    assert_eq!(of("federation_", 1), ["federation_%"]);
    assert_eq!(of("federation_%", 10), ["federation_%"]);
    assert_eq!(of("controls_export", 10), ["controls_export"]);
    assert!(of("nothing", 10).is_empty());
}

fn declared_fields_cannot_be_updated(store: &mut Subject) {
    import(store, "a.csv", lines(vec![item("A", 1, 1, label(1))])).unwrap();
    let err = store
        .execute_raw("UPDATE declaration_items SET net_mass = 1")
        .unwrap_err();
    assert!(err.to_string().contains("never overwritten"), "{err}");
    // A label may grow (a later control finds critical fraud) but never shrink.
    let err = store
        .execute_raw("UPDATE declaration_items SET fraud = 0, critical_fraud = 0")
        .unwrap_err();
    assert!(err.to_string().contains("never lowered"), "{err}");
    store
        .execute_raw("UPDATE declaration_items SET critical_fraud = 2")
        .unwrap();
}

fn model_versions_increment(store: &mut Subject) {
    assert_eq!(store.load_model("fraud-gbdt", None).unwrap(), None);
    assert_eq!(
        store
            .save_model("fraud-gbdt", r#"{"auc":0.8}"#, b"v1")
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .save_model("fraud-gbdt", r#"{"auc":0.9}"#, b"v2")
            .unwrap(),
        2
    );
    assert_eq!(store.save_model("anomaly", "{}", b"x").unwrap(), 1);
    assert_eq!(store.save_model("fraud-gbdt", "{}", &[0, 255]).unwrap(), 3);

    let latest = store.load_model("fraud-gbdt", None).unwrap().unwrap();
    assert_eq!(
        (latest.version, latest.bytes.as_slice()),
        (3, &[0u8, 255][..])
    );
    let second = store.load_model("fraud-gbdt", Some(2)).unwrap().unwrap();
    assert_eq!(
        (
            second.name.as_str(),
            second.metadata_json.as_str(),
            second.bytes.as_slice()
        ),
        ("fraud-gbdt", r#"{"auc":0.9}"#, &b"v2"[..])
    );
    // sha256 of "v2"
    assert_eq!(
        second.sha256,
        "fb04dcb6970e4c3d1873de51fd5a50d7bb46b3383113602665c350ec40b5f990"
    );
    assert!(!second.created_at.is_empty());
    assert_eq!(store.load_model("fraud-gbdt", Some(4)).unwrap(), None);

    let listed: Vec<_> = store
        .list_models()
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.version, m.size_bytes))
        .collect();
    assert_eq!(
        listed,
        [
            ("anomaly".to_string(), 1, 1),
            ("fraud-gbdt".to_string(), 1, 2),
            ("fraud-gbdt".to_string(), 2, 2),
            ("fraud-gbdt".to_string(), 3, 2),
        ]
    );
    let err = store.save_model("fraud-gbdt", "{", b"").unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert!(store.save_model(" ", "{}", b"").is_err());
    let audit = store.audit_entries(1).unwrap();
    assert_eq!(
        (audit[0].action.as_str(), audit[0].subject.as_str()),
        ("save_model", "fraud-gbdt@3")
    );
}

fn scores_are_replaced_per_model_version(store: &mut Subject) {
    import(
        store,
        "a.csv",
        lines(vec![item("A", 1, 1, None), item("B", 1, 1, None)]),
    )
    .unwrap();
    let v1 = store.save_model("m", "{}", b"1").unwrap();
    let v2 = store.save_model("m", "{}", b"2").unwrap();
    store
        .save_scores("m", v1, &[(key("A", 1), 0.25), (key("B", 1), 0.5)])
        .unwrap();
    store.save_scores("m", v2, &[(key("A", 1), 0.75)]).unwrap();
    store.save_scores("m", v1, &[(key("A", 1), 0.125)]).unwrap();
    let scores: Vec<_> = store
        .scores_for(&key("A", 1))
        .unwrap()
        .into_iter()
        .map(|s| (s.model, s.version, s.score))
        .collect();
    assert_eq!(
        scores,
        [("m".to_string(), 1, 0.125), ("m".to_string(), 2, 0.75)]
    );

    // A batch with an unknown item or a NaN keeps nothing of itself.
    let err = store
        .save_scores("m", v2, &[(key("B", 1), 0.9), (key("Z", 1), 0.1)])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "score for item Z/1, which is not in the store"
    );
    let err = store
        .save_scores("m", v2, &[(key("B", 1), 0.9), (key("A", 1), f64::NAN)])
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidScore { .. }), "{err}");
    assert_eq!(store.scores_for(&key("B", 1)).unwrap().len(), 1);
    let err = store.save_scores("m", 9, &[]).unwrap_err();
    assert_eq!(err.to_string(), "no model 'm' version 9 in the store");
}

fn items_are_filtered_and_ordered(store: &mut Subject) {
    let items = vec![
        item("B", 1, 3, label(0)),
        item("A", 2, 3, None),
        item("A", 1, 3, label(1)),
        item("Z", 1, 1, label(0)),
        item("C", 1, 5, label(2)),
    ];
    import(store, "a.csv", lines(items)).unwrap();
    let keys = |filter: ItemFilter| -> Vec<String> {
        store
            .items(&filter)
            .unwrap()
            .into_iter()
            .map(|i| format!("{}/{}", i.key.declaration_id, i.key.item_no))
            .collect()
    };
    assert_eq!(
        keys(ItemFilter::default()),
        ["Z/1", "A/1", "A/2", "B/1", "C/1"]
    );
    let day = |d| NaiveDate::from_ymd_opt(2020, 1, d);
    assert_eq!(
        keys(ItemFilter {
            from: day(3),
            to: day(5),
            labelled_only: true
        }),
        ["A/1", "B/1", "C/1"]
    );
    assert_eq!(
        keys(ItemFilter {
            from: None,
            to: day(3),
            labelled_only: false
        }),
        ["Z/1", "A/1", "A/2", "B/1"]
    );
    assert_eq!(store.count_items().unwrap(), 5);
}

fn large_import_streams_in_one_transaction(store: &mut Subject) {
    let n = 50_000u32;
    let stream = (1..=n).map(|i| {
        (
            item(&format!("D{i:06}"), 1, 1 + i % 28, label((i % 3) as u8)),
            u64::from(i) + 1,
        )
    });
    let started = std::time::Instant::now();
    let outcome = import(store, "big.csv", stream).unwrap();
    assert_eq!(outcome.inserted, u64::from(n));
    assert_eq!(store.count_items().unwrap(), u64::from(n));
    assert!(
        started.elapsed().as_secs() < 30,
        "import took {:?}",
        started.elapsed()
    );
}

fn decision(id: &str, batch: &str, lane: &str, source: &str, pi: f64) -> NewDecision {
    NewDecision {
        declaration_id: id.into(),
        item_no: Some(1),
        batch: batch.into(),
        policy_name: "p".into(),
        policy_version: 1,
        model_name: None,
        model_version: None,
        score: Some(0.5),
        pi,
        stratum: if source == "risk" { "risk" } else { "random" }.into(),
        lane: lane.parse().unwrap(),
        source: source.parse().unwrap(),
        reasons: vec!["because".into()],
    }
}

fn decisions_are_made_once_and_overridden_beside_the_original(store: &mut Subject) {
    import(
        store,
        "a.csv",
        lines(vec![
            item("A", 1, 1, None),
            item("A", 2, 1, None),
            item("B", 1, 1, None),
            item("C", 1, 2, None),
        ]),
    )
    .unwrap();
    assert_eq!(store.save_policy("p", r#"{"capacity": 1}"#).unwrap(), 1);
    assert_eq!(store.save_policy("p", r#"{"capacity": 1}"#).unwrap(), 1);
    assert_eq!(store.save_policy("p", r#"{"capacity": 2}"#).unwrap(), 2);
    // A decision names the item it was made on: A's second, none for B (as decisions recorded
    // before schema version 6).
    let on_second_item = NewDecision {
        item_no: Some(2),
        ..decision("A", "2020-01-01", "red", "risk", 1.0)
    };
    let on_no_item = NewDecision {
        item_no: None,
        ..decision("B", "2020-01-01", "green", "release", 0.5)
    };
    store
        .record_decisions(&[on_second_item.clone(), on_no_item.clone()])
        .unwrap();
    assert!(store.is_decided("A").unwrap());
    assert_eq!(
        store.decisions_for("A").unwrap()[0].decision,
        on_second_item
    );
    assert_eq!(store.decisions_for("B").unwrap()[0].decision, on_no_item);
    // An item the declaration does not have: refused, nothing written.
    let err = store
        .record_decisions(&[NewDecision {
            item_no: Some(2),
            ..decision("C", "2020-01-02", "red", "risk", 1.0)
        }])
        .unwrap_err();
    assert!(err.to_string().contains("no item 2 of it"), "{err}");
    assert!(!store.is_decided("C").unwrap());
    // The same declaration in another batch, or the same batch again: refused, nothing written.
    let err = store
        .record_decisions(&[decision("A", "2020-01-01 office 30", "red", "risk", 1.0)])
        .unwrap_err();
    assert!(err.to_string().contains("already decided"), "{err}");
    let err = store
        .record_decisions(&[decision("B", "2020-01-01", "red", "risk", 1.0)])
        .unwrap_err();
    assert!(err.to_string().contains("already decided"), "{err}");
    let err = store
        .record_decisions(&[decision("Z", "2020-01-02", "red", "risk", 1.0)])
        .unwrap_err();
    assert!(err.to_string().contains("no such declaration"), "{err}");
    // Overrides need a reason and keep the original.
    assert!(store.override_decision("A", Lane::Green, "  ").is_err());
    let overridden = store
        .override_decision("A", Lane::Green, "AEO trader")
        .unwrap();
    assert_eq!(overridden.decision.lane, Lane::Green);
    assert_eq!(overridden.decision.pi, 1.0);
    assert_eq!(overridden.decision.item_no, Some(2));
    let all = store.decisions_for("A").unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].decision.lane, Lane::Red);
    assert_eq!(overridden.overrides, Some(all[0].id));
    let err = store
        .execute_raw("UPDATE decisions SET lane = 'green'")
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(all[1].decision.source, DecisionSource::Override);
    // A word the store does not know, written past it: reading is an error that names the
    // table, the row and the column, not a panic.
    store
        .execute_raw(
            "INSERT INTO decisions (declaration_id, batch, policy_name, policy_version, pi,
                stratum, lane, source, reasons_json, actor, at)
             VALUES ('C', '2020-01-03', 'p', 1, 1.0, 'risk', 'red', 'manual', '[]', 'x', 'now')",
        )
        .unwrap();
    let id = store
        .query_text_raw("SELECT CAST(max(id) AS TEXT) FROM decisions")
        .unwrap()
        .unwrap();
    let err = store.decisions_for("C").unwrap_err().to_string();
    assert!(
        err.contains(&format!("table decisions, row {id}, column source"))
            && err.contains("unknown decision source 'manual'"),
        "{err}"
    );
    assert!(store.decisions(None).is_err());
    assert!(store.decisions_for("A").is_ok());
}

/// Rows as a version 5 store holds them: a declaration of two items, a policy, a decision
/// (without the item it was made on) and an override of it; a second declaration undecided.
const V5_ROWS: &str = r#"
INSERT INTO declaration_items (declaration_id, item_no, date, office_id, process_type,
    import_type, import_use, payment_type, transport_mode, declarant_id, importer_id, hs6,
    departure_country, origin_country, tax_rate, tax_type, origin_indicator, net_mass,
    item_price, imported_at, source_file, source_line)
VALUES
    ('A', 1, '2020-01-01', '30', 'B', '11', '21', '11', '10', 'D1', 'I1', '440890', 'BE', 'BE',
     8.0, 'FEU1', 'G', 108.0, 1000.0, '2020-01-02T00:00:00.000Z', 'a.csv', 2),
    ('A', 2, '2020-01-01', '30', 'B', '11', '21', '11', '10', 'D1', 'I1', '610910', 'CN', 'CN',
     8.0, 'FEU1', 'G', 10.0, 50.0, '2020-01-02T00:00:00.000Z', 'a.csv', 3),
    ('B', 1, '2020-01-02', '30', 'B', '11', '21', '11', '10', 'D1', 'I1', '440890', 'BE', 'BE',
     8.0, 'FEU1', 'G', 108.0, 1000.0, '2020-01-02T00:00:00.000Z', 'a.csv', 4);
INSERT INTO policies (name, version, body_json, sha256, created_at, created_by)
VALUES ('p', 1, '{"capacity": 1}', 'x', '2020-01-02T00:00:00.000Z', 'system');
INSERT INTO decisions (declaration_id, batch, policy_name, policy_version, score, pi, stratum,
    lane, source, reasons_json, actor, at)
VALUES ('A', '2020-01-01', 'p', 1, 0.9, 1.0, 'risk', 'red', 'risk', '["because"]', 'system',
    '2020-01-02T00:00:00.000Z');
INSERT INTO decisions (declaration_id, batch, policy_name, policy_version, score, pi, stratum,
    lane, source, reasons_json, overrides, override_reason, actor, at)
VALUES ('A', '2020-01-01', 'p', 1, 0.9, 1.0, 'risk', 'yellow', 'override', '["override: AEO"]',
    1, 'AEO', 'ana', '2020-01-02T01:00:00.000Z');
"#;

/// A version 5 store migrated to version 6: its decisions are kept, without an item (`None`),
/// overrides of them copy none, and new decisions name theirs.
fn check_migrated_from_version_5(store: &mut Store) {
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let kept = store.decisions_for("A").unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].decision.item_no, None);
    assert_eq!(kept[0].decision.lane, Lane::Red);
    assert_eq!(kept[0].decision.reasons, ["because"]);
    assert_eq!(kept[1].overrides, Some(kept[0].id));
    assert_eq!(kept[1].decision.item_no, None);
    let again = store
        .override_decision("A", Lane::Green, "released")
        .unwrap();
    assert_eq!(again.decision.item_no, None);
    assert!(again.id > kept[1].id);
    store
        .record_decisions(&[NewDecision {
            item_no: Some(1),
            ..decision("B", "2020-01-02", "red", "risk", 1.0)
        }])
        .unwrap();
    assert_eq!(
        store.decisions_for("B").unwrap()[0].decision.item_no,
        Some(1)
    );
    // The rules still hold on the migrated table, and on the new column.
    let err = store
        .execute_raw("UPDATE decisions SET item_no = 2")
        .unwrap_err();
    assert!(err.contains("append-only"), "{err}");
    let err = store
        .execute_raw(
            "INSERT INTO decisions (declaration_id, batch, policy_name, policy_version, pi,
                 stratum, lane, source, reasons_json, actor, at, item_no)
             VALUES ('C', 'b', 'p', 1, 1.0, 'risk', 'red', 'risk', '[]', 'x', 'y', 0)",
        )
        .unwrap_err();
    assert!(err.to_lowercase().contains("check"), "{err}");
}

#[test]
fn a_version_5_store_migrates_to_6_keeping_its_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    crate::schema::migrate_to(&mut conn, &path, 5).unwrap();
    conn.execute_batch(V5_ROWS).unwrap();
    let version: u32 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 5);
    drop(conn);
    let mut store = Store::open(&path).unwrap();
    check_migrated_from_version_5(&mut store);
}

fn result(submission: &str, declaration: &str, fraud: bool, payload: &str) -> NewControlResult {
    NewControlResult {
        submission_id: submission.into(),
        declaration_id: declaration.into(),
        schema_version: "1.0.0".into(),
        outcome: if fraud { "revenue" } else { "no_irregularity" }.into(),
        label: Some(ControlLabel {
            fraud,
            critical: u8::from(fraud),
        }),
        payload_json: payload.into(),
        source: "test".into(),
    }
}

fn control_results_are_idempotent_and_labels_only_grow(store: &mut Subject) {
    import(
        store,
        "a.csv",
        lines(vec![item("A", 1, 1, None), item("A", 2, 1, None)]),
    )
    .unwrap();
    let clean = result("s1", "A", false, r#"{"x": 1}"#);
    let first = store.record_control_result(&clean).unwrap();
    assert!(matches!(first, Recorded::New(_)));
    assert_eq!(
        store.record_control_result(&clean).unwrap(),
        Recorded::Duplicate(first.id())
    );
    let changed = result("s1", "A", false, r#"{"x": 2}"#);
    let err = store.record_control_result(&changed).unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    assert!(
        matches!(err, StoreError::SubmissionConflict { .. }),
        "{err}"
    );
    let err = store
        .record_control_result(&result("s2", "NOPE", true, "{}"))
        .unwrap_err();
    assert!(err.to_string().contains("not in the store"), "{err}");
    assert!(
        matches!(err, StoreError::UnknownDeclaration { .. }),
        "{err}"
    );
    let a1 = key("A", 1);
    assert_eq!(store.item(&a1).unwrap().unwrap().label, label(0));
    // A later control finds fraud: both items are raised.
    store
        .record_control_result(&result("s3", "A", true, "{}"))
        .unwrap();
    assert_eq!(store.item(&a1).unwrap().unwrap().label, label(1));
    assert_eq!(store.item(&key("A", 2)).unwrap().unwrap().label, label(1));
    // A clean result afterwards lowers nothing.
    store
        .record_control_result(&result("s4", "A", false, "{}"))
        .unwrap();
    assert_eq!(store.item(&a1).unwrap().unwrap().label, label(1));
    assert_eq!(store.control_results_for("A").unwrap().len(), 3);
}

fn foreign(submission: &str, values: &str) -> crate::NewForeignResult {
    crate::NewForeignResult {
        submission_id: submission.into(),
        declaration_id: format!("pseudonym-of-{submission}"),
        outcome: "seizure".into(),
        label: label(1),
        inspected_on: "2024-03-01".into(),
        values_json: values.into(),
        context_json: Some(r#"{"origin_country": "CN"}"#.into()),
    }
}

fn foreign_document(results: Vec<crate::NewForeignResult>) -> crate::ForeignDocument {
    crate::ForeignDocument {
        sender: "NL".into(),
        format_version: 2,
        schema_version: "1.0.0".into(),
        generated_at: "2024-03-02T08:00:00Z".into(),
        source: "nl.json".into(),
        document_sha256: digest(7),
        results,
    }
}

fn foreign_results_are_kept_apart_whole_and_idempotent(store: &mut Subject) {
    import(store, "a.csv", lines(vec![item("A", 1, 1, None)])).unwrap();
    let document = foreign_document(vec![foreign("p1", "{}"), foreign("p2", r#"{"x": 1}"#)]);
    let report = store.record_foreign_results(&document).unwrap();
    assert_eq!((report.recorded, report.duplicates), (2, 0));
    // Again: nothing twice; one result more: only it is stored.
    let mut more = document.clone();
    more.results.push(foreign("p3", "{}"));
    // A context changed by the sender since (an override, a newer format) is no conflict.
    more.results[0].context_json = None;
    let report = store.record_foreign_results(&more).unwrap();
    assert_eq!((report.recorded, report.duplicates), (1, 2));
    let stored = store.foreign_results().unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1].result, foreign("p2", r#"{"x": 1}"#));
    assert_eq!(
        (
            stored[0].sender.as_str(),
            stored[0].format_version,
            stored[0].source.as_str()
        ),
        ("NL", 2, "nl.json")
    );
    // The same pseudonym with other values refuses the whole document, naming the result.
    let mut changed = foreign_document(vec![foreign("p4", "{}"), foreign("p1", r#"{"y": 2}"#)]);
    let err = store.record_foreign_results(&changed).unwrap_err();
    assert!(
        err.to_string()
            .contains("results[1]: NL already sent submission p1"),
        "{err}"
    );
    assert_eq!(store.foreign_results().unwrap().len(), 3);
    // Another sender's pseudonym may be the same text.
    changed.sender = "BE".into();
    assert_eq!(store.record_foreign_results(&changed).unwrap().recorded, 2);
    // Foreign results label no item and are not this store's results.
    assert_eq!(store.item(&key("A", 1)).unwrap().unwrap().label, None);
    assert!(store.control_results().unwrap().is_empty());
    // Not JSON: refused before anything is written.
    let err = store
        .record_foreign_results(&foreign_document(vec![foreign("p9", "{")]))
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let entries = store.audit_entries(10).unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.action == "foreign_results")
            .count(),
        3
    );
}

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn digest(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn users_are_added_once_with_a_known_role_and_a_hash(store: &mut Subject) {
    store.set_actor("admin-cli");
    store.add_user("ana", "analyst", HASH).unwrap();
    let ana = store.user("ana").unwrap().unwrap();
    assert_eq!(
        (
            ana.name.as_str(),
            ana.role.as_str(),
            ana.password_hash.as_str()
        ),
        ("ana", "analyst", HASH)
    );
    assert!(!ana.created_at.is_empty());
    assert_eq!(store.user("nobody").unwrap(), None);

    // A name is never silently replaced; roles, hashes and names are checked.
    let err = store.add_user("ana", "admin", HASH).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let err = store.add_user("bob", "boss", HASH).unwrap_err();
    assert!(
        err.to_string().contains("'boss' is not one of officer"),
        "{err}"
    );
    let err = store.add_user("bob", "officer", "hunter2").unwrap_err();
    assert!(err.to_string().contains("argon2id"), "{err}");
    assert!(store.add_user("", "officer", HASH).is_err());
    // The schema refuses a plain password even past the store's checks.
    let err = store
        .execute_raw("INSERT INTO users (name, role, password_hash, created_at) VALUES ('x', 'admin', 'pw', 'now')")
        .unwrap_err();
    assert!(err.to_lowercase().contains("check constraint"), "{err}");
    assert_eq!(store.users().unwrap().len(), 1);

    let audit = store.audit_entries(1).unwrap();
    assert_eq!(
        (
            audit[0].actor.as_str(),
            audit[0].action.as_str(),
            audit[0].subject.as_str(),
            audit[0].detail_json.as_str()
        ),
        ("admin-cli", "user_add", "ana", r#"{"role":"analyst"}"#)
    );
    assert!(!audit[0].detail_json.contains("argon2"));
}

fn items_sharing_a_party_or_code_and_label_counts_look_only_before_the_date(store: &mut Subject) {
    let with = |id: &str, day: u32, label, change: fn(&mut DeclarationItem)| {
        let mut d = item(id, 1, day, label);
        d.importer_id = format!("IMP-{id}");
        d.declarant_id = format!("DEC-{id}");
        d.seller_id = None;
        d.hs6 = HsCode::parse("010121").unwrap();
        change(&mut d);
        d
    };
    let items = vec![
        with("P", 9, None, |_| {}), // the item asked about
        with("I", 3, label(0), |d| d.importer_id = "IMP-P".into()),
        with("D", 2, label(1), |d| d.declarant_id = "DEC-P".into()),
        with("S", 4, None, |d| d.seller_id = Some("SELL".into())),
        with("H", 1, None, |d| d.hs6 = HsCode::parse("440890").unwrap()),
        with("X", 5, label(0), |_| {}), // nothing shared
        with("Y", 6, None, |_| {}),     // nothing shared
        with("L", 9, None, |d| d.importer_id = "IMP-P".into()), // same day: not before
    ];
    import(store, "a.csv", lines(items)).unwrap();
    let filter = SharingFilter {
        before: NaiveDate::from_ymd_opt(2020, 1, 9).unwrap(),
        importer_id: "IMP-P".into(),
        declarant_id: "DEC-P".into(),
        seller_id: Some("SELL".into()),
        hs6: "440890".into(),
        linked_party_ids: Vec::new(),
    };
    let ids = |filter: &SharingFilter| -> Vec<String> {
        store
            .items_sharing(filter)
            .unwrap()
            .into_iter()
            .map(|d| d.key.declaration_id)
            .collect()
    };
    assert_eq!(
        ids(&filter),
        ["H", "D", "I", "S"],
        "date order, only before the day"
    );
    let no_seller = SharingFilter {
        seller_id: None,
        ..filter.clone()
    };
    assert_eq!(
        ids(&no_seller),
        ["H", "D", "I"],
        "no seller matches no seller"
    );
    // Linked ids bring their items, in either role.
    let linked = SharingFilter {
        linked_party_ids: vec!["IMP-X".into(), "DEC-Y".into(), "IMP-L".into()],
        ..filter.clone()
    };
    assert_eq!(ids(&linked), ["H", "D", "I", "S", "X", "Y"]);
    let counts = store
        .label_counts(NaiveDate::from_ymd_opt(2020, 1, 9).unwrap())
        .unwrap();
    assert_eq!((counts.labelled, counts.frauds), (3, 1));
    let counts = store
        .label_counts(NaiveDate::from_ymd_opt(2020, 1, 3).unwrap())
        .unwrap();
    assert_eq!((counts.labelled, counts.frauds), (1, 1));
}

fn login_failures_are_counted_per_key_and_wait_until_the_window_passes(store: &mut Subject) {
    let keys = |user: &str, ip: &str| vec![format!("user:{user}"), format!("ip:{ip}")];
    let (window, max) = (60_000, 3);
    let t0 = 1_700_000_000_000_i64;
    // Three failures of olga from three addresses, a second apart.
    for (i, ip) in ["a", "b", "c"].into_iter().enumerate() {
        let gate = store
            .begin_login(&keys("olga", ip), t0 + 1000 * i as i64, window, max)
            .unwrap();
        assert!(
            matches!(gate, LoginGate::Counted(ref ids) if ids.len() == 2),
            "{gate:?}"
        );
    }
    // The fourth waits until the first is out of the window (60 s after t0), rounded up.
    assert_eq!(
        store
            .begin_login(&keys("olga", "d"), t0 + 2500, window, max)
            .unwrap(),
        LoginGate::Wait { seconds: 58 }
    );
    // Another user from a fresh address is not affected, nor from an address olga used once.
    assert!(matches!(
        store
            .begin_login(&keys("ana", "e"), t0 + 2500, window, max)
            .unwrap(),
        LoginGate::Counted(_)
    ));
    assert!(matches!(
        store
            .begin_login(&keys("eve", "a"), t0 + 2500, window, max)
            .unwrap(),
        LoginGate::Counted(_)
    ));
    // A right password takes its attempt back.
    let LoginGate::Counted(ids) = store
        .begin_login(&keys("ben", "f"), t0, window, max)
        .unwrap()
    else {
        panic!("ben is not limited")
    };
    store.forget_login_failures(&ids).unwrap();
    for i in 0..max {
        assert!(matches!(
            store
                .begin_login(&keys("ben", &format!("g{i}")), t0, window, max)
                .unwrap(),
            LoginGate::Counted(_)
        ));
    }
    assert!(matches!(
        store
            .begin_login(&keys("ben", "h"), t0, window, max)
            .unwrap(),
        LoginGate::Wait { seconds: 60 }
    ));
    // Once the window has passed, olga may try again; old failures are swept.
    assert!(matches!(
        store
            .begin_login(&keys("olga", "d"), t0 + window + 1, window, max)
            .unwrap(),
        LoginGate::Counted(_)
    ));
    assert_eq!(
        store
            .query_text_raw(
                "SELECT CAST(count(*) AS TEXT) FROM login_failures WHERE key = 'user:olga'"
            )
            .unwrap(),
        Some("3".to_string()),
        "the failures at t0 swept, those at t0 + 1 s and + 2 s kept, the new one added"
    );
    // Bad arguments are refused.
    assert!(store.begin_login(&[], t0, window, max).is_err());
    assert!(store.begin_login(&keys("x", "y"), t0, 0, max).is_err());
}

fn api_tokens_find_their_user_until_revoked(store: &mut Subject) {
    store.add_user("ops", "officer", HASH).unwrap();
    let token = digest(0xab);
    store.add_api_token("ops", &token).unwrap();
    assert_eq!(store.user_for_token(&token).unwrap().unwrap().name, "ops");
    assert_eq!(store.user_for_token(&digest(1)).unwrap(), None);
    let audit = store.audit_entries(1).unwrap();
    assert_eq!(
        (audit[0].action.as_str(), audit[0].detail_json.as_str()),
        ("token_create", r#"{"token_sha256_prefix":"abababab"}"#)
    );

    let err = store.add_api_token("ghost", &digest(2)).unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser { .. }), "{err}");
    let err = store.add_api_token("ops", "not-a-digest").unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    // The same token twice is refused (primary key).
    assert!(store.add_api_token("ops", &token).is_err());

    store.add_user("ana", "analyst", HASH).unwrap();
    store.add_api_token("ana", &digest(3)).unwrap();
    let listed = store.api_tokens(Some("ops")).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].token_sha256.as_str(),
            listed[0].user.as_str(),
            listed[0].revoked
        ),
        (token.as_str(), "ops", false)
    );
    assert_eq!(store.api_tokens(None).unwrap().len(), 2);
    assert!(store.api_tokens(Some("nobody")).unwrap().is_empty());

    assert!(store.revoke_api_token(&token).unwrap());
    assert!(!store.revoke_api_token(&token).unwrap());
    assert_eq!(store.user_for_token(&token).unwrap(), None);
    assert!(store.api_tokens(Some("ops")).unwrap()[0].revoked);
    // A revoked token stays revoked.
    let err = store
        .execute_raw("UPDATE api_tokens SET revoked = 0")
        .unwrap_err();
    assert!(err.to_string().contains("only be revoked"), "{err}");
}

fn sessions_carry_user_role_and_csrf_token_until_they_expire_or_end(store: &mut Subject) {
    store.add_user("mia", "manager", HASH).unwrap();
    let csrf = "c".repeat(64);
    let expires = store
        .create_session(&digest(1), "mia", &csrf, 3600)
        .unwrap();
    let session = store.session(&digest(1)).unwrap().unwrap();
    assert_eq!(
        (
            session.user.as_str(),
            session.role.as_str(),
            session.csrf_token.as_str(),
            session.expires_at.as_str()
        ),
        ("mia", "manager", csrf.as_str(), expires.as_str())
    );
    assert_eq!(store.session(&digest(2)).unwrap(), None);
    let audit = store.audit_entries(1).unwrap();
    assert_eq!(
        (audit[0].actor.as_str(), audit[0].action.as_str()),
        ("mia", "login")
    );

    // An expired session is not found, and is deleted when the next one opens.
    store.create_session(&digest(3), "mia", &csrf, 0).unwrap();
    assert_eq!(store.session(&digest(3)).unwrap(), None);
    store.create_session(&digest(4), "mia", &csrf, 60).unwrap();
    let left = store
        .query_text_raw("SELECT CAST(count(*) AS TEXT) FROM sessions")
        .unwrap();
    assert_eq!(left.as_deref(), Some("2"));

    assert!(store.delete_session(&digest(1)).unwrap());
    assert!(!store.delete_session(&digest(1)).unwrap());
    assert_eq!(store.session(&digest(1)).unwrap(), None);
    assert_eq!(store.audit_entries(1).unwrap()[0].action, "logout");

    let err = store
        .create_session(&digest(5), "ghost", &csrf, 60)
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser { .. }), "{err}");
    assert!(store
        .create_session(&digest(5), "mia", "short", 60)
        .is_err());
}
