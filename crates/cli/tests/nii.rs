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

#[test]
fn a_torn_catalogue_line_is_reported_by_verify_and_set_aside_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gen = |count: &str| {
        borderlens(
            d,
            &[
                "nii", "generate", "--count", count, "--out", "lib", "--size", "64", "--json",
            ],
        )
    };
    assert_eq!(stdout_json(&gen("2"))["written"], 2);
    // A crash in the middle of appending a line: the first half of a copy of line 1.
    let catalogue = d.join("lib").join("catalogue.jsonl");
    let text = std::fs::read_to_string(&catalogue).unwrap();
    let half = &text.lines().next().unwrap()[..100];
    std::fs::write(&catalogue, format!("{text}{half}")).unwrap();

    let out = borderlens(d, &["nii", "verify", "lib", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scans"], 2);
    assert_eq!(v["recovered"][0]["line"], 3);
    assert_eq!(v["recovered"][0]["bytes"], 100);
    // Other commands read the library and warn.
    let out = borderlens(d, &["nii", "report", "lib", "--json"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unterminated last line"));

    // The next write moves the torn bytes to catalogue.jsonl.torn and goes on.
    let out = gen("3");
    assert_eq!(stdout_json(&out)["written"], 1);
    let torn = std::fs::read_to_string(d.join("lib").join("catalogue.jsonl.torn")).unwrap();
    assert_eq!(torn, format!("{half}\n"));
    let out = borderlens(d, &["nii", "verify", "lib", "--json"]);
    let v = stdout_json(&out);
    assert_eq!(v["scans"], 3);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn export_anonymise_and_import_a_scan_package() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gen = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "generate",
            "--count",
            "3",
            "--seed",
            "4",
            "--out",
            "lib",
            "--size",
            "64",
            "--threat-rate",
            "0",
            "--json",
        ],
    ));
    assert_eq!(gen["written"], 3);
    // Turn the first scan into a real one carrying personal data, the second into one whose
    // licence forbids sharing (as an import of real scans would write them).
    let catalogue = d.join("lib").join("catalogue.jsonl");
    let text = std::fs::read_to_string(&catalogue).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[0]["provenance"]["source"] = "real".into();
    lines[0]["provenance"]["generator"] = Value::Null;
    lines[0]["metadata"]["consignee_name"] = "Greta Lindqvist".into();
    lines[0]["metadata"]["contact_phone"] = "+46 70 123 45 67".into();
    lines[0]["metadata"]["consignee_address"] = "Storgatan 12, 111 22 Stockholm".into();
    lines[1]["provenance"]["redistributable"] = false.into();
    lines[1]["provenance"]["licence"] = "internal use only".into();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&catalogue, text).unwrap();
    let real_id = lines[0]["metadata"]["scan_id"]
        .as_str()
        .unwrap()
        .to_string();
    let restricted_id = lines[1]["metadata"]["scan_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Without a key: the real scan and the restricted one are refused, named, exit 1.
    let out = borderlens(
        d,
        &["nii", "export", "--lib", "lib", "--out", "plain", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["scans"], 1);
    let refused = s["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0]["scan_id"], real_id.as_str());
    assert_eq!(refused[0]["field"], "metadata.consignee_name");
    assert_eq!(refused[1]["scan_id"], restricted_id.as_str());
    assert_eq!(refused[1]["field"], "provenance.redistributable");

    // With a key and a mask: the real scan goes out anonymised.
    std::fs::write(d.join("key"), "correct horse battery staple 42\n").unwrap();
    let out = borderlens(
        d,
        &[
            "nii",
            "export",
            "--lib",
            "lib",
            "--out",
            "pkg",
            "--anonymise-key-file",
            "key",
            "--mask",
            "0,0,64,8",
            "--organisation",
            "Customs lab",
            "--json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the restricted scan is still refused"
    );
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["scans"], 2);
    assert_eq!(s["anonymised"], 2);
    for entry in walk(&d.join("pkg")) {
        let bytes = std::fs::read(&entry).unwrap();
        for planted in [
            "Greta Lindqvist",
            "+46 70 123 45 67",
            "Storgatan 12",
            "Stockholm",
        ] {
            assert!(
                !bytes
                    .windows(planted.len())
                    .any(|w| w == planted.as_bytes()),
                "{} holds {planted}",
                entry.display()
            );
        }
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(d.join("pkg").join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["producer"]["organisation"], "Customs lab");
    let real = manifest["scans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metadata"]["scan_id"] == real_id.as_str())
        .unwrap();
    assert!(real["metadata"]["consignee_name"]
        .as_str()
        .unwrap()
        .starts_with("name-"));
    assert_eq!(real["anonymisation"]["masked"][0]["height"], 8);

    // A mask without a key, a short key: errors (exit 2).
    let out = borderlens(
        d,
        &[
            "nii", "export", "--lib", "lib", "--out", "x", "--mask", "0,0,4,4",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(d.join("short"), "abc").unwrap();
    let out = borderlens(
        d,
        &[
            "nii",
            "export",
            "--lib",
            "lib",
            "--out",
            "x",
            "--anonymise-key-file",
            "short",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));

    // Import into a new library, twice: the second time changes nothing.
    let first = stdout_json(&borderlens(
        d,
        &["nii", "import-package", "--lib", "other", "pkg", "--json"],
    ));
    assert_eq!(first["scans_added"], 2);
    let second = stdout_json(&borderlens(
        d,
        &["nii", "import-package", "--lib", "other", "pkg", "--json"],
    ));
    assert_eq!(second["scans_added"], 0);
    assert_eq!(second["scans_present"], 2);
    assert!(borderlens(d, &["nii", "verify", "other"]).status.success());
    let report = stdout_json(&borderlens(d, &["nii", "report", "other", "--json"]));
    assert_eq!(report["privacy"]["anonymised"], 2);
    assert_eq!(report["privacy"]["to_anonymise"], 0);
    let report = stdout_json(&borderlens(d, &["nii", "report", "lib", "--json"]));
    assert_eq!(report["privacy"]["to_anonymise"], 1);

    // A damaged package is refused with file and field, exit 1, nothing written.
    let image = walk(&d.join("pkg").join("images")).pop().unwrap();
    let mut bytes = std::fs::read(&image).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0xff;
    std::fs::write(&image, bytes).unwrap();
    let out = borderlens(d, &["nii", "import-package", "--lib", "third", "pkg"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&image.file_name().unwrap().to_string_lossy().to_string())
            && err.contains("field sha256"),
        "{err}"
    );
    assert!(!d.join("third").join("catalogue.jsonl").exists());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn export_coco_and_import_it_back_as_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    stdout_json(&borderlens(
        d,
        &[
            "nii",
            "generate",
            "--count",
            "4",
            "--seed",
            "5",
            "--out",
            "lib",
            "--size",
            "160",
            "--threat-rate",
            "1",
            "--json",
        ],
    ));
    let s = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "export-coco",
            "--lib",
            "lib",
            "--out",
            "coco",
            "--source",
            "truth",
            "--json",
        ],
    ));
    assert_eq!(s["scans"], 4);
    assert!(s["annotations"].as_u64().unwrap() >= 1, "{s}");
    let file: Value =
        serde_json::from_slice(&std::fs::read(d.join("coco/annotations.json")).unwrap()).unwrap();
    for image in file["images"].as_array().unwrap() {
        let name = image["file_name"].as_str().unwrap();
        let png = std::fs::read(d.join("coco/images").join(name)).unwrap();
        // An 8-bit grayscale PNG: IHDR bit depth 8, colour type 0.
        assert_eq!((png[24], png[25]), (8, 0), "{name}");
    }
    // Back in as a model's source, then out again from that source: the same boxes.
    let imported = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "import-coco",
            "--lib",
            "lib",
            "coco/annotations.json",
            "--source",
            "model",
            "--json",
        ],
    ));
    assert_eq!(
        imported["lines_added"],
        file["images"].as_array().unwrap().len()
    );
    let again = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "import-coco",
            "--lib",
            "lib",
            "coco/annotations.json",
            "--source",
            "model",
            "--json",
        ],
    ));
    assert_eq!(again["lines_added"], 0);
    stdout_json(&borderlens(
        d,
        &[
            "nii",
            "export-coco",
            "--lib",
            "lib",
            "--out",
            "coco-model",
            "--source",
            "model",
            "--json",
        ],
    ));
    let back: Value =
        serde_json::from_slice(&std::fs::read(d.join("coco-model/annotations.json")).unwrap())
            .unwrap();
    let boxes = |v: &Value| -> Vec<(Value, Value, Value)> {
        v["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["image_id"].clone(),
                    a["category_id"].clone(),
                    a["bbox"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(boxes(&file), boxes(&back));
    // The imported source is an annotator: alone, its boxes are the consensus (the default).
    stdout_json(&borderlens(
        d,
        &[
            "nii",
            "export-coco",
            "--lib",
            "lib",
            "--out",
            "coco-consensus",
            "--json",
        ],
    ));
    let merged: Value =
        serde_json::from_slice(&std::fs::read(d.join("coco-consensus/annotations.json")).unwrap())
            .unwrap();
    assert_eq!(boxes(&file), boxes(&merged));
    // A box outside its image: refused (exit 1), naming the file, annotation and field.
    let mut bad = file.clone();
    bad["annotations"][0]["bbox"][2] = 500.0.into();
    std::fs::write(d.join("bad.json"), serde_json::to_string(&bad).unwrap()).unwrap();
    let out = borderlens(
        d,
        &[
            "nii",
            "import-coco",
            "--lib",
            "lib",
            "bad.json",
            "--source",
            "other",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.json")
            && stderr.contains("field annotations[0].bbox")
            && stderr.contains("annotation id 1"),
        "{stderr}"
    );
    // An annotator with no annotations: an error (exit 2).
    let out = borderlens(
        d,
        &[
            "nii",
            "export-coco",
            "--lib",
            "lib",
            "--out",
            "none",
            "--source",
            "nobody",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    // A scan whose licence forbids sharing is left out and named (exit 1).
    let catalogue = d.join("lib/catalogue.jsonl");
    let text = std::fs::read_to_string(&catalogue).unwrap();
    let first = text.lines().next().unwrap();
    let closed = first.replace("\"redistributable\":true", "\"redistributable\":false");
    assert_ne!(first, closed);
    std::fs::write(&catalogue, text.replacen(first, &closed, 1)).unwrap();
    let out = borderlens(
        d,
        &[
            "nii",
            "export-coco",
            "--lib",
            "lib",
            "--out",
            "coco-some",
            "--source",
            "truth",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["scans"], 3);
    assert_eq!(s["refused"][0]["scan_id"], "syn-5-000000");
    assert_eq!(s["refused"][0]["field"], "provenance.redistributable");
    // As YOLO (the scan closed above is refused, exit 1), and back as another source: one
    // line per view, then none.
    let out = borderlens(
        d,
        &[
            "nii",
            "export-yolo",
            "--lib",
            "lib",
            "--out",
            "yolo",
            "--source",
            "truth",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let yolo: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(yolo["scans"], 3);
    assert_eq!(yolo["refused"][0]["scan_id"], "syn-5-000000");
    assert!(d.join("yolo/data.yaml").is_file() && d.join("yolo/classes.txt").is_file());
    let back = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "import-yolo",
            "--lib",
            "lib",
            "yolo",
            "--source",
            "yolo-tool",
            "--json",
        ],
    ));
    assert_eq!(back["lines_added"], 3);
    let again_yolo = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "import-yolo",
            "--lib",
            "lib",
            "yolo",
            "--source",
            "yolo-tool",
            "--json",
        ],
    ));
    assert_eq!(again_yolo["lines_added"], 0);
    // A bad line: refused with file, line and column, exit 1.
    let label = std::fs::read_dir(d.join("yolo/labels"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    std::fs::write(&label, "0 0.5 0.5 0.2 0.2\n0 2 0.5 0.2 0.2\n").unwrap();
    let out = borderlens(
        d,
        &[
            "nii",
            "import-yolo",
            "--lib",
            "lib",
            "yolo",
            "--source",
            "x",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(".txt:2: field cx"), "{err}");
}

/// DICOS: export, import back (same scans, same pixels, same sources), read by pydicom
/// (`scripts/dicos_check.py`: pixels, metadata and boxes identical to the scan package's), the
/// secondary-capture export, and a damaged file refused by name.
#[test]
fn export_dicos_reads_back_in_borderlens_and_in_pydicom() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| stdout_json(&borderlens(d, args));
    run(&[
        "nii",
        "generate",
        "--count",
        "4",
        "--seed",
        "5",
        "--out",
        "lib",
        "--size",
        "160",
        "--threat-rate",
        "1",
        "--json",
    ]);
    // Two annotator sources (the truth's boxes, imported under two names), so each view has
    // operators' reports and a consensus.
    run(&[
        "nii",
        "export-coco",
        "--lib",
        "lib",
        "--out",
        "coco",
        "--source",
        "truth",
        "--json",
    ]);
    for who in ["analyst-a", "analyst-b"] {
        run(&[
            "nii",
            "import-coco",
            "--lib",
            "lib",
            "coco/annotations.json",
            "--source",
            who,
            "--json",
        ]);
    }
    let lines = std::fs::read_to_string(d.join("lib/annotations.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(lines >= 4, "{lines}");
    let package = run(&["nii", "export", "--lib", "lib", "--out", "pkg", "--json"]);
    assert_eq!(package["scans"], 4);
    let dicos = run(&[
        "nii",
        "export-dicos",
        "--lib",
        "lib",
        "--out",
        "dicos",
        "--json",
    ]);
    assert_eq!(dicos["scans"], 4);
    assert_eq!(dicos["images"], 8);
    // per view: two operators, the consensus, the truth
    assert_eq!(dicos["reports"], 16, "{dicos}");
    let sc = run(&[
        "nii",
        "export-dicom",
        "--lib",
        "lib",
        "--out",
        "sc",
        "--json",
    ]);
    assert_eq!(
        (sc["images"].as_u64(), sc["reports"].as_u64()),
        (Some(4), Some(0))
    );

    // Back into a new library: the same catalogue and annotation lines.
    let imported = run(&["nii", "import-dicos", "--lib", "back", "dicos", "--json"]);
    assert_eq!(imported["scans_added"], 4);
    assert_eq!(imported["annotations_added"].as_u64(), Some(lines as u64));
    let sorted = |path: &str| {
        let mut v: Vec<Value> = std::fs::read_to_string(d.join(path))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        v.sort_by_key(|x| x.to_string());
        v
    };
    assert_eq!(
        sorted("back/catalogue.jsonl"),
        sorted("lib/catalogue.jsonl")
    );
    // Staff names never leave in clear: without a key, numbered in order of appearance.
    let mut renamed: Vec<Value> = sorted("lib/annotations.jsonl")
        .into_iter()
        .map(|mut line| {
            let name = match line["annotator"].as_str() {
                Some("analyst-a") => "annotator-1",
                Some("analyst-b") => "annotator-2",
                other => panic!("{other:?}"),
            };
            line["annotator"] = Value::from(name);
            line
        })
        .collect();
    renamed.sort_by_key(|x| x.to_string());
    assert_eq!(sorted("back/annotations.jsonl"), renamed);
    assert!(
        renamed
            .iter()
            .any(|l| !l["objects"].as_array().unwrap().is_empty()),
        "some boxes travel"
    );
    let again = run(&["nii", "import-dicos", "--lib", "back", "dicos", "--json"]);
    assert_eq!(
        (
            again["scans_added"].as_u64(),
            again["annotations_added"].as_u64()
        ),
        (Some(0), Some(0))
    );

    // pydicom reads the same pixels, metadata and boxes.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let site = root.join("models/python");
    if !site.join("pydicom/__init__.py").exists() {
        assert!(
            std::env::var("BORDERLENS_REQUIRE_PYDICOM").as_deref() != Ok("1"),
            "BORDERLENS_REQUIRE_PYDICOM=1 and pydicom is not in {} (scripts/install-pydicom.sh)",
            site.display()
        );
        eprintln!(
            "pydicom not installed (scripts/install-pydicom.sh): the pydicom half is skipped"
        );
    } else {
        let out = Command::new("python3")
            .arg(root.join("scripts/dicos_check.py"))
            .args([d.join("dicos"), d.join("pkg"), d.join("sc")])
            .env("PYTHONPATH", &site)
            .output()
            .expect("run python3");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("4 scans, 8 image objects"), "{said}");
        assert!(said.contains("16 threat detection reports"), "{said}");
        assert!(said.contains("4 secondary-capture images"), "{said}");
    }

    // A damaged file: refused, named, nothing written.
    let victim = d.join("dicos/syn-5-000002/v0-high.dcm");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let out = borderlens(d, &["nii", "import-dicos", "--lib", "fresh", "dicos"]);
    // Rejected input, as for a package: exit status 1, the file named.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("nothing imported") && err.contains("syn-5-000002/v0-high.dcm"),
        "{err}"
    );
    assert!(
        !d.join("fresh/catalogue.jsonl").exists()
            || std::fs::read_to_string(d.join("fresh/catalogue.jsonl"))
                .unwrap()
                .is_empty()
    );
}

/// Bringing your own scans: a folder of 16-bit PNG with metadata.csv and boxes.csv, imported
/// once, reported on; a pseudo-colour rendering passed as raw is refused by file, line and field.
#[test]
fn import_scans_from_a_folder_then_report_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two 16-bit grayscale PNG views, made by the library's own export of a generated scan.
    stdout_json(&borderlens(
        d,
        &[
            "nii", "generate", "--count", "1", "--seed", "9", "--out", "gen", "--size", "64",
            "--json",
        ],
    ));
    stdout_json(&borderlens(
        d,
        &["nii", "export", "--lib", "gen", "--out", "pkg", "--json"],
    ));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(d.join("pkg/manifest.json")).unwrap()).unwrap();
    let channels = manifest["scans"][0]["views"][0]["channels"]
        .as_array()
        .unwrap();
    let folder = d.join("mine");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, channel) in ["low.png", "high.png"].iter().zip(channels) {
        let sha = channel["image"]["sha256"].as_str().unwrap();
        std::fs::copy(d.join(format!("pkg/images/{sha}.png")), folder.join(name)).unwrap();
    }
    std::fs::write(
        folder.join("metadata.csv"),
        "scan_id,file,energy,scanned_at,scanner_model,mm_per_pixel,cargo_type,licence,redistributable\n\
         port-0001,low.png,low,2026-11-30T09:00:00,Site scanner 2,2.5,bag,internal,false\n\
         port-0001,high.png,high,,,,,,\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("boxes.csv"),
        "scan_id,annotator,label,x0,y0,x1,y1\nport-0001,officer-7,knife,4,4,20,30\n",
    )
    .unwrap();
    let s = stdout_json(&borderlens(
        d,
        &["nii", "import-scans", "--lib", "lib", "mine", "--json"],
    ));
    assert_eq!(
        (s["scans_added"].as_u64(), s["annotations_added"].as_u64()),
        (Some(1), Some(1))
    );
    let again = stdout_json(&borderlens(
        d,
        &["nii", "import-scans", "--lib", "lib", "mine", "--json"],
    ));
    assert_eq!(again["scans_added"], 0);
    let report = stdout_json(&borderlens(d, &["nii", "report", "lib", "--json"]));
    assert_eq!(report["scans"], 1);
    assert_eq!(report["counts_as_real"], 1, "{report}");
    // An 8-bit RGB rendering in place of the raw image: refused, named, nothing written.
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, 8, 8);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()
            .unwrap()
            .write_image_data(&[120; 192])
            .unwrap();
    }
    std::fs::write(folder.join("high.png"), bytes).unwrap();
    let out = borderlens(d, &["nii", "import-scans", "--lib", "fresh", "mine"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("metadata.csv:3: field file")
            && err.contains("high.png")
            && err.contains("pseudo-colour"),
        "{err}"
    );
    assert!(
        !d.join("fresh/catalogue.jsonl").exists()
            || std::fs::read_to_string(d.join("fresh/catalogue.jsonl"))
                .unwrap()
                .is_empty()
    );
}

