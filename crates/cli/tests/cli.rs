//! Black-box tests of the `borderlens` binary: bad input, idempotent import, conflicts, the
//! train → evaluate → score → explain chain on the bundled sample, clear errors, and the demo.
//!
//! Every test works in its own temporary directory with its own database. The store is checked
//! through the CLI itself: re-importing a file reports how many of its records are already stored
//! identically (`unchanged`), new (`inserted`) or stored with other values (`conflicts`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

const SAMPLE_TRAIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/sample/df_syn_train_eng.csv"
);
const SAMPLE_VALID: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/sample/df_syn_valid_eng.csv"
);
const REPO_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Column index of `Item Price` in the sample layout.
const ITEM_PRICE: usize = 19;
/// Column index of `HS6 Code`.
const HS6: usize = 12;
/// Column index of `Declarant ID`.
const DECLARANT: usize = 8;

// ---------------------------------------------------------------------------------------------
// helpers

fn borderlens(db: &Path, args: &[&str]) -> Output {
    borderlens_in(None, db, args)
}

fn borderlens_in(dir: Option<&Path>, db: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_borderlens"));
    command.arg("--db").arg(db).args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().expect("cannot run the borderlens binary")
}

fn code(out: &Output) -> i32 {
    out.status
        .code()
        .expect("borderlens was killed by a signal")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The one JSON object that `--json` prints, with the run's stderr in the panic message.
fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); status {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            stdout(out),
            stderr(out)
        )
    })
}

/// Asserts the exit status, showing both streams when it is not the expected one.
fn assert_exit(out: &Output, expected: i32) {
    assert_eq!(
        code(out),
        expected,
        "unexpected exit status\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// `import --json FILE` and the report of that one file.
fn import_json(db: &Path, file: &Path) -> (Output, Value) {
    let out = borderlens(db, &["--json", "import", path_str(file)]);
    let report = json(&out);
    let files = report["files"].as_array().expect("files is an array");
    assert_eq!(files.len(), 1, "one report per file: {report:#}");
    let file = files[0].clone();
    (out, file)
}

fn count(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("'{key}' is not a count in {report:#}"))
}

/// The header line and the first `n` data records of the training sample, as bytes.
fn sample(n: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let text = std::fs::read(SAMPLE_TRAIN).expect("sample file is readable");
    let mut lines = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec());
    let header = lines.next().expect("sample has a header");
    let rows: Vec<Vec<u8>> = lines.take(n).collect();
    assert_eq!(rows.len(), n, "sample has {n} records");
    (header, rows)
}

fn fields(row: &[u8]) -> Vec<String> {
    String::from_utf8(row.to_vec())
        .expect("sample rows are UTF-8")
        .split(',')
        .map(str::to_string)
        .collect()
}

fn field(row: &[u8], index: usize) -> String {
    fields(row)[index].clone()
}

fn with_field(row: &[u8], index: usize, value: &str) -> Vec<u8> {
    let mut f = fields(row);
    f[index] = value.to_string();
    f.join(",").into_bytes()
}

fn write_csv(dir: &Path, name: &str, header: &[u8], rows: &[Vec<u8>]) -> PathBuf {
    let mut bytes = header.to_vec();
    bytes.push(b'\n');
    for row in rows {
        bytes.extend_from_slice(row);
        bytes.push(b'\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("cannot write test CSV");
    path
}

fn db_in(dir: &TempDir) -> PathBuf {
    dir.path().join("t.db")
}

fn assert_svg(path: &Path) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
    assert!(
        text.trim_start().starts_with("<svg") && text.trim_end().ends_with("</svg>"),
        "{} is not an SVG document: {}",
        path.display(),
        &text[..text.len().min(200)]
    );
}

/// Imports both sample files and trains `m` (fraud, 2020, 40 trees) in a fresh database.
fn trained_on_sample(dir: &TempDir, extra: &[&str]) -> (PathBuf, Value) {
    let db = db_in(dir);
    let out = borderlens(&db, &["import", SAMPLE_TRAIN, SAMPLE_VALID]);
    assert_exit(&out, 0);
    let report = train_sample_model(&db, extra);
    (db, report)
}

fn train_sample_model(db: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "--json",
        "train",
        "--label",
        "fraud",
        "--until",
        "2020-12-31",
        "--model",
        "m",
        "--trees",
        "40",
        "--no-early-stopping",
    ];
    args.extend_from_slice(extra);
    let out = borderlens(db, &args);
    assert_exit(&out, 0);
    json(&out)
}

/// A database holding the first 300 sample records (2020-01-01..03, 60 frauds) and a tiny model `s`.
fn small_model(dir: &TempDir) -> (PathBuf, Vec<Vec<u8>>) {
    let db = db_in(dir);
    let (header, rows) = sample(300);
    let file = write_csv(dir.path(), "small.csv", &header, &rows);
    let (out, report) = import_json(&db, &file);
    assert_exit(&out, 0);
    assert_eq!(count(&report, "inserted"), 300);
    let out = borderlens(
        &db,
        &[
            "train",
            "--model",
            "s",
            "--until",
            "2020-12-31",
            "--trees",
            "5",
        ],
    );
    assert_exit(&out, 0);
    (db, rows)
}

// ---------------------------------------------------------------------------------------------
// 1. bad input

/// Five valid sample records with one bad record at line 4 (header = line 1), the file with the
/// real record in its place, and checks that only the five valid ones are stored.
fn check_one_bad_record(
    name: &str,
    corrupt: impl Fn(&[u8]) -> Vec<u8>,
    expected_field: Option<&str>,
) {
    // Arrange
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let (header, rows) = sample(6);
    let (valid, real) = (&rows[..5], &rows[5]);
    let with_bad = [
        valid[0].clone(),
        valid[1].clone(),
        corrupt(real),
        valid[2].clone(),
        valid[3].clone(),
        valid[4].clone(),
    ];
    let bad_file = write_csv(dir.path(), &format!("{name}.csv"), &header, &with_bad);
    let mut fixed = with_bad.clone();
    fixed[2] = real.clone();
    let fixed_file = write_csv(dir.path(), &format!("{name}-fixed.csv"), &header, &fixed);
    let bad_path = path_str(&bad_file);

    // Act: a person imports it
    let out = borderlens(&db, &["import", bad_path]);

    // Assert: exit 1, and stderr names the file, the line and the field
    assert_exit(&out, 1);
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains(&format!("{bad_path}:4:")))
        .unwrap_or_else(|| panic!("stderr does not name {bad_path} line 4:\n{err}"));
    if let Some(f) = expected_field {
        assert!(line.contains(f), "stderr does not name field '{f}': {line}");
    }

    // Act: a machine imports it again
    let (out, report) = import_json(&db, &bad_file);

    // Assert: the JSON report names file, line and field; the five valid records are stored
    assert_exit(&out, 1);
    assert_eq!(report["file"], bad_path);
    assert!(report["file_error"].is_null(), "{report:#}");
    assert_eq!(count(&report, "records"), 6, "{report:#}");
    assert_eq!(count(&report, "inserted"), 0, "{report:#}");
    assert_eq!(count(&report, "unchanged"), 5, "{report:#}");
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{report:#}");
    assert_eq!(rejected[0]["file"], bad_path);
    assert_eq!(rejected[0]["line"], 4);
    match expected_field {
        Some(f) => assert_eq!(rejected[0]["field"], f),
        None => assert!(rejected[0]["field"].is_null(), "{report:#}"),
    }
    let message = rejected[0]["message"].as_str().unwrap();
    assert!(message.contains(&format!("{bad_path}:4:")), "{message}");

    // Act: the corrected file
    let (out, report) = import_json(&db, &fixed_file);

    // Assert: the bad record was not stored (now new), the five valid ones were, nothing else
    assert_exit(&out, 0);
    assert_eq!(count(&report, "inserted"), 1, "{report:#}");
    assert_eq!(count(&report, "unchanged"), 5, "{report:#}");
    assert_eq!(report["conflicts"].as_array().unwrap().len(), 0);
    assert_eq!(report["rejected"].as_array().unwrap().len(), 0);
}

#[test]
fn a_record_with_missing_fields_is_rejected_and_the_rest_stored() {
    check_one_bad_record(
        "broken",
        |row| {
            let f = fields(row);
            f[..5].join(",").into_bytes()
        },
        None,
    );
}

#[test]
fn a_non_utf8_byte_in_a_field_is_rejected_and_the_rest_stored() {
    check_one_bad_record(
        "not-utf8",
        |row| {
            let f = fields(row);
            let mut out = f[..DECLARANT].join(",").into_bytes();
            out.push(b',');
            out.extend_from_slice(&f[DECLARANT].as_bytes()[..3]);
            out.push(0xFF);
            out.extend_from_slice(&f[DECLARANT].as_bytes()[3..]);
            out.push(b',');
            out.extend_from_slice(f[DECLARANT + 1..].join(",").as_bytes());
            out
        },
        Some("Declarant ID"),
    );
}

#[test]
fn a_ten_digit_hs_code_is_rejected_and_the_rest_stored() {
    check_one_bad_record(
        "hs10",
        |row| {
            let hs = field(row, HS6);
            with_field(row, HS6, &format!("{hs}1000"))
        },
        Some("HS6 Code"),
    );
}

#[test]
fn a_file_with_a_renamed_column_is_refused_naming_the_missing_column() {
    // Arrange
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let (header, rows) = sample(5);
    let renamed = String::from_utf8(header.clone())
        .unwrap()
        .replace("Net Mass", "Net Weight");
    let bad_file = write_csv(dir.path(), "renamed.csv", renamed.as_bytes(), &rows);
    let good_file = write_csv(dir.path(), "good.csv", &header, &rows);
    let bad_path = path_str(&bad_file);

    // Act
    let text = borderlens(&db, &["import", bad_path]);
    let (out, report) = import_json(&db, &bad_file);

    // Assert: refused whole, naming file and column
    assert_exit(&text, 1);
    let err = stderr(&text);
    assert!(
        err.contains(bad_path) && err.contains("'Net Mass'"),
        "stderr does not name the file and the missing column:\n{err}"
    );
    assert_exit(&out, 1);
    let file_error = report["file_error"].as_str().expect("file_error is set");
    assert!(file_error.contains(bad_path), "{file_error}");
    assert!(file_error.contains("'Net Mass'"), "{file_error}");
    assert_eq!(count(&report, "inserted"), 0);

    // Assert: nothing of it was stored
    let (out, report) = import_json(&db, &good_file);
    assert_exit(&out, 0);
    assert_eq!(count(&report, "inserted"), 5, "{report:#}");
    assert_eq!(count(&report, "unchanged"), 0, "{report:#}");
}

