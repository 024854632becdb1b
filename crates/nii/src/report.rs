//! The quality report of a library, after the study's quality attributes (its Table 2: size,
//! diversity, balance, resolution, real-world fidelity) and curation attributes (its Table 4:
//! annotations, agreement, metadata, privacy).
//!
//! Every figure is counted from the catalogue and the annotations; nothing is estimated. JSON for
//! machines ([`QualityReport`] serialises), SVG bar charts for people ([`QualityReport::charts`]).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::agreement::{agreement, AgreementInput, ScanAnnotations};
use crate::consensus::AnnotatorObjects;
use crate::library::Library;

/// A class is *rare* when it has fewer objects than this share of an even split across classes.
pub const RARE_SHARE_OF_EVEN: f64 = 0.5;

/// A count and its share of the whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Count {
    /// what is counted
    pub name: String,
    /// how many
    pub count: usize,
    /// count / total (0 when the total is 0)
    pub share: f64,
}

fn counts(map: BTreeMap<String, usize>) -> Vec<Count> {
    let total: usize = map.values().sum();
    let mut out: Vec<Count> = map
        .into_iter()
        .map(|(name, count)| Count {
            name,
            count,
            share: if total > 0 {
                count as f64 / total as f64
            } else {
                0.0
            },
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    out
}

/// Class balance of the true and consensus objects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Balance {
    /// objects per class (true objects of generated and projected scans, plus accepted
    /// consensus objects of annotated scans)
    pub classes: Vec<Count>,
    /// classes with fewer objects than half an even share
    pub rare: Vec<String>,
    /// most objects of a class / fewest (`None` with fewer than two classes)
    pub imbalance_ratio: Option<f64>,
    /// scans with at least one threat object
    pub scans_with_threat: usize,
    /// scans without
    pub scans_without_threat: usize,
}

/// Diversity of what the library holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diversity {
    /// parcel / bag / container
    pub cargo: Vec<Count>,
    /// clutter density bins (objects per 10,000 px²), `unknown` for scans without a record of it
    pub clutter_density: Vec<Count>,
    /// clutter objects by material family
    pub clutter_materials: Vec<Count>,
    /// threat orientation, 30° bins of |rotation|
    pub orientation: Vec<Count>,
    /// main material of threat objects
    pub threat_materials: Vec<Count>,
    /// scanner models
    pub scanners: Vec<Count>,
    /// scanning locations
    pub locations: Vec<Count>,
}

/// Image sizes and resolutions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// `W×H` of the first view
    pub sizes: Vec<Count>,
    /// mm per pixel
    pub mm_per_pixel: Vec<Count>,
    /// scans with two energies in every view
    pub dual_energy: usize,
    /// views in all
    pub views: usize,
}

/// Annotation coverage and cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// scans with at least one annotator's record
    pub scans_annotated: usize,
    /// scans_annotated / scans
    pub coverage: f64,
    /// scans with two or more annotators (agreement can be measured)
    pub scans_multi_annotated: usize,
    /// distinct annotators
    pub annotators: usize,
    /// annotation records
    pub records: usize,
    /// scans whose objects are known exactly (generated or projected truth)
    pub scans_with_truth: usize,
    /// median seconds per annotation record, when recorded
    pub median_seconds: Option<f64>,
    /// 3600 / mean seconds (the study: about 5–11 images per analyst-hour)
    pub images_per_hour: Option<f64>,
}

/// Agreement figures, when two or more annotators annotated a scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgreementSummary {
    /// merged objects
    pub objects: usize,
    /// disputed objects
    pub disputed: usize,
    /// disputed / objects
    pub disputed_share: f64,
    /// disputed objects that no current review decided (the review queue's open objects;
    /// see [`crate::consensus::resolve_view`])
    #[serde(default)]
    pub open: usize,
    /// Krippendorff's α, boxes
    pub alpha_boxes: Option<f64>,
    /// Krippendorff's α, labels
    pub alpha_labels: Option<f64>,
    /// mean pairwise F1
    pub mean_f1: Option<f64>,
    /// mean pairwise IoU
    pub mean_iou: Option<f64>,
}

