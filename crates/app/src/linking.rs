//! The linkage job: CSV files in, `clusters.csv`, `pairs.csv`, `settings.toml` and `model.json`
//! out, with `borderlens-linkage` doing the linking.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use borderlens_linkage::table::Column;
use borderlens_linkage::{link_with, LinkOptions, LinkResult, Settings, Table};
use borderlens_store::{Backend, PartyLink};
use serde::Serialize;

use crate::{JobError, Progress};

/// What to link.
pub struct LinkRequest {
    /// First (or only) source.
    pub left: PathBuf,
    /// Second source, for linking two sources.
    pub right: Option<PathBuf>,
    /// Settings file (TOML or JSON); inferred from the data when absent.
    pub settings: Option<PathBuf>,
    /// Column holding each record's id.
    pub id_column: String,
    /// Output directory.
    pub out: PathBuf,
    /// Pairs below this probability are not written to `pairs.csv`.
    pub min_pair_probability: f64,
    /// Columns left out of the linkage (e.g. a truth column kept for evaluation).
    pub ignore: Vec<String>,
    /// Known matching pairs: a CSV file whose first two columns are a left id and a right id
    /// (both of `left` when deduplicating). The links are checked against them.
    pub labels: Option<PathBuf>,
    /// Estimate m from the labelled pairs instead of EM.
    pub train_on_labels: bool,
}

/// What the job did.
#[derive(Clone, Debug, Serialize)]
pub struct LinkReport {
    /// Records per source.
    pub records: Vec<usize>,
    /// Candidate pairs compared.
    pub candidate_pairs: usize,
    /// Links accepted.
    pub links: usize,
    /// Of which through a shared valid identifier.
    pub identifier_links: usize,
    /// Identifiers that failed their check (listed in `invalid_identifiers.csv`, never used).
    pub invalid_identifiers: usize,
    /// Clusters (records with no partner are their own cluster).
    pub clusters: usize,
    /// Prior match probability of two random records.
    pub lambda: f64,
    /// Whether the settings were inferred.
    pub inferred_settings: bool,
    /// Files written.
    pub files: Vec<String>,
    /// The links checked against `--labels`.
    pub label_check: Option<borderlens_linkage::LabelCheck>,
    /// The settings used, as written to `settings.toml`.
    pub settings_toml: String,
    /// The party links saved in the store (`borderlens link --save-party-links`), if asked.
    pub saved_party_links: Option<SavedPartyLinks>,
    /// Seconds: reading, preparing, blocking, training, prediction.
    pub seconds: LinkSeconds,
    /// CPU seconds of the process so far, all threads (Linux only).
    pub cpu_seconds: Option<f64>,
    /// Peak resident memory of the process so far, MiB (Linux only).
    pub peak_memory_mib: Option<f64>,
}

/// CPU seconds (user + system) and peak resident MiB of this process, from `/proc` (Linux).
pub fn process_usage() -> (Option<f64>, Option<f64>) {
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) end with ')'; utime and stime
            // are fields 14 and 15, in clock ticks of 1/100 s (USER_HZ, fixed on Linux).
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        });
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024.0)
        });
    (cpu, peak)
}

/// Opens a CSV file: its name for messages, the reader, and the trimmed headers (a byte-order
/// mark dropped).
fn open_csv(path: &Path) -> Result<(String, csv::Reader<std::fs::File>, Vec<String>), JobError> {
    let name = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| JobError::Invalid(format!("{name}: {e}")))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| JobError::Invalid(format!("{name}: {e}")))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    Ok((name, reader, headers))
}

