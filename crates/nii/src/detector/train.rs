//! Training: labelled views of a library, CenterNet targets, the focal loss, AdamW.
//!
//! Deterministic for a seed: weights are drawn from the seed ([`super::net::Net::new`]), the
//! order of samples and their flips come from the same seed, and candle's CPU kernels sum in a
//! fixed order.

use std::collections::BTreeMap;

use borderlens_domain::rng::Rng;
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::input::{read_view, ViewInput, CHANNELS};
use super::net::{Net, NetShape};
use super::{Detector, DetectorError, DetectorMeta, FORMAT};
use crate::coco::{objects_of, CocoSource};
use crate::consensus::AnnotatedObject;
use crate::generate::THREAT_CLASSES;
use crate::library::Library;
use crate::package::annotations_by_view;
use crate::scan::ScanRecord;

/// Settings of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainOptions {
    /// passes over the training views
    pub epochs: usize,
    /// views per step
    pub batch: usize,
    /// AdamW's peak learning rate (linear warm-up, cosine decay)
    pub learning_rate: f64,
    /// seed of the weights, the order of views and their flips
    pub seed: u64,
    /// input side, pixels (a multiple of the deepest stride)
    pub side: usize,
    /// channels of the first layer
    pub width: usize,
    /// random horizontal and vertical flips
    pub flips: bool,
    /// random transposition of the (square) input, which with the flips gives all eight
    /// rotations by quarter turns and mirrors of a view
    #[serde(default)]
    pub transpose: bool,
    /// layer normalisation after every convolution but the heads
    #[serde(default)]
    pub norm: bool,
    /// the trunk's deepest stride, 8 or 16 (see [`NetShape::deepest_stride`])
    #[serde(default = "super::net::first_depth")]
    pub deepest_stride: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 25,
            batch: 16,
            learning_rate: 4e-3,
            seed: 1,
            side: 128,
            width: 16,
            flips: true,
            transpose: true,
            norm: true,
            deepest_stride: 16,
        }
    }
}

impl TrainOptions {
    /// Checks the settings; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 || self.epochs > 10_000 {
            return Err("epochs must be 1 to 10000".into());
        }
        if self.batch == 0 || self.batch > 1024 {
            return Err("batch must be 1 to 1024".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0 && self.learning_rate < 1.0)
        {
            return Err("learning_rate must be in (0, 1)".into());
        }
        if !matches!(self.deepest_stride, 8 | 16) {
            return Err("deepest_stride must be 8 or 16".into());
        }
        if self.side % self.deepest_stride != 0 || !(32..=1024).contains(&self.side) {
            return Err(format!(
                "side must be a multiple of {} from 32 to 1024",
                self.deepest_stride
            ));
        }
        let least = super::min_width(self.norm);
        if !(least..=256).contains(&self.width) {
            return Err(format!("width must be {least} to 256"));
        }
        Ok(())
    }
}

/// How a model was trained: enough to know what it learnt from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingRecord {
    /// the settings
    pub options: TrainOptions,
    /// where the boxes came from: `truth`, `consensus` or an annotator's name
    pub label_source: String,
    /// SHA-256 of the training set: every view's scan id, view, image digests and boxes
    pub digest: String,
    /// scans used
    pub scans: usize,
    /// views used
    pub views: usize,
    /// views with no object (negatives)
    pub empty_views: usize,
    /// objects per class
    pub objects: Vec<(String, usize)>,
    /// views per share of the library (`synthetic`, `projected`, `real`, `staged`)
    pub mix: Vec<(String, usize)>,
    /// mean training loss of each epoch
    pub loss_by_epoch: Vec<f64>,
    /// seconds spent training (without reading the library)
    pub seconds: f64,
}

/// A view with its objects, ready to train on.
#[derive(Clone, Debug)]
pub struct Sample {
    /// the network's input (without the grey image)
    pub input: ViewInput,
    /// `(class index, [x0, y0, x1, y1] as fractions of the view's width and height)`
    pub objects: Vec<(usize, [f32; 4])>,
}

/// A view of a scan with its labels.
pub struct LabelledView<'a> {
    /// the scan
    pub record: &'a ScanRecord,
    /// the view
    pub view: usize,
    /// its objects under the label source
    pub objects: Vec<AnnotatedObject>,
}

