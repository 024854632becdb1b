//! Agreement between annotators: Krippendorff's α for boxes and labels, pairwise detection F1
//! and mean IoU, and the review queue of disputed objects.
//!
//! **Units.** The units of α are the merged objects of [`crate::consensus`] (one per object any
//! annotator drew). In a unit, each annotator assigned to the scan has a value:
//! - for **boxes**, the box they drew, or the *empty box* when they drew nothing there (absent);
//!   the distance is `1 − IoU`, and the empty box is at distance 1 from any box and 0 from
//!   itself — so missing an object counts as full disagreement;
//! - for **labels**, the label they gave, or no value when absent (nominal distance: 0 when
//!   equal, 1 otherwise) — label agreement among those who drew the object.
//!
//! **Per class**: box α over the units whose consensus label is the class; label α of the class
//! against all other labels (binary nominal) over all units.
//!
//! α = 1 − D_o / D_e with the coincidence form (Krippendorff, *Computing Krippendorff's
//! Alpha-Reliability*, 2011): only units with at least two values count; `D_o = Σ_u 1/(m_u − 1)
//! Σ_{i≠j} δ(v_ui, v_uj) / n` and `D_e = Σ_{i≠j} δ(v_i, v_j) / (n (n − 1))` over all n pairable
//! values. α is undefined (`None`) when there are no two values in a unit or D_e = 0.
//! `scripts/krippendorff_check.py` recomputes these figures from the same units with the PyPI
//! `krippendorff` package. The expected disagreement is a sum over all pairs of values (O(n²));
//! fine for thousands of objects, not for millions.
//!
//! **Pairwise**: for each pair of annotators, on the scans both annotated, boxes of the same
//! label are matched one-to-one greedily by IoU (highest first, at least the threshold);
//! F1 = 2·matches / (boxes of one + boxes of the other); mean IoU over the matches.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::consensus::{consensus, AnnotatorObjects, ConsensusOptions, MergedObject};
use crate::geometry::BoxPx;

/// One scan's annotations, as the agreement reads them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanAnnotations {
    /// the scan
    pub scan_id: String,
    /// every annotator assigned to it, with what they drew
    pub annotations: Vec<AnnotatorObjects>,
}

/// The input of `borderlens nii agreement FILE.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementInput {
    /// matching IoU threshold (default 0.5)
    #[serde(default = "default_threshold")]
    pub iou_threshold: f64,
    /// votes to accept an object (default: strict majority of a scan's annotators)
    #[serde(default)]
    pub quorum: Option<usize>,
    /// the scans
    pub scans: Vec<ScanAnnotations>,
}

fn default_threshold() -> f64 {
    0.5
}

impl AgreementInput {
    /// Checks the input; the message names the scan, annotator and field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.iou_threshold > 0.0 && self.iou_threshold <= 1.0) {
            return Err(format!(
                "iou_threshold: {} is not in (0, 1]",
                self.iou_threshold
            ));
        }
        if self.quorum == Some(0) {
            return Err("quorum: must be at least 1".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (s, scan) in self.scans.iter().enumerate() {
            if !seen.insert(scan.scan_id.as_str()) {
                return Err(format!(
                    "scans[{s}].scan_id: '{}' appears twice",
                    scan.scan_id
                ));
            }
            let mut names = std::collections::HashSet::new();
            for (a, ann) in scan.annotations.iter().enumerate() {
                if ann.annotator.trim().is_empty() {
                    return Err(format!("scans[{s}].annotations[{a}].annotator: is empty"));
                }
                if !names.insert(ann.annotator.as_str()) {
                    return Err(format!(
                        "scans[{s}].annotations[{a}].annotator: '{}' appears twice on scan '{}'",
                        ann.annotator, scan.scan_id
                    ));
                }
                for (o, object) in ann.objects.iter().enumerate() {
                    if object.label.trim().is_empty() {
                        return Err(format!(
                            "scans[{s}].annotations[{a}].objects[{o}].label: is empty"
                        ));
                    }
                    if !object.score.is_finite() || object.score < 0.0 {
                        return Err(format!("scans[{s}].annotations[{a}].objects[{o}].score: {} is not a non-negative number", object.score));
                    }
                }
            }
        }
        Ok(())
    }
}