/// Reads labelled pairs: the first two columns of each line are ids of `left` and `right`.
fn read_labels(path: &Path, left: &Table, right: &Table) -> Result<Vec<(u32, u32)>, JobError> {
    let (name, mut reader, headers) = open_csv(path)?;
    if headers.len() < 2 {
        return Err(JobError::Invalid(format!(
            "{name}: labels need two columns, a left id and a right id"
        )));
    }
    fn index(t: &Table) -> std::collections::HashMap<&str, u32> {
        t.ids
            .iter()
            .enumerate()
            .map(|(r, id)| (id, r as u32))
            .collect()
    }
    let (l, r) = (index(left), index(right));
    let mut pairs = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = record.map_err(|e| JobError::Invalid(format!("{name}, line {line}: {e}")))?;
        let find = |k: usize, ids: &std::collections::HashMap<&str, u32>, table: &Table| {
            let id = record.get(k).unwrap_or("").trim();
            ids.get(id).copied().ok_or_else(|| {
                JobError::Invalid(format!(
                    "{name}, line {line}, field {}: no record '{id}' in {}",
                    headers[k], table.name
                ))
            })
        };
        pairs.push((find(0, &l, left)?, find(1, &r, right)?));
    }
    if pairs.is_empty() {
        return Err(JobError::Invalid(format!("{name}: no labelled pair")));
    }
    Ok(pairs)
}

/// Wall-clock seconds per phase.
#[derive(Clone, Debug, Serialize)]
pub struct LinkSeconds {
    /// Reading the CSV files.
    pub read: f64,
    /// Normalising the compared columns.
    pub prepare: f64,
    /// Indexing the blocking keys.
    pub blocking: f64,
    /// Comparing every candidate once, counting comparison vectors.
    pub comparing: f64,
    /// u and m.
    pub training: f64,
    /// Scoring (comparing again), assigning, clustering.
    pub prediction: f64,
    /// Writing the outputs.
    pub write: f64,
}

/// Reads a CSV file into a linkage table: trimmed headers and values, every record with an id,
/// ids unique.
pub fn read_table(path: &Path, id_column: &str) -> Result<Table, JobError> {
    let (name, mut reader, headers) = open_csv(path)?;
    if headers.iter().all(String::is_empty) {
        return Err(JobError::Invalid(format!("{name}: empty file (no header)")));
    }
    let id_index = headers.iter().position(|h| h == id_column).ok_or_else(|| {
        JobError::Invalid(format!(
            "{name}: no id column '{id_column}' (columns: {})",
            headers.join(", ")
        ))
    })?;
    let columns: Vec<String> = headers
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != id_index)
        .map(|(_, h)| h.clone())
        .collect();
    let mut table = Table {
        name: name.clone(),
        ids: Column::new(),
        values: vec![Column::new(); columns.len()],
        columns,
    };
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = record.map_err(|e| JobError::Invalid(format!("{name}, line {line}: {e}")))?;
        let id = record.get(id_index).unwrap_or("").trim();
        if id.is_empty() {
            return Err(JobError::Invalid(format!(
                "{name}, line {line}, field {id_column}: empty id"
            )));
        }
        table.ids.push(id);
        let mut c = 0;
        for (i, value) in record.iter().enumerate() {
            if i != id_index {
                table.values[c].push(value.trim());
                c += 1;
            }
        }
    }
    if table.is_empty() {
        return Err(JobError::Invalid(format!("{name}: no records")));
    }
    // Ids unique: sorted positions, so that a million ids cost 4 MB, not a set of strings.
    let mut order: Vec<u32> = (0..table.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        table.ids[a as usize]
            .cmp(&table.ids[b as usize])
            .then(a.cmp(&b))
    });
    if let Some(w) = order
        .windows(2)
        .filter(|w| table.ids[w[0] as usize] == table.ids[w[1] as usize])
        .min_by_key(|w| w[1])
    {
        return Err(JobError::Invalid(format!(
            "{name}, line {}, field {id_column}: id '{}' appears twice",
            w[1] as usize + 2,
            &table.ids[w[1] as usize]
        )));
    }
    Ok(table)
}

fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), JobError> {
    let fail =
        |e: std::io::Error| JobError::Invalid(format!("cannot write {}: {e}", path.display()));
    let file = std::fs::File::create(path).map_err(fail)?;
    let mut out = std::io::BufWriter::new(file);
    write(&mut out).map_err(fail)?;
    out.flush().map_err(fail)
}

/// Writes a CSV file: `header`, then the records `write` gives (fields quoted where needed).
fn write_csv(
    path: &Path,
    header: &[&str],
    write: impl FnOnce(&mut csv::Writer<&mut dyn std::io::Write>) -> csv::Result<()>,
) -> Result<(), JobError> {
    write_file(path, |w| {
        let mut out = csv::Writer::from_writer(w);
        out.write_record(header)?;
        write(&mut out)?;
        out.flush()
    })
}

