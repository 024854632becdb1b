//! How results look: tables for people, one JSON object for machines, SVG charts.

use std::path::Path;

use anyhow::Context;
use borderlens_app::{
    AnomalyReport, EvaluationReport, ExplainReport, FileReport, ScoreReport, TargetingMetrics,
    TrainReport,
};
use borderlens_charts as charts;
use borderlens_domain::Lane;
use borderlens_selection::simulate::SimulationReport;
use borderlens_store::ModelInfo;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

/// `println!` that ends the process quietly when stdout is closed (`borderlens ... | head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(e.into());
        }
    }};
}
pub(crate) use outln;

pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn import(reports: &[FileReport], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::json!({ "files": reports }));
    }
    let mut t = table(&[
        "file",
        "records",
        "inserted",
        "unchanged",
        "labelled",
        "conflicts",
        "rejected",
        "descriptions read",
    ]);
    for r in reports {
        match &r.file_error {
            Some(e) if r.inserted == 0 => {
                t.add_row(vec![
                    r.file.clone(),
                    "refused".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
                eprintln!("borderlens: {e}");
            }
            _ => {
                t.add_row(vec![
                    r.file.clone(),
                    r.records.to_string(),
                    r.inserted.to_string(),
                    r.unchanged.to_string(),
                    r.labelled.to_string(),
                    r.conflicts.len().to_string(),
                    r.rejected.len().to_string(),
                    r.descriptions_read.to_string(),
                ]);
            }
        }
        for issue in &r.rejected {
            eprintln!("rejected: {}", issue.message);
        }
        for conflict in &r.conflicts {
            eprintln!("conflict (stored original kept): {conflict}");
        }
        if let Some(e) = &r.descriptions_error {
            eprintln!("{}: {e}", r.file);
        }
    }
    outln!("{t}");
    Ok(())
}

pub fn train(r: &TrainReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!(
        "model {} version {}: {} label, {} rows ({} positive) from {} to {}, imbalance {}, {} trees, {:.1}s",
        r.model, r.version, r.label, r.n_rows, r.positives, r.date_range.0, r.date_range.1, r.imbalance, r.n_trees, r.seconds
    );
    match (r.validation_roc_auc, r.validation_precision_at_5) {
        (Some(auc), Some(p5)) => {
            outln!("held-out recent rows: ROC-AUC {auc:.4}, precision@5% {p5:.4}")
        }
        _ => outln!("no held-out rows with both classes: no early stopping, no calibration"),
    }
    match &r.text_features {
        Some(hs) => outln!("text features: goods descriptions as read by HS model {hs}"),
        None => outln!("text features: none (no goods descriptions, or --no-text-features)"),
    }
    match &r.firm_history {
        Some(f) => outln!(
            "firm history: {} linked parties in {} firms, from linkage run {}",
            f.parties,
            f.groups,
            f.run
        ),
        None => outln!("firm history: none (no saved party links, or --no-firm-history)"),
    }
    outln!("sha256 {}", r.sha256);
    Ok(())
}

pub fn annotate(r: &borderlens_app::AnnotateReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!(
        "HS model {}: {} descriptions read now, {} readings stored in all ({:.1}s)",
        r.model,
        r.read,
        r.stored,
        r.seconds
    );
    for (model, n) in &r.other_models {
        outln!("kept: {n} readings by HS model {model}");
    }
    Ok(())
}

pub fn evaluate(r: &EvaluationReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!(
        "model {} v{} on {}..{}: {} declarations, {} {} ({:.1}%); ROC-AUC {:.4}, PR-AUC {:.4}",
        r.model,
        r.version,
        r.from,
        r.to,
        r.metrics.n,
        r.metrics.positives,
        r.label,
        100.0 * r.metrics.positives as f64 / r.metrics.n.max(1) as f64,
        r.metrics.roc_auc,
        r.metrics.pr_auc
    );
    outln!("{}", rate_table(&r.metrics));
    Ok(())
}

/// Precision, recall and revenue at the inspection rates of every report.
fn rate_table(m: &TargetingMetrics) -> Table {
    let mut t = table(&["inspected", "precision", "recall", "revenue caught"]);
    for rate in ["1", "2", "5", "10"] {
        t.add_row(vec![
            format!("{rate}%"),
            format!("{:.3}", m.precision_at[rate]),
            format!("{:.3}", m.recall_at[rate]),
            format!("{:.3}", m.revenue_at[rate]),
        ]);
    }
    t
}

pub fn score(r: &ScoreReport, limit: usize, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    let selected = r.items.iter().filter(|i| i.selected).count();
    outln!(
        "model {} v{}: {} declarations scored, {} at or above the {}% threshold ({:.3}); top {}:",
        r.model,
        r.version,
        r.items.len(),
        selected,
        r.rate,
        r.threshold,
        limit.min(r.items.len())
    );
    let mut t = table(&[
        "rank",
        "declaration",
        "item",
        "date",
        "score",
        "top reasons",
    ]);
    for item in r.items.iter().take(limit) {
        let reasons: Vec<String> = item
            .reasons
            .iter()
            .map(|c| format!("{} = {}: {:+.2}", c.words, c.value, c.log_odds))
            .collect();
        t.add_row(vec![
            item.rank.to_string(),
            item.declaration_id.clone(),
            item.item_no.to_string(),
            item.date.clone(),
            format!("{:.3}", item.score),
            reasons.join("\n"),
        ]);
    }
    outln!("{t}");
    Ok(())
}

/// The declared HS code and the goods descriptions as declared, quoted with Rust's escapes (a
/// line break reads `\n`, a control or direction mark cannot act on the terminal).
fn goods(g: &borderlens_app::GoodsText) -> anyhow::Result<()> {
    let quoted = |text: &Option<String>| match text {
        Some(text) => format!("{text:?}"),
        None => "none declared".to_string(),
    };
    outln!(
        "declared HS code {}; goods description as declared by the sender: {}",
        g.hs6,
        quoted(&g.description)
    );
    if g.description_cleaned.is_some() {
        outln!(
            "cleaned goods description (broker/operator): {}",
            quoted(&g.description_cleaned)
        );
    }
    Ok(())
}

pub fn explain(r: &ExplainReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!(
        "declaration {} item {}: score {:.3} (threshold at {}% inspected: {:.3}){}",
        r.declaration_id,
        r.item_no,
        r.score,
        r.rate,
        r.threshold,
        r.outcome
            .as_ref()
            .map(|o| format!("; control outcome: {o}"))
            .unwrap_or_default()
    );
    goods(&r.goods)?;
    outln!(
        "average declaration: {:+.3} log-odds; this one: {:+.3}",
        r.base_log_odds,
        r.log_odds
    );
    let mut t = table(&["contribution", "field", "value", "comes from"]);
    for c in r.contributions.iter().take(12) {
        t.add_row(vec![
            format!("{:+.3}", c.log_odds),
            c.words.clone(),
            c.value.clone(),
            c.basis().unwrap_or_default(),
        ]);
    }
    outln!("{t}");
    match &r.counterfactual {
        Some(c) => {
            let changes: Vec<String> = c
                .changes
                .iter()
                .map(|ch| format!("{} {} → {}", ch.field, ch.from, ch.to))
                .collect();
            outln!(
                "counterfactual: with {} the score would be {:.3}, below the threshold",
                changes.join(" and "),
                c.score
            );
        }
        None if r.score >= r.threshold => outln!(
            "counterfactual: no change of one or two declared fields brings it below the threshold"
        ),
        None => outln!("below the threshold: not selected at {}%", r.rate),
    }
    Ok(())
}

pub fn importance(importance: &[(String, f64)], json: bool) -> anyhow::Result<()> {
    if json {
        let rows: Vec<serde_json::Value> = importance
            .iter()
            .map(|(n, v)| serde_json::json!({"feature": n, "mean_abs_log_odds": v}))
            .collect();
        return print_json(&rows);
    }
    let mut t = table(&["feature", "mean |contribution| (log-odds)"]);
    for (name, value) in importance {
        t.add_row(vec![name.clone(), format!("{value:.4}")]);
    }
    outln!("{t}");
    Ok(())
}

pub fn describe_sample(r: &borderlens_app::DescribeSampleReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!(
        "CONSTRUCTED data in {} (seed {}; misdeclared: {} of fraud rows, {} of others; cleaned text on {})",
        r.out, r.seed, r.misdeclared_fraud_rate, r.misdeclared_clean_rate, r.cleaned_rate
    );
    let share = |part: u64, whole: u64| {
        if whole == 0 {
            "–".to_string()
        } else {
            format!("{part} ({:.1}%)", 100.0 * part as f64 / whole as f64)
        }
    };
    let mut t = table(&[
        "file",
        "rows",
        "matched HS6",
        "heading",
        "chapter",
        "none",
        "misdeclared fraud rows",
        "misdeclared other rows",
        "cleaned",
    ]);
    for f in &r.files {
        t.add_row(vec![
            f.file.clone(),
            f.rows.to_string(),
            share(f.matched_hs6, f.rows),
            share(f.matched_heading, f.rows),
            share(f.matched_chapter, f.rows),
            share(f.matched_none, f.rows),
            share(f.misdeclared_fraud, f.fraud_rows),
            share(f.misdeclared_clean, f.rows - f.fraud_rows),
            share(f.cleaned, f.rows),
        ]);
    }
    outln!("{t}");
    for path in &r.written {
        outln!("wrote {path}");
    }
    Ok(())
}

pub fn models(models: &[ModelInfo], json: bool) -> anyhow::Result<()> {
    if json {
        let rows: Vec<serde_json::Value> = models
            .iter()
            .map(|m| serde_json::json!({"name": m.name, "version": m.version, "created_at": m.created_at, "sha256": m.sha256, "size_bytes": m.size_bytes, "metadata": serde_json::from_str::<serde_json::Value>(&m.metadata_json).unwrap_or_default()}))
            .collect();
        return print_json(&rows);
    }
    let mut t = table(&["name", "version", "created", "size", "sha256"]);
    for m in models {
        t.add_row(vec![
            m.name.clone(),
            m.version.to_string(),
            m.created_at.clone(),
            m.size_bytes.to_string(),
            m.sha256.chars().take(16).collect(),
        ]);
    }
    outln!("{t}");
    Ok(())
}

fn write(path: &Path, svg: String) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))
}

