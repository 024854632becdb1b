//! The lexical model: TF-IDF over hashed word (1–2) and character (3–5) n-grams, and one
//! centroid per subheading, heading and chapter, scored through an inverted index.
//!
//! Why centroids rather than a linear classifier per code: 5,612 subheadings, most with no
//! labelled description, only the nomenclature's own words; a centroid of the code's text and of
//! the descriptions labelled with it (and, for headings and chapters, of their children) uses
//! both, trains in seconds, is deterministic, and its inverted index scores thousands of
//! descriptions a second. The hierarchy and the calibration are in [`crate::scoring`].
//!
//! A subheading's centroid = its text + `example_weight` × the mean of its labelled
//! descriptions; a heading's = its text + `child_weight` × the mean of its subheadings' texts +
//! `example_weight` × the mean of the descriptions below it; a chapter's likewise from its
//! headings. Each centroid keeps its largest weights (`keep_*`), stored as 16-bit fractions.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::nomenclature::Nomenclature;
use crate::scoring::LevelScores;
use crate::text::{self, Features};
use crate::HsError;

/// Settings of the lexical index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LexicalConfig {
    /// Weight of the word block (the character block gets `sqrt(1 − w²)`).
    pub word_weight: f32,
    /// Weight of the labelled descriptions in a centroid, against the code's own text.
    pub example_weight: f32,
    /// Weight of the children's texts in a heading's or chapter's centroid.
    pub child_weight: f32,
    /// Largest weights kept per subheading, heading and chapter centroid.
    pub keep: [usize; 3],
    /// Features found in more than this share of the texts (common character n-grams such as
    /// "ing") get no postings: they weigh little and would make every query walk thousands of
    /// entries. They still count in each vector's norm.
    pub max_df_share: f32,
}

impl Default for LexicalConfig {
    /// Chosen by the held-out likelihood of the calibration halves of both source-held-out
    /// splits (`eval::tuning`), never by the scored halves or the CBP rulings.
    fn default() -> Self {
        LexicalConfig {
            word_weight: 0.5,
            example_weight: 1.0,
            child_weight: 1.0,
            keep: [300, 800, 3000],
            max_df_share: 0.1,
        }
    }
}

/// A labelled description used to build the index: text and subheading index.
pub type Example<'a> = (&'a str, usize);

/// Postings of one level: for each vocabulary feature, the classes whose centroid has it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Postings {
    pub(crate) n_classes: usize,
    pub(crate) offsets: Vec<u32>,
    pub(crate) classes: Vec<u16>,
    pub(crate) weights: Vec<u16>,
}

/// The lexical index.
#[derive(Clone, Debug, PartialEq)]
pub struct LexicalIndex {
    pub(crate) config: LexicalConfig,
    pub(crate) feature_ids: Vec<u32>,
    pub(crate) idf: Vec<f32>,
    pub(crate) default_idf: f32,
    pub(crate) levels: [Postings; 3],
}

/// A sparse vector: (feature id, weight), sorted by id.
pub type Sparse = Vec<(u32, f32)>;

fn counted(ids: &[u32]) -> Vec<(u32, u32)> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
    for id in v {
        match out.last_mut() {
            Some((last, n)) if *last == id => *n += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}

/// TF-IDF vector of features: sublinear counts × idf, each block L2-normalised, blocks weighted.
pub(crate) fn weigh(f: &Features, word_weight: f32, idf: &dyn Fn(u32) -> f32) -> Sparse {
    let char_weight = (1.0 - word_weight * word_weight).max(0.0).sqrt();
    let block = |ids: &[u32], scale: f32| -> Sparse {
        let mut v: Sparse = counted(ids)
            .into_iter()
            .map(|(id, n)| (id, (1.0 + (n as f32).ln()) * idf(id)))
            .collect();
        let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        if norm > 0.0 {
            for (_, w) in v.iter_mut() {
                *w *= scale / norm;
            }
        }
        v
    };
    let (ww, cw) = match (f.words.is_empty(), f.chars.is_empty()) {
        (true, _) => (0.0, 1.0),
        (_, true) => (1.0, 0.0),
        _ => (word_weight, char_weight),
    };
    merge(&block(&f.words, ww), &block(&f.chars, cw), 1.0)
}

/// `a + s·b` of two sorted sparse vectors.
fn merge(a: &Sparse, b: &Sparse, s: f32) -> Sparse {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j >= b.len() || (i < a.len() && a[i].0 < b[j].0) {
            out.push(a[i]);
            i += 1;
        } else if i >= a.len() || b[j].0 < a[i].0 {
            out.push((b[j].0, s * b[j].1));
            j += 1;
        } else {
            out.push((a[i].0, a[i].1 + s * b[j].1));
            i += 1;
            j += 1;
        }
    }
    out
}

