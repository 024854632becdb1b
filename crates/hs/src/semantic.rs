//! The semantic classifier and the combination, written over any sentence encoder
//! ([`TextEncoder`]); the all-MiniLM-L6-v2 encoder (crate `embed`) plugs in here. This crate
//! ships no encoder: what runs without one is the lexical model.
//!
//! The semantic index mirrors the lexical one with dense vectors: a subheading's centroid is the
//! embedding of its text plus `example_weight` × the mean embedding of its labelled descriptions;
//! a heading's and a chapter's add their children's mean. Similarities are dot products of unit
//! vectors. The combination feeds both models' three similarities into one hierarchy-aware
//! softmax whose six weights are fitted on held-out descriptions ([`Calibration::fit`]), so each
//! model's weight is learned, not chosen.

use crate::lexical::{Example, LexicalConfig, LexicalIndex};
use crate::nomenclature::Nomenclature;
use crate::scoring::{Calibration, LevelScores, Probabilities};
use crate::HsError;

/// A sentence encoder: texts in, L2-normalised vectors of `dim()` numbers out.
pub trait TextEncoder {
    /// Identifies the encoder and its weights (e.g. "all-MiniLM-L6-v2@<sha256>"), recorded
    /// beside every result it contributes to.
    fn id(&self) -> String;
    /// Length of each vector.
    fn dim(&self) -> usize;
    /// One unit vector per text, in order. An error names what failed.
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, HsError>;
}

/// An encoder that remembers what it encoded: the evaluation builds three semantic indexes over
/// the same nomenclature and mostly the same descriptions, and a transformer on CPU should encode
/// each text once. Same id and vectors as the encoder it wraps.
pub struct CachedEncoder<'a, E: TextEncoder + ?Sized> {
    inner: &'a E,
    cache: std::sync::Mutex<std::collections::HashMap<String, Vec<f32>>>,
}

