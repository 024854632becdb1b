//! The X-ray catalogue (issue 15): one row per scan of a reference library, with the fields
//! that link a scan to declarations (its container number and postal item id, canonical) and
//! those a manager filters on. The library folder keeps the images, the full metadata and the
//! annotations; the store keeps what it must join and count. Personal fields (names,
//! addresses) are not copied here. A library's rows are replaced whole from its folder, never
//! updated.

use std::collections::HashSet;

use crate::audit::insert_audit;
use crate::error::Context;
use crate::schema::TRANSPORT_CANONICAL;
use crate::sql::{DbError, Row, ToParam};
use crate::{Lock, NiiCatalogue, Store, StoreError};
use borderlens_domain::DeclarationItem;

/// The condition on `declaration_items` of [`NiiCatalogue::items_of_transport`]: the declared
/// container number's or postal item id's canonical form in the lists (their parameters pushed
/// onto `params`).
fn transport_condition<'a>(
    container_ids: &'a [String],
    package_ids: &'a [String],
    params: &mut Vec<&'a dyn ToParam>,
) -> String {
    let containers = in_list(container_ids, params);
    let packages = in_list(package_ids, params);
    let container = TRANSPORT_CANONICAL.replace("{column}", "container_number");
    let postal = TRANSPORT_CANONICAL.replace("{column}", "postal_item_id");
    format!("{container} IN ({containers}) OR {postal} IN ({packages})")
}

/// `$n, $m, ...` for `ids` pushed onto `params`, or `NULL` (which matches nothing) for none.
fn in_list<'a>(ids: &'a [String], params: &mut Vec<&'a dyn ToParam>) -> String {
    if ids.is_empty() {
        return "NULL".to_string();
    }
    ids.iter()
        .map(|id| {
            params.push(id);
            format!("${}", params.len())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One scan as the catalogue holds it.
#[derive(Clone, PartialEq, Debug)]
pub struct CataloguedScan {
    /// The scan id, unique in its library.
    pub scan_id: String,
    /// Date and time of the scan, as recorded (`2026-03-01T10:15:00`).
    pub scanned_at: String,
    /// `parcel`, `bag` or `container`.
    pub cargo_type: String,
    /// The ISO 6346 container number, canonical (`CSQU3054383`), when a container.
    pub container_id: Option<String>,
    /// The UPU S10 postal item id, canonical (`RR473124829GB`), when a postal item.
    pub package_id: Option<String>,
    /// Why it was scanned (routine, risk, random, training, synthetic...).
    pub purpose: String,
    /// The inspection outcome, when known.
    pub outcome: Option<String>,
    /// `real`, `staged` or `synthetic`.
    pub source: String,
    /// Whether threats were projected into it (then it never counts as real).
    pub projected: bool,
    /// The scan's licence.
    pub licence: String,
    /// Whether the licence allows sharing it.
    pub redistributable: bool,
    /// Views (one or more).
    pub views: u32,
}

/// A [`CataloguedScan`] with the library it is in and when it was catalogued.
#[derive(Clone, PartialEq, Debug)]
pub struct StoredScan {
    /// The scan.
    pub scan: CataloguedScan,
    /// The library folder, as given when it was catalogued.
    pub library: String,
    /// When the library was catalogued.
    pub catalogued_at: String,
}

const COLUMNS: &str = "scan_id, scanned_at, cargo_type, container_id, package_id, purpose, \
                       outcome, source, projected, licence, redistributable, views, library, \
                       catalogued_at";

fn read_scan(row: &Row) -> Result<StoredScan, DbError> {
    let projected: i64 = row.get(8)?;
    let redistributable: i64 = row.get(10)?;
    let views: i64 = row.get(11)?;
    Ok(StoredScan {
        scan: CataloguedScan {
            scan_id: row.get(0)?,
            scanned_at: row.get(1)?,
            cargo_type: row.get(2)?,
            container_id: row.get(3)?,
            package_id: row.get(4)?,
            purpose: row.get(5)?,
            outcome: row.get(6)?,
            source: row.get(7)?,
            projected: projected != 0,
            licence: row.get(9)?,
            redistributable: redistributable != 0,
            views: u32::try_from(views).unwrap_or(0),
        },
        library: row.get(12)?,
        catalogued_at: row.get(13)?,
    })
}

fn check_scans(library: &str, scans: &[CataloguedScan]) -> Result<(), StoreError> {
    let invalid = |what: String, reason: &str| StoreError::Invalid {
        what,
        reason: reason.to_string(),
    };
    if library.trim().is_empty() {
        return Err(invalid("X-ray catalogue: library".into(), "empty"));
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for s in scans {
        let what = |field: &str| format!("catalogued scan '{}': {field}", s.scan_id);
        if s.scan_id.trim().is_empty() {
            return Err(invalid("catalogued scan: scan_id".into(), "empty"));
        }
        if !seen.insert(&s.scan_id) {
            return Err(invalid(what("scan_id"), "appears twice"));
        }
        for (field, value) in [
            ("scanned_at", &s.scanned_at),
            ("cargo_type", &s.cargo_type),
            ("source", &s.source),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(what(field), "empty"));
            }
        }
        for (field, value) in [
            ("container_id", &s.container_id),
            ("package_id", &s.package_id),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(invalid(what(field), "empty (leave it out instead)"));
            }
        }
        if s.views == 0 {
            return Err(invalid(what("views"), "a scan has at least one view"));
        }
    }
    Ok(())
}

