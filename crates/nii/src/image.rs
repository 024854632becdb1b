//! 16-bit transmission images and 8-bit object masks, and their lossless PNG form.
//!
//! A transmission image holds `I / I0` per pixel as `round(T · 65535)`: 65535 is air (nothing in
//! the beam), 0 is opaque. Only 16-bit grayscale PNG is accepted for it: an 8-bit image or a
//! pseudo-colour (RGB) rendering has lost the physics and is refused here, never converted
//! silently (`rendering.rs` approximates one when asked, and the provenance says so).
//! Decoding checks the header first, so an oversized image is refused before any pixel buffer is
//! allocated ([`MAX_SIDE`], [`MAX_PIXELS`]).

use std::io::Cursor;

/// Largest width or height accepted (pixels); a 20,000-pixel side is refused.
pub const MAX_SIDE: u32 = 16_384;
/// Largest number of pixels accepted in one image (64 Mpx, 128 MB as 16-bit).
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Full transmission as stored.
pub const FULL: f32 = 65535.0;

/// Why an image cannot be read or written; the caller adds the file name.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Not a PNG file, or a truncated or corrupt one.
    #[error("not a readable PNG image: {0}")]
    Corrupt(String),
    /// A PNG of the wrong kind (bit depth, colour type).
    #[error("{found}; expected {expected}")]
    Format {
        /// what the file is
        found: String,
        /// what it must be
        expected: &'static str,
    },
    /// Width, height or pixel count beyond the limits.
    #[error("image of {width} × {height} pixels is larger than allowed (at most {MAX_SIDE} pixels a side and {MAX_PIXELS} pixels)")]
    TooLarge {
        /// width in pixels
        width: u32,
        /// height in pixels
        height: u32,
    },
    /// Encoding failed.
    #[error("cannot encode PNG: {0}")]
    Encode(String),
    /// Not a TIFF file, or a truncated or corrupt one.
    #[error("not a readable TIFF image: {0}")]
    CorruptTiff(String),
}

/// A 16-bit grayscale image, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Image16 {
    /// width in pixels
    pub width: u32,
    /// height in pixels
    pub height: u32,
    /// `width × height` samples, row by row
    pub data: Vec<u16>,
}

/// An 8-bit grayscale image (object masks: 0 background, `i` the i-th object), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Mask8 {
    /// width in pixels
    pub width: u32,
    /// height in pixels
    pub height: u32,
    /// `width × height` samples, row by row
    pub data: Vec<u8>,
}

fn check_size(width: u32, height: u32) -> Result<(), ImageError> {
    if width == 0
        || height == 0
        || width > MAX_SIDE
        || height > MAX_SIDE
        || u64::from(width) * u64::from(height) > MAX_PIXELS
    {
        return Err(ImageError::TooLarge { width, height });
    }
    Ok(())
}

impl Image16 {
    /// Transmission `t` (clamped to `[0, 1]`) of each pixel, stored as `round(t · 65535)`.
    pub fn from_transmission(width: u32, height: u32, t: &[f32]) -> Image16 {
        Image16 {
            width,
            height,
            data: t.iter().map(|&v| to_u16(v)).collect(),
        }
    }

    /// The transmission of each pixel in `[0, 1]`.
    pub fn transmission(&self) -> Vec<f32> {
        self.data.iter().map(|&v| f32::from(v) / FULL).collect()
    }

