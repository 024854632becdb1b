//! Consensus of several annotators' boxes on one scan.
//!
//! 1. **Matching.** All boxes of the scan, whatever their label, are taken in order of score
//!    (then annotator, then drawing order). Each joins the cluster whose fused box it overlaps
//!    most, if that IoU reaches the threshold and the cluster has no box of the same annotator
//!    yet (at most one box per annotator per cluster); otherwise it starts a cluster. Labels are
//!    not used for matching, so two annotators who drew the same object with different labels
//!    land in one cluster — a disputed label, not two objects.
//! 2. **Weighted boxes fusion** (Solovyev et al., 2021): the fused box is the score-weighted mean
//!    of the members' coordinates; the consensus score is the sum of member scores divided by the
//!    number of annotators assigned to the scan, so an annotator who drew nothing there (absent)
//!    counts as a zero.
//! 3. **Quorum.** The fused object is accepted when its most voted label has at least `quorum`
//!    votes (by default a strict majority of the assigned annotators) and no other label ties it.
//! 4. **Disputes.** An object is disputed when its labels differ or an assigned annotator is
//!    absent; the reasons are listed for the review queue.
//! 5. **Review** ([`resolve_view`]). A reviewer's line on the view is their decision on its
//!    disputed objects, recorded as its own source: each disputed object that one of the
//!    reviewer's boxes overlaps (IoU at the threshold, one to one, greatest overlap first) is
//!    kept with the reviewer's label and box; one that none overlaps was rejected. A reviewer's
//!    box that overlaps no merged object is an object the annotators missed, added. When an
//!    annotator saved a line after the review, the review is stale: each disputed object keeps
//!    the decision taken on the object the review saw at its place (kept or rejected), and an
//!    object the review did not see is open (never taken as rejected) unless the reviewer had
//!    added one there. Undisputed objects are never changed by a review.
//!
//! Written here rather than taken from a crate: no Rust crate implements weighted boxes fusion
//! with absent annotators and quorum; the algorithm is short and fully tested by hand.

use serde::{Deserialize, Serialize};

use crate::geometry::BoxPx;
use crate::library::{AnnotationRecord, AnnotationRole};

fn one() -> f64 {
    1.0
}

/// One object drawn by one annotator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotatedObject {
    /// class label from the guideline
    pub label: String,
    /// box, pixels `[x0, y0, x1, y1]`
    pub bbox: BoxPx,
    /// confidence (1 for a person; a model's score for a machine)
    #[serde(default = "one")]
    pub score: f64,
}

/// All objects one annotator drew on one scan (possibly none).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotatorObjects {
    /// who annotated
    pub annotator: String,
    /// the objects drawn
    pub objects: Vec<AnnotatedObject>,
}

/// Settings of the consensus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsensusOptions {
    /// boxes match when their IoU reaches this
    pub iou_threshold: f64,
    /// votes needed to accept an object (`None`: a strict majority of the assigned annotators)
    pub quorum: Option<usize>,
}

impl Default for ConsensusOptions {
    fn default() -> Self {
        ConsensusOptions {
            iou_threshold: 0.5,
            quorum: None,
        }
    }
}

impl ConsensusOptions {
    /// The quorum for `assigned` annotators.
    pub fn quorum_for(&self, assigned: usize) -> usize {
        self.quorum.unwrap_or(assigned / 2 + 1).max(1)
    }
}

/// One annotator's box in a merged object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// who drew it
    pub annotator: String,
    /// index of the object in that annotator's list
    pub object: usize,
    /// the label given
    pub label: String,
    /// the box drawn
    pub bbox: BoxPx,
    /// its score
    pub score: f64,
}

