//! Scans that exist only as 8-bit renderings, turned back into an approximate transmission.
//!
//! The public X-ray sets (SIXray, PIDray, OPIXray, HiXray…) are pictures of a scanner's screen:
//! 8-bit pseudo-colour JPEG or PNG, in which brightness stands for transmission and hue for the
//! material (orange organic, green inorganic, blue metal). The physics is gone: the 16-bit
//! channels cannot be recovered, only approximated. This module does that approximation so that
//! the library's commands (report, consensus, exports, the detector) run on such copies, and it
//! says so: a scan made this way carries a [`RenderingRecord`] in its provenance, which the
//! quality report counts, and the viewer shows.
//!
//! The approximation is the exact inverse of the viewer's own pseudo-colour at the full window
//! ([`render`], the same map as `assets/nii.js`): each pixel is matched to the nearest of the
//! three hues, darkened (`hue · 2b`) or lightened towards white (`hue + (255 − hue)(2b − 1)`),
//! which gives the brightness `b`, read as the high-energy transmission; the low-energy one is
//! `T_high^r`, with `r` the middle of the hue's band of `ln T_low / ln T_high` ([`RATIOS`]). A
//! grayscale rendering gives a single-energy scan, `T = v / 255`. Another vendor's palette is
//! matched to the nearest of these hues, so its material classes come out as the nearest ones.
//!
//! Written by hand: no crate inverts an X-ray pseudo-colour palette. Decoding uses the `png`
//! crate (8-bit, any colour type) and `zune-jpeg` (no other codec).

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::image::{Image16, ImageError, MAX_PIXELS, MAX_SIDE};

/// The viewer's hues: organic, inorganic, metal (`assets/nii.js`).
pub const HUES: [[u8; 3]; 3] = [[255, 150, 30], [40, 190, 60], [40, 90, 255]];
/// The material classes of [`HUES`], in order.
pub const MATERIALS: [&str; 3] = ["organic", "inorganic", "metal"];
/// The bands of `ln T_low / ln T_high` the viewer colours with each hue: below 1.6 organic,
/// below 3.5 inorganic, metal above.
pub const BANDS: [f64; 2] = [1.6, 3.5];
/// The ratio given to each class when the low-energy channel is rebuilt: the middle of its band
/// (organic 1.0–1.6, inorganic 1.6–3.5, metal 3.5–5.5).
pub const RATIOS: [f64; 3] = [1.3, 2.55, 4.5];
/// Above this high-energy transmission the viewer paints air: white.
pub const AIR: f64 = 0.97;
/// Largest difference between the channels of a pixel still read as gray (JPEG noise).
const GRAY_TOLERANCE: u8 = 12;

/// How a scan's pixels were approximated from a rendering (kept in its provenance).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderingRecord {
    /// the file's format: `jpeg` or `png`
    pub format: String,
    /// pseudo-colour (two channels rebuilt) or grayscale (one channel)
    pub colour: bool,
    /// the method, named with its version
    pub method: String,
}

/// The name of the method in [`RenderingRecord::method`].
pub const METHOD: &str = "borderlens-pseudo-colour-inverse-1";

/// An 8-bit RGB image, row-major, 3 bytes a pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Rgb8 {
    /// width in pixels
    pub width: u32,
    /// height in pixels
    pub height: u32,
    /// `width × height × 3` bytes
    pub data: Vec<u8>,
}

impl Rgb8 {
    /// Whether every pixel is gray (its channels within the JPEG noise of each other).
    pub fn is_gray(&self) -> bool {
        self.data.chunks_exact(3).all(|p| {
            let (lo, hi) = (p.iter().min().unwrap_or(&0), p.iter().max().unwrap_or(&0));
            hi - lo <= GRAY_TOLERANCE
        })
    }