/// The views of `library` that `source` labels, with their objects. A view counts as labelled
/// when the source looked at it: `truth` labels generated and projected scans (the generator
/// knows every threat it drew, so a generated view without truth is a true negative) and
/// nothing else; `consensus` and an annotator label the views they annotated.
pub fn labelled_views<'a>(library: &'a Library, source: &CocoSource) -> Vec<LabelledView<'a>> {
    let lines = annotations_by_view(library);
    let mut out = Vec::new();
    for record in library.records() {
        for view in 0..record.views.len() {
            let key = (record.metadata.scan_id.clone(), view);
            let knows_truth = record.provenance.knows_truth();
            let people = crate::coco::annotated_by_people(lines.get(&key));
            let labelled = match source {
                CocoSource::Truth => knows_truth,
                CocoSource::Consensus => people,
                CocoSource::Corrected => people || knows_truth,
                // A model's pre-annotations are never labels to learn from or to be judged by
                // (that would teach a model its own mistakes): only a person's lines count.
                CocoSource::Annotator(name) => lines.get(&key).is_some_and(|l| {
                    l.iter().any(|r| {
                        &r.annotator == name && r.role != crate::library::AnnotationRole::Machine
                    })
                }),
            };
            if labelled {
                out.push(LabelledView {
                    record,
                    view,
                    objects: objects_of(record, view, source, lines.get(&key)),
                });
            }
        }
    }
    out
}

/// The class list of a training set: the generator's classes first in their fixed order, then
/// any other label in alphabetical order.
pub fn classes_of(views: &[LabelledView]) -> Vec<String> {
    let mut labels: Vec<String> = views
        .iter()
        .flat_map(|v| v.objects.iter().map(|o| o.label.clone()))
        .collect();
    labels.sort();
    labels.dedup();
    let mut classes: Vec<String> = THREAT_CLASSES
        .iter()
        .map(|c| c.word().to_string())
        .filter(|w| labels.contains(w))
        .collect();
    for l in labels {
        if !classes.contains(&l) {
            classes.push(l);
        }
    }
    classes
}

/// Reads the views (in parallel, in order) and turns their boxes into fractions. Objects of a
/// class not in `classes` are left out. `stop()` is polled between chunks (`Ok(None)`).
pub fn load_samples(
    library: &Library,
    views: &[LabelledView],
    classes: &[String],
    side: usize,
    progress: &dyn Fn(u64),
    stop: &dyn Fn() -> bool,
) -> Result<Option<Vec<Sample>>, DetectorError> {
    let mut out = Vec::with_capacity(views.len());
    for chunk in views.chunks(64) {
        if stop() {
            return Ok(None);
        }
        let read: Vec<Result<Sample, DetectorError>> = chunk
            .par_iter()
            .map(|v| {
                let mut input = read_view(library, v.record, v.view, side)
                    .map_err(|e| DetectorError::new(e.to_string()))?;
                input.gray = Vec::new();
                let (w, h) = (input.width as f32, input.height as f32);
                let objects = v
                    .objects
                    .iter()
                    .filter_map(|o| {
                        let k = classes.iter().position(|c| c == &o.label)?;
                        let b = o.bbox;
                        Some((
                            k,
                            [
                                (b.x0 as f32 / w).clamp(0.0, 1.0),
                                (b.y0 as f32 / h).clamp(0.0, 1.0),
                                (b.x1 as f32 / w).clamp(0.0, 1.0),
                                (b.y1 as f32 / h).clamp(0.0, 1.0),
                            ],
                        ))
                    })
                    .collect();
                Ok(Sample { input, objects })
            })
            .collect();
        for r in read {
            out.push(r?);
        }
        progress(out.len() as u64);
    }
    Ok(Some(out))
}