#[test]
fn an_empty_file_is_refused_with_a_clear_message() {
    // Arrange
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, b"").unwrap();
    let (header, rows) = sample(5);
    let good_file = write_csv(dir.path(), "good.csv", &header, &rows);

    // Act
    let text = borderlens(&db, &["import", path_str(&empty)]);
    let (out, report) = import_json(&db, &empty);

    // Assert
    assert_exit(&text, 1);
    let err = stderr(&text);
    assert!(
        err.contains(path_str(&empty)) && err.contains("empty"),
        "stderr does not say the file is empty:\n{err}"
    );
    assert_exit(&out, 1);
    let file_error = report["file_error"].as_str().expect("file_error is set");
    assert!(file_error.contains("empty"), "{file_error}");
    assert_eq!(count(&report, "records"), 0);
    assert_eq!(count(&report, "inserted"), 0);
    let (out, report) = import_json(&db, &good_file);
    assert_exit(&out, 0);
    assert_eq!(count(&report, "inserted"), 5, "{report:#}");
}

// ---------------------------------------------------------------------------------------------
// 2. idempotent import, strict mode

#[test]
fn importing_the_same_file_twice_changes_nothing() {
    // Arrange
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let valid = Path::new(SAMPLE_VALID);

    // Act
    let (first_out, first) = import_json(&db, valid);
    let (second_out, second) = import_json(&db, valid);

    // Assert
    assert_exit(&first_out, 0);
    assert_eq!(count(&first, "records"), 8134);
    assert_eq!(count(&first, "inserted"), 8134);
    assert_exit(&second_out, 0);
    assert_eq!(count(&second, "inserted"), 0, "{second:#}");
    assert_eq!(count(&second, "unchanged"), 8134, "{second:#}");
    assert_eq!(second["conflicts"].as_array().unwrap().len(), 0);
}