pub fn write_rate_chart(path: &Path, r: &EvaluationReport) -> anyhow::Result<()> {
    write(path, r.rate_chart())
}

pub fn write_waterfall(path: &Path, r: &ExplainReport) -> anyhow::Result<()> {
    write(path, r.waterfall_chart())
}

pub fn write_importance(path: &Path, importance: &[(String, f64)]) -> anyhow::Result<()> {
    let bars: Vec<(String, f64)> = importance.iter().take(20).cloned().collect();
    write(
        path,
        charts::bar_chart_svg("global importance: mean |contribution|", &bars, "log-odds"),
    )
}

pub fn anomaly(r: &AnomalyReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!(
        "isolation forest on {}..{}: {} declarations scored (no labels used to fit)",
        r.from,
        r.to,
        r.n
    );
    if let Some(e) = &r.evaluation {
        outln!(
            "against the {} label ({} of {}): ROC-AUC {:.4}, PR-AUC {:.4}",
            e.label,
            e.metrics.positives,
            e.metrics.n,
            e.metrics.roc_auc,
            e.metrics.pr_auc
        );
        outln!("{}", rate_table(&e.metrics));
    }
    let mut t = table(&["rank", "declaration", "item", "date", "anomaly score"]);
    for item in &r.top {
        t.add_row(vec![
            item.rank.to_string(),
            item.declaration_id.clone(),
            item.item_no.to_string(),
            item.date.clone(),
            format!("{:.3}", item.score),
        ]);
    }
    outln!("{t}");
    Ok(())
}