/// What `--save-party-links` saved.
#[derive(Clone, Debug, Serialize)]
pub struct SavedPartyLinks {
    /// Parties linked to at least one other party.
    pub parties: usize,
    /// Groups of two or more parties (one firm each).
    pub groups: usize,
    /// The run's name in the store.
    pub run: String,
}

/// Links the files and writes the results.
pub fn link_files(request: &LinkRequest, progress: &dyn Progress) -> Result<LinkReport, JobError> {
    link_files_then(request, progress, |_, _| Ok(None))
}

/// Deduplicates a register of trade parties (one file, ids as declarations carry them in
/// their importer and declarant fields), writes the results as [`link_files`] does, and
/// replaces the store's party links with the groups found: the declaration page then lists the
/// declarations of linked parties among the related records. Two files are refused: party
/// links are found within one register.
pub fn link_parties(
    store: &mut dyn Backend,
    request: &LinkRequest,
    progress: &dyn Progress,
) -> Result<LinkReport, JobError> {
    if request.right.is_some() {
        return Err(JobError::Invalid(
            "--save-party-links deduplicates one register of parties: give --left only".into(),
        ));
    }
    let run = format!("{} -> {}", request.left.display(), request.out.display());
    link_files_then(request, progress, |left, result| {
        let links = party_links(left, result);
        store.replace_party_links(&run, &links)?;
        let groups: HashSet<&str> = links.iter().map(|l| l.group_id.as_str()).collect();
        Ok(Some(SavedPartyLinks {
            parties: links.len(),
            groups: groups.len(),
            run: run.clone(),
        }))
    })
}

/// The party links of a deduplication: every record of a cluster of two or more, with its
/// group (the cluster's smallest id), the record it is most strongly linked to and that link's
/// probability (1 for a link through a shared valid identifier, which is not scored).
pub fn party_links(left: &Table, result: &LinkResult) -> Vec<PartyLink> {
    let probability: HashMap<(u32, u32), f64> = result
        .pairs
        .iter()
        .map(|p| ((p.left, p.right), p.probability))
        .collect();
    // The strongest link of each record within its cluster: (probability, partner). (The
    // clustering may leave two linked records apart; such a link does not make a group.)
    let mut best: HashMap<u32, (f64, u32)> = HashMap::new();
    let cluster = |r: u32| result.clusters.get(r as usize).copied();
    // A shared valid identifier links outright, whatever the pair's score.
    let outright: HashSet<(u32, u32)> = result
        .identifier_pairs
        .iter()
        .flat_map(|&(a, b)| [(a, b), (b, a)])
        .collect();
    for &(a, b) in result
        .links
        .iter()
        .filter(|&&(a, b)| cluster(a) == cluster(b))
    {
        let p = if outright.contains(&(a, b)) {
            1.0
        } else {
            probability
                .get(&(a, b))
                .or_else(|| probability.get(&(b, a)))
                .copied()
                .unwrap_or(1.0)
        };
        for (from, to) in [(a, b), (b, a)] {
            let entry = best.entry(from).or_insert((p, to));
            let better =
                p > entry.0 || (p == entry.0 && left.ids[to as usize] < left.ids[entry.1 as usize]);
            if better {
                *entry = (p, to);
            }
        }
    }
    let mut members: HashMap<usize, Vec<u32>> = HashMap::new();
    for (record, &cluster) in result.clusters.iter().take(left.len()).enumerate() {
        members.entry(cluster).or_default().push(record as u32);
    }
    let mut links = Vec::new();
    for records in members.values().filter(|m| m.len() > 1) {
        let group = records
            .iter()
            .map(|&r| &left.ids[r as usize])
            .min()
            .map(str::to_string)
            .unwrap_or_default();
        for &r in records {
            // A record of a cluster of two or more has a link within it, unless the clustering
            // joined it by other means: such a record is left out rather than given a link.
            if let Some(&(p, to)) = best.get(&r) {
                links.push(PartyLink {
                    party_id: left.ids[r as usize].to_string(),
                    group_id: group.clone(),
                    linked_to: left.ids[to as usize].to_string(),
                    probability: p.clamp(0.0, 1.0),
                });
            }
        }
    }
    links.sort_by(|a, b| a.party_id.cmp(&b.party_id));
    links
}