/// Ctrl-C (SIGINT sent to the process) while the second of three files is read: the first file
/// was committed and stays, the second is rolled back, the third is never read, and the error
/// names each. The second file is a named pipe, so the signal lands while it is being read;
/// the mapping is given, so that no header row is read before the import (the pipe opens for
/// writing once the import reads it, after the first file is committed).
#[cfg(target_os = "linux")]
#[test]
fn sigint_during_an_import_of_several_files_names_what_was_saved() {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let (header, rows) = sample(300);
    let first = write_csv(dir.path(), "first.csv", &header, &rows[..100]);
    let third = write_csv(dir.path(), "third.csv", &header, &rows[200..]);
    let second = dir.path().join("second.csv");
    // The KCS layout as a mapping file: the described sample's, without its descriptions.
    let described =
        std::fs::read_to_string(format!("{}/data/sample-described/mapping.json", REPO_ROOT))
            .unwrap();
    let kcs = described
        .replace("\"Cleaned Goods Description\"", "null")
        .replace("\"Goods Description\"", "null");
    assert_ne!(kcs, described);
    let mapping = dir.path().join("mapping.json");
    std::fs::write(&mapping, kcs).unwrap();
    let made = Command::new("mkfifo").arg(&second).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_borderlens"))
        .arg("--db")
        .arg(&db)
        .args([
            "import",
            "--mapping",
            path_str(&mapping),
            path_str(&first),
            path_str(&second),
            path_str(&third),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stderr, line by line as it comes: the handler says it is stopping once its flag is set.
    let (lines, said) = std::sync::mpsc::channel::<String>();
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr_pipe)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    // The pipe opens for writing once the import reads it, that is after the first file is
    // committed. O_NONBLOCK (Linux's 0o4000): the open fails at once while nobody reads.
    // (The first file is committed by then: the store holds it before the pipe is opened.)
    let started = Instant::now();
    let mut pipe = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(0o4000)
            .open(&second)
        {
            Ok(pipe) => break pipe,
            Err(_) if started.elapsed() < Duration::from_secs(60) => {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "the import ended early"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the import never read the second file: {e}"),
        }
    };
    let mut part = header.clone();
    part.push(b'\n');
    for row in &rows[100..150] {
        part.extend_from_slice(row);
        part.push(b'\n');
    }
    pipe.write_all(&part).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut message = String::new();
    while !message.contains("stopping") {
        let line = said
            .recv_timeout(Duration::from_secs(60))
            .expect("the import never said it was stopping");
        message.push_str(&line);
        message.push('\n');
    }
    // More records after the signal: the reader sees the flag at the next one.
    let mut rest = Vec::new();
    for row in &rows[150..200] {
        rest.extend_from_slice(row);
        rest.push(b'\n');
    }
    let _ = pipe.write_all(&rest);
    drop(pipe);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    message.extend(said.try_iter().map(|line| line + "\n"));

    assert_eq!(status.code(), Some(2), "{message}");
    assert!(
        message.contains(&format!(
            "interrupted: saved {}; not saved: {}, {}",
            first.display(),
            second.display(),
            third.display()
        )),
        "{message}"
    );
    // The first file is stored whole; nothing of the second or the third is.
    let (_, again) = import_json(&db, &first);
    assert_eq!(count(&again, "unchanged"), 100, "{again:#}");
    let read_part = write_csv(dir.path(), "second-part.csv", &header, &rows[100..150]);
    let (_, part) = import_json(&db, &read_part);
    assert_eq!(count(&part, "inserted"), 50, "{part:#}");
    let (_, third_report) = import_json(&db, &third);
    assert_eq!(count(&third_report, "inserted"), 100, "{third_report:#}");
}

#[test]
fn strict_import_refuses_the_whole_file_for_one_bad_record() {
    // Arrange
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let (header, rows) = sample(6);
    let (valid, real) = (&rows[..5], &rows[5]);
    let mut with_bad = valid.to_vec();
    with_bad.insert(2, with_field(real, HS6, "4408901000"));
    let bad_file = write_csv(dir.path(), "strict.csv", &header, &with_bad);
    let good_file = write_csv(dir.path(), "good.csv", &header, valid);

    // Act
    let out = borderlens(&db, &["--json", "import", "--strict", path_str(&bad_file)]);

    // Assert
    assert_exit(&out, 1);
    let report = json(&out)["files"][0].clone();
    assert_eq!(count(&report, "inserted"), 0, "{report:#}");
    assert!(report["file_error"].is_string(), "{report:#}");
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{report:#}");
    assert_eq!(rejected[0]["line"], 4);
    assert_eq!(rejected[0]["field"], "HS6 Code");
    let (out, report) = import_json(&db, &good_file);
    assert_exit(&out, 0);
    assert_eq!(
        count(&report, "inserted"),
        5,
        "nothing of the strict file is kept: {report:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. conflicts

#[test]
fn a_conflicting_record_is_reported_and_the_stored_original_kept() {
    // Arrange: 300 records and a model, so that `explain` can show what is stored
    let dir = TempDir::new().unwrap();
    let (db, rows) = small_model(&dir);
    let (header, _) = sample(0);
    let original = &rows[0];
    let id = field(original, 0);
    let price = field(original, ITEM_PRICE);
    let changed = with_field(original, ITEM_PRICE, "999.5");
    assert_ne!(price, "999.5");
    let conflict_file = write_csv(dir.path(), "conflict.csv", &header, &[changed]);
    let original_file = write_csv(
        dir.path(),
        "original.csv",
        &header,
        std::slice::from_ref(original),
    );

    // Act
    let (out, report) = import_json(&db, &conflict_file);

    // Assert: reported as a conflict
    assert_exit(&out, 1);
    assert_eq!(count(&report, "inserted"), 0, "{report:#}");
    assert_eq!(count(&report, "unchanged"), 0, "{report:#}");
    let conflicts = report["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{report:#}");
    let text = conflicts[0].as_str().unwrap();
    assert!(
        text.contains(&id) && text.contains(&price) && text.contains("999.5"),
        "the conflict names the declaration and both values: {text}"
    );

    // Assert: the stored value is the original
    let out = borderlens(
        &db,
        &["--json", "explain", "--model", "s", "--declaration", &id],
    );
    assert_exit(&out, 0);
    let declared = json(&out)["declared"]["item_price"].clone();
    let stored: f64 = declared.as_str().unwrap().parse().unwrap();
    assert_eq!(
        stored,
        price.parse::<f64>().unwrap(),
        "stored item price changed"
    );
    let (out, report) = import_json(&db, &original_file);
    assert_exit(&out, 0);
    assert_eq!(count(&report, "unchanged"), 1, "{report:#}");
}

// ---------------------------------------------------------------------------------------------
// 4. end to end on the sample

#[test]
fn training_is_reproducible_and_versioned() {
    // Arrange
    let dir = TempDir::new().unwrap();

    // Act
    let (db, first) = trained_on_sample(&dir, &[]);
    let second = train_sample_model(&db, &[]);
    let other_seed = train_sample_model(&db, &["--seed", "7"]);
    let models = json(&borderlens(&db, &["--json", "models"]));

    // Assert
    assert_eq!(first["version"], 1);
    assert_eq!(first["n_trees"], 40);
    assert_eq!(first["n_rows"], 37385);
    let sha = first["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert_eq!(second["version"], 2);
    assert_eq!(
        second["sha256"], sha,
        "same data + options + seed → same bytes"
    );
    assert_eq!(other_seed["version"], 3);
    assert_ne!(other_seed["sha256"], sha, "another seed → another model");
    let listed: Vec<(u64, String)> = models
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["name"], "m");
            (
                m["version"].as_u64().unwrap(),
                m["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let other = other_seed["sha256"].as_str().unwrap().to_string();
    assert_eq!(
        listed,
        vec![(1, sha.to_string()), (2, sha.to_string()), (3, other)]
    );
}

#[test]
fn evaluate_score_and_explain_on_the_sample() {
    // Arrange
    let dir = TempDir::new().unwrap();
    let (db, trained) = trained_on_sample(&dir, &[]);
    assert_eq!(trained["version"], 1);
    let rate_chart = dir.path().join("rates.svg");
    let waterfall = dir.path().join("w.svg");

    // Act: evaluate on 2021-Q1
    let out = borderlens(
        &db,
        &[
            "--json",
            "evaluate",
            "--model",
            "m",
            "--from",
            "2021-01-01",
            "--to",
            "2021-03-31",
            "--chart",
            path_str(&rate_chart),
        ],
    );

    // Assert
    assert_exit(&out, 0);
    let evaluation = json(&out);
    for key in ["precision_at", "recall_at", "revenue_at"] {
        let by_rate = evaluation[key]
            .as_object()
            .unwrap_or_else(|| panic!("{key} is not an object: {evaluation:#}"));
        let mut rates: Vec<&str> = by_rate.keys().map(String::as_str).collect();
        rates.sort_by_key(|r| r.parse::<u32>().unwrap());
        assert_eq!(rates, ["1", "2", "5", "10"], "{key}");
        for (rate, value) in by_rate {
            let v = value.as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{key}[{rate}] = {v}");
        }
    }
    let pr_auc = evaluation["pr_auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&pr_auc), "pr_auc {pr_auc}");
    let roc_auc = evaluation["roc_auc"].as_f64().unwrap();
    assert!(roc_auc > 0.7 && roc_auc <= 1.0, "roc_auc {roc_auc}");
    assert_eq!(evaluation["n"], 8134);
    assert_eq!(evaluation["positives"], 1704);
    assert_svg(&rate_chart);

    // Act: score everything after the training period, with reasons
    let out = borderlens(&db, &["--json", "score", "--model", "m", "--explain"]);

    // Assert
    assert_exit(&out, 0);
    let scored = json(&out);
    let items = scored["items"].as_array().unwrap();
    assert_eq!(items.len(), 8134);
    let mut previous = f64::INFINITY;
    for (i, item) in items.iter().enumerate() {
        let score = item["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "score {score}");
        assert!(score <= previous, "not sorted by score at rank {}", i + 1);
        previous = score;
        assert_eq!(item["rank"].as_u64().unwrap(), i as u64 + 1);
        assert!(item["date"].as_str().unwrap() >= "2021-01-01", "{item}");
        let reasons = item["reasons"].as_array().unwrap().len();
        assert!((1..=3).contains(&reasons), "{reasons} reasons: {item}");
    }
    let top = &items[0];
    let top_id = top["declaration_id"].as_str().unwrap();

    // Act: explain the riskiest one
    let out = borderlens(
        &db,
        &[
            "--json",
            "explain",
            "--model",
            "m",
            "--declaration",
            top_id,
            "--chart",
            path_str(&waterfall),
        ],
    );

    // Assert
    assert_exit(&out, 0);
    let explained = json(&out);
    assert_eq!(explained["declaration_id"], top_id);
    let contributions = explained["contributions"].as_array().unwrap();
    assert!(!contributions.is_empty());
    let sum: f64 = contributions
        .iter()
        .map(|c| c["log_odds"].as_f64().unwrap())
        .sum();
    let base = explained["base_log_odds"].as_f64().unwrap();
    let log_odds = explained["log_odds"].as_f64().unwrap();
    assert!(
        (base + sum - log_odds).abs() < 1e-6,
        "base {base} + contributions {sum} != log_odds {log_odds}"
    );
    let explained_score = explained["score"].as_f64().unwrap();
    let ranked_score = top["score"].as_f64().unwrap();
    assert!(
        (explained_score - ranked_score).abs() < 1e-9,
        "explain says {explained_score}, score said {ranked_score}"
    );
    assert_svg(&waterfall);
}

#[test]
fn no_early_stopping_trains_exactly_the_requested_trees() {
    // Arrange: 300 records whose held-out tail would stop boosting early
    let dir = TempDir::new().unwrap();
    let (db, _) = small_model(&dir);

    // Act
    let out = borderlens(
        &db,
        &[
            "--json",
            "train",
            "--model",
            "exact",
            "--until",
            "2020-12-31",
            "--trees",
            "20",
            "--no-early-stopping",
        ],
    );

    // Assert: `--no-early-stopping` is documented as "train exactly --trees trees"
    assert_exit(&out, 0);
    assert_eq!(json(&out)["n_trees"], 20);
}

// ---------------------------------------------------------------------------------------------
// 5. errors: exit 2 and a message that says what is wrong

fn assert_error(out: &Output, needles: &[&str]) {
    assert_exit(out, 2);
    let err = stderr(out);
    for needle in needles {
        assert!(
            err.contains(needle),
            "stderr does not mention '{needle}':\n{err}"
        );
    }
}

#[test]
fn evaluating_an_unknown_model_names_it() {
    let dir = TempDir::new().unwrap();
    let out = borderlens(
        &db_in(&dir),
        &[
            "evaluate",
            "--model",
            "ghost",
            "--from",
            "2021-01-01",
            "--to",
            "2021-03-31",
        ],
    );
    assert_error(&out, &["'ghost'"]);
}

#[test]
fn explaining_an_unknown_declaration_names_it() {
    let dir = TempDir::new().unwrap();
    let (db, _) = small_model(&dir);
    let out = borderlens(
        &db,
        &["explain", "--model", "s", "--declaration", "NO-SUCH-ID"],
    );
    assert_error(&out, &["NO-SUCH-ID"]);
}

#[test]
fn training_with_an_unknown_label_is_refused() {
    let dir = TempDir::new().unwrap();
    let out = borderlens(
        &db_in(&dir),
        &[
            "train",
            "--model",
            "m",
            "--until",
            "2020-12-31",
            "--label",
            "nonsense",
        ],
    );
    assert_error(&out, &["'nonsense'", "fraud", "critical"]);
}

#[test]
fn training_with_an_unknown_imbalance_option_is_refused() {
    let dir = TempDir::new().unwrap();
    let out = borderlens(
        &db_in(&dir),
        &[
            "train",
            "--model",
            "m",
            "--until",
            "2020-12-31",
            "--imbalance",
            "bogus",
        ],
    );
    assert_error(&out, &["'bogus'", "smote"]);
}

#[test]
fn training_until_a_date_before_any_data_is_refused() {
    let dir = TempDir::new().unwrap();
    let (db, _) = small_model(&dir);
    let out = borderlens(&db, &["train", "--model", "m", "--until", "2019-12-31"]);
    assert_error(&out, &["no labelled declarations", "2019-12-31"]);
}

// ---------------------------------------------------------------------------------------------
// 6. the demo

#[test]
fn demo_writes_its_charts() {
    // Arrange
    let dir = TempDir::new().unwrap();
    let out_dir = dir.path().join("o");

    // Act
    let out = borderlens_in(
        Some(Path::new(REPO_ROOT)),
        &db_in(&dir),
        &["demo", "--no-serve", "--out", path_str(&out_dir)],
    );

    // Assert
    assert_exit(&out, 0);
    assert_svg(&out_dir.join("rate-curves.svg"));
    assert_svg(&out_dir.join("importance.svg"));
    let waterfalls: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("waterfall-") && name.ends_with(".svg")
        })
        .collect();
    assert_eq!(waterfalls.len(), 1, "{waterfalls:?}");
    assert_svg(&waterfalls[0]);
    // The loop: selection with the bundled policy, a control result, its trace, the audit.
    let text = stdout(&out);
    assert!(
        text.contains("policy port-default@1, model demo@1"),
        "{text}"
    );
    assert!(text.contains("random control: drawn at random"), "{text}");
    assert!(text.contains("recorded result 1"), "{text}");
    assert_svg(&out_dir.join("bias-origin-country.svg"));
    assert_svg(&out_dir.join("drift-psi.svg"));
    // The parties: a constructed register linked, checked against its planted two-id firms,
    // and kept in the store.
    assert!(out_dir.join("parties/parties.csv").exists());
    let check = text
        .lines()
        .find(|l| l.starts_with("against ") && l.contains("labelled pairs"))
        .unwrap_or_else(|| panic!("no label check in {text}"));
    let figure = |name: &str| -> f64 {
        let at = check.find(name).unwrap() + name.len();
        check[at..]
            .split([' ', ','])
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // Measured: precision 0.991, recall 0.476 (docs/linkage.md); a drop of either fails.
    assert!(figure("precision ") > 0.95, "{check}");
    assert!(figure("recall ") > 0.4, "{check}");
    assert!(text.contains("saved in the store: "), "{text}");
}

// ---------------------------------------------------------------------------------------------
// selection loop: policies, decisions, control results, estimates, simulator

const POLICY: &str = r#"{"name": "p", "capacity": {"share": 0.05}, "explore_share": 0.2,
    "exploration": {"kind": "random"}, "documentary_share": 0.02}"#;

/// Sample imported, model `m` trained on 2020, policy `p` stored, 2021-01-04..05 decided.
fn selected_on_sample(dir: &TempDir) -> PathBuf {
    let (db, _) = trained_on_sample(dir, &[]);
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, POLICY).unwrap();
    let out = borderlens(&db, &["policy", "set", path_str(&policy)]);
    assert_exit(&out, 0);
    let out = borderlens(
        &db,
        &[
            "--json",
            "select",
            "--policy",
            "p",
            "--model",
            "m",
            "--from",
            "2021-01-04",
            "--to",
            "2021-01-05",
        ],
    );
    assert_exit(&out, 0);
    let report = json(&out);
    let batches = report["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2);
    assert!(batches
        .iter()
        .all(|b| b["lanes"]["red"].as_u64() >= Some(1)));
    db
}

/// Declaration ids dated `date` in the valid sample file.
fn sample_ids_on(date: &str) -> Vec<String> {
    let text = std::fs::read_to_string(SAMPLE_VALID).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some(date))
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

fn cocaine_seizure(declaration: &str, submission: &str) -> String {
    serde_json::json!({
        "submission_id": submission,
        "declaration_id": declaration,
        "schema_version": "1.0.0",
        "values": {
            "outcome": "contraband", "contraband_type": "drugs", "drug_type": "cocaine",
            "drug_form": "powder", "packaging": "bricks_taped",
            "concealment_method": "false_compartment", "quantity": 12.5, "quantity_unit": "kg",
            "inspection_method": ["physical_full", "sniffer_dog"],
            "inspected_at": "2021-01-05T10:30:00+01:00", "place": "Terminal 3",
            "officer_id": "O17", "remarks": "<script>alert(1)</script> bricks behind panel"
        }
    })
    .to_string()
}

fn record(db: &Path, dir: &TempDir, name: &str, submission: &str) -> Output {
    let file = dir.path().join(name);
    std::fs::write(&file, submission).unwrap();
    borderlens(
        db,
        &[
            "--json",
            "--actor",
            "officer-17",
            "controls",
            "record",
            "--file",
            path_str(&file),
        ],
    )
}

#[test]
fn every_decision_and_result_is_traceable_and_results_are_idempotent() {
    let dir = TempDir::new().unwrap();
    let db = selected_on_sample(&dir);
    let id = sample_ids_on("2021-01-04")[0].clone();

    // Before any result: the decision is there with its π and policy.
    let out = borderlens(&db, &["--json", "explain-decision", &id]);
    assert_exit(&out, 0);
    let trace = json(&out);
    let decision = &trace["decisions"][0];
    assert_eq!(decision["policy"], "p@1");
    assert_eq!(decision["model"], "m@1");
    let pi = decision["pi"].as_f64().unwrap();
    assert!(pi > 0.0 && pi <= 1.0, "every declaration has π > 0: {pi}");
    assert!(
        trace["explanation"]["contributions"]
            .as_array()
            .unwrap()
            .len()
            > 5
    );

    // A result, then the same submission again: stored once.
    let seizure = cocaine_seizure(&id, "sub-1");
    let out = record(&db, &dir, "r1.json", &seizure);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["status"], "recorded");
    assert_eq!(json(&out)["label"], "critical fraud");
    let out = record(&db, &dir, "r1-retry.json", &seizure);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["status"], "duplicate");
    // The same submission id with other content is refused, not silently replaced.
    let other = cocaine_seizure(&id, "sub-1").replace("12.5", "13.5");
    let out = record(&db, &dir, "r1-changed.json", &other);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("already used"), "{}", stderr(&out));

    // An override needs a reason, and is kept beside the original decision.
    let out = borderlens(&db, &["override", &id, "--lane", "green", "--reason", " "]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("reason is mandatory"),
        "{}",
        stderr(&out)
    );
    // A lane that does not exist is refused before anything is read or written.
    let out = borderlens(
        &db,
        &["override", &id, "--lane", "purple", "--reason", "tip"],
    );
    assert_error(&out, &["'purple'", "red, yellow or green"]);
    let lane = if decision["lane"] == "yellow" {
        "red"
    } else {
        "yellow"
    };
    let out = borderlens(
        &db,
        &[
            "--actor",
            "officer-9",
            "override",
            &id,
            "--lane",
            lane,
            "--reason",
            "tip-off",
        ],
    );
    assert_exit(&out, 0);

    let trace = json(&borderlens(&db, &["--json", "explain-decision", &id]));
    let decisions = trace["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[1]["source"], "override");
    assert_eq!(decisions[1]["override_reason"], "tip-off");
    assert_eq!(decisions[1]["actor"], "officer-9");
    assert_eq!(decisions[1]["overrides"], decisions[0]["id"]);
    let results = trace["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "the retry was not doubled");
    assert_eq!(results[0]["outcome"], "contraband");
    assert_eq!(results[0]["recorded_by"], "officer-17");
    assert_eq!(results[0]["values"]["drug_type"], "cocaine");
    // Free text is kept as typed; rendering escapes it.
    assert_eq!(
        results[0]["values"]["remarks"],
        "<script>alert(1)</script> bricks behind panel"
    );
    assert_eq!(trace["label"], "critical fraud");

    // Estimates: every declaration had π > 0 and the imported labels stand for the control
    // results, so the Horvitz–Thompson estimate exists and covers the true rate of the two days;
    // the override is kept out of it.
    let out = borderlens(&db, &["--json", "estimate", "--by", "office"]);
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["overrides"], 1);
    assert_eq!(report["pending"], 0);
    let days = [sample_ids_on("2021-01-04"), sample_ids_on("2021-01-05")].concat();
    assert_eq!(report["declarations"], days.len());
    let text = std::fs::read_to_string(SAMPLE_VALID).unwrap();
    let frauds = text
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1] == "2021-01-04" || f[1] == "2021-01-05") && f[20] == "1"
        })
        .count();
    let truth = frauds as f64 / days.len() as f64;
    let overall = &report["overall"];
    let (low, high) = (
        overall["low"].as_f64().unwrap(),
        overall["high"].as_f64().unwrap(),
    );
    assert!(
        low <= truth && truth <= high,
        "{truth} not in {low}..{high}"
    );
    assert!(report["naive"]["rate"].as_f64().unwrap() > truth);
    // Exchange: a plain export imports back as duplicates (nothing doubled); an anonymised one
    // carries neither the declaration id nor the officer.
    let shared = dir.path().join("shared.json");
    let out = borderlens(
        &db,
        &[
            "controls",
            "export",
            "--sender",
            "XX",
            "--out",
            path_str(&shared),
        ],
    );
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("NOT anonymised: for this administration only"),
        "{}",
        stdout(&out)
    );
    let out = borderlens(&db, &["--json", "controls", "import", path_str(&shared)]);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["duplicates"], 1);
    assert_eq!(json(&out)["recorded"], 0);
    let key = dir.path().join("key.bin");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let anonymous = dir.path().join("anonymous.json");
    let out = borderlens(
        &db,
        &[
            "controls",
            "export",
            "--sender",
            "XX",
            "--anonymise-key",
            path_str(&key),
            "--out",
            path_str(&anonymous),
        ],
    );
    assert_exit(&out, 0);
    let text = std::fs::read_to_string(&anonymous).unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["anonymised"], true);
    assert_eq!(document["results"][0]["values"]["drug_type"], "cocaine");
    for secret in [id.as_str(), "O17", "Terminal 3", "bricks behind panel"] {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }

    // Retraining with inverse-probability weights uses the recorded π: another model.
    let sha = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "train",
            "--until",
            "2021-01-05",
            "--model",
            "w",
            "--trees",
            "10",
            "--no-early-stopping",
        ];
        args.extend_from_slice(extra);
        let out = borderlens(&db, &args);
        assert_exit(&out, 0);
        json(&out)["sha256"].as_str().unwrap().to_string()
    };
    assert_ne!(sha(&[]), sha(&["--ipw"]));

    // Every office gets an estimate: segments are domains of the whole design, not of the
    // handful of random draws that fell in them.
    let segments = report["segments"].as_array().unwrap();
    assert!(segments.len() > 3);
    assert!(
        segments.iter().all(|s| s["estimate"].is_object()),
        "{segments:?}"
    );
}

