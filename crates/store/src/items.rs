//! Declaration items: import (insert, idempotent re-import, late labels, conflicts) and queries.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;

use borderlens_domain::{
    check_free_text, ControlLabel, Declaration, DeclarationItem, DeclaredValue, FieldRegistry,
    FieldType, HsCode, ItemKey,
};
use chrono::NaiveDate;

use crate::audit::insert_audit;
use crate::error::Context;
use crate::sql::{DbError, Exec, Row, ToParam};
use crate::{key_text, Items, Lock, Store, StoreError};

/// The item columns, in [`read_item`] order: the key, one column per declared field of
/// `fields` (named as the field), the label.
pub(crate) fn item_columns(fields: &FieldRegistry) -> String {
    let mut columns = "declaration_id, item_no".to_string();
    for field in fields.fields() {
        columns.push_str(", ");
        columns.push_str(field.name);
    }
    columns.push_str(", fraud, critical_fraud");
    columns
}

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
    /// kept as it was, the difference recorded (see [`Items::conflicts_for`]).
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

/// One field that differs between the stored item and an incoming one. Values longer than
/// [`FieldDifference::MAX_CHARS`] are shortened (ending in `…`), in messages and as recorded.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FieldDifference {
    /// The [`DeclarationItem`] field name (`net_mass`, `hs6`, ...), or `label`.
    pub field: &'static str,
    /// The stored value, as text (empty for an absent optional value).
    pub stored: String,
    /// The incoming value, as text.
    pub incoming: String,
}

impl FieldDifference {
    /// The most characters of a value kept in a difference.
    pub const MAX_CHARS: usize = 200;

    /// A difference of `field` between two values, each shortened to [`Self::MAX_CHARS`].
    pub fn new(field: &'static str, stored: &str, incoming: &str) -> FieldDifference {
        FieldDifference {
            field,
            stored: shortened(stored, Self::MAX_CHARS),
            incoming: shortened(incoming, Self::MAX_CHARS),
        }
    }
}

/// `text` cut to `max` characters, the last being `…`, when it is longer.
fn shortened(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some(_) => {
            let end = text
                .char_indices()
                .nth(max.saturating_sub(1))
                .map_or(0, |(at, _)| at);
            format!("{}…", &text[..end])
        }
    }
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

/// Which items [`Items::items`] returns.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ItemFilter {
    /// Only items declared on or after this date.
    pub from: Option<NaiveDate>,
    /// Only items declared on or before this date (inclusive).
    pub to: Option<NaiveDate>,
    /// Only items with a control label.
    pub labelled_only: bool,
}

/// Which items [`Items::items_sharing`] returns: those dated before `before` that share at
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
    /// ... or of this HS code ...
    pub hs6: String,
    /// ... or whose importer or declarant is one of these ids (the ids a linkage run linked to
    /// the importer or the declarant, whose past a model's firm columns read).
    pub linked_party_ids: Vec<String>,
}

/// How many items are labelled, and how many of them as fraud ([`Items::label_counts`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LabelCounts {
    /// Items with a control label.
    pub labelled: u64,
    /// Of those, labelled fraud.
    pub frauds: u64,
}

/// Items an import reads and inserts at a time: one statement reads the stored items of a
/// chunk, one inserts its new items (unless a row has more than [`MAX_PARAMS`] / `CHUNK`
/// columns).
const CHUNK: usize = 500;

/// Parameters of one insert statement at most, within both databases' limits (SQLite 32,766,
/// PostgreSQL 65,535).
const MAX_PARAMS: usize = 30_000;

/// The columns an import inserts beside [`item_columns`]: the item's provenance.
const PROVENANCE_COLUMNS: &str =
    "imported_at, source_file, source_line, labelled_at, label_source, label_line";

impl Store {
    /// [`Items::import_stream`] of any iterator of items (as on `dyn Backend`).
    pub fn import<I>(&mut self, source: &str, items: I) -> Result<ImportOutcome, StoreError>
    where
        I: IntoIterator<Item = (DeclarationItem, u64)>,
    {
        (self as &mut dyn crate::Backend).import(source, items)
    }