#[test]
fn a_copy_of_a_public_set_in_8_bit_jpeg_is_imported_with_renderings_then_reported() {
    // A SIXray-like copy: pseudo-colour JPEG pictures of scans, with their boxes. Made here from
    // generated scans through the viewer's own palette, so the true transmission is known.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    stdout_json(&borderlens(
        d,
        &[
            "nii", "generate", "--count", "2", "--seed", "1", "--out", "gen", "--size", "128",
            "--json",
        ],
    ));
    let generated = borderlens_nii::library::Library::open(&d.join("gen")).unwrap();
    let folder = d.join("sixray");
    std::fs::create_dir_all(&folder).unwrap();
    let voc = d.join("sixray-annotations");
    std::fs::create_dir_all(&voc).unwrap();
    let mut originals = Vec::new();
    let mut truth_boxes = 0;
    for (i, record) in generated.records().iter().enumerate() {
        let [low, high] = generated.read_view(record, 0).unwrap();
        let (low, high) = (low.unwrap(), high.unwrap());
        let picture = borderlens_nii::rendering::render(&high, Some(&low));
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 90)
            .encode(
                &picture.data,
                picture.width as u16,
                picture.height as u16,
                jpeg_encoder::ColorType::Rgb,
            )
            .unwrap();
        let id = format!("P{:05}", i + 1);
        std::fs::write(folder.join(format!("{id}.jpg")), jpeg).unwrap();
        // Pascal VOC, as SIXray ships its boxes: 1-based, inclusive.
        let mut xml = format!(
            "<annotation><filename>{id}.jpg</filename><size><width>128</width><height>128</height></size>"
        );
        // One box drawn past the image's edges: clipped to it.
        xml.push_str("<object><name>Gun</name><bndbox><xmin>0</xmin><ymin>1</ymin><xmax>500</xmax><ymax>20</ymax></bndbox></object>");
        for t in record.truth.iter().filter(|t| t.view == 0) {
            let b = &t.bbox;
            xml.push_str(&format!(
                "<object><name>{}</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>",
                t.class, b.x0 + 1.0, b.y0 + 1.0, b.x1, b.y1
            ));
        }
        xml.push_str("</annotation>");
        std::fs::write(voc.join(format!("{id}.xml")), xml).unwrap();
        truth_boxes += 1;
        truth_boxes += record.truth.iter().filter(|t| t.view == 0).count();
        originals.push((id, high, record.truth.clone()));
    }
    // The boxes of an image this copy does not hold (another split): skipped.
    std::fs::write(
        voc.join("P09999.xml"),
        "<annotation><filename>P09999.jpg</filename><object><name>knife</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>",
    )
    .unwrap();
    // The script README points to writes metadata.csv and boxes.csv from the set's files.
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/public_set_to_import.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&folder)
        .args([
            "--licence",
            "SIXray (academic use only)",
            "--scanned-at",
            "2019-01-01T00:00:00",
            "--annotator",
            "sixray",
        ])
        .arg("--voc")
        .arg(&voc)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 boxes skipped (other images)"), "{said}");
    let boxes = std::fs::read_to_string(folder.join("boxes.csv")).unwrap();
    assert_eq!(boxes.lines().count(), truth_boxes + 1, "{boxes}");
    assert!(
        boxes.contains("P00001,sixray,gun,0.0,0.0,128.0,20.0"),
        "{boxes}"
    );

    // As they are: refused, with the way out named.
    let out = borderlens(d, &["nii", "import-scans", "--lib", "lib", "sixray"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("metadata.csv:2: field file")
            && err.contains("P00001.jpg")
            && err.contains("--renderings"),
        "{err}"
    );
    // With --renderings: two dual-energy scans, marked as approximated.
    let s = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "import-scans",
            "--lib",
            "lib",
            "sixray",
            "--renderings",
            "--json",
        ],
    ));
    assert_eq!(s["scans_added"], 2, "{s}");
    assert!(s["annotations_added"].as_u64().unwrap() >= 1, "{s}");
    let again = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "import-scans",
            "--lib",
            "lib",
            "sixray",
            "--renderings",
            "--json",
        ],
    ));
    assert_eq!(
        (
            again["scans_added"].as_u64(),
            again["annotations_added"].as_u64()
        ),
        (Some(0), Some(0))
    );
    let library = borderlens_nii::library::Library::open(&d.join("lib")).unwrap();
    for (id, original, truth) in &originals {
        // The set's boxes are the library's: the truth's, in our 0-based exclusive pixels.
        let drawn: Vec<_> = library
            .annotations()
            .iter()
            .filter(|a| a.scan_id == *id && a.annotator == "sixray")
            .flat_map(|a| a.objects.clone())
            .collect();
        for t in truth.iter().filter(|t| t.view == 0) {
            assert!(
                drawn.iter().any(|o| {
                    let (a, b) = (&o.bbox, &t.bbox);
                    o.label == t.class
                        && [a.x0 - b.x0, a.y0 - b.y0, a.x1 - b.x1, a.y1 - b.y1]
                            .iter()
                            .all(|d| d.abs() < 1e-9)
                }),
                "{id}: {t:?} not in {drawn:?}"
            );
        }
        let record = library.get(id).unwrap();
        let rendering = record.provenance.rendering.as_ref().expect("marked");
        assert_eq!(
            (rendering.format.as_str(), rendering.colour),
            ("jpeg", true)
        );
        let [low, high] = library.read_view(record, 0).unwrap();
        assert!(low.is_some(), "a colour rendering gives both energies");
        let high = high.unwrap();
        // The brightness is the high channel's transmission, within the JPEG's noise.
        let error: f64 = original
            .data
            .iter()
            .zip(&high.data)
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs() / 65535.0)
            .sum::<f64>()
            / original.data.len() as f64;
        assert!(error < 0.03, "{id}: mean |ΔT| {error}");
    }
    let report = stdout_json(&borderlens(d, &["nii", "report", "lib", "--json"]));
    assert_eq!(
        (report["scans"].as_u64(), report["from_renderings"].as_u64()),
        (Some(2), Some(2)),
        "{report}"
    );
    assert_eq!(report["resolution"]["dual_energy"], 2, "{report}");
    let text = borderlens(d, &["nii", "report", "lib"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("2 scans from 8-bit renderings"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    let verify = borderlens(d, &["nii", "verify", "lib"]);
    assert_eq!(verify.status.code(), Some(0));
    // Its licence keeps it here: an export leaves every scan out, naming why.
    let out = borderlens(
        d,
        &[
            "nii",
            "export-coco",
            "--lib",
            "lib",
            "--out",
            "coco",
            "--source",
            "sixray",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("P00001")
            || String::from_utf8_lossy(&out.stdout).contains("P00001")
    );
}

#[test]
fn assign_scans_to_annotators_then_read_their_progress() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    stdout_json(&borderlens(
        d,
        &[
            "nii", "generate", "--count", "6", "--seed", "2", "--out", "lib", "--size", "64",
            "--json",
        ],
    ));
    // Refused whole: more annotators per scan than the team.
    let out = borderlens(
        d,
        &[
            "nii",
            "assign",
            "lib",
            "--annotators",
            "ana,ben",
            "--k",
            "3",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("field k"), "{err}");
    assert!(!d.join("lib/assignments.jsonl").exists());
    let done = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "assign",
            "lib",
            "--annotators",
            "ana,ben,cho",
            "--k",
            "2",
            "--json",
        ],
    ));
    let done = done.as_array().unwrap();
    assert_eq!(done.len(), 6);
    assert!(done
        .iter()
        .all(|a| a["annotators"].as_array().unwrap().len() == 2));
    // Again: every scan has its annotators already.
    let again = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "assign",
            "lib",
            "--annotators",
            "ana,ben,cho",
            "--json",
        ],
    ));
    assert!(again.as_array().unwrap().is_empty());
    let progress = stdout_json(&borderlens(d, &["nii", "assign", "lib", "--json"]));
    let progress = progress.as_array().unwrap();
    assert_eq!(progress.len(), 3);
    // 12 slots over 3: 4 each, none done yet
    for p in progress {
        assert_eq!(
            (p["assigned"].as_u64(), p["done"].as_u64()),
            (Some(4), Some(0)),
            "{p}"
        );
    }
    let text = borderlens(d, &["nii", "assign", "lib"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("ana") && text.contains("to do"), "{text}");
}