impl<'a, E: TextEncoder + ?Sized> CachedEncoder<'a, E> {
    /// Wraps an encoder.
    pub fn new(inner: &'a E) -> Self {
        CachedEncoder {
            inner,
            cache: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
    /// Texts remembered.
    pub fn len(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
    /// Whether nothing is remembered yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<E: TextEncoder + ?Sized> TextEncoder for CachedEncoder<'_, E> {
    fn id(&self) -> String {
        self.inner.id()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, HsError> {
        let poisoned = |_| HsError::Encoder("cache lock poisoned".into());
        let missing: Vec<&str> = {
            let cache = self.cache.lock().map_err(poisoned)?;
            let mut seen = std::collections::HashSet::new();
            texts
                .iter()
                .copied()
                .filter(|t| !cache.contains_key(*t) && seen.insert(*t))
                .collect()
        };
        if !missing.is_empty() {
            let vs = self.inner.encode(&missing)?;
            if vs.len() != missing.len() {
                return Err(HsError::Encoder(format!(
                    "{} answered {} vectors for {} texts",
                    self.inner.id(),
                    vs.len(),
                    missing.len()
                )));
            }
            let mut cache = self.cache.lock().map_err(poisoned)?;
            for (t, v) in missing.into_iter().zip(vs) {
                cache.insert(t.to_string(), v);
            }
        }
        let cache = self.cache.lock().map_err(poisoned)?;
        texts
            .iter()
            .map(|t| {
                cache
                    .get(*t)
                    .cloned()
                    .ok_or_else(|| HsError::Encoder(format!("no vector for '{t}'")))
            })
            .collect()
    }
}

/// Centroids of encoded texts per subheading, heading and chapter.
pub struct SemanticIndex {
    /// The encoder's id.
    pub encoder: String,
    dim: usize,
    c6: Vec<f32>,
    c4: Vec<f32>,
    c2: Vec<f32>,
}

fn add_scaled(acc: &mut [f32], v: &[f32], s: f32) {
    for (a, x) in acc.iter_mut().zip(v) {
        *a += s * x;
    }
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        for x in v.iter_mut() {
            *x /= n;
        }
    }
}

fn mean_direction(dim: usize, vs: &[&[f32]]) -> Vec<f32> {
    let mut acc = vec![0.0; dim];
    for v in vs {
        add_scaled(&mut acc, v, 1.0);
    }
    unit(&mut acc);
    acc
}

/// Encodes texts in batches, checking the encoder's answers.
pub fn encode_all<E: TextEncoder + ?Sized>(
    encoder: &E,
    texts: &[&str],
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>, HsError> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(batch.max(1)) {
        let vs = encoder.encode(chunk)?;
        if vs.len() != chunk.len()
            || vs
                .iter()
                .any(|v| v.len() != encoder.dim() || v.iter().any(|x| !x.is_finite()))
        {
            return Err(HsError::Model(format!(
                "encoder {} answered {} vectors for {} texts, or vectors not of length {} or not finite",
                encoder.id(),
                vs.len(),
                chunk.len(),
                encoder.dim()
            )));
        }
        out.extend(vs);
        progress(out.len(), texts.len());
    }
    Ok(out)
}

impl SemanticIndex {
    /// Encodes the nomenclature and the labelled descriptions and builds the centroids (same
    /// weights as the lexical index: `example_weight`, `child_weight`).
    pub fn build<E: TextEncoder + ?Sized>(
        encoder: &E,
        nom: &Nomenclature,
        examples: &[Example<'_>],
        config: &LexicalConfig,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<SemanticIndex, HsError> {
        let dim = encoder.dim();
        let mut texts: Vec<&str> = Vec::new();
        texts.extend(nom.chapters.iter().map(|e| e.text.as_str()));
        texts.extend(nom.headings.iter().map(|e| e.text.as_str()));
        texts.extend(nom.subheadings.iter().map(|e| e.text.as_str()));
        texts.extend(examples.iter().map(|(t, _)| *t));
        let vs = encode_all(encoder, &texts, 64, progress)?;
        let (n2, n4, n6) = (
            nom.chapters.len(),
            nom.headings.len(),
            nom.subheadings.len(),
        );
        let (ch, rest) = vs.split_at(n2);
        let (hd, rest) = rest.split_at(n4);
        let (s6, ex) = rest.split_at(n6);
        let mut ex6: Vec<Vec<&[f32]>> = vec![Vec::new(); n6];
        let mut ex4: Vec<Vec<&[f32]>> = vec![Vec::new(); n4];
        let mut ex2: Vec<Vec<&[f32]>> = vec![Vec::new(); n2];
        for (v, (_, c)) in ex.iter().zip(examples) {
            let h = nom.hs6_heading[*c];
            ex6[*c].push(v);
            ex4[h].push(v);
            ex2[nom.heading_chapter[h]].push(v);
        }
        let mut kids4: Vec<Vec<&[f32]>> = vec![Vec::new(); n4];
        for (c, v) in s6.iter().enumerate() {
            kids4[nom.hs6_heading[c]].push(v);
        }
        let mut kids2: Vec<Vec<&[f32]>> = vec![Vec::new(); n2];
        for (h, v) in hd.iter().enumerate() {
            kids2[nom.heading_chapter[h]].push(v);
        }
        let centroid =
            |own: &[f32], kids: Option<&Vec<&[f32]>>, exs: &Vec<&[f32]>, out: &mut Vec<f32>| {
                let mut v = own.to_vec();
                if let Some(k) = kids {
                    add_scaled(&mut v, &mean_direction(dim, k), config.child_weight);
                }
                if !exs.is_empty() {
                    add_scaled(&mut v, &mean_direction(dim, exs), config.example_weight);
                }
                unit(&mut v);
                out.extend(v);
            };
        let mut c6 = Vec::with_capacity(n6 * dim);
        for c in 0..n6 {
            centroid(&s6[c], None, &ex6[c], &mut c6);
        }
        let mut c4 = Vec::with_capacity(n4 * dim);
        for h in 0..n4 {
            centroid(&hd[h], Some(&kids4[h]), &ex4[h], &mut c4);
        }
        let mut c2 = Vec::with_capacity(n2 * dim);
        for c in 0..n2 {
            centroid(&ch[c], Some(&kids2[c]), &ex2[c], &mut c2);
        }
        Ok(SemanticIndex {
            encoder: encoder.id(),
            dim,
            c6,
            c4,
            c2,
        })
    }

    /// Writes the centroids (the encoder id and length are the caller's to record).
    pub(crate) fn write(&self, w: &mut crate::io::Writer) {
        w.f32s(&self.c6);
        w.f32s(&self.c4);
        w.f32s(&self.c2);
    }

    /// Reads centroids written by [`SemanticIndex::write`], checking their sizes against the
    /// nomenclature and that they are finite.
    pub(crate) fn read(
        r: &mut crate::io::Reader<'_>,
        encoder: String,
        dim: usize,
    ) -> Result<SemanticIndex, HsError> {
        let nom = Nomenclature::hs2022();
        let (c6, c4, c2) = (r.f32s()?, r.f32s()?, r.f32s()?);
        let sizes = [
            (c6.len(), nom.subheadings.len()),
            (c4.len(), nom.headings.len()),
            (c2.len(), nom.chapters.len()),
        ];
        if dim == 0
            || sizes.iter().any(|(got, n)| *got != n * dim)
            || [&c6, &c4, &c2]
                .iter()
                .any(|c| c.iter().any(|x| !x.is_finite()))
        {
            return Err(HsError::Model(format!(
                "semantic index of {encoder}: centroid sizes {:?} do not fit the nomenclature at {dim} numbers, or not finite",
                sizes.map(|s| s.0)
            )));
        }
        Ok(SemanticIndex {
            encoder,
            dim,
            c6,
            c4,
            c2,
        })
    }

    /// Similarities of an encoded description to every centroid.
    pub fn level_scores(&self, v: &[f32]) -> LevelScores {
        let dots = |m: &[f32]| {
            m.chunks_exact(self.dim)
                .map(|c| c.iter().zip(v).map(|(a, b)| a * b).sum())
                .collect()
        };
        LevelScores {
            s6: dots(&self.c6),
            s4: dots(&self.c4),
            s2: dots(&self.c2),
        }
    }
}

/// The semantic model alone or combined with the lexical one, with its calibration.
pub struct Combined<'a, E: TextEncoder + ?Sized> {
    /// The encoder.
    pub encoder: &'a E,
    /// Its index.
    pub semantic: SemanticIndex,
    /// The lexical index (`None`: the semantic model alone).
    pub lexical: Option<&'a LexicalIndex>,
    /// Weights: three per model (lexical first when present).
    pub calibration: Calibration,
}

impl<'a, E: TextEncoder + ?Sized> Combined<'a, E> {
    /// Score sets of descriptions, in the calibration's model order.
    pub fn score_sets(&self, descriptions: &[&str]) -> Result<Vec<Vec<LevelScores>>, HsError> {
        let vs = encode_all(self.encoder, descriptions, 64, &mut |_, _| {})?;
        Ok(descriptions
            .iter()
            .zip(vs)
            .map(|(d, v)| {
                let mut sets = Vec::with_capacity(2);
                if let Some(l) = self.lexical {
                    sets.push(l.level_scores(d));
                }
                sets.push(self.semantic.level_scores(&v));
                sets
            })
            .collect())
    }

    /// Fits the calibration on held-out descriptions with their subheading indices.
    pub fn fit(&mut self, nom: &Nomenclature, held_out: &[(&str, usize)]) -> Result<(), HsError> {
        let texts: Vec<&str> = held_out.iter().map(|(t, _)| *t).collect();
        let sets = self.score_sets(&texts)?;
        let examples: Vec<(Vec<LevelScores>, usize)> = sets
            .into_iter()
            .zip(held_out)
            .map(|(s, (_, y))| (s, *y))
            .collect();
        let models = if self.lexical.is_some() { 2 } else { 1 };
        self.calibration = Calibration::fit(nom, &examples, &Calibration::start(models));
        Ok(())
    }

    /// Calibrated probabilities of descriptions.
    pub fn probabilities(
        &self,
        nom: &Nomenclature,
        descriptions: &[&str],
    ) -> Result<Vec<Probabilities>, HsError> {
        Ok(self
            .score_sets(descriptions)?
            .iter()
            .map(|s| {
                let refs: Vec<&LevelScores> = s.iter().collect();
                self.calibration.probabilities(nom, &refs)
            })
            .collect())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// TEST ENCODER, for testing the plumbing only: a bag of lower-case letters and letter
    /// pairs hashed into 64 numbers, L2-normalised. It knows nothing of meaning.
    pub(crate) struct BagOfCharsTestEncoder;

    impl TextEncoder for BagOfCharsTestEncoder {
        fn id(&self) -> String {
            "test-bag-of-chars-64".into()
        }
        fn dim(&self) -> usize {
            64
        }
        fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, HsError> {
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0.0f32; 64];
                    let chars: Vec<char> = t
                        .to_lowercase()
                        .chars()
                        .filter(|c| c.is_alphabetic())
                        .collect();
                    for c in &chars {
                        v[(*c as usize) % 64] += 1.0;
                    }
                    for w in chars.windows(2) {
                        v[(w[0] as usize * 31 + w[1] as usize) % 64] += 0.5;
                    }
                    unit(&mut v);
                    v
                })
                .collect())
        }
    }

    struct BrokenEncoder;
    impl TextEncoder for BrokenEncoder {
        fn id(&self) -> String {
            "broken".into()
        }
        fn dim(&self) -> usize {
            8
        }
        fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, HsError> {
            Ok(texts.iter().map(|_| vec![0.0; 3]).collect())
        }
    }

    #[test]
    fn semantic_index_scores_a_code_text_highest_on_itself() {
        let nom = Nomenclature::hs2022();
        let idx = SemanticIndex::build(
            &BagOfCharsTestEncoder,
            nom,
            &[],
            &LexicalConfig::default(),
            &mut |_, _| {},
        )
        .unwrap();
        let i = nom.hs6_idx(crate::Hs6(10121)).unwrap();
        let v = BagOfCharsTestEncoder
            .encode(&[&nom.subheadings[i].text])
            .unwrap();
        let s = idx.level_scores(&v[0]);
        assert!((s.s6[i] - 1.0).abs() < 1e-4, "{}", s.s6[i]);
        assert!(s.s6.iter().all(|x| *x <= 1.0001));
        assert_eq!(s.s4.len(), nom.headings.len());
    }

    #[test]
    fn combination_fits_six_weights_and_gives_probabilities() {
        let nom = Nomenclature::hs2022();
        let lexical = LexicalIndex::build(nom, &[], &LexicalConfig::default());
        let semantic = SemanticIndex::build(
            &BagOfCharsTestEncoder,
            nom,
            &[],
            &LexicalConfig::default(),
            &mut |_, _| {},
        )
        .unwrap();
        let mut combined = Combined {
            encoder: &BagOfCharsTestEncoder,
            semantic,
            lexical: Some(&lexical),
            calibration: Calibration::start(2),
        };
        let held: Vec<(&str, usize)> = (0..nom.subheadings.len())
            .step_by(97)
            .map(|i| (nom.subheadings[i].text.as_str(), i))
            .collect();
        combined.fit(nom, &held).unwrap();
        assert_eq!(combined.calibration.models(), 2);
        assert_eq!(combined.calibration.chapter.len(), 6);
        assert_eq!(combined.calibration.fitted_on, held.len());
        let p = combined
            .probabilities(nom, &["horses live pure-bred breeding"])
            .unwrap();
        assert!((p[0].p6.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        // The combination nests the lexical model (semantic weights 0): its fitted likelihood on
        // the same descriptions is at least as good.
        let lexical_sets: Vec<(Vec<LevelScores>, usize)> = held
            .iter()
            .map(|(t, y)| (vec![lexical.level_scores(t)], *y))
            .collect();
        let lexical_only = Calibration::fit(nom, &lexical_sets, &Calibration::start(1));
        assert!(
            combined.calibration.nll <= lexical_only.nll + 1e-6,
            "{} > {}",
            combined.calibration.nll,
            lexical_only.nll
        );
    }

    #[test]
    fn the_cache_encodes_each_text_once_and_answers_the_same_vectors() {
        struct Counting(std::sync::atomic::AtomicUsize);
        impl TextEncoder for Counting {
            fn id(&self) -> String {
                BagOfCharsTestEncoder.id()
            }
            fn dim(&self) -> usize {
                64
            }
            fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, HsError> {
                self.0
                    .fetch_add(texts.len(), std::sync::atomic::Ordering::SeqCst);
                BagOfCharsTestEncoder.encode(texts)
            }
        }
        let inner = Counting(std::sync::atomic::AtomicUsize::new(0));
        let cached = CachedEncoder::new(&inner);
        let a = cached.encode(&["beef", "pork", "beef"]).unwrap();
        let b = cached.encode(&["pork", "lamb"]).unwrap();
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(cached.len(), 3);
        assert_eq!(a[0], a[2]);
        assert_eq!(a[1], b[0]);
        assert_eq!(b[1], BagOfCharsTestEncoder.encode(&["lamb"]).unwrap()[0]);
    }

    #[test]
    fn an_encoder_answering_wrong_sizes_is_an_error() {
        let nom = Nomenclature::hs2022();
        let e = SemanticIndex::build(
            &BrokenEncoder,
            nom,
            &[],
            &LexicalConfig::default(),
            &mut |_, _| {},
        );
        assert!(e.err().unwrap().to_string().contains("broken"));
    }
}
