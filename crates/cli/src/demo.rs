//! `borderlens demo`: the whole job on the bundled sample, step by step, each step naming the
//! command that does it alone.

use std::process::ExitCode;

use anyhow::{bail, Context};
use borderlens_app as app;
use borderlens_domain::{DecisionSource, ItemKey, LabelKind};
use borderlens_ingest::ColumnMapping;
use borderlens_store::{Decisions, Items, Store};
use chrono::NaiveDate;

use crate::args::{Cli, DemoArgs, ModelOptions};
use crate::output::{self, outln};
use crate::progress::Bars;

pub fn demo(cli: &Cli, a: &DemoArgs, bars: &Bars) -> anyhow::Result<ExitCode> {
    let files = vec![
        a.data.join("df_syn_train_eng.csv"),
        a.data.join("df_syn_valid_eng.csv"),
    ];
    for f in &files {
        if !f.exists() {
            bail!(
                "sample file {} not found: run from the repository root or pass --data DIR",
                f.display()
            );
        }
    }
    if cli.database_url.is_some() {
        anyhow::bail!("demo builds a fresh SQLite file (--db); it does not run on --database-url");
    }
    let mut store = Store::open(&cli.db)
        .with_context(|| format!("cannot open database {}", cli.db.display()))?;
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").context("bad date");
    outln!(
        "== 1. import {} and {} into {}",
        files[0].display(),
        files[1].display(),
        cli.db.display()
    );
    // A data folder with a mapping file (the described sample's) is read through it.
    let mapping_file = a.data.join(app::MAPPING_FILE);
    let mapping = if mapping_file.exists() {
        outln!("(columns mapped by {})", mapping_file.display());
        ColumnMapping::from_json_file(&mapping_file)?
    } else {
        ColumnMapping::kcs_default()
    };
    let reports = app::import_files(&mut store, &files, &mapping, false, bars)?;
    output::import(&reports, false)?;
    outln!("\n== 2. train a fraud model on 2020 (borderlens train --label fraud --until 2020-12-31 --model demo)");
    let options = ModelOptions {
        label: LabelKind::Fraud,
        imbalance: "none".into(),
        anomaly_feature: false,
        trees: 1000,
        no_early_stopping: false,
        leaves: 31,
        learning_rate: 0.05,
        seed: 42,
    };
    let request = app::TrainRequest {
        model: "demo".into(),
        until: date("2020-12-31")?,
        options: options.to_options()?,
        ipw: false,
        text_features: true,
        firm_history: true,
    };
    let trained = app::train(&mut store, &request, bars)?;
    output::train(&trained, false)?;
    outln!("\n== 3. evaluate on 2021-Q1, never seen in training (borderlens evaluate --model demo --from 2021-01-01 --to 2021-03-31)");
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let request = app::EvaluateRequest {
        model: "demo".into(),
        version: Some(trained.version),
        from: date("2021-01-01")?,
        to: date("2021-03-31")?,
    };
    let (evaluation, _, _) = app::evaluate(&store, &request)?;
    let rate_chart = a.out.join("rate-curves.svg");
    output::write_rate_chart(&rate_chart, &evaluation)?;
    output::evaluate(&evaluation, false)?;
    outln!("chart: {}", rate_chart.display());
    outln!("\n== 4. score 2021-Q1 with reasons (borderlens score --model demo --explain)");
    let request = app::ScoreRequest {
        model: "demo".into(),
        version: Some(trained.version),
        from: None,
        to: None,
        explain: true,
        top_reasons: 3,
        rate: 5,
    };
    let scored = app::score(&mut store, &request, bars)?;
    output::score(&scored, 10, false)?;
    if let Some(top) = scored.items.first() {
        outln!("\n== 5. explain the riskiest declaration (borderlens explain --model demo --declaration {})", top.declaration_id);
        let request = app::ExplainRequest {
            model: "demo".into(),
            version: Some(trained.version),
            key: ItemKey {
                declaration_id: top.declaration_id.clone(),
                item_no: top.item_no,
            },
            rate: 5,
        };
        let (report, _) = app::explain(&store, &request)?;
        let chart = a.out.join(format!("waterfall-{}.svg", top.declaration_id));
        output::write_waterfall(&chart, &report)?;
        output::explain(&report, false)?;
        outln!("chart: {}", chart.display());
    }
    let importance = app::importance(
        &store,
        "demo",
        Some(trained.version),
        date("2021-01-01")?,
        date("2021-03-31")?,
    )?;
    let chart = a.out.join("importance.svg");
    output::write_importance(&chart, &importance)?;
    outln!("\nglobal importance chart: {}", chart.display());
    demo_loop(&mut store, a, bars)?;
    demo_parties(&mut store, a, bars)?;
    outln!("\nlater: `borderlens simulate --capacity 5` replays 2020-2021 week by week under four selection policies (about a minute)");
    if a.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    let users = crate::service_cmds::demo_users(&mut store)?;
    drop(store);
    outln!(
        "\n== 11. the pages: risk queue, declarations, control form, dashboard (borderlens serve)"
    );
    outln!("log in as one of (new passwords each run):");
    for (name, password) in &users {
        outln!("  {name:<14} {password}");
    }
    // The port asked for, or any free one when it is taken (a second demo, another service).
    let addr = match std::net::TcpListener::bind(a.addr) {
        Ok(listener) => {
            drop(listener);
            a.addr
        }
        Err(_) => std::net::SocketAddr::new(a.addr.ip(), 0),
    };
    crate::service_cmds::serve(
        &cli.db,
        None,
        &crate::service_cmds::ServeArgs {
            addr,
            insecure_cookies: false,
            session_minutes: borderlens_server::DEFAULT_SESSION_SECONDS / 60,
            trusted_proxies: Vec::new(),
            nii_library: None,
            nii_held_out: None,
            nii_hidden_share: 0.2,
            nii_epochs: borderlens_nii::detector::train::TrainOptions::default().epochs,
        },
        cli.json,
    )
}

