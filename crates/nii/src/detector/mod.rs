//! The threat detector (issue 16): a small convolutional network on candle (CPU) that finds
//! threat objects in a view (box, class, score), gives the view an alarm score, and explains
//! every detection with a Grad-CAM heat map.
//!
//! - [`input`]: what the network sees (attenuation per energy and a material channel);
//! - [`net`]: the network, weights drawn from a seed;
//! - [`train`]: targets, loss and the training loop (deterministic for a seed);
//! - [`eval`]: mAP@0.5 per class, detection rate at a false-alarm rate per image, pointing game.
//!
//! A model is a folder: `detector.safetensors` (the weights) and `detector.json`
//! ([`DetectorMeta`]: shape, classes, the training set's digest and mix, metrics).

pub mod eval;
pub mod input;
pub mod net;
pub mod train;

use std::path::{Path, PathBuf};

use candle_core::{Device, IndexOp, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::geometry::BoxPx;
pub use input::{read_view, view_input, ViewInput, CHANNELS};
pub use net::{Net, NetShape};

/// The weights file of a model folder.
pub const WEIGHTS_FILE: &str = "detector.safetensors";
/// The description file of a model folder.
pub const META_FILE: &str = "detector.json";
/// The `format` of [`DetectorMeta`].
pub const FORMAT: &str = "borderlens-nii-detector";

/// Detections below this score are not reported.
pub const DEFAULT_MIN_SCORE: f64 = 0.05;
/// At most this many detections per view.
pub const MAX_DETECTIONS: usize = 50;

/// While held, keeps the buffers of a training step in the heap. A training step allocates
/// and frees a few dozen activation buffers of 1 to 20 MB; glibc serves blocks above its mmap
/// threshold (128 KiB at first, raised as such blocks are freed) from fresh mappings, gives them
/// back when freed, and trims the heap's free top past 128 KiB, so each step fetched its
/// buffers again as zeroed pages: a third of the step (`docs/nii-detector.md`, "Training
/// speed"). While a training runs, blocks up to 32 MiB come from the heap and its free top is
/// kept up to 512 MiB. When the last training of the process ends, both thresholds go back to
/// 128 KiB and the free memory is given back (`malloc_trim`), so a server that retrained keeps
/// no more than before. Elsewhere (another C library or system) nothing changes.
pub struct StepBuffers(());

/// Trainings running in this process (the settings are the process's).
static TRAININGS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl StepBuffers {
    /// Keeps step buffers in the heap until the value is dropped.
    pub fn keep() -> StepBuffers {
        let mut n = TRAININGS.lock().unwrap_or_else(|e| e.into_inner());
        if *n == 0 {
            set_allocator_thresholds(32 << 20, 512 << 20, false);
        }
        *n += 1;
        StepBuffers(())
    }
}

impl Drop for StepBuffers {
    fn drop(&mut self) {
        let mut n = TRAININGS.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            set_allocator_thresholds(128 << 10, 128 << 10, true);
        }
    }
}

#[allow(unused_variables)]
fn set_allocator_thresholds(mmap: i32, trim: i32, give_back: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt and malloc_trim take the allocator's own locks and only change its
    // parameters or release free memory; both values are within glibc's limits on 64-bit (a
    // refused value leaves the setting as it was).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap);
        libc::mallopt(libc::M_TRIM_THRESHOLD, trim);
        if give_back {
            libc::malloc_trim(0);
        }
    }
}

/// A detector failure: the file (if any) and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}{reason}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
pub struct DetectorError {
    /// the file at fault
    pub file: Option<PathBuf>,
    /// what is wrong
    pub reason: String,
}

