//! Times federated training (three in-process parties, the sample split by customs office)
//! against pooled training of the same rows, best of three runs each, and prints the largest
//! score difference. `cargo run --release -p borderlens-federation --example federated_vs_pooled
//! [N_TREES]`.

use std::time::{Duration, Instant};

use borderlens_domain::{DeclarationItem, LabelKind};
use borderlens_federation::{Coordinator, FederationOptions, InProcess, LocalParty, OnFault};
use borderlens_ingest::{read_declarations, ColumnMapping};
use borderlens_risk::gbdt::{Booster, GbdtConfig};

fn main() {
    let n_trees: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N_TREES"))
        .unwrap_or(100);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/sample/df_syn_valid_eng.csv"
    );
    let reader =
        read_declarations(std::path::Path::new(path), &ColumnMapping::kcs_default()).unwrap();
    let mut items: Vec<DeclarationItem> = reader.map(Result::unwrap).collect();
    items.sort_by_key(|d| d.date);
    let mut parts: [Vec<DeclarationItem>; 3] = Default::default();
    for item in items {
        let party = match item.office_id.as_str() {
            "40" => 0,
            "20" => 1,
            _ => 2,
        };
        parts[party].push(item);
    }
    let mut config = GbdtConfig::standard();
    config.n_trees = n_trees;
    let options = FederationOptions {
        gbdt: config.clone(),
        on_fault: OnFault::Abort,
        privacy: None,
    };
    let best = |times: &mut Vec<Duration>| times.iter().min().copied().unwrap();
    let (mut federated_times, mut pooled_times) = (Vec::new(), Vec::new());
    let mut max_delta = 0.0f64;
    let mut rounds = 0;
    for _ in 0..3 {
        let parties: Vec<LocalParty> = parts
            .iter()
            .enumerate()
            .map(|(id, items)| LocalParty::new(id as u32, items.clone(), LabelKind::Fraud).unwrap())
            .collect();
        let started = Instant::now();
        let mut coordinator = Coordinator::new(InProcess::new(parties), options.clone());
        let model = coordinator.train().unwrap();
        federated_times.push(started.elapsed());
        rounds = model.rounds;
        let parties = coordinator.transport().all();
        let mut pooled = parties[0].dataset().unwrap().clone();
        for party in &parties[1..] {
            let data = party.dataset().unwrap();
            for i in 0..data.n_rows() {
                pooled.push_row(&data.row(i), data.labels[i], data.weights[i]);
            }
        }
        let started = Instant::now();
        let reference = Booster::train(&pooled, &config, None, &mut |_, _| true);
        pooled_times.push(started.elapsed());
        let (a, b) = (
            model.booster.predict_raw_all(&pooled),
            reference.predict_raw_all(&pooled),
        );
        for (x, y) in a.iter().zip(&b) {
            max_delta = max_delta.max((x - y).abs());
        }
    }
    let (f, p) = (best(&mut federated_times), best(&mut pooled_times));
    println!(
        "{n_trees} trees: federated {f:.2?} ({rounds} rounds, setup and feature agreement \
         included), pooled {p:.2?} (rows already described), ratio {:.2}; max |score \
         difference| {max_delta:e}",
        f.as_secs_f64() / p.as_secs_f64()
    );
}
