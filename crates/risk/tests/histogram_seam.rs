//! The histogram seam of `gbdt` (histograms in, splits out), as federated training will use it:
//! rows held in two places, binned with the same given bins, grow the trees of all the rows from
//! the sum of their histograms.

use borderlens_risk::data::{Dataset, FeatureInfo, FeatureKind};
use borderlens_risk::gbdt::{
    add_leaf_values, grow_tree, log_loss_gradients, round_sample, to_fixed, BinSplit, Binning,
    Booster, FeatureBins, FeatureSummary, GbdtConfig, LabelSums, LocalRows, NodeHistogram,
    NodeRows, Split, Tree,
};
use borderlens_risk::rng::Rng;

const N_CODES: u32 = 40;

/// `n` rows: two numeric features (one with missing values), a categorical one with 40 codes, a
/// numeric one with few values, a categorical one with 3 codes; labels from a logistic model.
fn dataset(seed: u64, n: usize) -> Dataset {
    let mut rng = Rng::new(seed);
    let kinds = [
        FeatureKind::Numeric,
        FeatureKind::Numeric,
        FeatureKind::Categorical {
            cardinality: N_CODES,
        },
        FeatureKind::Numeric,
        FeatureKind::Categorical { cardinality: 3 },
    ];
    let mut data = Dataset {
        features: kinds
            .iter()
            .enumerate()
            .map(|(j, &kind)| FeatureInfo {
                name: format!("f{j}"),
                kind,
            })
            .collect(),
        columns: vec![Vec::new(); kinds.len()],
        labels: Vec::new(),
        weights: Vec::new(),
    };
    for _ in 0..n {
        let a = rng.next_f64();
        let b = if rng.next_f64() < 0.15 {
            f64::NAN
        } else {
            rng.next_f64() * 10.0
        };
        let c = rng.below(N_CODES as usize) as f64;
        let d = (rng.next_f64() * 12.0).floor();
        let e = rng.below(3) as f64;
        let logit = 2.5 * (a - 0.5)
            + if b.is_nan() { 0.8 } else { (b - 5.0) / 4.0 }
            + if (c / 3.0).fract() == 0.0 { 1.0 } else { -0.4 }
            + if e == 1.0 { 0.1 * d } else { 0.0 };
        let label = rng.next_f64() < 1.0 / (1.0 + (-logit).exp());
        data.push_row(&[a, b, c, d, e], label, 1.0);
    }
    data
}

/// Bins agreed before any row is seen (as the nodes of a federation would agree on them): fixed
/// edges for the numeric features, a vocabulary of 30 of the 40 codes (the rest share "other").
fn agreed_binning() -> Binning {
    let edges = |step: f64, count: usize| FeatureBins::Numeric {
        upper_bounds: (1..count)
            .map(|i| i as f64 * step)
            .chain([f64::INFINITY])
            .collect(),
    };
    Binning::new(vec![
        edges(0.05, 20),
        edges(0.5, 20),
        FeatureBins::Categorical {
            categories: (0..30).rev().collect(),
            has_other: true,
        },
        edges(1.0, 12),
        FeatureBins::Categorical {
            categories: vec![0, 1, 2],
            has_other: false,
        },
    ])
    .unwrap()
}

/// Rows held in several places: each answers from its own rows, the grower sees the sums.
struct Federated<'a> {
    holders: Vec<LocalRows<'a>>,
}

impl NodeRows for Federated<'_> {
    type Error = std::convert::Infallible;

    fn root(&mut self) -> Result<NodeHistogram, Self::Error> {
        let mut holders = self.holders.iter_mut();
        let mut sum = holders.next().unwrap().root()?;
        for holder in holders {
            sum.add(&holder.root()?);
        }
        Ok(sum)
    }

    fn split(
        &mut self,
        node: usize,
        feature: usize,
        split: &BinSplit,
        left: usize,
        right: usize,
    ) -> Result<(usize, usize), Self::Error> {
        let mut counts = (0, 0);
        for holder in &mut self.holders {
            let (l, r) = holder.split(node, feature, split, left, right)?;
            counts = (counts.0 + l, counts.1 + r);
        }
        Ok(counts)
    }

    fn histogram(&mut self, node: usize) -> Result<NodeHistogram, Self::Error> {
        let mut holders = self.holders.iter_mut();
        let mut sum = holders.next().unwrap().histogram(node)?;
        for holder in holders {
            sum.add(&holder.histogram(node)?);
        }
        Ok(sum)
    }
}

