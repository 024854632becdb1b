//! Declaration items: import (insert, idempotent re-import, late labels, conflicts) and queries.

use std::convert::Infallible;
use std::fmt::Display;

use borderlens_domain::{ControlLabel, DeclarationItem, HsCode, ItemKey};
use chrono::NaiveDate;
use rusqlite::types::Type;
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use crate::audit::insert_audit;
use crate::error::Context;
use crate::{from_sql_int, key_text, sql_int, Store, StoreError, NOW};

/// The item columns, in [`read_item`] order.
pub(crate) const ITEM_COLUMNS: &str =
    "declaration_id, item_no, date, office_id, process_type, import_type, \
     import_use, payment_type, transport_mode, declarant_id, importer_id, seller_id, courier_id, \
     hs6, departure_country, origin_country, tax_rate, tax_type, origin_indicator, net_mass, \
     item_price, fraud, critical_fraud";

/// Dates are stored as ISO text, so that text order is date order.
pub(crate) const DATE_FORMAT: &str = "%Y-%m-%d";

/// What an import did.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct ImportOutcome {
    /// Items with a new key, stored.
    pub inserted: u64,
    /// Items already stored with identical content (or stored with a label, arriving without).
    pub unchanged: u64,
    /// Items stored without a label that arrived with one: the label was added.
    pub labelled: u64,
    /// Items whose declared content or label differs from the stored item: the stored item was
    /// kept as it was, the difference recorded (see [`Store::conflicts_for`]).
    pub conflicts: Vec<ImportConflict>,
}

impl ImportOutcome {
    /// Items seen: inserted + unchanged + labelled + conflicts.
    pub fn total(&self) -> u64 {
        self.inserted + self.unchanged + self.labelled + self.conflicts.len() as u64
    }
}

/// An imported item that differs from the stored item with the same key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ImportConflict {
    /// The key.
    pub key: ItemKey,
    /// The line of the incoming item in its source.
    pub line: u64,
    /// The fields that differ (declared fields, or `label`).
    pub differences: Vec<FieldDifference>,
}

/// One field that differs between the stored item and an incoming one.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FieldDifference {
    /// The [`DeclarationItem`] field name (`net_mass`, `hs6`, ...), or `label`.
    pub field: &'static str,
    /// The stored value, as text (empty for an absent optional value).
    pub stored: String,
    /// The incoming value, as text.
    pub incoming: String,
}

/// A conflict as recorded in the store: one row per differing field.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecordedConflict {
    /// When the import ran (UTC, ISO 8601).
    pub at: String,
    /// The import's source name.
    pub source: String,
    /// The line of the incoming item in its source.
    pub line: u64,
    /// The field name (see [`FieldDifference::field`]).
    pub field: String,
    /// The stored value, as text.
    pub stored: String,
    /// The incoming value that was not stored, as text.
    pub incoming: String,
}

/// Which items [`Store::items`] returns.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ItemFilter {
    /// Only items declared on or after this date.
    pub from: Option<NaiveDate>,
    /// Only items declared on or before this date (inclusive).
    pub to: Option<NaiveDate>,
    /// Only items with a control label.
    pub labelled_only: bool,
}

/// Which items [`Store::items_sharing`] returns: those dated before `before` that share at
/// least one of the values (the parties and the HS code of one declaration item).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SharingFilter {
    /// Only items declared strictly before this date.
    pub before: NaiveDate,
    /// Items of this importer ...
    pub importer_id: String,
    /// ... or of this declarant ...
    pub declarant_id: String,
    /// ... or of this seller (none when `None`) ...
    pub seller_id: Option<String>,
    /// ... or of this HS code.
    pub hs6: String,
}

/// How many items are labelled, and how many of them as fraud ([`Store::label_counts`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LabelCounts {
    /// Items with a control label.
    pub labelled: u64,
    /// Of those, labelled fraud.
    pub frauds: u64,
}

