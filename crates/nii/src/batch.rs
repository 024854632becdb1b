//! Batch jobs on a library: generate many scans (on every core), project threats into many.
//!
//! Both report progress through a callback and stop cleanly between scans when asked: every
//! scan stored before the stop is complete (see [`crate::library`]), and running the same
//! command again continues where it stopped (scans already in the library are skipped).

use borderlens_domain::rng::Rng;
use rayon::prelude::*;

use crate::generate::{generate_scan, GeneratorParams, ThreatClass, THREAT_CLASSES};
use crate::library::{prepare, prepare_record, Library, LibraryError};
use crate::scan::{Energy, TruthObject, TruthSource};
use crate::tip::{
    bag_mask, estimate_i0, place, project, threat_patch, ProjectionRecord, TipLimits,
};

/// What a batch did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BatchSummary {
    /// scans written
    pub written: usize,
    /// scans already there (skipped)
    pub skipped: usize,
    /// scans that could not be done, with why (projection: no room in the bag)
    pub failed: Vec<String>,
    /// whether the user stopped it
    pub interrupted: bool,
    /// seconds
    pub seconds: f64,
}

/// Why a batch stopped.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// bad parameters
    #[error("{0}")]
    Params(String),
    /// a library file
    #[error(transparent)]
    Library(#[from] LibraryError),
}

/// Scans drawn in parallel per step (then written in index order).
const CHUNK: usize = 64;