#[test]
fn bad_control_results_are_refused_naming_the_field() {
    let dir = TempDir::new().unwrap();
    let (db, _) = small_model(&dir);
    let id = {
        let text = std::fs::read_to_string(SAMPLE_TRAIN).unwrap();
        text.lines()
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string()
    };
    // Unknown declaration.
    let out = record(&db, &dir, "a.json", &cocaine_seizure("NO-SUCH-ID", "a"));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("not in the store"),
        "{}",
        stderr(&out)
    );
    // A follow-up the outcome does not ask for.
    let mut bad: Value = serde_json::from_str(&cocaine_seizure(&id, "b")).unwrap();
    bad["values"]["contraband_type"] = "tobacco".into();
    let out = record(&db, &dir, "b.json", &bad.to_string());
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("drug_type: only asked when contraband_type is drugs"),
        "{}",
        stderr(&out)
    );
    // A missing mandatory field.
    let mut bad: Value = serde_json::from_str(&cocaine_seizure(&id, "c")).unwrap();
    bad["values"]
        .as_object_mut()
        .unwrap()
        .remove("inspected_at");
    let out = record(&db, &dir, "c.json", &bad.to_string());
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("inspected_at: required"),
        "{}",
        stderr(&out)
    );
    // Malformed JSON.
    let out = record(&db, &dir, "d.json", "{\"submission_id\": ");
    assert_exit(&out, 2);
    // Nothing of the refused ones was stored.
    let trace = json(&borderlens(&db, &["--json", "explain-decision", &id]));
    assert!(trace["results"].as_array().unwrap().is_empty());
    // Fields on the command line; the derived submission id makes a re-run idempotent.
    let args = [
        "--json",
        "controls",
        "record",
        "--declaration",
        id.as_str(),
        "--set",
        "outcome=no_irregularity",
        "--set",
        "inspection_method=documentary,xray_scan",
        "--set",
        "inspected_at=2020-01-02T09:00:00Z",
        "--set",
        "place=Gate 2",
        "--set",
        "officer_id=O5",
    ];
    // The id is derived from the answers as read, in the text earlier releases hashed: a re-run
    // of a command that an earlier release recorded finds that result.
    let answers = r#"{"inspected_at":"2020-01-02T09:00:00Z","inspection_method":["documentary","xray_scan"],"officer_id":"O5","outcome":"no_irregularity","place":"Gate 2"}"#;
    let derived = format!(
        "cli-{:016x}",
        borderlens_app::stable_hash(&format!("{id}\n{answers}"))
    );
    for status in ["recorded", "duplicate"] {
        let out = borderlens(&db, &args);
        assert_exit(&out, 0);
        assert_eq!(json(&out)["status"], status);
        assert_eq!(json(&out)["label"], "compliant");
        assert_eq!(json(&out)["submission_id"], derived.as_str());
    }
    // Answers are read by the field's type: an officer id of digits is text, a quantity must be a
    // number; a refusal names every problem at once.
    let out = borderlens(
        &db,
        &[
            "controls",
            "record",
            "--declaration",
            id.as_str(),
            "--set",
            "outcome=contraband",
            "--set",
            "contraband_type=tobacco",
            "--set",
            "quantity=12 kg",
            "--set",
            "officer_id=4711",
            "--set",
            "vesel=x",
        ],
    );
    assert_exit(&out, 2);
    let message = stderr(&out);
    assert!(
        message.contains("quantity: '12 kg' is not a number")
            && message.contains("tobacco_product: required when contraband_type is tobacco")
            && message.contains("vesel: not in form schema")
            && !message.contains("officer_id"),
        "{message}"
    );
    // A bulk import reports each bad line and stores the good ones once, even when re-run.
    let lines = format!(
        "{}\n{}\n",
        cocaine_seizure(&id, "bulk-1"),
        cocaine_seizure("NO-SUCH-ID", "bulk-2")
    );
    let file = dir.path().join("bulk.jsonl");
    std::fs::write(&file, lines).unwrap();
    for (recorded, duplicates) in [(1, 0), (0, 1)] {
        let out = borderlens(&db, &["--json", "controls", "import", path_str(&file)]);
        assert_exit(&out, 1);
        let report = json(&out);
        assert_eq!(report["recorded"], recorded);
        assert_eq!(report["duplicates"], duplicates);
        let rejected = report["rejected"].as_array().unwrap();
        assert_eq!(rejected.len(), 1);
        assert!(
            rejected[0].as_str().unwrap().contains("line 2"),
            "{rejected:?}"
        );
    }
}

#[test]
fn simulate_compares_policies_and_estimates_without_bias() {
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    assert_exit(&borderlens(&db, &["import", SAMPLE_TRAIN]), 0);
    let charts = dir.path().join("charts");
    let out = borderlens(
        &db,
        &[
            "--json",
            "simulate",
            "--capacity",
            "5",
            "--to",
            "2020-06-30",
            "--policies",
            "exploit,exploit_random",
            "--charts",
            path_str(&charts),
        ],
    );
    assert_exit(&out, 0);
    let report = json(&out);
    for name in ["exploit", "exploit_random"] {
        let policy = &report["policies"][name];
        for key in [
            "precision",
            "recall",
            "revenue_share",
            "last_quarter_revenue_share",
            "estimate_coverage",
        ] {
            let value = policy[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{name}.{key}"));
            assert!((0.0..=1.0).contains(&value), "{name}.{key} = {value}");
        }
    }
    let exploit = &report["policies"]["exploit"];
    let hybrid = &report["policies"]["exploit_random"];
    assert_eq!(exploit["estimator"], "naive");
    assert_eq!(hybrid["estimator"], "horvitz_thompson");
    // The hybrid's 95% intervals contain the true weekly rate in most weeks; exploitation's
    // hits/inspected does not.
    let hybrid_coverage = hybrid["estimate_coverage"].as_f64().unwrap();
    let exploit_coverage = exploit["estimate_coverage"].as_f64().unwrap();
    assert!(hybrid_coverage >= 0.8, "{hybrid_coverage}");
    assert!(exploit_coverage < hybrid_coverage, "{exploit_coverage}");
    let true_rate = report["true_rate"].as_f64().unwrap();
    let pooled = &hybrid["pooled_estimate"];
    assert!(pooled["low"].as_f64().unwrap() <= true_rate);
    assert!(true_rate <= pooled["high"].as_f64().unwrap());
    for chart in [
        "simulation-estimate-exploit",
        "simulation-estimate-exploit_random",
        "simulation-precision",
        "simulation-revenue",
    ] {
        assert_svg(&charts.join(format!("{chart}.svg")));
    }
}

// ---------------------------------------------------------------------------------------------
// record linkage

const FEBRL4_A: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/linkage/dataset4a.csv"
);
const FEBRL4_B: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/linkage/dataset4b.csv"
);