/// [`link_files`], then `then` on the left table and the result (after the outputs are
/// written); what it returns goes into the report.
fn link_files_then(
    request: &LinkRequest,
    progress: &dyn Progress,
    then: impl FnOnce(&Table, &LinkResult) -> Result<Option<SavedPartyLinks>, JobError>,
) -> Result<LinkReport, JobError> {
    let started = std::time::Instant::now();
    progress.start("reading", None);
    let mut left = read_table(&request.left, &request.id_column)?;
    let mut right = match &request.right {
        Some(path) => Some(read_table(path, &request.id_column)?),
        None => None,
    };
    for table in std::iter::once(&mut left).chain(right.as_mut()) {
        for column in &request.ignore {
            if !table.remove_column(column) {
                return Err(JobError::Invalid(format!(
                    "{}: no column '{column}' to ignore (columns: {})",
                    table.name,
                    table.columns.join(", ")
                )));
            }
        }
    }
    let read_seconds = started.elapsed().as_secs_f64();
    let (settings, inferred) = match &request.settings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| JobError::Invalid(format!("cannot read {}: {e}", path.display())))?;
            let settings = Settings::parse(&text)
                .map_err(|e| JobError::Invalid(format!("{}: {e}", path.display())))?;
            (settings, false)
        }
        None => (
            borderlens_linkage::profile::infer_settings(&left, right.as_ref()),
            true,
        ),
    };
    for table in std::iter::once(&left).chain(right.as_ref()) {
        settings.validate(&table.columns).map_err(|e| {
            // The settings file is what to fix (the data file names the columns it has);
            // inferred settings fit the data by construction.
            JobError::Invalid(match &request.settings {
                Some(path) => format!("{}: {e} in {}", path.display(), table.name),
                None => format!("{}: {e}", table.name),
            })
        })?;
    }
    if progress.interrupted() {
        return Err(JobError::Interrupted);
    }
    let labels = match &request.labels {
        Some(path) => read_labels(path, &left, right.as_ref().unwrap_or(&left))?,
        None if request.train_on_labels => {
            return Err(JobError::Invalid(
                "--train-on-labels needs --labels FILE".into(),
            ))
        }
        None => Vec::new(),
    };
    let options = LinkOptions {
        keep_probability: request.min_pair_probability,
        labels,
        train_on_labels: request.train_on_labels,
        ..LinkOptions::default()
    };
    let result = link_with(&left, right.as_ref(), &settings, &options, &Watch(progress)).map_err(
        |e| match e {
            borderlens_linkage::LinkError::Interrupted => JobError::Interrupted,
            e => JobError::Invalid(e.to_string()),
        },
    )?;
    progress.finish();
    let started = std::time::Instant::now();
    std::fs::create_dir_all(&request.out)
        .map_err(|e| JobError::Invalid(format!("cannot create {}: {e}", request.out.display())))?;
    let files = write_outputs(request, &left, right.as_ref(), &settings, &result)?;
    // Last: a run whose outputs could not be written keeps the store's previous links.
    let saved_party_links = then(&left, &result)?;
    let LinkResult {
        timings,
        clusters,
        links,
        candidates,
        model,
        identifier_links,
        invalid_identifiers,
        label_check,
        ..
    } = result;
    let (cpu_seconds, peak_memory_mib) = process_usage();
    let n_clusters = clusters.iter().copied().max().map_or(0, |m| m + 1);
    Ok(LinkReport {
        records: std::iter::once(left.len())
            .chain(right.as_ref().map(Table::len))
            .collect(),
        candidate_pairs: candidates,
        links: links.len(),
        identifier_links,
        invalid_identifiers: invalid_identifiers.len(),
        clusters: n_clusters,
        lambda: model.lambda,
        inferred_settings: inferred,
        label_check,
        settings_toml: settings.to_toml(),
        saved_party_links,
        cpu_seconds,
        peak_memory_mib,
        files,
        seconds: LinkSeconds {
            read: read_seconds,
            prepare: timings.prepare,
            blocking: timings.blocking,
            comparing: timings.comparing,
            training: timings.training,
            prediction: timings.prediction,
            write: started.elapsed().as_secs_f64(),
        },
    })
}

