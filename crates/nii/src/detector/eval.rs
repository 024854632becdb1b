//! Evaluation on a labelled library the model never saw: average precision at IoU 0.5 per class
//! and its mean (mAP@0.5, all-point interpolation as in PASCAL VOC 2010+), the view-level
//! detection rate at a fixed false-alarm rate per view (what operators count), and the Grad-CAM
//! pointing game on true positives.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::input::read_view;
use super::train::{digest_of, labelled_views};
use super::{map_peak, Detector, DetectorError, ViewDetections, ViewInput};
use crate::coco::CocoSource;
use crate::geometry::BoxPx;
use crate::library::Library;

/// Detections down to this score enter the precision–recall curves.
pub const EVAL_MIN_SCORE: f64 = 0.01;
/// IoU a detection needs with a true box of its class to count.
pub const IOU: f64 = 0.5;
/// False-alarm rates per view at which the detection rate is reported.
pub const FALSE_ALARM_RATES: [f64; 2] = [0.01, 0.05];

/// Average precision of one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassAp {
    /// class name
    pub class: String,
    /// true objects of the class
    pub objects: usize,
    /// detections of the class (score ≥ [`EVAL_MIN_SCORE`])
    pub detections: usize,
    /// average precision at IoU 0.5 (`None` when the class has no true object)
    pub ap: Option<f64>,
}

/// The detection rate at one false-alarm rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// the false-alarm rate aimed at (share of views without threat that alarm)
    pub false_alarm_target: f64,
    /// alarm when the view's alarm score is above this
    pub threshold: f64,
    /// the false-alarm rate reached on this set
    pub false_alarm_rate: f64,
    /// share of views with a threat that alarm
    pub detection_rate: f64,
    /// share of true objects found (same class, IoU ≥ 0.5) by a detection above the threshold
    pub object_recall: f64,
}

/// The pointing game: a heat map's highest point falls inside the true box.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointingGame {
    /// true positives whose heat map was checked
    pub total: usize,
    /// of which the peak fell inside the true box
    pub hits: usize,
    /// `hits / total`
    pub rate: Option<f64>,
    /// the true positives counted: those scoring above this (the 5 % false-alarm threshold)
    pub min_score: f64,
}

/// A model's figures on one labelled library.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// what the set is called (the library folder's name, or what the caller says)
    pub set: String,
    /// the label source
    pub label_source: String,
    /// SHA-256 of the set (as the training digest)
    pub digest: String,
    /// views evaluated
    pub views: usize,
    /// views with at least one object of the model's classes
    pub threat_views: usize,
    /// views with none
    pub clean_views: usize,
    /// true objects of classes the model does not know (not counted)
    pub unknown_class_objects: usize,
    /// mean of the per-class APs (classes with objects)
    pub map50: Option<f64>,
    /// per class
    pub per_class: Vec<ClassAp>,
    /// detection rate at 1 % and 5 % false alarms per view
    pub operating_points: Vec<OperatingPoint>,
    /// Grad-CAM pointing game
    pub pointing_game: PointingGame,
    /// views per second through the network (batches of 8, inputs already read)
    pub network_views_per_second: f64,
    /// views per second from PNG to detections (reading, preparing, network, decoding)
    pub end_to_end_views_per_second: f64,
}

/// Average precision from `(score, true positive)` pairs and the number of true objects:
/// the area under the precision–recall curve with precision made monotone (VOC all-point).
pub fn average_precision(scored: &mut [(f64, bool)], objects: usize) -> Option<f64> {
    if objects == 0 {
        return None;
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut tp = 0usize;
    let mut points = Vec::with_capacity(scored.len());
    for (i, (_, hit)) in scored.iter().enumerate() {
        if *hit {
            tp += 1;
        }
        points.push((tp as f64 / objects as f64, tp as f64 / (i + 1) as f64));
    }
    // precision envelope from the right
    let mut best = 0.0f64;
    for p in points.iter_mut().rev() {
        best = best.max(p.1);
        p.1 = best;
    }
    let mut ap = 0.0;
    let mut last_recall = 0.0;
    for (r, p) in points {
        if r > last_recall {
            ap += (r - last_recall) * p;
            last_recall = r;
        }
    }
    Some(ap)
}

/// Matches detections (highest score first) to true boxes of their class; each true box is
/// taken once, by the detection with the highest IoU ≥ 0.5 among those still free. Returns,
/// per detection, the index of the true box it matched.
pub fn match_detections(
    detections: &[(usize, f64, BoxPx)],
    truth: &[(usize, BoxPx)],
) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..detections.len()).collect();
    order.sort_by(|a, b| detections[*b].1.total_cmp(&detections[*a].1));
    let mut taken = vec![false; truth.len()];
    let mut out = vec![None; detections.len()];
    for i in order {
        let (k, _, b) = &detections[i];
        let mut best: Option<(usize, f64)> = None;
        for (j, (tk, tb)) in truth.iter().enumerate() {
            if taken[j] || tk != k {
                continue;
            }
            let iou = b.iou(tb);
            if iou >= IOU && best.is_none_or(|(_, v)| iou > v) {
                best = Some((j, iou));
            }
        }
        if let Some((j, _)) = best {
            taken[j] = true;
            out[i] = Some(j);
        }
    }
    out
}