/// SHA-256 of the training set (scan ids, views, image digests, boxes), in the views' order.
pub fn digest_of(views: &[LabelledView]) -> String {
    let mut h = Sha256::new();
    for v in views {
        let images: Vec<&str> = v.record.views[v.view]
            .channels
            .iter()
            .map(|c| c.image.sha256.as_str())
            .collect();
        let boxes: Vec<String> = v
            .objects
            .iter()
            .map(|o| {
                format!(
                    "{}:{:.3},{:.3},{:.3},{:.3}",
                    o.label, o.bbox.x0, o.bbox.y0, o.bbox.x1, o.bbox.y1
                )
            })
            .collect();
        h.update(format!(
            "{}\t{}\t{}\t{}\n",
            v.record.metadata.scan_id,
            v.view,
            images.join(","),
            boxes.join(";")
        ));
    }
    borderlens_domain::hex::encode(&h.finalize())
}

/// CenterNet targets of a batch.
struct Targets {
    heat: Vec<f32>,
    positive: Vec<f32>,
    negative_weight: Vec<f32>,
    size: Vec<f32>,
    offset: Vec<f32>,
    reg_mask: Vec<f32>,
    objects: usize,
}

/// How a view is shown to the network in one step: transposed first, then mirrored.
#[derive(Clone, Copy, Debug, Default)]
struct Shown {
    transpose: bool,
    flip_x: bool,
    flip_y: bool,
}

/// Appends the channel-major `CHANNELS × side × side` input as shown: transposed, then
/// mirrored (as [`targets`] moves the boxes).
fn push_shown(data: &mut Vec<f32>, input: &[f32], side: usize, shown: Shown) {
    for plane in input.chunks(side * side).take(CHANNELS) {
        for y in 0..side {
            let sy = if shown.flip_y { side - 1 - y } else { y };
            for x in 0..side {
                let sx = if shown.flip_x { side - 1 - x } else { x };
                let (r, c) = if shown.transpose { (sx, sy) } else { (sy, sx) };
                data.push(plane[r * side + c]);
            }
        }
    }
}

fn targets(batch: &[(&Sample, Shown)], classes: usize, grid: usize) -> Targets {
    let cells = grid * grid;
    let b = batch.len();
    let mut t = Targets {
        heat: vec![0.0; b * classes * cells],
        positive: vec![0.0; b * classes * cells],
        negative_weight: vec![0.0; b * classes * cells],
        size: vec![0.0; b * 2 * cells],
        offset: vec![0.0; b * 2 * cells],
        reg_mask: vec![0.0; b * 2 * cells],
        objects: 0,
    };
    let g = grid as f32;
    for (i, (sample, shown)) in batch.iter().enumerate() {
        for (k, [x0, y0, x1, y1]) in &sample.objects {
            let (mut x0, mut y0, mut x1, mut y1) = (*x0, *y0, *x1, *y1);
            if shown.transpose {
                (x0, y0, x1, y1) = (y0, x0, y1, x1);
            }
            if shown.flip_x {
                (x0, x1) = (1.0 - x1, 1.0 - x0);
            }
            if shown.flip_y {
                (y0, y1) = (1.0 - y1, 1.0 - y0);
            }
            let (cx, cy) = ((x0 + x1) / 2.0 * g, (y0 + y1) / 2.0 * g);
            let (w, h) = (((x1 - x0) * g).max(0.1), ((y1 - y0) * g).max(0.1));
            let (c, r) = (
                (cx.floor() as usize).min(grid - 1),
                (cy.floor() as usize).min(grid - 1),
            );
            let (sx, sy) = ((w / 6.0).max(0.5), (h / 6.0).max(0.5));
            // channels-last: ((image · G + row) · G + column) · classes + class
            let heat_at = |rr: usize, cc: usize| ((i * grid + rr) * grid + cc) * classes + k;
            let reach_x = (3.0 * sx).ceil() as i64;
            let reach_y = (3.0 * sy).ceil() as i64;
            for dr in -reach_y..=reach_y {
                for dc in -reach_x..=reach_x {
                    let (rr, cc) = (r as i64 + dr, c as i64 + dc);
                    if rr < 0 || cc < 0 || rr >= grid as i64 || cc >= grid as i64 {
                        continue;
                    }
                    let v = (-((dc * dc) as f32 / (2.0 * sx * sx)
                        + (dr * dr) as f32 / (2.0 * sy * sy)))
                        .exp();
                    let at = heat_at(rr as usize, cc as usize);
                    t.heat[at] = t.heat[at].max(v);
                }
            }
            let centre = heat_at(r, c);
            if t.positive[centre] == 0.0 {
                t.objects += 1;
            }
            t.positive[centre] = 1.0;
            t.heat[centre] = 1.0;
            let reg = ((i * grid + r) * grid + c) * 2;
            t.size[reg] = w.ln();
            t.size[reg + 1] = h.ln();
            t.offset[reg] = cx - c as f32;
            t.offset[reg + 1] = cy - r as f32;
            t.reg_mask[reg] = 1.0;
            t.reg_mask[reg + 1] = 1.0;
        }
    }
    for ((n, h), p) in t.negative_weight.iter_mut().zip(&t.heat).zip(&t.positive) {
        *n = if *p > 0.0 { 0.0 } else { (1.0 - h).powi(4) };
    }
    t
}