    /// [`Items::import_stream`] of any iterator of items or errors (as on `dyn Backend`).
    pub fn try_import<I, E>(&mut self, source: &str, items: I) -> Result<ImportOutcome, StoreError>
    where
        I: IntoIterator<Item = Result<(DeclarationItem, u64), E>>,
        E: Display,
    {
        (self as &mut dyn crate::Backend).try_import(source, items)
    }

    /// Items of one query: `sql` selects `{columns}` (replaced by [`item_columns`]).
    pub(crate) fn read_items(
        &self,
        what: impl FnOnce() -> String,
        sql: &str,
        params: &[&dyn ToParam],
    ) -> Result<Vec<DeclarationItem>, StoreError> {
        let fields = self.fields;
        let sql = sql.replace("{columns}", &item_columns(fields));
        self.read(|exec| {
            exec.query(&sql, params)?
                .iter()
                .map(|row| read_item(fields, row))
                .collect()
        })
        .ctx(what)
    }
}

impl Items for Store {
    fn import_stream(
        &mut self,
        source: &str,
        items: &mut dyn Iterator<Item = Result<(DeclarationItem, u64), String>>,
    ) -> Result<ImportOutcome, StoreError> {
        let what = |doing: &str| format!("import of '{source}': {doing}");
        let fields = self.fields;
        self.write(
            Lock::Writers,
            || what("the transaction"),
            |exec, actor| {
                let now: String = exec
                    .value(&format!("SELECT {}", exec.dialect().now()), &[])
                    .ctx(|| what("reading the clock"))?;
                let mut outcome = ImportOutcome::default();
                // Items are handled in chunks of distinct keys. A key seen again starts a new
                // chunk, so that it meets the item stored before it, as when items are handled
                // one by one.
                let mut carried: Option<(DeclarationItem, u64)> = None;
                loop {
                    let chunk = next_chunk(fields, source, items, &mut carried)?;
                    if chunk.is_empty() {
                        break;
                    }
                    let stored =
                        stored_items(fields, exec, &chunk).ctx(|| what("reading stored items"))?;
                    let mut new: Vec<&(DeclarationItem, u64)> = Vec::new();
                    for entry in &chunk {
                        let (item, line) = entry;
                        let key = &item.key;
                        let doing = |verb: &str| {
                            what(&format!("{verb} item {} (line {line})", key_text(key)))
                        };
                        let Some(stored) = stored.get(key) else {
                            new.push(entry);
                            outcome.inserted += 1;
                            continue;
                        };
                        let mut differences = declared_differences(fields, stored, item);
                        if differences.is_empty() {
                            match (stored.label, item.label) {
                                (_, None) => outcome.unchanged += 1,
                                (Some(old), Some(new)) if old == new => outcome.unchanged += 1,
                                (None, Some(new)) => {
                                    let (fraud, critical) = label_columns(Some(new));
                                    exec.execute(
                                        "UPDATE declaration_items
                                     SET fraud = $3, critical_fraud = $4, labelled_at = $5,
                                         label_source = $6, label_line = $7
                                     WHERE declaration_id = $1 AND item_no = $2
                                       AND fraud IS NULL",
                                        &[
                                            &key.declaration_id,
                                            &key.item_no,
                                            &fraud,
                                            &critical,
                                            &now,
                                            &source,
                                            line,
                                        ],
                                    )
                                    .ctx(|| doing("labelling"))?;
                                    outcome.labelled += 1;
                                }
                                (Some(_), Some(_)) => differences.push(FieldDifference::new(
                                    "label",
                                    &label_text(stored.label),
                                    &label_text(item.label),
                                )),
                            }
                        }
                        if differences.is_empty() {
                            continue;
                        }
                        for difference in &differences {
                            exec.execute(
                                "INSERT INTO import_conflicts (at, source_file, source_line,
                                 declaration_id, item_no, field, stored, incoming)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                                &[
                                    &now,
                                    &source,
                                    line,
                                    &key.declaration_id,
                                    &key.item_no,
                                    &difference.field,
                                    &difference.stored,
                                    &difference.incoming,
                                ],
                            )
                            .ctx(|| doing("recording a conflict on"))?;
                        }
                        outcome.conflicts.push(ImportConflict {
                            key: item.key.clone(),
                            line: *line,
                            differences,
                        });
                    }
                    insert_items(fields, exec, &new, &now, source)
                        .ctx(|| what("inserting new items"))?;
                }
                let detail = format!(
                    r#"{{"inserted":{},"unchanged":{},"labelled":{},"conflicts":{}}}"#,
                    outcome.inserted,
                    outcome.unchanged,
                    outcome.labelled,
                    outcome.conflicts.len()
                );
                insert_audit(exec, actor, "import", source, &detail)?;
                Ok(outcome)
            },
        )
    }

    fn items(&self, filter: &ItemFilter) -> Result<Vec<DeclarationItem>, StoreError> {
        let date = |d: Option<NaiveDate>| d.map(|d| d.format(DATE_FORMAT).to_string());
        self.read_items(
            || "reading declaration items".to_string(),
            "SELECT {columns} FROM declaration_items
                 WHERE (CAST($1 AS TEXT) IS NULL OR date >= $1)
                   AND (CAST($2 AS TEXT) IS NULL OR date <= $2)
                   AND ($3 = 0 OR fraud IS NOT NULL)
                 ORDER BY date, declaration_id, item_no",
            &[
                &date(filter.from),
                &date(filter.to),
                &i64::from(filter.labelled_only),
            ],
        )
    }

    fn item(&self, key: &ItemKey) -> Result<Option<DeclarationItem>, StoreError> {
        let mut items = self.read_items(
            || format!("reading item {}", key_text(key)),
            "SELECT {columns} FROM declaration_items
                 WHERE declaration_id = $1 AND item_no = $2",
            &[&key.declaration_id, &key.item_no],
        )?;
        Ok(items.pop())
    }

    fn declaration(&self, id: &str) -> Result<Option<Declaration>, StoreError> {
        let items = self.read_items(
            || format!("reading declaration '{id}'"),
            "SELECT {columns} FROM declaration_items WHERE declaration_id = $1 ORDER BY item_no",
            &[&id],
        )?;
        if items.is_empty() {
            return Ok(None);
        }
        // The key is the primary key and the query names the id: `new` cannot refuse these.
        Declaration::new(id, items)
            .map(Some)
            .map_err(|e| StoreError::Aborted {
                file: format!("declaration '{id}'"),
                reason: e.to_string(),
            })
    }

    fn related_items(
        &self,
        importer_id: &str,
        declarant_id: &str,
        exclude: &str,
        limit: usize,
    ) -> Result<Vec<(DeclarationItem, String)>, StoreError> {
        use crate::PartyLinks as _;
        // The parties a linkage run found to be the same firm as the importer (declarant):
        // their declarations are related too, in the same role.
        let group = |party: &str| -> Result<std::collections::HashSet<String>, StoreError> {
            Ok(self
                .party_group(party)?
                .into_iter()
                .map(|l| l.link.party_id)
                .filter(|id| id != party)
                .collect())
        };
        let (importers, declarants) = (group(importer_id)?, group(declarant_id)?);
        // One IN list per role, of the party and its linked parties (read above): both
        // databases then read the importer and declarant indexes, and the labels below are of
        // the very groups the query used.
        let importer_ids: Vec<&str> = std::iter::once(importer_id)
            .chain(importers.iter().map(String::as_str))
            .collect();
        let declarant_ids: Vec<&str> = std::iter::once(declarant_id)
            .chain(declarants.iter().map(String::as_str))
            .collect();
        let mut params: Vec<&dyn crate::sql::ToParam> = Vec::new();
        fn list<'a>(ids: &'a [&'a str], params: &mut Vec<&'a dyn crate::sql::ToParam>) -> String {
            let start = params.len();
            for id in ids {
                params.push(id);
            }
            (start + 1..=params.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
        let importer_list = list(&importer_ids, &mut params);
        let declarant_list = list(&declarant_ids, &mut params);
        params.push(&exclude);
        let exclude_at = params.len();
        params.push(&limit);
        let limit_at = params.len();
        let sql = format!(
            "SELECT {{columns}} FROM declaration_items
                 WHERE (importer_id IN ({importer_list}) OR declarant_id IN ({declarant_list}))
                   AND declaration_id <> ${exclude_at}
                 ORDER BY date DESC, declaration_id, item_no LIMIT ${limit_at}"
        );
        let items = self.read_items(
            || format!("reading the declarations related to '{exclude}'"),
            &sql,
            &params,
        )?;
        Ok(items
            .into_iter()
            .map(|item| {
                let mut links: Vec<&str> = Vec::new();
                if item.importer_id == importer_id {
                    links.push("importer");
                } else if importers.contains(&item.importer_id) {
                    links.push("linked importer");
                }
                if item.declarant_id == declarant_id {
                    links.push("declarant");
                } else if declarants.contains(&item.declarant_id) {
                    links.push("linked declarant");
                }
                (item, links.join(", "))
            })
            .collect())
    }

    fn items_sharing(&self, filter: &SharingFilter) -> Result<Vec<DeclarationItem>, StoreError> {
        let before = filter.before.format(DATE_FORMAT).to_string();
        let mut params: Vec<&dyn crate::sql::ToParam> = vec![
            &before,
            &filter.importer_id,
            &filter.declarant_id,
            &filter.seller_id,
            &filter.hs6,
        ];
        // Linked ids: one IN list, read for both roles (both indexes serve it).
        let linked = if filter.linked_party_ids.is_empty() {
            String::new()
        } else {
            let start = params.len();
            for id in &filter.linked_party_ids {
                params.push(id);
            }
            let list = (start + 1..=params.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(" OR importer_id IN ({list}) OR declarant_id IN ({list})")
        };
        let sql = format!(
            "SELECT {{columns}} FROM declaration_items
                 WHERE date < $1 AND (importer_id = $2 OR declarant_id = $3 OR seller_id = $4
                       OR hs6 = $5{linked})
                 ORDER BY date, declaration_id, item_no"
        );
        self.read_items(
            || "reading the items that share a party or an HS code".to_string(),
            &sql,
            &params,
        )
    }

    fn label_counts(&self, before: NaiveDate) -> Result<LabelCounts, StoreError> {
        self.read(|exec| {
            let row = exec
                .query_opt(
                    "SELECT count(fraud), CAST(coalesce(sum(fraud), 0) AS BIGINT)
                     FROM declaration_items WHERE date < $1",
                    &[&before.format(DATE_FORMAT).to_string()],
                )?
                .ok_or(DbError::NoRow)?;
            Ok(LabelCounts {
                labelled: row.get(0)?,
                frauds: row.get(1)?,
            })
        })
        .ctx(|| "counting labelled items".to_string())
    }

    fn last_item_date(&self) -> Result<Option<NaiveDate>, StoreError> {
        let text: Option<String> = self
            .read(|exec| exec.value("SELECT max(date) FROM declaration_items", &[]))
            .ctx(|| "reading the newest declaration date".to_string())?;
        Ok(text.and_then(|t| NaiveDate::parse_from_str(&t, DATE_FORMAT).ok()))
    }

    fn count_items(&self) -> Result<u64, StoreError> {
        self.read(|exec| exec.value("SELECT count(*) FROM declaration_items", &[]))
            .ctx(|| "counting declaration items".to_string())
    }

    fn conflicts_for(&self, key: &ItemKey) -> Result<Vec<RecordedConflict>, StoreError> {
        self.read(|exec| {
            exec.query(
                "SELECT at, source_file, source_line, field, stored, incoming
                 FROM import_conflicts WHERE declaration_id = $1 AND item_no = $2 ORDER BY id",
                &[&key.declaration_id, &key.item_no],
            )?
            .iter()
            .map(|row| {
                Ok(RecordedConflict {
                    at: row.get(0)?,
                    source: row.get(1)?,
                    line: row.get(2)?,
                    field: row.get(3)?,
                    stored: row.get(4)?,
                    incoming: row.get(5)?,
                })
            })
            .collect()
        })
        .ctx(|| format!("reading the conflicts of item {}", key_text(key)))
    }
}

/// The next chunk of distinct keys from `items` (empty at the end), each item checked; an item
/// whose key is already in the chunk is `carried` to the next one.
fn next_chunk(
    fields: &FieldRegistry,
    source: &str,
    items: &mut dyn Iterator<Item = Result<(DeclarationItem, u64), String>>,
    carried: &mut Option<(DeclarationItem, u64)>,
) -> Result<Vec<(DeclarationItem, u64)>, StoreError> {
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
        let (item, line) = entry.map_err(|reason| StoreError::Aborted {
            file: source.to_string(),
            reason,
        })?;
        validate(fields, &item).map_err(|reason| StoreError::InvalidItem {
            file: source.to_string(),
            line,
            key: key_text(&item.key),
            reason,
        })?;
        if !keys.insert(item.key.clone()) {
            *carried = Some((item, line));
            break;
        }
        chunk.push((item, line));
    }
    Ok(chunk)
}

/// `(CAST($1 AS TEXT), CAST($2 AS BIGINT)), ...`: `rows` tuples of `types`, numbered on.
fn tuples(rows: usize, types: &[&str]) -> String {
    let mut out = String::new();
    for row in 0..rows {
        out.push_str(if row == 0 { "(" } else { ", (" });
        for (column, ty) in types.iter().enumerate() {
            if column > 0 {
                out.push_str(", ");
            }
            let n = row * types.len() + column + 1;
            match *ty {
                "" => out.push_str(&format!("${n}")),
                ty => out.push_str(&format!("CAST(${n} AS {ty})")),
            }
        }
        out.push(')');
    }
    out
}

/// The stored items with the keys of `chunk`, by key (one statement).
fn stored_items(
    fields: &FieldRegistry,
    exec: &mut dyn Exec,
    chunk: &[(DeclarationItem, u64)],
) -> Result<HashMap<ItemKey, DeclarationItem>, DbError> {
    let sql = format!(
        "SELECT {} FROM declaration_items
         WHERE (declaration_id, item_no) IN (VALUES {})",
        item_columns(fields),
        tuples(chunk.len(), &["TEXT", "BIGINT"])
    );
    let params: Vec<&dyn ToParam> = chunk
        .iter()
        .flat_map(|(item, _)| [&item.key.declaration_id as &dyn ToParam, &item.key.item_no])
        .collect();
    exec.query(&sql, &params)?
        .iter()
        .map(|row| read_item(fields, row).map(|item| (item.key.clone(), item)))
        .collect()
}

/// Inserts new items, as few statements as the parameter limit allows; the label's provenance
/// only when there is a label.
fn insert_items(
    fields: &FieldRegistry,
    exec: &mut dyn Exec,
    new: &[&(DeclarationItem, u64)],
    now: &str,
    source: &str,
) -> Result<(), DbError> {
    let n_columns = fields.fields().len() + 10;
    let per_statement = (MAX_PARAMS / n_columns).max(1);
    for rows in new.chunks(per_statement) {
        let sql = format!(
            "INSERT INTO declaration_items ({}, {PROVENANCE_COLUMNS}) VALUES {}",
            item_columns(fields),
            tuples(rows.len(), &vec![""; n_columns])
        );
        let cells: Vec<Cell<'_>> = rows
            .iter()
            .flat_map(|(item, line)| {
                let (fraud, critical) = label_columns(item.label);
                let labelled = item.label.is_some();
                let if_labelled = |cell: Cell<'static>| if labelled { cell } else { Cell::Null };
                let key = [
                    Cell::Text(&item.key.declaration_id),
                    Cell::Int(i64::from(item.key.item_no)),
                ];
                let declared = fields.fields().iter().map(|f| match f.get(item) {
                    DeclaredValue::Absent => Cell::Null,
                    DeclaredValue::Number(v) => Cell::Real(v),
                    DeclaredValue::Date(date) => Cell::Owned(date.format(DATE_FORMAT).to_string()),
                    DeclaredValue::Text(text) => Cell::Owned(text),
                    DeclaredValue::Hs(code) => Cell::Owned(code.as_str().to_string()),
                });
                let rest = [
                    fraud.map_or(Cell::Null, |v| Cell::Int(i64::from(v))),
                    critical.map_or(Cell::Null, |v| Cell::Int(i64::from(v))),
                    Cell::Owned(now.to_string()),
                    Cell::Owned(source.to_string()),
                    Cell::Int(crate::sql::saturating(*line)),
                    if_labelled(Cell::Owned(now.to_string())),
                    if_labelled(Cell::Owned(source.to_string())),
                    if_labelled(Cell::Int(crate::sql::saturating(*line))),
                ];
                key.into_iter().chain(declared).chain(rest)
            })
            .collect();
        let params: Vec<&dyn ToParam> = cells.iter().map(|cell| cell as &dyn ToParam).collect();
        exec.execute(&sql, &params)?;
    }
    Ok(())
}

/// One parameter of [`insert_items`], borrowed or owned.
enum Cell<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Owned(String),
}

