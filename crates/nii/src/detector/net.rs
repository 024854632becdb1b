//! The network: a small CenterNet-style convolutional detector on candle (CPU).
//!
//! Input `C × S × S` (attenuation per energy and a material channel, see [`super::input`]);
//! a trunk of 3 × 3 convolutions down to stride 8, one upsampling back to stride 4 fused with the
//! stride-4 features, then 1 × 1 heads on the stride-4 grid: one centre heat map per class
//! (logits), the box size (log width and height in grid cells) and the centre's offset inside
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
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, Var};
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
}

impl NetShape {
    /// Cells per side of the output grid (stride 4).
    pub fn grid(&self) -> usize {
        self.side / 4
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
    vec![
        ("c1", s.in_channels, w, 3, 2, 1),
        ("c2", w, 2 * w, 3, 2, 1),
        ("c3", 2 * w, 2 * w, 3, 1, 1),
        ("c4", 2 * w, 4 * w, 3, 2, 1),
        ("c5", 4 * w, 4 * w, 3, 1, 2),
        ("fuse", 6 * w, 3 * w, 1, 1, 1),
        ("heat", 3 * w, s.classes, 1, 1, 1),
        ("size", 3 * w, 2, 1, 1, 1),
        ("offset", 3 * w, 2, 1, 1, 1),
    ]
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
    /// stride 1 and halves it at stride 2).
    fn conv(&self, x: &Tensor, name: &str) -> candle_core::Result<Tensor> {
        let (_, cin, _, k, stride, dilation) = layers(&self.shape)
            .into_iter()
            .find(|l| l.0 == name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no layer {name}")))?;
        let w = self.vars[&format!("{name}.weight")].as_tensor();
        let b = self.vars[&format!("{name}.bias")].as_tensor();
        let (n, h, wd, c) = x.dims4()?;
        if c != cin {
            candle_core::bail!("layer {name} expects {cin} channels, got {c}");
        }
        let (ho, wo) = (h.div_ceil(stride), wd.div_ceil(stride));
        let patches = if k == 1 {
            x.clone()
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
        let cols = patches.dim(3)?;
        let y = patches.reshape((n * ho * wo, cols))?.matmul(w)?;
        let mut y = y.broadcast_add(b)?;
        if self.shape.norm && !is_head(name) {
            let gain = self.vars[&format!("{name}.norm_gain")].as_tensor();
            let shift = self.vars[&format!("{name}.norm_bias")].as_tensor();
            let centred = y.broadcast_sub(&y.mean_keepdim(1)?)?;
            let var = centred.sqr()?.mean_keepdim(1)?;
            y = centred
                .broadcast_div(&(var + 1e-5)?.sqrt()?)?
                .broadcast_mul(gain)?
                .broadcast_add(shift)?;
        }
        y.reshape((n, ho, wo, w.dim(1)?))
    }

    /// The trunk: channels-last input `(B, S, S, C)` to the features Grad-CAM explains,
    /// `(B, S/4, S/4, 6w)` (the stride-8 features upsampled and concatenated with the stride-4
    /// ones).
    pub fn trunk(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let c1 = self.conv(x, "c1")?.relu()?;
        let c2 = self.conv(&c1, "c2")?.relu()?;
        let c3 = self.conv(&c2, "c3")?.relu()?;
        let c4 = self.conv(&c3, "c4")?.relu()?;
        let c5 = self.conv(&c4, "c5")?.relu()?;
        let (n, h, w, c) = c5.dims4()?;
        // nearest-neighbour upsampling by 2, channels-last
        let up = c5
            .reshape((n, h, 1, w, 1, c))?
            .broadcast_as((n, h, 2, w, 2, c))?
            .reshape((n, 2 * h, 2 * w, c))?;
        Tensor::cat(&[&up, &c3], 3)
    }

    /// The head: features to channels-last `(heat logits (B, G, G, K), size (B, G, G, 2),
    /// offset (B, G, G, 2))`.
    pub fn head(&self, features: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let f = self.conv(features, "fuse")?.relu()?;
        Ok((
            self.conv(&f, "heat")?,
            self.conv(&f, "size")?,
            self.conv(&f, "offset")?,
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
/// `dilation · (k / 2)`: `(B, Ho, Wo, k·k·C)`, columns ordered (row of the kernel, column of the
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
        .ok_or_else(|| candle_core::Error::Msg("im2col needs a contiguous tensor".into()))?;
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
        Ok((CpuStorage::F32(dst), Shape::from((n, ho, wo, row))))
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
        let n = layout.shape().dims()[0];
        let (ho, wo) = p.out();
        let (k, c) = (p.k, p.c);
        let row = k * k * c;
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
                (n, ho, wo, k * k * c),
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

    #[test]
    fn weights_depend_on_the_seed_only() -> candle_core::Result<()> {
        let shape = NetShape {
            in_channels: 3,
            side: 32,
            width: 4,
            classes: 2,
            norm: true,
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
