//! `borderlens-embed`: the all-MiniLM-L6-v2 sentence encoder on CPU, run through candle from a
//! local folder (the safetensors, `config.json` and `tokenizer.json` that
//! `scripts/install-minilm.sh` puts in `models/all-MiniLM-L6-v2`), behind
//! [`borderlens_hs::TextEncoder`].
//!
//! Owns: loading and checking the model folder, tokenisation (WordPiece, truncated at 256
//! tokens as sentence-transformers does), the BERT forward pass (candle-transformers' BERT),
//! mean pooling over the attention mask and L2 normalisation, batching by length, and the
//! encoder id ("all-MiniLM-L6-v2@" + the first 12 hex digits of the safetensors' SHA-256).
//!
//! Must not touch: HS codes, indexes and calibration (crate `hs` owns what vectors mean),
//! storage, HTTP, the network (the weights are never fetched at run time: a missing folder is
//! an error naming the folder and the install command), GPUs (CPU only, no CUDA/MKL features).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

/// The folder name under `models/`, and the id's prefix.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// The environment variable naming the model folder.
pub const DIR_ENV: &str = "BORDERLENS_MINILM_DIR";
/// The one-line install, named in every "not found" error.
pub const INSTALL_COMMAND: &str = "scripts/install-minilm.sh";
/// Longest token sequence (special tokens included), as sentence-transformers'
/// `max_seq_length` for this model; longer texts are truncated.
pub const MAX_TOKENS: usize = 256;
/// Length of the vectors.
pub const DIM: usize = 384;
/// Sequences per forward pass: large enough to keep the matrix products busy, small enough
/// that a batch of 256-token texts stays in a few tens of MB.
const BATCH: usize = 32;

/// What can go wrong; each message names the file or folder at fault.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model folder or one of its files is missing.
    #[error("{0}")]
    NotFound(String),
    /// A file of the folder cannot be read or is not what the encoder expects.
    #[error("{0}")]
    Model(String),
    /// Tokenisation or the forward pass failed.
    #[error("{0}")]
    Encode(String),
}

/// The sentence encoder.
pub struct SentenceEncoder {
    dir: PathBuf,
    model: BertModel,
    tokenizer: Tokenizer,
    id: String,
    dim: usize,
    device: Device,
}

/// The repository root this crate was built in (`crates/embed/../..`).
fn build_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Folders `locate_and_load` tries, in order: `$BORDERLENS_MINILM_DIR` alone when set; else
/// `models/all-MiniLM-L6-v2` under the current folder and its parents, then under the
/// repository root this binary was built from.
pub fn candidate_dirs() -> Vec<PathBuf> {
    if let Some(d) = std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(d)];
    }
    let mut out = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        for a in cwd.ancestors() {
            out.push(a.join("models").join(MODEL_NAME));
        }
    }
    out.push(build_root().join("models").join(MODEL_NAME));
    out
}