impl DetectorError {
    pub(crate) fn new(reason: impl Into<String>) -> DetectorError {
        DetectorError {
            file: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn at(file: &Path, reason: impl Into<String>) -> DetectorError {
        DetectorError {
            file: Some(file.to_path_buf()),
            reason: reason.into(),
        }
    }
}

impl From<candle_core::Error> for DetectorError {
    fn from(e: candle_core::Error) -> Self {
        DetectorError::new(format!("tensor computation failed: {e}"))
    }
}

/// What a model folder says about its model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorMeta {
    /// always [`FORMAT`]
    pub format: String,
    /// format version (1)
    pub version: u32,
    /// the model's id: `det-` and the first 12 hex digits of the weights' SHA-256
    pub model_id: String,
    /// the network's shape
    pub shape: NetShape,
    /// class names, in heat-map order
    pub classes: Vec<String>,
    /// how it was trained
    pub training: train::TrainingRecord,
    /// the evaluation on a held-out library, when one was run
    #[serde(default)]
    pub evaluations: Vec<eval::Evaluation>,
    /// when the model was written (UTC, RFC 3339)
    pub created: String,
}

/// One detected object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// class name
    pub class: String,
    /// probability-like score in `(0, 1)`
    pub score: f64,
    /// box in the view's pixels
    pub bbox: BoxPx,
    /// heat-map channel of the class
    #[serde(skip)]
    pub class_index: usize,
    /// grid cell of the centre `(row, column)`
    #[serde(skip)]
    pub cell: (usize, usize),
}

impl Detection {
    /// The detection as an object of a MACHINE annotation line (its score kept).
    pub fn as_object(&self) -> crate::consensus::AnnotatedObject {
        crate::consensus::AnnotatedObject {
            label: self.class.clone(),
            bbox: self.bbox,
            score: self.score,
        }
    }
}

/// The detections of one view.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ViewDetections {
    /// the view's alarm score: the highest detection score (0 when none)
    pub alarm: f64,
    /// detections, highest score first
    pub detections: Vec<Detection>,
}

/// A trained detector.
pub struct Detector {
    /// the network
    pub net: Net,
    /// its description
    pub meta: DetectorMeta,
}

fn sigmoid(x: f32) -> f64 {
    1.0 / (1.0 + (-f64::from(x)).exp())
}

/// The network's raw outputs for one view, channel-major: `heat` `K × G × G` logits, `size` and
/// `offset` `2 × G × G`.
pub struct RawOutputs {
    /// centre heat-map logits per class
    pub heat: Vec<f32>,
    /// log width and height, in cells
    pub size: Vec<f32>,
    /// centre offset in its cell
    pub offset: Vec<f32>,
}

/// Decodes one view's outputs into detections (see `docs/nii-detector.md`, "Decoding").
pub fn decode(
    raw: &RawOutputs,
    grid: usize,
    classes: &[String],
    width: u32,
    height: u32,
    min_score: f64,
) -> ViewDetections {
    let (heat, size, offset) = (&raw.heat, &raw.size, &raw.offset);
    let cells = grid * grid;
    let (sx, sy) = (
        f64::from(width) / grid as f64,
        f64::from(height) / grid as f64,
    );
    let mut found = Vec::new();
    for (k, class) in classes.iter().enumerate() {
        let map = &heat[k * cells..(k + 1) * cells];
        for r in 0..grid {
            for c in 0..grid {
                let v = map[r * grid + c];
                let score = sigmoid(v);
                if score < min_score {
                    continue;
                }
                // A peak: no higher value among the 8 neighbours (ties keep the first).
                let mut peak = true;
                'n: for dr in -1i64..=1 {
                    for dc in -1i64..=1 {
                        let (rr, cc) = (r as i64 + dr, c as i64 + dc);
                        if (dr, dc) == (0, 0)
                            || rr < 0
                            || cc < 0
                            || rr >= grid as i64
                            || cc >= grid as i64
                        {
                            continue;
                        }
                        let o = map[rr as usize * grid + cc as usize];
                        if o > v || (o == v && (rr, cc) < (r as i64, c as i64)) {
                            peak = false;
                            break 'n;
                        }
                    }
                }
                if !peak {
                    continue;
                }
                let i = r * grid + c;
                let cx = (c as f64 + f64::from(offset[i]).clamp(0.0, 1.0)) * sx;
                let cy = (r as f64 + f64::from(offset[cells + i]).clamp(0.0, 1.0)) * sy;
                let bw = f64::from(size[i]).clamp(-3.0, 6.0).exp() * sx;
                let bh = f64::from(size[cells + i]).clamp(-3.0, 6.0).exp() * sy;
                // Inside the view and at least one pixel (or the whole view, if smaller).
                let edges = |c: f64, half: f64, side: f64| {
                    let lo = (c - half).clamp(0.0, side);
                    let hi = (c + half).clamp(0.0, side).max(lo + 1.0).min(side);
                    ((hi - 1.0).min(lo).max(0.0), hi)
                };
                let (x0, x1) = edges(cx, bw / 2.0, f64::from(width));
                let (y0, y1) = edges(cy, bh / 2.0, f64::from(height));
                let Ok(bbox) = BoxPx::new(x0, y0, x1, y1) else {
                    continue;
                };
                found.push(Detection {
                    class: class.clone(),
                    score,
                    bbox,
                    class_index: k,
                    cell: (r, c),
                });
            }
        }
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    found.truncate(MAX_DETECTIONS);
    ViewDetections {
        alarm: found.first().map_or(0.0, |d| d.score),
        detections: found,
    }
}

