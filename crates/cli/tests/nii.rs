//! Black-box tests of `borderlens nii ...`: generate → tip → report (JSON and charts) → verify,
//! the agreement command on a hand-computed input, and refusals that name file and field.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn borderlens(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_borderlens"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run borderlens")
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "status {:?}\nstdout {}\nstderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn generate_project_report_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = borderlens(
        d,
        &[
            "nii",
            "generate",
            "--count",
            "12",
            "--seed",
            "3",
            "--out",
            "lib",
            "--size",
            "160",
            "--threat-rate",
            "1",
            "--json",
        ],
    );
    let summary = stdout_json(&out);
    assert_eq!(summary["written"], 12);
    // Ranges as the docs write them: two numbers, comma-separated; one number is refused.
    let ranged = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "generate",
            "--count",
            "1",
            "--out",
            "ranged",
            "--size",
            "64",
            "--clutter-density",
            "0.5,1.5",
            "--json",
        ],
    ));
    assert_eq!(ranged["written"], 1);
    let one = borderlens(
        d,
        &[
            "nii",
            "generate",
            "--count",
            "1",
            "--out",
            "ranged",
            "--clutter-density",
            "0.5",
        ],
    );
    assert!(!one.status.success());
    assert!(
        String::from_utf8_lossy(&one.stderr).contains("--clutter-density"),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    // The same command again writes nothing new.
    let again = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "generate",
            "--count",
            "12",
            "--seed",
            "3",
            "--out",
            "lib",
            "--size",
            "160",
            "--threat-rate",
            "1",
            "--json",
        ],
    ));
    assert_eq!(
        (again["written"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(12))
    );
    let tip = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "tip",
            "lib",
            "--count",
            "3",
            "--seed",
            "5",
            "--classes",
            "blade",
            "--i0",
            "15000,30000",
            "--json",
        ],
    ));
    let projected = tip["written"].as_u64().unwrap();
    assert!(projected > 0, "{tip}");
    let report = stdout_json(&borderlens(
        d,
        &[
            "nii", "report", "lib", "--charts", "charts", "--json", "--verify",
        ],
    ));
    assert_eq!(report["scans"].as_u64(), Some(12 + projected));
    assert_eq!(report["counts_as_real"], 0);
    let shares: Vec<(String, u64)> = report["provenance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        shares.contains(&("synthetic".to_string(), 12)),
        "{shares:?}"
    );
    assert!(
        shares.contains(&("projected".to_string(), projected)),
        "{shares:?}"
    );
    for chart in [
        "class_balance.svg",
        "provenance.svg",
        "orientation.svg",
        "curation.svg",
    ] {
        let svg = std::fs::read_to_string(d.join("charts").join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{chart}"
        );
    }
    let verify = borderlens(d, &["nii", "verify", "lib"]);
    assert!(verify.status.success());

    // A damaged catalogue line is refused with file, line and field.
    let catalogue = d.join("lib").join("catalogue.jsonl");
    let text = std::fs::read_to_string(&catalogue).unwrap();
    let first = text.lines().next().unwrap();
    let mut record: Value = serde_json::from_str(first).unwrap();
    record["metadata"]["scan_id"] = Value::from("copy");
    record["metadata"]["package_id"] = Value::from("RR473124828GB");
    record["metadata"]["container_id"] = Value::Null;
    std::fs::write(&catalogue, format!("{text}{record}\n")).unwrap();
    let out = borderlens(d, &["nii", "report", "lib"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().count() + 1;
    assert!(
        err.contains(&format!("catalogue.jsonl:{line}")) && err.contains("metadata.package_id"),
        "{err}"
    );
}

#[test]
fn agreement_of_a_hand_computed_case_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Three annotators: one object with a disputed label (knife, knife, blade), one all agree on.
    let input = r#"{"scans": [{"scan_id": "s", "annotations": [
        {"annotator": "a", "objects": [{"label": "knife", "bbox": [0, 0, 10, 10]}, {"label": "gun", "bbox": [50, 50, 60, 60]}]},
        {"annotator": "b", "objects": [{"label": "knife", "bbox": [0, 0, 8, 10]}, {"label": "gun", "bbox": [50, 50, 60, 60]}]},
        {"annotator": "c", "objects": [{"label": "blade", "bbox": [0, 0, 10, 10]}, {"label": "gun", "bbox": [50, 50, 60, 60]}]}]}]}"#;
    std::fs::write(d.join("in.json"), input).unwrap();
    let r = stdout_json(&borderlens(d, &["nii", "agreement", "in.json", "--json"]));
    let want_labels = 1.0 - (1.0 / 3.0) / (22.0 / 30.0);
    assert!((r["alpha_labels"].as_f64().unwrap() - want_labels).abs() < 1e-12);
    let want_boxes = 1.0 - (0.4 / 6.0) / (18.8 / 30.0);
    assert!((r["alpha_boxes"].as_f64().unwrap() - want_boxes).abs() < 1e-12);
    assert_eq!(r["disputed"], 1);
    assert_eq!(r["disputes"][0]["object"]["label"], "knife");

    std::fs::write(d.join("bad.json"), r#"{"scans": [{"scan_id": "s", "annotations": [{"annotator": "a", "objects": [{"label": "knife", "bbox": [10, 0, 5, 10]}]}]}]}"#).unwrap();
    let out = borderlens(d, &["nii", "agreement", "bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json") && err.contains("right or bottom edge"),
        "{err}"
    );
}