/// Demo step 10: link the sample's trade parties (a constructed register where some firms hold
/// two ids) and keep the groups in the store, so that declaration pages list the declarations
/// of linked importers and declarants.
fn demo_parties(store: &mut Store, a: &DemoArgs, bars: &Bars) -> anyhow::Result<()> {
    let folder = a.out.join("parties");
    outln!(
        "\n== 10. link the trade parties (borderlens sample parties --out {0}; borderlens link --left {0}/{1} --id-column party_id --out {0}/linked --labels {0}/{2} --save-party-links)",
        folder.display(),
        app::PARTIES_FILE,
        app::PARTIES_TRUTH_FILE
    );
    let register = app::sample_parties(&a.data, &folder, 0.05, 42)?;
    output::sample_parties(&register, false)?;
    let request = app::LinkRequest {
        left: folder.join(app::PARTIES_FILE),
        right: None,
        settings: None,
        id_column: "party_id".into(),
        out: folder.join("linked"),
        min_pair_probability: 0.01,
        ignore: Vec::new(),
        labels: Some(folder.join(app::PARTIES_TRUTH_FILE)),
        train_on_labels: false,
    };
    let report = app::link_parties(store, &request, bars)?;
    output::link(&report, false)?;
    Ok(())
}

/// The default policy the demo stores (also `data/policies/port-default.json`).
const DEMO_POLICY: &str = include_str!("../../../data/policies/port-default.json");

