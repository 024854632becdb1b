//! `sample describe`: the sample declarations with goods descriptions (constructed data; see
//! `borderlens_synth::described`), read from the shipped files and written to a folder with
//! its column mapping, its truth file and its README.

use std::path::{Path, PathBuf};

use borderlens_domain::{GOODS_DESCRIPTION, GOODS_DESCRIPTION_CLEANED};
use borderlens_ingest::ColumnMapping;
use borderlens_synth::described::{
    self, DescribeOptions, DescriptionSources, SourceTexts, CLEANED_HEADER, DESCRIPTION_HEADER,
    TRUTH_COLUMNS,
};
use serde::Serialize;

use crate::JobError;

/// The sample files described, in `--sample`, written under the same names in `--out`.
pub const SAMPLE_FILES: [&str; 2] = ["df_syn_train_eng.csv", "df_syn_valid_eng.csv"];

/// The mapping file written beside the described files.
pub const MAPPING_FILE: &str = "mapping.json";

/// The truth file, in a folder of its own (an import of `OUT/*.csv` does not read it).
pub const TRUTH_FILE: &str = "truth/descriptions.csv";

/// What `sample describe` reads and writes.
#[derive(Clone, Debug)]
pub struct DescribeSampleRequest {
    /// Folder with the sample files ([`SAMPLE_FILES`]).
    pub sample: PathBuf,
    /// Folder with the UK descriptions and the HS 2022 nomenclature (`data/hs`).
    pub hs: PathBuf,
    /// Folder written.
    pub out: PathBuf,
    /// Seed and rates.
    pub options: DescribeOptions,
}

/// What one described file holds.
#[derive(Clone, Debug, Serialize)]
pub struct DescribedFileReport {
    /// File name.
    pub file: String,
    /// Data rows.
    pub rows: u64,
    /// Rows labelled fraud.
    pub fraud_rows: u64,
    /// Rows whose declared code had a UK description of its own HS6 code ...
    pub matched_hs6: u64,
    /// ... of its heading only ...
    pub matched_heading: u64,
    /// ... of its chapter only ...
    pub matched_chapter: u64,
    /// ... or none.
    pub matched_none: u64,
    /// Rows with a sender's description.
    pub described: u64,
    /// Misdeclared rows among the fraud rows.
    pub misdeclared_fraud: u64,
    /// Misdeclared rows among the others.
    pub misdeclared_clean: u64,
    /// Rows with a cleaned description.
    pub cleaned: u64,
}

/// What `sample describe` did.
#[derive(Clone, Debug, Serialize)]
pub struct DescribeSampleReport {
    /// The folder written.
    pub out: String,
    /// The files written, in order.
    pub written: Vec<String>,
    /// The seed.
    pub seed: u64,
    /// The rates asked for.
    pub misdeclared_fraud_rate: f64,
    /// ...
    pub misdeclared_clean_rate: f64,
    /// ...
    pub cleaned_rate: f64,
    /// Per file.
    pub files: Vec<DescribedFileReport>,
}

/// The mapping that reads a described file: the KCS layout and the two descriptions.
pub fn described_mapping() -> ColumnMapping {
    let mut mapping = ColumnMapping::kcs_default();
    mapping.set_header(GOODS_DESCRIPTION, Some(DESCRIPTION_HEADER.to_string()));
    mapping.set_header(GOODS_DESCRIPTION_CLEANED, Some(CLEANED_HEADER.to_string()));
    mapping
}

fn read(path: &Path) -> Result<Vec<u8>, JobError> {
    std::fs::read(path)
        .map_err(|e| JobError::Invalid(format!("cannot read {}: {e}", path.display())))
}

fn read_text(path: &Path) -> Result<String, JobError> {
    String::from_utf8(read(path)?)
        .map_err(|e| JobError::Invalid(format!("{}: not UTF-8 text: {e}", path.display())))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), JobError> {
    let io = |source| JobError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, bytes).map_err(io)
}