pub fn simulation(r: &SimulationReport, weekly: bool, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!(
        "replayed {} declarations in {} weeks ({} warm-up); capacity {:.1}%, exploration share {:.0}%, ranked by {:?}{}",
        r.declarations,
        r.weeks,
        r.options.warmup_weeks,
        r.options.capacity * 100.0,
        r.options.explore_share * 100.0,
        r.options.rank_by,
        if r.options.ipw { ", IPW training" } else { "" }
    );
    outln!(
        "true {} rate over the counted weeks: {:.4} ({} of them)",
        r.options.label.name(),
        r.true_rate,
        r.frauds
    );
    let mut t = table(&[
        "policy",
        "precision",
        "recall",
        "revenue share",
        "last-quarter revenue",
        "estimator",
        "weekly coverage",
        "mean |error|",
        "pooled estimate (95% CI)",
    ]);
    for (name, p) in &r.policies {
        t.add_row(vec![
            name.clone(),
            format!("{:.3}", p.precision),
            format!("{:.3}", p.recall),
            format!("{:.3}", p.revenue_share),
            format!("{:.3}", p.last_quarter_revenue_share),
            p.estimator.to_string(),
            format!("{:.2}", p.estimate_coverage),
            format!("{:.3}", p.mean_abs_estimate_error),
            format!(
                "{:.3} ({:.3}-{:.3})",
                p.pooled_estimate.rate, p.pooled_estimate.low, p.pooled_estimate.high
            ),
        ]);
    }
    outln!("{t}");
    if r.largest_frauds_duty_share.is_finite() {
        outln!(
            "revenue: the largest 1% of the frauds hold {:.0}% of their duty at stake; exploring \
             policies spend {:.0}% of the capacity on declarations drawn for uncertainty or at \
             random, not for duty, so ranked by probability their revenue shares differ by the \
             few large consignments a draw happens to hit (rank by expected_revenue to target duty)",
            r.largest_frauds_duty_share * 100.0,
            r.options.explore_share * 100.0
        );
    }
    if weekly {
        for (name, p) in &r.policies {
            outln!("\n{name}, week by week:");
            let mut t = table(&[
                "week",
                "declarations",
                "selected",
                "hits",
                "frauds",
                "precision",
                "recall",
                "revenue caught",
                "true rate",
                "estimate (95% CI)",
                "error",
            ]);
            for w in &p.weeks {
                let ratio = |a: usize, b: usize| {
                    if b > 0 {
                        format!("{:.3}", a as f64 / b as f64)
                    } else {
                        "n/a".into()
                    }
                };
                t.add_row(vec![
                    format!("{}{}", w.week, if w.warmup { " (warm-up)" } else { "" }),
                    w.declarations.to_string(),
                    w.selected.to_string(),
                    w.hits.to_string(),
                    w.frauds.to_string(),
                    ratio(w.hits, w.selected),
                    ratio(w.hits, w.frauds),
                    if w.revenue_total > 0.0 {
                        format!("{:.3}", w.revenue_caught / w.revenue_total)
                    } else {
                        "n/a".into()
                    },
                    format!("{:.3}", w.true_rate),
                    interval(&w.estimate),
                    format!("{:+.3}", w.estimate.rate - w.true_rate),
                ]);
            }
            outln!("{t}");
        }
    }
    Ok(())
}