fn all_rows(data: &Dataset) -> Vec<u32> {
    (0..data.n_rows() as u32).collect()
}

fn n_leaves(tree: &Tree) -> usize {
    tree.nodes.iter().filter(|n| n.split.is_none()).count()
}

/// Trees grown on the sum of two halves' histograms, each half binned on its own with the same
/// given bins, are the trees grown on all the rows: the same splits, covers, gains and leaf
/// values, bit for bit. Exact for any gradients: histograms sum in fixed point, so the order of
/// the additions (two halves' histograms, the rows one by one, or two halves of a node's rows as
/// training does from 4,096 rows on) does not change a bit.
#[test]
fn trees_grown_from_summed_half_histograms_equal_trees_grown_on_all_rows() {
    let data = dataset(21, 12_000);
    let half = data.n_rows() / 2;
    let first = data.select_rows(&(0..half).collect::<Vec<_>>());
    let second = data.select_rows(&(half..data.n_rows()).collect::<Vec<_>>());
    let binning = agreed_binning();
    let binned = binning.bin_rows(&data);
    let binned_first = binning.bin_rows(&first);
    let binned_second = binning.bin_rows(&second);
    let mut rng = Rng::new(8);
    let (mut categorical, mut missing_left) = (0, 0);
    for round in 0..6 {
        let gradients: Vec<i64> = (0..data.n_rows())
            .map(|_| to_fixed(rng.next_f64() * 2.0 - 1.0))
            .collect();
        let hessians: Vec<i64> = (0..data.n_rows())
            .map(|_| to_fixed(0.01 + rng.next_f64() / 4.0))
            .collect();
        let mut config = GbdtConfig::standard();
        config.num_leaves = [31, 8, 63][round % 3];
        config.max_depth = [0, 0, 5][round % 3];
        config.min_data_in_leaf = 10;
        config.min_data_per_group = 10;
        config.max_cat_to_onehot = [4, 40][round % 2];
        let allowed = vec![true; data.n_features()];

        let mut local = LocalRows::new(&binning, &binned, &gradients, &hessians, all_rows(&data));
        let whole_root = local.root().unwrap();
        let whole = grow_tree(&binning, &config, &allowed, &mut local).unwrap();

        let holders = vec![
            LocalRows::new(
                &binning,
                &binned_first,
                &gradients[..half],
                &hessians[..half],
                all_rows(&first),
            ),
            LocalRows::new(
                &binning,
                &binned_second,
                &gradients[half..],
                &hessians[half..],
                all_rows(&second),
            ),
        ];
        let mut federated = Federated { holders };
        assert_eq!(
            federated.root().unwrap(),
            whole_root,
            "round {round}: root histograms"
        );
        let summed = grow_tree(&binning, &config, &allowed, &mut federated).unwrap();

        assert!(n_leaves(&whole) >= 8, "round {round}: a real tree");
        assert_eq!(summed, whole, "round {round}");
        for node in &whole.nodes {
            match node.split {
                Some(Split::Categorical { .. }) => categorical += 1,
                Some(Split::Numeric {
                    default_left: true, ..
                }) => missing_left += 1,
                _ => {}
            }
        }
    }
    assert!(categorical > 0 && missing_left > 0);
}