    /// Lossless PNG (16-bit grayscale, fast deflate).
    pub fn to_png(&self) -> Result<Vec<u8>, ImageError> {
        check_size(self.width, self.height)?;
        let mut bytes = Vec::with_capacity(self.data.len() * 2);
        for v in &self.data {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        encode(self.width, self.height, png::BitDepth::Sixteen, &bytes)
    }

    /// Reads a 16-bit grayscale PNG; refuses anything else (8-bit, colour, palette, alpha).
    pub fn from_png(bytes: &[u8]) -> Result<Image16, ImageError> {
        let (width, height, raw) = decode(
            bytes,
            png::BitDepth::Sixteen,
            "16-bit grayscale transmission",
        )?;
        let data = raw
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        Ok(Image16 {
            width,
            height,
            data,
        })
    }
}

impl Image16 {
    /// Reads a 16-bit grayscale TIFF (the first image of the file; uncompressed, PackBits, LZW
    /// or Deflate); refuses anything else (8-bit, colour, palette, alpha, float). The size is
    /// checked before the pixels are decoded. A WhiteIsZero image comes out air bright (the
    /// decoder inverts it).
    pub fn from_tiff(bytes: &[u8]) -> Result<Image16, ImageError> {
        use tiff::decoder::{Decoder, DecodingResult, Limits};
        let corrupt = |e: tiff::TiffError| ImageError::CorruptTiff(e.to_string());
        let mut limits = Limits::default();
        limits.decoding_buffer_size = (MAX_PIXELS * 2) as usize;
        limits.intermediate_buffer_size = (MAX_PIXELS * 2) as usize;
        let mut decoder = Decoder::new(Cursor::new(bytes))
            .map_err(corrupt)?
            .with_limits(limits);
        let (width, height) = decoder.dimensions().map_err(corrupt)?;
        check_size(width, height)?;
        let colour = decoder.colortype().map_err(corrupt)?;
        if colour != tiff::ColorType::Gray(16) {
            let found = match colour {
                tiff::ColorType::Gray(bits) => format!("{bits}-bit grayscale TIFF"),
                other => format!("{other:?} TIFF (a pseudo-colour rendering?)"),
            };
            return Err(ImageError::Format {
                found,
                expected: "16-bit grayscale transmission",
            });
        }
        let data = match decoder.read_image().map_err(corrupt)? {
            DecodingResult::U16(v) => v,
            _ => {
                return Err(ImageError::Format {
                    found: "a TIFF whose samples are not 16-bit unsigned".to_string(),
                    expected: "16-bit grayscale transmission",
                })
            }
        };
        if data.len() != (width as usize) * (height as usize) {
            return Err(ImageError::CorruptTiff(format!(
                "{} samples for {width} × {height} pixels",
                data.len()
            )));
        }
        Ok(Image16 {
            width,
            height,
            data,
        })
    }
}

impl Mask8 {
    /// Lossless PNG (8-bit grayscale).
    pub fn to_png(&self) -> Result<Vec<u8>, ImageError> {
        check_size(self.width, self.height)?;
        encode(self.width, self.height, png::BitDepth::Eight, &self.data)
    }

    /// Reads an 8-bit grayscale PNG; refuses anything else.
    pub fn from_png(bytes: &[u8]) -> Result<Mask8, ImageError> {
        let (width, height, data) =
            decode(bytes, png::BitDepth::Eight, "8-bit grayscale object mask")?;
        Ok(Mask8 {
            width,
            height,
            data,
        })
    }
}

/// `t` in `[0, 1]` as a stored sample (NaN as 0).
pub fn to_u16(t: f32) -> u16 {
    if t.is_nan() {
        return 0;
    }
    (t.clamp(0.0, 1.0) * FULL).round() as u16
}

fn encode(
    width: u32,
    height: u32,
    depth: png::BitDepth,
    bytes: &[u8],
) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::with_capacity(bytes.len() / 2 + 1024);
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(depth);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder
            .write_header()
            .map_err(|e| ImageError::Encode(e.to_string()))?;
        writer
            .write_image_data(bytes)
            .map_err(|e| ImageError::Encode(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| ImageError::Encode(e.to_string()))?;
    }
    Ok(out)
}

fn depth_text(depth: png::BitDepth) -> u8 {
    match depth {
        png::BitDepth::One => 1,
        png::BitDepth::Two => 2,
        png::BitDepth::Four => 4,
        png::BitDepth::Eight => 8,
        png::BitDepth::Sixteen => 16,
    }
}

