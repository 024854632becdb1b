//! Assignment of scans to annotators: each scan to `k` of a team, the load kept even, so that
//! every scan gets the independent annotations the consensus needs and nobody gets them all.
//!
//! A library keeps its assignments in `assignments.jsonl`, one line per assigned scan (the
//! latest line of a scan holds: a re-assignment is a new line, the old one stays as history).
//! [`plan`] chooses, for each scan to assign, the `k` annotators with the fewest scans assigned
//! so far, counting what the library already assigned; among those equally loaded, the ones
//! who shared the fewest scans with those already chosen, so that pairs mix and every pair's
//! agreement gets measured; then a hash of the scan and the name, so that no name is favoured.
//! [`assign`] writes the plan in one durable append (a crash leaves whole lines only, and the
//! same command then finishes the job). [`progress`] says, per annotator, what was assigned
//! and what they saved.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::library::LibraryError;
use crate::library::{append_line, fail, json_error, read_lines, AnnotationRole, Library};

/// The file of a library's assignments.
pub const ASSIGNMENTS_FILE: &str = "assignments.jsonl";

/// One scan's annotators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// the scan
    pub scan_id: String,
    /// who annotates it, in name order
    pub annotators: Vec<String>,
    /// who assigned it
    pub by: String,
    /// when (UTC)
    pub at: String,
}

/// One annotator's share of the work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnnotatorProgress {
    /// the annotator
    pub annotator: String,
    /// scans assigned to them
    pub assigned: usize,
    /// of which they saved an annotation of every view
    pub done: usize,
}

/// The assignments in force: the latest line of each scan, by scan id.
pub fn current(library: &Library) -> Result<BTreeMap<String, Assignment>, LibraryError> {
    let path = library.root().join(ASSIGNMENTS_FILE);
    let (lines, _torn) = read_lines(&path)?;
    let mut out = BTreeMap::new();
    for (line, text) in lines {
        let a: Assignment = serde_json::from_str(&text).map_err(|e| json_error(&path, line, &e))?;
        out.insert(a.scan_id.clone(), a);
    }
    Ok(out)
}

/// Checks an annotator's name as the server checks its user names (who annotate at the desk):
/// 1 to 64 letters, digits, `-`, `_`, `.`, `@`.
fn check_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0
        || chars > 64
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        return Err(format!(
            "'{name}': 1 to 64 letters, digits, '-', '_', '.' or '@'"
        ));
    }
    Ok(())
}

/// The assignments that give each of `scans` (every scan of the library when `None`) `k` of
/// `annotators`: only scans without one unless `reassign`. Each scan goes to the `k` annotators
/// with the fewest scans assigned so far (the library's assignments in force counted, those
/// replaced not), then those who shared the fewest scans with the ones chosen, then a hash of
/// scan and name (see the module documentation). Refused (`(field, reason)`): `k` of 0 or
/// above the team, a name given twice or badly, a scan the library lacks.
pub fn plan(
    library: &Library,
    annotators: &[String],
    k: usize,
    scans: Option<&[String]>,
    reassign: bool,
    by: &str,
) -> Result<Vec<Assignment>, (String, String)> {
    let mut team = BTreeSet::new();
    for name in annotators {
        check_name(name).map_err(|e| ("annotators".to_string(), e))?;
        if !team.insert(name.clone()) {
            return Err(("annotators".into(), format!("'{name}' is named twice")));
        }
    }
    if k == 0 || k > team.len() {
        return Err((
            "k".into(),
            format!(
                "{k}: each scan goes to 1 to {} annotators (the team named)",
                team.len()
            ),
        ));
    }
    let existing = current(library).map_err(|e| ("assignments".to_string(), e.to_string()))?;
    let targets: Vec<String> = match scans {
        Some(ids) => {
            for id in ids {
                if library.get(id).is_none() {
                    return Err(("scans".into(), format!("scan '{id}' is not in the library")));
                }
            }
            ids.to_vec()
        }
        None => library
            .records()
            .iter()
            .map(|r| r.metadata.scan_id.clone())
            .collect(),
    };
    let targets: BTreeSet<String> = targets
        .into_iter()
        .filter(|id| reassign || !existing.contains_key(id))
        .collect();
    let mut load: BTreeMap<String, usize> = team.iter().map(|n| (n.clone(), 0)).collect();
    let mut shared: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (id, a) in &existing {
        // replaced by this plan, or naming a scan the library lacks: not counted
        if targets.contains(id) || library.get(id).is_none() {
            continue;
        }
        count(&a.annotators, &team, &mut load, &mut shared);
    }
    let at = crate::package::now_utc();
    let mut out = Vec::with_capacity(targets.len());
    for id in targets {
        let mut chosen: Vec<String> = Vec::with_capacity(k);
        while chosen.len() < k {
            let best = team
                .iter()
                .filter(|n| !chosen.contains(n))
                .min_by_key(|n| {
                    let together: usize = chosen
                        .iter()
                        .map(|c| shared.get(&pair(c, n)).copied().unwrap_or(0))
                        .sum();
                    (load[*n], together, mix(&id, n), (*n).clone())
                })
                .cloned();
            match best {
                Some(name) => chosen.push(name),
                None => break,
            }
        }
        chosen.sort();
        count(&chosen, &team, &mut load, &mut shared);
        out.push(Assignment {
            scan_id: id,
            annotators: chosen,
            by: by.to_string(),
            at: at.clone(),
        });
    }
    Ok(out)
}