/// Precision, recall and F1 of the linked pairs in `pairs.csv` against FEBRL4's truth.
fn febrl4_scores(out: &Path) -> (f64, f64, f64) {
    let text = std::fs::read_to_string(out.join("pairs.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("left_id,right_id,match_weight,match_probability,linked")
    );
    let (mut links, mut right) = (0.0, 0.0);
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f[4] == "1" {
            links += 1.0;
            let number = |id: &str| id.split('-').nth(1).unwrap().to_string();
            if number(f[0]) == number(f[1]) {
                right += 1.0;
            }
        }
    }
    (
        right / links,
        right / 5000.0,
        2.0 * right / (links + 5000.0),
    )
}

#[test]
fn febrl4_links_without_settings_or_labels() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("linked");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "link",
            "--left",
            FEBRL4_A,
            "--right",
            FEBRL4_B,
            "--id-column",
            "rec_id",
            "--out",
            path_str(&out),
        ];
        args.extend_from_slice(extra);
        let result = borderlens(&db_in(&dir), &args);
        assert_exit(&result, 0);
        json(&result)
    };
    let report = run(&[]);
    assert_eq!(report["inferred_settings"], true);
    let (precision, recall, f1) = febrl4_scores(&out);
    assert!(f1 >= 0.999, "precision {precision} recall {recall} F1 {f1}");
    // Every record of both files is in clusters.csv; a linked pair shares its cluster.
    let clusters = std::fs::read_to_string(out.join("clusters.csv")).unwrap();
    assert_eq!(clusters.lines().next(), Some("record_id,cluster_id"));
    assert_eq!(clusters.lines().count(), 1 + 10_000);
    assert_svg(&out.join("match_weights.svg"));
    // The inferred settings, kept and given back, give the same links.
    let kept = dir.path().join("settings.toml");
    std::fs::copy(out.join("settings.toml"), &kept).unwrap();
    let first = std::fs::read_to_string(out.join("pairs.csv")).unwrap();
    let report = run(&["--settings", path_str(&kept)]);
    assert_eq!(report["inferred_settings"], false);
    assert_eq!(
        std::fs::read_to_string(out.join("pairs.csv")).unwrap(),
        first
    );

    // Any pair can be explained from the run's own files: the weights add up, with a chart.
    let chart = dir.path().join("waterfall.svg");
    let explained = borderlens(
        &db_in(&dir),
        &[
            "--json",
            "link",
            "explain",
            "rec-1070-org",
            "rec-1070-dup-0",
            "--out",
            path_str(&out),
            "--chart",
            path_str(&chart),
        ],
    );
    assert_exit(&explained, 0);
    let e = json(&explained);
    assert_eq!(e["linked"], true);
    let sum: f64 = e["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["weight"].as_f64().unwrap())
        .sum::<f64>()
        + e["prior_weight"].as_f64().unwrap();
    assert!((sum - e["weight"].as_f64().unwrap()).abs() < 1e-9);
    assert_svg(&chart);
    let unknown = borderlens(
        &db_in(&dir),
        &[
            "link",
            "explain",
            "rec-1070-org",
            "nobody",
            "--out",
            path_str(&out),
        ],
    );
    assert_error(&unknown, &["no record 'nobody'", "dataset4b.csv"]);
}

#[test]
fn labels_check_the_links_and_can_train_m() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("linked");
    // 300 known pairs, and one wrong label: its left record is linked to its true partner,
    // which the check counts as a wrong link and a missed label.
    let labels = dir.path().join("labels.csv");
    let mut text = String::from("left_id,right_id\n");
    let a = std::fs::read_to_string(FEBRL4_A).unwrap();
    let ids: Vec<String> = a
        .lines()
        .skip(1)
        .take(300)
        .map(|l| l.split(',').next().unwrap().trim().to_string())
        .collect();
    for id in &ids[..299] {
        text.push_str(&format!("{id},{}\n", id.replace("-org", "-dup-0")));
    }
    let wrong_partner = ids[0].replace("-org", "-dup-0");
    text.push_str(&format!("{},{wrong_partner}\n", ids[299]));
    std::fs::write(&labels, text).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "link",
            "--left",
            FEBRL4_A,
            "--right",
            FEBRL4_B,
            "--id-column",
            "rec_id",
            "--out",
            path_str(&out),
            "--labels",
            path_str(&labels),
        ];
        args.extend_from_slice(extra);
        let result = borderlens(&db_in(&dir), &args);
        assert_exit(&result, 0);
        json(&result)
    };
    let report = run(&[]);
    let check = &report["label_check"];
    assert_eq!(check["labelled_pairs"], 300);
    assert_eq!(check["found"], 299, "{check}");
    assert_eq!(check["wrong_links"], 1, "{check}");
    assert_eq!(check["trained_on_labels"], false);
    let report = run(&["--train-on-labels"]);
    assert_eq!(report["label_check"]["trained_on_labels"], true);
    let (_, _, f1) = febrl4_scores(&out);
    assert!(f1 >= 0.999, "F1 {f1} with m from 300 labels");
    // A label naming an unknown record is refused, with its line and field.
    std::fs::write(&labels, "left_id,right_id\nrec-1070-org,rec-nobody\n").unwrap();
    let result = borderlens(
        &db_in(&dir),
        &[
            "link",
            "--left",
            FEBRL4_A,
            "--right",
            FEBRL4_B,
            "--id-column",
            "rec_id",
            "--out",
            path_str(&out),
            "--labels",
            path_str(&labels),
        ],
    );
    assert_exit(&result, 2);
    assert_error(
        &result,
        &["labels.csv, line 2, field right_id", "rec-nobody"],
    );
}

#[test]
fn link_benchmark_runs_on_generated_data() {
    let dir = TempDir::new().unwrap();
    let work = dir.path().join("bench");
    let result = borderlens(
        &db_in(&dir),
        &[
            "--json",
            "bench",
            "link",
            "--records",
            "500",
            "--no-splink",
            "--work",
            path_str(&work),
        ],
    );
    assert_exit(&result, 0);
    let report = json(&result);
    let ours = &report["borderlens"];
    assert_eq!(ours["records_per_side"], 500);
    assert!(ours["f1"].as_f64().unwrap() > 0.95, "{ours}");
    assert!(ours["records_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["splink"].is_null());
    assert!(work.join("febrl-like-500-42/a.csv").exists());
    assert!(work.join("febrl-like-500-42/bench.json").exists());
}

#[test]
fn link_benchmark_runs_splink_from_any_folder() {
    // A stand-in for Python with Splink: writes the result file the script would.
    let dir = TempDir::new().unwrap();
    let python = dir.path().join("fake-python");
    std::fs::write(
        &python,
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ \"$1\" = --out ]; then out=$2; fi; shift; done\n\
         test -f \"$(dirname \"$out\")/bench_splink.py\" || exit 3\n\
         echo '{\"f1\": 0.5, \"train_wall_s\": 1, \"predict_wall_s\": 1}' > \"$out\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = dir.path().join("bench");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let run = |python: &str| {
        borderlens_in(
            Some(&elsewhere),
            &db_in(&dir),
            &[
                "--json",
                "bench",
                "link",
                "--records",
                "200",
                "--python",
                python,
                "--work",
                path_str(&work),
            ],
        )
    };
    let result = run(path_str(&python));
    assert_exit(&result, 0);
    assert_eq!(json(&result)["splink"]["f1"], 0.5, "{}", stderr(&result));
    // A Python that cannot run is said in the report, not only on stderr.
    let result = run("/nonexistent/python");
    assert_exit(&result, 0);
    let skipped = json(&result)["splink"]["skipped"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(skipped.contains("/nonexistent/python"), "{skipped}");
}

#[test]
fn company_dedupe_benchmark_reports_bcubed_scores() {
    let dir = TempDir::new().unwrap();
    let work = dir.path().join("bench");
    let result = borderlens(
        &db_in(&dir),
        &[
            "--json",
            "bench",
            "link-companies",
            "--records",
            "3000",
            "--work",
            path_str(&work),
        ],
    );
    assert_exit(&result, 0);
    let report = json(&result);
    let ours = &report["borderlens"];
    // PATSTAT-like names (legal forms first or last, case, accents, 0.0 for no coordinates):
    // before company normalisation, name blocking, missing values and the dedupe prior, F1 was
    // 0.62 here; while EM trained on the coordinate rules (firms sharing a city-centre geocode
    // taught it that sharing a place is a match) 0.74, below grouping on the first word (0.89).
    let baseline = report["first_token_baseline"]["f1"].as_f64().unwrap();
    assert!(ours["f1"].as_f64().unwrap() > 0.88, "{report}");
    assert!(ours["f1"].as_f64().unwrap() > baseline, "{report}");
    assert!(ours["precision"].as_f64().unwrap() > 0.95, "{report}");
    assert!(
        ours["candidate_pairs"].as_u64().unwrap() < 100_000,
        "{report}"
    );
    assert!(baseline > 0.0);
    assert!(work.join("companies-3000-42/bench.json").exists());
}

#[test]
fn import_benchmark_imports_every_generated_item_twice_and_compares_peak_memory() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("bench");
    let template = format!("{DESCRIBED}/df_syn_valid_eng.csv");
    let result = borderlens(
        &db_in(&dir),
        &[
            "--json",
            "bench",
            "import",
            "--records",
            "3000",
            "--file",
            &template,
            "--work",
            path_str(&work),
        ],
    );
    assert_exit(&result, 0);
    let report = json(&result);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{report}");
    for (run, items) in runs.iter().zip([300, 3000]) {
        assert_eq!(run["items"], items, "{report}");
        let file = &run["report"]["files"][0];
        assert_eq!(file["inserted"], items, "{report}");
        assert_eq!(file["rejected"].as_array().unwrap().len(), 0, "{report}");
        assert!(run["peak_memory_mib"].as_f64().unwrap() > 1.0, "{report}");
    }
    assert!(report["peak_memory_ratio"].as_f64().unwrap() > 0.0);
    // The sample's rows nearly all carry a sender's description, and so do the copies.
    assert!(
        report["items_with_a_description"].as_f64().unwrap() > 0.9,
        "{report}"
    );
    // Too few items to take a tenth of: refused, naming the option.
    let few = borderlens(&db_in(&dir), &["bench", "import", "--records", "5"]);
    assert_ne!(code(&few), 0);
    assert!(stderr(&few).contains("--records"), "{}", stderr(&few));
}

#[test]
fn settings_that_do_not_fit_the_data_name_the_settings_file() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("people.csv");
    std::fs::write(&data, "id,name\n1,Acme\n2,Acme Ltd\n").unwrap();
    let settings = dir.path().join("my-settings.toml");
    std::fs::write(
        &settings,
        "link_type = \"dedupe_only\"\n[[blocking_rules]]\ncolumns = [\"name\"]\n\
         [[comparisons]]\ncolumn = \"surname\"\nkind = \"exact\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let result = borderlens(
        &db_in(&dir),
        &[
            "link",
            "--left",
            path_str(&data),
            "--id-column",
            "id",
            "--settings",
            path_str(&settings),
            "--out",
            path_str(&out),
        ],
    );
    assert_exit(&result, 2);
    assert_error(&result, &["my-settings.toml", "surname"]);
}

#[test]
fn linkage_bad_input_is_refused_before_any_work() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("never");
    let link_as = |id: &str, left: &str, right: &str, extra: &[&str]| {
        let mut args = vec![
            "link",
            "--left",
            left,
            "--right",
            right,
            "--id-column",
            id,
            "--out",
        ];
        args.push(path_str(&out));
        args.extend_from_slice(extra);
        borderlens(&db_in(&dir), &args)
    };
    let link = |left: &str, right: &str, extra: &[&str]| link_as("rec_id", left, right, extra);
    // A missing id column.
    let out_missing = link_as("id", FEBRL4_A, FEBRL4_B, &[]);
    assert_exit(&out_missing, 2);
    assert_error(
        &out_missing,
        &["dataset4a.csv", "no id column 'id'", "given_name"],
    );
    // An empty file.
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let result = link(path_str(&empty), FEBRL4_B, &[]);
    assert_exit(&result, 2);
    assert_error(&result, &["empty.csv", "empty file"]);
    // Settings naming an unknown column, or an unknown comparison.
    let settings = dir.path().join("bad.toml");
    std::fs::write(
        &settings,
        "link_type = \"link_only\"\n[[blocking_rules]]\ncolumns = [\"birth_date\"]\n\
         [[comparisons]]\ncolumn = \"surname\"\nkind = \"exact\"\n",
    )
    .unwrap();
    let result = link(FEBRL4_A, FEBRL4_B, &["--settings", path_str(&settings)]);
    assert_exit(&result, 2);
    assert_error(&result, &["unknown column 'birth_date'"]);
    std::fs::write(
        &settings,
        "link_type = \"link_only\"\n[[blocking_rules]]\ncolumns = [\"surname\"]\n\
         [[comparisons]]\ncolumn = \"surname\"\nkind = \"soundex\"\n",
    )
    .unwrap();
    let result = link(FEBRL4_A, FEBRL4_B, &["--settings", path_str(&settings)]);
    assert_exit(&result, 2);
    assert_error(&result, &["bad.toml", "unknown kind 'soundex'"]);
    assert!(
        !out.exists(),
        "nothing is written when the input is refused"
    );
}

