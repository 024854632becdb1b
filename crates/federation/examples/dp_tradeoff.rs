//! Differential privacy's price: trains federated models on the sample split by customs office
//! between three in-process parties, with no noise and with noise at several multipliers, on
//! the declarations before the last quarter, and prints each model's ε (δ = 10⁻⁶) and its
//! ROC-AUC on the last quarter's. `[CSV=FILE[:FILE...]] [NUM_LEAVES=N] cargo run --release -p
//! borderlens-federation --example dp_tradeoff [N_TREES] [MAX_BIN] [LAMBDA_L2] [MULTIPLIER...]`
//! (the bundled sample by default). The noise is fresh in every run: so are the figures.

use borderlens_domain::{DeclarationItem, LabelKind};
use borderlens_federation::{
    Coordinator, FederationOptions, InProcess, LocalParty, OnFault, Privacy,
};
use borderlens_ingest::{read_declarations, ColumnMapping};
use borderlens_risk::gbdt::GbdtConfig;
use borderlens_risk::metrics::roc_auc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: f64| {
        args.get(i)
            .map(|a| a.parse::<f64>().expect("a number"))
            .unwrap_or(default)
    };
    let (n_trees, max_bin, lambda) = (arg(0, 100.0) as usize, arg(1, 255.0) as usize, arg(2, 1.0));
    let multipliers: Vec<Option<f64>> = if args.len() > 3 {
        std::iter::once(None)
            .chain(
                args[3..]
                    .iter()
                    .map(|a| Some(a.parse().expect("a multiplier"))),
            )
            .collect()
    } else {
        vec![None, Some(1.0), Some(5.0), Some(20.0)]
    };
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/sample/df_syn_valid_eng.csv"
    );
    let paths = std::env::var("CSV").unwrap_or_else(|_| sample.to_string());
    let mut items: Vec<DeclarationItem> = Vec::new();
    for path in paths.split(':') {
        let reader =
            read_declarations(std::path::Path::new(path), &ColumnMapping::kcs_default()).unwrap();
        items.extend(reader.map(Result::unwrap));
    }
    items.sort_by_key(|d| d.date);
    let cut = items[items.len() * 3 / 4].date;
    let mut parts: [Vec<DeclarationItem>; 3] = Default::default();
    for item in items.iter().filter(|d| d.date < cut) {
        let party = match item.office_id.as_str() {
            "40" => 0,
            "20" => 1,
            _ => 2,
        };
        parts[party].push(item.clone());
    }
    let mut config = GbdtConfig::standard();
    config.n_trees = n_trees;
    config.max_bin = max_bin;
    config.lambda_l2 = lambda;
    if let Ok(leaves) = std::env::var("NUM_LEAVES") {
        config.num_leaves = leaves.parse().expect("NUM_LEAVES");
    }
    println!(
        "{n_trees} trees of {} leaves, at most {max_bin} bins, lambda_l2 {lambda}; test from {cut}",
        config.num_leaves
    );
    for multiplier in multipliers {
        let parties: Vec<LocalParty> = parts
            .iter()
            .enumerate()
            .map(|(id, items)| LocalParty::new(id as u32, items.clone(), LabelKind::Fraud).unwrap())
            .collect();
        let options = FederationOptions {
            gbdt: config.clone(),
            on_fault: OnFault::Abort,
            privacy: multiplier.map(|noise_multiplier| Privacy {
                noise_multiplier,
                delta: 1e-6,
            }),
        };
        let mut coordinator = Coordinator::new(InProcess::new(parties), options);
        let model = coordinator.train().unwrap();
        // The last quarter's controlled declarations, described with the agreed pipeline
        // (history from every earlier item: the same test rows for every model).
        let wanted: Vec<bool> = items
            .iter()
            .map(|d| d.date >= cut && d.label.is_some())
            .collect();
        let (test, _) = model.pipeline.transform(&items, &wanted, LabelKind::Fraud);
        let auc = roc_auc(&model.booster.predict_raw_all(&test), &test.labels);
        match model.privacy {
            Some(p) => println!(
                "multiplier {:>6}: {:>5} releases, epsilon {:>10.2}, AUC {auc:.3}",
                p.spent.noise_multiplier, p.spent.releases, p.epsilon
            ),
            None => println!("no noise         :                           AUC {auc:.3}"),
        }
    }
}
