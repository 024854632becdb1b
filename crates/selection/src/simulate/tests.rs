use std::collections::HashMap;
use std::sync::Mutex;

use borderlens_domain::{ControlLabel, HsCode, ItemKey};

use super::*;

/// Twelve weeks of 200 declarations a day-spread week; frauds are the importers `I0`..`I4`
/// (a quarter of the traffic) plus noise.
fn traffic() -> Vec<DeclarationItem> {
    let mut rng = Rng::new(3);
    let start = NaiveDate::from_ymd_opt(2021, 1, 4).unwrap();
    (0..2400)
        .map(|i| {
            let importer = rng.below(20);
            let fraud = importer < 5 || rng.next_f64() < 0.05;
            DeclarationItem {
                key: ItemKey {
                    declaration_id: format!("D{i:05}"),
                    item_no: 1,
                },
                date: start + chrono::Days::new((i / 200 * 7 + i % 200 / 40) as u64),
                office_id: "30".into(),
                process_type: "B".into(),
                import_type: "11".into(),
                import_use: "21".into(),
                payment_type: "11".into(),
                transport_mode: "10".into(),
                declarant_id: "D".into(),
                importer_id: format!("I{importer}"),
                seller_id: None,
                courier_id: None,
                hs6: HsCode::parse("610910").unwrap(),
                departure_country: "CN".into(),
                origin_country: "CN".into(),
                tax_rate: 10.0,
                tax_type: "A".into(),
                origin_indicator: "G".into(),
                net_mass: 10.0,
                item_price: 100.0 + i as f64,
                label: Some(ControlLabel {
                    fraud,
                    critical: u8::from(fraud),
                }),
                extra: Default::default(),
            }
        })
        .collect()
}

/// Scores by the fraud rate of the importer among revealed labels; records what it was shown.
struct ImporterRate {
    shown: Mutex<Vec<(usize, usize)>>,
}

impl Learner for ImporterRate {
    fn fit_score(
        &self,
        history: &[DeclarationItem],
        weights: &[f64],
        batch: &[DeclarationItem],
    ) -> Result<Vec<f64>, String> {
        assert_eq!(history.len(), weights.len());
        assert!(
            batch.iter().all(|d| d.label.is_none()),
            "the week's labels leaked"
        );
        let labelled = history.iter().filter(|d| d.label.is_some()).count();
        self.shown.lock().unwrap().push((history.len(), labelled));
        let mut stats: HashMap<&str, (f64, f64)> = HashMap::new();
        for d in history {
            if let Some(label) = d.label {
                let e = stats.entry(d.importer_id.as_str()).or_default();
                e.0 += f64::from(u8::from(label.fraud));
                e.1 += 1.0;
            }
        }
        Ok(batch
            .iter()
            .map(|d| {
                let (hits, n) = stats
                    .get(d.importer_id.as_str())
                    .copied()
                    .unwrap_or_default();
                (hits + 0.5) / (n + 2.0)
            })
            .collect())
    }
}

fn run(options: &SimulationOptions) -> (SimulationReport, Vec<(usize, usize)>) {
    let learner = ImporterRate {
        shown: Mutex::new(Vec::new()),
    };
    let report = simulate(&traffic(), &learner, options, &|_, _| true).unwrap();
    let shown = learner.shown.into_inner().unwrap();
    (report, shown)
}

#[test]
fn only_selected_declarations_reveal_their_labels() {
    let mut options = SimulationOptions::standard();
    options.strategies = vec![Strategy::Exploit];
    options.capacity = 0.1;
    options.warmup_weeks = 2;
    let (report, shown) = run(&options);
    let weeks = &report.policies["exploit"].weeks;
    assert_eq!(weeks.len(), 12);
    // The learner is called for every week after the warm-up, and sees exactly the labels of
    // the declarations selected in earlier weeks.
    assert_eq!(shown.len(), 10);
    for (k, &(history, labelled)) in shown.iter().enumerate() {
        let week = k + 2;
        assert_eq!(history, 200 * week);
        let selected: usize = weeks[..week].iter().map(|w| w.selected).sum();
        assert_eq!(labelled, selected);
    }
    assert!(weeks.iter().all(|w| w.selected == 20));
}