/// Weekly charts of a simulation: each policy's estimate of the fraud rate with its interval
/// beside the truth, precision, and cumulative share of the fraud revenue caught.
pub fn write_simulation_charts(dir: &Path, r: &SimulationReport) -> anyhow::Result<()> {
    use borderlens_monitor::drift::{hit_rate_chart_svg, Series, SeriesPoint};
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let point = |window: &str, rate: f64, band: Option<(f64, f64)>| SeriesPoint {
        window: window.to_string(),
        inspected: 1,
        hits: 0,
        rate: rate.is_finite().then_some(rate),
        low: band.map(|b| b.0),
        high: band.map(|b| b.1),
    };
    let mut estimates = Vec::new();
    let mut precision = Vec::new();
    let mut revenue = Vec::new();
    let mut truth = None;
    for (name, p) in &r.policies {
        let weeks: Vec<_> = p.weeks.iter().filter(|w| !w.warmup).collect();
        truth.get_or_insert_with(|| Series {
            group: "true rate".into(),
            points: weeks
                .iter()
                .map(|w| point(&w.week, w.true_rate, None))
                .collect(),
        });
        estimates.push(Series {
            group: if p.estimator == "naive" {
                "hits / inspected".into()
            } else {
                "HT estimate".into()
            },
            points: weeks
                .iter()
                .map(|w| {
                    point(
                        &w.week,
                        w.estimate.rate,
                        Some((w.estimate.low, w.estimate.high)),
                    )
                })
                .collect(),
        });
        precision.push(Series {
            group: name.clone(),
            points: weeks
                .iter()
                .map(|w| {
                    let rate = if w.selected > 0 {
                        w.hits as f64 / w.selected as f64
                    } else {
                        f64::NAN
                    };
                    point(&w.week, rate, None)
                })
                .collect(),
        });
        let (mut caught, mut total) = (0.0, 0.0);
        revenue.push(Series {
            group: name.clone(),
            points: weeks
                .iter()
                .map(|w| {
                    caught += w.revenue_caught;
                    total += w.revenue_total;
                    point(
                        &w.week,
                        if total > 0.0 {
                            caught / total
                        } else {
                            f64::NAN
                        },
                        None,
                    )
                })
                .collect(),
        });
    }
    let label = r.options.label.name();
    for (name, estimate) in r.policies.keys().zip(estimates) {
        let title =
            format!("{name}: weekly estimate of the {label} rate (95% interval) vs the truth");
        let series: Vec<Series> = std::iter::once(estimate).chain(truth.clone()).collect();
        write(
            &dir.join(format!("simulation-estimate-{name}.svg")),
            hit_rate_chart_svg(&title, &series),
        )?;
    }
    write(
        &dir.join("simulation-precision.svg"),
        hit_rate_chart_svg("weekly precision (hits / selected)", &precision),
    )?;
    write(
        &dir.join("simulation-revenue.svg"),
        hit_rate_chart_svg("cumulative share of fraud duty at stake caught", &revenue),
    )?;
    Ok(())
}