/// The cluster of record `id` in a linkage run's `clusters.csv` text.
fn cluster_in(clusters: &str, id: &str) -> String {
    clusters
        .lines()
        .find(|l| l.starts_with(&format!("{id},")))
        .unwrap_or_else(|| panic!("no record {id} in clusters.csv"))
        .split(',')
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn shared_container_numbers_link_and_invalid_ones_are_reported() {
    let dir = TempDir::new().unwrap();
    let bookings = dir.path().join("bookings.csv");
    let manifest = dir.path().join("manifest.csv");
    std::fs::write(
        &bookings,
        "id,container,consignee\n\
         B1,CSQU3054383,Acme Trading Co. Ltd\n\
         B2,MSKU 123456 5,Baltic Foods GmbH\n\
         B3,CSQU3054384,Kiev Steel JSC\n",
    )
    .unwrap();
    std::fs::write(
        &manifest,
        "id,container,consignee\n\
         M1,csqu-305438-3,ACME TRADING COMPANY LIMITED\n\
         M2,TGHU0000000,Nordic Timber AB\n\
         M3,MSKU1234565,Baltic Foods\n",
    )
    .unwrap();
    let out = dir.path().join("linked");
    let result = borderlens(
        &db_in(&dir),
        &[
            "--json",
            "link",
            "--left",
            path_str(&bookings),
            "--right",
            path_str(&manifest),
            "--id-column",
            "id",
            "--out",
            path_str(&out),
        ],
    );
    assert_exit(&result, 0);
    let report = json(&result);
    assert_eq!(report["identifier_links"], 2, "{report}");
    let invalid = std::fs::read_to_string(out.join("invalid_identifiers.csv")).unwrap();
    assert!(invalid.contains("B3,container,CSQU3054384"), "{invalid}");
    let clusters = std::fs::read_to_string(out.join("clusters.csv")).unwrap();
    let cluster_of = |id: &str| cluster_in(&clusters, id);
    let pairs = std::fs::read_to_string(out.join("pairs.csv")).unwrap();
    assert!(
        pairs
            .lines()
            .any(|l| l.starts_with("B1,M1,") && l.ends_with(",1")),
        "{pairs}"
    );
    assert_eq!(cluster_of("B1"), cluster_of("M1"));
    assert_eq!(cluster_of("B2"), cluster_of("M3"));
    assert_ne!(cluster_of("B3"), cluster_of("M2"));
}

/// A register of the parties of the first `n` sample records: one firm per importer id, but
/// importers 0 and 1 are one firm spelled two ways, and importers 2 and 3 share a customs
/// registration number (EORI) under different names. Returns the file and the importer ids.
fn party_register(dir: &Path, n: usize) -> (PathBuf, Vec<String>) {
    let (_, rows) = sample(n);
    let importer = 9; // "Importer ID"
    let mut ids: Vec<String> = Vec::new();
    for row in &rows {
        let id = field(row, importer);
        if !ids.contains(&id) && ids.len() < 120 {
            ids.push(id);
        }
    }
    // 120 distinct names: each FIRST × SECOND pair once.
    const FIRST: [&str; 12] = [
        "Nordic", "Baltic", "Alpine", "Coastal", "Golden", "Silver", "Eastern", "Western", "Royal",
        "Pacific", "Atlas", "Summit",
    ];
    const SECOND: [&str; 10] = [
        "Timber",
        "Foods",
        "Steel",
        "Textiles",
        "Electronics",
        "Chemicals",
        "Motors",
        "Paper",
        "Glass",
        "Plastics",
    ];
    const CITIES: [&str; 7] = [
        "Busan", "Incheon", "Seoul", "Daegu", "Ulsan", "Gwangju", "Suwon",
    ];
    const FORMS: [&str; 4] = ["Co. Ltd", "Inc.", "Trading Corp.", "Industries Ltd"];
    let mut csv = String::from("party_id,name,address,eori\n");
    for (i, id) in ids.iter().enumerate() {
        let (name, address, eori) = match i {
            0 => (
                "Hanbit Precision Trading Co. Ltd".to_string(),
                "17 Haeundae-ro, Busan".to_string(),
                "KR0000000000100".to_string(),
            ),
            1 => (
                "HANBIT PRECISION TRADING COMPANY LIMITED".to_string(),
                "17 HAEUNDAE RO BUSAN".to_string(),
                "KR0000000000101".to_string(),
            ),
            3 => (
                "Daehan Logistics".to_string(),
                "Port Area 5, Incheon".to_string(),
                "KR0000000000102".to_string(),
            ),
            _ => (
                format!(
                    "{} {} {}",
                    FIRST[i % FIRST.len()],
                    SECOND[(i / FIRST.len()) % SECOND.len()],
                    FORMS[i % FORMS.len()]
                ),
                format!(
                    "{} {} Street, {}",
                    3 + i * 7,
                    SECOND[i % SECOND.len()],
                    CITIES[i % CITIES.len()]
                ),
                format!("KR{:013}", 1000 + i),
            ),
        };
        let eori = if i == 2 {
            "KR0000000000102".to_string()
        } else {
            eori
        };
        csv.push_str(&format!("{id},{name},\"{address}\",{eori}\n"));
    }
    let path = dir.join("parties.csv");
    std::fs::write(&path, csv).unwrap();
    (path, ids)
}

#[test]
fn party_links_are_saved_in_the_store_and_replaced_by_the_next_run() {
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let (header, rows) = sample(400);
    let declarations = write_csv(dir.path(), "declarations.csv", &header, &rows);
    assert_exit(&borderlens(&db, &["import", path_str(&declarations)]), 0);
    let (register, ids) = party_register(dir.path(), 400);
    assert_eq!(ids.len(), 120, "importers in the register");
    let out = dir.path().join("parties");
    let run = |register: &Path| {
        borderlens(
            &db,
            &[
                "--json",
                "link",
                "--left",
                path_str(register),
                "--id-column",
                "party_id",
                "--out",
                path_str(&out),
                "--save-party-links",
            ],
        )
    };
    let result = run(&register);
    assert_exit(&result, 0);
    let report = json(&result);
    let clusters = std::fs::read_to_string(out.join("clusters.csv")).unwrap();
    let cluster_of = |id: &str| cluster_in(&clusters, id);
    // The same firm spelled two ways, and two names sharing a registration number.
    assert_eq!(cluster_of(&ids[0]), cluster_of(&ids[1]), "{report:#}");
    assert_eq!(cluster_of(&ids[2]), cluster_of(&ids[3]), "{report:#}");
    assert_ne!(cluster_of(&ids[0]), cluster_of(&ids[2]));
    // Every party of a cluster of two or more is saved, no other.
    let mut sizes = std::collections::HashMap::<String, usize>::new();
    for line in clusters.lines().skip(1) {
        *sizes
            .entry(line.split(',').nth(1).unwrap().to_string())
            .or_default() += 1;
    }
    let linked: usize = sizes.values().filter(|&&n| n > 1).sum();
    let groups = sizes.values().filter(|&&n| n > 1).count();
    let saved = &report["saved_party_links"];
    assert_eq!(saved["parties"], linked as u64, "{report:#}");
    assert_eq!(saved["groups"], groups as u64, "{report:#}");
    assert!(groups >= 2 && linked < ids.len() / 4, "{report:#}");

    // Training reads the links as firms: their ids' summed past are the firm columns, and an
    // explanation names the linked ids behind them.
    let train = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "train",
            "--model",
            "f",
            "--until",
            "2020-12-31",
            "--trees",
            "5",
        ];
        args.extend_from_slice(extra);
        let out = borderlens(&db, &args);
        assert_exit(&out, 0);
        json(&out)
    };
    let trained = train(&[]);
    let firms = &trained["firm_history"];
    assert_eq!(firms["parties"], linked as u64, "{trained:#}");
    assert_eq!(firms["groups"], groups as u64, "{trained:#}");
    assert!(!firms["run"].as_str().unwrap().is_empty(), "{trained:#}");
    let row = rows
        .iter()
        .find(|row| field(row, 9) == ids[1])
        .expect("the register's second id imports");
    let explained = borderlens(
        &db,
        &[
            "--json",
            "explain",
            "--model",
            "f",
            "--declaration",
            &field(row, 0),
        ],
    );
    assert_exit(&explained, 0);
    let explanation = json(&explained);
    let firm_rate = explanation["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["feature"] == "importer_firm_past_fraud_rate")
        .unwrap_or_else(|| panic!("no firm column: {explanation:#}"));
    let basis = firm_rate["linked"].as_str().unwrap();
    assert!(firm_rate["declared"].is_null(), "{firm_rate:#}");
    assert!(
        firm_rate["history"]["words"]
            .as_str()
            .unwrap()
            .starts_with("from "),
        "{firm_rate:#}"
    );
    assert!(
        basis.contains(&ids[1]) && basis.contains(&format!("linked ids {}", ids[0])),
        "{basis}"
    );
    let plain = train(&["--no-firm-history"]);
    assert!(plain["firm_history"].is_null(), "{plain:#}");

    // A register without the duplicates replaces the links: none is left.
    let text = std::fs::read_to_string(&register).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            ![&ids[1], &ids[3]]
                .iter()
                .any(|id| l.starts_with(&format!("{id},")))
        })
        .collect();
    let smaller = dir.path().join("parties-2.csv");
    std::fs::write(&smaller, kept.join("\n") + "\n").unwrap();
    let again = run(&smaller);
    assert_exit(&again, 0);
    let report = json(&again);
    assert_eq!(report["saved_party_links"]["parties"], 0, "{report:#}");

    // Party links come from one register: two files are refused before any work.
    let refused = borderlens(
        &db,
        &[
            "link",
            "--left",
            path_str(&register),
            "--right",
            path_str(&smaller),
            "--id-column",
            "party_id",
            "--out",
            path_str(&out),
            "--save-party-links",
        ],
    );
    assert_exit(&refused, 2);
    assert!(stderr(&refused).contains("--right"), "{}", stderr(&refused));
}