/// A merged object: the annotators' matched boxes, fused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergedObject {
    /// the fused box (score-weighted mean)
    pub bbox: BoxPx,
    /// the most voted label (ties: the first in alphabetical order, and the object is disputed)
    pub label: String,
    /// votes per label, most voted first
    pub votes: Vec<(String, usize)>,
    /// the boxes fused
    pub members: Vec<Member>,
    /// assigned annotators who drew nothing here
    pub absent: Vec<String>,
    /// Σ member scores / assigned annotators
    pub score: f64,
    /// quorum reached by a unique most-voted label
    pub accepted: bool,
    /// why the object needs review (empty: unanimous)
    pub disputes: Vec<String>,
}

impl MergedObject {
    /// Whether the object goes to the review queue.
    pub fn disputed(&self) -> bool {
        !self.disputes.is_empty()
    }
}

fn fuse(members: &[Member]) -> BoxPx {
    let total: f64 = members.iter().map(|m| m.score.max(0.0)).sum();
    let weight = |m: &Member| {
        if total > 0.0 {
            m.score.max(0.0) / total
        } else {
            1.0 / members.len() as f64
        }
    };
    let mut b = BoxPx {
        x0: 0.0,
        y0: 0.0,
        x1: 0.0,
        y1: 0.0,
    };
    for m in members {
        let w = weight(m);
        b.x0 += w * m.bbox.x0;
        b.y0 += w * m.bbox.y0;
        b.x1 += w * m.bbox.x1;
        b.y1 += w * m.bbox.y1;
    }
    b
}

/// Merges the annotators' objects of one scan. Every annotator in `annotations` counts as
/// assigned to the scan (list an annotator with no objects to count them absent everywhere).
pub fn consensus(
    annotations: &[AnnotatorObjects],
    options: &ConsensusOptions,
) -> Vec<MergedObject> {
    let assigned: Vec<&str> = annotations.iter().map(|a| a.annotator.as_str()).collect();
    let mut order: Vec<(usize, usize)> = annotations
        .iter()
        .enumerate()
        .flat_map(|(a, ann)| (0..ann.objects.len()).map(move |o| (a, o)))
        .collect();
    // Highest score first; ties keep annotator and drawing order (stable sort).
    order.sort_by(|&(a1, o1), &(a2, o2)| {
        annotations[a2].objects[o2]
            .score
            .total_cmp(&annotations[a1].objects[o1].score)
    });
    let mut clusters: Vec<(Vec<Member>, Vec<usize>, BoxPx)> = Vec::new();
    for (a, o) in order {
        let object = &annotations[a].objects[o];
        let mut best: Option<(usize, f64)> = None;
        for (c, (_, who, fused)) in clusters.iter().enumerate() {
            if who.contains(&a) {
                continue;
            }
            let iou = fused.iou(&object.bbox);
            if iou >= options.iou_threshold && best.is_none_or(|(_, b)| iou > b) {
                best = Some((c, iou));
            }
        }
        let member = Member {
            annotator: annotations[a].annotator.clone(),
            object: o,
            label: object.label.clone(),
            bbox: object.bbox,
            score: object.score,
        };
        match best {
            Some((c, _)) => {
                let cluster = &mut clusters[c];
                cluster.0.push(member);
                cluster.1.push(a);
                cluster.2 = fuse(&cluster.0);
            }
            None => clusters.push((vec![member], vec![a], object.bbox)),
        }
    }
    let quorum = options.quorum_for(assigned.len());
    clusters
        .into_iter()
        .map(|(members, who, bbox)| {
            let mut votes: Vec<(String, usize)> = Vec::new();
            for m in &members {
                match votes.iter_mut().find(|(l, _)| *l == m.label) {
                    Some(v) => v.1 += 1,
                    None => votes.push((m.label.clone(), 1)),
                }
            }
            votes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let absent: Vec<String> = assigned
                .iter()
                .enumerate()
                .filter(|(i, _)| !who.contains(i))
                .map(|(_, name)| name.to_string())
                .collect();
            let tie = votes.len() > 1 && votes[1].1 == votes[0].1;
            let mut disputes = Vec::new();
            if votes.len() > 1 {
                let list: Vec<String> = votes.iter().map(|(l, n)| format!("{l} ×{n}")).collect();
                disputes.push(format!("labels differ: {}", list.join(", ")));
            }
            if !absent.is_empty() {
                disputes.push(format!("not drawn by: {}", absent.join(", ")));
            }
            let score = members.iter().map(|m| m.score).sum::<f64>() / assigned.len().max(1) as f64;
            MergedObject {
                bbox,
                label: votes[0].0.clone(),
                accepted: votes[0].1 >= quorum && !tie,
                votes,
                members,
                absent,
                score,
                disputes,
            }
        })
        .collect()
}