/// One unit of α: a merged object with every assigned annotator's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    /// the scan
    pub scan_id: String,
    /// consensus label
    pub label: String,
    /// per assigned annotator: their box and label, or `None` when absent
    pub values: BTreeMap<String, Option<(BoxPx, String)>>,
}

/// α figures of one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassAgreement {
    /// class label
    pub class: String,
    /// units whose consensus label is this class
    pub units: usize,
    /// box α (1 − IoU) over those units
    pub alpha_boxes: Option<f64>,
    /// binary label α (this class vs others) over all units
    pub alpha_labels: Option<f64>,
}

/// Agreement of one pair of annotators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairAgreement {
    /// first annotator
    pub a: String,
    /// second annotator
    pub b: String,
    /// scans both annotated
    pub scans: usize,
    /// boxes matched (same label, IoU ≥ threshold)
    pub matched: usize,
    /// detection F1
    pub f1: Option<f64>,
    /// mean IoU of the matched boxes
    pub mean_iou: Option<f64>,
}

/// A disputed object, for the review queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dispute {
    /// the scan
    pub scan_id: String,
    /// the merged object
    pub object: MergedObject,
}

/// Everything the agreement computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgreementReport {
    /// matching IoU threshold used
    pub iou_threshold: f64,
    /// scans read
    pub scans: usize,
    /// annotators seen
    pub annotators: Vec<String>,
    /// merged objects (units)
    pub objects: usize,
    /// merged objects accepted by the quorum
    pub accepted: usize,
    /// merged objects disputed
    pub disputed: usize,
    /// Krippendorff's α, boxes (1 − IoU), all units
    pub alpha_boxes: Option<f64>,
    /// Krippendorff's α, labels (nominal), all units
    pub alpha_labels: Option<f64>,
    /// per class
    pub per_class: Vec<ClassAgreement>,
    /// per pair of annotators
    pub pairwise: Vec<PairAgreement>,
    /// mean F1 over the pairs with one
    pub mean_f1: Option<f64>,
    /// mean IoU over the pairs with one
    pub mean_iou: Option<f64>,
    /// the review queue
    pub disputes: Vec<Dispute>,
    /// the units, for checking α with other tools
    pub units: Vec<Unit>,
}

/// Krippendorff's α for units of pairable values with distance `delta` (see the module doc).
pub fn krippendorff_alpha<V>(units: &[Vec<V>], delta: impl Fn(&V, &V) -> f64) -> Option<f64> {
    let pairable: Vec<&Vec<V>> = units.iter().filter(|u| u.len() >= 2).collect();
    let n: usize = pairable.iter().map(|u| u.len()).sum();
    if n < 2 {
        return None;
    }
    let mut observed = 0.0;
    for u in &pairable {
        let mut sum = 0.0;
        for i in 0..u.len() {
            for j in 0..u.len() {
                if i != j {
                    sum += delta(&u[i], &u[j]);
                }
            }
        }
        observed += sum / (u.len() - 1) as f64;
    }
    observed /= n as f64;
    let all: Vec<&V> = pairable.iter().flat_map(|u| u.iter()).collect();
    let mut expected = 0.0;
    for i in 0..all.len() {
        for j in 0..all.len() {
            if i != j {
                expected += delta(all[i], all[j]);
            }
        }
    }
    expected /= (n * (n - 1)) as f64;
    if expected <= 0.0 {
        return None;
    }
    Some(1.0 - observed / expected)
}

fn box_distance(a: &Option<BoxPx>, b: &Option<BoxPx>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => 1.0 - a.iou(b),
        (None, None) => 0.0,
        _ => 1.0,
    }
}

fn box_alpha<'a>(units: impl Iterator<Item = &'a Unit>) -> Option<f64> {
    let values: Vec<Vec<Option<BoxPx>>> = units
        .map(|u| {
            u.values
                .values()
                .map(|v| v.as_ref().map(|(b, _)| *b))
                .collect()
        })
        .collect();
    krippendorff_alpha(&values, box_distance)
}

fn label_alpha<'a>(
    units: impl Iterator<Item = &'a Unit>,
    map: impl Fn(&str) -> String,
) -> Option<f64> {
    let values: Vec<Vec<String>> = units
        .map(|u| {
            u.values
                .values()
                .filter_map(|v| v.as_ref().map(|(_, l)| map(l)))
                .collect()
        })
        .collect();
    krippendorff_alpha(&values, |a, b| if a == b { 0.0 } else { 1.0 })
}