/// Federated boosting with log-loss gradients: each half keeps its own scores and gradients and
/// runs the steps of a boosting round that training runs (starting score from summed
/// [`LabelSums`], gradients, the round's features, leaf values added to its own rows' scores);
/// the trees are grown on the sum of the halves' histograms, and they are the trees that
/// `Booster::train_with_binning` grows on all the rows with the same bins, bit for bit.
#[test]
fn federated_boosting_on_summed_histograms_grows_the_trees_of_all_rows() {
    let mut data = dataset(5, 9_000);
    // Weights that are not multiples of a power of two: floating-point sums of them would depend
    // on the order of the additions.
    data.weights = (0..data.n_rows())
        .map(|i| 1.0 + (i % 7) as f64 / 3.0)
        .collect();
    let half = 4_000;
    let parts = [
        data.select_rows(&(0..half).collect::<Vec<_>>()),
        data.select_rows(&(half..data.n_rows()).collect::<Vec<_>>()),
    ];
    let mut config = GbdtConfig::standard();
    config.n_trees = 12;
    config.learning_rate = 0.2;
    config.feature_fraction = 0.8;
    // Bins agreed from the halves' summaries are the bins learned from all the rows.
    let summaries: Vec<Vec<FeatureSummary>> = parts.iter().map(FeatureSummary::of_data).collect();
    let binning = Binning::from_summaries(&summaries, config.max_bin).unwrap();
    assert_eq!(binning, Binning::from_data(&data, config.max_bin));
    let booster = Booster::train(&data, &config, None, &mut |_, _| true);
    assert_eq!(booster.trees.len(), config.n_trees);

    let binned: Vec<_> = parts.iter().map(|part| binning.bin_rows(part)).collect();
    let mut sums = LabelSums::default();
    for part in &parts {
        sums.add(&LabelSums::of(&part.labels, &part.weights));
    }
    assert_eq!(sums.init_score(), booster.init_score);
    let mut scores: Vec<Vec<f64>> = parts
        .iter()
        .map(|part| vec![sums.init_score(); part.n_rows()])
        .collect();
    for (round, expected) in booster.trees.iter().enumerate() {
        let mut gradients = Vec::new();
        let mut hessians = Vec::new();
        for (part, scores) in parts.iter().zip(&scores) {
            let (mut g, mut h) = (vec![0; part.n_rows()], vec![0; part.n_rows()]);
            log_loss_gradients(scores, &part.labels, &part.weights, &mut g, &mut h);
            gradients.push(g);
            hessians.push(h);
        }
        let (_, allowed) = round_sample(&config, 0, data.n_features(), round);
        assert!(
            allowed.iter().any(|a| !a),
            "round {round}: a feature left out"
        );
        let holders = (0..2)
            .map(|i| {
                LocalRows::new(
                    &binning,
                    &binned[i],
                    &gradients[i],
                    &hessians[i],
                    all_rows(&parts[i]),
                )
            })
            .collect();
        let mut federated = Federated { holders };
        let tree = grow_tree(&binning, &config, &allowed, &mut federated).unwrap();
        assert!(n_leaves(expected) >= 8, "round {round}: a real tree");
        assert_eq!(&tree, expected, "round {round}");
        for (holder, scores) in federated.holders.into_iter().zip(scores.iter_mut()) {
            add_leaf_values(&tree, &holder.into_leaves(), scores);
        }
    }
    // The holders' running scores are the booster's predictions, up to the order in which the
    // trees' values are added (init first here, last in prediction).
    let raw = booster.predict_raw_all(&data);
    for (i, (held, raw)) in scores.concat().iter().zip(&raw).enumerate() {
        assert!((held - raw).abs() < 1e-12, "row {i}: {held} != {raw}");
    }
}