/// `ln(1 + e^z)`, stable for large `|z|`.
fn softplus(z: &Tensor) -> candle_core::Result<Tensor> {
    z.relu()? + z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?
}

/// The loss of a batch: the focal loss of the heat maps (CenterNet's, α = 2, β = 4) plus L1 of
/// the log sizes (weight 0.5) and offsets at the object centres, per object.
fn loss(net: &Net, batch: &[(&Sample, Shown)]) -> candle_core::Result<Tensor> {
    let shape = &net.shape;
    let (side, grid, k) = (shape.side, shape.grid(), shape.classes);
    let b = batch.len();
    let mut data = Vec::with_capacity(b * CHANNELS * side * side);
    for (s, shown) in batch {
        push_shown(&mut data, &s.input.data, side, *shown);
    }
    let dev = &Device::Cpu;
    let x = Tensor::from_vec(data, (b, CHANNELS, side, side), dev)?.permute((0, 2, 3, 1))?;
    let t = targets(batch, k, grid);
    let (heat, size, offset) = net.head(&net.trunk(&x)?)?;
    // targets are channels-last, as the outputs
    let hk = (b, grid, grid, k);
    let h2 = (b, grid, grid, 2);
    let positive = Tensor::from_vec(t.positive, hk, dev)?;
    let negative_weight = Tensor::from_vec(t.negative_weight, hk, dev)?;
    let p = heat.neg()?.exp()?.affine(1.0, 1.0)?.recip()?;
    let log_p = softplus(&heat.neg()?)?.neg()?;
    let log_not_p = softplus(&heat)?.neg()?;
    let one_minus_p = p.affine(-1.0, 1.0)?;
    let pos = (log_p * one_minus_p.sqr()? * positive)?.sum_all()?;
    let neg = (log_not_p * p.sqr()? * negative_weight)?.sum_all()?;
    let n = t.objects.max(1) as f64;
    let focal = ((pos + neg)? / -n)?;
    let mask = Tensor::from_vec(t.reg_mask, h2, dev)?;
    let size_t = Tensor::from_vec(t.size, h2, dev)?;
    let offset_t = Tensor::from_vec(t.offset, h2, dev)?;
    let size_l1 = ((size - size_t)?.abs()? * &mask)?.sum_all()?;
    let offset_l1 = ((offset - offset_t)?.abs()? * &mask)?.sum_all()?;
    focal + ((size_l1 * 0.5)? + offset_l1)? / n
}

/// What [`train`] reports after each step.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// steps done
    pub step: usize,
    /// steps in all
    pub steps: usize,
    /// epoch of the step (from 1)
    pub epoch: usize,
    /// the step's loss
    pub loss: f64,
}