/// Shows a linkage run's phases on the job's progress, and passes Ctrl-C on.
struct Watch<'a>(&'a dyn Progress);

impl borderlens_linkage::Observer for Watch<'_> {
    fn phase(&self, name: &str, total: u64) {
        self.0.start(name, Some(total));
    }

    fn advance(&self, done: u64) {
        self.0.advance(done);
    }

    fn stop(&self) -> bool {
        self.0.interrupted()
    }
}

fn write_outputs(
    request: &LinkRequest,
    left: &Table,
    right: Option<&Table>,
    settings: &Settings,
    result: &LinkResult,
) -> Result<Vec<String>, JobError> {
    let out = &request.out;
    let right_ids = right.map_or(&left.ids, |t| &t.ids);
    let clusters_path = out.join("clusters.csv");
    write_csv(&clusters_path, &["record_id", "cluster_id"], |w| {
        let ids = left
            .ids
            .iter()
            .chain(right.map(|t| t.ids.iter()).into_iter().flatten());
        for (id, cluster) in ids.zip(&result.clusters) {
            w.write_record([id, cluster.to_string().as_str()])?;
        }
        Ok(())
    })?;
    let pairs_path = out.join("pairs.csv");
    let pairs_header = [
        "left_id",
        "right_id",
        "match_weight",
        "match_probability",
        "linked",
    ];
    write_csv(&pairs_path, &pairs_header, |w| {
        let linked: HashSet<(u32, u32)> = result.links.iter().copied().collect();
        let scored: HashSet<(u32, u32)> = result.pairs.iter().map(|p| (p.left, p.right)).collect();
        // Links through a shared valid identifier that blocking did not bring: weight `inf`.
        for &(l, r) in &result.links {
            if !scored.contains(&(l, r)) {
                w.write_record([
                    &left.ids[l as usize],
                    &right_ids[r as usize],
                    "inf",
                    "1.000000",
                    "1",
                ])?;
            }
        }
        for p in &result.pairs {
            let is_link = linked.contains(&(p.left, p.right));
            if p.probability < request.min_pair_probability && !is_link {
                continue;
            }
            w.write_record([
                &left.ids[p.left as usize],
                &right_ids[p.right as usize],
                format!("{:.4}", p.weight).as_str(),
                format!("{:.6}", p.probability).as_str(),
                if is_link { "1" } else { "0" },
            ])?;
        }
        Ok(())
    })?;
    let settings_path = out.join("settings.toml");
    write_file(&settings_path, |w| {
        w.write_all(settings.to_toml().as_bytes())
    })?;
    let model_path = out.join("model.json");
    write_file(&model_path, |w| {
        w.write_all(
            serde_json::to_string_pretty(&result.model)
                .unwrap_or_default()
                .as_bytes(),
        )
    })?;
    // The trained weights of every level, as Splink's match-weights chart shows them.
    let weights_path = out.join("match_weights.svg");
    let bars: Vec<(String, f64)> = result
        .model
        .comparisons
        .iter()
        .flat_map(|c| {
            c.levels
                .iter()
                .enumerate()
                .map(move |(k, level)| (format!("{}: {level}", c.column), c.weight(k as u8 + 1)))
        })
        .collect();
    write_file(&weights_path, |w| {
        w.write_all(
            borderlens_charts::bar_chart_svg(
                &format!(
                    "match weight of each comparison level (prior {:+.2})",
                    result.model.prior_weight()
                ),
                &bars,
                "log2(m / u)",
            )
            .as_bytes(),
        )
    })?;
    let run_path = out.join("run.json");
    write_file(&run_path, |w| {
        let run = serde_json::json!({
            "left": request.left.display().to_string(),
            "right": request.right.as_ref().map(|p| p.display().to_string()),
            "id_column": request.id_column,
            "ignore": request.ignore,
        });
        w.write_all(run.to_string().as_bytes())
    })?;
    let mut files = vec![
        clusters_path,
        pairs_path,
        settings_path,
        model_path,
        run_path,
    ];
    if !result.invalid_identifiers.is_empty() {
        let path = out.join("invalid_identifiers.csv");
        let header = ["source", "record_id", "column", "value", "reason"];
        write_csv(&path, &header, |w| {
            for i in &result.invalid_identifiers {
                w.write_record([&i.source, &i.record, &i.column, &i.value, &i.reason])?;
            }
            Ok(())
        })?;
        files.push(path);
    }
    Ok(files.iter().map(|p| p.display().to_string()).collect())
}