/// The command failed with exit status 2 and said `needle` on stderr.
fn refused_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(needle), "{err}");
}

/// The detector from the command line: train with a held-out evaluation kept in the model,
/// evaluate again, detect with heat maps and pre-annotations; and the refusals.
#[test]
fn train_evaluate_and_detect_with_heat_maps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (lib, seed, count) in [("train", "3", "24"), ("test", "4", "8")] {
        stdout_json(&borderlens(
            d,
            &[
                "nii",
                "generate",
                "--count",
                count,
                "--seed",
                seed,
                "--out",
                lib,
                "--size",
                "128",
                "--threat-rate",
                "0.8",
                "--json",
            ],
        ));
    }
    let args = [
        "nii",
        "train",
        "--library",
        "train",
        "--out",
        "model",
        "--eval",
        "test",
        "--epochs",
        "2",
        "--side",
        "64",
        "--width",
        "4",
        "--batch",
        "8",
        "--seed",
        "9",
        "--json",
    ];
    let meta = stdout_json(&borderlens(d, &args));
    assert_eq!(meta["format"], "borderlens-nii-detector");
    let id = meta["model_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("det-") && id.len() == 16, "{id}");
    assert_eq!(meta["training"]["views"], 24);
    assert_eq!(meta["training"]["label_source"], "truth");
    assert_eq!(meta["training"]["digest"].as_str().unwrap().len(), 64);
    assert_eq!(
        meta["training"]["loss_by_epoch"].as_array().unwrap().len(),
        2
    );
    let e = &meta["evaluations"][0];
    assert_eq!(e["set"], "test");
    assert_eq!(e["views"], 8);
    assert!(d.join("model/detector.safetensors").is_file());
    // A model is never overwritten.
    let again = borderlens(d, &args);
    refused_with(&again, "already holds a model");
    // The same seed gives the same model.
    let mut same = args.to_vec();
    same[5] = "model2";
    let meta2 = stdout_json(&borderlens(d, &same));
    assert_eq!(meta2["model_id"], meta["model_id"]);

    let e = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "evaluate",
            "--model",
            "model",
            "--library",
            "test",
            "--json",
        ],
    ));
    assert_eq!(e["views"], 8);
    assert_eq!(
        e["per_class"].as_array().unwrap().len(),
        meta["classes"].as_array().unwrap().len()
    );
    let own = borderlens(
        d,
        &["nii", "evaluate", "--model", "model", "--library", "train"],
    );
    assert!(own.status.success());
    assert!(String::from_utf8_lossy(&own.stderr).contains("own training set"));

    let lib: Value = serde_json::from_str(
        std::fs::read_to_string(d.join("test/catalogue.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let scan = lib["metadata"]["scan_id"].as_str().unwrap().to_string();
    let out = stdout_json(&borderlens(
        d,
        &[
            "nii",
            "detect",
            "--model",
            "model",
            "--library",
            "test",
            &scan,
            "--min-score",
            "0.0",
            "--out",
            "found",
            "--pre-annotate",
            "--json",
        ],
    ));
    let view = &out["views"][0];
    assert_eq!(view["scan_id"], scan.as_str());
    let dets = view["detections"].as_array().unwrap();
    assert!(!dets.is_empty(), "at score 0 every class has a peak");
    assert_eq!(out["heat_map_grid_side"], 16);
    for det in dets {
        let png = d.join("found").join(det["heat_map"].as_str().unwrap());
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert_eq!(det["heat_map_grid"].as_array().unwrap().len(), 16 * 16);
    }
    assert!(d.join("found/detections.json").is_file());
    // The pre-annotation is a machine source: in the library, not in the consensus.
    let lines = std::fs::read_to_string(d.join("test/annotations.jsonl")).unwrap();
    assert!(lines.contains("\"role\":\"machine\""), "{lines}");
    assert!(lines.contains(&format!("model:{id}")));
    let report = stdout_json(&borderlens(d, &["nii", "report", "test", "--json"]));
    assert_eq!(
        report["annotation"]["annotators"], 0,
        "{}",
        report["annotation"]
    );
    assert_eq!(report["annotation"]["scans_annotated"], 0);

    // Nor is it exchanged: the scan package leaves machine lines out.
    let out = borderlens(d, &["nii", "export", "--lib", "test", "--out", "pkg"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shared = std::fs::read_to_string(d.join("pkg/annotations.json")).unwrap();
    assert!(!shared.contains("model:"), "{shared}");
    // Nor can a model learn from, or be judged by, its own proposals.
    let own_labels = format!("model:{id}");
    let own = borderlens(
        d,
        &[
            "nii",
            "evaluate",
            "--model",
            "model",
            "--library",
            "test",
            "--labels",
            &own_labels,
        ],
    );
    refused_with(&own, "is labelled by 'model:");

    // Refusals name what is wrong.
    let bad = borderlens(
        d,
        &[
            "nii",
            "detect",
            "--model",
            "model",
            "--library",
            "test",
            "nope",
        ],
    );
    refused_with(&bad, "scan 'nope' is not in");
    let text = std::fs::read_to_string(d.join("model/detector.json")).unwrap();
    std::fs::write(
        d.join("model/detector.json"),
        text.replace("\"width\": 4", "\"width\": 1"),
    )
    .unwrap();
    let bad = borderlens(
        d,
        &[
            "nii",
            "detect",
            "--model",
            "model",
            "--library",
            "test",
            &scan,
        ],
    );
    refused_with(&bad, "field shape.width: 1 is not from 4 to 256");
    std::fs::write(d.join("model/detector.json"), "{\"format\": 1}").unwrap();
    let bad = borderlens(
        d,
        &[
            "nii",
            "detect",
            "--model",
            "model",
            "--library",
            "test",
            &scan,
        ],
    );
    refused_with(&bad, "detector.json");
    refused_with(&bad, "line 1");
    let bad = borderlens(
        d,
        &[
            "nii",
            "train",
            "--library",
            "train",
            "--out",
            "m3",
            "--side",
            "60",
        ],
    );
    refused_with(&bad, "side must be a multiple of 16");
    let bad = borderlens(
        d,
        &[
            "nii",
            "train",
            "--library",
            "train",
            "--out",
            "m3",
            "--labels",
            "nobody",
        ],
    );
    refused_with(&bad, "labelled by 'nobody'");
}

/// The hybrid loop's retraining from the command line: the first version becomes active, the
/// second is compared with it on the same held-out set, `nii models` lists both; a missing
/// held-out library is refused before anything is trained.
#[test]
fn retrain_registers_versions_and_models_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (lib, seed, count) in [("lib", "3", "12"), ("held", "4", "6")] {
        stdout_json(&borderlens(
            d,
            &[
                "nii",
                "generate",
                "--count",
                count,
                "--seed",
                seed,
                "--out",
                lib,
                "--size",
                "96",
                "--threat-rate",
                "0.8",
                "--json",
            ],
        ));
    }
    let retrain = |seed: &str| {
        stdout_json(&borderlens(
            d,
            &[
                "nii",
                "retrain",
                "--library",
                "lib",
                "--held-out",
                "held",
                "--epochs",
                "2",
                "--side",
                "32",
                "--width",
                "4",
                "--seed",
                seed,
                "--actor",
                "ann-1",
                "--json",
            ],
        ))
    };
    let first = retrain("1");
    assert_eq!(first["entry"]["promoted"], true);
    assert_eq!(first["entry"]["label_source"], "corrected");
    assert_eq!(first["entry"]["by"], "ann-1");
    assert!(first["entry"]["compared_with"].is_null());
    let first_id = first["entry"]["model_id"].as_str().unwrap().to_string();
    assert!(d
        .join("lib/models")
        .join(&first_id)
        .join("detector.json")
        .is_file());
    let second = retrain("2");
    assert_eq!(second["entry"]["compared_with"][0], first_id.as_str());
    assert_eq!(
        second["entry"]["compared_with"][1], first["entry"]["figures"],
        "the active model's figures on the same set, measured again"
    );
    let listed = stdout_json(&borderlens(
        d,
        &["nii", "models", "--library", "lib", "--json"],
    ));
    assert_eq!(listed["models"].as_array().unwrap().len(), 2);
    let active = if second["entry"]["promoted"] == true {
        second["entry"]["model_id"].clone()
    } else {
        Value::from(first_id.clone())
    };
    assert_eq!(listed["active"], active);
    assert_eq!(listed["review"]["shown"]["views"], 0);
    let out = borderlens(
        d,
        &[
            "nii",
            "retrain",
            "--library",
            "lib",
            "--held-out",
            "nowhere",
        ],
    );
    refused_with(&out, "nowhere");
    let listed = stdout_json(&borderlens(
        d,
        &["nii", "models", "--library", "lib", "--json"],
    ));
    assert_eq!(
        listed["models"].as_array().unwrap().len(),
        2,
        "nothing registered"
    );
}

/// The guideline: the built-in one until a version is published; a file naming a scan the
/// library lacks is refused by its field and publishes nothing; versions are kept.
#[test]
fn publish_the_annotation_guideline_and_read_its_versions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let generated = borderlens(
        d,
        &[
            "nii", "generate", "--count", "2", "--seed", "4", "--out", "lib", "--size", "64",
        ],
    );
    assert!(generated.status.success());
    let built_in = stdout_json(&borderlens(d, &["nii", "guideline", "lib", "--json"]));
    assert_eq!(built_in[0]["version"], 0);
    assert_eq!(built_in[0]["classes"][0]["name"], "knife");
    std::fs::write(
        d.join("bad.json"),
        r#"{"classes": [{"name": "gun", "kind": "threat", "definition": "a gun of any kind",
            "examples": ["syn-4-999999"]}]}"#,
    )
    .unwrap();
    let refused = borderlens(d, &["nii", "guideline", "lib", "--publish", "bad.json"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("bad.json: field classes[0].examples[0]: scan 'syn-4-999999'"),
        "{stderr}"
    );
    assert!(!d.join("lib/guideline.jsonl").exists());
    std::fs::write(
        d.join("g.json"),
        r#"{"classes": [
            {"name": "knife", "kind": "threat", "definition": "a knife with a handle",
             "examples": ["syn-4-000001"]},
            {"name": "laptop", "kind": "benign", "definition": "a laptop, closed or open"}]}"#,
    )
    .unwrap();
    for version in [1, 2] {
        let published = stdout_json(&borderlens(
            d,
            &["nii", "guideline", "lib", "--publish", "g.json", "--json"],
        ));
        assert_eq!(published["version"], version);
        assert_eq!(published["classes"][1]["kind"], "benign");
    }
    let history = stdout_json(&borderlens(
        d,
        &["nii", "guideline", "lib", "--history", "--json"],
    ));
    assert_eq!(history.as_array().unwrap().len(), 2);
    let text = borderlens(d, &["nii", "guideline", "lib"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("guideline version 2"), "{text}");
    assert!(
        text.contains("laptop (benign): a laptop, closed or open"),
        "{text}"
    );
}