/// Training with bins given is training with the bins it would have learned; bins that do not
/// fit the data are refused, and ill-formed ones are refused when given.
#[test]
fn given_bins_are_checked_and_learned_bins_give_the_usual_model() {
    let data = dataset(3, 2_000);
    let mut config = GbdtConfig::standard();
    config.n_trees = 5;
    config.max_bin = 32;
    let usual = Booster::train(&data, &config, None, &mut |_, _| true);
    let learned = Binning::from_data(&data, config.max_bin);
    let given = Binning::new(learned.features().to_vec()).unwrap();
    assert_eq!(given, learned);
    let with_bins =
        Booster::train_with_binning(&data, &config, &given, None, &mut |_, _| true).unwrap();
    assert_eq!(with_bins, usual);
    assert!(usual.trees.iter().any(|t| t
        .nodes
        .iter()
        .any(|n| matches!(n.split, Some(Split::Categorical { .. })))));

    // Bins of the wrong kind, or for another number of features.
    let mut swapped = learned.features().to_vec();
    swapped.swap(0, 2);
    let swapped = Binning::new(swapped).unwrap();
    assert!(Booster::train_with_binning(&data, &config, &swapped, None, &mut |_, _| true).is_err());
    let fewer = Binning::new(learned.features()[..4].to_vec()).unwrap();
    assert!(Booster::train_with_binning(&data, &config, &fewer, None, &mut |_, _| true).is_err());
    // Ill-formed bins.
    for bad in [
        FeatureBins::Numeric {
            upper_bounds: vec![],
        },
        FeatureBins::Numeric {
            upper_bounds: vec![2.0, 1.0, f64::INFINITY],
        },
        FeatureBins::Numeric {
            upper_bounds: (0..300).map(f64::from).collect(),
        },
        FeatureBins::Categorical {
            categories: vec![3, 1, 3],
            has_other: true,
        },
    ] {
        assert!(Binning::new(vec![bad.clone()]).is_err(), "{bad:?}");
    }
}

/// The words of some features only (what a federation's parties send for a tree that reads
/// those features): they give back those features' bins exactly and zeros elsewhere, the
/// "less" words are the other child's, and words that are not such a histogram are refused.
#[test]
fn the_words_of_some_features_round_trip_and_the_rest_reads_as_zero() {
    let data = dataset(5, 3_000);
    let binning = agreed_binning();
    let binned = binning.bin_rows(&data);
    let n = data.n_rows();
    let scores = vec![0.3; n];
    let (mut g, mut h) = (vec![0; n], vec![0; n]);
    log_loss_gradients(&scores, &data.labels, &data.weights, &mut g, &mut h);
    let all = all_rows(&data);
    let whole = NodeHistogram::build(&binning, &binned, &all, &g, &h);
    let part_rows: Vec<u32> = all.iter().copied().filter(|r| r % 3 == 0).collect();
    let part = NodeHistogram::build(&binning, &binned, &part_rows, &g, &h);
    let features = [0, 2, 4];
    let (max_rows, max_abs) = (n, to_fixed(n as f64) + n as i64);

    let mut words = Vec::new();
    part.extend_words_of(&binning, &features, &mut words);
    assert_eq!(words.len(), NodeHistogram::words_len(&binning, &features));
    let back = NodeHistogram::from_words_of(&binning, &features, &words, max_rows, max_abs)
        .expect("a histogram");
    assert_eq!(back.n_rows(), part.n_rows());
    for f in 0..binning.features().len() {
        if features.contains(&f) {
            assert_eq!(
                back.feature(&binning, f),
                part.feature(&binning, f),
                "feature {f}"
            );
        } else {
            assert!(back
                .feature(&binning, f)
                .iter()
                .all(|b| b.g == 0 && b.h == 0));
        }
    }
    assert_eq!(back.total(&binning), part.total(&binning));
    // All the features: the words of to_words.
    let every: Vec<usize> = (0..binning.features().len()).collect();
    let mut all_words = Vec::new();
    part.extend_words_of(&binning, &every, &mut all_words);
    assert_eq!(all_words, part.to_words());

    // The whole less the part is the rest's histogram.
    let rest_rows: Vec<u32> = all.iter().copied().filter(|r| r % 3 != 0).collect();
    let rest = NodeHistogram::build(&binning, &binned, &rest_rows, &g, &h);
    let (mut less, mut direct) = (Vec::new(), Vec::new());
    whole.extend_words_less(&part, &binning, &features, &mut less);
    rest.extend_words_of(&binning, &features, &mut direct);
    assert_eq!(less, direct);

    // Not such a histogram: refused.
    let of = |features: &[usize], words: &[u64]| {
        NodeHistogram::from_words_of(&binning, features, words, max_rows, max_abs)
    };
    assert!(of(&features, &words[1..]).is_none(), "a word short");
    assert!(of(&[2, 0, 4], &words).is_none(), "features not ascending");
    assert!(of(&[0, 2, 9], &words).is_none(), "no feature 9");
    let mut bad = words.clone();
    bad[0] = (n + 1) as u64;
    assert!(of(&features, &bad).is_none(), "more rows than there are");
    let mut bad = words.clone();
    bad[2] = u64::MAX; // a hessian sum of -1
    assert!(of(&features, &bad).is_none(), "a negative hessian sum");
    let mut bad = words;
    bad[1] = (max_abs + 1) as u64;
    assert!(
        of(&features, &bad).is_none(),
        "a gradient sum beyond the rows'"
    );
    assert!(part.within(max_rows, max_abs));
    assert!(!whole.within(n - 1, max_abs), "more rows than allowed");
}