#[test]
fn exploitation_learns_but_its_naive_estimate_is_biased_and_the_hybrid_is_not() {
    let mut options = SimulationOptions::standard();
    options.strategies = vec![Strategy::Exploit, Strategy::ExploitRandom, Strategy::Random];
    options.capacity = 0.1;
    options.explore_share = 0.3;
    options.warmup_weeks = 2;
    options.last_weeks = 4;
    let (report, _) = run(&options);
    let exploit = &report.policies["exploit"];
    let hybrid = &report.policies["exploit_random"];
    let random = &report.policies["random"];
    // The importer-rate model finds the fraudulent importers.
    assert!(
        exploit.precision > random.precision + 0.3,
        "{} vs {}",
        exploit.precision,
        random.precision
    );
    assert_eq!(exploit.estimator, "naive");
    assert_eq!(hybrid.estimator, "horvitz_thompson");
    // The naive estimate is far above the truth; the hybrid's interval covers it most weeks.
    assert!(exploit.pooled_estimate.rate > report.true_rate + 0.2);
    assert!(
        exploit.estimate_coverage < 0.3,
        "{}",
        exploit.estimate_coverage
    );
    assert!(
        hybrid.estimate_coverage >= 0.7,
        "{}",
        hybrid.estimate_coverage
    );
    assert!(hybrid.pooled_estimate.covers(report.true_rate));
    assert!(random.pooled_estimate.covers(report.true_rate));
}

#[test]
fn warm_up_weeks_are_the_same_for_every_policy() {
    let mut options = SimulationOptions::standard();
    options.warmup_weeks = 3;
    let (report, _) = run(&options);
    let first: Vec<(usize, usize)> = report.policies["exploit"].weeks[..3]
        .iter()
        .map(|w| (w.selected, w.hits))
        .collect();
    for policy in report.policies.values() {
        let these: Vec<(usize, usize)> = policy.weeks[..3]
            .iter()
            .map(|w| (w.selected, w.hits))
            .collect();
        assert_eq!(these, first);
        assert!(policy.weeks[..3].iter().all(|w| w.warmup));
    }
}

#[test]
fn bad_inputs_are_refused_before_any_work() {
    let learner = ImporterRate {
        shown: Mutex::new(Vec::new()),
    };
    let mut items = traffic();
    let mut options = SimulationOptions::standard();
    options.capacity = 0.0;
    assert!(simulate(&items, &learner, &options, &|_, _| true)
        .unwrap_err()
        .to_string()
        .contains("capacity"));
    options.capacity = 0.05;
    items[7].label = None;
    let error = simulate(&items, &learner, &options, &|_, _| true).unwrap_err();
    assert!(error.to_string().contains("D00007"), "{error}");
    items[7].label = Some(ControlLabel {
        fraud: false,
        critical: 0,
    });
    options.warmup_weeks = 12;
    assert!(simulate(&items, &learner, &options, &|_, _| true)
        .unwrap_err()
        .to_string()
        .contains("warm-up"));
    options.warmup_weeks = 2;
    let stopped = simulate(&items, &learner, &options, &|done, _| done < 3).unwrap_err();
    assert!(matches!(stopped, SimulationError::Interrupted));
    assert!(learner.shown.lock().unwrap().len() < 12);
}

#[test]
fn the_report_says_how_much_fraud_duty_the_largest_frauds_hold() {
    let mut options = SimulationOptions::standard();
    options.strategies = vec![Strategy::Random];
    options.warmup_weeks = 2;
    let items = traffic();
    let learner = ImporterRate {
        shown: Mutex::new(Vec::new()),
    };
    let report = simulate(&items, &learner, &options, &|_, _| true).unwrap();
    // Recomputed from the counted weeks (after the 2 warm-up weeks of 200 declarations).
    let mut duties: Vec<f64> = items[400..]
        .iter()
        .filter(|d| d.label.is_some_and(|l| l.fraud))
        .map(DeclarationItem::duty_at_stake)
        .collect();
    duties.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = duties.iter().sum();
    let top = duties.len().div_ceil(100);
    let expected = duties[..top].iter().sum::<f64>() / total;
    assert!((report.revenue_total - total).abs() < 1e-6 * total);
    assert!(
        (report.largest_frauds_duty_share - expected).abs() < 1e-12,
        "{} vs {expected}",
        report.largest_frauds_duty_share
    );
    assert!(report.largest_frauds_duty_share > 0.0 && report.largest_frauds_duty_share < 1.0);
}