/// Makes the sample with descriptions: reads the sample files and the sources, writes the
/// described files, the mapping, the truth and the README to `request.out`. Every file is made
/// in memory first (some 15 MB), so a bad input writes nothing.
pub fn describe_sample(request: &DescribeSampleRequest) -> Result<DescribeSampleReport, JobError> {
    let options = &request.options;
    if let Some(problem) = options.problem() {
        return Err(JobError::Invalid(problem));
    }
    let source = |name: &str| read_text(&request.hs.join(name));
    let (extra, search, brands, nomenclature) = (
        source("uk_fpo_extra_references.csv")?,
        source("uk_fpo_search_references.json")?,
        source("uk_fpo_brands.csv")?,
        source("hs2022_nomenclature.csv")?,
    );
    let sources = DescriptionSources::parse(&SourceTexts {
        extra_references: &extra,
        search_references: &search,
        brands: &brands,
        nomenclature: &nomenclature,
    })
    .map_err(|e| JobError::Invalid(format!("{}: {e}", request.hs.display())))?;
    let mut truth = csv::Writer::from_writer(Vec::new());
    truth
        .write_record(TRUTH_COLUMNS)
        .map_err(|e| JobError::Internal(format!("cannot write the truth: {e}")))?;
    let mut outputs: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut summaries = Vec::new();
    for (file_no, name) in SAMPLE_FILES.iter().enumerate() {
        let path = request.sample.join(name);
        let input = read(&path)?;
        let (bytes, summary) =
            described::describe_file(name, file_no as u64, &input, &sources, options, &mut truth)
                .map_err(|e| JobError::Invalid(format!("{}: {e}", request.sample.display())))?;
        outputs.push((request.out.join(name), bytes));
        summaries.push(summary);
    }
    let truth = truth
        .into_inner()
        .map_err(|e| JobError::Internal(format!("cannot write the truth: {e}")))?;
    outputs.push((
        request.out.join(MAPPING_FILE),
        described_mapping().to_json().into_bytes(),
    ));
    outputs.push((request.out.join(TRUTH_FILE), truth));
    outputs.push((
        request.out.join("README.md"),
        described::readme(&sources, options, &summaries).into_bytes(),
    ));
    for (path, bytes) in &outputs {
        write(path, bytes)?;
    }
    Ok(DescribeSampleReport {
        out: request.out.display().to_string(),
        written: outputs
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect(),
        seed: options.seed,
        misdeclared_fraud_rate: options.misdeclared_fraud_rate,
        misdeclared_clean_rate: options.misdeclared_clean_rate,
        cleaned_rate: options.cleaned_rate,
        files: summaries
            .into_iter()
            .map(|s| DescribedFileReport {
                file: s.file,
                rows: s.rows,
                fraud_rows: s.fraud_rows,
                matched_hs6: s.coverage[0],
                matched_heading: s.coverage[1],
                matched_chapter: s.coverage[2],
                matched_none: s.coverage[3],
                described: s.described,
                misdeclared_fraud: s.misdeclared_fraud,
                misdeclared_clean: s.misdeclared_clean,
                cleaned: s.cleaned,
            })
            .collect(),
    })
}

/// The register file `sample parties` writes, and its truth (pairs of ids of one firm), in a
/// folder of its own.
pub const PARTIES_FILE: &str = "parties.csv";
/// See [`PARTIES_FILE`].
pub const PARTIES_TRUTH_FILE: &str = "truth/same-firm.csv";

/// What `sample parties` did.
#[derive(Clone, Debug, Serialize)]
pub struct PartiesSampleReport {
    /// Parties in the register: every importer and declarant id of the sample.
    pub parties: usize,
    /// Firms holding two of those ids (the planted duplicates).
    pub two_id_firms: usize,
    /// The seed.
    pub seed: u64,
    /// The register, then the truth.
    pub written: Vec<String>,
}

/// Writes a constructed register of the trade parties of the sample declarations in `data`
/// (every importer and declarant id of its files, [`SAMPLE_FILES`] through their mapping, if
/// any), with names, addresses and EORI numbers made by `borderlens_synth::parties_register`:
/// a share `two_id_share` of the firms hold two ids. The register goes to `out/parties.csv`,
/// the pairs of ids of one firm to `out/truth/same-firm.csv` (a `--labels` file for
/// `borderlens link`). Constructed data: the sample itself has no names.
pub fn sample_parties(
    data: &Path,
    out: &Path,
    two_id_share: f64,
    seed: u64,
) -> Result<PartiesSampleReport, JobError> {
    if !(0.0..=1.0).contains(&two_id_share) {
        return Err(JobError::Invalid(format!(
            "--two-id-share {two_id_share}: a share is between 0 and 1"
        )));
    }
    let mapping_file = data.join(MAPPING_FILE);
    let mapping = if mapping_file.exists() {
        ColumnMapping::from_json_file(&mapping_file)
            .map_err(|e| JobError::Invalid(e.to_string()))?
    } else {
        ColumnMapping::kcs_default()
    };
    let mut ids: Vec<String> = Vec::new();
    for name in SAMPLE_FILES {
        let path = data.join(name);
        let reader = borderlens_ingest::read_declarations(&path, &mapping)
            .map_err(|e| JobError::Invalid(e.to_string()))?;
        for record in reader {
            let item = record.map_err(|e| JobError::Invalid(e.to_string()))?;
            ids.push(item.importer_id);
            ids.push(item.declarant_id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    let (register, pairs) = borderlens_synth::parties_register(&ids, two_id_share, seed);
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| JobError::Io { path, source }
    };
    let register_path = out.join(PARTIES_FILE);
    let truth_path = out.join(PARTIES_TRUTH_FILE);
    std::fs::create_dir_all(out.join("truth")).map_err(io(out))?;
    let write = |path: &Path, header: &[&str], rows: &mut dyn Iterator<Item = Vec<String>>| {
        let fail =
            |e: csv::Error| JobError::Invalid(format!("cannot write {}: {e}", path.display()));
        let mut w = csv::Writer::from_path(path).map_err(fail)?;
        w.write_record(header).map_err(fail)?;
        for row in rows {
            w.write_record(&row).map_err(fail)?;
        }
        w.flush().map_err(io(path))
    };
    let columns: Vec<&str> = register.columns.iter().map(String::as_str).collect();
    write(&register_path, &columns, &mut register.rows.into_iter())?;
    write(
        &truth_path,
        &["party_id", "same_firm_as"],
        &mut pairs.iter().map(|(a, b)| vec![a.clone(), b.clone()]),
    )?;
    Ok(PartiesSampleReport {
        parties: ids.len(),
        two_id_firms: pairs.len(),
        seed,
        written: vec![
            register_path.display().to_string(),
            truth_path.display().to_string(),
        ],
    })
}