fn decode(
    bytes: &[u8],
    depth: png::BitDepth,
    expected: &'static str,
) -> Result<(u32, u32, Vec<u8>), ImageError> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: (MAX_PIXELS * 2) as usize,
        },
    );
    // Samples exactly as stored: no palette expansion, no 16 → 8 stripping.
    decoder.set_transformations(png::Transformations::IDENTITY);
    let header = decoder
        .read_header_info()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let (width, height) = (header.width, header.height);
    check_size(width, height)?;
    let (color, found_depth) = (header.color_type, header.bit_depth);
    if color != png::ColorType::Grayscale || found_depth != depth {
        let kind = match color {
            png::ColorType::Grayscale => "grayscale",
            png::ColorType::Rgb => "RGB colour (a pseudo-colour rendering?)",
            png::ColorType::Indexed => "palette colour (a pseudo-colour rendering?)",
            png::ColorType::GrayscaleAlpha => "grayscale with alpha",
            png::ColorType::Rgba => "RGBA colour (a pseudo-colour rendering?)",
        };
        return Err(ImageError::Format {
            found: format!("{}-bit {kind} PNG", depth_text(found_depth)),
            expected,
        });
    }
    let mut reader = decoder
        .read_info()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let size = reader
        .output_buffer_size()
        .ok_or(ImageError::TooLarge { width, height })?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    buf.truncate(info.buffer_size());
    let want = width as usize * height as usize * usize::from(depth_text(depth) / 8);
    if buf.len() != want {
        return Err(ImageError::Corrupt(format!(
            "{} bytes of pixels, expected {want}",
            buf.len()
        )));
    }
    Ok((width, height, buf))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sample() -> Image16 {
        Image16 {
            width: 3,
            height: 2,
            data: vec![0, 1, 65535, 32768, 255, 256],
        }
    }

    #[test]
    fn png_round_trip_is_lossless() {
        let img = sample();
        let back = Image16::from_png(&img.to_png().unwrap()).unwrap();
        assert_eq!(back, img);
        let mask = Mask8 {
            width: 2,
            height: 2,
            data: vec![0, 1, 2, 255],
        };
        assert_eq!(Mask8::from_png(&mask.to_png().unwrap()).unwrap(), mask);
    }

    #[test]
    fn wrong_depth_colour_and_corruption_are_refused() {
        let mask = Mask8 {
            width: 2,
            height: 2,
            data: vec![0, 1, 2, 255],
        };
        let eight = mask.to_png().unwrap();
        let err = Image16::from_png(&eight).unwrap_err().to_string();
        assert!(
            err.contains("8-bit grayscale PNG") && err.contains("16-bit"),
            "{err}"
        );
        let sixteen = sample().to_png().unwrap();
        assert!(Mask8::from_png(&sixteen).is_err());
        let truncated = &sixteen[..sixteen.len() - 20];
        assert!(matches!(
            Image16::from_png(truncated),
            Err(ImageError::Corrupt(_))
        ));
        assert!(matches!(
            Image16::from_png(b"not a png"),
            Err(ImageError::Corrupt(_))
        ));
        // an RGB image
        let mut rgb = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut rgb, 1, 1);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            w.write_image_data(&[1, 2, 3]).unwrap();
        }
        let err = Image16::from_png(&rgb).unwrap_err().to_string();
        assert!(err.contains("pseudo-colour"), "{err}");
    }

    #[test]
    fn huge_header_is_refused_before_decoding() {
        // A valid 1×1 PNG whose header claims 20,000 × 20,000: refused on the header alone.
        let mut png_bytes = sample().to_png().unwrap();
        png_bytes[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        png_bytes[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        // fix the IHDR CRC so the decoder reads the header
        let crc = crc32(&png_bytes[12..29]);
        png_bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = Image16::from_png(&png_bytes).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::TooLarge {
                    width: 20_000,
                    height: 20_000
                }
            ),
            "{err}"
        );
    }

    /// CRC-32 (the PNG chunk checksum), bitwise: only for forging headers in tests.
    pub(crate) fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