/// What became of a merged object of a view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// not disputed: accepted or not by the quorum alone
    Undisputed,
    /// disputed, and no (current) review has decided it
    Open,
    /// disputed; the reviewer kept it with this label and box
    Kept {
        /// the reviewer
        reviewer: String,
        /// the object as the reviewer kept it
        object: AnnotatedObject,
    },
    /// disputed; the reviewer rejected it (not an object)
    Rejected {
        /// the reviewer
        reviewer: String,
    },
}

/// The consensus of one view after review: the merged objects, what became of each, the
/// objects the reviewer added, and the final objects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedView {
    /// the annotators counted (their latest lines), in the order of their lines
    pub annotators: Vec<String>,
    /// the merged objects with their decision
    pub merged: Vec<(MergedObject, Decision)>,
    /// objects the reviewer added (overlapping no merged object)
    pub added: Vec<AnnotatedObject>,
    /// the reviewer whose latest line decided, if any
    pub reviewer: Option<String>,
    /// an annotator saved a line after that review
    pub stale: bool,
}

impl ResolvedView {
    /// The final objects: undisputed or open objects the quorum accepted, disputed ones as the
    /// reviewer kept them, and the reviewer's additions.
    pub fn objects(&self) -> Vec<AnnotatedObject> {
        let mut out = Vec::new();
        for (m, decision) in &self.merged {
            match decision {
                Decision::Undisputed | Decision::Open if m.accepted => out.push(AnnotatedObject {
                    label: m.label.clone(),
                    bbox: m.bbox,
                    score: m.score,
                }),
                Decision::Kept { object, .. } => out.push(object.clone()),
                _ => {}
            }
        }
        out.extend(self.added.iter().cloned());
        out
    }

    /// Disputed objects no current review has decided.
    pub fn open(&self) -> usize {
        self.merged
            .iter()
            .filter(|(_, d)| *d == Decision::Open)
            .count()
    }

    /// Disputed objects, decided or not.
    pub fn disputed(&self) -> usize {
        self.merged.iter().filter(|(m, _)| m.disputed()).count()
    }
}

/// The latest line of each annotator among `lines` (in save order).
fn latest_annotators<'a>(lines: &[&'a AnnotationRecord]) -> Vec<&'a AnnotationRecord> {
    let mut latest: Vec<&AnnotationRecord> = Vec::new();
    for line in lines.iter().filter(|l| l.role == AnnotationRole::Annotator) {
        latest.retain(|l| l.annotator != line.annotator);
        latest.push(line);
    }
    latest
}

fn merge(latest: &[&AnnotationRecord], options: &ConsensusOptions) -> Vec<MergedObject> {
    let input: Vec<AnnotatorObjects> = latest
        .iter()
        .map(|l| AnnotatorObjects {
            annotator: l.annotator.clone(),
            objects: l.objects.clone(),
        })
        .collect();
    if input.is_empty() {
        Vec::new()
    } else {
        consensus(&input, options)
    }
}

