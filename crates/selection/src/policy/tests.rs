use super::*;
use borderlens_domain::{HsCode, ItemKey};

pub(crate) fn item(id: usize, origin: &str, hs6: &str) -> DeclarationItem {
    DeclarationItem {
        key: ItemKey {
            declaration_id: format!("D{id:05}"),
            item_no: 1,
        },
        date: NaiveDate::from_ymd_opt(2021, 3, 1).unwrap(),
        office_id: "30".into(),
        process_type: "B".into(),
        import_type: "11".into(),
        import_use: "21".into(),
        payment_type: "11".into(),
        transport_mode: "10".into(),
        declarant_id: "DECL".into(),
        importer_id: format!("IMP{}", id % 7),
        seller_id: None,
        courier_id: None,
        hs6: HsCode::parse(hs6).unwrap(),
        departure_country: origin.into(),
        origin_country: origin.into(),
        tax_rate: 8.0,
        tax_type: "A".into(),
        origin_indicator: "G".into(),
        net_mass: 100.0,
        item_price: 1000.0,
        label: None,
        extra: Default::default(),
    }
}

fn batch(n: usize) -> Vec<DeclarationItem> {
    (0..n)
        .map(|i| item(i, if i % 10 == 0 { "CO" } else { "CN" }, "090111"))
        .collect()
}

fn policy(json: &str) -> Policy {
    Policy::from_json(json).unwrap()
}

fn run(policy: &Policy, items: &[DeclarationItem], seed: u64) -> Vec<Decision> {
    let candidates: Vec<Candidate> = items
        .iter()
        .enumerate()
        .map(|(i, item)| Candidate {
            item,
            score: (i as f64 * 0.618).fract(),
        })
        .collect();
    decide(policy, &candidates, &mut Rng::new(seed))
}

#[test]
fn risk_and_random_shares_fill_the_capacity_with_known_probabilities() {
    let items = batch(1000);
    let p = policy(r#"{"name":"p","capacity":{"share":0.05},"explore_share":0.2}"#);
    let decisions = run(&p, &items, 1);
    let red: Vec<&Decision> = decisions.iter().filter(|d| d.lane == Lane::Red).collect();
    assert_eq!(red.len(), 50);
    assert_eq!(
        red.iter()
            .filter(|d| d.source == DecisionSource::Risk)
            .count(),
        40
    );
    assert_eq!(
        red.iter()
            .filter(|d| d.source == DecisionSource::Random)
            .count(),
        10
    );
    // Every declaration not risk-targeted has the same π = 10 / 960.
    for d in decisions
        .iter()
        .filter(|d| d.source != DecisionSource::Risk)
    {
        assert_eq!(d.stratum, "random");
        assert!((d.pi - 10.0 / 960.0).abs() < 1e-12);
    }
    // The risk-targeted are exactly the 40 highest scores.
    let mut scores: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.618).fract()).collect();
    scores.sort_by(|a, b| b.total_cmp(a));
    let lowest_targeted = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.source == DecisionSource::Risk)
        .map(|(i, _)| (i as f64 * 0.618).fract())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(lowest_targeted, scores[39]);
}

#[test]
fn random_draws_are_uniform_over_repetitions() {
    let items = batch(200);
    let p = policy(r#"{"name":"p","capacity":{"count":20},"explore_share":0.5}"#);
    let mut counts = vec![0usize; 200];
    let trials = 4000;
    for seed in 0..trials {
        for (i, d) in run(&p, &items, seed).iter().enumerate() {
            if d.source == DecisionSource::Random {
                counts[i] += 1;
            }
        }
    }
    // π = 10/190 for the 190 not targeted; empirical frequencies within 5 standard errors.
    let pi = 10.0 / 190.0;
    let se = (pi * (1.0 - pi) / trials as f64).sqrt();
    let sampled: Vec<usize> = counts.iter().copied().filter(|&c| c > 0).collect();
    assert_eq!(sampled.len(), 190);
    for c in sampled {
        assert!((c as f64 / trials as f64 - pi).abs() < 5.0 * se, "{c}");
    }
}

#[test]
fn campaigns_select_every_member_and_count_against_capacity() {
    let items = batch(1000);
    let p = policy(
        r#"{"name":"p","capacity":{"share":0.2},"explore_share":0.1,
            "campaigns":[{"name":"coffee-co","segment":{"origin_countries":["CO"],"hs_chapters":["09"]},
                          "from":"2021-03-01","to":"2021-03-31"}]}"#,
    );
    let decisions = run(&p, &items, 2);
    let campaign: Vec<&Decision> = decisions
        .iter()
        .filter(|d| d.source == DecisionSource::Campaign)
        .collect();
    assert_eq!(campaign.len(), 100);
    assert!(campaign
        .iter()
        .all(|d| d.pi == 1.0 && d.lane == Lane::Red && d.reasons[0].contains("coffee-co")));
    assert_eq!(
        decisions.iter().filter(|d| d.lane == Lane::Red).count(),
        200
    );
}