pub fn select(r: &borderlens_app::SelectReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!(
        "policy {}@{}, model {}@{}",
        r.policy,
        r.policy_version,
        r.model,
        r.model_version
    );
    let mut headers = vec!["batch", "declarations"];
    headers.extend(Lane::NAMES);
    headers.push("by source");
    let mut t = table(&headers);
    for b in &r.batches {
        let mut row = vec![b.batch.clone(), b.declarations.to_string()];
        row.extend(
            Lane::ALL
                .iter()
                .map(|l| b.lanes.get(l.name()).copied().unwrap_or(0).to_string()),
        );
        row.push(
            b.sources
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        t.add_row(row);
    }
    outln!("{t}");
    if r.already_decided > 0 {
        outln!(
            "{} declarations of the period were decided before and kept their decision",
            r.already_decided
        );
    }
    Ok(())
}

fn interval(e: &borderlens_selection::estimate::RateEstimate) -> String {
    if e.rate.is_finite() {
        format!("{:.4} ({:.4}-{:.4})", e.rate, e.low, e.high)
    } else {
        "n/a (nothing inspected)".into()
    }
}

pub fn estimates(r: &borderlens_app::EstimateReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!(
        "{} decided declarations; {} design selections still without a result; {} overrides kept out",
        r.declarations,
        r.pending,
        r.overrides
    );
    match &r.overall {
        Some(e) => outln!(
            "non-compliance (Horvitz-Thompson, {:.0}% CI): {}",
            e.confidence * 100.0,
            interval(e)
        ),
        None => outln!(
            "no unbiased estimate: some batch strata have no control result yet, or some declarations had no chance of control (π = 0: add a random share to the policy)"
        ),
    }
    outln!(
        "naive hits/inspected: {} (biased by risk targeting)",
        interval(&r.naive)
    );
    let mut t = table(&[&r.dimension, "inspected", "hits", "estimate (CI)", "naive"]);
    for s in &r.segments {
        t.add_row(vec![
            s.segment.clone(),
            s.naive.inspected.to_string(),
            s.naive.hits.to_string(),
            s.estimate
                .as_ref()
                .map(interval)
                .unwrap_or_else(|| "n/a (π = 0)".into()),
            if s.naive.rate.is_finite() {
                format!("{:.4}", s.naive.rate)
            } else {
                "n/a".into()
            },
        ]);
    }
    outln!("{t}");
    Ok(())
}

pub fn pooled(r: &borderlens_app::PooledReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    for source in &r.sources {
        let from = match (&source.newest_document, source.documents) {
            (Some(newest), n) => format!(" ({n} document(s), newest made {newest})"),
            (None, _) => String::new(),
        };
        outln!(
            "{}: {} {}, {} with fraud found{from}",
            source.source,
            source.total.controls,
            if r.dimension == "concealment" {
                "findings"
            } else {
                "controlled declarations"
            },
            source.total.hits,
        );
    }
    let mut header: Vec<String> = vec![r.dimension.clone()];
    header.extend(r.sources.iter().map(|s| format!("{} hits/n", s.source)));
    header.push(format!("pooled {} (CI)", r.measure));
    if r.dimension != "concealment" {
        header.push("design-weighted".into());
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = table(&header);
    for s in &r.segments {
        let mut row = vec![s.segment.clone()];
        row.extend(
            s.counts
                .iter()
                .map(|c| format!("{}/{}", c.hits, c.controls)),
        );
        row.push(interval(&s.pooled));
        if r.dimension != "concealment" {
            row.push(
                s.weighted
                    .as_ref()
                    .map(|w| format!("{:.4} ({:.4}-{:.4})", w.rate, w.low, w.high))
                    .unwrap_or_else(|| "n/a (π not known for all)".into()),
            );
        }
        t.add_row(row);
    }
    outln!("{t}");
    Ok(())
}

pub fn decision_trace(r: &borderlens_app::DecisionTrace, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!("declaration {}", r.declaration_id);
    goods(&r.goods)?;
    if r.items > 1 {
        outln!(
            "item {} of {}{}",
            r.item_no,
            r.items,
            match (r.decided_item, r.decisions.is_empty()) {
                (Some(_), _) => ", the item the selection decided on",
                (None, true) => " (not decided yet)",
                (None, false) => " (the decision did not record its item)",
            }
        );
    }
    match &r.explanation {
        Some(e) => {
            outln!(
                "score {:.3} (model {}@{}); top contributions:",
                e.score,
                e.model,
                e.version
            );
            for c in e.contributions.iter().take(5) {
                outln!(
                    "  {:+.3}  {}",
                    c.log_odds,
                    c.in_words_without_contribution()
                );
            }
        }
        None => outln!("no model scored it"),
    }
    if r.decisions.is_empty() {
        outln!("no selection decision recorded");
    }
    for d in &r.decisions {
        outln!(
            "decision {} at {} by {}: lane {} ({}), π = {:.4}, stratum {}, policy {}, batch {}",
            d.id,
            d.at,
            d.actor,
            d.lane,
            d.source,
            d.pi,
            d.stratum,
            d.policy,
            d.batch
        );
        if let Some(reason) = &d.override_reason {
            outln!(
                "  overrides decision {}: {reason}",
                d.overrides.unwrap_or_default()
            );
        }
        for reason in &d.reasons {
            outln!("  {reason}");
        }
    }
    if r.results.is_empty() {
        outln!("no control result recorded");
    }
    for c in &r.results {
        outln!(
            "control result {} ({}) at {} by {}: {}{}; {}",
            c.id,
            c.submission_id,
            c.recorded_at,
            c.recorded_by,
            c.outcome,
            c.label
                .as_ref()
                .map(|l| format!(" → {l}"))
                .unwrap_or_default(),
            c.values
        );
    }
    outln!(
        "stored label: {}",
        r.label.as_deref().unwrap_or("none (not controlled)")
    );
    Ok(())
}

pub fn bias(r: &borderlens_monitor::bias::BiasAudit, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    let rate = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    outln!(
        "{} declarations, {} selected (rate {}), {} inspected with a result, hit rate {}",
        r.overall.declarations,
        r.overall.selected,
        rate(r.overall.selection_rate),
        r.overall.inspected,
        rate(r.overall.hit_rate)
    );
    for d in &r.dimensions {
        let mut t = table(&[
            &d.name,
            "declarations",
            "selection rate",
            "inspected",
            "hit rate",
            "selection ratio",
            "hit ratio",
            "disparity",
            "flag",
        ]);
        for g in d.groups.iter().take(12) {
            t.add_row(vec![
                g.group.clone(),
                g.declarations.to_string(),
                rate(Some(g.selection_rate)),
                g.inspected.to_string(),
                rate(g.hit_rate),
                rate(g.selection_ratio),
                rate(g.hit_ratio),
                rate(g.disparity),
                if g.flagged {
                    "FLAG".into()
                } else {
                    String::new()
                },
            ]);
        }
        outln!("{t}");
    }
    if r.flags.is_empty() {
        outln!("no group is selected well beyond what its hit rate justifies");
    }
    for flag in &r.flags {
        outln!("FLAG: {flag}");
    }
    Ok(())
}

pub fn drift(r: &borderlens_monitor::drift::DriftReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    let mut t = table(&["feature", "PSI", "level", "largest moves"]);
    for f in r.features.iter().chain(r.score.iter()) {
        t.add_row(vec![
            f.name.clone(),
            format!("{:.3}", f.psi.value),
            f.level.as_str().to_string(),
            f.top_bins
                .iter()
                .map(|b| {
                    format!(
                        "{} {:.0}%→{:.0}%",
                        b.label,
                        b.reference_share * 100.0,
                        b.current_share * 100.0
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    outln!("{t}");
    if r.alerts.is_empty() {
        outln!("no alert: nothing moved beyond the thresholds");
    }
    for alert in &r.alerts {
        outln!("{:?}: {}", alert.severity, alert.what);
    }
    Ok(())
}

pub fn link(r: &borderlens_app::LinkReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!(
        "{} records; {} candidate pairs; {} links; {} clusters; prior match probability {:.3e}{}",
        r.records
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" + "),
        r.candidate_pairs,
        r.links,
        r.clusters,
        r.lambda,
        if r.inferred_settings {
            " (settings inferred from the data: see settings.toml)"
        } else {
            ""
        }
    );
    if r.identifier_links > 0 || r.invalid_identifiers > 0 {
        outln!(
            "{} links through a shared valid identifier; {} invalid identifiers reported (invalid_identifiers.csv), not used",
            r.identifier_links,
            r.invalid_identifiers
        );
    }
    if let Some(saved) = &r.saved_party_links {
        outln!(
            "saved in the store: {} parties linked in {} groups (run '{}'), replacing the previous run's links; the declaration page lists their declarations as related",
            saved.parties,
            saved.groups,
            saved.run
        );
    }
    if let Some(c) = &r.label_check {
        outln!(
            "against {} labelled pairs{}: recall {:.4} ({} found), precision {:.4} ({} wrong of {} links touching a labelled record), F1 {:.4}",
            c.labelled_pairs,
            if c.trained_on_labels { " (m trained on them)" } else { "" },
            c.recall,
            c.found,
            c.precision,
            c.wrong_links,
            c.links_checked,
            c.f1
        );
    }
    let s = &r.seconds;
    outln!(
        "seconds: read {:.2}, prepare {:.2}, blocking {:.2}, comparing {:.2}, training {:.2}, prediction {:.2}, write {:.2}",
        s.read, s.prepare, s.blocking, s.comparing, s.training, s.prediction, s.write
    );
    if let (Some(cpu), Some(peak)) = (r.cpu_seconds, r.peak_memory_mib) {
        outln!("process: {cpu:.2} s CPU, peak memory {peak:.0} MiB");
    }
    if r.inferred_settings {
        outln!("\ninferred settings (kept in settings.toml: edit them and pass --settings):\n");
        outln!("{}", r.settings_toml.trim_end());
        outln!("");
    }
    for f in &r.files {
        outln!("wrote {f}");
    }
    Ok(())
}

pub fn link_explain(r: &borderlens_app::PairReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    let e = &r.explanation;
    outln!(
        "{} and {}: match weight {:.2}, probability {:.6}, {}",
        r.left_id,
        r.right_id,
        e.weight,
        e.probability,
        if r.linked { "linked" } else { "not linked" }
    );
    let mut t = table(&["comparison", "left", "right", "level", "m", "u", "weight"]);
    t.add_row(vec![
        "prior".to_string(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        format!("{:+.2}", e.prior_weight),
    ]);
    let number = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    for c in &e.comparisons {
        t.add_row(vec![
            c.column.clone(),
            c.left.clone(),
            c.right.clone(),
            c.level.clone(),
            number(c.m),
            number(c.u),
            format!("{:+.2}", c.weight),
        ]);
    }
    outln!("{t}");
    Ok(())
}

pub fn sample_parties(r: &borderlens_app::PartiesSampleReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    outln!(
        "register of {} parties (CONSTRUCTED names, addresses and EORI numbers; seed {}): {} firms hold two ids",
        r.parties, r.seed, r.two_id_firms
    );
    for file in &r.written {
        outln!("wrote {file}");
    }
    Ok(())
}