fn normalise(v: &mut Sparse) {
    let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
    if norm > 0.0 {
        for (_, w) in v.iter_mut() {
            *w /= norm;
        }
    }
}

/// Mean direction of vectors (their normalised sum); empty when there are none.
fn mean_direction(vs: &[&Sparse]) -> Sparse {
    let mut acc: HashMap<u32, f32> = HashMap::new();
    for v in vs {
        for &(id, w) in v.iter() {
            *acc.entry(id).or_insert(0.0) += w;
        }
    }
    let mut out: Sparse = acc.into_iter().collect();
    out.sort_unstable_by_key(|(id, _)| *id);
    normalise(&mut out);
    out
}

fn prune(mut v: Sparse, keep: usize) -> Sparse {
    if v.len() > keep {
        v.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(keep);
        v.sort_unstable_by_key(|(id, _)| *id);
    }
    normalise(&mut v);
    v
}

impl LexicalIndex {
    /// Builds the index from the nomenclature and labelled descriptions. Deterministic.
    pub fn build(
        nom: &Nomenclature,
        examples: &[Example<'_>],
        config: &LexicalConfig,
    ) -> LexicalIndex {
        let feats = |t: &str| text::features(&text::words(t));
        let ch_f: Vec<Features> = nom.chapters.iter().map(|e| feats(&e.text)).collect();
        let hd_f: Vec<Features> = nom.headings.iter().map(|e| feats(&e.text)).collect();
        let s6_f: Vec<Features> = nom.subheadings.iter().map(|e| feats(&e.text)).collect();
        let ex_f: Vec<Features> = examples.iter().map(|(t, _)| feats(t)).collect();
        // Document frequencies over every text the index is built from.
        let mut df: HashMap<u32, u32> = HashMap::new();
        let mut docs = 0u32;
        for f in ch_f.iter().chain(&hd_f).chain(&s6_f).chain(&ex_f) {
            docs += 1;
            let mut ids: Vec<u32> = f.words.iter().chain(&f.chars).copied().collect();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                *df.entry(id).or_insert(0) += 1;
            }
        }
        let idf_of = |n: u32| ((docs as f32 + 1.0) / (n as f32 + 1.0)).ln() + 1.0;
        let mut feature_ids: Vec<u32> = df.keys().copied().collect();
        feature_ids.sort_unstable();
        let idf: Vec<f32> = feature_ids.iter().map(|id| idf_of(df[id])).collect();
        let default_idf = idf_of(0);
        let lookup = |id: u32| df.get(&id).map(|&n| idf_of(n)).unwrap_or(default_idf);
        let vec_of = |f: &Features| weigh(f, config.word_weight, &lookup);
        let ch_v: Vec<Sparse> = ch_f.iter().map(vec_of).collect();
        let hd_v: Vec<Sparse> = hd_f.iter().map(vec_of).collect();
        let s6_v: Vec<Sparse> = s6_f.iter().map(vec_of).collect();
        let ex_v: Vec<Sparse> = ex_f.iter().map(vec_of).collect();

        let mut ex_by6: Vec<Vec<&Sparse>> = vec![Vec::new(); nom.subheadings.len()];
        let mut ex_by4: Vec<Vec<&Sparse>> = vec![Vec::new(); nom.headings.len()];
        let mut ex_by2: Vec<Vec<&Sparse>> = vec![Vec::new(); nom.chapters.len()];
        for (v, (_, c)) in ex_v.iter().zip(examples) {
            let h = nom.hs6_heading[*c];
            ex_by6[*c].push(v);
            ex_by4[h].push(v);
            ex_by2[nom.heading_chapter[h]].push(v);
        }
        let mut kids4: Vec<Vec<&Sparse>> = vec![Vec::new(); nom.headings.len()];
        for (c, v) in s6_v.iter().enumerate() {
            kids4[nom.hs6_heading[c]].push(v);
        }
        let mut kids2: Vec<Vec<&Sparse>> = vec![Vec::new(); nom.chapters.len()];
        for (h, v) in hd_v.iter().enumerate() {
            kids2[nom.heading_chapter[h]].push(v);
        }
        let centroid =
            |own: &Sparse, kids: Option<&Vec<&Sparse>>, ex: &Vec<&Sparse>, keep: usize| {
                let mut v = own.clone();
                if let Some(k) = kids {
                    v = merge(&v, &mean_direction(k), config.child_weight);
                }
                if !ex.is_empty() {
                    v = merge(&v, &mean_direction(ex), config.example_weight);
                }
                prune(v, keep)
            };
        let c6: Vec<Sparse> = (0..s6_v.len())
            .map(|c| centroid(&s6_v[c], None, &ex_by6[c], config.keep[0]))
            .collect();
        let c4: Vec<Sparse> = (0..hd_v.len())
            .map(|h| centroid(&hd_v[h], Some(&kids4[h]), &ex_by4[h], config.keep[1]))
            .collect();
        let c2: Vec<Sparse> = (0..ch_v.len())
            .map(|c| centroid(&ch_v[c], Some(&kids2[c]), &ex_by2[c], config.keep[2]))
            .collect();
        let common: Vec<bool> = feature_ids
            .iter()
            .map(|id| df[id] as f32 > config.max_df_share * docs as f32)
            .collect();
        let levels = [
            postings(&feature_ids, &common, &c6),
            postings(&feature_ids, &common, &c4),
            postings(&feature_ids, &common, &c2),
        ];
        LexicalIndex {
            config: config.clone(),
            feature_ids,
            idf,
            default_idf,
            levels,
        }
    }