// ---------------------------------------------------------------------------------------------
// goods descriptions and the sample with descriptions (constructed data)

const DESCRIBED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample-described");

#[test]
fn sample_describe_reproduces_the_shipped_folder_byte_for_byte() {
    // Arrange
    let dir = TempDir::new().unwrap();
    let out_dir = dir.path().join("described");

    // Act: the defaults are the settings the shipped folder was made with.
    let out = borderlens_in(
        Some(Path::new(REPO_ROOT)),
        &db_in(&dir),
        &["--json", "sample", "describe", "--out", path_str(&out_dir)],
    );

    // Assert
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["seed"], 2026);
    for file in report["files"].as_array().unwrap() {
        let matched: u64 = [
            "matched_hs6",
            "matched_heading",
            "matched_chapter",
            "matched_none",
        ]
        .iter()
        .map(|k| count(file, k))
        .sum();
        assert_eq!(matched, count(file, "rows"), "{file:#}");
        assert!(count(file, "misdeclared_fraud") > 10 * count(file, "misdeclared_clean") / 2);
    }
    for name in [
        "df_syn_train_eng.csv",
        "df_syn_valid_eng.csv",
        "mapping.json",
        "truth/descriptions.csv",
        "README.md",
    ] {
        let made = std::fs::read(out_dir.join(name)).unwrap();
        let shipped = std::fs::read(Path::new(DESCRIBED).join(name)).unwrap();
        assert!(
            made == shipped,
            "{name} differs from data/sample-described/{name}: the generator changed; \
             regenerate with `borderlens sample describe` and commit the folder"
        );
    }
    // Every byte of the sample is kept: each record is the sample's record plus two cells.
    let sample = std::fs::read_to_string(SAMPLE_VALID).unwrap();
    let described = std::fs::read_to_string(out_dir.join("df_syn_valid_eng.csv")).unwrap();
    for (was, now) in sample.lines().zip(described.lines()).take(500) {
        assert!(now.starts_with(&format!("{was},")), "{now:?} from {was:?}");
    }
}

#[test]
fn sample_describe_refuses_a_rate_that_is_not_a_probability() {
    let dir = TempDir::new().unwrap();
    let out = borderlens_in(
        Some(Path::new(REPO_ROOT)),
        &db_in(&dir),
        &[
            "sample",
            "describe",
            "--out",
            path_str(&dir.path().join("o")),
            "--misdeclared-fraud-rate",
            "1.5",
        ],
    );
    assert_error(&out, &["misdeclared fraud rate 1.5", "[0, 1]"]);
    assert!(!dir.path().join("o").exists(), "nothing is written");
}

#[test]
fn the_described_sample_imports_through_its_mapping_with_its_descriptions() {
    // Arrange
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let mapping = format!("{DESCRIBED}/mapping.json");

    // Act
    let out = borderlens(
        &db,
        &[
            "--json",
            "import",
            &format!("{DESCRIBED}/df_syn_valid_eng.csv"),
            "--mapping",
            &mapping,
        ],
    );

    // Assert
    assert_exit(&out, 0);
    let report = json(&out);
    let file = &report["files"][0];
    assert_eq!(count(file, "inserted"), 8134, "{report:#}");
    let trace = json(&borderlens(
        &db,
        &["--json", "explain-decision", "56839011"],
    ));
    assert_eq!(trace["goods"]["hs6"], "760711");
    assert_eq!(
        trace["goods"]["description"],
        "wrapmaster 4500 18\" aluminium fo"
    );
    assert_eq!(trace["goods"]["description_cleaned"], Value::Null);
}

#[test]
fn goods_descriptions_are_imported_byte_for_byte_and_refused_with_file_line_and_field() {
    // Arrange: the sample's layout with the two description columns; quotes, commas, line
    // breaks, spaces at the ends, Thai, Chinese, emoji; then a NUL and a 5,000-byte cell.
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let (header, rows) = sample(4);
    let header = format!(
        "{},Goods Description,Cleaned Goods Description\n",
        String::from_utf8(header).unwrap()
    );
    let row = |i: usize| String::from_utf8(rows[i].clone()).unwrap();
    let sender = "  2 x \"T-Shirt\", cotton\r\n1 x กระเป๋า 包 👜 ";
    let cleaned = "T-shirts, singlets and other vests; of cotton, knitted or crocheted";
    let file = dir.path().join("described.csv");
    let text = format!(
        "{header}{},\"{}\",\"{cleaned}\"\n{},\"shoes\u{0}\",\n{},{},\n{},,\n",
        row(0),
        sender.replace('"', "\"\""),
        row(1),
        row(2),
        "x".repeat(5000),
        row(3),
    );
    std::fs::write(&file, text).unwrap();

    // Act
    let out = borderlens(
        &db,
        &[
            "import",
            path_str(&file),
            "--mapping",
            &format!("{DESCRIBED}/mapping.json"),
        ],
    );

    // Assert: two bad records named by line and field, the others stored as declared.
    assert_exit(&out, 1);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("described.csv:4: field 'Goods Description': control character \\u{0}"),
        "{text}"
    );
    assert!(
        text.contains(
            "described.csv:5: field 'Goods Description': 5000 bytes of text, more than the 4096"
        ),
        "{text}"
    );
    let id = fields(&rows[0])[0].clone();
    let trace = json(&borderlens(&db, &["--json", "explain-decision", &id]));
    assert_eq!(trace["goods"]["description"], sender);
    assert_eq!(trace["goods"]["description_cleaned"], cleaned);
    let id = fields(&rows[3])[0].clone();
    let trace = json(&borderlens(&db, &["--json", "explain-decision", &id]));
    assert_eq!(trace["goods"]["description"], Value::Null);
}

#[test]
fn a_model_trained_on_the_described_sample_names_the_description_mismatch_of_a_planted_misdeclaration(
) {
    // Arrange: declaration 27011547 is planted (truth/descriptions.csv line 218): declared
    // 850870 (vacuum cleaner parts), the sender wrote "stoppers, lids and bottle caps, plastic"
    // (chapter 39), labelled fraud.
    let dir = TempDir::new().unwrap();
    let db = db_in(&dir);
    let mapping = format!("{DESCRIBED}/mapping.json");
    let truth = std::fs::read_to_string(format!("{DESCRIBED}/truth/descriptions.csv")).unwrap();
    assert!(truth.lines().any(
        |l| l.starts_with("df_syn_train_eng.csv,218,27011547,850870,1,")
            && l.contains(",1,392350,39,")
    ));

    // Act: the import reads every description; training uses them.
    let import = json(&borderlens(
        &db,
        &[
            "--json",
            "import",
            &format!("{DESCRIBED}/df_syn_train_eng.csv"),
            &format!("{DESCRIBED}/df_syn_valid_eng.csv"),
            "--mapping",
            &mapping,
        ],
    ));
    let train = borderlens(
        &db,
        &[
            "--json",
            "train",
            "--until",
            "2020-12-31",
            "--model",
            "t",
            "--trees",
            "300",
        ],
    );
    assert_exit(&train, 0);
    let train = json(&train);
    let explain = borderlens(
        &db,
        &[
            "--json",
            "explain",
            "--model",
            "t",
            "--declaration",
            "27011547",
        ],
    );
    assert_exit(&explain, 0);
    let explain = json(&explain);

    // Assert: every item with a description was read on import and stored.
    let read: u64 = import["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| count(f, "descriptions_read"))
        .sum();
    // 45,235 rows carry a sender's description (README); a few more only a cleaned one.
    assert!((45_235..45_519).contains(&read), "{import:#}");
    let annotate = json(&borderlens(&db, &["--json", "annotate"]));
    assert_eq!(
        count(&annotate, "read"),
        0,
        "nothing left to read: {annotate:#}"
    );
    assert_eq!(count(&annotate, "stored"), read);
    assert!(train["text_features"]
        .as_str()
        .is_some_and(|m| m.starts_with("hs-lexical-")));
    // The explanation names the mismatch in business words, beside the declared code, and it
    // raises the score.
    let contributions = explain["contributions"].as_array().unwrap();
    let text: Vec<&Value> = contributions
        .iter()
        .filter(|c| c["feature"].as_str().unwrap().contains("mismatch"))
        .collect();
    assert_eq!(text.len(), 3, "{contributions:#?}");
    let strongest = text
        .iter()
        .max_by(|a, b| {
            a["log_odds"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["log_odds"].as_f64().unwrap())
        })
        .unwrap();
    assert!(strongest["log_odds"].as_f64().unwrap() > 0.1, "{text:#?}");
    let declared: Vec<&str> = text
        .iter()
        .map(|c| c["declared"].as_str().unwrap())
        .collect();
    assert!(
        declared.contains(&"description reads as chapter 39, declared chapter 85"),
        "{declared:?}"
    );
    assert!(strongest["words"]
        .as_str()
        .unwrap()
        .starts_with("description reads as another HS"));
    // The page's reading is the stored one, derived, never over the declared code.
    assert_eq!(explain["hs_reading"]["kind"], "derived");
    assert_eq!(explain["declared"]["hs6"], "850870");

    // export-features writes the columns `train` trains on: the text columns too, unless
    // asked not to.
    let export = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "export-features",
            "--until",
            "2020-12-31",
            "--from",
            "2021-01-01",
            "--to",
            "2021-03-31",
            "--out",
            path_str(out),
            "--trees",
            "10",
        ];
        args.extend_from_slice(extra);
        assert_exit(&borderlens(&db, &args), 0);
        let header = std::fs::read_to_string(out.join("test.csv"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("meta.json")).unwrap()).unwrap();
        (header, meta)
    };
    let (header, meta) = export(&dir.path().join("with"), &[]);
    assert!(
        header.contains("no_description") && header.contains("chapter_mismatch"),
        "{header}"
    );
    assert_eq!(meta["text_features"], train["text_features"]);
    let (header, meta) = export(&dir.path().join("without"), &["--no-text-features"]);
    assert!(!header.contains("chapter_mismatch"), "{header}");
    assert!(meta["text_features"].is_null());
}

