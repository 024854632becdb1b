//! Anonymisation of scans for sharing: keyed pseudonyms for the personal fields of the metadata
//! ([`crate::scan::PERSONAL_FIELDS`]), free text removed, image regions masked, a log kept with
//! the scan ([`AnonymisationLog`]).
//!
//! A pseudonym is `<kind>-<first 16 bytes of HMAC-SHA256(key, kind ‖ 0 ‖ value), hex>`, the
//! value first trimmed, its inner whitespace collapsed and lower-cased, so `Maria  Rossi` and
//! `maria rossi` give one pseudonym and a name is linked across scans (and across senders and
//! recipients) under one key, while nobody without the key can test a guess. Free-text fields
//! are removed: no pseudonym can keep their meaning without their content.
//! A masked region is set to full transmission (65535, air) in every energy channel of its view,
//! so burned-in text or a driver's cab leaves no trace in any channel; a region overlapping a
//! true object is refused (the truth would no longer match the pixels).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::image::Image16;
use crate::scan::{
    AnonymisationLog, FieldChange, MaskedRegion, PersonalKind, ScanRecord, Source, Treatment,
    PERSONAL_FIELDS,
};

/// Shortest key accepted, bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// A rectangle to mask, in pixels of every view: left, top, width, height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaskRect {
    /// left column
    pub x: u32,
    /// top row
    pub y: u32,
    /// width
    pub width: u32,
    /// height
    pub height: u32,
}

impl MaskRect {
    /// Parses `x,y,w,h` (non-negative integers, width and height at least 1).
    pub fn parse(text: &str) -> Result<MaskRect, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let numbers: Result<Vec<u32>, _> = parts.iter().map(|p| p.parse::<u32>()).collect();
        match numbers.as_deref() {
            Ok(&[x, y, width, height]) if width > 0 && height > 0 => Ok(MaskRect {
                x,
                y,
                width,
                height,
            }),
            _ => Err(format!(
                "mask '{text}' is not x,y,w,h (four whole numbers of pixels, width and height at least 1)"
            )),
        }
    }

    /// The rectangle clipped to a `width × height` image, or `None` when it lies outside.
    fn clip(&self, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
        let x1 = self.x.saturating_add(self.width).min(width);
        let y1 = self.y.saturating_add(self.height).min(height);
        (self.x < x1 && self.y < y1).then(|| (self.x, self.y, x1 - self.x, y1 - self.y))
    }
}

/// The user's key and the regions to mask.
pub struct Anonymiser {
    key: Vec<u8>,
    masks: Vec<MaskRect>,
}

