//! The X-ray catalogue in the store (issue 15): a library's scans catalogued
//! ([`catalogue_library`], `borderlens nii catalogue LIB`, and the server at start for the
//! library it serves), and the links between scans and declarations through a valid ISO 6346
//! container number or UPU S10 postal item id ([`scans_of_declaration`],
//! [`declarations_of_scan`]). A declared id that does not validate is shown as declared and
//! links nothing; it is never corrected.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use borderlens_domain::{
    ContainerNumber, DeclarationItem, DeclaredValue, S10ItemId, CONTAINER_NUMBER, POSTAL_ITEM_ID,
};
use borderlens_nii::{Library, ScanRecord};
use borderlens_store::{Backend, CataloguedScan};
use serde::Serialize;

use crate::nii_desk::invalid;
use crate::JobError;

/// The name a library folder has in the catalogue: its canonical path (the folder as given
/// when it cannot be resolved), so that one library is one name however it is reached.
pub fn library_key(root: &Path) -> String {
    std::fs::canonicalize(root)
        .unwrap_or_else(|_| root.to_path_buf())
        .display()
        .to_string()
}

/// The catalogue row of a scan: its ids in canonical form (a library holds only validated
/// ones), no personal field.
pub fn catalogued(record: &ScanRecord) -> CataloguedScan {
    let m = &record.metadata;
    let p = &record.provenance;
    CataloguedScan {
        scan_id: m.scan_id.clone(),
        scanned_at: m.scanned_at.clone(),
        cargo_type: m.cargo_type.word().to_string(),
        container_id: m
            .container_id
            .as_deref()
            .and_then(|id| ContainerNumber::parse(id).ok())
            .map(|c| c.as_str().to_string()),
        package_id: m
            .package_id
            .as_deref()
            .and_then(|id| S10ItemId::parse(id).ok())
            .map(|s| s.as_str().to_string()),
        purpose: m.purpose.clone(),
        outcome: m.outcome.clone(),
        source: p.source.word().to_string(),
        projected: !p.projections.is_empty(),
        licence: p.licence.clone(),
        redistributable: p.redistributable,
        views: u32::try_from(record.views.len()).unwrap_or(u32::MAX),
    }
}

/// What [`catalogue_library`] did.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CatalogueReport {
    /// The library's name in the catalogue (its canonical folder).
    pub library: String,
    /// Scans catalogued (the library's rows before were replaced).
    pub scans: usize,
    /// Of them, scans of a container with a container number.
    pub with_container: usize,
    /// Of them, scans of a postal item with an S10 id.
    pub with_postal_item: usize,
    /// Declarations in the store whose declared container number or postal item id is one of
    /// those scans'.
    pub linked_declarations: usize,
    /// Seconds spent.
    #[serde(skip)]
    pub seconds: f64,
}

/// Ids per query of [`catalogue_library`]'s count of linked declarations.
const IDS_PER_QUERY: usize = 500;

/// The library at `root`'s name in the catalogue and its rows, by scan id (one read of the
/// library).
fn catalogue_rows(root: &Path) -> Result<(String, Vec<CataloguedScan>), JobError> {
    let library = Library::open(root).map_err(invalid)?;
    let mut scans: Vec<CataloguedScan> = library.records().iter().map(catalogued).collect();
    scans.sort_by(|a, b| a.scan_id.cmp(&b.scan_id));
    Ok((library_key(root), scans))
}