    /// Lossless PNG (8-bit RGB).
    pub fn to_png(&self) -> Result<Vec<u8>, ImageError> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder
                .write_header()
                .map_err(|e| ImageError::Encode(e.to_string()))?;
            writer
                .write_image_data(&self.data)
                .map_err(|e| ImageError::Encode(e.to_string()))?;
            writer
                .finish()
                .map_err(|e| ImageError::Encode(e.to_string()))?;
        }
        Ok(out)
    }
}

fn check_size(width: usize, height: usize) -> Result<(), String> {
    if width == 0
        || height == 0
        || width > MAX_SIDE as usize
        || height > MAX_SIDE as usize
        || (width as u64) * (height as u64) > MAX_PIXELS
    {
        return Err(format!(
            "image of {width} × {height} pixels is larger than allowed (at most {MAX_SIDE} pixels a side and {MAX_PIXELS} pixels)"
        ));
    }
    Ok(())
}

/// Decodes an 8-bit rendering: a JPEG (baseline or progressive; gray, YCbCr or CMYK) or an 8-bit
/// PNG of any colour type (gray, RGB, palette, with or without alpha; alpha is dropped). The
/// size is checked from the header before any pixel buffer is allocated.
pub fn decode(bytes: &[u8], format: &str) -> Result<Rgb8, String> {
    match format {
        "jpeg" => decode_jpeg(bytes),
        "png" => decode_png(bytes),
        other => Err(format!("format '{other}'; jpeg or png")),
    }
}

fn decode_jpeg(bytes: &[u8]) -> Result<Rgb8, String> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .set_max_width(MAX_SIDE as usize)
        .set_max_height(MAX_SIDE as usize)
        // A truncated or corrupt file is an error, not an image padded with gray.
        .set_strict_mode(true)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder
        .decode_headers()
        .map_err(|e| format!("not a readable JPEG image: {e:?}"))?;
    let (width, height) = decoder
        .dimensions()
        .ok_or("not a readable JPEG image: no frame header")?;
    check_size(width, height)?;
    let data = decoder
        .decode()
        .map_err(|e| format!("not a readable JPEG image: {e:?}"))?;
    if data.len() != width * height * 3 {
        return Err(format!(
            "not a readable JPEG image: {} bytes decoded for {width} × {height} RGB pixels",
            data.len()
        ));
    }
    Ok(Rgb8 {
        width: width as u32,
        height: height as u32,
        data,
    })
}

fn decode_png(bytes: &[u8]) -> Result<Rgb8, String> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: (MAX_PIXELS * 4) as usize,
        },
    );
    // Palettes expanded to RGB, bit depths below 8 to 8; 16-bit is not a rendering.
    decoder.set_transformations(png::Transformations::EXPAND);
    let header = decoder
        .read_header_info()
        .map_err(|e| format!("not a readable PNG image: {e}"))?;
    let (width, height) = (header.width as usize, header.height as usize);
    check_size(width, height)?;
    if header.bit_depth == png::BitDepth::Sixteen {
        return Err(
            "a 16-bit PNG is not a rendering: import it as transmission (without --renderings)"
                .to_string(),
        );
    }
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("not a readable PNG image: {e}"))?;
    let mut buffer = vec![
        0;
        reader
            .output_buffer_size()
            .ok_or("not a readable PNG image: too large")?
    ];
    let frame = reader
        .next_frame(&mut buffer)
        .map_err(|e| format!("not a readable PNG image: {e}"))?;
    let (color, depth) = reader.output_color_type();
    if depth != png::BitDepth::Eight {
        return Err(format!("a PNG of {depth:?} bits; 8-bit expected"));
    }
    let channels = match color {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("an indexed PNG that did not expand".to_string()),
    };
    let line = frame.line_size;
    let mut data = Vec::with_capacity(width * height * 3);
    for row in buffer.chunks(line).take(height) {
        for pixel in row[..width * channels].chunks_exact(channels) {
            match channels {
                1 | 2 => data.extend_from_slice(&[pixel[0]; 3]),
                _ => data.extend_from_slice(&pixel[..3]),
            }
        }
    }
    Ok(Rgb8 {
        width: width as u32,
        height: height as u32,
        data,
    })
}

