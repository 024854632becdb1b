//! Declaration items on PostgreSQL: import and queries (see `crate::items`, whose rules these
//! are: new keys inserted, identical re-imports unchanged, late labels added, conflicts recorded
//! and the original kept).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt::Display;

use borderlens_domain::{ControlLabel, DeclarationItem, HsCode, ItemKey};
use chrono::NaiveDate;
use postgres::{Row, Statement, Transaction};

use super::audit::insert_audit;
use super::{big, write_tx, PgStore, NOW};
use crate::error::Context;
use crate::items::{
    declared_differences, label_columns, label_text, validate, DATE_FORMAT, ITEM_COLUMNS,
};
use crate::{
    from_sql_int, key_text, sql_int, FieldDifference, ImportConflict, ImportOutcome, ItemFilter,
    LabelCounts, RecordedConflict, SharingFilter, StoreError,
};

impl PgStore {
    /// See [`Store::import`](crate::Store::import).
    pub fn import<I>(&mut self, source: &str, items: I) -> Result<ImportOutcome, StoreError>
    where
        I: IntoIterator<Item = (DeclarationItem, u64)>,
    {
        self.try_import(source, items.into_iter().map(Ok::<_, Infallible>))
    }

    /// See [`Store::try_import`](crate::Store::try_import).
    pub fn try_import<I, E>(&mut self, source: &str, items: I) -> Result<ImportOutcome, StoreError>
    where
        I: IntoIterator<Item = Result<(DeclarationItem, u64), E>>,
        E: Display,
    {
        let what = |doing: &str| format!("import of '{source}': {doing}");
        let actor = self.actor.clone();
        let mut tx = write_tx(self.client.get_mut()).ctx(|| what("starting the transaction"))?;
        let now: String = tx
            .query_one(&format!("SELECT {NOW}"), &[])
            .and_then(|row| row.try_get(0))
            .ctx(|| what("reading the clock"))?;
        let select = tx
            .prepare(&format!(
                "SELECT {ITEM_COLUMNS} FROM declaration_items
                 WHERE (declaration_id, item_no) IN
                     (SELECT * FROM unnest($1::text[], $2::bigint[]))"
            ))
            .ctx(|| what("preparing"))?;
        let insert = tx.prepare(INSERT_NEW).ctx(|| what("preparing"))?;
        let add_label = tx
            .prepare(
                "UPDATE declaration_items
                 SET fraud = $3, critical_fraud = $4, labelled_at = $5, label_source = $6,
                     label_line = $7
                 WHERE declaration_id = $1 AND item_no = $2 AND fraud IS NULL",
            )
            .ctx(|| what("preparing"))?;
        let record_conflict = tx
            .prepare(
                "INSERT INTO import_conflicts (at, source_file, source_line, declaration_id,
                     item_no, field, stored, incoming)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .ctx(|| what("preparing"))?;
        let mut outcome = ImportOutcome::default();
        let mut items = items.into_iter();
        // Items are handled in chunks of distinct keys: one query reads the stored items of a
        // chunk, one statement inserts its new items. A key seen again starts a new chunk, so
        // that it meets the item stored before it, as when items are handled one by one.
        let mut carried: Option<(DeclarationItem, u64)> = None;
        loop {
            let mut chunk: Vec<(DeclarationItem, u64)> = Vec::with_capacity(CHUNK);
            let mut keys: HashSet<ItemKey> = HashSet::with_capacity(CHUNK);
            if let Some((item, line)) = carried.take() {
                keys.insert(item.key.clone());
                chunk.push((item, line));
            }
            while chunk.len() < CHUNK {
                let Some(entry) = items.next() else {
                    break;
                };
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
                if !keys.insert(item.key.clone()) {
                    carried = Some((item, line));
                    break;
                }
                chunk.push((item, line));
            }
            if chunk.is_empty() {
                break;
            }
            let ids: Vec<&str> = chunk
                .iter()
                .map(|(item, _)| item.key.declaration_id.as_str())
                .collect();
            let numbers: Vec<i64> = chunk
                .iter()
                .map(|(item, _)| big(item.key.item_no))
                .collect();
            let mut stored: HashMap<ItemKey, DeclarationItem> = HashMap::new();
            for row in tx
                .query(&select, &[&ids, &numbers])
                .ctx(|| what("reading stored items"))?
            {
                let item = read_item(&row)?;
                stored.insert(item.key.clone(), item);
            }
            let mut new = NewItems::default();
            for (item, line) in chunk {
                let key = &item.key;
                let item_no = big(key.item_no);
                let line_no = sql_int(line);
                let doing =
                    |verb: &str| what(&format!("{verb} item {} (line {line})", key_text(key)));
                let Some(stored) = stored.get(key) else {
                    new.push(&item, line_no);
                    outcome.inserted += 1;
                    continue;
                };
                let mut differences = declared_differences(stored, &item);
                if differences.is_empty() {
                    match (stored.label, item.label) {
                        (_, None) => outcome.unchanged += 1,
                        (Some(old), Some(new)) if old == new => outcome.unchanged += 1,
                        (None, Some(new)) => {
                            let (fraud, critical) = label_int(Some(new));
                            tx.execute(
                                &add_label,
                                &[
                                    &key.declaration_id,
                                    &item_no,
                                    &fraud,
                                    &critical,
                                    &now,
                                    &source,
                                    &line_no,
                                ],
                            )
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
                    tx.execute(
                        &record_conflict,
                        &[
                            &now,
                            &source,
                            &line_no,
                            &key.declaration_id,
                            &item_no,
                            &difference.field,
                            &difference.stored,
                            &difference.incoming,
                        ],
                    )
                    .ctx(|| doing("recording a conflict on"))?;
                }
                outcome.conflicts.push(ImportConflict {
                    key: item.key.clone(),
                    line,
                    differences,
                });
            }
            if !new.ids.is_empty() {
                new.insert(&mut tx, &insert, &now, source)
                    .ctx(|| what("inserting new items"))?;
            }
        }
        // The same text as SQLite's json_object, keys in this order.
        let detail = format!(
            r#"{{"inserted":{},"unchanged":{},"labelled":{},"conflicts":{}}}"#,
            outcome.inserted,
            outcome.unchanged,
            outcome.labelled,
            outcome.conflicts.len()
        );
        insert_audit(&mut tx, &actor, "import", source, &detail)?;
        tx.commit().ctx(|| what("committing"))?;
        Ok(outcome)
    }

    /// See [`Store::items`](crate::Store::items).
    pub fn items(&self, filter: &ItemFilter) -> Result<Vec<DeclarationItem>, StoreError> {
        let what = || "reading declaration items".to_string();
        let date = |d: Option<NaiveDate>| d.map(|d| d.format(DATE_FORMAT).to_string());
        let rows = self
            .client
            .borrow_mut()
            .query(
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM declaration_items
                     WHERE ($1::text IS NULL OR date >= $1) AND ($2::text IS NULL OR date <= $2)
                       AND (NOT $3 OR fraud IS NOT NULL)
                     ORDER BY date, declaration_id, item_no"
                ),
                &[&date(filter.from), &date(filter.to), &filter.labelled_only],
            )
            .ctx(what)?;
        rows.iter().map(read_item).collect()
    }

    /// See [`Store::item`](crate::Store::item).
    pub fn item(&self, key: &ItemKey) -> Result<Option<DeclarationItem>, StoreError> {
        self.client
            .borrow_mut()
            .query_opt(
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM declaration_items
                     WHERE declaration_id = $1 AND item_no = $2"
                ),
                &[&key.declaration_id, &big(key.item_no)],
            )
            .ctx(|| format!("reading item {}", key_text(key)))?
            .map(|row| read_item(&row))
            .transpose()
    }