/// Replaces library `key`'s rows by `scans` and counts the declarations they link to.
fn write_catalogue(
    store: &mut dyn Backend,
    key: String,
    scans: &[CataloguedScan],
    started: Instant,
) -> Result<CatalogueReport, JobError> {
    store.replace_nii_catalogue(&key, scans)?;
    let containers: Vec<String> = scans
        .iter()
        .filter_map(|s| s.container_id.clone())
        .collect();
    let parcels: Vec<String> = scans.iter().filter_map(|s| s.package_id.clone()).collect();
    let mut declarations = BTreeSet::new();
    for chunk in containers.chunks(IDS_PER_QUERY) {
        declarations.extend(store.declarations_of_transport(chunk, &[])?);
    }
    for chunk in parcels.chunks(IDS_PER_QUERY) {
        declarations.extend(store.declarations_of_transport(&[], chunk)?);
    }
    Ok(CatalogueReport {
        library: key,
        scans: scans.len(),
        with_container: containers.len(),
        with_postal_item: parcels.len(),
        linked_declarations: declarations.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Catalogues the library at `root` in the store: its rows are replaced by the library's
/// scans in one transaction (audited), and the declarations they link to are counted.
pub fn catalogue_library(
    store: &mut dyn Backend,
    root: &Path,
) -> Result<CatalogueReport, JobError> {
    let started = Instant::now();
    let (key, scans) = catalogue_rows(root)?;
    write_catalogue(store, key, &scans, started)
}

/// Catalogues the library at `root` unless the store already holds exactly its rows: a read
/// only, no lock and no audit entry, when nothing changed (what a server does at start, so
/// that a second instance starts while a long import holds the writers' lock). `None` when
/// nothing had to be written.
pub fn catalogue_if_changed(
    store: &mut dyn Backend,
    root: &Path,
) -> Result<Option<CatalogueReport>, JobError> {
    let started = Instant::now();
    let (key, scans) = catalogue_rows(root)?;
    if store.nii_catalogue_of(&key)? == scans {
        return Ok(None);
    }
    write_catalogue(store, key, &scans, started).map(Some)
}

/// A container number or postal item id as an item declared it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TransportId {
    /// The item number that declared it.
    pub item_no: u32,
    /// `container` or `postal item`.
    pub kind: &'static str,
    /// As declared.
    pub declared: String,
    /// The canonical form when it validates (then it links).
    pub canonical: Option<String>,
    /// Why it does not validate (a wrong check digit, a wrong layout): shown, not linked.
    pub problem: Option<String>,
}

/// The container numbers and postal item ids `items` declare, in item order.
pub fn transport_ids(items: &[DeclarationItem]) -> Vec<TransportId> {
    let mut ids = Vec::new();
    for item in items {
        for (field, kind) in [
            (CONTAINER_NUMBER, "container"),
            (POSTAL_ITEM_ID, "postal item"),
        ] {
            let Some(DeclaredValue::Text(declared)) = item.extra.get(field) else {
                continue;
            };
            if declared.trim().is_empty() {
                continue;
            }
            // Set aside exactly what the store's index sets aside (spaces, hyphens, case), so
            // that both directions of the link agree.
            let squeezed: String = declared
                .chars()
                .filter(|c| *c != ' ' && *c != '-')
                .collect::<String>()
                .to_ascii_uppercase();
            let parsed = if squeezed.chars().any(char::is_whitespace) {
                Err(
                    "holds a tab or another kind of space (only spaces and hyphens are set aside)"
                        .to_string(),
                )
            } else if field == CONTAINER_NUMBER {
                ContainerNumber::parse(&squeezed)
                    .map(|c| c.as_str().to_string())
                    .map_err(|e| e.to_string())
            } else {
                S10ItemId::parse(&squeezed)
                    .map(|s| s.as_str().to_string())
                    .map_err(|e| e.to_string())
            };
            let (canonical, problem) = match parsed {
                Ok(c) => (Some(c), None),
                Err(e) => (None, Some(e)),
            };
            ids.push(TransportId {
                item_no: item.key.item_no,
                kind,
                declared: declared.clone(),
                canonical,
                problem,
            });
        }
    }
    ids
}

/// A catalogued scan of a declaration's container or parcel.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DeclarationScan {
    /// The library (its canonical folder).
    pub library: String,
    /// The scan.
    pub scan_id: String,
    /// When scanned.
    pub scanned_at: String,
    /// `parcel`, `bag` or `container`.
    pub cargo_type: String,
    /// The id that links it: `container CSQU3054383` or `postal item RR473124829GB`.
    pub via: String,
    /// Why it was scanned.
    pub purpose: String,
    /// The inspection outcome, when known.
    pub outcome: Option<String>,
    /// `real`, `staged`, `synthetic`, or `projected` when a threat was projected into it.
    pub share: String,
}

/// The catalogued scans of the containers and parcels `items` declare (valid ids only), newest
/// first, with the ids as declared.
pub fn scans_of_declaration(
    store: &dyn Backend,
    items: &[DeclarationItem],
) -> Result<(Vec<TransportId>, Vec<DeclarationScan>), JobError> {
    let ids = transport_ids(items);
    let of_kind = |kind: &str| -> Vec<String> {
        let set: BTreeSet<String> = ids
            .iter()
            .filter(|t| t.kind == kind)
            .filter_map(|t| t.canonical.clone())
            .collect();
        set.into_iter().collect()
    };
    let (containers, parcels) = (of_kind("container"), of_kind("postal item"));
    let scans = store
        .nii_scans_of(&containers, &parcels)?
        .into_iter()
        .map(|stored| {
            let s = stored.scan;
            let via = match (&s.container_id, &s.package_id) {
                (Some(c), _) if containers.contains(c) => format!("container {c}"),
                (_, Some(p)) => format!("postal item {p}"),
                (Some(c), None) => format!("container {c}"),
                (None, None) => String::new(),
            };
            DeclarationScan {
                library: stored.library,
                share: if s.projected {
                    "projected".to_string()
                } else {
                    s.source.clone()
                },
                scan_id: s.scan_id,
                scanned_at: s.scanned_at,
                cargo_type: s.cargo_type,
                via,
                purpose: s.purpose,
                outcome: s.outcome,
            }
        })
        .collect();
    Ok((ids, scans))
}

/// A declaration item of a scan's container or parcel.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ScanDeclaration {
    /// Declaration id.
    pub declaration_id: String,
    /// Item number.
    pub item_no: u32,
    /// Declaration date.
    pub date: String,
    /// Importer id.
    pub importer_id: String,
    /// Declared HS code.
    pub hs6: String,
    /// The id that links it, as the item declared it.
    pub declared: String,
}