/// A review applied to the merged objects it saw: each one's decision, and the reviewer's
/// boxes that overlap none of them (additions).
fn decide(
    merged: &[MergedObject],
    review: &AnnotationRecord,
    options: &ConsensusOptions,
) -> (Vec<Decision>, Vec<AnnotatedObject>) {
    // pairs (IoU, merged, reviewer object), greatest overlap first, matched one to one
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (m, object_m) in merged.iter().enumerate() {
        for (o, object) in review.objects.iter().enumerate() {
            let iou = object_m.bbox.iou(&object.bbox);
            if iou >= options.iou_threshold {
                pairs.push((iou, m, o));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut matched: Vec<Option<usize>> = vec![None; merged.len()];
    let mut used = vec![false; review.objects.len()];
    for (_, m, o) in pairs {
        if matched[m].is_none() && !used[o] {
            matched[m] = Some(o);
            used[o] = true;
        }
    }
    let decisions = merged
        .iter()
        .zip(&matched)
        .map(|(m, o)| match (m.disputed(), o) {
            (false, _) => Decision::Undisputed,
            (true, Some(o)) => Decision::Kept {
                reviewer: review.annotator.clone(),
                object: review.objects[*o].clone(),
            },
            (true, None) => Decision::Rejected {
                reviewer: review.annotator.clone(),
            },
        })
        .collect();
    let added = review
        .objects
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(o, _)| o.clone())
        .collect();
    (decisions, added)
}

/// The consensus of one view after review, from its annotation lines **in the order they were
/// saved** (machine lines are ignored; an annotator's or reviewer's later line replaces their
/// earlier one). See step 5 of the module doc.
///
/// The latest reviewer line decides the objects it saw: the consensus of the annotator lines
/// saved before it. When annotators saved since (the review is stale), each disputed object of
/// today's consensus takes the decision of the object the review saw at its place (greatest
/// IoU at the threshold); one the review did not see is open, unless the reviewer added an
/// object there (then it is that object, counted once).
pub fn resolve_view(lines: &[&AnnotationRecord], options: &ConsensusOptions) -> ResolvedView {
    let latest = latest_annotators(lines);
    let merged = merge(&latest, options);
    let annotators: Vec<String> = latest.iter().map(|l| l.annotator.clone()).collect();
    let review = lines
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| l.role == AnnotationRole::Reviewer);
    let Some((at, review)) = review else {
        let merged = merged
            .into_iter()
            .map(|m| {
                let d = if m.disputed() {
                    Decision::Open
                } else {
                    Decision::Undisputed
                };
                (m, d)
            })
            .collect();
        return ResolvedView {
            annotators,
            merged,
            added: Vec::new(),
            reviewer: None,
            stale: false,
        };
    };
    let stale = lines[at + 1..]
        .iter()
        .any(|l| l.role == AnnotationRole::Annotator);
    if !stale {
        let (decisions, added) = decide(&merged, review, options);
        return ResolvedView {
            annotators,
            merged: merged.into_iter().zip(decisions).collect(),
            added,
            reviewer: Some(review.annotator.clone()),
            stale,
        };
    }
    let seen = merge(&latest_annotators(&lines[..at]), options);
    let (seen_decisions, mut added) = decide(&seen, review, options);
    let mut decisions = Vec::with_capacity(merged.len());
    for m in &merged {
        if !m.disputed() {
            decisions.push(Decision::Undisputed);
            continue;
        }
        let place = seen
            .iter()
            .enumerate()
            .map(|(i, s)| (s.bbox.iou(&m.bbox), i))
            .filter(|(iou, _)| *iou >= options.iou_threshold)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let decision = match place {
            Some((_, i)) => match &seen_decisions[i] {
                d @ (Decision::Kept { .. } | Decision::Rejected { .. }) => d.clone(),
                _ => Decision::Open,
            },
            None => match added
                .iter()
                .position(|a| a.bbox.iou(&m.bbox) >= options.iou_threshold)
            {
                Some(k) => Decision::Kept {
                    reviewer: review.annotator.clone(),
                    object: added.remove(k),
                },
                None => Decision::Open,
            },
        };
        decisions.push(decision);
    }
    ResolvedView {
        annotators,
        merged: merged.into_iter().zip(decisions).collect(),
        added,
        reviewer: Some(review.annotator.clone()),
        stale,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn obj(label: &str, b: [f64; 4]) -> AnnotatedObject {
        AnnotatedObject {
            label: label.into(),
            bbox: BoxPx::new(b[0], b[1], b[2], b[3]).unwrap(),
            score: 1.0,
        }
    }

    pub(crate) fn who(name: &str, objects: Vec<AnnotatedObject>) -> AnnotatorObjects {
        AnnotatorObjects {
            annotator: name.into(),
            objects,
        }
    }

    #[test]
    fn two_annotators_agree() {
        // IoU of [0,0,10,10] and [1,0,11,10] = 90 / 110 = 0.818.
        let merged = consensus(
            &[
                who("a", vec![obj("knife", [0.0, 0.0, 10.0, 10.0])]),
                who("b", vec![obj("knife", [1.0, 0.0, 11.0, 10.0])]),
            ],
            &ConsensusOptions::default(),
        );
        assert_eq!(merged.len(), 1);
        let m = &merged[0];
        assert_eq!(m.bbox, BoxPx::new(0.5, 0.0, 10.5, 10.0).unwrap());
        assert_eq!(m.label, "knife");
        assert!(m.accepted && !m.disputed());
        assert_eq!(m.score, 1.0);
    }

    #[test]
    fn three_annotators_one_absent_and_a_disputed_label() {
        let opts = ConsensusOptions::default(); // quorum 2 of 3
        let merged = consensus(
            &[
                who(
                    "a",
                    vec![
                        obj("knife", [0.0, 0.0, 10.0, 10.0]),
                        obj("gun", [50.0, 50.0, 70.0, 60.0]),
                    ],
                ),
                who("b", vec![obj("blade", [0.0, 0.0, 10.0, 12.0])]),
                who(
                    "c",
                    vec![
                        obj("knife", [0.0, 1.0, 10.0, 11.0]),
                        obj("gun", [51.0, 50.0, 71.0, 60.0]),
                    ],
                ),
            ],
            &opts,
        );
        assert_eq!(merged.len(), 2);
        let knife = &merged[0];
        // a's and b's first boxes, then c's: fused = mean of the three boxes.
        assert_eq!(knife.members.len(), 3);
        let want = BoxPx::new(0.0, 1.0 / 3.0, 10.0, 11.0).unwrap();
        assert!((knife.bbox.y0 - want.y0).abs() < 1e-12 && (knife.bbox.y1 - want.y1).abs() < 1e-12);
        assert_eq!(knife.label, "knife");
        assert_eq!(
            knife.votes,
            vec![("knife".to_string(), 2), ("blade".to_string(), 1)]
        );
        assert!(knife.accepted);
        assert_eq!(
            knife.disputes,
            vec!["labels differ: knife ×2, blade ×1".to_string()]
        );
        let gun = &merged[1];
        assert_eq!(gun.absent, vec!["b".to_string()]);
        // absent annotator counted: score 2 / 3
        assert!((gun.score - 2.0 / 3.0).abs() < 1e-12);
        assert!(gun.accepted);
        assert_eq!(gun.disputes, vec!["not drawn by: b".to_string()]);
    }

    #[test]
    fn one_box_per_annotator_per_cluster_and_quorum() {
        // a draws two overlapping boxes on one object: they must not fuse together.
        let merged = consensus(
            &[
                who(
                    "a",
                    vec![
                        obj("knife", [0.0, 0.0, 10.0, 10.0]),
                        obj("knife", [0.0, 0.0, 10.0, 9.0]),
                    ],
                ),
                who("b", vec![]),
            ],
            &ConsensusOptions::default(),
        );
        assert_eq!(merged.len(), 2);
        assert!(merged
            .iter()
            .all(|m| m.members.len() == 1 && !m.accepted && m.absent == vec!["b".to_string()]));
        // a tie of labels is never accepted
        let merged = consensus(
            &[
                who("a", vec![obj("knife", [0.0, 0.0, 10.0, 10.0])]),
                who("b", vec![obj("blade", [0.0, 0.0, 10.0, 10.0])]),
            ],
            &ConsensusOptions {
                iou_threshold: 0.5,
                quorum: Some(1),
            },
        );
        assert_eq!(merged.len(), 1);
        assert!(!merged[0].accepted && merged[0].disputed());
        assert_eq!(merged[0].label, "blade");
    }

    fn line(who: &str, role: AnnotationRole, objects: Vec<AnnotatedObject>) -> AnnotationRecord {
        AnnotationRecord {
            scan_id: "s".into(),
            annotator: who.into(),
            role,
            view: 0,
            objects,
            seconds: None,
            guideline: None,
            review: None,
        }
    }

    #[test]
    fn a_review_keeps_rejects_and_adds_and_never_touches_undisputed_objects() {
        use AnnotationRole::{Annotator, Reviewer};
        let a = line(
            "a",
            Annotator,
            vec![
                obj("knife", [0.0, 0.0, 10.0, 10.0]),
                obj("gun", [50.0, 50.0, 70.0, 70.0]),
                obj("bottle", [100.0, 100.0, 120.0, 120.0]),
            ],
        );
        let b = line(
            "b",
            Annotator,
            vec![
                obj("blade", [0.0, 0.0, 10.0, 10.0]),
                obj("gun", [50.0, 50.0, 70.0, 70.0]),
            ],
        );
        let options = ConsensusOptions::default();
        // Before review: knife/blade disputed (labels), gun undisputed, bottle disputed
        // (b absent); two annotators, quorum 2: neither disputed object is accepted.
        let before = resolve_view(&[&a, &b], &options);
        assert_eq!(before.merged.len(), 3);
        assert_eq!((before.disputed(), before.open()), (2, 2));
        assert_eq!(before.objects().len(), 1, "only the gun");
        assert_eq!(before.reviewer, None);
        // The reviewer keeps the knife/blade object as "knife" (box nudged), draws nothing on
        // the bottle (rejected), re-draws the gun (undisputed: unchanged, not added) and adds
        // a cigarette carton the annotators missed.
        let r = line(
            "rev",
            Reviewer,
            vec![
                obj("knife", [0.0, 0.0, 10.0, 11.0]),
                obj("gun", [50.0, 50.0, 71.0, 70.0]),
                obj("cigarettes", [200.0, 200.0, 240.0, 230.0]),
            ],
        );
        let after = resolve_view(&[&a, &b, &r], &options);
        assert!(!after.stale);
        assert_eq!(after.reviewer.as_deref(), Some("rev"));
        let decision = |label: &str| {
            after
                .merged
                .iter()
                .find(|(m, _)| m.members.iter().any(|x| x.label == label))
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(
            decision("blade"),
            Decision::Kept {
                reviewer: "rev".into(),
                object: obj("knife", [0.0, 0.0, 10.0, 11.0])
            }
        );
        assert_eq!(
            decision("bottle"),
            Decision::Rejected {
                reviewer: "rev".into()
            }
        );
        assert_eq!(decision("gun"), Decision::Undisputed);
        assert_eq!(after.open(), 0);
        assert_eq!(
            after.added,
            vec![obj("cigarettes", [200.0, 200.0, 240.0, 230.0])]
        );
        let labels: Vec<String> = after.objects().into_iter().map(|o| o.label).collect();
        assert_eq!(labels, ["knife", "gun", "cigarettes"]);
        // The undisputed gun keeps the annotators' fused box, not the reviewer's.
        let gun = after.objects()[1].bbox;
        assert_eq!(<[f64; 4]>::from(gun), [50.0, 50.0, 70.0, 70.0]);
    }

    #[test]
    fn a_review_made_before_a_new_annotation_keeps_what_it_kept_and_rejects_nothing_new() {
        use AnnotationRole::{Annotator, Reviewer};
        let a = line("a", Annotator, vec![obj("knife", [0.0, 0.0, 10.0, 10.0])]);
        let b = line("b", Annotator, vec![obj("blade", [0.0, 0.0, 10.0, 10.0])]);
        let r = line("rev", Reviewer, vec![obj("knife", [0.0, 0.0, 10.0, 10.0])]);
        // c comes later and draws a bottle nobody else drew: disputed (a and b absent).
        let c = line(
            "c",
            Annotator,
            vec![
                obj("knife", [0.0, 0.0, 10.0, 10.0]),
                obj("bottle", [30.0, 30.0, 40.0, 40.0]),
            ],
        );
        let resolved = resolve_view(&[&a, &b, &r, &c], &ConsensusOptions::default());
        assert!(resolved.stale);
        assert_eq!(resolved.annotators, ["a", "b", "c"]);
        let bottle = resolved
            .merged
            .iter()
            .find(|(m, _)| m.label == "bottle")
            .unwrap();
        assert_eq!(bottle.1, Decision::Open, "not taken as rejected");
        let knife = resolved
            .merged
            .iter()
            .find(|(m, _)| m.members.len() == 3)
            .unwrap();
        assert!(matches!(knife.1, Decision::Kept { .. }));
        assert_eq!(resolved.open(), 1);
        // An annotator's later line replaces their earlier one; machine lines are ignored.
        let a2 = line("a", Annotator, vec![]);
        let m = line(
            "model",
            AnnotationRole::Machine,
            vec![obj("gun", [0.0, 0.0, 5.0, 5.0])],
        );
        let resolved = resolve_view(&[&a, &m, &a2], &ConsensusOptions::default());
        assert_eq!(resolved.annotators, ["a"]);
        assert!(resolved.merged.is_empty());
    }

    #[test]
    fn a_stale_review_keeps_its_rejections_and_counts_an_added_object_once() {
        use AnnotationRole::{Annotator, Reviewer};
        let a = line(
            "a",
            Annotator,
            vec![
                obj("knife", [0.0, 0.0, 10.0, 10.0]),
                obj("bottle", [30.0, 30.0, 40.0, 40.0]),
            ],
        );
        let b = line("b", Annotator, vec![obj("knife", [0.0, 0.0, 10.0, 10.0])]);
        // the reviewer rejects the bottle (b absent) and adds a gun nobody drew
        let r = line("rev", Reviewer, vec![obj("gun", [60.0, 60.0, 80.0, 80.0])]);
        let options = ConsensusOptions::default();
        let fresh = resolve_view(&[&a, &b, &r], &options);
        assert!(!fresh.stale);
        let labels = |v: &ResolvedView| -> Vec<String> {
            v.objects().into_iter().map(|o| o.label).collect()
        };
        assert_eq!(labels(&fresh), ["knife", "gun"]);
        // b saves again, unchanged, and c draws the bottle and the gun: the bottle (now two
        // votes of three, accepted by the quorum) stays rejected, the gun is counted once
        let b2 = line("b", Annotator, vec![obj("knife", [0.0, 0.0, 10.0, 10.0])]);
        let c = line(
            "c",
            Annotator,
            vec![
                obj("knife", [0.0, 0.0, 10.0, 10.0]),
                obj("bottle", [30.0, 30.0, 40.0, 40.0]),
                obj("gun", [60.0, 60.0, 79.0, 80.0]),
            ],
        );
        let stale = resolve_view(&[&a, &b, &r, &b2, &c], &options);
        assert!(stale.stale);
        let bottle = stale
            .merged
            .iter()
            .find(|(m, _)| m.label == "bottle")
            .unwrap();
        assert!(bottle.0.accepted, "two votes of three");
        assert_eq!(
            bottle.1,
            Decision::Rejected {
                reviewer: "rev".into()
            }
        );
        let gun = stale.merged.iter().find(|(m, _)| m.label == "gun").unwrap();
        assert_eq!(
            gun.1,
            Decision::Kept {
                reviewer: "rev".into(),
                object: obj("gun", [60.0, 60.0, 80.0, 80.0])
            }
        );
        assert!(stale.added.is_empty());
        assert_eq!(stale.open(), 0);
        assert_eq!(labels(&stale), ["knife", "gun"]);
    }
}