impl Store {
    /// Imports `(item, line)` pairs read from `source` (a file name, recorded with each item),
    /// all in one transaction: either every item of the call is handled, or (on error) nothing
    /// of the call is kept.
    ///
    /// Per key: new -> inserted; same content -> unchanged; stored without a label and arriving
    /// with one -> label added (`labelled`); any other difference in declared content or label ->
    /// conflict, the stored item kept untouched. Items are streamed: pass an iterator, not a
    /// collected `Vec`, for large files. Writes one `import` audit entry with the counts.
    pub fn import<I>(&mut self, source: &str, items: I) -> Result<ImportOutcome, StoreError>
    where
        I: IntoIterator<Item = (DeclarationItem, u64)>,
    {
        self.try_import(source, items.into_iter().map(Ok::<_, Infallible>))
    }

    /// Like [`Store::import`], but the stream may yield an error (e.g. the user pressed Ctrl-C):
    /// the import then stops with [`StoreError::Aborted`] and nothing of it is kept.
    pub fn try_import<I, E>(&mut self, source: &str, items: I) -> Result<ImportOutcome, StoreError>
    where
        I: IntoIterator<Item = Result<(DeclarationItem, u64), E>>,
        E: Display,
    {
        let what = |doing: &str| format!("import of '{source}': {doing}");
        let actor = self.actor.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(|| what("starting the transaction"))?;
        let now: String = tx
            .query_row(&format!("SELECT {NOW}"), [], |row| row.get(0))
            .ctx(|| what("reading the clock"))?;
        let mut outcome = ImportOutcome::default();
        {
            let mut select = tx
                .prepare_cached(&format!(
                    "SELECT {ITEM_COLUMNS} FROM declaration_items
                     WHERE declaration_id = ?1 AND item_no = ?2"
                ))
                .ctx(|| what("preparing"))?;
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO declaration_items ({ITEM_COLUMNS}, imported_at, source_file,
                         source_line, labelled_at, label_source, label_line)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                         ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26,
                         CASE WHEN ?22 IS NULL THEN NULL ELSE ?24 END,
                         CASE WHEN ?22 IS NULL THEN NULL ELSE ?25 END,
                         CASE WHEN ?22 IS NULL THEN NULL ELSE ?26 END)"
                ))
                .ctx(|| what("preparing"))?;
            let mut add_label = tx
                .prepare_cached(
                    "UPDATE declaration_items
                     SET fraud = ?3, critical_fraud = ?4, labelled_at = ?5, label_source = ?6,
                         label_line = ?7
                     WHERE declaration_id = ?1 AND item_no = ?2 AND fraud IS NULL",
                )
                .ctx(|| what("preparing"))?;
            let mut record_conflict = tx
                .prepare_cached(
                    "INSERT INTO import_conflicts (at, source_file, source_line, declaration_id,
                         item_no, field, stored, incoming)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .ctx(|| what("preparing"))?;

            for entry in items {
                let (item, line) = entry.map_err(|e| StoreError::Aborted {
                    file: source.to_string(),
                    reason: e.to_string(),
                })?;
                validate(&item).map_err(|reason| StoreError::InvalidItem {
                    file: source.to_string(),
                    line,
                    key: key_text(&item.key),
                    reason,
                })?;
                let key = &item.key;
                let doing =
                    |verb: &str| what(&format!("{verb} item {} (line {line})", key_text(key)));
                let stored = select
                    .query_row(params![key.declaration_id, key.item_no], read_item)
                    .optional()
                    .ctx(|| doing("reading stored"))?;
                let Some(stored) = stored else {
                    let (fraud, critical) = label_columns(item.label);
                    insert
                        .execute(params![
                            key.declaration_id,
                            key.item_no,
                            item.date.format(DATE_FORMAT).to_string(),
                            item.office_id,
                            item.process_type,
                            item.import_type,
                            item.import_use,
                            item.payment_type,
                            item.transport_mode,
                            item.declarant_id,
                            item.importer_id,
                            item.seller_id,
                            item.courier_id,
                            item.hs6.as_str(),
                            item.departure_country,
                            item.origin_country,
                            item.tax_rate,
                            item.tax_type,
                            item.origin_indicator,
                            item.net_mass,
                            item.item_price,
                            fraud,
                            critical,
                            now,
                            source,
                            sql_int(line),
                        ])
                        .ctx(|| doing("inserting"))?;
                    outcome.inserted += 1;
                    continue;
                };
                let mut differences = declared_differences(&stored, &item);
                if differences.is_empty() {
                    match (stored.label, item.label) {
                        (_, None) => outcome.unchanged += 1,
                        (Some(old), Some(new)) if old == new => outcome.unchanged += 1,
                        (None, Some(new)) => {
                            let (fraud, critical) = label_columns(Some(new));
                            add_label
                                .execute(params![
                                    key.declaration_id,
                                    key.item_no,
                                    fraud,
                                    critical,
                                    now,
                                    source,
                                    sql_int(line)
                                ])
                                .ctx(|| doing("labelling"))?;
                            outcome.labelled += 1;
                        }
                        (Some(_), Some(_)) => differences.push(FieldDifference {
                            field: "label",
                            stored: label_text(stored.label),
                            incoming: label_text(item.label),
                        }),
                    }
                }
                if differences.is_empty() {
                    continue;
                }
                for difference in &differences {
                    record_conflict
                        .execute(params![
                            now,
                            source,
                            sql_int(line),
                            key.declaration_id,
                            key.item_no,
                            difference.field,
                            difference.stored,
                            difference.incoming,
                        ])
                        .ctx(|| doing("recording a conflict on"))?;
                }
                outcome.conflicts.push(ImportConflict {
                    key: item.key.clone(),
                    line,
                    differences,
                });
            }
        }
        let detail: String = tx
            .query_row(
                "SELECT json_object('inserted', ?1, 'unchanged', ?2, 'labelled', ?3,
                     'conflicts', ?4)",
                params![
                    sql_int(outcome.inserted),
                    sql_int(outcome.unchanged),
                    sql_int(outcome.labelled),
                    sql_int(outcome.conflicts.len() as u64)
                ],
                |row| row.get(0),
            )
            .ctx(|| what("writing the audit detail"))?;
        insert_audit(&tx, &actor, "import", source, &detail)?;
        tx.commit().ctx(|| what("committing"))?;
        Ok(outcome)
    }

    /// Items matching `filter`, ordered by date, then declaration id, then item number.
    pub fn items(&self, filter: &ItemFilter) -> Result<Vec<DeclarationItem>, StoreError> {
        let what = || "reading declaration items".to_string();
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM declaration_items
                 WHERE (?1 IS NULL OR date >= ?1) AND (?2 IS NULL OR date <= ?2)
                   AND (NOT ?3 OR fraud IS NOT NULL)
                 ORDER BY date, declaration_id, item_no"
            ))
            .ctx(what)?;
        let date = |d: Option<NaiveDate>| d.map(|d| d.format(DATE_FORMAT).to_string());
        let rows = statement
            .query_map(
                params![date(filter.from), date(filter.to), filter.labelled_only],
                read_item,
            )
            .ctx(what)?;
        rows.collect::<Result<_, _>>().ctx(what)
    }

    /// The items of `filter`, in [`Store::items`] order: what one item's history features read
    /// (its importer's, declarant's, seller's and HS code's past), without every earlier item.
    pub fn items_sharing(
        &self,
        filter: &SharingFilter,
    ) -> Result<Vec<DeclarationItem>, StoreError> {
        let what = || "reading the items that share a party or an HS code".to_string();
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM declaration_items
                 WHERE date < ?1 AND (importer_id = ?2 OR declarant_id = ?3 OR seller_id = ?4
                       OR hs6 = ?5)
                 ORDER BY date, declaration_id, item_no"
            ))
            .ctx(what)?;
        let rows = statement
            .query_map(
                params![
                    filter.before.format(DATE_FORMAT).to_string(),
                    filter.importer_id,
                    filter.declarant_id,
                    filter.seller_id,
                    filter.hs6
                ],
                read_item,
            )
            .ctx(what)?;
        rows.collect::<Result<_, _>>().ctx(what)
    }

    /// How many items dated before `before` are labelled, and how many as fraud.
    pub fn label_counts(&self, before: NaiveDate) -> Result<LabelCounts, StoreError> {
        let (labelled, frauds): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT count(fraud), coalesce(sum(fraud), 0) FROM declaration_items
                 WHERE date < ?1",
            )
            .and_then(|mut statement| {
                statement.query_row([before.format(DATE_FORMAT).to_string()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
            })
            .ctx(|| "counting labelled items".to_string())?;
        Ok(LabelCounts {
            labelled: u64::try_from(labelled).unwrap_or(0),
            frauds: u64::try_from(frauds).unwrap_or(0),
        })
    }

    /// The item with `key`, if stored.
    pub fn item(&self, key: &ItemKey) -> Result<Option<DeclarationItem>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM declaration_items
                 WHERE declaration_id = ?1 AND item_no = ?2"
            ))
            .and_then(|mut statement| {
                statement
                    .query_row(params![key.declaration_id, key.item_no], read_item)
                    .optional()
            })
            .ctx(|| format!("reading item {}", key_text(key)))
    }

    /// Up to `limit` items of other declarations (`exclude` left out) that share the importer
    /// or the declarant, newest first, each with what links it (`importer`, `declarant`, or
    /// `importer, declarant`).
    pub fn related_items(
        &self,
        importer_id: &str,
        declarant_id: &str,
        exclude: &str,
        limit: usize,
    ) -> Result<Vec<(DeclarationItem, String)>, StoreError> {
        let what = || format!("reading the declarations related to '{exclude}'");
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM declaration_items
                 WHERE (importer_id = ?1 OR declarant_id = ?2) AND declaration_id != ?3
                 ORDER BY date DESC, declaration_id, item_no LIMIT ?4"
            ))
            .ctx(what)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(
                params![importer_id, declarant_id, exclude, limit],
                read_item,
            )
            .ctx(what)?;
        let items: Vec<DeclarationItem> = rows.collect::<Result<_, _>>().ctx(what)?;
        Ok(items
            .into_iter()
            .map(|item| {
                let link = match (
                    item.importer_id == importer_id,
                    item.declarant_id == declarant_id,
                ) {
                    (true, true) => "importer, declarant",
                    (true, false) => "importer",
                    _ => "declarant",
                };
                (item, link.to_string())
            })
            .collect())
    }

    /// The date of the newest stored item, if any.
    pub fn last_item_date(&self) -> Result<Option<NaiveDate>, StoreError> {
        let what = || "reading the newest declaration date".to_string();
        let text: Option<String> = self
            .conn
            .query_row("SELECT max(date) FROM declaration_items", [], |row| {
                row.get(0)
            })
            .ctx(what)?;
        Ok(text.and_then(|t| NaiveDate::parse_from_str(&t, DATE_FORMAT).ok()))
    }

    /// Number of stored items.
    pub fn count_items(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM declaration_items", [], |row| {
                row.get(0).map(from_sql_int)
            })
            .ctx(|| "counting declaration items".to_string())
    }

    /// The conflicts recorded for `key` by past imports, oldest first.
    pub fn conflicts_for(&self, key: &ItemKey) -> Result<Vec<RecordedConflict>, StoreError> {
        let what = || format!("reading the conflicts of item {}", key_text(key));
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT at, source_file, source_line, field, stored, incoming
                 FROM import_conflicts WHERE declaration_id = ?1 AND item_no = ?2 ORDER BY id",
            )
            .ctx(what)?;
        let rows = statement
            .query_map(params![key.declaration_id, key.item_no], |row| {
                Ok(RecordedConflict {
                    at: row.get(0)?,
                    source: row.get(1)?,
                    line: from_sql_int(row.get(2)?),
                    field: row.get(3)?,
                    stored: row.get(4)?,
                    incoming: row.get(5)?,
                })
            })
            .ctx(what)?;
        rows.collect::<Result<_, _>>().ctx(what)
    }
}