/// Demo steps 6–9: select with a policy, record a control result, trace it, audit and drift.
fn demo_loop(store: &mut Store, a: &DemoArgs, bars: &Bars) -> anyhow::Result<()> {
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").context("bad date");
    outln!("\n== 6. select for control, 2021-03-22..26, with policy port-default (borderlens policy set data/policies/port-default.json; borderlens select --policy port-default --model demo --from 2021-03-22 --to 2021-03-26)");
    let (policy, policy_version) = app::save_policy(store, DEMO_POLICY)?;
    outln!("policy {policy} version {policy_version}");
    let selected = app::select(
        store,
        &app::SelectRequest {
            policy,
            model: "demo".into(),
            from: date("2021-03-22")?,
            to: date("2021-03-26")?,
            seed: 42,
            per_office: false,
        },
        bars,
    )?;
    output::select(&selected, false)?;
    let random = store
        .decisions(Some("2021-03-22"))?
        .into_iter()
        .find(|d| d.decision.source == DecisionSource::Random);
    if let Some(d) = random {
        let id = d.decision.declaration_id;
        outln!("\n== 7. an officer records the control result of randomly selected declaration {id} (borderlens controls record ...)");
        // The sample already holds the truth of every declaration: the demo's officer finds it.
        let fraud = store
            .item(&ItemKey {
                declaration_id: id.clone(),
                item_no: 1,
            })?
            .and_then(|item| item.label)
            .is_some_and(|label| label.fraud);
        let mut values = serde_json::json!({
            "outcome": "no_irregularity",
            "inspection_method": ["documentary", "physical_partial"],
            "inspected_at": "2021-03-22T14:05:00+09:00", "place": "demo terminal",
            "officer_id": "demo-officer", "remarks": "goods as declared"
        });
        if fraud {
            values["outcome"] = "revenue".into();
            values["revenue_type"] = "undervaluation".into();
            values["remarks"] = "invoice price far below the HS6 norm".into();
        }
        let submission = serde_json::json!({
            "submission_id": format!("demo-{id}"),
            "declaration_id": id,
            "schema_version": borderlens_controls::FormSchema::builtin().version(),
            "values": values
        })
        .to_string();
        let recorded = app::record_control_result(store, &submission, "demo")?;
        outln!(
            "{} result {}: {}",
            recorded.status,
            recorded.id,
            recorded.label.as_deref().unwrap_or("no label")
        );
        outln!("\n== 8. trace it (borderlens explain-decision {id})");
        output::decision_trace(&app::explain_decision(store, &id)?, false)?;
    }
    outln!("\n== 9. bias audit of the selections and drift of 2021-Q1 against 2020-Q4 (borderlens bias-audit; borderlens drift ...)");
    let audit = app::bias_audit(store, &borderlens_monitor::bias::BiasOptions::default())?;
    for dimension in &audit.dimensions {
        if dimension.name == "origin country" || dimension.name == "importer size" {
            let name = dimension.name.replace(' ', "-");
            let path = a.out.join(format!("bias-{name}.svg"));
            std::fs::write(&path, borderlens_monitor::bias::bias_chart_svg(dimension))
                .with_context(|| format!("cannot write {}", path.display()))?;
            outln!("bias chart: {}", path.display());
        }
    }
    if audit.flags.is_empty() {
        outln!("no group is selected well beyond what its hit rate justifies");
    }
    for flag in &audit.flags {
        outln!("FLAG: {flag}");
    }
    let drift = app::drift_report(
        store,
        &app::DriftRequest {
            reference: (date("2020-10-01")?, date("2020-12-31")?),
            current: (date("2021-01-01")?, date("2021-03-31")?),
            model: None,
            scored_only: false,
        },
    )?;
    let path = a.out.join("drift-psi.svg");
    std::fs::write(&path, borderlens_monitor::drift::psi_chart_svg(&drift))
        .with_context(|| format!("cannot write {}", path.display()))?;
    outln!(
        "drift: {} alerts; largest feature PSI {:.3}; chart: {}",
        drift.alerts.len(),
        drift
            .features
            .iter()
            .map(|f| f.psi.value)
            .fold(0.0, f64::max),
        path.display()
    );
    Ok(())
}