/// The explanation of one pair of a finished linkage run, with its waterfall chart.
#[derive(Clone, Debug, Serialize)]
pub struct PairReport {
    /// Left record id.
    pub left_id: String,
    /// Right record id.
    pub right_id: String,
    /// Whether the run linked them.
    pub linked: bool,
    /// Weights.
    #[serde(flatten)]
    pub explanation: borderlens_linkage::model::PairExplanation,
    /// The waterfall chart (SVG).
    #[serde(skip)]
    pub chart_svg: String,
}

/// Explains why the run in `out` did (not) link `left_id` and `right_id`: the prior and each
/// comparison's level, m, u and weight, from the run's own settings, model and files.
pub fn explain_link(out: &Path, left_id: &str, right_id: &str) -> Result<PairReport, JobError> {
    let missing = |name: &str, e: std::io::Error| {
        JobError::Invalid(format!(
            "{}: {e} (run `borderlens link --out {}` first)",
            out.join(name).display(),
            out.display()
        ))
    };
    let read = |name: &str| std::fs::read_to_string(out.join(name)).map_err(|e| missing(name, e));
    let run: serde_json::Value = serde_json::from_str(&read("run.json")?)
        .map_err(|e| JobError::Invalid(format!("run.json: {e}")))?;
    let settings = Settings::parse(&read("settings.toml")?)
        .map_err(|e| JobError::Invalid(format!("settings.toml: {e}")))?;
    let model: borderlens_linkage::Model = serde_json::from_str(&read("model.json")?)
        .map_err(|e| JobError::Invalid(format!("model.json: {e}")))?;
    let id_column = run["id_column"].as_str().unwrap_or_default().to_string();
    let ignore: Vec<String> = run["ignore"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let load = |key: &str| -> Result<Option<Table>, JobError> {
        let Some(path) = run[key].as_str() else {
            return Ok(None);
        };
        let mut table = read_table(Path::new(path), &id_column)?;
        for column in &ignore {
            table.remove_column(column);
        }
        Ok(Some(table))
    };
    let left =
        load("left")?.ok_or_else(|| JobError::Invalid("run.json names no left file".into()))?;
    let right = load("right")?;
    let find = |table: &Table, id: &str| {
        table
            .ids
            .iter()
            .position(|x| x == id)
            .ok_or_else(|| JobError::NotFound(format!("no record '{id}' in {}", table.name)))
    };
    let i = find(&left, left_id)?;
    let j = find(right.as_ref().unwrap_or(&left), right_id)?;
    let explanation =
        borderlens_linkage::model::explain_pair(&settings, &model, &left, right.as_ref(), i, j);
    let pairs_path = out.join("pairs.csv");
    let pairs = std::fs::File::open(&pairs_path).map_err(|e| missing("pairs.csv", e))?;
    let pairs_error = |e: csv::Error| JobError::Invalid(format!("{}: {e}", pairs_path.display()));
    let mut linked = false;
    for record in csv::Reader::from_reader(std::io::BufReader::new(pairs)).records() {
        let record = record.map_err(pairs_error)?;
        if record.len() == 5 && &record[0] == left_id && &record[1] == right_id && &record[4] == "1"
        {
            linked = true;
            break;
        }
    }
    let bars: Vec<(String, f64)> = explanation
        .comparisons
        .iter()
        .map(|c| (format!("{}: {}", c.column, c.level), c.weight))
        .collect();
    let chart_svg = borderlens_charts::waterfall_svg(
        &format!("match weight of {left_id} and {right_id}"),
        explanation.prior_weight,
        &bars,
        explanation.weight,
        "match weight (log2 Bayes factor)",
    );
    Ok(PairReport {
        left_id: left_id.to_string(),
        right_id: right_id.to_string(),
        linked,
        explanation,
        chart_svg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_links_of_a_shared_registration_number_are_certain_and_stay_in_their_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parties.csv");
        // P1/P2: one firm spelled two ways (a scored link); P3/P4: different names, one EORI
        // (an outright link, however it scores); P5: alone.
        std::fs::write(
            &path,
            "party_id,name,address,eori\n\
             P1,Hanbit Precision Trading Co. Ltd,17 Haeundae-ro Busan,\n\
             P2,HANBIT PRECISION TRADING COMPANY LIMITED,17 HAEUNDAE RO BUSAN,\n\
             P3,Daehan Logistics,Port Area 5 Incheon,KR123456789012\n\
             P4,Seoul Glassworks,88 Jong-ro Seoul,KR-1234-5678-9012\n\
             P5,Nordic Timber AB,3 Kungsgatan Stockholm,SE556677889900\n",
        )
        .unwrap();
        let table = read_table(&path, "party_id").unwrap();
        let settings = borderlens_linkage::profile::infer_settings(&table, None);
        let result = borderlens_linkage::link(&table, None, &settings).unwrap();
        let links = party_links(&table, &result);
        let of = |id: &str| links.iter().find(|l| l.party_id == id);
        let p3 = of("P3").expect("P3 is linked");
        assert_eq!((p3.linked_to.as_str(), p3.probability), ("P4", 1.0));
        assert_eq!(of("P4").unwrap().group_id, "P3");
        assert!(of("P5").is_none());
        for l in &links {
            let partner = of(&l.linked_to).expect("a party's partner is saved too");
            assert_eq!(partner.group_id, l.group_id);
        }
    }

    const FEBRL4: [&str; 2] = [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/linkage/dataset4a.csv"
        ),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/linkage/dataset4b.csv"
        ),
    ];

    /// Copies the records of `from` whose number (`rec-N-...`) is below 2000, renaming
    /// `rec-1070-...` to `weird`.
    fn copy_renaming(from: &str, to: &Path, weird: &str) {
        let mut reader = csv::Reader::from_path(from).unwrap();
        let mut writer = csv::Writer::from_path(to).unwrap();
        writer.write_record(reader.headers().unwrap()).unwrap();
        for record in reader.records() {
            let record = record.unwrap();
            let id = record[0].trim();
            let number: u32 = id.split('-').nth(1).unwrap().parse().unwrap();
            if number >= 2000 {
                continue;
            }
            let id = if number == 1070 { weird } else { id };
            writer
                .write_record(std::iter::once(id).chain(record.iter().skip(1)))
                .unwrap();
        }
        writer.flush().unwrap();
    }

    fn rows(path: &Path) -> Vec<Vec<String>> {
        csv::Reader::from_path(path)
            .unwrap()
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect()
    }

    /// Ids with a comma, a quote and a line break are written quoted, read back whole, and a
    /// pair of them can be explained.
    #[test]
    fn ids_that_need_quoting_round_trip_through_the_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let (left_id, right_id) = ("rec-1070, \"org\"\nsecond line", "rec-1070 \"dup\",\r\n0");
        let (left, right) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        copy_renaming(FEBRL4[0], &left, left_id);
        copy_renaming(FEBRL4[1], &right, right_id);
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let request = LinkRequest {
            left,
            right: Some(right),
            settings: None,
            id_column: "rec_id".into(),
            out: out.clone(),
            min_pair_probability: 0.5,
            ignore: vec![],
            labels: None,
            train_on_labels: false,
        };
        let report = link_files(&request, &crate::Silent).unwrap();
        assert!(report.links > 500, "{} links", report.links);

        let pairs = rows(&out.join("pairs.csv"));
        assert!(
            pairs
                .iter()
                .any(|p| p[0] == left_id && p[1] == right_id && p[4] == "1"),
            "the renamed pair is linked"
        );
        assert!(pairs.iter().all(|p| p.len() == 5));
        let clusters = rows(&out.join("clusters.csv"));
        let cluster_of = |id: &str| {
            clusters
                .iter()
                .find(|c| c[0] == id)
                .map(|c| c[1].clone())
                .unwrap()
        };
        assert_eq!(cluster_of(left_id), cluster_of(right_id));
        assert_eq!(clusters.len(), report.records.iter().sum::<usize>());

        let explained = explain_link(&out, left_id, right_id).unwrap();
        assert!(explained.linked);
        assert_eq!(explained.left_id, left_id);
    }
}