/// Noisy words (differential privacy): sums a little beyond what rows can give are read (the
/// row count clamped back), sums beyond the noise's tolerance are refused, and sums within
/// range read as `from_words_of` reads them.
#[test]
fn noisy_words_within_the_tolerance_are_clamped_and_beyond_it_refused() {
    let data = dataset(7, 1_000);
    let binning = agreed_binning();
    let binned = binning.bin_rows(&data);
    let n = data.n_rows();
    let scores = vec![-0.2; n];
    let (mut g, mut h) = (vec![0; n], vec![0; n]);
    log_loss_gradients(&scores, &data.labels, &data.weights, &mut g, &mut h);
    let rows: Vec<u32> = all_rows(&data).into_iter().filter(|r| r % 2 == 0).collect();
    let part = NodeHistogram::build(&binning, &binned, &rows, &g, &h);
    let features = [0, 1, 3];
    let (max_rows, max_abs) = (n, to_fixed(n as f64) + n as i64);
    let tolerance = (50u64, to_fixed(50.0));
    let mut words = Vec::new();
    part.extend_words_of(&binning, &features, &mut words);
    let noisy = |words: &[u64]| {
        NodeHistogram::from_noisy_words_of(&binning, &features, words, max_rows, max_abs, tolerance)
    };
    // In range: the same histogram as the exact reading.
    let exact = NodeHistogram::from_words_of(&binning, &features, &words, max_rows, max_abs);
    assert_eq!(noisy(&words), exact);

    // Noise pushed the row count below zero and a hessian sum below zero: the count is
    // clamped to zero, the bin kept as it is (clamped bins would bias the totals).
    let mut pushed = words.clone();
    pushed[0] = (-30i64) as u64;
    pushed[2] = (-to_fixed(10.0)) as u64;
    let back = noisy(&pushed).expect("within the tolerance");
    assert_eq!(back.n_rows(), 0);
    assert_eq!(back.feature(&binning, 0)[0].h, -to_fixed(10.0));
    // Above the rows there are, within the tolerance: clamped to the rows there are.
    pushed[0] = (n + 40) as u64;
    pushed[1] = (max_abs + to_fixed(40.0)) as u64;
    let back = noisy(&pushed).expect("within the tolerance");
    assert_eq!(back.n_rows(), n);
    assert_eq!(back.feature(&binning, 0)[0].g, max_abs + to_fixed(40.0));
    let mut fewer = back.clone();
    fewer.clamp_rows(10);
    assert_eq!(fewer.n_rows(), 10);

    // Beyond the tolerance: no noise of this scale gives it.
    for (word, value) in [
        (0, (n + 51) as u64),
        (0, (-51i64) as u64),
        (2, (-to_fixed(51.0)) as u64),
        (1, (max_abs + to_fixed(51.0)) as u64),
        (1, (-max_abs - to_fixed(51.0)) as u64),
    ] {
        let mut bad = words.clone();
        bad[word] = value;
        assert!(noisy(&bad).is_none(), "word {word} = {value}");
    }
    assert!(noisy(&words[1..]).is_none(), "a word short");
}