impl Detector {
    /// Loads a model folder, checking its description and every weight's shape.
    pub fn load(dir: &Path) -> Result<Detector, DetectorError> {
        let meta_path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&meta_path)
            .map_err(|e| DetectorError::at(&meta_path, e.to_string()))?;
        let meta: DetectorMeta = serde_json::from_str(&text)
            .map_err(|e| DetectorError::at(&meta_path, format!("line {}: {e}", e.line())))?;
        if meta.format != FORMAT || meta.version != 1 {
            return Err(DetectorError::at(
                &meta_path,
                format!(
                    "format '{}' version {} is not {FORMAT} version 1",
                    meta.format, meta.version
                ),
            ));
        }
        let shape = &meta.shape;
        let problem = if meta.classes.is_empty() {
            Some(("classes", "is empty".to_string()))
        } else if shape.classes != meta.classes.len() {
            Some((
                "shape.classes",
                format!(
                    "is {} but {} classes are named",
                    shape.classes,
                    meta.classes.len()
                ),
            ))
        } else if !matches!(shape.deepest_stride, 8 | 16) {
            Some((
                "shape.deepest_stride",
                format!("{} is not 8 or 16", shape.deepest_stride),
            ))
        } else if shape.side % shape.deepest_stride != 0 || !(32..=1024).contains(&shape.side) {
            Some((
                "shape.side",
                format!(
                    "{} is not a multiple of {} from 32 to 1024",
                    shape.side, shape.deepest_stride
                ),
            ))
        } else if !(min_width(shape.norm)..=256).contains(&shape.width) {
            Some((
                "shape.width",
                format!(
                    "{} is not from {} to 256",
                    shape.width,
                    min_width(shape.norm)
                ),
            ))
        } else if shape.in_channels != CHANNELS {
            Some((
                "shape.in_channels",
                format!("{} is not {CHANNELS}", shape.in_channels),
            ))
        } else {
            None
        };
        if let Some((field, reason)) = problem {
            return Err(DetectorError::at(
                &meta_path,
                format!("field {field}: {reason}"),
            ));
        }
        let weights_path = dir.join(WEIGHTS_FILE);
        let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .map_err(|e| DetectorError::at(&weights_path, e.to_string()))?;
        let net = Net::from_tensors(meta.shape.clone(), tensors)
            .map_err(|e| DetectorError::at(&weights_path, e))?;
        Ok(Detector { net, meta })
    }

    /// Writes the model folder (created if needed): weights first, then the description, each
    /// durably ([`crate::library::write_durable`]). Sets `meta.model_id` from the weights.
    pub fn save(&mut self, dir: &Path) -> Result<(), DetectorError> {
        std::fs::create_dir_all(dir).map_err(|e| DetectorError::at(dir, e.to_string()))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes = safetensors::serialize(self.net.tensors(), None)
            .map_err(|e| DetectorError::at(&weights_path, e.to_string()))?;
        self.meta.model_id = format!("det-{}", &crate::library::sha256_hex(&bytes)[..12]);
        crate::library::write_durable(&weights_path, &bytes)
            .map_err(|e| DetectorError::at(&weights_path, e.reason))?;
        let meta_path = dir.join(META_FILE);
        let text = serde_json::to_string_pretty(&self.meta)
            .map_err(|e| DetectorError::at(&meta_path, e.to_string()))?;
        crate::library::write_durable(&meta_path, (text + "\n").as_bytes())
            .map_err(|e| DetectorError::at(&meta_path, e.reason))
    }

    /// The raw outputs of a batch of views.
    fn forward(&self, inputs: &[&ViewInput]) -> Result<Vec<RawOutputs>, DetectorError> {
        let side = self.meta.shape.side;
        let mut data = Vec::with_capacity(inputs.len() * CHANNELS * side * side);
        for i in inputs {
            if i.side != side {
                return Err(DetectorError::new(format!(
                    "input side {} does not match the model's {side}",
                    i.side
                )));
            }
            data.extend_from_slice(&i.data);
        }
        let x = Tensor::from_vec(data, (inputs.len(), CHANNELS, side, side), &Device::Cpu)?
            .permute((0, 2, 3, 1))?;
        let (heat, size, offset) = self.net.head(&self.net.trunk(&x)?)?;
        let channel_major = |t: Tensor| t.permute((0, 3, 1, 2))?.contiguous();
        let (heat, size, offset) = (
            channel_major(heat)?,
            channel_major(size)?,
            channel_major(offset)?,
        );
        let mut out = Vec::with_capacity(inputs.len());
        for b in 0..inputs.len() {
            out.push(RawOutputs {
                heat: heat.i(b)?.flatten_all()?.to_vec1::<f32>()?,
                size: size.i(b)?.flatten_all()?.to_vec1::<f32>()?,
                offset: offset.i(b)?.flatten_all()?.to_vec1::<f32>()?,
            });
        }
        Ok(out)
    }

    /// Detections of a batch of views (scores at least `min_score`).
    pub fn detect(
        &self,
        inputs: &[&ViewInput],
        min_score: f64,
    ) -> Result<Vec<ViewDetections>, DetectorError> {
        let grid = self.meta.shape.grid();
        Ok(self
            .forward(inputs)?
            .into_iter()
            .zip(inputs)
            .map(|(raw, i)| decode(&raw, grid, &self.meta.classes, i.width, i.height, min_score))
            .collect())
    }

    /// Grad-CAM of each detection of a view: the gradient of the detection's class logit at its
    /// centre cell with respect to the trunk's features, averaged per channel, weights the
    /// features; the positive part, scaled to a maximum of 1, is the `G × G` heat map.
    pub fn grad_cam(
        &self,
        input: &ViewInput,
        detections: &[Detection],
    ) -> Result<Vec<Vec<f32>>, DetectorError> {
        let side = self.meta.shape.side;
        let x = Tensor::from_vec(input.data.clone(), (1, CHANNELS, side, side), &Device::Cpu)?
            .permute((0, 2, 3, 1))?;
        let features = self.net.trunk(&x)?.detach();
        let a = Var::from_tensor(&features)?;
        let (heat, _, _) = self.net.head(a.as_tensor())?;
        let (_, g, _, c) = features.dims4()?;
        let feats = features
            .permute((0, 3, 1, 2))?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut maps = Vec::with_capacity(detections.len());
        for d in detections {
            let score = heat.i((0, d.cell.0, d.cell.1, d.class_index))?;
            let grads = score.backward()?;
            let grad = grads
                .get(a.as_tensor())
                .ok_or_else(|| DetectorError::new("no gradient reached the features"))?;
            let alpha = grad.mean((1, 2))?.flatten_all()?.to_vec1::<f32>()?;
            let mut cam = vec![0f32; g * g];
            for (ch, w) in alpha.iter().enumerate().take(c) {
                let plane = &feats[ch * g * g..(ch + 1) * g * g];
                for (o, v) in cam.iter_mut().zip(plane) {
                    *o += w * v;
                }
            }
            let max = cam.iter().cloned().fold(0f32, f32::max);
            for v in &mut cam {
                *v = if max > 0.0 { v.max(0.0) / max } else { 0.0 };
            }
            maps.push(cam);
        }
        Ok(maps)
    }
}

