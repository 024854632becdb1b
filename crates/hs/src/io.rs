//! The model file: a small hand-written little-endian format (magic, format version, SHA-256 of
//! the body, body), because the index is a few large arrays of integers that JSON would triple in
//! size, and a general serialisation crate would add a dependency for four array types. Small
//! structured parts (settings, calibration, reports) are JSON blocks inside the body.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::HsError;

/// First bytes of every model file.
pub const MAGIC: &[u8; 8] = b"BLHSMDL\n";
/// Version of the file layout; a reader refuses any other.
pub const FORMAT_VERSION: u32 = 1;

/// Writes a body.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }
    pub fn json<T: Serialize>(&mut self, v: &T) {
        let text = serde_json::to_vec(v).unwrap_or_default();
        self.bytes(&text);
    }
    pub fn u32s(&mut self, v: &[u32]) {
        self.u32(v.len() as u32);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn u16s(&mut self, v: &[u16]) {
        self.u32(v.len() as u32);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn f32s(&mut self, v: &[f32]) {
        self.u32(v.len() as u32);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    /// The whole file: magic, format version, digest of the body, body. Returns it with the
    /// digest in hex.
    pub fn finish(self) -> (Vec<u8>, String) {
        let digest = Sha256::digest(&self.buf);
        let mut out = Vec::with_capacity(self.buf.len() + 48);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&digest);
        out.extend_from_slice(&self.buf);
        (out, hex(&digest))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a body, every read checked against the end.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks magic, format version and digest; returns the body reader and the digest in hex.
    pub fn open(file: &'a [u8]) -> Result<(Reader<'a>, String), HsError> {
        if file.len() < 44 || &file[..8] != MAGIC {
            return Err(HsError::Model("not a borderlens HS model file".into()));
        }
        let version = u32::from_le_bytes([file[8], file[9], file[10], file[11]]);
        if version != FORMAT_VERSION {
            return Err(HsError::Model(format!(
                "model file format {version}, this build reads format {FORMAT_VERSION}: retrain with `borderlens hs train`"
            )));
        }
        let digest = &file[12..44];
        let body = &file[44..];
        if Sha256::digest(body).as_slice() != digest {
            return Err(HsError::Model(
                "model file is corrupt (digest mismatch)".into(),
            ));
        }
        Ok((Reader { buf: body, pos: 0 }, hex(digest)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], HsError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| HsError::Model("model file ends early".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u32(&mut self) -> Result<u32, HsError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn f32(&mut self) -> Result<f32, HsError> {
        Ok(f32::from_bits(self.u32()?))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], HsError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn json<T: DeserializeOwned>(&mut self) -> Result<T, HsError> {
        let b = self.bytes()?;
        serde_json::from_slice(b).map_err(|e| HsError::Model(format!("model metadata: {e}")))
    }
    pub fn u32s(&mut self) -> Result<Vec<u32>, HsError> {
        let n = self.u32()? as usize;
        let b = self.take(
            n.checked_mul(4)
                .ok_or_else(|| HsError::Model("array too long".into()))?,
        )?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    pub fn u16s(&mut self) -> Result<Vec<u16>, HsError> {
        let n = self.u32()? as usize;
        let b = self.take(
            n.checked_mul(2)
                .ok_or_else(|| HsError::Model("array too long".into()))?,
        )?;
        Ok(b.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect())
    }
    pub fn f32s(&mut self) -> Result<Vec<f32>, HsError> {
        Ok(self.u32s()?.into_iter().map(f32::from_bits).collect())
    }
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
}