    /// See [`Store::related_items`](crate::Store::related_items).
    pub fn related_items(
        &self,
        importer_id: &str,
        declarant_id: &str,
        exclude: &str,
        limit: usize,
    ) -> Result<Vec<(DeclarationItem, String)>, StoreError> {
        let what = || format!("reading the declarations related to '{exclude}'");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client
            .borrow_mut()
            .query(
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM declaration_items
                     WHERE (importer_id = $1 OR declarant_id = $2) AND declaration_id <> $3
                     ORDER BY date DESC, declaration_id, item_no LIMIT $4"
                ),
                &[&importer_id, &declarant_id, &exclude, &limit],
            )
            .ctx(what)?;
        rows.iter()
            .map(|row| {
                let item = read_item(row)?;
                let link = match (
                    item.importer_id == importer_id,
                    item.declarant_id == declarant_id,
                ) {
                    (true, true) => "importer, declarant",
                    (true, false) => "importer",
                    _ => "declarant",
                };
                Ok((item, link.to_string()))
            })
            .collect()
    }

    /// See [`Store::items_sharing`](crate::Store::items_sharing).
    pub fn items_sharing(
        &self,
        filter: &SharingFilter,
    ) -> Result<Vec<DeclarationItem>, StoreError> {
        let what = || "reading the items that share a party or an HS code".to_string();
        let rows = self
            .client
            .borrow_mut()
            .query(
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM declaration_items
                     WHERE date < $1 AND (importer_id = $2 OR declarant_id = $3
                           OR seller_id = $4 OR hs6 = $5)
                     ORDER BY date, declaration_id, item_no"
                ),
                &[
                    &filter.before.format(DATE_FORMAT).to_string(),
                    &filter.importer_id,
                    &filter.declarant_id,
                    &filter.seller_id,
                    &filter.hs6,
                ],
            )
            .ctx(what)?;
        rows.iter().map(read_item).collect()
    }

    /// See [`Store::label_counts`](crate::Store::label_counts).
    pub fn label_counts(&self, before: NaiveDate) -> Result<LabelCounts, StoreError> {
        let (labelled, frauds): (i64, i64) = self
            .client
            .borrow_mut()
            .query_one(
                "SELECT count(fraud), coalesce(sum(fraud), 0)::bigint FROM declaration_items
                 WHERE date < $1",
                &[&before.format(DATE_FORMAT).to_string()],
            )
            .and_then(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .ctx(|| "counting labelled items".to_string())?;
        Ok(LabelCounts {
            labelled: u64::try_from(labelled).unwrap_or(0),
            frauds: u64::try_from(frauds).unwrap_or(0),
        })
    }

    /// See [`Store::last_item_date`](crate::Store::last_item_date).
    pub fn last_item_date(&self) -> Result<Option<NaiveDate>, StoreError> {
        let text: Option<String> = self
            .client
            .borrow_mut()
            .query_one("SELECT max(date) FROM declaration_items", &[])
            .and_then(|row| row.try_get(0))
            .ctx(|| "reading the newest declaration date".to_string())?;
        Ok(text.and_then(|t| NaiveDate::parse_from_str(&t, DATE_FORMAT).ok()))
    }

    /// See [`Store::count_items`](crate::Store::count_items).
    pub fn count_items(&self) -> Result<u64, StoreError> {
        self.client
            .borrow_mut()
            .query_one("SELECT count(*) FROM declaration_items", &[])
            .and_then(|row| row.try_get(0))
            .map(from_sql_int)
            .ctx(|| "counting declaration items".to_string())
    }

    /// See [`Store::conflicts_for`](crate::Store::conflicts_for).
    pub fn conflicts_for(&self, key: &ItemKey) -> Result<Vec<RecordedConflict>, StoreError> {
        let what = || format!("reading the conflicts of item {}", key_text(key));
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT at, source_file, source_line, field, stored, incoming
                 FROM import_conflicts WHERE declaration_id = $1 AND item_no = $2 ORDER BY id",
                &[&key.declaration_id, &big(key.item_no)],
            )
            .ctx(what)?;
        rows.iter()
            .map(|row| {
                Ok(RecordedConflict {
                    at: row.try_get(0)?,
                    source: row.try_get(1)?,
                    line: from_sql_int(row.try_get(2)?),
                    field: row.try_get(3)?,
                    stored: row.try_get(4)?,
                    incoming: row.try_get(5)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .ctx(what)
    }
}

/// Items an import reads and inserts at a time.
const CHUNK: usize = 2000;

/// Inserts the rows of [`NewItems`]: one array parameter per column ($25: the import's time,
/// $26: its source; the label's provenance only when there is a label).
const INSERT_NEW: &str = "INSERT INTO declaration_items (declaration_id, item_no, date, office_id,
         process_type, import_type, import_use, payment_type, transport_mode, declarant_id,
         importer_id, seller_id, courier_id, hs6, departure_country, origin_country, tax_rate,
         tax_type, origin_indicator, net_mass, item_price, fraud, critical_fraud, imported_at,
         source_file, source_line, labelled_at, label_source, label_line)
     SELECT u.declaration_id, u.item_no, u.date, u.office_id, u.process_type, u.import_type,
         u.import_use, u.payment_type, u.transport_mode, u.declarant_id, u.importer_id,
         u.seller_id, u.courier_id, u.hs6, u.departure_country, u.origin_country, u.tax_rate,
         u.tax_type, u.origin_indicator, u.net_mass, u.item_price, u.fraud, u.critical_fraud,
         $25, $26, u.source_line,
         CASE WHEN u.fraud IS NULL THEN NULL ELSE $25 END,
         CASE WHEN u.fraud IS NULL THEN NULL ELSE $26 END,
         CASE WHEN u.fraud IS NULL THEN NULL ELSE u.source_line END
     FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
         $14::text[], $15::text[], $16::text[], $17::float8[], $18::text[], $19::text[],
         $20::float8[], $21::float8[], $22::bigint[], $23::bigint[], $24::bigint[])
         AS u(declaration_id, item_no, date, office_id, process_type, import_type, import_use,
             payment_type, transport_mode, declarant_id, importer_id, seller_id, courier_id, hs6,
             departure_country, origin_country, tax_rate, tax_type, origin_indicator, net_mass,
             item_price, fraud, critical_fraud, source_line)";

/// New items of a chunk, column by column (the parameters of [`INSERT_NEW`]).
#[derive(Default)]
struct NewItems {
    ids: Vec<String>,
    numbers: Vec<i64>,
    dates: Vec<String>,
    office: Vec<String>,
    process_type: Vec<String>,
    import_type: Vec<String>,
    import_use: Vec<String>,
    payment_type: Vec<String>,
    transport_mode: Vec<String>,
    declarant: Vec<String>,
    importer: Vec<String>,
    seller: Vec<Option<String>>,
    courier: Vec<Option<String>>,
    hs6: Vec<String>,
    departure: Vec<String>,
    origin: Vec<String>,
    tax_rate: Vec<f64>,
    tax_type: Vec<String>,
    origin_indicator: Vec<String>,
    net_mass: Vec<f64>,
    item_price: Vec<f64>,
    fraud: Vec<Option<i64>>,
    critical: Vec<Option<i64>>,
    lines: Vec<i64>,
}

impl NewItems {
    fn push(&mut self, item: &DeclarationItem, line: i64) {
        let (fraud, critical) = label_int(item.label);
        self.ids.push(item.key.declaration_id.clone());
        self.numbers.push(big(item.key.item_no));
        self.dates.push(item.date.format(DATE_FORMAT).to_string());
        self.office.push(item.office_id.clone());
        self.process_type.push(item.process_type.clone());
        self.import_type.push(item.import_type.clone());
        self.import_use.push(item.import_use.clone());
        self.payment_type.push(item.payment_type.clone());
        self.transport_mode.push(item.transport_mode.clone());
        self.declarant.push(item.declarant_id.clone());
        self.importer.push(item.importer_id.clone());
        self.seller.push(item.seller_id.clone());
        self.courier.push(item.courier_id.clone());
        self.hs6.push(item.hs6.as_str().to_string());
        self.departure.push(item.departure_country.clone());
        self.origin.push(item.origin_country.clone());
        self.tax_rate.push(item.tax_rate);
        self.tax_type.push(item.tax_type.clone());
        self.origin_indicator.push(item.origin_indicator.clone());
        self.net_mass.push(item.net_mass);
        self.item_price.push(item.item_price);
        self.fraud.push(fraud);
        self.critical.push(critical);
        self.lines.push(line);
    }

    /// Inserts them all with one statement.
    fn insert(
        &self,
        tx: &mut Transaction<'_>,
        statement: &Statement,
        now: &str,
        source: &str,
    ) -> Result<u64, postgres::Error> {
        tx.execute(
            statement,
            &[
                &self.ids,
                &self.numbers,
                &self.dates,
                &self.office,
                &self.process_type,
                &self.import_type,
                &self.import_use,
                &self.payment_type,
                &self.transport_mode,
                &self.declarant,
                &self.importer,
                &self.seller,
                &self.courier,
                &self.hs6,
                &self.departure,
                &self.origin,
                &self.tax_rate,
                &self.tax_type,
                &self.origin_indicator,
                &self.net_mass,
                &self.item_price,
                &self.fraud,
                &self.critical,
                &self.lines,
                &now,
                &source,
            ],
        )
    }
}

/// `(fraud, critical_fraud)` as BIGINT column values.
fn label_int(label: Option<ControlLabel>) -> (Option<i64>, Option<i64>) {
    let (fraud, critical) = label_columns(label);
    (fraud.map(i64::from), critical.map(i64::from))
}

/// Reads a row of [`ITEM_COLUMNS`].
fn read_item(row: &Row) -> Result<DeclarationItem, StoreError> {
    let bad = |reason: String| StoreError::Invalid {
        what: "stored declaration item".to_string(),
        reason,
    };
    let read = || -> Result<_, postgres::Error> {
        Ok((
            row.try_get::<_, String>(0)?,
            row.try_get::<_, i64>(1)?,
            row.try_get::<_, String>(2)?,
            row.try_get::<_, String>(13)?,
            row.try_get::<_, Option<i64>>(21)?,
            row.try_get::<_, Option<i64>>(22)?,
        ))
    };
    let (declaration_id, item_no, date, hs6, fraud, critical) =
        read().ctx(|| "reading a stored declaration item".to_string())?;
    let date = NaiveDate::parse_from_str(&date, DATE_FORMAT)
        .map_err(|e| bad(format!("stored date '{date}': {e}")))?;
    let hs6 = HsCode::parse(&hs6).map_err(|e| bad(format!("stored {e}")))?;
    let label = match (fraud, critical) {
        (Some(fraud), Some(critical)) => Some(ControlLabel {
            fraud: fraud == 1,
            critical: u8::try_from(critical).map_err(|e| bad(e.to_string()))?,
        }),
        _ => None,
    };
    let item_no = u32::try_from(item_no).map_err(|e| bad(format!("item number: {e}")))?;
    let rest = || -> Result<DeclarationItem, postgres::Error> {
        Ok(DeclarationItem {
            key: ItemKey {
                declaration_id: declaration_id.clone(),
                item_no,
            },
            date,
            office_id: row.try_get(3)?,
            process_type: row.try_get(4)?,
            import_type: row.try_get(5)?,
            import_use: row.try_get(6)?,
            payment_type: row.try_get(7)?,
            transport_mode: row.try_get(8)?,
            declarant_id: row.try_get(9)?,
            importer_id: row.try_get(10)?,
            seller_id: row.try_get(11)?,
            courier_id: row.try_get(12)?,
            hs6,
            departure_country: row.try_get(14)?,
            origin_country: row.try_get(15)?,
            tax_rate: row.try_get(16)?,
            tax_type: row.try_get(17)?,
            origin_indicator: row.try_get(18)?,
            net_mass: row.try_get(19)?,
            item_price: row.try_get(20)?,
            label,
        })
    };
    rest().ctx(|| "reading a stored declaration item".to_string())
}