impl std::fmt::Debug for Anonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Anonymiser")
            .field("key_id", &self.key_id())
            .field("masks", &self.masks)
            .finish()
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn normalise(value: &str) -> String {
    value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl Anonymiser {
    /// A key of at least [`MIN_KEY_BYTES`] bytes and the regions to mask (possibly none).
    pub fn new(key: &[u8], masks: Vec<MaskRect>) -> Result<Anonymiser, String> {
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the anonymisation key has {} bytes; use at least {MIN_KEY_BYTES} (e.g. 32 random bytes: head -c 32 /dev/urandom > key)",
                key.len()
            ));
        }
        Ok(Anonymiser {
            key: key.to_vec(),
            masks,
        })
    }

    /// The key from a file: its bytes, without a final line break.
    pub fn key_from_file_bytes(bytes: &[u8]) -> &[u8] {
        let mut end = bytes.len();
        while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        &bytes[..end]
    }

    /// The regions to mask.
    pub fn masks(&self) -> &[MaskRect] {
        &self.masks
    }

    /// Fingerprint of the key: 16 hex of the HMAC of a fixed text under it.
    pub fn key_id(&self) -> String {
        let mac = hmac(&self.key, &[b"borderlens-nii key id"]);
        borderlens_domain::hex::encode(&mac[..8])
    }

    /// The pseudonym of `value` as a `kind` (see the module documentation).
    pub fn pseudonym(&self, kind: PersonalKind, value: &str) -> String {
        let mac = hmac(
            &self.key,
            &[kind.word().as_bytes(), &[0], normalise(value).as_bytes()],
        );
        format!(
            "{}-{}",
            kind.word(),
            borderlens_domain::hex::encode(&mac[..16])
        )
    }

    /// The pseudonym of an annotator's name (`annotator-…`).
    pub fn annotator(&self, name: &str) -> String {
        let mac = hmac(&self.key, &[b"annotator", &[0], name.trim().as_bytes()]);
        format!("annotator-{}", borderlens_domain::hex::encode(&mac[..16]))
    }

    /// Anonymises a scan's record: personal fields pseudonymised or removed, the regions to
    /// mask clipped to each view and logged (the pixels are changed by [`mask_pixels`]), the
    /// log set — or says why it cannot (the field, the reason: a mask over a true object).
    /// A field already pseudonymised is left as it is; a scan anonymised before keeps its
    /// earlier changes in the log.
    pub fn apply(&self, record: &ScanRecord, at: &str) -> Result<ScanRecord, (String, String)> {
        let mut out = record.clone();
        let synthetic = record.provenance.source == Source::Synthetic;
        let mut log = record.anonymisation.clone().unwrap_or(AnonymisationLog {
            at: at.to_string(),
            method: "hmac-sha256".to_string(),
            key_id: self.key_id(),
            changes: Vec::new(),
            masked: Vec::new(),
            annotators_pseudonymised: 0,
        });
        let earlier = log.changes.len() + log.masked.len();
        for field in PERSONAL_FIELDS {
            if synthetic && !field.synthetic_too {
                continue;
            }
            let Some(slot) = out.metadata.personal_mut(field.name) else {
                continue;
            };
            let Some(value) = slot.take() else {
                continue;
            };
            *slot = match field.treatment {
                Treatment::Remove => None,
                Treatment::Pseudonymise if crate::scan::is_pseudonym(&value, field.kind) => {
                    *slot = Some(value);
                    continue;
                }
                Treatment::Pseudonymise => Some(self.pseudonym(field.kind, &value)),
            };
            log.changes.push(FieldChange {
                field: format!("metadata.{}", field.name),
                action: field.treatment,
            });
        }
        for (v, view) in record.views.iter().enumerate() {
            let Some(first) = view.channels.first() else {
                continue;
            };
            for rect in &self.masks {
                let Some((x, y, w, h)) = rect.clip(first.image.width, first.image.height) else {
                    continue;
                };
                let region = crate::geometry::BoxPx {
                    x0: f64::from(x),
                    y0: f64::from(y),
                    x1: f64::from(x + w),
                    y1: f64::from(y + h),
                };
                if let Some((i, _)) = record
                    .truth
                    .iter()
                    .enumerate()
                    .find(|(_, t)| t.view == v && t.bbox.iou(&region) > 0.0)
                {
                    return Err((
                        format!("truth[{i}].bbox"),
                        format!(
                            "the mask {x},{y},{w},{h} of view {v} covers part of a true object; masking it would leave a box over air"
                        ),
                    ));
                }
                log.masked.push(MaskedRegion {
                    view: v,
                    x,
                    y,
                    width: w,
                    height: h,
                });
            }
        }
        // The log names the key (and time) of the last anonymisation that changed something.
        if record.anonymisation.is_none() || log.changes.len() + log.masked.len() > earlier {
            log.at = at.to_string();
            log.key_id = self.key_id();
        }
        out.anonymisation = Some(log);
        Ok(out)
    }
}