/// What the schema would refuse, said in words.
pub(crate) fn validate(item: &DeclarationItem) -> Result<(), String> {
    if item.key.declaration_id.is_empty() {
        return Err("empty declaration id".to_string());
    }
    if item.key.item_no == 0 {
        return Err("item number 0 (item numbers start at 1)".to_string());
    }
    for (name, value) in [
        ("tax_rate", item.tax_rate),
        ("net_mass", item.net_mass),
        ("item_price", item.item_price),
    ] {
        if !value.is_finite() || value < 0.0 {
            return Err(format!(
                "{name} {value} is not a finite non-negative number"
            ));
        }
    }
    if let Some(label) = item.label {
        if label.critical > 2 || label.fraud != (label.critical > 0) {
            return Err(format!("inconsistent label ({})", label_text(Some(label))));
        }
    }
    Ok(())
}

/// `(fraud, critical_fraud)` column values.
pub(crate) fn label_columns(label: Option<ControlLabel>) -> (Option<u8>, Option<u8>) {
    match label {
        Some(label) => (Some(u8::from(label.fraud)), Some(label.critical)),
        None => (None, None),
    }
}

pub(crate) fn label_text(label: Option<ControlLabel>) -> String {
    match label {
        Some(label) => format!(
            "fraud={} critical={}",
            u8::from(label.fraud),
            label.critical
        ),
        None => String::new(),
    }
}

