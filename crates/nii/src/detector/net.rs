//! The network: a small CenterNet-style convolutional detector on candle (CPU).
//!
//! Input `C × S × S` (attenuation per energy and a material channel, see [`super::input`]);
//! a trunk of 3 × 3 convolutions down to stride 8 (or 16), the deeper features upsampled back to
//! stride 4 and concatenated with the stride-4 ones, then 1 × 1 heads on the stride-4 grid: one
//! centre heat map per class (logits), the box size (log width and height in grid cells) and the centre's offset inside
//! its cell. Written by hand over candle's tensor ops rather than `candle_nn` layers because the
//! weights must be drawn from our own seeded generator (candle_nn initialises from a thread RNG,
//! which would break "deterministic for a seed"), and because Grad-CAM needs the forward pass
//! split at the layer it explains ([`Net::trunk`], [`Net::head`]).
//!
//! Tensors are channels-last (`B × H × W × C`) and a convolution is im2col ([`Im2Col`], a custom
//! op with col2im as its backward pass) times a `k·k·C_in × C_out` matrix (candle's gemm). This
//! is not candle's `conv2d`: on CPU its backward pass goes through `conv_transpose2d`, a direct
//! loop, and a training step cost about ten times the forward pass; building im2col out of
//! candle's slices and concatenation was no faster (each slice's backward pass allocates and
//! adds a whole zero-padded copy of the input).

use std::collections::BTreeMap;

use borderlens_domain::rng::Rng;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Shape, Tensor, Var};
use rayon::prelude::*;

/// Shape of the network (stored with the weights).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetShape {
    /// input channels
    pub in_channels: usize,
    /// input side, pixels (the scan is resampled to `side × side`)
    pub side: usize,
    /// channels of the first layer (the others are multiples of it)
    pub width: usize,
    /// classes (heat-map channels)
    pub classes: usize,
    /// layer normalisation over the channels after every convolution but the heads
    #[serde(default)]
    pub norm: bool,
    /// the trunk's deepest stride: 8 (the first models) or 16 (two more layers at stride 16,
    /// whose receptive field covers the largest threats: see `docs/nii-detector.md`)
    #[serde(default = "first_depth")]
    pub deepest_stride: usize,
}

/// The deepest stride of models saved before it was a setting (serde's default for them).
pub(crate) fn first_depth() -> usize {
    8
}

impl NetShape {
    /// Cells per side of the output grid (stride 4).
    pub fn grid(&self) -> usize {
        self.side / 4
    }

    /// Channels of the joined features `fuse` reads (the deeper features upsampled beside the
    /// stride-4 ones).
    pub fn feature_channels(&self) -> usize {
        if self.deepest_stride == 16 {
            10 * self.width
        } else {
            6 * self.width
        }
    }
}

/// The weights, by name (ordered, so that saving and the optimiser's order are fixed).
pub struct Net {
    /// the shape
    pub shape: NetShape,
    /// every weight, by name
    pub vars: BTreeMap<String, Var>,
}

/// (name, in, out, kernel, stride, dilation) of each convolution, in order.
fn layers(s: &NetShape) -> Vec<(&'static str, usize, usize, usize, usize, usize)> {
    let w = s.width;
    let mut out = vec![
        ("c1", s.in_channels, w, 3, 2, 1),
        ("c2", w, 2 * w, 3, 2, 1),
        ("c3", 2 * w, 2 * w, 3, 1, 1),
        ("c4", 2 * w, 4 * w, 3, 2, 1),
        ("c5", 4 * w, 4 * w, 3, 1, 2),
    ];
    if s.deepest_stride == 16 {
        out.push(("c6", 4 * w, 4 * w, 3, 2, 1));
        out.push(("c7", 4 * w, 4 * w, 3, 1, 2));
    }
    let features = s.feature_channels();
    out.extend([
        ("fuse", features, 3 * w, 1, 1, 1),
        ("heat", 3 * w, s.classes, 1, 1, 1),
        ("size", 3 * w, 2, 1, 1, 1),
        ("offset", 3 * w, 2, 1, 1, 1),
    ]);
    out
}