/// Declarations shown for one scan.
pub const SCAN_DECLARATIONS_SHOWN: usize = 20;

/// The declaration items whose declared container number or postal item id is the scan's
/// `container_id` / `package_id` (compared in canonical form), newest first, at most
/// [`SCAN_DECLARATIONS_SHOWN`].
pub fn declarations_of_scan(
    store: &dyn Backend,
    container_id: Option<&str>,
    package_id: Option<&str>,
) -> Result<Vec<ScanDeclaration>, JobError> {
    let container: Vec<String> = container_id
        .and_then(|id| ContainerNumber::parse(id).ok())
        .map(|c| c.as_str().to_string())
        .into_iter()
        .collect();
    let parcel: Vec<String> = package_id
        .and_then(|id| S10ItemId::parse(id).ok())
        .map(|s| s.as_str().to_string())
        .into_iter()
        .collect();
    let items = store.items_of_transport(&container, &parcel, SCAN_DECLARATIONS_SHOWN)?;
    Ok(items
        .into_iter()
        .map(|item| {
            let declared = [CONTAINER_NUMBER, POSTAL_ITEM_ID]
                .into_iter()
                .filter_map(|f| match item.extra.get(f) {
                    Some(DeclaredValue::Text(t)) => Some(t.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(", ");
            ScanDeclaration {
                declaration_id: item.key.declaration_id.clone(),
                item_no: item.key.item_no,
                date: item.date.to_string(),
                importer_id: item.importer_id.clone(),
                hs6: item.hs6.to_string(),
                declared,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item_with(no: u32, field: &'static str, value: &str) -> DeclarationItem {
        let mut item = borderlens_domain::DeclarationItem {
            key: borderlens_domain::ItemKey {
                declaration_id: "D".into(),
                item_no: no,
            },
            ..test_item()
        };
        item.extra
            .insert(field, DeclaredValue::Text(value.to_string()));
        item
    }

    fn test_item() -> DeclarationItem {
        let registry = borderlens_domain::FieldRegistry::standard();
        let texts = [
            "2024-03-04",
            "030",
            "B",
            "11",
            "21",
            "11",
            "10",
            "DEC1",
            "IMP1",
            "",
            "",
            "847130",
            "CN",
            "CN",
            "8",
            "A",
            "E",
            "10",
            "100",
        ];
        let values: Vec<DeclaredValue> = registry
            .fields()
            .iter()
            .zip(texts.iter().chain(std::iter::repeat(&"")))
            .map(|(f, t)| f.parse(t, "%Y-%m-%d").unwrap())
            .collect();
        registry
            .build(
                borderlens_domain::ItemKey {
                    declaration_id: "D".into(),
                    item_no: 1,
                },
                values,
                None,
            )
            .unwrap()
    }

    /// Spaces, hyphens and case are set aside, as the store's index does; a wrong check digit
    /// or another kind of space is shown with the reason and links nothing.
    #[test]
    fn declared_ids_link_in_the_stores_canonical_form_only() {
        let items = [
            item_with(1, CONTAINER_NUMBER, "csqu-305438 3"),
            item_with(2, POSTAL_ITEM_ID, "RR473124828GB"),
            item_with(3, CONTAINER_NUMBER, "CSQU\t3054383"),
            item_with(4, POSTAL_ITEM_ID, "  "),
        ];
        let ids = transport_ids(&items);
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert_eq!(ids[0].canonical.as_deref(), Some("CSQU3054383"));
        assert_eq!((ids[0].item_no, ids[0].kind), (1, "container"));
        assert_eq!(ids[1].canonical, None);
        assert!(
            ids[1].problem.as_deref().unwrap().contains("check digit"),
            "{ids:?}"
        );
        assert_eq!(ids[2].canonical, None);
        assert!(
            ids[2].problem.as_deref().unwrap().contains("tab"),
            "{ids:?}"
        );
        assert_eq!(ids[2].declared, "CSQU\t3054383");
    }
}