/// Generates scans `0..count` of the run (`params`, `seed`) into the library, in parallel;
/// `progress(done)` after each chunk, `stop()` polled between chunks.
pub fn generate_into(
    library: &mut Library,
    params: &GeneratorParams,
    seed: u64,
    count: u64,
    progress: &dyn Fn(u64),
    stop: &dyn Fn() -> bool,
) -> Result<BatchSummary, BatchError> {
    params.validate().map_err(BatchError::Params)?;
    let started = std::time::Instant::now();
    let mut summary = BatchSummary {
        written: 0,
        skipped: 0,
        failed: Vec::new(),
        interrupted: false,
        seconds: 0.0,
    };
    let todo: Vec<u64> = (0..count)
        .filter(|i| library.get(&format!("syn-{seed}-{i:06}")).is_none())
        .collect();
    summary.skipped = (count as usize) - todo.len();
    let mut done = summary.skipped as u64;
    progress(done);
    for chunk in todo.chunks(CHUNK) {
        if stop() {
            summary.interrupted = true;
            break;
        }
        let prepared: Vec<_> = chunk
            .par_iter()
            .map(|&i| prepare(generate_scan(params, seed, i)))
            .collect();
        let prepared = prepared
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BatchError::Params(e.to_string()))?;
        let n = prepared.len();
        // One flush per step for the whole chunk (group commit).
        library.commit_all(prepared)?;
        summary.written += n;
        done += chunk.len() as u64;
        progress(done);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Settings of [`project_into`].
#[derive(Clone, Debug)]
pub struct ProjectOptions {
    /// projected scans to make
    pub count: usize,
    /// seed of the choice of scans, threats, transforms, positions and noise
    pub seed: u64,
    /// classes to draw from (empty: all)
    pub classes: Vec<ThreatClass>,
    /// transform ranges
    pub limits: TipLimits,
    /// photons per pixel for scans without a generator record (`None`: estimated from the scan)
    pub i0: Option<[f64; 2]>,
}

/// Projects threats into `count` scans of the library drawn at random (dual-energy scans into
/// which nothing was projected yet); each result is a new scan `<base>-tip-<seed>-<k>` whose
/// provenance lists the projection and whose truth holds the written box.
pub fn project_into(
    library: &mut Library,
    options: &ProjectOptions,
    progress: &dyn Fn(u64),
    stop: &dyn Fn() -> bool,
) -> Result<BatchSummary, BatchError> {
    let started = std::time::Instant::now();
    let classes = if options.classes.is_empty() {
        THREAT_CLASSES.to_vec()
    } else {
        options.classes.clone()
    };
    let bases: Vec<String> = library
        .records()
        .iter()
        .filter(|r| r.provenance.projections.is_empty() && r.views[0].channels.len() == 2)
        .map(|r| r.metadata.scan_id.clone())
        .collect();
    if bases.is_empty() {
        return Err(BatchError::Params(
            "the library has no dual-energy scan to project into".into(),
        ));
    }
    let mut summary = BatchSummary {
        written: 0,
        skipped: 0,
        failed: Vec::new(),
        interrupted: false,
        seconds: 0.0,
    };
    let mut rng = Rng::new(options.seed);
    for k in 0..options.count {
        if stop() {
            summary.interrupted = true;
            break;
        }
        let base_id = bases[rng.below(bases.len())].clone();
        let class = classes[rng.below(classes.len())];
        let scan_seed = rng.next_u64();
        let new_id = format!("{base_id}-tip-{}-{k}", options.seed);
        if library.get(&new_id).is_some() {
            summary.skipped += 1;
            progress(k as u64 + 1);
            continue;
        }
        let Some(base) = library.get(&base_id).cloned() else {
            continue;
        };
        let [Some(low), Some(high)] = library.read_view(&base, 0)? else {
            continue;
        };
        let (i0, estimated) = match (&base.provenance.generator, options.i0) {
            (Some(g), _) => (g.params.i0, false),
            (None, Some(i0)) => (i0, false),
            (None, None) => match (estimate_i0(&low), estimate_i0(&high)) {
                (Some(a), Some(b)) => ([a, b], true),
                _ => {
                    summary.failed.push(format!(
                        "{base_id}: too few pixels to estimate the noise level; give --i0 LOW,HIGH"
                    ));
                    continue;
                }
            },
        };
        let blur = base
            .provenance
            .generator
            .as_ref()
            .map_or(0.8, |g| g.params.blur_sigma_px);
        let mut srng = Rng::new(scan_seed);
        let patch = threat_patch(class, base.metadata.mm_per_pixel, blur, &mut srng);
        let mask = bag_mask(&high);
        let (w, h) = (high.width as usize, high.height as usize);
        let params = match place(&patch, &mask, w, h, &options.limits, &mut srng) {
            Ok(p) => p,
            Err(e) => {
                summary
                    .failed
                    .push(format!("{base_id} ({}): {e}", class.word()));
                continue;
            }
        };
        let out = project(&low, &high, &patch, &params, i0, &mut srng)
            .map_err(|e| BatchError::Params(format!("{base_id}: {e}")))?;
        if base.truth.len() >= 255 {
            summary.failed.push(format!(
                "{base_id}: 255 objects already; the 8-bit mask is full"
            ));
            continue;
        }
        let mut record = base.clone();
        record.metadata.scan_id = new_id.clone();
        record.metadata.outcome = Some(format!(
            "threat projected (TIP): {} — not a real finding",
            class.word()
        ));
        let value = record.truth.len() as u8 + 1;
        record.truth.push(TruthObject {
            class: class.word().to_string(),
            bbox: out.bbox,
            material: patch.material.clone(),
            rotation_deg: params.rotation_deg,
            view: 0,
            mask_value: value,
            source: TruthSource::Projection,
        });
        record.provenance.projections.push(ProjectionRecord {
            base_scan_id: base_id.clone(),
            class: class.word().to_string(),
            seed: scan_seed,
            params,
            i0,
            i0_estimated: estimated,
            bbox: out.bbox,
        });
        let mut mask8 = match &base.mask {
            Some(m) => library.read_mask(m)?,
            None => crate::image::Mask8 {
                width: high.width,
                height: high.height,
                data: vec![0; w * h],
            },
        };
        for (m, hit) in mask8.data.iter_mut().zip(&out.footprint) {
            if *hit {
                *m = value;
            }
        }
        let views = vec![(
            base.views[0].name.clone(),
            vec![(Energy::Low, out.low), (Energy::High, out.high)],
        )];
        let prepared = prepare_record(record, &views, Some(&mask8))
            .map_err(|e| BatchError::Params(e.to_string()))?;
        library.commit(prepared)?;
        summary.written += 1;
        progress(k as u64 + 1);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_then_project_into_a_library() {
        let dir = tempfile::tempdir().unwrap();
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        let params = GeneratorParams {
            width: 192,
            height: 192,
            cargo_mix: [1.0, 1.0, 0.0],
            threat_scale: [0.3, 0.4],
            ..GeneratorParams::default()
        };
        let s = generate_into(&mut lib, &params, 9, 5, &|_| {}, &|| false).unwrap();
        assert_eq!((s.written, s.skipped), (5, 0));
        // Again: nothing new; stopped at once: nothing written.
        let s = generate_into(&mut lib, &params, 9, 6, &|_| {}, &|| false).unwrap();
        assert_eq!((s.written, s.skipped), (1, 5));
        let s = generate_into(&mut lib, &params, 10, 3, &|_| {}, &|| true).unwrap();
        assert!(s.interrupted && s.written == 0);

        let options = ProjectOptions {
            count: 3,
            seed: 4,
            classes: vec![ThreatClass::Blade],
            limits: TipLimits::default(),
            i0: None,
        };
        let s = project_into(&mut lib, &options, &|_| {}, &|| false).unwrap();
        assert_eq!(s.written + s.failed.len(), 3, "{:?}", s.failed);
        assert!(s.written >= 1);
        let again = Library::open(lib.root()).unwrap();
        let projected: Vec<_> = again
            .records()
            .iter()
            .filter(|r| !r.provenance.projections.is_empty())
            .collect();
        assert_eq!(projected.len(), s.written);
        for r in projected {
            assert_eq!(r.provenance.share(), "projected");
            assert!(!r.provenance.counts_as_real());
            let last = r.truth.last().unwrap();
            assert_eq!(last.class, "blade");
            assert_eq!(last.source, TruthSource::Projection);
            // the mask marks the projected pixels inside the written box
            let mask = again.read_mask(r.mask.as_ref().unwrap()).unwrap();
            let w = mask.width as usize;
            let mut any = false;
            for (i, v) in mask.data.iter().enumerate() {
                if *v == last.mask_value {
                    any = true;
                    assert!(last.bbox.covers_pixel(i % w, i / w));
                }
            }
            assert!(any);
        }
        assert!(again.verify().is_empty());
    }
}