/// Sets the regions of `regions` that belong to view `view` to full transmission (65535) in
/// `image`, one energy channel of that view. Returns whether a pixel was in a region.
pub fn mask_pixels(image: &mut Image16, view: usize, regions: &[MaskedRegion]) -> bool {
    let mut any = false;
    let width = image.width as usize;
    for r in regions.iter().filter(|r| r.view == view) {
        // Saturating: a region read from an imported log may be any size.
        let x1 = r.x.saturating_add(r.width).min(image.width) as usize;
        let y1 = r.y.saturating_add(r.height).min(image.height) as usize;
        for row in r.y as usize..y1 {
            let start = row * width + r.x as usize;
            if start < row * width + x1 {
                image.data[start..row * width + x1].fill(u16::MAX);
                any = true;
            }
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate_scan, GeneratorParams};
    use crate::library::prepare;

    fn real_scan() -> (ScanRecord, Vec<Vec<Image16>>) {
        let params = GeneratorParams {
            width: 48,
            height: 48,
            threat_rate: 0.0,
            ..GeneratorParams::default()
        };
        let scan = generate_scan(&params, 4, 0);
        let images = vec![vec![scan.low.clone(), scan.high.clone()]];
        let mut record = prepare(scan).unwrap().record;
        record.provenance.source = Source::Real;
        record.provenance.generator = None;
        record.clutter = None;
        let m = &mut record.metadata;
        m.consignee_name = Some("Maria  Rossi".into());
        m.consignor_name = Some("maria rossi".into());
        m.contact_phone = Some("+39 06 1234 5678".into());
        m.consignee_address = Some("Via Roma 1, 00100 Roma".into());
        m.notes = Some("driver said his name is Jan".into());
        (record, images)
    }

    #[test]
    fn personal_fields_get_keyed_pseudonyms_and_free_text_goes() {
        let (record, _) = real_scan();
        assert!(record.privacy_problem().unwrap().contains("consignee_name"));
        let a = Anonymiser::new(b"0123456789abcdef-key", vec![]).unwrap();
        let out = a.apply(&record, "2026-12-06T20:00:00Z").unwrap();
        let m = &out.metadata;
        // Same person, spelled differently, as sender and recipient: one pseudonym.
        assert_eq!(m.consignee_name, m.consignor_name);
        assert!(crate::scan::is_pseudonym(
            m.consignee_name.as_ref().unwrap(),
            PersonalKind::Name
        ));
        assert!(m.contact_phone.as_ref().unwrap().starts_with("phone-"));
        assert!(m
            .consignee_address
            .as_ref()
            .unwrap()
            .starts_with("address-"));
        assert_eq!(m.notes, None);
        assert_eq!(m.declared_contents, None);
        assert!(out.anonymised(), "{:?}", out.privacy_problem());
        out.validate().unwrap();
        let log = out.anonymisation.as_ref().unwrap();
        assert_eq!(log.changes.len(), 6);
        assert_eq!(log.key_id, a.key_id());
        // Another key, another pseudonym; the same key again, the same one (idempotent).
        let b = Anonymiser::new(b"another key, 16+ bytes", vec![]).unwrap();
        let other = b.apply(&record, "t").unwrap();
        assert_ne!(other.metadata.consignee_name, m.consignee_name);
        let again = a.apply(&out, "t").unwrap();
        assert_eq!(again.metadata, out.metadata);
        // A short key is refused.
        assert!(Anonymiser::new(b"short", vec![]).is_err());
        // A record marked anonymised that still holds a name does not validate.
        let mut forged = out.clone();
        forged.metadata.driver_name = Some("Jan Kowalski".into());
        let e = forged.validate().unwrap_err();
        assert_eq!(e.field, "metadata.driver_name");
    }

    #[test]
    fn masks_set_every_channel_to_air_and_spare_the_rest() {
        let (record, mut images) = real_scan();
        let before = images.clone();
        let a = Anonymiser::new(
            &[7u8; 32],
            vec![
                MaskRect::parse("40,2,20,5").unwrap(),
                MaskRect::parse("100,100,5,5").unwrap(),
            ],
        )
        .unwrap();
        let out = a.apply(&record, "t").unwrap();
        let log = out.anonymisation.unwrap();
        for image in images[0].iter_mut() {
            assert!(mask_pixels(image, 0, &log.masked));
        }
        // Clipped to the image; the region outside it is not logged.
        assert_eq!(
            log.masked,
            vec![MaskedRegion {
                view: 0,
                x: 40,
                y: 2,
                width: 8,
                height: 5
            }]
        );
        for (img, old) in images[0].iter().zip(&before[0]) {
            for y in 0..48usize {
                for x in 0..48usize {
                    let inside = (40..48).contains(&x) && (2..7).contains(&y);
                    let (new, was) = (img.data[y * 48 + x], old.data[y * 48 + x]);
                    if inside {
                        assert_eq!(new, u16::MAX);
                    } else {
                        assert_eq!(new, was);
                    }
                }
            }
        }
        assert!(MaskRect::parse("1,2,3").is_err());
        assert!(MaskRect::parse("1,2,0,4").is_err());
    }
}