/// The declared fields (all but the label) in which `stored` and `incoming` differ.
pub(crate) fn declared_differences(
    stored: &DeclarationItem,
    incoming: &DeclarationItem,
) -> Vec<FieldDifference> {
    let mut out = Vec::new();
    let mut text = |field: &'static str, a: &str, b: &str| {
        if a != b {
            out.push(FieldDifference {
                field,
                stored: a.to_string(),
                incoming: b.to_string(),
            });
        }
    };
    let (s, i) = (stored, incoming);
    text("date", &s.date.to_string(), &i.date.to_string());
    text("office_id", &s.office_id, &i.office_id);
    text("process_type", &s.process_type, &i.process_type);
    text("import_type", &s.import_type, &i.import_type);
    text("import_use", &s.import_use, &i.import_use);
    text("payment_type", &s.payment_type, &i.payment_type);
    text("transport_mode", &s.transport_mode, &i.transport_mode);
    text("declarant_id", &s.declarant_id, &i.declarant_id);
    text("importer_id", &s.importer_id, &i.importer_id);
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    if s.seller_id != i.seller_id {
        text("seller_id", &opt(&s.seller_id), &opt(&i.seller_id));
    }
    if s.courier_id != i.courier_id {
        text("courier_id", &opt(&s.courier_id), &opt(&i.courier_id));
    }
    text("hs6", s.hs6.as_str(), i.hs6.as_str());
    text(
        "departure_country",
        &s.departure_country,
        &i.departure_country,
    );
    text("origin_country", &s.origin_country, &i.origin_country);
    text("tax_type", &s.tax_type, &i.tax_type);
    text("origin_indicator", &s.origin_indicator, &i.origin_indicator);
    for (field, a, b) in [
        ("tax_rate", s.tax_rate, i.tax_rate),
        ("net_mass", s.net_mass, i.net_mass),
        ("item_price", s.item_price, i.item_price),
    ] {
        if a != b {
            out.push(FieldDifference {
                field,
                stored: a.to_string(),
                incoming: b.to_string(),
            });
        }
    }
    out
}

