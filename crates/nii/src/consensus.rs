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
//!
//! Written here rather than taken from a crate: no Rust crate implements weighted boxes fusion
//! with absent annotators and quorum; the algorithm is short and fully tested by hand.

use serde::{Deserialize, Serialize};

use crate::geometry::BoxPx;

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
}