struct ViewResult {
    truth: Vec<(usize, BoxPx)>,
    found: ViewDetections,
    matched: Vec<Option<usize>>,
    /// (score, peak inside the true box) per true positive
    pointing: Vec<(f64, bool)>,
}

/// The alarm threshold that keeps the false-alarm rate at most `rate`: views alarm when their
/// score is strictly above it.
fn threshold_for(clean_desc: &[f64], rate: f64) -> f64 {
    let allowed = (rate * clean_desc.len() as f64).floor() as usize;
    clean_desc.get(allowed).copied().unwrap_or(0.0)
}

/// Evaluates `detector` on the views of `library` labelled by `source`. `Ok(None)` when stopped.
pub fn evaluate(
    detector: &Detector,
    library: &Library,
    source: &CocoSource,
    set: &str,
    progress: &dyn Fn(u64, u64),
    stop: &dyn Fn() -> bool,
) -> Result<Option<Evaluation>, DetectorError> {
    let views = labelled_views(library, source);
    if views.is_empty() {
        return Err(DetectorError::new(format!(
            "no view of '{set}' is labelled by '{}'",
            source.word()
        )));
    }
    let classes = &detector.meta.classes;
    let side = detector.meta.shape.side;
    let grid = detector.meta.shape.grid();
    let started = std::time::Instant::now();
    let mut network_seconds = 0.0;
    let mut results: Vec<ViewResult> = Vec::with_capacity(views.len());
    let mut unknown = 0usize;
    let total = views.len() as u64;
    for chunk in views.chunks(8) {
        if stop() {
            return Ok(None);
        }
        let inputs: Vec<ViewInput> = chunk
            .par_iter()
            .map(|v| read_view(library, v.record, v.view, side))
            .collect::<Result<_, _>>()
            .map_err(|e| DetectorError::new(e.to_string()))?;
        let refs: Vec<&ViewInput> = inputs.iter().collect();
        let t = std::time::Instant::now();
        let found = detector.detect(&refs, EVAL_MIN_SCORE)?;
        network_seconds += t.elapsed().as_secs_f64();
        for ((v, input), found) in chunk.iter().zip(&inputs).zip(found) {
            let mut truth = Vec::new();
            for o in &v.objects {
                match classes.iter().position(|c| c == &o.label) {
                    Some(k) => truth.push((k, o.bbox)),
                    None => unknown += 1,
                }
            }
            let dets: Vec<(usize, f64, BoxPx)> = found
                .detections
                .iter()
                .map(|d| (d.class_index, d.score, d.bbox))
                .collect();
            let matched = match_detections(&dets, &truth);
            let positives: Vec<_> = found
                .detections
                .iter()
                .zip(&matched)
                .filter(|(d, m)| m.is_some() && d.score >= 0.1)
                .map(|(d, m)| (d.clone(), m.unwrap_or(0)))
                .collect();
            let mut pointing = Vec::new();
            if !positives.is_empty() {
                let dets: Vec<_> = positives.iter().map(|(d, _)| d.clone()).collect();
                let maps = detector.grad_cam(input, &dets)?;
                for ((d, j), map) in positives.iter().zip(maps) {
                    let (x, y) = map_peak(&map, grid, input.width, input.height);
                    let b = truth[*j].1;
                    pointing.push((d.score, x >= b.x0 && x < b.x1 && y >= b.y0 && y < b.y1));
                }
            }
            results.push(ViewResult {
                truth,
                found,
                matched,
                pointing,
            });
        }
        progress(results.len() as u64, total);
    }
    let seconds = started.elapsed().as_secs_f64();

    let mut per_class = Vec::with_capacity(classes.len());
    for (k, class) in classes.iter().enumerate() {
        let objects = results
            .iter()
            .map(|r| r.truth.iter().filter(|t| t.0 == k).count())
            .sum();
        let mut scored: Vec<(f64, bool)> = results
            .iter()
            .flat_map(|r| {
                r.found
                    .detections
                    .iter()
                    .zip(&r.matched)
                    .filter(|(d, _)| d.class_index == k)
                    .map(|(d, m)| (d.score, m.is_some()))
            })
            .collect();
        let detections = scored.len();
        per_class.push(ClassAp {
            class: class.clone(),
            objects,
            detections,
            ap: average_precision(&mut scored, objects),
        });
    }
    let aps: Vec<f64> = per_class.iter().filter_map(|c| c.ap).collect();
    let map50 = (!aps.is_empty()).then(|| aps.iter().sum::<f64>() / aps.len() as f64);

    let mut clean: Vec<f64> = results
        .iter()
        .filter(|r| r.truth.is_empty())
        .map(|r| r.found.alarm)
        .collect();
    clean.sort_by(|a, b| b.total_cmp(a));
    let threat: Vec<&ViewResult> = results.iter().filter(|r| !r.truth.is_empty()).collect();
    let objects_total: usize = threat.iter().map(|r| r.truth.len()).sum();
    let mut operating_points = Vec::new();
    if !clean.is_empty() && !threat.is_empty() {
        for rate in FALSE_ALARM_RATES {
            let thr = threshold_for(&clean, rate);
            let fa = clean.iter().filter(|s| **s > thr).count() as f64 / clean.len() as f64;
            let dr =
                threat.iter().filter(|r| r.found.alarm > thr).count() as f64 / threat.len() as f64;
            let found: usize = threat
                .iter()
                .map(|r| {
                    let mut hit = vec![false; r.truth.len()];
                    for (d, m) in r.found.detections.iter().zip(&r.matched) {
                        if let Some(j) = m {
                            if d.score > thr {
                                hit[*j] = true;
                            }
                        }
                    }
                    hit.iter().filter(|h| **h).count()
                })
                .sum();
            operating_points.push(OperatingPoint {
                false_alarm_target: rate,
                threshold: thr,
                false_alarm_rate: fa,
                detection_rate: dr,
                object_recall: found as f64 / objects_total.max(1) as f64,
            });
        }
    }
    let min_score = operating_points
        .iter()
        .find(|o| o.false_alarm_target == 0.05)
        .map_or(0.1, |o| o.threshold.max(0.1));
    let counted: Vec<bool> = results
        .iter()
        .flat_map(|r| r.pointing.iter().filter(|p| p.0 > min_score).map(|p| p.1))
        .collect();
    let hits = counted.iter().filter(|h| **h).count();
    Ok(Some(Evaluation {
        set: set.to_string(),
        label_source: source.word().to_string(),
        digest: digest_of(&views),
        views: results.len(),
        threat_views: threat.len(),
        clean_views: clean.len(),
        unknown_class_objects: unknown,
        map50,
        per_class,
        operating_points,
        pointing_game: PointingGame {
            total: counted.len(),
            hits,
            rate: (!counted.is_empty()).then(|| hits as f64 / counted.len() as f64),
            min_score,
        },
        network_views_per_second: results.len() as f64 / network_seconds.max(1e-9),
        end_to_end_views_per_second: results.len() as f64 / seconds.max(1e-9),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f64, y0: f64, x1: f64, y1: f64) -> BoxPx {
        BoxPx::new(x0, y0, x1, y1).unwrap()
    }

    #[test]
    fn average_precision_of_a_known_ranking() {
        // 2 objects; ranking: hit, miss, hit → precision 1 at recall .5, 2/3 at recall 1.
        let mut s = vec![(0.9, true), (0.8, false), (0.7, true)];
        let ap = average_precision(&mut s, 2).unwrap();
        assert!((ap - (0.5 * 1.0 + 0.5 * 2.0 / 3.0)).abs() < 1e-12, "{ap}");
        // A missed object caps recall: 1 of 2 found at precision 1 → 0.5.
        let mut s = vec![(0.9, true)];
        assert_eq!(average_precision(&mut s, 2), Some(0.5));
        assert_eq!(average_precision(&mut [], 0), None);
        assert_eq!(average_precision(&mut [], 3), Some(0.0));
    }

    #[test]
    fn matching_takes_each_true_box_once_and_respects_classes() {
        let truth = vec![(0, b(0.0, 0.0, 10.0, 10.0)), (1, b(20.0, 20.0, 30.0, 30.0))];
        let dets = vec![
            (0, 0.5, b(0.0, 0.0, 10.0, 9.0)),
            (0, 0.9, b(0.0, 0.0, 10.0, 10.0)),
            (0, 0.8, b(20.0, 20.0, 30.0, 30.0)), // right place, wrong class
            (1, 0.7, b(21.0, 20.0, 30.0, 30.0)),
        ];
        assert_eq!(
            match_detections(&dets, &truth),
            vec![None, Some(0), None, Some(1)]
        );
    }

    #[test]
    fn threshold_keeps_false_alarms_at_most_the_rate() {
        let clean: Vec<f64> = (0..200).map(|i| 1.0 - i as f64 / 200.0).collect();
        let thr = threshold_for(&clean, 0.01);
        let fa = clean.iter().filter(|s| **s > thr).count();
        assert_eq!(fa, 2);
        assert_eq!(threshold_for(&[0.3], 0.01), 0.3);
    }
}