/// Nearest-neighbour upsampling of channels-last `x` by `f`.
fn upsample(x: &Tensor, f: usize) -> candle_core::Result<Tensor> {
    let (n, h, w, c) = x.dims4()?;
    x.reshape((n, h, 1, w, 1, c))?
        .broadcast_as((n, h, f, w, f, c))?
        .reshape((n, f * h, f * w, c))
}

/// The output layers (no normalisation, no ReLU).
fn is_head(name: &str) -> bool {
    matches!(name, "heat" | "size" | "offset")
}

/// The heat map's initial bias: a prior probability of 0.01 per cell (CenterNet), so that the
/// focal loss starts from "nothing anywhere" instead of being swamped by the background.
const HEAT_PRIOR_BIAS: f32 = -4.595;

impl Net {
    /// A network with He-uniform weights drawn from `seed`.
    pub fn new(shape: NetShape, seed: u64) -> candle_core::Result<Net> {
        let mut rng = Rng::new(seed ^ 0x5EED_DE7E_C708);
        let mut vars = BTreeMap::new();
        for (name, cin, cout, k, _, _) in layers(&shape) {
            let fan_in = (cin * k * k) as f64;
            let bound = (6.0 / fan_in).sqrt();
            let n = cout * cin * k * k;
            let w: Vec<f32> = (0..n)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                .collect();
            let bias = if name == "heat" { HEAT_PRIOR_BIAS } else { 0.0 };
            let b = vec![bias; cout];
            vars.insert(
                format!("{name}.weight"),
                Var::from_tensor(&Tensor::from_vec(w, (k * k * cin, cout), &Device::Cpu)?)?,
            );
            vars.insert(
                format!("{name}.bias"),
                Var::from_tensor(&Tensor::from_vec(b, cout, &Device::Cpu)?)?,
            );
            if shape.norm && !is_head(name) {
                vars.insert(
                    format!("{name}.norm_gain"),
                    Var::from_tensor(&Tensor::ones(cout, DType::F32, &Device::Cpu)?)?,
                );
                vars.insert(
                    format!("{name}.norm_bias"),
                    Var::from_tensor(&Tensor::zeros(cout, DType::F32, &Device::Cpu)?)?,
                );
            }
        }
        Ok(Net { shape, vars })
    }

    /// A network from stored tensors; every weight must be there with its shape.
    pub fn from_tensors(
        shape: NetShape,
        mut tensors: std::collections::HashMap<String, Tensor>,
    ) -> Result<Net, String> {
        let mut vars = BTreeMap::new();
        for (name, cin, cout, k, _, _) in layers(&shape) {
            let mut parts = vec![("weight", vec![k * k * cin, cout]), ("bias", vec![cout])];
            if shape.norm && !is_head(name) {
                parts.push(("norm_gain", vec![cout]));
                parts.push(("norm_bias", vec![cout]));
            }
            for (part, dims) in parts {
                let key = format!("{name}.{part}");
                let t = tensors
                    .remove(&key)
                    .ok_or_else(|| format!("weight '{key}' is missing"))?;
                if t.dims() != dims.as_slice() {
                    return Err(format!(
                        "weight '{key}' has shape {:?}, expected {dims:?}",
                        t.dims()
                    ));
                }
                let t = t.to_dtype(DType::F32).map_err(|e| e.to_string())?;
                vars.insert(key, Var::from_tensor(&t).map_err(|e| e.to_string())?);
            }
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(format!("unexpected weight '{extra}'"));
        }
        Ok(Net { shape, vars })
    }