impl SentenceEncoder {
    /// Finds the model folder ([`candidate_dirs`]) and loads it. The error names every folder
    /// tried and the install command.
    pub fn locate_and_load() -> Result<SentenceEncoder, EmbedError> {
        let dirs = candidate_dirs();
        match dirs.iter().find(|d| d.join("model.safetensors").is_file()) {
            Some(d) => SentenceEncoder::load(d),
            None => Err(EmbedError::NotFound(format!(
                "{MODEL_NAME} not found (looked in {}); install it with `{INSTALL_COMMAND}` \
                 from the repository root, or set {DIR_ENV} to its folder",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Loads the encoder from a folder holding `model.safetensors`, `config.json` and
    /// `tokenizer.json`.
    pub fn load(dir: &Path) -> Result<SentenceEncoder, EmbedError> {
        if !dir.is_dir() {
            return Err(EmbedError::NotFound(format!(
                "{}: no such folder; install {MODEL_NAME} with `{INSTALL_COMMAND}` from the \
                 repository root (it puts the model in models/{MODEL_NAME})",
                dir.display()
            )));
        }
        let file = |name: &str| -> Result<PathBuf, EmbedError> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(EmbedError::NotFound(format!(
                    "{}: missing; the folder is not a complete {MODEL_NAME} \
                     (reinstall with `{INSTALL_COMMAND}`)",
                    p.display()
                )))
            }
        };
        let (weights_path, config_path, tokenizer_path) = (
            file("model.safetensors")?,
            file("config.json")?,
            file("tokenizer.json")?,
        );
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| EmbedError::Model(format!("{}: {e}", config_path.display())))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| EmbedError::Model(format!("{}: {e}", config_path.display())))?;
        if config.hidden_size != DIM || config.max_position_embeddings < MAX_TOKENS {
            return Err(EmbedError::Model(format!(
                "{}: hidden_size {} and max_position_embeddings {}, where {MODEL_NAME} has {DIM} \
                 and at least {MAX_TOKENS}",
                config_path.display(),
                config.hidden_size,
                config.max_position_embeddings
            )));
        }
        check_pooling(dir)?;
        let weights = std::fs::read(&weights_path)
            .map_err(|e| EmbedError::Model(format!("{}: {e}", weights_path.display())))?;
        let digest = Sha256::digest(&weights);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| EmbedError::Model(format!("{}: {e}", weights_path.display())))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| EmbedError::Model(format!("{}: {e}", weights_path.display())))?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| EmbedError::Model(format!("{}: {e}", tokenizer_path.display())))?;
        // The shipped tokenizer.json pads every text to 128 tokens and truncates there;
        // sentence-transformers truncates at 256 and pads per batch (done in `encode`).
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| EmbedError::Model(format!("{}: {e}", tokenizer_path.display())))?;
        tokenizer.with_padding(None);
        Ok(SentenceEncoder {
            dir: dir.to_path_buf(),
            model,
            tokenizer,
            id: format!("{MODEL_NAME}@{}", &hex[..12]),
            dim: config.hidden_size,
            device,
        })
    }

    /// The folder it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// "all-MiniLM-L6-v2@" and the first 12 hex digits of the safetensors' SHA-256.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Length of the vectors (384).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Token ids of a text as the model reads it ([CLS] … [SEP], at most [`MAX_TOKENS`]).
    pub fn tokens(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        self.tokenizer
            .encode_fast(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EmbedError::Encode(format!("tokenizing '{}': {e}", preview(text))))
    }

    /// One unit vector per text, in order. Texts are tokenised, sorted by length and run in
    /// batches padded to their longest member, so short descriptions are not padded to long
    /// ones. Any text is accepted: empty text is [CLS] [SEP], long text is truncated.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.tokens(t))
            .collect::<Result<_, _>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let vs = self
                .forward(&seqs)
                .map_err(|e| EmbedError::Encode(format!("forward pass: {e}")))?;
            for (&i, v) in chunk.iter().zip(vs) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One batch: pad, run BERT, mean-pool over the mask, normalise.
    fn forward(&self, seqs: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let n = seqs.len();
        let len = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; n * len];
        let mut mask = vec![0u32; n * len];
        for (r, s) in seqs.iter().enumerate() {
            ids[r * len..r * len + s.len()].copy_from_slice(s);
            mask[r * len..r * len + s.len()].fill(1);
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (n, len, dim)
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
        let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (n, dim)
                                                        // sentence-transformers clamps the token count at 1e-9; every row has [CLS] and [SEP].
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (n, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&norms)?.to_vec2::<f32>()
    }
}

/// The pooling sentence-transformers applies must be the mean of the tokens: other poolings
/// would give other vectors under the same weights.
fn check_pooling(dir: &Path) -> Result<(), EmbedError> {
    let p = dir.join("1_Pooling").join("config.json");
    let Ok(text) = std::fs::read_to_string(&p) else {
        // Folders with only the three files the encoder needs: mean pooling is this model's.
        return Ok(());
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| EmbedError::Model(format!("{}: {e}", p.display())))?;
    if v.get("pooling_mode_mean_tokens") != Some(&serde_json::Value::Bool(true)) {
        return Err(EmbedError::Model(format!(
            "{}: pooling is not the mean of the tokens; this encoder only does mean pooling",
            p.display()
        )));
    }
    Ok(())
}

fn preview(text: &str) -> String {
    let p: String = text.chars().take(40).collect();
    if p.len() < text.len() {
        format!("{p}…")
    } else {
        p
    }
}

impl borderlens_hs::TextEncoder for SentenceEncoder {
    fn id(&self) -> String {
        self.id.clone()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, borderlens_hs::HsError> {
        SentenceEncoder::encode(self, texts)
            .map_err(|e| borderlens_hs::HsError::Encoder(format!("{}: {e}", self.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_names_the_folder_and_the_install_command() {
        let dir = std::env::temp_dir().join("borderlens-embed-no-such-model");
        let e = SentenceEncoder::load(&dir).err().unwrap().to_string();
        assert!(e.contains("borderlens-embed-no-such-model"), "{e}");
        assert!(e.contains(INSTALL_COMMAND), "{e}");
    }

    #[test]
    fn an_incomplete_folder_names_the_missing_file() {
        let dir =
            std::env::temp_dir().join(format!("borderlens-embed-partial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.safetensors"), b"not weights").unwrap();
        let e = SentenceEncoder::load(&dir).err().unwrap().to_string();
        assert!(e.contains("config.json") && e.contains("missing"), "{e}");
        std::fs::write(dir.join("config.json"), b"{}").unwrap();
        std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
        let e = SentenceEncoder::load(&dir).err().unwrap().to_string();
        assert!(e.contains("config.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_environment_variable_is_the_only_place_looked_when_set() {
        // Only this test sets the variable in this process's test binary.
        std::env::set_var(DIR_ENV, "/nonexistent/minilm");
        let dirs = candidate_dirs();
        let e = SentenceEncoder::locate_and_load()
            .err()
            .unwrap()
            .to_string();
        std::env::remove_var(DIR_ENV);
        assert_eq!(dirs, vec![PathBuf::from("/nonexistent/minilm")]);
        assert!(
            e.contains("/nonexistent/minilm") && e.contains(INSTALL_COMMAND),
            "{e}"
        );
        assert!(candidate_dirs().len() > 1);
    }
}