/// Licences, redistribution and personal data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Privacy {
    /// scans whose licence allows redistribution
    pub redistributable: usize,
    /// scans that may not leave the administration
    pub not_redistributable: usize,
    /// licences
    pub licences: Vec<Count>,
    /// scans not anonymised that need it: personal data in their metadata (the fields of
    /// [`crate::scan::PERSONAL_FIELDS`]), or real or staged scans never anonymised
    /// ([`crate::scan::ScanRecord::privacy_problem`]); an export for sharing refuses them
    pub to_anonymise: usize,
    /// scans that went through anonymisation (they carry its log)
    pub anonymised: usize,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// scans
    pub scans: usize,
    /// stored images (channels and masks)
    pub images: usize,
    /// real / staged / synthetic / projected
    pub provenance: Vec<Count>,
    /// scans that count as real traffic (real, nothing projected)
    pub counts_as_real: usize,
    /// scans whose pixels were approximated from 8-bit renderings (`import-scans --renderings`)
    #[serde(default)]
    pub from_renderings: usize,
    /// class balance
    pub balance: Balance,
    /// diversity
    pub diversity: Diversity,
    /// resolution
    pub resolution: Resolution,
    /// annotation coverage
    pub annotation: Annotation,
    /// agreement (`None` without scans annotated twice)
    pub agreement: Option<AgreementSummary>,
    /// privacy status
    pub privacy: Privacy,
}

fn bump(map: &mut BTreeMap<String, usize>, key: impl Into<String>) {
    *map.entry(key.into()).or_insert(0) += 1;
}

/// The annotations of a library as agreement input: one entry per scan (and view), the last
/// record of an annotator on a scan replacing earlier ones.
pub fn library_annotations(library: &Library) -> AgreementInput {
    let mut scans: Vec<ScanAnnotations> = Vec::new();
    let mut index: HashMap<(String, usize), usize> = HashMap::new();
    // Reviewers' decisions are a source of their own, not one of the annotators agreed on.
    for r in library
        .annotations()
        .iter()
        .filter(|r| r.role.is_annotator())
    {
        let key = (r.scan_id.clone(), r.view);
        let i = *index.entry(key).or_insert_with(|| {
            scans.push(ScanAnnotations {
                scan_id: if r.view == 0 {
                    r.scan_id.clone()
                } else {
                    format!("{}#view{}", r.scan_id, r.view)
                },
                annotations: Vec::new(),
            });
            scans.len() - 1
        });
        let entry = AnnotatorObjects {
            annotator: r.annotator.clone(),
            objects: r.objects.clone(),
        };
        match scans[i]
            .annotations
            .iter_mut()
            .find(|a| a.annotator == r.annotator)
        {
            Some(existing) => *existing = entry,
            None => scans[i].annotations.push(entry),
        }
    }
    AgreementInput {
        iou_threshold: 0.5,
        quorum: None,
        scans,
    }
}