    /// A convolution of channels-last `x` by layer `name` (zero padding keeps the size at
    /// stride 1 and halves it at stride 2), before its bias: a `(B·Ho·Wo, C_out)` matrix, and
    /// the output's dimensions.
    fn convolve(
        &self,
        x: &Tensor,
        name: &str,
    ) -> candle_core::Result<(Tensor, (usize, usize, usize, usize))> {
        let (_, cin, cout, k, stride, dilation) = layers(&self.shape)
            .into_iter()
            .find(|l| l.0 == name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no layer {name}")))?;
        let w = self.vars[&format!("{name}.weight")].as_tensor();
        let (n, h, wd, c) = x.dims4()?;
        if c != cin {
            candle_core::bail!("layer {name} expects {cin} channels, got {c}");
        }
        let (ho, wo) = (h.div_ceil(stride), wd.div_ceil(stride));
        // im2col gives the patches as a matrix directly: a reshape node would cost the
        // backward pass two more passes over the largest tensor of the layer
        let patches = if k == 1 {
            x.reshape((n * ho * wo, c))?
        } else {
            x.contiguous()?.apply_op1(Im2Col {
                k,
                stride,
                dilation,
                h,
                w: wd,
                c,
            })?
        };
        let y = patches.matmul(w)?;
        Ok((y, (n, ho, wo, cout)))
    }

    /// An output layer: the convolution and its bias.
    fn conv(&self, x: &Tensor, name: &str) -> candle_core::Result<Tensor> {
        let (y, dims) = self.convolve(x, name)?;
        y.broadcast_add(self.vars[&format!("{name}.bias")].as_tensor())?
            .reshape(dims)
    }

    /// A hidden layer: the convolution and its bias, then layer normalisation over the channels
    /// and ReLU as one fused op ([`NormRelu`]), or ReLU alone without normalisation.
    fn layer(&self, x: &Tensor, name: &str) -> candle_core::Result<Tensor> {
        if !self.shape.norm {
            return self.conv(x, name)?.relu();
        }
        let (y, dims) = self.convolve(x, name)?;
        let gain_shift = Tensor::cat(
            &[
                self.vars[&format!("{name}.norm_gain")].as_tensor(),
                self.vars[&format!("{name}.norm_bias")].as_tensor(),
            ],
            0,
        )?;
        y.apply_op3(
            self.vars[&format!("{name}.bias")].as_tensor(),
            &gain_shift,
            NormRelu { out: dims },
        )
    }

    /// The trunk: channels-last input `(B, S, S, C)` to the features Grad-CAM explains,
    /// `(B, S/4, S/4, 3w)`, the last convolutional layer before the heads (`fuse`, over the
    /// stride-8 features upsampled and concatenated with the stride-4 ones; with a deepest
    /// stride of 16, the stride-16 features upsampled in front).
    pub fn trunk(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let c1 = self.layer(x, "c1")?;
        let c2 = self.layer(&c1, "c2")?;
        let c3 = self.layer(&c2, "c3")?;
        let c4 = self.layer(&c3, "c4")?;
        let c5 = self.layer(&c4, "c5")?;
        let joined = if self.shape.deepest_stride == 16 {
            let c6 = self.layer(&c5, "c6")?;
            let c7 = self.layer(&c6, "c7")?;
            Tensor::cat(&[&upsample(&c7, 4)?, &upsample(&c5, 2)?, &c3], 3)?
        } else {
            Tensor::cat(&[&upsample(&c5, 2)?, &c3], 3)?
        };
        self.layer(&joined, "fuse")
    }

    /// The heads, 1 × 1: features to channels-last `(heat logits (B, G, G, K), size (B, G, G,
    /// 2), offset (B, G, G, 2))`.
    pub fn head(&self, features: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        Ok((
            self.conv(features, "heat")?,
            self.conv(features, "size")?,
            self.conv(features, "offset")?,
        ))
    }

    /// Every weight in a fixed order (for the optimiser).
    pub fn all_vars(&self) -> Vec<Var> {
        self.vars.values().cloned().collect()
    }

    /// The weights as tensors, by name (for saving).
    pub fn tensors(&self) -> std::collections::HashMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }
}