/// Trains a network on `samples`. `Ok(None)` when `stop()` asked to stop (polled every step).
pub fn train(
    samples: &[Sample],
    classes: usize,
    options: &TrainOptions,
    progress: &dyn Fn(StepReport),
    stop: &dyn Fn() -> bool,
) -> Result<Option<(Net, Vec<f64>)>, DetectorError> {
    options.validate().map_err(DetectorError::new)?;
    if samples.is_empty() {
        return Err(DetectorError::new("no labelled view to train on"));
    }
    if classes == 0 {
        return Err(DetectorError::new(
            "the training set holds no object: nothing to learn",
        ));
    }
    if let Some(s) = samples.iter().find(|s| s.input.side != options.side) {
        return Err(DetectorError::new(format!(
            "a sample has side {} but the options say {}",
            s.input.side, options.side
        )));
    }
    let shape = NetShape {
        in_channels: CHANNELS,
        side: options.side,
        width: options.width,
        classes,
        norm: options.norm,
        deepest_stride: options.deepest_stride,
    };
    let _buffers = super::StepBuffers::keep();
    let net = Net::new(shape, options.seed)?;
    let params = ParamsAdamW {
        lr: options.learning_rate,
        weight_decay: 1e-4,
        ..Default::default()
    };
    let mut opt = AdamW::new(net.all_vars(), params)?;
    let mut rng = Rng::new(options.seed ^ 0x0DDE_5EED);
    let per_epoch = samples.len().div_ceil(options.batch);
    let steps = per_epoch * options.epochs;
    let warmup = (steps / 20).clamp(1, 200);
    let mut step = 0;
    let mut losses = Vec::with_capacity(options.epochs);
    for epoch in 1..=options.epochs {
        let mut order: Vec<usize> = (0..samples.len()).collect();
        rng.shuffle(&mut order);
        let mut sum = 0.0;
        for chunk in order.chunks(options.batch) {
            if stop() {
                return Ok(None);
            }
            let batch: Vec<(&Sample, Shown)> = chunk
                .iter()
                .map(|&i| {
                    let mut shown = Shown::default();
                    if options.flips {
                        shown.flip_x = rng.next_f64() < 0.5;
                        shown.flip_y = rng.next_f64() < 0.5;
                    }
                    if options.transpose {
                        shown.transpose = rng.next_f64() < 0.5;
                    }
                    (&samples[i], shown)
                })
                .collect();
            let lr = if step < warmup {
                options.learning_rate * (step + 1) as f64 / warmup as f64
            } else {
                let t = (step - warmup) as f64 / (steps - warmup).max(1) as f64;
                options.learning_rate
                    * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
            };
            opt.set_learning_rate(lr);
            let l = loss(&net, &batch)?;
            let value = f64::from(l.to_scalar::<f32>()?);
            if !value.is_finite() {
                return Err(DetectorError::new(format!(
                    "the loss diverged at step {step} (epoch {epoch}); try a lower learning rate"
                )));
            }
            opt.backward_step(&l)?;
            sum += value;
            step += 1;
            progress(StepReport {
                step,
                steps,
                epoch,
                loss: value,
            });
        }
        losses.push(sum / per_epoch as f64);
    }
    Ok(Some((net, losses)))
}