/// Counts the report of a library (catalogue and annotations; pixels are not read).
pub fn quality_report(library: &Library) -> QualityReport {
    let records = library.records();
    let mut provenance = BTreeMap::new();
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut cargo, mut density, mut clutter_mat, mut orientation, mut threat_mat) = (
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
    );
    let (mut scanners, mut locations, mut sizes, mut mmpp, mut licences) = (
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
    );
    let (mut with_threat, mut images, mut dual, mut views, mut truth_scans) = (0, 0, 0, 0, 0);
    let (mut redistributable, mut free_text, mut anonymised) = (0, 0, 0);
    for r in records {
        bump(&mut provenance, r.provenance.share());
        bump(&mut cargo, r.metadata.cargo_type.word());
        match &r.clutter {
            Some(c) => {
                let bin = (c.density * 2.0).floor() / 2.0;
                bump(&mut density, format!("{bin:.1}–{:.1}", bin + 0.5));
                for (family, n) in &c.by_family {
                    *clutter_mat.entry(family.clone()).or_insert(0) += n;
                }
            }
            None => bump(&mut density, "unknown"),
        }
        for t in &r.truth {
            bump(&mut classes, t.class.clone());
            bump(&mut threat_mat, t.material.clone());
            let a = t.rotation_deg.abs().min(180.0);
            let bin = ((a / 30.0).floor() * 30.0).min(150.0);
            bump(&mut orientation, format!("{bin:03.0}–{:03.0}°", bin + 30.0));
        }
        if !r.truth.is_empty() {
            with_threat += 1;
            truth_scans += 1;
        }
        bump(&mut scanners, r.metadata.scanner_model.clone());
        bump(
            &mut locations,
            r.metadata
                .location
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        );
        let first = &r.views[0].channels[0].image;
        bump(&mut sizes, format!("{}×{}", first.width, first.height));
        bump(&mut mmpp, format!("{}", r.metadata.mm_per_pixel));
        images += r.images().len();
        views += r.views.len();
        if r.views.iter().all(|v| v.channels.len() == 2) {
            dual += 1;
        }
        bump(&mut licences, r.provenance.licence.clone());
        if r.provenance.redistributable {
            redistributable += 1;
        }
        if r.privacy_problem().is_some() {
            free_text += 1;
        }
        if r.anonymisation.is_some() {
            anonymised += 1;
        }
    }

    // Annotations and agreement.
    let input = library_annotations(library);
    // A model's pre-annotations are not annotations by a person.
    let human = || {
        library
            .annotations()
            .iter()
            .filter(|a| a.role != crate::library::AnnotationRole::Machine)
    };
    let annotated: std::collections::HashSet<&str> = human().map(|a| a.scan_id.as_str()).collect();
    let annotators: std::collections::HashSet<&str> =
        human().map(|a| a.annotator.as_str()).collect();
    let multi = input
        .scans
        .iter()
        .filter(|s| s.annotations.len() >= 2)
        .count();
    let mut seconds: Vec<f64> = human().filter_map(|a| a.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let median_seconds = (!seconds.is_empty()).then(|| {
        let m = seconds.len() / 2;
        if seconds.len() % 2 == 1 {
            seconds[m]
        } else {
            (seconds[m - 1] + seconds[m]) / 2.0
        }
    });
    let mean_seconds =
        (!seconds.is_empty()).then(|| seconds.iter().sum::<f64>() / seconds.len() as f64);
    // the consensus of each view after review, in save order
    let by_view = crate::package::annotations_by_view(library);
    let resolved: Vec<(&str, crate::consensus::ResolvedView)> = by_view
        .iter()
        .map(|((scan, _), lines)| {
            let lines: Vec<&crate::library::AnnotationRecord> = lines.iter().collect();
            (
                scan.as_str(),
                crate::consensus::resolve_view(
                    &lines,
                    &crate::consensus::ConsensusOptions::default(),
                ),
            )
        })
        .collect();
    let agreement_summary = (multi > 0).then(|| {
        let report = agreement(&input);
        AgreementSummary {
            open: resolved.iter().map(|(_, r)| r.open()).sum(),
            objects: report.objects,
            disputed: report.disputed,
            disputed_share: if report.objects > 0 {
                report.disputed as f64 / report.objects as f64
            } else {
                0.0
            },
            alpha_boxes: report.alpha_boxes,
            alpha_labels: report.alpha_labels,
            mean_f1: report.mean_f1,
            mean_iou: report.mean_iou,
        }
    });
    // The consensus objects (after review) of annotated views of scans without truth count in
    // the class balance.
    for (scan, view) in &resolved {
        let has_truth = library.get(scan).is_some_and(|r| !r.truth.is_empty());
        if has_truth || view.annotators.is_empty() {
            continue;
        }
        let objects = view.objects();
        for o in &objects {
            bump(&mut classes, o.label.clone());
        }
        if !objects.is_empty() {
            with_threat += 1;
        }
    }

    let class_counts = counts(classes);
    let even = if class_counts.is_empty() {
        0.0
    } else {
        class_counts.iter().map(|c| c.count).sum::<usize>() as f64 / class_counts.len() as f64
    };
    let rare = class_counts
        .iter()
        .filter(|c| (c.count as f64) < RARE_SHARE_OF_EVEN * even)
        .map(|c| c.name.clone())
        .collect();
    let imbalance_ratio = (class_counts.len() >= 2).then(|| {
        let max = class_counts.iter().map(|c| c.count).max().unwrap_or(0) as f64;
        let min = class_counts
            .iter()
            .map(|c| c.count)
            .min()
            .unwrap_or(0)
            .max(1) as f64;
        max / min
    });
    let scans = records.len();
    QualityReport {
        scans,
        images,
        counts_as_real: records
            .iter()
            .filter(|r| r.provenance.counts_as_real())
            .count(),
        from_renderings: records
            .iter()
            .filter(|r| r.provenance.rendering.is_some())
            .count(),
        provenance: counts(provenance),
        balance: Balance {
            classes: class_counts,
            rare,
            imbalance_ratio,
            scans_with_threat: with_threat,
            scans_without_threat: scans.saturating_sub(with_threat),
        },
        diversity: Diversity {
            cargo: counts(cargo),
            clutter_density: counts(density),
            clutter_materials: counts(clutter_mat),
            orientation: counts(orientation),
            threat_materials: counts(threat_mat),
            scanners: counts(scanners),
            locations: counts(locations),
        },
        resolution: Resolution {
            sizes: counts(sizes),
            mm_per_pixel: counts(mmpp),
            dual_energy: dual,
            views,
        },
        annotation: Annotation {
            scans_annotated: annotated.len(),
            coverage: if scans > 0 {
                annotated.len() as f64 / scans as f64
            } else {
                0.0
            },
            scans_multi_annotated: multi,
            annotators: annotators.len(),
            records: human().count(),
            scans_with_truth: truth_scans,
            median_seconds,
            images_per_hour: mean_seconds.filter(|s| *s > 0.0).map(|s| 3600.0 / s),
        },
        agreement: agreement_summary,
        privacy: Privacy {
            redistributable,
            not_redistributable: scans - redistributable,
            licences: counts(licences),
            to_anonymise: free_text,
            anonymised,
        },
    }
}