/// A conversion failure of column `index`, for values the schema should have prevented.
fn bad_value(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, message.into())
}

/// Reads a row of [`ITEM_COLUMNS`].
fn read_item(row: &Row<'_>) -> rusqlite::Result<DeclarationItem> {
    let date: String = row.get(2)?;
    let date = NaiveDate::parse_from_str(&date, DATE_FORMAT)
        .map_err(|e| bad_value(2, format!("stored date '{date}': {e}")))?;
    let hs6: String = row.get(13)?;
    let hs6 = HsCode::parse(&hs6).map_err(|e| bad_value(13, format!("stored {e}")))?;
    let fraud: Option<u8> = row.get(21)?;
    let critical: Option<u8> = row.get(22)?;
    let label = match (fraud, critical) {
        (Some(fraud), Some(critical)) => Some(ControlLabel {
            fraud: fraud == 1,
            critical,
        }),
        _ => None,
    };
    Ok(DeclarationItem {
        key: ItemKey {
            declaration_id: row.get(0)?,
            item_no: row.get(1)?,
        },
        date,
        office_id: row.get(3)?,
        process_type: row.get(4)?,
        import_type: row.get(5)?,
        import_use: row.get(6)?,
        payment_type: row.get(7)?,
        transport_mode: row.get(8)?,
        declarant_id: row.get(9)?,
        importer_id: row.get(10)?,
        seller_id: row.get(11)?,
        courier_id: row.get(12)?,
        hs6,
        departure_country: row.get(14)?,
        origin_country: row.get(15)?,
        tax_rate: row.get(16)?,
        tax_type: row.get(17)?,
        origin_indicator: row.get(18)?,
        net_mass: row.get(19)?,
        item_price: row.get(20)?,
        label,
    })
}
