//! Dispatch: each command to the `borderlens-app` job it calls, then to its output.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context};
use borderlens_app as app;
use borderlens_domain::ItemKey;
use borderlens_ingest::ColumnMapping;
use borderlens_selection::policy::RankBy;
use borderlens_selection::simulate::{SimulationOptions, Strategy};
use borderlens_store::pg::redact_url;
use borderlens_store::{Backend, Store};

use crate::args::{Cli, Command, LinkArgs, LinkCommand};
use crate::output::{self, outln};
use crate::progress::Bars;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let bars = Bars::new(!cli.json && std::io::stderr().is_terminal());
    let open = || -> anyhow::Result<Box<dyn Backend>> {
        let mut store: Box<dyn Backend> = match &cli.database_url {
            Some(url) => Box::new(
                Store::connect(url)
                    .with_context(|| format!("cannot open database {}", redact_url(url)))?,
            ),
            None => Box::new(
                Store::open(&cli.db)
                    .with_context(|| format!("cannot open database {}", cli.db.display()))?,
            ),
        };
        store.set_actor(&cli.actor);
        Ok(store)
    };
    match &cli.command {
        Command::Import(a) => {
            let mapping = match &a.mapping {
                Some(path) => ColumnMapping::from_json_file(path)?,
                None => ColumnMapping::kcs_default_for_files(&a.files),
            };
            let mut store = open()?;
            let reports = app::import_files(&mut *store, &a.files, &mapping, a.strict, &bars)?;
            output::import(&reports, cli.json)?;
            Ok(if reports.iter().any(app::FileReport::has_problems) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Train(a) => {
            let mut store = open()?;
            let request = app::TrainRequest {
                model: a.model.clone(),
                until: a.until,
                options: a.options.to_options()?,
                ipw: a.ipw,
                text_features: !a.no_text_features,
                firm_history: !a.no_firm_history,
            };
            let report = app::train(&mut *store, &request, &bars)?;
            output::train(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Evaluate(a) => {
            let store = open()?;
            let request = app::EvaluateRequest {
                model: a.model.clone(),
                version: a.version,
                from: a.from,
                to: a.to,
            };
            let (report, _, _) = app::evaluate(&*store, &request)?;
            if let Some(path) = &a.chart {
                output::write_rate_chart(path, &report)?;
            }
            output::evaluate(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Score(a) => {
            if ![1, 2, 5, 10].contains(&a.rate) {
                bail!("--rate must be 1, 2, 5 or 10");
            }
            let mut store = open()?;
            let request = app::ScoreRequest {
                model: a.model.clone(),
                version: a.version,
                from: a.from,
                to: a.to,
                explain: a.explain,
                top_reasons: 3,
                rate: a.rate,
            };
            let report = app::score(&mut *store, &request, &bars)?;
            output::score(&report, a.limit, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain(a) => {
            let store = open()?;
            let request = app::ExplainRequest {
                model: a.model.clone(),
                version: a.version,
                key: ItemKey {
                    declaration_id: a.declaration.clone(),
                    item_no: a.item,
                },
                rate: a.rate,
            };
            let (report, _) = app::explain(&*store, &request)?;
            if let Some(path) = &a.chart {
                output::write_waterfall(path, &report)?;
            }
            output::explain(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Importance(a) => {
            let store = open()?;
            let importance = app::importance(&*store, &a.model, a.version, a.from, a.to)?;
            if let Some(path) = &a.chart {
                output::write_importance(path, &importance)?;
            }
            output::importance(&importance, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Anomaly(a) => {
            let store = open()?;
            let request = app::AnomalyRequest {
                until: a.until,
                from: a.from,
                to: a.to,
                label: a.label,
                seed: a.seed,
                top: a.top,
            };
            let report = app::anomaly(&*store, &request)?;
            output::anomaly(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Models => {
            let store = open()?;
            output::models(&store.list_models()?, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportFeatures(a) => {
            let mut store = open()?;
            let request = app::ExportRequest {
                until: a.until,
                from: a.from,
                to: a.to,
                options: a.options.to_options()?,
                out: a.out.clone(),
                text_features: !a.no_text_features,
            };
            let (n_train, n_test) = app::export_features(&mut *store, &request, &bars)?;
            if cli.json {
                outln!(
                    "{}",
                    serde_json::json!({"out": a.out.display().to_string(), "train_rows": n_train, "test_rows": n_test})
                );
            } else {
                outln!(
                    "wrote {} ({n_train} training rows, {n_test} test rows)",
                    a.out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(c) => crate::loop_cmds::policy(&mut *open()?, c, cli.json),
        Command::Select(a) => crate::loop_cmds::select(&mut *open()?, a, cli.json, &bars),
        Command::Override(a) => crate::loop_cmds::override_decision(&mut *open()?, a, cli.json),
        Command::Controls(c) => crate::loop_cmds::controls(&mut *open()?, c, cli.json),
        Command::Estimate(a) => crate::loop_cmds::estimate(&*open()?, a, cli.json),
        Command::ExplainDecision { declaration } => {
            crate::loop_cmds::explain_decision(&*open()?, declaration, cli.json)
        }
        Command::Link(LinkArgs {
            command:
                Some(LinkCommand::Explain {
                    left_id,
                    right_id,
                    out,
                    chart,
                }),
            ..
        }) => {
            let report = app::explain_link(out, left_id, right_id)?;
            if let Some(path) = chart {
                std::fs::write(path, &report.chart_svg)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            output::link_explain(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Link(a) => {
            let (Some(left), Some(id_column), Some(out)) = (&a.left, &a.id_column, &a.out) else {
                bail!("link needs --left, --id-column and --out");
            };
            let request = app::LinkRequest {
                left: left.clone(),
                right: a.right.clone(),
                settings: a.settings.clone(),
                id_column: id_column.clone(),
                out: out.clone(),
                min_pair_probability: a.min_pair_probability,
                ignore: a.ignore_columns.clone(),
                labels: a.labels.clone(),
                train_on_labels: a.train_on_labels,
            };
            let report = if a.save_party_links {
                app::link_parties(&mut *open()?, &request, &bars)?
            } else {
                app::link_files(&request, &bars)?
            };
            output::link(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BiasAudit(a) => crate::loop_cmds::bias_audit(&*open()?, a, cli.json),
        Command::Drift(a) => crate::loop_cmds::drift(&*open()?, a, cli.json),
        Command::Simulate(a) => {
            let store = open()?;
            let strategies = a
                .policies
                .iter()
                .map(|name| {
                    Strategy::parse(name).with_context(|| {
                        format!(
                            "unknown policy '{name}': use {}",
                            Strategy::ALL.map(Strategy::name).join(", ")
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut options = SimulationOptions::standard();
            options.capacity = a.capacity;
            options.explore_share = a.explore_share;
            options.warmup_weeks = a.warmup_weeks;
            options.last_weeks = a.last_weeks;
            options.strategies = strategies;
            options.ipw = a.ipw;
            options.rank_by = match a.rank_by.as_str() {
                "probability" => RankBy::Probability,
                "expected_revenue" => RankBy::ExpectedRevenue,
                other => bail!("unknown --rank-by '{other}': use probability or expected_revenue"),
            };
            options.label = a.label;
            options.seed = a.seed;
            let request = app::SimulateRequest {
                from: a.from,
                to: a.to,
                options,
            };
            let report = app::simulate(&*store, &request, &bars)?;
            if let Some(dir) = &a.charts {
                output::write_simulation_charts(dir, &report)?;
            }
            output::simulation(&report, a.weekly, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(a) => {
            match a.what.as_str() {
                "risk" => borderlens_bench::risk(&a.to_options(), cli.json, &bars)?,
                "link" => borderlens_bench::link(&a.to_options(), cli.json, &bars)?,
                "link-companies" => {
                    borderlens_bench::link_companies(&a.to_options(), cli.json, &bars)?
                }
                "serve" => borderlens_bench::serve(&a.to_options(), cli.json, &bars)?,
                "federation" => borderlens_bench::federation(&a.to_options(), cli.json, &bars)?,
                "hs" => borderlens_bench::hs(&a.to_options(), cli.json, &bars)?,
                "embed" => {
                    borderlens_bench::embed(&a.to_options(), a.encoder.as_ref(), cli.json, &bars)?
                }
                "import" => borderlens_bench::import(&a.to_options(), cli.json, &bars)?,
                "text-features" => {
                    borderlens_bench::text_features(&a.to_options(), cli.json, &bars)?
                }
                "nii" => borderlens_bench::nii(&a.to_options(), cli.json, &bars)?,
                "nii-detector" => borderlens_bench::nii_detector(&a.to_options(), cli.json, &bars)?,
                other => bail!(
                    "unknown benchmark '{other}': use `borderlens bench risk`, `bench link`, `bench link-companies`, `bench serve`, `bench federation`, `bench hs`, `bench embed`, `bench import`, `bench text-features`, `bench nii` or `bench nii-detector`"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Hs(c) => crate::hs_cmds::run(c, cli.json, &bars),
        Command::Annotate => {
            let mut store = open()?;
            let report = app::annotate(&mut *store, &bars)?;
            output::annotate(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Nii(crate::nii_cmds::NiiCommand::Catalogue(a)) => {
            crate::nii_cmds::catalogue(&mut *open()?, a, cli.json)
        }
        Command::Nii(c) => crate::nii_cmds::run(c, &cli.actor, cli.json, &bars),
        Command::Serve(a) => {
            crate::service_cmds::serve(&cli.db, cli.database_url.as_deref(), a, cli.json)
        }
        Command::Node(c) => {
            crate::federation_cmds::node(&cli.db, cli.database_url.as_deref(), c, cli.json)
        }
        Command::Federate(c) => crate::federation_cmds::federate(c, cli.json, &bars),
        Command::User(c) => crate::service_cmds::user(&mut *open()?, c, cli.json),
        Command::Token(c) => crate::service_cmds::token(&mut *open()?, c, cli.json),
        Command::Demo(a) => crate::demo::demo(&cli, a, &bars),
        Command::Sample(crate::args::SampleCommand::Describe(a)) => {
            let report = app::describe_sample(&app::DescribeSampleRequest {
                sample: a.sample.clone(),
                hs: a.hs.clone(),
                out: a.out.clone(),
                options: app::DescribeOptions {
                    seed: a.seed,
                    misdeclared_fraud_rate: a.misdeclared_fraud_rate,
                    misdeclared_clean_rate: a.misdeclared_clean_rate,
                    cleaned_rate: a.cleaned_rate,
                },
            })?;
            output::describe_sample(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sample(crate::args::SampleCommand::Parties(a)) => {
            let report = app::sample_parties(&a.data, &a.out, a.two_id_share, a.seed)?;
            output::sample_parties(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