/// im2col of a channels-last `(B, H, W, C)` tensor for a `k × k` convolution with zero padding
/// `dilation · (k / 2)`: `(B·Ho·Wo, k·k·C)`, columns ordered (row of the kernel, column of the
/// kernel, channel). Its backward pass is col2im ([`Col2Im`]).
#[derive(Clone, Copy, Debug)]
struct Im2Col {
    k: usize,
    stride: usize,
    dilation: usize,
    h: usize,
    w: usize,
    c: usize,
}

impl Im2Col {
    fn out(&self) -> (usize, usize) {
        (self.h.div_ceil(self.stride), self.w.div_ceil(self.stride))
    }

    /// The input row and column under kernel cell `(ky, kx)` at output `(oy, ox)`, if inside.
    fn source(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let pad = (self.dilation * (self.k / 2)) as i64;
        let y = (oy * self.stride + ky * self.dilation) as i64 - pad;
        let x = (ox * self.stride + kx * self.dilation) as i64 - pad;
        (y >= 0 && x >= 0 && (y as usize) < self.h && (x as usize) < self.w)
            .then_some((y as usize, x as usize))
    }

    /// Calls `tap(column, pixel)` for every kernel tap of one image that falls inside it: the
    /// offset of the tap's `C` values in the image's columns and in the image itself.
    fn each_tap(&self, mut tap: impl FnMut(usize, usize)) {
        let (ho, wo) = self.out();
        let (k, c) = (self.k, self.c);
        for oy in 0..ho {
            for ox in 0..wo {
                let base = (oy * wo + ox) * k * k * c;
                for ky in 0..k {
                    for kx in 0..k {
                        if let Some((y, x)) = self.source(oy, ox, ky, kx) {
                            tap(base + (ky * k + kx) * c, (y * self.w + x) * c);
                        }
                    }
                }
            }
        }
    }
}

fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("a custom op needs a contiguous tensor".into()))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = f32_slice(storage, layout)?;
        let n = layout.shape().dims()[0];
        let (ho, wo) = self.out();
        let (k, c) = (self.k, self.c);
        let row = k * k * c;
        let per_image = ho * wo * row;
        let mut dst = vec![0f32; n * per_image];
        dst.par_chunks_mut(per_image)
            .zip(src.par_chunks(self.h * self.w * c))
            .for_each(|(out, img)| {
                self.each_tap(|at, from| out[at..at + c].copy_from_slice(&img[from..from + c]))
            });
        Ok((CpuStorage::F32(dst), Shape::from((n * ho * wo, row))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            grad_res.contiguous()?.apply_op1_no_bwd(&Col2Im(*self))?,
        ))
    }
}

/// col2im: the gradient of [`Im2Col`] — each column's value added back to the pixel it came from.
struct Col2Im(Im2Col);

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let p = &self.0;
        let src = f32_slice(storage, layout)?;
        let (ho, wo) = p.out();
        let (k, c) = (p.k, p.c);
        let row = k * k * c;
        // the columns are a `(B·Ho·Wo, k·k·C)` matrix
        let n = src.len() / (ho * wo * row).max(1);
        let per_image = p.h * p.w * c;
        let mut dst = vec![0f32; n * per_image];
        dst.par_chunks_mut(per_image)
            .zip(src.par_chunks(ho * wo * row))
            .for_each(|(img, cols)| {
                p.each_tap(|at, to| {
                    for (d, s) in img[to..to + c].iter_mut().zip(&cols[at..at + c]) {
                        *d += s;
                    }
                })
            });
        Ok((CpuStorage::F32(dst), Shape::from((n, p.h, p.w, c))))
    }
}