/// The material class (index into [`HUES`]) of a ratio `ln T_low / ln T_high`.
pub fn class_of_ratio(ratio: f64) -> usize {
    if ratio < BANDS[0] {
        0
    } else if ratio < BANDS[1] {
        1
    } else {
        2
    }
}

/// The viewer's rendering at the full window: the high channel's transmission as brightness
/// (gray without a low channel), and, with one, the hue of the ratio's class (air white). The forward map that
/// [`approximate`] inverts.
pub fn render(high: &Image16, low: Option<&Image16>) -> Rgb8 {
    let mut data = Vec::with_capacity(high.data.len() * 3);
    for (i, &h) in high.data.iter().enumerate() {
        let th = f64::from(h) / 65535.0;
        let b = th;
        let hue = match low {
            None => {
                let v = (b * 255.0).round().clamp(0.0, 255.0) as u8;
                data.extend_from_slice(&[v; 3]);
                continue;
            }
            Some(low) => {
                let tl = f64::from(low.data[i]) / 65535.0;
                if th > AIR || tl <= 0.0 || th <= 0.0 {
                    [255; 3]
                } else {
                    HUES[class_of_ratio(tl.ln() / th.ln())]
                }
            }
        };
        for c in hue {
            let c = f64::from(c);
            let v = if b > 0.5 {
                c + (255.0 - c) * (b - 0.5) * 2.0
            } else {
                c * b * 2.0
            };
            data.push(v.round().clamp(0.0, 255.0) as u8);
        }
    }
    Rgb8 {
        width: high.width,
        height: high.height,
        data,
    }
}