/// The smallest first-layer width: with layer normalisation over the channels, one channel
/// normalises to a constant and two keep only a sign.
pub fn min_width(norm: bool) -> usize {
    if norm {
        4
    } else {
        1
    }
}

/// A `G × G` map sampled bilinearly at the point `(x, y)` of a `width × height` view, in
/// continuous pixel coordinates (pixel `i` spans `[i, i + 1)`; cell centres at `(j + 0.5)` cells).
pub fn sample_map(map: &[f32], grid: usize, width: u32, height: u32, x: f64, y: f64) -> f32 {
    let gx = (x / f64::from(width) * grid as f64 - 0.5).clamp(0.0, (grid - 1) as f64);
    let gy = (y / f64::from(height) * grid as f64 - 0.5).clamp(0.0, (grid - 1) as f64);
    let (x0, y0) = (gx.floor() as usize, gy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(grid - 1), (y0 + 1).min(grid - 1));
    let (fx, fy) = ((gx - x0 as f64) as f32, (gy - y0 as f64) as f32);
    let at = |r: usize, c: usize| map[r * grid + c];
    let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
    let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Where a heat map is highest, in view pixels (sampled on a grid four times finer than the
/// map's; ties keep the first).
pub fn map_peak(map: &[f32], grid: usize, width: u32, height: u32) -> (f64, f64) {
    let n = grid * 4;
    let mut best = (f32::MIN, 0.0, 0.0);
    for j in 0..n {
        for i in 0..n {
            let x = (i as f64 + 0.5) * f64::from(width) / n as f64;
            let y = (j as f64 + 0.5) * f64::from(height) / n as f64;
            let v = sample_map(map, grid, width, height, x, y);
            if v > best.0 {
                best = (v, x, y);
            }
        }
    }
    (best.1, best.2)
}

/// The view in grey with the heat map blended in (transparent at 0, red to yellow towards 1)
/// and the detection's box outlined, as an 8-bit RGB PNG.
pub fn overlay_png(
    input: &ViewInput,
    map: &[f32],
    grid: usize,
    bbox: Option<&BoxPx>,
) -> Result<Vec<u8>, DetectorError> {
    let (w, h) = (input.width as usize, input.height as usize);
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let g = f32::from(input.gray[y * w + x]);
            let v = sample_map(
                map,
                grid,
                input.width,
                input.height,
                x as f64 + 0.5,
                y as f64 + 0.5,
            )
            .clamp(0.0, 1.0);
            let alpha = 0.6 * v;
            let (r, gg, b) = (255.0, 255.0 * v, 0.0);
            let p = (y * w + x) * 3;
            rgb[p] = (g * (1.0 - alpha) + r * alpha) as u8;
            rgb[p + 1] = (g * (1.0 - alpha) + gg * alpha) as u8;
            rgb[p + 2] = (g * (1.0 - alpha) + b * alpha) as u8;
        }
    }
    if let Some(b) = bbox {
        let (x0, y0) = (b.x0.max(0.0) as usize, b.y0.max(0.0) as usize);
        let x1 = (b.x1.ceil() as usize).min(w).saturating_sub(1);
        let y1 = (b.y1.ceil() as usize).min(h).saturating_sub(1);
        let mut put = |x: usize, y: usize| {
            let p = (y * w + x) * 3;
            rgb[p..p + 3].copy_from_slice(&[0, 200, 255]);
        };
        for x in x0..=x1.max(x0) {
            put(x.min(w - 1), y0.min(h - 1));
            put(x.min(w - 1), y1);
        }
        for y in y0..=y1.max(y0) {
            put(x0.min(w - 1), y.min(h - 1));
            put(x1, y.min(h - 1));
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, input.width, input.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc
            .write_header()
            .map_err(|e| DetectorError::new(format!("PNG: {e}")))?;
        writer
            .write_image_data(&rgb)
            .map_err(|e| DetectorError::new(format!("PNG: {e}")))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One peak per class and object: the highest cell of a blob is reported with its box from
    /// size and offset; its lower neighbours and cells under `min_score` are not.
    #[test]
    fn decode_reports_peaks_with_their_boxes() {
        let grid = 4;
        let classes = vec!["knife".to_string(), "gun".to_string()];
        let mut heat = vec![-10.0f32; 2 * grid * grid];
        // gun: peak at row 1, column 2 (logit 2 → 0.88), a neighbour at 1 (0.73)
        heat[grid * grid + grid + 2] = 2.0;
        heat[grid * grid + grid + 3] = 1.0;
        // knife: a lone cell under the threshold
        heat[0] = -3.5;
        let mut size = vec![0.0f32; 2 * grid * grid];
        let mut offset = vec![0.0f32; 2 * grid * grid];
        let cell = grid + 2;
        size[cell] = 2f32.ln(); // 2 cells wide
        size[grid * grid + cell] = 1f32.ln(); // 1 cell high
        offset[cell] = 0.5;
        offset[grid * grid + cell] = 0.25;
        let raw = RawOutputs { heat, size, offset };
        let found = decode(&raw, grid, &classes, 400, 400, 0.05);
        assert_eq!(found.detections.len(), 1, "{:?}", found.detections);
        let d = &found.detections[0];
        assert_eq!(
            (d.class.as_str(), d.cell, d.class_index),
            ("gun", (1, 2), 1)
        );
        assert!((d.score - 1.0 / (1.0 + (-2f64).exp())).abs() < 1e-9);
        assert!((found.alarm - d.score).abs() < 1e-12);
        // centre (2.5, 1.25) cells of 100 px → (250, 125); 200 × 100 px
        let b = d.bbox;
        assert!(
            (b.x0 - 150.0).abs() < 1e-3 && (b.x1 - 350.0).abs() < 1e-3,
            "{b:?}"
        );
        assert!(
            (b.y0 - 75.0).abs() < 1e-3 && (b.y1 - 175.0).abs() < 1e-3,
            "{b:?}"
        );
        // A view narrower than the grid: boxes stay inside it, at least one pixel.
        let tiny = decode(&raw, grid, &classes, 1, 3, 0.05);
        let b = tiny.detections[0].bbox;
        assert!(b.x0 >= 0.0 && b.x1 <= 1.0 && b.x1 - b.x0 >= 1.0, "{b:?}");
        assert!(b.y0 >= 0.0 && b.y1 <= 3.0 && b.y1 > b.y0, "{b:?}");
        let none = decode(&raw, grid, &classes, 400, 400, 0.95);
        assert!(none.detections.is_empty());
        assert_eq!(none.alarm, 0.0);
    }

    #[test]
    fn the_peak_of_a_map_is_where_it_is_highest() {
        let grid = 8;
        let mut map = vec![0.0f32; grid * grid];
        map[5 * grid + 2] = 1.0; // row 5, column 2 → pixels x 2.5/8·W, y 5.5/8·H
        let (x, y) = map_peak(&map, grid, 800, 400);
        assert!(
            (x - 250.0).abs() < 30.0 && (y - 275.0).abs() < 30.0,
            "{x} {y}"
        );
    }
}
