//! What the network sees of a view: per-energy attenuation and a material channel, resampled to
//! a square `side × side` by averaging (boxes are scaled back with the view's own factors).

use crate::image::{Image16, FULL};
use crate::library::{Library, LibraryError};
use crate::scan::{Energy, ScanRecord};

/// Channels of the input: low-energy attenuation, high-energy attenuation, material.
pub const CHANNELS: usize = 3;

/// Attenuation `-ln t` is divided by this so that the input is mostly in `[0, 2]`.
const ATTENUATION_SCALE: f32 = 4.0;

/// One view ready for the network.
#[derive(Clone, Debug)]
pub struct ViewInput {
    /// `CHANNELS × side × side`, channel-major
    pub data: Vec<f32>,
    /// the input side
    pub side: usize,
    /// the view's width and height, pixels
    pub width: u32,
    /// see `width`
    pub height: u32,
    /// the high-energy (or only) channel as 8 bits, for heat-map overlays
    pub gray: Vec<u8>,
}

fn attenuation(v: u16) -> f32 {
    let t = (f32::from(v) / FULL).max(1.0 / FULL);
    -t.ln()
}

/// Averages `values` (`w × h`) into `side × side` cells.
fn resample(values: &[f32], w: usize, h: usize, side: usize) -> Vec<f32> {
    let mut out = vec![0f32; side * side];
    for oy in 0..side {
        let y0 = oy * h / side;
        let y1 = ((oy + 1) * h / side).max(y0 + 1).min(h);
        for ox in 0..side {
            let x0 = ox * w / side;
            let x1 = ((ox + 1) * w / side).max(x0 + 1).min(w);
            let mut sum = 0f32;
            for y in y0..y1 {
                sum += values[y * w + x0..y * w + x1].iter().sum::<f32>();
            }
            out[oy * side + ox] = sum / ((y1 - y0) * (x1 - x0)) as f32;
        }
    }
    out
}

/// The input of a view from its images: `high` is required (or the only energy), `low` optional
/// (a single-energy view repeats its one channel and has no material signal).
pub fn view_input(low: Option<&Image16>, high: &Image16, side: usize) -> Result<ViewInput, String> {
    if let Some(low) = low {
        if (low.width, low.height) != (high.width, high.height) {
            return Err(format!(
                "the low-energy image is {}×{} but the high-energy one {}×{}",
                low.width, low.height, high.width, high.height
            ));
        }
    }
    let (w, h) = (high.width as usize, high.height as usize);
    if w == 0 || h == 0 {
        return Err("the view is empty".into());
    }
    let a_high: Vec<f32> = high.data.iter().map(|&v| attenuation(v)).collect();
    let a_low: Vec<f32> = match low {
        Some(low) => low.data.iter().map(|&v| attenuation(v)).collect(),
        None => a_high.clone(),
    };
    let rl = resample(&a_low, w, h, side);
    let rh = resample(&a_high, w, h, side);
    // Material: how much more the low energy is absorbed than the high one (about 1.1 for
    // organics, over 1.4 for metals); 0 where almost nothing is in the beam.
    let material: Vec<f32> = rl
        .iter()
        .zip(&rh)
        .map(|(l, h)| {
            if *h > 0.05 {
                (l / h - 1.0).clamp(0.0, 2.0)
            } else {
                0.0
            }
        })
        .collect();
    let mut data = Vec::with_capacity(CHANNELS * side * side);
    data.extend(rl.iter().map(|v| v / ATTENUATION_SCALE));
    data.extend(rh.iter().map(|v| v / ATTENUATION_SCALE));
    data.extend(material);
    let gray = high
        .data
        .iter()
        .map(|&v| ((u32::from(v) * 255 + 32767) / 65535) as u8)
        .collect();
    Ok(ViewInput {
        data,
        side,
        width: high.width,
        height: high.height,
        gray,
    })
}

/// The input of view `view` of a stored scan.
pub fn read_view(
    library: &Library,
    record: &ScanRecord,
    view: usize,
    side: usize,
) -> Result<ViewInput, LibraryError> {
    let path = library.root().join(crate::library::CATALOGUE_FILE);
    let fail = |reason: String| LibraryError {
        file: path.clone(),
        line: None,
        field: Some(format!("{}.views[{view}]", record.metadata.scan_id)),
        reason,
    };
    let v = record
        .views
        .get(view)
        .ok_or_else(|| fail("no such view".into()))?;
    let find = |e: Energy| v.channels.iter().find(|c| c.energy == e);
    let high_ref = find(Energy::High)
        .or(v.channels.first())
        .ok_or_else(|| fail("the view has no image".into()))?;
    let high = library.read_image(&high_ref.image)?;
    let low = match find(Energy::Low) {
        Some(c) if c.image.sha256 != high_ref.image.sha256 => Some(library.read_image(&c.image)?),
        _ => None,
    };
    view_input(low.as_ref(), &high, side).map_err(fail)
}