/// Counts an assignment: one scan more for each of `names` in the team, one shared scan more for
/// each pair of them.
fn count(
    names: &[String],
    team: &BTreeSet<String>,
    load: &mut BTreeMap<String, usize>,
    shared: &mut BTreeMap<(String, String), usize>,
) {
    let names: Vec<&String> = names.iter().filter(|n| team.contains(*n)).collect();
    for (i, a) in names.iter().enumerate() {
        *load.entry((*a).clone()).or_default() += 1;
        for b in &names[i + 1..] {
            *shared.entry(pair(a, b)).or_default() += 1;
        }
    }
}

/// The key of a pair of annotators, in name order.
fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

/// A hash of a scan and a name (FNV-1a): the last tie-break, so that no name is favoured.
fn mix(scan: &str, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in scan.bytes().chain([0]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Plans (see [`plan`]) and writes the assignments; nothing is written when the plan is
/// refused. Returns what was assigned.
pub fn assign(
    library: &Library,
    annotators: &[String],
    k: usize,
    scans: Option<&[String]>,
    reassign: bool,
    by: &str,
) -> Result<Vec<Assignment>, LibraryError> {
    let planned =
        plan(library, annotators, k, scans, reassign, by).map_err(|(field, reason)| {
            fail(
                &library.root().join(ASSIGNMENTS_FILE),
                None,
                Some(&field),
                reason,
            )
        })?;
    write(library, planned)
}

/// Writes planned assignments (from [`plan`]) and returns them.
pub fn write(library: &Library, planned: Vec<Assignment>) -> Result<Vec<Assignment>, LibraryError> {
    let path = library.root().join(ASSIGNMENTS_FILE);
    if planned.is_empty() {
        return Ok(planned);
    }
    let mut lines = Vec::with_capacity(planned.len());
    for a in &planned {
        lines.push(serde_json::to_string(a).map_err(|e| fail(&path, None, None, e.to_string()))?);
    }
    // One append, one flush: whole lines, the last of which a crash may tear (set aside by
    // the next write, skipped by `current`).
    append_line(&path, &lines.join("\n"))?;
    Ok(planned)
}

/// Per annotator named in an assignment in force: scans assigned, and of those the scans where
/// they saved an annotation line on every view. Name order.
pub fn progress(library: &Library) -> Result<Vec<AnnotatorProgress>, LibraryError> {
    let assignments = current(library)?;
    let mut saved: BTreeSet<(&str, &str, usize)> = BTreeSet::new();
    for line in library.annotations() {
        if line.role == AnnotationRole::Annotator {
            saved.insert((line.annotator.as_str(), line.scan_id.as_str(), line.view));
        }
    }
    let mut out: BTreeMap<&str, AnnotatorProgress> = BTreeMap::new();
    for (id, a) in &assignments {
        // an assignment naming a scan the library lacks is neither to do nor done
        let Some(record) = library.get(id) else {
            continue;
        };
        let views = record.views.len();
        for name in &a.annotators {
            let entry = out
                .entry(name.as_str())
                .or_insert_with(|| AnnotatorProgress {
                    annotator: name.clone(),
                    assigned: 0,
                    done: 0,
                });
            entry.assigned += 1;
            if (0..views).all(|v| saved.contains(&(name.as_str(), id.as_str(), v))) {
                entry.done += 1;
            }
        }
    }
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::generate_into;
    use crate::consensus::AnnotatedObject;
    use crate::generate::GeneratorParams;
    use crate::library::AnnotationRecord;

    fn library(dir: &std::path::Path, count: u64) -> Library {
        let params = GeneratorParams {
            width: 64,
            height: 64,
            ..GeneratorParams::default()
        };
        let mut library = Library::create(&dir.join("lib")).unwrap();
        generate_into(&mut library, &params, 1, count, &|_| {}, &|| false).unwrap();
        library
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_scan_goes_to_k_annotators_with_the_load_even() {
        let dir = tempfile::tempdir().unwrap();
        let lib = library(dir.path(), 9);
        let team = names(&["ana", "ben", "cho", "dev"]);
        let done = assign(&lib, &team, 2, None, false, "lead").unwrap();
        assert_eq!(done.len(), 9);
        let mut load: BTreeMap<String, usize> = BTreeMap::new();
        for a in &done {
            assert_eq!(a.annotators.len(), 2);
            assert_ne!(a.annotators[0], a.annotators[1]);
            for n in &a.annotators {
                *load.entry(n.clone()).or_default() += 1;
            }
        }
        // 18 slots over 4 people: 4 or 5 each
        assert!(load.values().all(|&n| n == 4 || n == 5), "{load:?}");
        assert_eq!(load.values().sum::<usize>(), 18);
        // Every one of the 6 pairs shares scans, so every pair's agreement is measured.
        let pairs: BTreeSet<&Vec<String>> = done.iter().map(|a| &a.annotators).collect();
        assert_eq!(pairs.len(), 6, "{pairs:?}");
        // Assigned scans are kept; a newcomer takes the next ones once reassigned.
        assert!(assign(&lib, &team, 2, None, false, "lead")
            .unwrap()
            .is_empty());
        let one = lib.records()[0].metadata.scan_id.clone();
        let again = assign(
            &lib,
            &names(&["ana", "ben", "cho", "dev", "eve"]),
            2,
            Some(std::slice::from_ref(&one)),
            true,
            "lead",
        )
        .unwrap();
        assert!(
            again[0].annotators.contains(&"eve".to_string()),
            "{again:?}"
        );
        assert_eq!(
            current(&lib).unwrap()[&one],
            again[0],
            "the latest line holds"
        );
        // Progress: what each saved on every view of their scans.
        let mut lib = lib;
        let first = &done[1];
        lib.add_annotation(AnnotationRecord {
            scan_id: first.scan_id.clone(),
            annotator: first.annotators[0].clone(),
            role: AnnotationRole::Annotator,
            view: 0,
            objects: vec![AnnotatedObject {
                label: "knife".into(),
                bbox: crate::geometry::BoxPx::new(1.0, 1.0, 9.0, 9.0).unwrap(),
                score: 1.0,
            }],
            seconds: Some(12.0),
            guideline: None,
            review: None,
        })
        .unwrap();
        let p = progress(&lib).unwrap();
        let who = p
            .iter()
            .find(|p| p.annotator == first.annotators[0])
            .unwrap();
        assert_eq!(who.done, 1, "{p:?}");
        assert_eq!(p.iter().map(|p| p.done).sum::<usize>(), 1);
        assert_eq!(p.iter().map(|p| p.assigned).sum::<usize>(), 18);
    }

    #[test]
    fn a_bad_plan_is_refused_by_its_field_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let lib = library(dir.path(), 2);
        for (team, k, scans, field) in [
            (names(&["ana", "ben"]), 3, None, "k"),
            (names(&["ana", "ben"]), 0, None, "k"),
            (names(&["ana", "ana"]), 1, None, "annotators"),
            (names(&["ana", "b n"]), 1, None, "annotators"),
            (names(&["ana"]), 1, Some(names(&["nope"])), "scans"),
        ] {
            let e = assign(&lib, &team, k, scans.as_deref(), false, "lead").unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
        }
        assert!(current(&lib).unwrap().is_empty());
        assert!(progress(&lib).unwrap().is_empty());
    }
}