/// Greedy one-to-one matching of same-label boxes by IoU (highest first): the IoUs matched.
fn match_pair(a: &AnnotatorObjects, b: &AnnotatorObjects, threshold: f64) -> Vec<f64> {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, x) in a.objects.iter().enumerate() {
        for (j, y) in b.objects.iter().enumerate() {
            if x.label == y.label {
                let iou = x.bbox.iou(&y.bbox);
                if iou >= threshold {
                    pairs.push((iou, i, j));
                }
            }
        }
    }
    pairs.sort_by(|p, q| q.0.total_cmp(&p.0).then(p.1.cmp(&q.1)).then(p.2.cmp(&q.2)));
    let (mut used_a, mut used_b) = (vec![false; a.objects.len()], vec![false; b.objects.len()]);
    let mut out = Vec::new();
    for (iou, i, j) in pairs {
        if !used_a[i] && !used_b[j] {
            used_a[i] = true;
            used_b[j] = true;
            out.push(iou);
        }
    }
    out
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Consensus, α, pairwise figures and disputes of a set of annotated scans.
pub fn agreement(input: &AgreementInput) -> AgreementReport {
    let options = ConsensusOptions {
        iou_threshold: input.iou_threshold,
        quorum: input.quorum,
    };
    let mut units = Vec::new();
    let mut disputes = Vec::new();
    let mut accepted = 0;
    let mut annotators: Vec<String> = Vec::new();
    for scan in &input.scans {
        for a in &scan.annotations {
            if !annotators.contains(&a.annotator) {
                annotators.push(a.annotator.clone());
            }
        }
        for object in consensus(&scan.annotations, &options) {
            let mut values: BTreeMap<String, Option<(BoxPx, String)>> = scan
                .annotations
                .iter()
                .map(|a| (a.annotator.clone(), None))
                .collect();
            for m in &object.members {
                values.insert(m.annotator.clone(), Some((m.bbox, m.label.clone())));
            }
            units.push(Unit {
                scan_id: scan.scan_id.clone(),
                label: object.label.clone(),
                values,
            });
            if object.accepted {
                accepted += 1;
            }
            if object.disputed() {
                disputes.push(Dispute {
                    scan_id: scan.scan_id.clone(),
                    object,
                });
            }
        }
    }
    annotators.sort();
    let mut classes: Vec<String> = units.iter().map(|u| u.label.clone()).collect();
    for u in &units {
        for (_, l) in u.values.values().flatten() {
            classes.push(l.clone());
        }
    }
    classes.sort();
    classes.dedup();
    let per_class = classes
        .iter()
        .map(|class| ClassAgreement {
            class: class.clone(),
            units: units.iter().filter(|u| &u.label == class).count(),
            alpha_boxes: box_alpha(units.iter().filter(|u| &u.label == class)),
            alpha_labels: label_alpha(units.iter(), |l| (l == class).to_string()),
        })
        .collect();
    let mut pairwise = Vec::new();
    for i in 0..annotators.len() {
        for j in i + 1..annotators.len() {
            let (a, b) = (&annotators[i], &annotators[j]);
            let (mut scans, mut matched_ious, mut total) = (0, Vec::new(), 0);
            for scan in &input.scans {
                let x = scan.annotations.iter().find(|x| &x.annotator == a);
                let y = scan.annotations.iter().find(|y| &y.annotator == b);
                if let (Some(x), Some(y)) = (x, y) {
                    scans += 1;
                    total += x.objects.len() + y.objects.len();
                    matched_ious.extend(match_pair(x, y, input.iou_threshold));
                }
            }
            pairwise.push(PairAgreement {
                a: a.clone(),
                b: b.clone(),
                scans,
                matched: matched_ious.len(),
                f1: (total > 0).then(|| 2.0 * matched_ious.len() as f64 / total as f64),
                mean_iou: mean(&matched_ious),
            });
        }
    }
    let f1s: Vec<f64> = pairwise.iter().filter_map(|p| p.f1).collect();
    let ious: Vec<f64> = pairwise.iter().filter_map(|p| p.mean_iou).collect();
    AgreementReport {
        iou_threshold: input.iou_threshold,
        scans: input.scans.len(),
        annotators,
        objects: units.len(),
        accepted,
        disputed: disputes.len(),
        alpha_boxes: box_alpha(units.iter()),
        alpha_labels: label_alpha(units.iter(), str::to_string),
        per_class,
        pairwise,
        mean_f1: mean(&f1s),
        mean_iou: mean(&ious),
        disputes,
        units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::tests::{obj, who};

    #[test]
    fn nominal_alpha_of_a_textbook_case() {
        // Two coders, four units: (a,a) (a,b) (b,b) (b,b). n = 8 values: a ×3, b ×5.
        // D_o = (2 / 1) / 8 = 0.25 (the one disagreeing unit contributes 2 ordered pairs / (2-1)).
        // D_e = 2 · 3 · 5 / (8 · 7) = 30 / 56.  α = 1 − 0.25 · 56 / 30 = 0.5333…
        let units = vec![
            vec!["a", "a"],
            vec!["a", "b"],
            vec!["b", "b"],
            vec!["b", "b"],
        ];
        let alpha = krippendorff_alpha(&units, |x, y| if x == y { 0.0 } else { 1.0 }).unwrap();
        assert!(
            (alpha - (1.0 - 0.25 * 56.0 / 30.0)).abs() < 1e-12,
            "{alpha}"
        );
        // A unit with one value is not pairable; perfect agreement is 1; no variation is undefined.
        let units = vec![vec!["a", "a"], vec!["b", "b"], vec!["c"]];
        assert_eq!(
            krippendorff_alpha(&units, |x, y| if x == y { 0.0 } else { 1.0 }),
            Some(1.0)
        );
        let units = vec![vec!["a", "a"], vec!["a", "a"]];
        assert_eq!(
            krippendorff_alpha(&units, |x, y| if x == y { 0.0 } else { 1.0 }),
            None
        );
    }

    #[test]
    fn two_annotators_boxes_and_an_absent_one() {
        // Scan 1: both draw the same knife exactly; scan 2: a draws a gun b missed.
        let input = AgreementInput {
            iou_threshold: 0.5,
            quorum: None,
            scans: vec![
                ScanAnnotations {
                    scan_id: "s1".into(),
                    annotations: vec![
                        who("a", vec![obj("knife", [0.0, 0.0, 10.0, 10.0])]),
                        who("b", vec![obj("knife", [0.0, 0.0, 10.0, 10.0])]),
                    ],
                },
                ScanAnnotations {
                    scan_id: "s2".into(),
                    annotations: vec![
                        who("a", vec![obj("gun", [0.0, 0.0, 10.0, 10.0])]),
                        who("b", vec![]),
                    ],
                },
            ],
        };
        let r = agreement(&input);
        assert_eq!(r.objects, 2);
        // Box values: unit 1 (K, K), unit 2 (G, ∅); K and G are the same box, so δ(K,G) = 0.
        // n = 4; D_o = (0 + 2·1/1) / 4 = 0.5; values {box ×3, ∅ ×1}: D_e = 2·3·1 / (4·3) = 0.5.
        // α = 1 − 0.5 / 0.5 = 0.
        assert!(
            (r.alpha_boxes.unwrap() - 0.0).abs() < 1e-12,
            "{:?}",
            r.alpha_boxes
        );
        // Labels: only unit 1 is pairable (knife, knife), no variation: undefined.
        assert_eq!(r.alpha_labels, None);
        // Pairwise: 1 match out of 2 + 1 boxes → F1 = 2/3, IoU 1.
        assert_eq!(r.pairwise.len(), 1);
        assert!((r.pairwise[0].f1.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.pairwise[0].mean_iou, Some(1.0));
        assert_eq!(r.disputed, 1);
        assert_eq!(r.disputes[0].scan_id, "s2");
    }

    #[test]
    fn three_annotators_with_a_disputed_label() {
        // One object: a and b say knife with boxes of IoU 0.8, c says blade with IoU 1 to a.
        // A second object all three call gun, identical boxes.
        let k = [0.0, 0.0, 10.0, 10.0];
        let k2 = [0.0, 0.0, 8.0, 10.0]; // IoU with k = 80/100 = 0.8
        let g = [50.0, 50.0, 60.0, 60.0];
        let input = AgreementInput {
            iou_threshold: 0.5,
            quorum: None,
            scans: vec![ScanAnnotations {
                scan_id: "s".into(),
                annotations: vec![
                    who("a", vec![obj("knife", k), obj("gun", g)]),
                    who("b", vec![obj("knife", k2), obj("gun", g)]),
                    who("c", vec![obj("blade", k), obj("gun", g)]),
                ],
            }],
        };
        let r = agreement(&input);
        assert_eq!(r.objects, 2);
        assert_eq!(r.disputed, 1);
        assert_eq!(r.accepted, 2);
        // Labels: units (knife, knife, blade) and (gun, gun, gun); n = 6.
        // D_o = (1/2 · 4) / 6 = 1/3 (unit 1 has 4 ordered disagreeing pairs).
        // Values: knife 2, blade 1, gun 3 → disagreeing ordered pairs = 36 − (4 + 1 + 9) = 22;
        // D_e = 22 / 30. α = 1 − (1/3) / (22/30) = 1 − 10/22 = 0.5454…
        let want = 1.0 - (1.0 / 3.0) / (22.0 / 30.0);
        assert!(
            (r.alpha_labels.unwrap() - want).abs() < 1e-12,
            "{:?}",
            r.alpha_labels
        );
        // Boxes: unit 1 values k, k2, k (δ(k,k2) = 0.2), unit 2 g, g, g; δ(k, g) = 1.
        // D_o = (1/2 · 4 · 0.2) / 6 = 0.4 / 6.
        // All pairs: within {k,k2,k}: 4 ordered pairs at 0.2 = 0.8; k-group vs g: 2·3·3 = 18.
        // D_e = 18.8 / 30. α = 1 − (0.4/6) / (18.8/30).
        let want = 1.0 - (0.4 / 6.0) / (18.8 / 30.0);
        assert!(
            (r.alpha_boxes.unwrap() - want).abs() < 1e-12,
            "{:?}",
            r.alpha_boxes
        );
        // Pairwise a–b: 2 matches (knife IoU 0.8, gun 1) of 4 boxes: F1 1, mean IoU 0.9.
        let ab = &r.pairwise[0];
        assert_eq!((ab.a.as_str(), ab.b.as_str()), ("a", "b"));
        assert_eq!(ab.f1, Some(1.0));
        assert!((ab.mean_iou.unwrap() - 0.9).abs() < 1e-12);
        // a–c: the knife/blade pair does not match (labels differ): F1 = 2·1/4.
        assert_eq!(r.pairwise[1].f1, Some(0.5));
        // Per class: knife units = 1 (boxes k, k2, k only: no variation across units → D_e > 0
        // still, since δ(k, k2) > 0), gun units = 1 with identical boxes: undefined.
        let gun = r.per_class.iter().find(|c| c.class == "gun").unwrap();
        assert_eq!(gun.units, 1);
        assert_eq!(gun.alpha_boxes, None);
        let knife = r.per_class.iter().find(|c| c.class == "knife").unwrap();
        // One unit: D_o = (1/2 · 0.8) / 3, D_e = 0.8 / 6 → α = 1 − (0.4/3)/(0.8/6) = 0.
        assert!(knife.alpha_boxes.unwrap().abs() < 1e-12);
        // Binary label α for "blade": units (F, F, T), (F, F, F): n = 6, D_o = (1/2·4)/6,
        // values F ×5, T ×1 → D_e = 10/30 → α = 1 − (1/3)/(1/3) = 0.
        let blade = r.per_class.iter().find(|c| c.class == "blade").unwrap();
        assert!(blade.alpha_labels.unwrap().abs() < 1e-12);
        assert_eq!(blade.units, 0);
    }

    #[test]
    fn input_problems_name_the_field() {
        let mut input = AgreementInput {
            iou_threshold: 0.5,
            quorum: None,
            scans: vec![ScanAnnotations {
                scan_id: "s".into(),
                annotations: vec![who("a", vec![]), who("a", vec![])],
            }],
        };
        assert!(input
            .validate()
            .unwrap_err()
            .contains("scans[0].annotations[1].annotator"));
        input.scans[0].annotations.pop();
        assert!(input.validate().is_ok());
        input.iou_threshold = 0.0;
        assert!(input.validate().unwrap_err().contains("iou_threshold"));
    }
}