    /// Whether a word (as [`text::words`] gives it) is known: it occurs in the texts the index
    /// was built from, or at least half of its character 4- and 5-grams do (plurals, compounds,
    /// spelling variants read; random letters and other languages mostly do not).
    pub fn knows_word(&self, word: &str) -> bool {
        let has = |id: u32| self.feature_ids.binary_search(&id).is_ok();
        if has(text::word_feature(word)) {
            return true;
        }
        let f = text::features(&[word.to_string()]);
        // `features` lists a word's 3-grams first (as many as its characters), then 4- and 5-grams.
        let longer = f.chars.get(word.chars().count()..).unwrap_or(&[]);
        !longer.is_empty() && 2 * longer.iter().filter(|&&id| has(id)).count() >= longer.len()
    }

    /// The TF-IDF vector of a description, as (vocabulary index, weight): features the index has
    /// never seen count in the norm (with the largest idf) but match nothing.
    pub fn query(&self, description: &str) -> Vec<(usize, f32)> {
        let f = text::features(&text::words(description));
        let lookup = |id: u32| match self.feature_ids.binary_search(&id) {
            Ok(i) => self.idf[i],
            Err(_) => self.default_idf,
        };
        weigh(&f, self.config.word_weight, &lookup)
            .into_iter()
            .filter_map(|(id, w)| self.feature_ids.binary_search(&id).ok().map(|i| (i, w)))
            .collect()
    }

    /// Cosine similarity of a description to every subheading, heading and chapter centroid.
    pub fn level_scores(&self, description: &str) -> LevelScores {
        let q = self.query(description);
        let score = |p: &Postings| {
            let mut acc = vec![0f32; p.n_classes];
            for &(i, w) in &q {
                let (a, b) = (p.offsets[i] as usize, p.offsets[i + 1] as usize);
                for k in a..b {
                    acc[p.classes[k] as usize] += w * (p.weights[k] as f32 / 65535.0);
                }
            }
            acc
        };
        LevelScores {
            s6: score(&self.levels[0]),
            s4: score(&self.levels[1]),
            s2: score(&self.levels[2]),
        }
    }

    /// Entries stored in the index (all levels).
    pub fn stored_entries(&self) -> usize {
        self.levels.iter().map(|p| p.classes.len()).sum()
    }

    /// Vocabulary size.
    pub fn vocabulary(&self) -> usize {
        self.feature_ids.len()
    }