#[test]
fn campaigns_outside_their_dates_do_nothing() {
    let items = batch(100);
    let p = policy(
        r#"{"name":"p","capacity":{"count":5},
            "campaigns":[{"name":"old","segment":{"origin_countries":["CO"]},"from":"2020-01-01","to":"2020-12-31"}]}"#,
    );
    assert!(run(&p, &items, 3)
        .iter()
        .all(|d| d.source != DecisionSource::Campaign));
}

#[test]
fn pure_exploitation_leaves_the_rest_with_zero_probability() {
    let items = batch(100);
    let p = policy(r#"{"name":"p","capacity":{"count":5},"exploration":{"kind":"none"}}"#);
    let decisions = run(&p, &items, 4);
    assert_eq!(decisions.iter().filter(|d| d.lane == Lane::Red).count(), 5);
    assert!(decisions
        .iter()
        .filter(|d| d.lane == Lane::Green)
        .all(|d| d.pi == 0.0 && d.stratum == "unselected"));
}

#[test]
fn uncertainty_exploration_oversamples_the_uncertain_and_reaches_everyone() {
    let items = batch(900);
    let p = policy(
        r#"{"name":"p","capacity":{"count":100},"explore_share":0.3,
            "exploration":{"kind":"uncertainty","strata":3,"oversample":2.0}}"#,
    );
    let decisions = run(&p, &items, 5);
    let explored = decisions
        .iter()
        .filter(|d| d.source == DecisionSource::Explore)
        .count();
    assert_eq!(explored, 30);
    let pi_of = |stratum: &str| {
        decisions
            .iter()
            .find(|d| d.stratum == stratum)
            .map(|d| d.pi)
            .unwrap()
    };
    let (p1, p2, p3) = (pi_of("explore:1"), pi_of("explore:2"), pi_of("explore:3"));
    assert!(p1 > p2 && p2 > p3 && p3 > 0.0, "{p1} {p2} {p3}");
    // Within a stratum, π is the share drawn.
    for h in 1..=3 {
        let stratum = format!("explore:{h}");
        let members = decisions.iter().filter(|d| d.stratum == stratum).count();
        let drawn = decisions
            .iter()
            .filter(|d| d.stratum == stratum && d.source == DecisionSource::Explore)
            .count();
        assert!((pi_of(&stratum) - drawn as f64 / members as f64).abs() < 1e-12);
    }
}

#[test]
fn documentary_share_fills_the_yellow_lane_after_the_red() {
    let items = batch(100);
    let p = policy(
        r#"{"name":"p","capacity":{"count":5},"documentary_share":0.1,"exploration":{"kind":"none"}}"#,
    );
    let decisions = run(&p, &items, 6);
    assert_eq!(
        decisions.iter().filter(|d| d.lane == Lane::Yellow).count(),
        10
    );
    assert_eq!(decisions.iter().filter(|d| d.lane == Lane::Red).count(), 5);
}

