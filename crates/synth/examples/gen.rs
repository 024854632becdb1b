//! Generate a FEBRL-like pair of sources and write them as `a.csv` and `b.csv`.
//!
//! `cargo run --release -p borderlens-synth --example gen -- N DIR [SEED]`
//!
//! Prints the generation and writing times, distinct values per name column, and file sizes.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use borderlens_synth::{febrl_like, write_csv, Records, COLUMNS, GIVEN_NAME, SUBURB, SURNAME};

fn distinct(records: &Records, column: usize) -> usize {
    records
        .rows
        .iter()
        .map(|r| r[column].as_str())
        .filter(|v| !v.is_empty())
        .collect::<HashSet<_>>()
        .len()
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: gen N DIR [SEED]");
        std::process::exit(2);
    }
    let n: usize = args[1].parse().expect("N: a number of records");
    let dir = PathBuf::from(&args[2]);
    let seed: u64 = args
        .get(3)
        .map_or(42, |s| s.parse().expect("SEED: a number"));
    std::fs::create_dir_all(&dir)?;

    let start = Instant::now();
    let (a, b) = febrl_like(n, seed);
    let generated = start.elapsed();

    let start = Instant::now();
    write_csv(&a, &dir.join("a.csv"))?;
    write_csv(&b, &dir.join("b.csv"))?;
    let written = start.elapsed();

    println!("n = {n} per source, seed {seed}");
    println!(
        "generated in {:.2} s, written in {:.2} s",
        generated.as_secs_f64(),
        written.as_secs_f64()
    );
    for (name, records) in [("a", &a), ("b", &b)] {
        let size = std::fs::metadata(dir.join(format!("{name}.csv")))?.len();
        println!(
            "{name}.csv: {} rows, {:.1} MB; distinct {} {}, {} {}, {} {}",
            records.len(),
            size as f64 / 1e6,
            COLUMNS[GIVEN_NAME],
            distinct(records, GIVEN_NAME),
            COLUMNS[SURNAME],
            distinct(records, SURNAME),
            COLUMNS[SUBURB],
            distinct(records, SUBURB),
        );
    }
    Ok(())
}