/// Issue 17: another administration's anonymised exchange document is imported into a store of
/// foreign results, shows in the pooled statistics beside the own controls, and no identifying
/// field of the sender reaches the document, the receiving store or the statistics: every
/// planted name, id and number is searched for in all of them, byte for byte.
#[test]
fn a_foreign_anonymised_document_is_pooled_and_carries_no_planted_name() {
    let dir = TempDir::new().unwrap();
    let (header, rows) = sample(60);
    const IMPORTER: usize = 9;
    // The sender's store: 30 declarations whose parties carry planted names.
    let sender_rows: Vec<Vec<u8>> = rows[..30]
        .iter()
        .map(|r| {
            let r = with_field(r, IMPORTER, "PLANTEDIMPVANDAMME");
            with_field(&r, DECLARANT, "PLANTEDDECLPEETERS")
        })
        .collect();
    let sender_csv = write_csv(dir.path(), "sender.csv", &header, &sender_rows);
    let sender_db = dir.path().join("sender.db");
    let (out, _) = import_json(&sender_db, &sender_csv);
    assert_exit(&out, 0);
    let seized = field(&sender_rows[0], 0);
    let cleared = field(&sender_rows[1], 0);
    let planted = [
        "Officer Jan Planted-Jansen",
        "Maasvlakte Planted Terminal",
        "tip from Piet Planted-de-Vries",
        "CSQU3054383",
        "RR123456785NL",
        "PLANTEDSCAN-0042",
        "PLANTEDIMPVANDAMME",
        "PLANTEDDECLPEETERS",
        "planted-submission-1",
        "planted-submission-2",
        &seized,
        &cleared,
    ];
    let seizure = serde_json::json!({
        "submission_id": "planted-submission-1",
        "declaration_id": seized,
        "schema_version": "1.0.0",
        "values": {
            "outcome": "contraband", "contraband_type": "drugs", "drug_type": "cocaine",
            "drug_form": "powder", "concealment_method": "false_compartment",
            "quantity": 4.0, "quantity_unit": "kg",
            "inspection_method": ["xray_scan", "physical_full"], "nii_alarm": "alarm",
            "nii_scan_id": "PLANTEDSCAN-0042",
            "inspected_at": "2020-01-02T10:30:00+01:00",
            "place": "Maasvlakte Planted Terminal", "officer_id": "Officer Jan Planted-Jansen",
            "container_number": "CSQU3054383", "postal_item_id": "RR123456785NL",
            "remarks": "tip from Piet Planted-de-Vries"
        }
    });
    let clean = serde_json::json!({
        "submission_id": "planted-submission-2",
        "declaration_id": cleared,
        "schema_version": "1.0.0",
        "values": {
            "outcome": "no_irregularity", "inspection_method": ["documentary"],
            "inspected_at": "2020-01-02T11:00:00+01:00",
            "place": "Maasvlakte Planted Terminal", "officer_id": "Officer Jan Planted-Jansen"
        }
    });
    // Free text a partner's schema keeps (a brand, a rights holder) travels in the document
    // but is not kept by the receiving store.
    let counterfeit = serde_json::json!({
        "submission_id": "planted-submission-3",
        "declaration_id": field(&sender_rows[2], 0),
        "schema_version": "1.0.0",
        "values": {
            "outcome": "contraband", "contraband_type": "counterfeit",
            "goods_category": "clothing", "brand": "Planted Brand Jansen",
            "rights_holder": "Planted Rights Holder Peeters", "quantity": 40.0,
            "quantity_unit": "pieces", "concealment_method": "none",
            "inspection_method": ["physical_full"],
            "inspected_at": "2020-01-03T09:00:00+01:00",
            "place": "Maasvlakte Planted Terminal", "officer_id": "Officer Jan Planted-Jansen"
        }
    });
    for (name, submission) in [
        ("seizure.json", &seizure),
        ("clean.json", &clean),
        ("counterfeit.json", &counterfeit),
    ] {
        let out = record(&sender_db, &dir, name, &submission.to_string());
        assert_exit(&out, 0);
    }
    let key = dir.path().join("key.bin");
    std::fs::write(&key, [9u8; 32]).unwrap();
    let document = dir.path().join("nl-results.json");
    let out = borderlens(
        &sender_db,
        &[
            "controls",
            "export",
            "--sender",
            "NL",
            "--anonymise-key",
            path_str(&key),
            "--out",
            path_str(&document),
        ],
    );
    assert_exit(&out, 0);
    let text = std::fs::read_to_string(&document).unwrap();
    let exported: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(exported["format_version"], 2);
    assert_eq!(exported["anonymised"], true);
    let origin = field(&sender_rows[0], 14);
    let context = &exported["results"][0]["context"];
    assert_eq!(context["origin_country"], origin.as_str());
    assert_eq!(
        context["departure_country"],
        field(&sender_rows[0], 13).as_str()
    );
    assert_eq!(exported["results"][0]["values"]["drug_type"], "cocaine");

    // The receiving store: its own 30 labelled declarations, then the foreign document.
    let own_csv = write_csv(dir.path(), "own.csv", &header, &rows[30..]);
    let db = dir.path().join("receiver.db");
    let (out, _) = import_json(&db, &own_csv);
    assert_exit(&out, 0);
    let out = borderlens(&db, &["--json", "controls", "import", path_str(&document)]);
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["foreign_sender"], "NL");
    assert_eq!(
        (report["recorded"].as_u64(), report["duplicates"].as_u64()),
        (Some(3), Some(0))
    );
    // Again: nothing stored twice.
    let out = borderlens(&db, &["controls", "import", path_str(&document)]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out)
            .contains("anonymised results of NL: 0 stored as foreign results, 3 already stored"),
        "{}",
        stdout(&out)
    );

    let own_declarations: std::collections::BTreeSet<String> =
        rows[30..].iter().map(|r| field(r, 0)).collect();
    let own_frauds: std::collections::BTreeSet<String> = rows[30..]
        .iter()
        .filter(|r| field(r, 20) == "1")
        .map(|r| field(r, 0))
        .collect();
    let chart = dir.path().join("pooled-origin.svg");
    let out = borderlens(
        &db,
        &[
            "--json",
            "controls",
            "pooled",
            "--by",
            "origin",
            "--chart",
            path_str(&chart),
        ],
    );
    assert_exit(&out, 0);
    assert_svg(&chart);
    let by_origin = json(&out);
    let sources = by_origin["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{by_origin}");
    assert_eq!(sources[0]["source"], "own");
    assert_eq!(sources[0]["total"]["controls"], own_declarations.len());
    assert_eq!(sources[0]["total"]["hits"], own_frauds.len());
    assert_eq!(sources[1]["source"], "NL");
    assert_eq!(sources[1]["documents"], 1);
    assert_eq!(sources[1]["total"]["controls"], 3);
    assert_eq!(sources[1]["total"]["hits"], 2);
    let segment = by_origin["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["segment"] == origin.as_str())
        .unwrap_or_else(|| panic!("no segment {origin}: {by_origin}"));
    assert_eq!(segment["counts"][1]["hits"], 1);
    let pooled_controls = segment["counts"][0]["controls"].as_u64().unwrap()
        + segment["counts"][1]["controls"].as_u64().unwrap();
    assert_eq!(
        segment["pooled"]["inspected"].as_u64(),
        Some(pooled_controls)
    );
    let out = borderlens(
        &db,
        &["--json", "controls", "pooled", "--by", "concealment"],
    );
    assert_exit(&out, 0);
    let by_concealment = json(&out);
    assert_eq!(by_concealment["measure"], "share of findings");
    let compartment = by_concealment["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["segment"] == "false_compartment")
        .unwrap_or_else(|| panic!("{by_concealment}"));
    // A method's share is of each source's findings, whichever methods the source has.
    assert_eq!(
        compartment["counts"][1],
        serde_json::json!({"controls": 2, "hits": 1})
    );
    assert_eq!(
        compartment["counts"][0],
        serde_json::json!({"controls": own_frauds.len(), "hits": 0})
    );
    let out = borderlens(&db, &["controls", "pooled", "--by", "route"]);
    assert_exit(&out, 0);
    let route_table = stdout(&out);
    assert!(route_table.contains("NL hits/n"), "{route_table}");
    let out = borderlens(&db, &["controls", "pooled", "--by", "importer"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("unknown dimension 'importer'"),
        "{}",
        stderr(&out)
    );

    // The brand and rights holder travel in the document (goods information the schema keeps)
    // but nowhere beyond it.
    assert!(text.contains("Planted Brand Jansen"));
    let kept_out = ["Planted Brand Jansen", "Planted Rights Holder Peeters"];
    // No planted name anywhere: the document, every file of the receiving store, the
    // statistics and the chart.
    let mut searched = vec![("document".to_string(), text.into_bytes())];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("receiver.db") {
            searched.push((name, std::fs::read(&path).unwrap()));
        }
    }
    assert!(
        searched.len() >= 2,
        "the receiving store's files are searched"
    );
    searched.push((
        "pooled by origin".into(),
        by_origin.to_string().into_bytes(),
    ));
    searched.push((
        "pooled by concealment".into(),
        by_concealment.to_string().into_bytes(),
    ));
    searched.push(("pooled by route".into(), route_table.into_bytes()));
    searched.push(("chart".into(), std::fs::read(&chart).unwrap()));
    for (what, bytes) in &searched {
        let extra: &[&str] = if what == "document" { &[] } else { &kept_out };
        for name in planted.iter().chain(extra) {
            assert!(
                !bytes.windows(name.len()).any(|w| w == name.as_bytes()),
                "'{name}' of the sender is in the {what}"
            );
        }
    }
    // The search itself finds what is there: the sender's own store holds them.
    let sender_bytes = std::fs::read(&sender_db).unwrap();
    let wal = std::fs::read(dir.path().join("sender.db-wal")).unwrap_or_default();
    let found = |name: &str| {
        [&sender_bytes, &wal]
            .iter()
            .any(|b| b.windows(name.len()).any(|w| w == name.as_bytes()))
    };
    assert!(found("Officer Jan Planted-Jansen") && found("PLANTEDIMPVANDAMME"));
}