impl QualityReport {
    /// SVG bar charts: `(file name, svg)`.
    pub fn charts(&self) -> Vec<(String, String)> {
        let bars = |items: &[Count]| -> Vec<(String, f64)> {
            items
                .iter()
                .map(|c| (c.name.clone(), c.count as f64))
                .collect()
        };
        let mut out = vec![
            (
                "class_balance.svg",
                "class balance: objects per class",
                &self.balance.classes,
                "objects",
            ),
            (
                "provenance.svg",
                "provenance: real / staged / synthetic / projected",
                &self.provenance,
                "scans",
            ),
            (
                "cargo.svg",
                "diversity: cargo type",
                &self.diversity.cargo,
                "scans",
            ),
            (
                "clutter_density.svg",
                "diversity: clutter density (objects per 10,000 px²)",
                &self.diversity.clutter_density,
                "scans",
            ),
            (
                "clutter_materials.svg",
                "diversity: clutter material family",
                &self.diversity.clutter_materials,
                "objects",
            ),
            (
                "orientation.svg",
                "diversity: threat orientation |rotation|",
                &self.diversity.orientation,
                "objects",
            ),
            (
                "threat_materials.svg",
                "diversity: threat main material",
                &self.diversity.threat_materials,
                "objects",
            ),
            (
                "resolution.svg",
                "resolution: mm per pixel",
                &self.resolution.mm_per_pixel,
                "scans",
            ),
        ]
        .into_iter()
        .map(|(file, title, items, unit)| {
            (
                file.to_string(),
                borderlens_charts::bar_chart_svg(title, &bars(items), unit),
            )
        })
        .collect::<Vec<_>>();
        let coverage = vec![
            ("annotated".to_string(), self.annotation.coverage),
            (
                "annotated by 2+".to_string(),
                if self.scans > 0 {
                    self.annotation.scans_multi_annotated as f64 / self.scans as f64
                } else {
                    0.0
                },
            ),
            (
                "exact truth".to_string(),
                if self.scans > 0 {
                    self.annotation.scans_with_truth as f64 / self.scans as f64
                } else {
                    0.0
                },
            ),
            (
                "redistributable".to_string(),
                if self.scans > 0 {
                    self.privacy.redistributable as f64 / self.scans as f64
                } else {
                    0.0
                },
            ),
        ];
        out.push((
            "curation.svg".to_string(),
            borderlens_charts::bar_chart_svg(
                "curation: share of scans",
                &coverage,
                "share of scans",
            ),
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::AnnotatedObject;
    use crate::generate::{generate_scan, GeneratorParams, ThreatClass};
    use crate::geometry::BoxPx;
    use crate::library::{prepare, AnnotationRecord};

    #[test]
    fn report_counts_what_the_library_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        let params = GeneratorParams {
            width: 128,
            height: 128,
            threat_rate: 1.0,
            max_threats: 1,
            threat_scale: [0.25, 0.3],
            threat_mix: vec![(ThreatClass::Blade, 9.0), (ThreatClass::Ammunition, 1.0)],
            ..GeneratorParams::default()
        };
        for i in 0..12 {
            lib.commit(prepare(generate_scan(&params, 5, i)).unwrap())
                .unwrap();
        }
        let truth: usize = lib.records().iter().map(|r| r.truth.len()).sum();
        let first = lib.records()[0].metadata.scan_id.clone();
        let b = BoxPx::new(1.0, 1.0, 20.0, 20.0).unwrap();
        for (who, label) in [("ann", "blade"), ("bob", "knife")] {
            lib.add_annotation(AnnotationRecord {
                scan_id: first.clone(),
                annotator: who.into(),
                role: Default::default(),
                view: 0,
                objects: vec![AnnotatedObject {
                    label: label.into(),
                    bbox: b,
                    score: 1.0,
                }],
                seconds: Some(400.0),
                guideline: None,
                review: None,
            })
            .unwrap();
        }
        let r = quality_report(&lib);
        assert_eq!(r.scans, 12);
        assert_eq!(r.provenance[0].name, "synthetic");
        assert_eq!(r.provenance[0].count, 12);
        assert_eq!(r.counts_as_real, 0);
        assert_eq!(
            r.balance.classes.iter().map(|c| c.count).sum::<usize>(),
            truth
        );
        if r.balance.classes.len() == 2 {
            assert_eq!(r.balance.rare, vec!["ammunition".to_string()]);
        }
        assert_eq!(r.annotation.scans_annotated, 1);
        assert_eq!(r.annotation.scans_multi_annotated, 1);
        assert_eq!(r.annotation.images_per_hour, Some(9.0));
        let a = r.agreement.as_ref().unwrap();
        assert_eq!((a.objects, a.disputed), (1, 1));
        assert_eq!(r.privacy.redistributable, 12);
        assert_eq!(r.resolution.dual_energy, 12);
        let charts = r.charts();
        assert_eq!(charts.len(), 9);
        for (_, svg) in &charts {
            borderlens_charts::check::assert_well_formed(svg);
        }
        // The JSON round-trips.
        let text = serde_json::to_string(&r).unwrap();
        let back: QualityReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
}