impl NiiCatalogue for Store {
    fn replace_nii_catalogue(
        &mut self,
        library: &str,
        scans: &[CataloguedScan],
    ) -> Result<usize, StoreError> {
        check_scans(library, scans)?;
        let what = || format!("cataloguing the X-ray library '{library}'");
        self.write(Lock::Writers, what, |exec, actor| {
            let now: String = exec
                .value(&format!("SELECT {}", exec.dialect().now()), &[])
                .ctx(what)?;
            let replaced = exec
                .execute("DELETE FROM nii_scans WHERE library = $1", &[&library])
                .ctx(what)?;
            for s in scans {
                let projected = i64::from(s.projected);
                let redistributable = i64::from(s.redistributable);
                let views = i64::from(s.views);
                exec.execute(
                    &format!(
                        "INSERT INTO nii_scans ({COLUMNS})
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                    ),
                    &[
                        &s.scan_id,
                        &s.scanned_at,
                        &s.cargo_type,
                        &s.container_id,
                        &s.package_id,
                        &s.purpose,
                        &s.outcome,
                        &s.source,
                        &projected,
                        &s.licence,
                        &redistributable,
                        &views,
                        &library,
                        &now,
                    ],
                )
                .ctx(what)?;
            }
            let detail = serde_json::json!({ "scans": scans.len(), "replaced": replaced });
            insert_audit(
                exec,
                actor,
                "catalogue_nii_library",
                library,
                &detail.to_string(),
            )?;
            Ok(scans.len())
        })
    }

    fn nii_scans_of(
        &self,
        container_ids: &[String],
        package_ids: &[String],
    ) -> Result<Vec<StoredScan>, StoreError> {
        if container_ids.is_empty() && package_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One IN list per id kind (each has its index).
        let mut params: Vec<&dyn ToParam> = Vec::new();
        let containers = in_list(container_ids, &mut params);
        let packages = in_list(package_ids, &mut params);
        let sql = format!(
            "SELECT {COLUMNS} FROM nii_scans
             WHERE container_id IN ({containers}) OR package_id IN ({packages})
             ORDER BY scanned_at DESC, library, scan_id"
        );
        self.read(|exec| exec.query(&sql, &params)?.iter().map(read_scan).collect())
            .ctx(|| "reading the X-ray scans of a declaration".to_string())
    }

    fn nii_catalogue_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|exec| {
            exec.query(
                "SELECT library, count(*) FROM nii_scans GROUP BY library ORDER BY library",
                &[],
            )?
            .iter()
            .map(|row| Ok((row.get(0)?, row.get(1)?)))
            .collect()
        })
        .ctx(|| "counting the catalogued X-ray scans".to_string())
    }

    fn nii_catalogue_of(&self, library: &str) -> Result<Vec<CataloguedScan>, StoreError> {
        self.read(|exec| {
            exec.query(
                &format!("SELECT {COLUMNS} FROM nii_scans WHERE library = $1 ORDER BY scan_id"),
                &[&library],
            )?
            .iter()
            .map(|row| read_scan(row).map(|s| s.scan))
            .collect()
        })
        .ctx(|| format!("reading the catalogue of the X-ray library '{library}'"))
    }

    fn declarations_of_transport(
        &self,
        container_ids: &[String],
        package_ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if container_ids.is_empty() && package_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut params: Vec<&dyn ToParam> = Vec::new();
        let condition = transport_condition(container_ids, package_ids, &mut params);
        let sql = format!(
            "SELECT DISTINCT declaration_id FROM declaration_items WHERE {condition}
             ORDER BY declaration_id"
        );
        self.read(|exec| {
            exec.query(&sql, &params)?
                .iter()
                .map(|row| row.get(0))
                .collect()
        })
        .ctx(|| "reading the declarations of catalogued containers and parcels".to_string())
    }

    fn items_of_transport(
        &self,
        container_ids: &[String],
        package_ids: &[String],
        limit: usize,
    ) -> Result<Vec<DeclarationItem>, StoreError> {
        if container_ids.is_empty() && package_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut params: Vec<&dyn ToParam> = Vec::new();
        let condition = transport_condition(container_ids, package_ids, &mut params);
        params.push(&limit);
        let limit_at = params.len();
        let sql = format!(
            "SELECT {{columns}} FROM declaration_items WHERE {condition}
             ORDER BY date DESC, declaration_id, item_no LIMIT ${limit_at}"
        );
        self.read_items(
            || "reading the declarations of a scan's container or parcel".to_string(),
            &sql,
            &params,
        )
    }
}