impl ToParam for Cell<'_> {
    fn param(&self) -> crate::sql::Param<'_> {
        use crate::sql::Param;
        match self {
            Cell::Null => Param::Null,
            Cell::Int(v) => Param::Int(*v),
            Cell::Real(v) => Param::Real(*v),
            Cell::Text(v) => Param::Text(v),
            Cell::Owned(v) => Param::Text(v),
        }
    }
}

/// What the schema would refuse, said in words.
pub(crate) fn validate(fields: &FieldRegistry, item: &DeclarationItem) -> Result<(), String> {
    if item.key.declaration_id.is_empty() {
        return Err("empty declaration id".to_string());
    }
    if item.key.item_no == 0 {
        return Err("item number 0 (item numbers start at 1)".to_string());
    }
    for field in fields.fields() {
        match field.get(item) {
            DeclaredValue::Number(value) if !value.is_finite() || value < 0.0 => {
                return Err(format!(
                    "{} {value} is not a finite non-negative number",
                    field.name
                ));
            }
            // What a reader refuses in a free text (NUL, which PostgreSQL cannot store, other
            // control characters, more than the bound), refused here too for items built in code.
            DeclaredValue::Text(text) if field.ty == FieldType::Text => {
                check_free_text(&text).map_err(|e| format!("{}: {e}", field.name))?;
            }
            _ => {}
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
    fields: &FieldRegistry,
    stored: &DeclarationItem,
    incoming: &DeclarationItem,
) -> Vec<FieldDifference> {
    fields
        .fields()
        .iter()
        .filter_map(|field| {
            let (stored, incoming) = (field.get(stored), field.get(incoming));
            (stored != incoming).then(|| {
                FieldDifference::new(field.name, &stored.to_string(), &incoming.to_string())
            })
        })
        .collect()
}

/// Reads a row of [`item_columns`].
fn read_item(fields: &FieldRegistry, row: &Row) -> Result<DeclarationItem, DbError> {
    let bad = |column: usize, reason: String| DbError::Decode { column, reason };
    let n = fields.fields().len();
    let mut values = Vec::with_capacity(n);
    for (i, field) in fields.fields().iter().enumerate() {
        let column = 2 + i;
        let value = match field.ty {
            FieldType::Amount | FieldType::Rate => row
                .get::<Option<f64>>(column)?
                .map_or(DeclaredValue::Absent, DeclaredValue::Number),
            FieldType::Code | FieldType::Text | FieldType::Date | FieldType::Hs6 => {
                match row.get::<Option<String>>(column)? {
                    None => DeclaredValue::Absent,
                    Some(text) => match field.ty {
                        FieldType::Date => DeclaredValue::Date(
                            NaiveDate::parse_from_str(&text, DATE_FORMAT)
                                .map_err(|e| bad(column, format!("stored date '{text}': {e}")))?,
                        ),
                        FieldType::Hs6 => DeclaredValue::Hs(
                            HsCode::parse(&text).map_err(|e| bad(column, format!("stored {e}")))?,
                        ),
                        _ => DeclaredValue::Text(text),
                    },
                }
            }
        };
        values.push(value);
    }
    let fraud: Option<u8> = row.get(2 + n)?;
    let critical: Option<u8> = row.get(3 + n)?;
    let label = match (fraud, critical) {
        (Some(fraud), Some(critical)) => Some(ControlLabel {
            fraud: fraud == 1,
            critical,
        }),
        _ => None,
    };
    let key = ItemKey {
        declaration_id: row.get(0)?,
        item_no: row.get(1)?,
    };
    fields.build(key, values, label).map_err(|e| {
        let column = 2 + fields.position(e.field).unwrap_or_default();
        bad(column, e.to_string())
    })
}
