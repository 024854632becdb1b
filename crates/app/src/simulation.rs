//! The replay simulator job: the risk engine as the [`Learner`] of `borderlens-selection`'s
//! simulator, over the declarations of the store.

use borderlens_domain::DeclarationItem;
use borderlens_risk::model::{self, TrainOptions};
use borderlens_selection::simulate::{self, Learner, SimulationOptions, SimulationReport};
use borderlens_store::{Backend, ItemFilter};
use chrono::NaiveDate;

use crate::{JobError, Progress};

/// Trains the standard risk model, with fewer trees and no early stopping (a week's retraining
/// must take well under a second), on what a policy revealed.
pub struct RiskLearner {
    /// Training options.
    pub options: TrainOptions,
}

impl RiskLearner {
    /// Options for weekly retraining: 150 trees at learning rate 0.08, leaves of at least 10.
    pub fn weekly(label: borderlens_domain::LabelKind) -> RiskLearner {
        let mut options = TrainOptions::standard(label);
        options.validation_share = 0.0;
        options.refit = false;
        options.gbdt.n_trees = 150;
        options.gbdt.learning_rate = 0.08;
        options.gbdt.early_stopping_rounds = None;
        options.gbdt.min_data_in_leaf = 10;
        options.gbdt.min_data_per_group = 10;
        RiskLearner { options }
    }
}

impl Learner for RiskLearner {
    fn fit_score(
        &self,
        history: &[DeclarationItem],
        weights: &[f64],
        batch: &[DeclarationItem],
    ) -> Result<Vec<f64>, String> {
        let trained =
            model::train_weighted(history, Some(weights), &self.options, &mut |_, _| true)
                .map_err(|e| e.to_string())?;
        let mut all = Vec::with_capacity(history.len() + batch.len());
        all.extend_from_slice(history);
        all.extend_from_slice(batch);
        let wanted: Vec<bool> = (0..all.len()).map(|i| i >= history.len()).collect();
        let (data, _) = trained.design(&all, &wanted);
        Ok(trained.score(&data))
    }
}

/// What to replay.
pub struct SimulateRequest {
    /// First date (default: all).
    pub from: Option<NaiveDate>,
    /// Last date (default: all).
    pub to: Option<NaiveDate>,
    /// Simulation options.
    pub options: SimulationOptions,
}

/// Replays the store's labelled declarations under each policy.
pub fn simulate(
    store: &dyn Backend,
    request: &SimulateRequest,
    progress: &(dyn Progress + Sync),
) -> Result<SimulationReport, JobError> {
    let items = store.items(&ItemFilter {
        from: request.from,
        to: request.to,
        labelled_only: false,
    })?;
    if items.is_empty() {
        return Err(JobError::Invalid(
            "no declarations in the period: import some first".into(),
        ));
    }
    let unlabelled = items.iter().filter(|d| d.label.is_none()).count();
    if unlabelled > 0 {
        return Err(JobError::Invalid(format!(
            "{unlabelled} of {} declarations have no control result; the replay needs the truth \
             of every declaration (use a fully labelled history, e.g. the bundled sample)",
            items.len()
        )));
    }
    let learner = RiskLearner::weekly(request.options.label);
    progress.start("simulating policy-weeks", None);
    let report = simulate::simulate(&items, &learner, &request.options, &|done, total| {
        if done == 1 {
            progress.start("simulating policy-weeks", Some(total as u64));
        }
        progress.advance(done as u64);
        !progress.interrupted()
    });
    progress.finish();
    match report {
        Ok(report) => Ok(report),
        Err(simulate::SimulationError::Interrupted) => Err(JobError::Interrupted),
        Err(e) => Err(JobError::Invalid(e.to_string())),
    }
}