    pub(crate) fn write(&self, w: &mut crate::io::Writer) {
        w.json(&self.config);
        w.u32s(&self.feature_ids);
        w.f32s(&self.idf);
        w.f32(self.default_idf);
        for p in &self.levels {
            w.u32(p.n_classes as u32);
            w.u32s(&p.offsets);
            w.u16s(&p.classes);
            w.u16s(&p.weights);
        }
    }

    pub(crate) fn read(r: &mut crate::io::Reader<'_>) -> Result<LexicalIndex, HsError> {
        let config: LexicalConfig = r.json()?;
        let feature_ids = r.u32s()?;
        let idf = r.f32s()?;
        let default_idf = r.f32()?;
        if idf.len() != feature_ids.len() || feature_ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(HsError::Model("vocabulary and idf do not match".into()));
        }
        let mut read_level = || -> Result<Postings, HsError> {
            let n_classes = r.u32()? as usize;
            let offsets = r.u32s()?;
            let classes = r.u16s()?;
            let weights = r.u16s()?;
            let ok = offsets.len() == feature_ids.len() + 1
                && offsets.first() == Some(&0)
                && offsets.windows(2).all(|w| w[0] <= w[1])
                && offsets.last().map(|&l| l as usize) == Some(classes.len())
                && classes.len() == weights.len()
                && classes.iter().all(|&c| (c as usize) < n_classes);
            if ok {
                Ok(Postings {
                    n_classes,
                    offsets,
                    classes,
                    weights,
                })
            } else {
                Err(HsError::Model("inconsistent postings".into()))
            }
        };
        let levels = [read_level()?, read_level()?, read_level()?];
        Ok(LexicalIndex {
            config,
            feature_ids,
            idf,
            default_idf,
            levels,
        })
    }

    /// Checks that the index fits a nomenclature's sizes.
    pub(crate) fn check(&self, nom: &Nomenclature) -> Result<(), HsError> {
        let want = [
            nom.subheadings.len(),
            nom.headings.len(),
            nom.chapters.len(),
        ];
        for (p, n) in self.levels.iter().zip(want) {
            if p.n_classes != n {
                return Err(HsError::Model(format!(
                    "the model has {} classes where the nomenclature has {n}",
                    p.n_classes
                )));
            }
        }
        Ok(())
    }
}

fn postings(feature_ids: &[u32], common: &[bool], centroids: &[Sparse]) -> Postings {
    let mut triples: Vec<(u32, u16, u16)> = Vec::new();
    for (c, v) in centroids.iter().enumerate() {
        for &(id, w) in v {
            let q = (w.clamp(0.0, 1.0) * 65535.0).round() as u16;
            if q > 0 {
                if let Ok(i) = feature_ids.binary_search(&id) {
                    if !common[i] {
                        triples.push((i as u32, c as u16, q));
                    }
                }
            }
        }
    }
    triples.sort_unstable();
    let mut offsets = vec![0u32; feature_ids.len() + 1];
    for &(i, _, _) in &triples {
        offsets[i as usize + 1] += 1;
    }
    for i in 0..feature_ids.len() {
        offsets[i + 1] += offsets[i];
    }
    Postings {
        n_classes: centroids.len(),
        offsets,
        classes: triples.iter().map(|t| t.1).collect(),
        weights: triples.iter().map(|t| t.2).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_sorted_vectors() {
        let a = vec![(1, 1.0), (3, 1.0)];
        let b = vec![(2, 1.0), (3, 1.0)];
        assert_eq!(merge(&a, &b, 2.0), vec![(1, 1.0), (2, 2.0), (3, 3.0)]);
    }

    #[test]
    fn a_description_scores_highest_on_its_own_code_text() {
        let nom = Nomenclature::hs2022();
        let index = LexicalIndex::build(nom, &[], &LexicalConfig::default());
        let s = index.level_scores("Horses; live, pure-bred breeding animals");
        let best = (0..s.s6.len())
            .max_by(|&a, &b| s.s6[a].total_cmp(&s.s6[b]))
            .unwrap();
        assert_eq!(nom.subheadings[best].code, "010121");
        assert!(index.knows_word("horses"));
        assert!(!index.knows_word("zzqxv"));
        assert!(!index.knows_word("plorq"));
        assert!(index.knows_word("antibiotic"), "singular of a known plural");
        assert!(s.s6.iter().all(|v| (0.0..=1.01).contains(v)));
    }
}