/// Reads the labelled views of `library` under `source`, trains, and returns the model with its
/// training record (not yet saved; no evaluation). `Ok(None)` when stopped.
pub fn train_on_library(
    library: &Library,
    source: &CocoSource,
    options: &TrainOptions,
    reading: &dyn Fn(u64, u64),
    progress: &dyn Fn(StepReport),
    stop: &dyn Fn() -> bool,
) -> Result<Option<Detector>, DetectorError> {
    options.validate().map_err(DetectorError::new)?;
    let views = labelled_views(library, source);
    if views.is_empty() {
        return Err(DetectorError::new(format!(
            "no view of the library is labelled by '{}'",
            source.word()
        )));
    }
    let classes = classes_of(&views);
    let total = views.len() as u64;
    let Some(samples) = load_samples(
        library,
        &views,
        &classes,
        options.side,
        &|done| reading(done, total),
        stop,
    )?
    else {
        return Ok(None);
    };
    let started = std::time::Instant::now();
    let Some((net, loss_by_epoch)) = train(&samples, classes.len(), options, progress, stop)?
    else {
        return Ok(None);
    };
    let mut objects: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &views {
        for o in &v.objects {
            *objects.entry(o.label.as_str()).or_default() += 1;
        }
    }
    let mut mix: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &views {
        *mix.entry(v.record.provenance.share()).or_default() += 1;
    }
    let mut scans: Vec<&str> = views
        .iter()
        .map(|v| v.record.metadata.scan_id.as_str())
        .collect();
    scans.dedup();
    let record = TrainingRecord {
        options: options.clone(),
        label_source: source.word().to_string(),
        digest: digest_of(&views),
        scans: scans.len(),
        views: views.len(),
        empty_views: views.iter().filter(|v| v.objects.is_empty()).count(),
        objects: classes
            .iter()
            .map(|c| (c.clone(), objects.get(c.as_str()).copied().unwrap_or(0)))
            .collect(),
        mix: mix.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        loss_by_epoch,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(Some(Detector {
        meta: DetectorMeta {
            format: FORMAT.to_string(),
            version: 1,
            model_id: String::new(),
            shape: net.shape.clone(),
            classes,
            training: record,
            evaluations: Vec::new(),
            created: crate::package::now_utc(),
        },
        net,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::generate_into;
    use crate::generate::{GeneratorParams, ThreatClass};

    fn small_library(dir: &std::path::Path, count: u64) -> Library {
        let params = GeneratorParams {
            width: 128,
            height: 128,
            cargo_mix: [1.0, 0.0, 0.0],
            clutter_density: [0.3, 0.6],
            threat_rate: 0.7,
            max_threats: 1,
            threat_mix: vec![(ThreatClass::Gun, 1.0), (ThreatClass::Bottle, 1.0)],
            mm_per_pixel: 3.0,
            ..GeneratorParams::default()
        };
        let mut library = Library::create(dir).unwrap();
        generate_into(&mut library, &params, 5, count, &|_| {}, &|| false).unwrap();
        library
    }

    fn weights(d: &Detector) -> Vec<f32> {
        d.net
            .vars
            .values()
            .flat_map(|v| {
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect()
    }

    /// Every way a view is shown (transposed or not, mirrored or not on each axis) moves its
    /// pixels and its box alike: the centre cell of the target is where the object's pixels are.
    #[test]
    fn shown_views_and_their_targets_move_together() {
        let (side, grid) = (32, 8);
        // an object over x 5..12, y 9..16 (of 32), off the cells' edges and off the diagonal's
        // mirror cells (so that the eight ways land in eight cells): bright in every channel
        let mut data = vec![0f32; CHANNELS * side * side];
        for ch in 0..CHANNELS {
            for y in 9..16 {
                for x in 5..12 {
                    data[ch * side * side + y * side + x] = 1.0;
                }
            }
        }
        let sample = Sample {
            input: ViewInput {
                data,
                side,
                width: 512,
                height: 512,
                gray: Vec::new(),
            },
            objects: vec![(0, [5.0 / 32.0, 9.0 / 32.0, 12.0 / 32.0, 16.0 / 32.0])],
        };
        let mut seen = std::collections::BTreeSet::new();
        for code in 0..8u8 {
            let shown = Shown {
                transpose: code & 1 != 0,
                flip_x: code & 2 != 0,
                flip_y: code & 4 != 0,
            };
            let mut image = Vec::new();
            push_shown(&mut image, &sample.input.data, side, shown);
            let (mut sx, mut sy, mut n) = (0f32, 0f32, 0f32);
            for y in 0..side {
                for x in 0..side {
                    if image[y * side + x] > 0.5 {
                        sx += x as f32 + 0.5;
                        sy += y as f32 + 0.5;
                        n += 1.0;
                    }
                }
            }
            let t = targets(&[(&sample, shown)], 1, grid);
            let centre = t.positive.iter().position(|p| *p > 0.0).unwrap();
            let (r, c) = (centre / grid, centre % grid);
            let cell = (side / grid) as f32;
            assert_eq!(
                ((sy / n / cell) as usize, (sx / n / cell) as usize),
                (r, c),
                "{shown:?}"
            );
            seen.insert((r, c));
        }
        assert_eq!(
            seen.len(),
            8,
            "the eight ways put the object in eight places"
        );
    }

    /// Training lowers the loss a lot on a small set, and the same seed gives the same model
    /// bit for bit (another seed does not).
    #[test]
    fn training_learns_and_is_deterministic_for_a_seed() {
        let dir = tempfile::tempdir().unwrap();
        let library = small_library(dir.path(), 40);
        // the first network, which learns this tiny set fastest (the deeper trunk and the
        // transposition are checked for determinism below)
        let options = TrainOptions {
            epochs: 12,
            batch: 8,
            side: 64,
            width: 8,
            seed: 3,
            deepest_stride: 8,
            transpose: false,
            ..TrainOptions::default()
        };
        let run = |o: &TrainOptions| {
            train_on_library(
                &library,
                &CocoSource::Truth,
                o,
                &|_, _| {},
                &|_| {},
                &|| false,
            )
            .unwrap()
            .unwrap()
        };
        let a = run(&options);
        let losses = &a.meta.training.loss_by_epoch;
        assert_eq!(losses.len(), 12);
        assert!(
            losses[11] < 0.5 * losses[0],
            "the loss did not fall enough: {losses:?}"
        );
        assert_eq!(
            a.meta.classes,
            vec!["gun".to_string(), "bottle".to_string()]
        );
        assert_eq!(a.meta.training.mix, vec![("synthetic".to_string(), 40)]);
        let b = run(&options);
        assert_eq!(weights(&a), weights(&b));
        assert_eq!(a.meta.training.digest, b.meta.training.digest);
        let c = run(&TrainOptions {
            seed: 4,
            ..options.clone()
        });
        assert_ne!(weights(&a), weights(&c));
        // the defaults' deeper trunk and transposition (drawn from the seed) too
        let deeper = TrainOptions {
            epochs: 2,
            deepest_stride: 16,
            transpose: true,
            ..options
        };
        let d = run(&deeper);
        assert_eq!(d.net.shape.deepest_stride, 16);
        assert_eq!(weights(&d), weights(&run(&deeper)));
        assert_ne!(
            weights(&d),
            weights(&run(&TrainOptions { seed: 4, ..deeper }))
        );
    }

    #[test]
    fn stop_returns_nothing_and_bad_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let library = small_library(dir.path(), 4);
        let options = TrainOptions {
            side: 64,
            width: 4,
            ..TrainOptions::default()
        };
        let stopped = train_on_library(
            &library,
            &CocoSource::Truth,
            &options,
            &|_, _| {},
            &|_| {},
            &|| true,
        )
        .unwrap();
        assert!(stopped.is_none());
        let bad = TrainOptions {
            side: 60,
            ..options.clone()
        };
        let e = train_on_library(
            &library,
            &CocoSource::Truth,
            &bad,
            &|_, _| {},
            &|_| {},
            &|| false,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("side"), "{e}");
        let e = train_on_library(
            &library,
            &CocoSource::Annotator("nobody".into()),
            &options,
            &|_, _| {},
            &|_| {},
            &|| false,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("labelled by 'nobody'"), "{e}");
    }

    #[test]
    fn targets_put_one_peak_per_object_with_its_size_and_offset() {
        let input = ViewInput {
            data: vec![0.0; CHANNELS * 32 * 32],
            side: 32,
            width: 32,
            height: 32,
            gray: Vec::new(),
        };
        // a box from 0.25 to 0.5 across, 0.5 to 0.75 down → on an 8-cell grid: centre (3, 5)
        let sample = Sample {
            input,
            objects: vec![(1, [0.25, 0.5, 0.5, 0.75])],
        };
        let t = targets(&[(&sample, Shown::default())], 2, 8);
        assert_eq!(t.objects, 1);
        let at = |r: usize, c: usize, k: usize| ((r * 8) + c) * 2 + k;
        assert_eq!(t.positive[at(5, 3, 1)], 1.0);
        assert_eq!(t.positive.iter().sum::<f32>(), 1.0);
        assert_eq!(t.heat[at(5, 3, 0)], 0.0, "another class is untouched");
        assert!(t.heat[at(5, 4, 1)] > 0.0 && t.heat[at(5, 4, 1)] < 1.0);
        let reg = ((5 * 8) + 3) * 2;
        assert!((t.size[reg] - 2f32.ln()).abs() < 1e-6);
        assert!((t.offset[reg] - 0.0).abs() < 1e-6 && (t.offset[reg + 1] - 0.0).abs() < 1e-6);
        // flipped across: the box is now 0.5 to 0.75 → centre column 5
        let t = targets(
            &[(
                &sample,
                Shown {
                    flip_x: true,
                    ..Shown::default()
                },
            )],
            2,
            8,
        );
        assert_eq!(t.positive[at(5, 5, 1)], 1.0);
    }
}