/// The brightness `b` and the class of one coloured pixel: the hue and the half (darkened or
/// lightened) that explain it best, by least squares.
fn invert_pixel(p: [f64; 3]) -> (f64, usize) {
    let mut best = (f64::INFINITY, 0.0, 0);
    for (class, hue) in HUES.iter().enumerate() {
        let h = hue.map(f64::from);
        // darkened: p = s·h, s = 2b in [0, 1]
        let hh: f64 = h.iter().map(|x| x * x).sum();
        let s = (dot(p, h) / hh).clamp(0.0, 1.0);
        let dark = distance(p, h.map(|x| s * x));
        if dark < best.0 {
            best = (dark, s / 2.0, class);
        }
        // lightened: p = h + f·(255 − h), f = 2b − 1 in [0, 1]
        let d = h.map(|x| 255.0 - x);
        let dd: f64 = d.iter().map(|x| x * x).sum();
        let f = if dd > 0.0 {
            (dot([p[0] - h[0], p[1] - h[1], p[2] - h[2]], d) / dd).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let light = distance(p, [h[0] + f * d[0], h[1] + f * d[1], h[2] + f * d[2]]);
        if light < best.0 {
            best = (light, 0.5 + f / 2.0, class);
        }
    }
    (best.1, best.2)
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// The approximate transmission of a rendering: `(high, low)`, the low channel only for a
/// colour rendering (see the module documentation).
pub fn approximate(image: &Rgb8) -> (Image16, Option<Image16>) {
    let n = image.data.len() / 3;
    if image.is_gray() {
        let t: Vec<f32> = image
            .data
            .chunks_exact(3)
            .map(|p| (f32::from(p[0]) + f32::from(p[1]) + f32::from(p[2])) / (3.0 * 255.0))
            .collect();
        return (
            Image16::from_transmission(image.width, image.height, &t),
            None,
        );
    }
    let mut high = Vec::with_capacity(n);
    let mut low = Vec::with_capacity(n);
    for p in image.data.chunks_exact(3) {
        let p = [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])];
        let (b, class) = invert_pixel(p);
        // Opaque is not representable in ln: the darkest sample stands for it.
        let th = b.clamp(1.0 / 65535.0, 1.0);
        high.push(th as f32);
        // Kept above 0 so that the ratio, and the class, stay readable in the darkest pixels.
        low.push(th.powf(RATIOS[class]).max(1.0 / 65535.0) as f32);
    }
    (
        Image16::from_transmission(image.width, image.height, &high),
        Some(Image16::from_transmission(image.width, image.height, &low)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate_scan, GeneratorParams};

    /// Over the scan's body (neither air nor near opaque): the mean absolute error of the
    /// rebuilt high channel, and the lowest share, over the three material classes, of a
    /// class's pixels rebuilt in their class (each class must be present).
    fn compare(
        high: &Image16,
        low: &Image16,
        rebuilt_high: &Image16,
        rebuilt_low: &Image16,
    ) -> (f64, f64) {
        let (mut error, mut n) = (0.0, 0usize);
        let mut classes = [0usize; 3];
        let mut kept = [0usize; 3];
        for i in 0..high.data.len() {
            let th = f64::from(high.data[i]) / 65535.0;
            let tl = f64::from(low.data[i]) / 65535.0;
            if !(0.08..=0.9).contains(&th) || tl <= 0.0 {
                continue;
            }
            let rh = f64::from(rebuilt_high.data[i]) / 65535.0;
            let rl = f64::from(rebuilt_low.data[i]) / 65535.0;
            error += (rh - th).abs();
            let class = class_of_ratio(tl.ln() / th.ln());
            classes[class] += 1;
            kept[class] += usize::from(class == class_of_ratio(rl.ln() / rh.ln()));
            n += 1;
        }
        assert!(n > 1000, "{n} body pixels");
        assert!(
            classes.iter().all(|&c| c >= 100),
            "every class present: {classes:?}"
        );
        let recall: Vec<f64> = kept
            .iter()
            .zip(&classes)
            .map(|(&k, &c)| k as f64 / c as f64)
            .collect();
        eprintln!(
            "body pixels by class (organic, inorganic, metal): {classes:?}, kept {recall:.3?}"
        );
        (error / n as f64, recall.iter().copied().fold(1.0, f64::min))
    }

    fn scan() -> (Image16, Image16) {
        let params = GeneratorParams {
            width: 256,
            height: 256,
            ..GeneratorParams::default()
        };
        let scan = generate_scan(&params, 7, 3);
        (scan.high, scan.low)
    }

    #[test]
    fn a_png_rendering_inverts_to_the_transmission_and_the_materials() {
        let (high, low) = scan();
        let rendering = render(&high, Some(&low));
        assert!(!rendering.is_gray());
        let png = rendering.to_png().unwrap();
        let decoded = decode(&png, "png").unwrap();
        assert_eq!(decoded, rendering);
        let (rebuilt_high, rebuilt_low) = approximate(&decoded);
        let (error, same) = compare(&high, &low, &rebuilt_high, &rebuilt_low.unwrap());
        eprintln!("PNG rendering: mean |ΔT| {error:.4}, worst class kept {same:.3}");
        // 8 bits over [0, 1]: half a step is 0.002, the mean error a quarter step
        assert!(error < 0.002, "mean |ΔT| {error}");
        assert!(same > 0.99, "materials kept {same}");
    }

    #[test]
    fn a_jpeg_rendering_inverts_within_its_compression_noise() {
        let (high, low) = scan();
        let rendering = render(&high, Some(&low));
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 90)
            .encode(
                &rendering.data,
                rendering.width as u16,
                rendering.height as u16,
                jpeg_encoder::ColorType::Rgb,
            )
            .unwrap();
        let decoded = decode(&jpeg, "jpeg").unwrap();
        assert_eq!((decoded.width, decoded.height), (256, 256));
        let (rebuilt_high, rebuilt_low) = approximate(&decoded);
        let (error, same) = compare(&high, &low, &rebuilt_high, &rebuilt_low.unwrap());
        eprintln!("JPEG q90 rendering: mean |ΔT| {error:.4}, worst class kept {same:.3}");
        assert!(error < 0.015, "mean |ΔT| {error}");
        assert!(same > 0.95, "materials kept {same}");
    }

    #[test]
    fn a_gray_rendering_is_one_channel() {
        let (high, _) = scan();
        let rendering = render(&high, None);
        assert!(rendering.is_gray());
        let (rebuilt, low) = approximate(&rendering);
        assert!(low.is_none());
        let worst = high
            .data
            .iter()
            .zip(&rebuilt.data)
            .map(|(a, b)| (i64::from(*a) - i64::from(*b)).abs())
            .max()
            .unwrap();
        // half an 8-bit step in 16-bit samples
        assert!(worst <= 129, "{worst}");
    }

    #[test]
    fn bad_renderings_are_refused() {
        assert!(decode(b"not an image", "jpeg")
            .unwrap_err()
            .contains("not a readable JPEG"));
        assert!(decode(b"not an image", "png")
            .unwrap_err()
            .contains("not a readable PNG"));
        let (high, _) = scan();
        let png = high.to_png().unwrap();
        assert!(decode(&png, "png").unwrap_err().contains("16-bit"));
        let rendering = render(&high, None).to_png().unwrap();
        assert!(decode(&rendering[..rendering.len() / 2], "png").is_err());
        // A truncated JPEG is refused, not padded.
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 90)
            .encode(
                &render(&high, None).data,
                high.width as u16,
                high.height as u16,
                jpeg_encoder::ColorType::Rgb,
            )
            .unwrap();
        assert!(decode(&jpeg, "jpeg").is_ok());
        let e = decode(&jpeg[..jpeg.len() * 2 / 3], "jpeg").unwrap_err();
        assert!(e.contains("not a readable JPEG"), "{e}");
    }

    #[test]
    fn every_8_bit_png_colour_type_reads_as_rgb() {
        let write =
            |color: png::ColorType, depth: png::BitDepth, data: &[u8], palette: Option<&[u8]>| {
                let mut out = Vec::new();
                {
                    let mut encoder = png::Encoder::new(&mut out, 2, 1);
                    encoder.set_color(color);
                    encoder.set_depth(depth);
                    if let Some(p) = palette {
                        encoder.set_palette(p.to_vec());
                    }
                    encoder
                        .write_header()
                        .unwrap()
                        .write_image_data(data)
                        .unwrap();
                }
                decode(&out, "png").unwrap().data
            };
        let want = vec![255, 150, 30, 40, 90, 255];
        assert_eq!(
            write(png::ColorType::Rgb, png::BitDepth::Eight, &want, None),
            want
        );
        assert_eq!(
            write(
                png::ColorType::Rgba,
                png::BitDepth::Eight,
                &[255, 150, 30, 9, 40, 90, 255, 9],
                None
            ),
            want
        );
        assert_eq!(
            write(
                png::ColorType::Indexed,
                png::BitDepth::Eight,
                &[1, 0],
                Some(&[40, 90, 255, 255, 150, 30])
            ),
            want
        );
        assert_eq!(
            write(
                png::ColorType::Grayscale,
                png::BitDepth::Eight,
                &[7, 200],
                None
            ),
            vec![7, 7, 7, 200, 200, 200]
        );
        assert_eq!(
            write(
                png::ColorType::GrayscaleAlpha,
                png::BitDepth::Eight,
                &[7, 1, 200, 1],
                None
            ),
            vec![7, 7, 7, 200, 200, 200]
        );
        // 1-bit gray expands to 0 and 255
        assert_eq!(
            write(
                png::ColorType::Grayscale,
                png::BitDepth::One,
                &[0b0100_0000],
                None
            ),
            vec![0, 0, 0, 255, 255, 255]
        );
    }

    #[test]
    fn a_rendering_larger_than_allowed_is_refused_from_its_header() {
        // The header of a 20,000 × 20,000 PNG, no pixels: refused before any buffer.
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, 20_000, 20_000);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let _ = encoder.write_header().unwrap();
        }
        let e = decode(&out, "png").unwrap_err();
        assert!(e.contains("larger than allowed"), "{e}");
    }
}