/// `nii catalogue` puts a library's scans in the store and counts the declarations that name
/// their containers or parcels (in any spelling of a valid id); running it again replaces the
/// rows, and an id with a wrong check digit links nothing.
#[test]
fn catalogue_links_scans_to_the_declarations_of_their_containers_and_parcels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let generated = stdout_json(&borderlens(
        d,
        &[
            "nii", "generate", "--count", "12", "--seed", "1", "--out", "lib", "--size", "96",
            "--json",
        ],
    ));
    assert_eq!(generated["written"], 12);
    let catalogue = std::fs::read_to_string(d.join("lib/catalogue.jsonl")).unwrap();
    let records: Vec<Value> = catalogue
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids = |field: &str| -> Vec<String> {
        records
            .iter()
            .filter_map(|r| r["metadata"][field].as_str().map(str::to_string))
            .collect()
    };
    let (containers, parcels) = (ids("container_id"), ids("package_id"));
    assert!(
        !containers.is_empty() && parcels.len() >= 2,
        "{containers:?} {parcels:?}"
    );
    let row = "2021-01-01,40,B,11,11,11,40,76NV527,SHHZGSL,249LO7A,,760711,CN,CN,7.2,FCN1,E,901.2,415092.72,0,0";
    let c = &containers[0];
    let spaced = format!("{} {}-{}", &c[..4], &c[4..10], &c[10..]).to_lowercase();
    let p = &parcels[1];
    let wrong = format!(
        "{}{}{}",
        &p[..10],
        (p.as_bytes()[10] - b'0' + 1) % 10,
        &p[11..]
    );
    let csv = format!(
        "Declaration ID,Date,Office ID,Process Type,Import Type,Import Use,Payment Type,Mode of Transport,Declarant ID,Importer ID,Seller ID,Courier ID,HS6 Code,Country of Departure,Country of Origin,Tax Rate,Tax Type,Country of Origin Indicator,Net Mass,Item Price,Fraud,Critical Fraud,Container Number,Postal Item ID\n\
         D-C,{row},{spaced},\n\
         D-P,{row},,{}\n\
         D-W,{row},,{wrong}\n\
         D-N,{row},,\n",
        parcels[0]
    );
    std::fs::write(d.join("declarations.csv"), csv).unwrap();
    let imported = stdout_json(&borderlens(d, &["--json", "import", "declarations.csv"]));
    assert_eq!(imported["files"][0]["inserted"], 4, "{imported:#}");
    let report = stdout_json(&borderlens(d, &["--json", "nii", "catalogue", "lib"]));
    assert_eq!(report["scans"], 12, "{report:#}");
    assert_eq!(report["with_container"], containers.len() as u64);
    assert_eq!(report["with_postal_item"], parcels.len() as u64);
    assert_eq!(report["linked_declarations"], 2, "{report:#}");
    assert!(
        Path::new(report["library"].as_str().unwrap()).ends_with("lib"),
        "{report:#}"
    );
    // Again: the rows are replaced, not added.
    let again = stdout_json(&borderlens(d, &["--json", "nii", "catalogue", "lib"]));
    assert_eq!(again["scans"], 12);
    // A folder that is no library is refused, naming it.
    let out = borderlens(d, &["nii", "catalogue", "nowhere"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nowhere"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