/// Layer normalisation over the channels of each row, then ReLU, as one op: on `(y, bias,
/// gain ‖ shift)`, each row `x = y + bias` becomes `max(0, gain · (x − mean) / √(var + 1e-5) +
/// shift)` (the population variance of the row). Written as one op because the same formula
/// out of candle's tensor ops took eight passes over the activations forward and about twenty
/// backward, each with a fresh buffer: a third of a training step. Rows are independent, and
/// the gradients' sums over rows add fixed blocks of rows in a fixed order, so the result does
/// not depend on the number of threads.
#[derive(Clone, Copy, Debug)]
struct NormRelu {
    /// the output's shape, channels-last `(B, H, W, C)` (the input is `(B·H·W, C)`)
    out: (usize, usize, usize, usize),
}

/// Rows per block of the gradients' sums over rows.
const NORM_BLOCK: usize = 256;

const NORM_EPS: f32 = 1e-5;

/// The mean and `1 / √(var + eps)` of one row.
fn row_stats(x: &[f32]) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + NORM_EPS).sqrt())
}

fn contiguous_f32(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

impl CustomOp3 for NormRelu {
    fn name(&self) -> &'static str {
        "norm-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let c = self.out.3;
        let y = f32_slice(s1, l1)?;
        let bias = f32_slice(s2, l2)?;
        let gs = f32_slice(s3, l3)?;
        let (b, h, w, _) = self.out;
        if bias.len() != c || gs.len() != 2 * c || y.len() != b * h * w * c {
            candle_core::bail!("norm-relu: shapes do not match {c} channels");
        }
        let (gain, shift) = gs.split_at(c);
        let mut out = vec![0f32; y.len()];
        out.par_chunks_mut(c * NORM_BLOCK)
            .zip(y.par_chunks(c * NORM_BLOCK))
            .for_each_with(vec![0f32; c], |x, (o, yb)| {
                for (orow, yrow) in o.chunks_mut(c).zip(yb.chunks(c)) {
                    for ((xv, yv), b) in x.iter_mut().zip(yrow).zip(bias) {
                        *xv = yv + b;
                    }
                    let (mean, r) = row_stats(x);
                    for (j, ov) in orow.iter_mut().enumerate() {
                        *ov = (gain[j] * (x[j] - mean) * r + shift[j]).max(0.0);
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from(self.out)))
    }

    fn bwd(
        &self,
        y: &Tensor,
        bias: &Tensor,
        gain_shift: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = self.out.3;
        let yv = contiguous_f32(y)?;
        let bias_v = contiguous_f32(bias)?;
        let gs = contiguous_f32(gain_shift)?;
        let out = contiguous_f32(res)?;
        let grad = contiguous_f32(grad_res)?;
        let gain = &gs[..c];
        let mut dx = vec![0f32; yv.len()];
        // per block of rows: (Σ dz·x̂ per channel, Σ dz per channel)
        let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(c * NORM_BLOCK)
            .zip(yv.par_chunks(c * NORM_BLOCK))
            .zip(out.par_chunks(c * NORM_BLOCK))
            .zip(grad.par_chunks(c * NORM_BLOCK))
            .map(|(((dxb, yb), ob), gb)| {
                let mut dgain = vec![0f32; c];
                let mut dshift = vec![0f32; c];
                let mut xhat = vec![0f32; c];
                let mut dxhat = vec![0f32; c];
                for (((dxr, yr), orow), gr) in dxb
                    .chunks_mut(c)
                    .zip(yb.chunks(c))
                    .zip(ob.chunks(c))
                    .zip(gb.chunks(c))
                {
                    for ((h, yv), b) in xhat.iter_mut().zip(yr).zip(&bias_v) {
                        *h = yv + b;
                    }
                    let (mean, r) = row_stats(&xhat);
                    for h in xhat.iter_mut() {
                        *h = (*h - mean) * r;
                    }
                    let (mut m1, mut m2) = (0f32, 0f32);
                    for j in 0..c {
                        // no gradient where the ReLU's output is 0, as PyTorch's ReLU (candle's
                        // passes it where the input is exactly 0: rows of air at the first
                        // steps, so the first steps differ from the unfused formula's)
                        let dz = if orow[j] > 0.0 { gr[j] } else { 0.0 };
                        dgain[j] += dz * xhat[j];
                        dshift[j] += dz;
                        dxhat[j] = dz * gain[j];
                        m1 += dxhat[j];
                        m2 += dxhat[j] * xhat[j];
                    }
                    let (m1, m2) = (m1 / c as f32, m2 / c as f32);
                    for j in 0..c {
                        dxr[j] = r * (dxhat[j] - m1 - xhat[j] * m2);
                    }
                }
                (dgain, dshift)
            })
            .collect();
        let mut dgs = vec![0f32; 2 * c];
        for (dgain, dshift) in &partial {
            for j in 0..c {
                dgs[j] += dgain[j];
                dgs[c + j] += dshift[j];
            }
        }
        let mut dbias = vec![0f32; c];
        for row in dx.chunks(c) {
            for (d, v) in dbias.iter_mut().zip(row) {
                *d += v;
            }
        }
        let dev = y.device();
        Ok((
            Some(Tensor::from_vec(dx, y.shape(), dev)?),
            Some(Tensor::from_vec(dbias, c, dev)?),
            Some(Tensor::from_vec(dgs, 2 * c, dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32)
            .collect()
    }

    /// im2col times the weight matrix is the convolution candle computes (NCHW, its own
    /// padding), for stride 1 and 2, dilation 1 and 2, and an odd size.
    #[test]
    fn im2col_convolution_equals_candle_conv2d() -> candle_core::Result<()> {
        let dev = &Device::Cpu;
        let (n, h, w, cin, cout, k) = (2, 9, 7, 3, 4, 3);
        for (stride, dilation) in [(1, 1), (2, 1), (1, 2)] {
            let x = Tensor::from_vec(random(n * h * w * cin, 1), (n, h, w, cin), dev)?;
            let kernel = Tensor::from_vec(random(cout * cin * k * k, 2), (cout, cin, k, k), dev)?;
            let pad = dilation * (k / 2);
            let want = x
                .permute((0, 3, 1, 2))?
                .contiguous()?
                .conv2d(&kernel, pad, stride, dilation, 1)?
                .permute((0, 2, 3, 1))?
                .contiguous()?;
            // (cout, cin, ky, kx) → rows (ky, kx, cin), columns cout
            let matrix = kernel.permute((2, 3, 1, 0))?.reshape((k * k * cin, cout))?;
            let op = Im2Col {
                k,
                stride,
                dilation,
                h,
                w,
                c: cin,
            };
            let (ho, wo) = op.out();
            let got = x
                .apply_op1(op)?
                .reshape((n * ho * wo, k * k * cin))?
                .matmul(&matrix)?
                .reshape((n, ho, wo, cout))?;
            assert_eq!(
                got.dims(),
                want.dims(),
                "stride {stride} dilation {dilation}"
            );
            let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "stride {stride} dilation {dilation}: {diff}");
        }
        Ok(())
    }

    /// col2im is the adjoint of im2col: ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩, and it is what
    /// backpropagation through im2col gives.
    #[test]
    fn col2im_is_the_adjoint_and_the_gradient_of_im2col() -> candle_core::Result<()> {
        let dev = &Device::Cpu;
        let (n, h, w, c, k) = (2, 6, 5, 2, 3);
        for (stride, dilation) in [(1, 1), (2, 1), (1, 2)] {
            let op = Im2Col {
                k,
                stride,
                dilation,
                h,
                w,
                c,
            };
            let (ho, wo) = op.out();
            let x = Var::from_tensor(&Tensor::from_vec(
                random(n * h * w * c, 3),
                (n, h, w, c),
                dev,
            )?)?;
            let y = Tensor::from_vec(
                random(n * ho * wo * k * k * c, 4),
                (n * ho * wo, k * k * c),
                dev,
            )?;
            let cols = x.as_tensor().apply_op1(op)?;
            let left = (&cols * &y)?.sum_all()?.to_scalar::<f32>()?;
            let back = y.apply_op1_no_bwd(&Col2Im(op))?;
            let right = (x.as_tensor() * &back)?.sum_all()?.to_scalar::<f32>()?;
            assert!((left - right).abs() < 1e-3, "{left} vs {right}");
            let grads = (&cols * &y)?.sum_all()?.backward()?;
            let g = grads.get(x.as_tensor()).expect("gradient");
            let diff = (g - back)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-6, "{diff}");
        }
        Ok(())
    }

    /// The fused normalisation and ReLU gives what the same formula out of candle's ops gives,
    /// forward and backward (for the input, the bias, the gain and the shift), over more rows
    /// than one block of the sums.
    #[test]
    fn fused_norm_relu_equals_the_formula_and_its_gradients() -> candle_core::Result<()> {
        let dev = &Device::Cpu;
        let (rows, c) = (NORM_BLOCK * 2 + 37, 6);
        let y = Var::from_tensor(&Tensor::from_vec(random(rows * c, 5), (rows, c), dev)?)?;
        let bias = Var::from_tensor(&Tensor::from_vec(random(c, 6), c, dev)?)?;
        let gain = Var::from_tensor(&Tensor::from_vec(random(c, 7), c, dev)?)?;
        let shift = Var::from_tensor(&Tensor::from_vec(random(c, 8), c, dev)?)?;
        let weights = Tensor::from_vec(random(rows * c, 9), (rows, c), dev)?;
        let x = y.as_tensor().broadcast_add(bias.as_tensor())?;
        let centred = x.broadcast_sub(&x.mean_keepdim(1)?)?;
        let var = centred.sqr()?.mean_keepdim(1)?;
        let want = centred
            .broadcast_div(&(var + 1e-5)?.sqrt()?)?
            .broadcast_mul(gain.as_tensor())?
            .broadcast_add(shift.as_tensor())?
            .relu()?;
        let gs = Tensor::cat(&[gain.as_tensor(), shift.as_tensor()], 0)?;
        let got = y
            .as_tensor()
            .apply_op3(
                bias.as_tensor(),
                &gs,
                NormRelu {
                    out: (rows, 1, 1, c),
                },
            )?
            .reshape((rows, c))?;
        let diff = (&got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "forward differs by {diff}");
        assert!(
            got.flatten_all()?.to_vec1::<f32>()?.contains(&0.0),
            "some rows must be cut by the ReLU for the test to check its gradient"
        );
        let g_want = (want * &weights)?.sum_all()?.backward()?;
        let g_got = (got * &weights)?.sum_all()?.backward()?;
        for (name, v) in [
            ("y", &y),
            ("bias", &bias),
            ("gain", &gain),
            ("shift", &shift),
        ] {
            let a = g_want.get(v.as_tensor()).expect("reference gradient");
            let b = g_got.get(v.as_tensor()).expect("fused gradient");
            let scale = a.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-4 * scale, "gradient of {name} differs by {diff}");
        }
        Ok(())
    }

    #[test]
    fn weights_depend_on_the_seed_only() -> candle_core::Result<()> {
        let shape = NetShape {
            in_channels: 3,
            side: 32,
            width: 4,
            classes: 2,
            norm: true,
            deepest_stride: 8,
        };
        let a = Net::new(shape.clone(), 7)?;
        let b = Net::new(shape.clone(), 7)?;
        let c = Net::new(shape, 8)?;
        let flat = |n: &Net| -> candle_core::Result<Vec<f32>> {
            let mut out = Vec::new();
            for v in n.vars.values() {
                out.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
            }
            Ok(out)
        };
        assert_eq!(flat(&a)?, flat(&b)?);
        assert_ne!(flat(&a)?, flat(&c)?);
        Ok(())
    }
}