#[test]
fn bad_policies_name_the_field() {
    for (json, field) in [
        (r#"{"name":"p","capacity":{"share":1.5}}"#, "capacity.share"),
        (r#"{"name":"p","capacity":{"count":0}}"#, "capacity.count"),
        (
            r#"{"name":"p","capacity":{"count":3},"explore_share":1}"#,
            "explore_share",
        ),
        (
            r#"{"name":"p","capacity":{"count":3},"campaigns":[{"name":"x","segment":{},"from":"2021-01-01","to":"2021-02-01"}]}"#,
            "campaigns[0].segment",
        ),
        (
            r#"{"name":"p","capacity":{"count":3},"campaigns":[{"name":"x","segment":{"offices":["1"]},"from":"2021-03-01","to":"2021-02-01"}]}"#,
            "campaigns[0].to",
        ),
    ] {
        let error = Policy::from_json(json).unwrap_err().to_string();
        assert!(error.contains(field), "{json}: {error}");
    }
    let error = Policy::from_json(r#"{"name":"p","capacity":{"count":3},"colour":"red"}"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("colour"), "{error}");
}

#[test]
fn expected_revenue_ranking_prefers_large_consignments() {
    let mut items = batch(100);
    for (i, item) in items.iter_mut().enumerate() {
        item.item_price = if i == 99 { 1e9 } else { 1000.0 };
    }
    let by_probability =
        policy(r#"{"name":"p","capacity":{"count":1},"exploration":{"kind":"none"}}"#);
    let by_revenue = policy(
        r#"{"name":"p","capacity":{"count":1},"exploration":{"kind":"none"},"rank_by":"expected_revenue"}"#,
    );
    let chosen = |p: &Policy| {
        run(p, &items, 1)
            .iter()
            .position(|d| d.lane == Lane::Red)
            .unwrap()
    };
    // Scores are (i · 0.618) mod 1: declaration 99 scores 0.18, far from the highest.
    assert_ne!(chosen(&by_probability), 99);
    assert_eq!(chosen(&by_revenue), 99);
}

#[test]
fn allocation_respects_sizes_and_total() {
    assert_eq!(
        allocate(10, &[5, 5, 5], &[4.0, 2.0, 1.0])
            .iter()
            .sum::<usize>(),
        10
    );
    assert_eq!(allocate(2, &[5, 5, 5], &[4.0, 2.0, 1.0]), vec![1, 1, 0]);
    assert_eq!(allocate(20, &[3, 3, 3], &[4.0, 2.0, 1.0]), vec![3, 3, 3]);
}

proptest::proptest! {
    #[test]
    fn decisions_respect_capacity_and_probabilities(
        n in 0usize..300, share in 0.01f64..1.0, explore in 0.0f64..0.9, seed in 0u64..1000,
        kind in 0usize..3,
    ) {
        let items = batch(n);
        let exploration = match kind {
            0 => r#"{"kind":"none"}"#.to_string(),
            1 => r#"{"kind":"random"}"#.to_string(),
            _ => r#"{"kind":"uncertainty"}"#.to_string(),
        };
        let p = policy(&format!(
            r#"{{"name":"p","capacity":{{"share":{share}}},"explore_share":{explore},"exploration":{exploration}}}"#
        ));
        let decisions = run(&p, &items, seed);
        proptest::prop_assert_eq!(decisions.len(), n);
        let red = decisions.iter().filter(|d| d.lane == Lane::Red).count();
        let capacity = p.capacity.for_batch(n);
        let explores = kind != 0 && explore > 0.0 && n > 0;
        proptest::prop_assert_eq!(red, if explores { capacity.max(1) } else { capacity });
        if explores {
            proptest::prop_assert!(decisions.iter().all(|d| d.pi > 0.0), "π = 0 left");
        }
        // π is exactly the share of its stratum the design drew.
        let mut strata: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        for d in &decisions {
            let e = strata.entry(d.stratum.as_str()).or_default();
            e.0 += 1;
            e.1 += usize::from(d.source.is_design_selection());
        }
        for d in &decisions {
            let (members, drawn) = strata[d.stratum.as_str()];
            proptest::prop_assert!((d.pi - drawn as f64 / members as f64).abs() < 1e-12);
        }
        for d in &decisions {
            proptest::prop_assert!((0.0..=1.0).contains(&d.pi));
            if d.source.is_design_selection() {
                proptest::prop_assert!(d.pi > 0.0);
            }
        }
    }
}
