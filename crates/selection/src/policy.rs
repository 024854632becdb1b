//! Selection policies: from scored declarations of one batch to lanes, each decision with its
//! inclusion probability π and the stratum of the design it belongs to.
//!
//! One batch is what a capacity applies to: in the service, the declarations of one office on one
//! day; in the simulator, one week. Within a batch, in this order:
//! 1. **campaigns**: every declaration in an active campaign's segment is selected (π = 1);
//!    campaign selections count against the risk-targeted part of the capacity, and are
//!    honoured even beyond it;
//! 2. **risk targeting**: the highest scores (or expected revenues, score × duty at stake) fill
//!    the capacity left after campaigns and the exploration share (π = 1, stratum `risk`);
//! 3. **exploration**: the exploration share of the capacity is drawn without replacement from the
//!    remaining declarations — uniformly (`random`: one stratum, π = n/N), or stratified by model
//!    uncertainty (`uncertainty`: bands of p(1 − p), the most uncertain band sampled at a higher
//!    rate, every band at least once, π = n_h/N_h). Every declaration keeps its π, selected or not,
//!    so that non-compliance can be estimated without bias (see [`crate::estimate`]);
//! 4. **documentary checks** (yellow lane): the next highest scores, up to their own share;
//! 5. everything else is released (green).
//!
//! Red and yellow lanes are inspected; only red selections by campaign, risk or exploration form
//! the design that estimates rest on. Officer overrides are recorded on top of decisions by the
//! caller, never rewriting them.

use borderlens_domain::rng::Rng;
use borderlens_domain::DeclarationItem;
pub use borderlens_domain::{DecisionSource, Lane};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A segment of declarations: every non-empty list must contain the declaration's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Segment {
    /// HS chapters (2 digits).
    pub hs_chapters: Vec<String>,
    /// HS subheadings (6 digits).
    pub hs6: Vec<String>,
    /// Countries of origin.
    pub origin_countries: Vec<String>,
    /// Countries of departure.
    pub departure_countries: Vec<String>,
    /// Customs offices.
    pub offices: Vec<String>,
    /// Importers.
    pub importers: Vec<String>,
    /// Declarants.
    pub declarants: Vec<String>,
    /// Modes of transport.
    pub transport_modes: Vec<String>,
}

impl Segment {
    fn lists(&self) -> [(&'static str, &Vec<String>); 8] {
        [
            ("HS chapter", &self.hs_chapters),
            ("HS6", &self.hs6),
            ("origin", &self.origin_countries),
            ("departure", &self.departure_countries),
            ("office", &self.offices),
            ("importer", &self.importers),
            ("declarant", &self.declarants),
            ("transport mode", &self.transport_modes),
        ]
    }

    /// Whether no list restricts anything.
    pub fn is_empty(&self) -> bool {
        self.lists().iter().all(|(_, list)| list.is_empty())
    }

    /// Whether `item` belongs to the segment.
    pub fn matches(&self, item: &DeclarationItem) -> bool {
        let hs = item.hs6.as_str();
        let values: [&str; 8] = [
            &hs[..2],
            hs,
            &item.origin_country,
            &item.departure_country,
            &item.office_id,
            &item.importer_id,
            &item.declarant_id,
            &item.transport_mode,
        ];
        self.lists()
            .iter()
            .zip(values)
            .all(|((_, list), value)| list.is_empty() || list.iter().any(|v| v == value))
    }

    /// Words for reasons and reports, e.g. `origin CO, HS chapter 09`.
    pub fn describe(&self) -> String {
        self.lists()
            .iter()
            .filter(|(_, list)| !list.is_empty())
            .map(|(name, list)| format!("{name} {}", list.join("/")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A 100% control campaign on a segment for a period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    /// Short name, shown in reasons.
    pub name: String,
    /// Who is covered.
    pub segment: Segment,
    /// First day (inclusive).
    pub from: NaiveDate,
    /// Last day (inclusive).
    pub to: NaiveDate,
    /// Lane of the campaign's controls.
    #[serde(default = "red")]
    pub lane: Lane,
}

fn red() -> Lane {
    Lane::Red
}

/// How the exploration share is drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Exploration {
    /// No exploration: declarations outside the targets have π = 0, and no unbiased estimate
    /// is possible.
    None,
    /// Simple random sample of the declarations not targeted.
    Random,
    /// Stratified by model uncertainty p(1 − p): `strata` bands of equal size, band `h` (0 = most
    /// uncertain) weighted `oversample^(strata − 1 − h)` in the allocation.
    Uncertainty {
        /// Number of bands.
        #[serde(default = "default_strata")]
        strata: usize,
        /// Sampling-rate ratio between neighbouring bands.
        #[serde(default = "default_oversample")]
        oversample: f64,
    },
}

fn default_strata() -> usize {
    3
}

fn default_oversample() -> f64 {
    2.0
}

/// How many declarations of a batch can be controlled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Capacity {
    /// A share of the batch, in (0, 1].
    Share(f64),
    /// A number of declarations per batch.
    Count(usize),
}

impl Capacity {
    /// Declarations to select in a batch of `n`.
    pub fn for_batch(&self, n: usize) -> usize {
        match *self {
            Capacity::Share(share) => ((share * n as f64).round() as usize).min(n),
            Capacity::Count(count) => count.min(n),
        }
    }
}

/// A selection policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Name under which versions are kept.
    pub name: String,
    /// Free text for managers.
    #[serde(default)]
    pub description: String,
    /// Red-lane capacity per batch.
    pub capacity: Capacity,
    /// Share of the capacity that goes to exploration, in [0, 1); kept even when campaigns fill
    /// the rest, and at least one draw per batch when positive (even when the capacity rounds to
    /// zero: the red lane then exceeds it by one).
    #[serde(default)]
    pub explore_share: f64,
    /// How exploration draws.
    #[serde(default = "random_exploration")]
    pub exploration: Exploration,
    /// Share of the batch sent to the yellow lane (documentary checks), in [0, 1).
    #[serde(default)]
    pub documentary_share: f64,
    /// 100% campaigns.
    #[serde(default)]
    pub campaigns: Vec<Campaign>,
    /// What risk targeting ranks by.
    #[serde(default)]
    pub rank_by: RankBy,
}

/// What risk targeting ranks declarations by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// The risk score (probability of non-compliance): the most likely frauds.
    #[default]
    Probability,
    /// Score × duty at stake (declared price × tax rate): the largest expected revenue. Favours
    /// big consignments; a fraud on a small one is found less often.
    ExpectedRevenue,
}

fn random_exploration() -> Exploration {
    Exploration::Random
}

/// A policy that does not make sense, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not valid JSON or not the policy's shape.
    #[error("policy: {0}")]
    Syntax(String),
    /// A field with an impossible value.
    #[error("policy field `{field}`: {reason}")]
    Field {
        /// Path of the field, e.g. `campaigns[0].to`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Policy {
    /// Parses and validates a policy from JSON.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy =
            serde_json::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Pretty JSON, the form stored in the registry.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a policy always serialises")
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.name.trim().is_empty() {
            return Err(field_error("name", "must not be empty"));
        }
        match self.capacity {
            Capacity::Share(share) if !(share > 0.0 && share <= 1.0) => {
                return Err(field_error(
                    "capacity.share",
                    format!("{share} is not in (0, 1]"),
                ))
            }
            Capacity::Count(0) => return Err(field_error("capacity.count", "must be at least 1")),
            _ => {}
        }
        if !(0.0..1.0).contains(&self.explore_share) {
            return Err(field_error(
                "explore_share",
                format!("{} is not in [0, 1)", self.explore_share),
            ));
        }
        if !(0.0..1.0).contains(&self.documentary_share) {
            return Err(field_error(
                "documentary_share",
                format!("{} is not in [0, 1)", self.documentary_share),
            ));
        }
        if let Exploration::Uncertainty { strata, oversample } = self.exploration {
            if strata == 0 {
                return Err(field_error("exploration.strata", "must be at least 1"));
            }
            if !(oversample >= 1.0 && oversample.is_finite()) {
                return Err(field_error(
                    "exploration.oversample",
                    format!("{oversample} is not a finite number ≥ 1"),
                ));
            }
        }
        for (i, campaign) in self.campaigns.iter().enumerate() {
            if campaign.name.trim().is_empty() {
                return Err(field_error(
                    format!("campaigns[{i}].name"),
                    "must not be empty",
                ));
            }
            if campaign.segment.is_empty() {
                return Err(field_error(
                    format!("campaigns[{i}].segment"),
                    "names no segment: a campaign on everything is a capacity of 100%",
                ));
            }
            if campaign.to < campaign.from {
                return Err(field_error(
                    format!("campaigns[{i}].to"),
                    format!("{} is before from ({})", campaign.to, campaign.from),
                ));
            }
            if campaign.lane != Lane::Red {
                // A documentary campaign would need its own π for the yellow lane: the estimates
                // rest on red-lane controls only.
                return Err(field_error(
                    format!("campaigns[{i}].lane"),
                    "campaigns are physical controls (red); documentary campaigns are not supported",
                ));
            }
        }
        Ok(())
    }

    /// The campaign covering `item`, if any (the first in the list wins).
    pub fn campaign_for(&self, item: &DeclarationItem) -> Option<&Campaign> {
        self.campaigns
            .iter()
            .find(|c| c.from <= item.date && item.date <= c.to && c.segment.matches(item))
    }
}

/// A declaration to decide on, with its risk score (a probability; NaN when unscored).
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// The declaration (for campaigns).
    pub item: &'a DeclarationItem,
    /// Calibrated risk score.
    pub score: f64,
}

/// The policy's decision on one declaration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Lane.
    pub lane: Lane,
    /// Why.
    pub source: DecisionSource,
    /// Probability that the design selects this declaration for a red-lane control.
    pub pi: f64,
    /// Design stratum (`campaign:NAME`, `risk`, `random`, `explore:1`…, `unselected`).
    pub stratum: String,
    /// Reasons in words.
    pub reasons: Vec<String>,
}

/// Decides on one batch; decisions come back in candidate order. Deterministic given `rng`.
pub fn decide(policy: &Policy, candidates: &[Candidate<'_>], rng: &mut Rng) -> Vec<Decision> {
    let n = candidates.len();
    let capacity = policy.capacity.for_batch(n);
    let mut decisions: Vec<Option<Decision>> = vec![None; n];
    let mut campaign_count = 0;
    for (i, candidate) in candidates.iter().enumerate() {
        if let Some(campaign) = policy.campaign_for(candidate.item) {
            campaign_count += 1;
            decisions[i] = Some(Decision {
                lane: campaign.lane,
                source: DecisionSource::Campaign,
                pi: 1.0,
                stratum: format!("campaign:{}", campaign.name),
                reasons: vec![format!(
                    "100% campaign '{}' ({}; {} to {})",
                    campaign.name,
                    campaign.segment.describe(),
                    campaign.from,
                    campaign.to
                )],
            });
        }
    }
    // The highest ranking values first; NaN (unscored) last; ties by position.
    let rank = |i: usize| match policy.rank_by {
        RankBy::Probability => candidates[i].score,
        RankBy::ExpectedRevenue => candidates[i].score * candidates[i].item.duty_at_stake(),
    };
    let mut order: Vec<usize> = (0..n).filter(|&i| decisions[i].is_none()).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (rank(a), rank(b));
        sb.partial_cmp(&sa)
            .unwrap_or_else(|| sa.is_nan().cmp(&sb.is_nan()))
            .then(a.cmp(&b))
    });
    // The exploration share is kept whatever the campaigns take, so that every declaration keeps
    // π > 0 and estimates stay possible; campaigns eat into the risk-targeted part.
    let explore_n = match policy.exploration {
        // At least one draw per batch, even when the capacity rounds to zero (a quiet Sunday):
        // otherwise that batch's declarations would have π = 0 and no estimate could cover them.
        _ if policy.explore_share <= 0.0 || order.is_empty() => 0,
        Exploration::None => 0,
        _ => ((capacity as f64 * policy.explore_share).round() as usize)
            .max(1)
            .min(order.len()),
    };
    let risk_n = capacity
        .saturating_sub(campaign_count + explore_n)
        .min(order.len() - explore_n);
    for (rank, &i) in order.iter().take(risk_n).enumerate() {
        decisions[i] = Some(Decision {
            lane: Lane::Red,
            source: DecisionSource::Risk,
            pi: 1.0,
            stratum: "risk".into(),
            reasons: vec![format!(
                "risk score {:.3}: rank {} of {n}, within the {risk_n} risk-targeted controls",
                candidates[i].score,
                rank + 1
            )],
        });
    }
    let rest: Vec<usize> = order[risk_n..].to_vec();
    match (&policy.exploration, explore_n) {
        (_, 0) | (Exploration::None, _) => {
            for &i in &rest {
                decisions[i] = Some(unselected(0.0, "unselected"));
            }
        }
        (Exploration::Random, _) => {
            sample_stratum(
                &rest,
                explore_n,
                "random",
                DecisionSource::Random,
                rng,
                &mut decisions,
            );
        }
        (Exploration::Uncertainty { strata, oversample }, _) => {
            let mut by_uncertainty = rest.clone();
            let u = |i: usize| {
                let p = candidates[i].score;
                if p.is_nan() {
                    0.25
                } else {
                    let p = p.clamp(0.0, 1.0);
                    p * (1.0 - p)
                }
            };
            by_uncertainty.sort_by(|&a, &b| u(b).total_cmp(&u(a)).then(a.cmp(&b)));
            let bands = (*strata).min(explore_n).min(by_uncertainty.len()).max(1);
            let sizes = split_sizes(by_uncertainty.len(), bands);
            let weights: Vec<f64> = (0..bands)
                .map(|h| sizes[h] as f64 * oversample.powi((bands - 1 - h) as i32))
                .collect();
            let allocation = allocate(explore_n, &sizes, &weights);
            let mut start = 0;
            for (h, (&size, &take)) in sizes.iter().zip(&allocation).enumerate() {
                let band = &by_uncertainty[start..start + size];
                start += size;
                let stratum = format!("explore:{}", h + 1);
                sample_stratum(
                    band,
                    take,
                    &stratum,
                    DecisionSource::Explore,
                    rng,
                    &mut decisions,
                );
            }
        }
    }
    let documentary_n = ((policy.documentary_share * n as f64).round() as usize).min(n);
    let mut documentary = 0;
    for &i in &order {
        if documentary >= documentary_n {
            break;
        }
        let decision = decisions[i].as_mut().expect("every candidate decided");
        if decision.lane == Lane::Green {
            decision.lane = Lane::Yellow;
            decision.source = DecisionSource::Documentary;
            decision.reasons = vec![format!(
                "documentary check: score {:.3} in the next {documentary_n} after the red lane",
                candidates[i].score
            )];
            documentary += 1;
        }
    }
    decisions
        .into_iter()
        .map(|d| d.expect("every candidate decided"))
        .collect()
}

fn unselected(pi: f64, stratum: &str) -> Decision {
    Decision {
        lane: Lane::Green,
        source: DecisionSource::Release,
        pi,
        stratum: stratum.into(),
        reasons: vec!["released: not selected".into()],
    }
}

/// Simple random sample of `take` members of `members`; all get π = take / len.
fn sample_stratum(
    members: &[usize],
    take: usize,
    stratum: &str,
    source: DecisionSource,
    rng: &mut Rng,
    decisions: &mut [Option<Decision>],
) {
    if members.is_empty() {
        return;
    }
    let take = take.min(members.len());
    let pi = take as f64 / members.len() as f64;
    let mut shuffled = members.to_vec();
    // Partial Fisher–Yates: the first `take` positions are a uniform sample.
    for k in 0..take {
        let j = k + rng.below(shuffled.len() - k);
        shuffled.swap(k, j);
    }
    for (k, &i) in shuffled.iter().enumerate() {
        decisions[i] = Some(if k < take {
            Decision {
                lane: Lane::Red,
                source,
                pi,
                stratum: stratum.into(),
                reasons: vec![format!(
                    "{} control: drawn at random, {take} of {} in stratum '{stratum}' (π = {pi:.4})",
                    source.name(),
                    members.len()
                )],
            }
        } else {
            unselected(pi, stratum)
        });
    }
}

/// Sizes of `parts` contiguous bands of `n` (the first ones one larger when uneven).
fn split_sizes(n: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|h| n / parts + usize::from(h < n % parts))
        .collect()
}

/// Splits `total` draws over bands proportionally to `weights` (largest remainder), at least one
/// per non-empty band when there are enough draws, never more than a band's size.
fn allocate(total: usize, sizes: &[usize], weights: &[f64]) -> Vec<usize> {
    let mut allocation = vec![0; sizes.len()];
    let mut left = total;
    for (h, &size) in sizes.iter().enumerate() {
        if size > 0 && left > 0 {
            allocation[h] = 1;
            left -= 1;
        }
    }
    while left > 0 {
        let open: Vec<usize> = (0..sizes.len())
            .filter(|&h| allocation[h] < sizes[h])
            .collect();
        if open.is_empty() {
            break;
        }
        let weight_sum: f64 = open.iter().map(|&h| weights[h]).sum();
        let mut given = 0;
        let mut remainders = Vec::new();
        for &h in &open {
            let share = left as f64 * weights[h] / weight_sum;
            let whole = (share.floor() as usize).min(sizes[h] - allocation[h]);
            allocation[h] += whole;
            given += whole;
            remainders.push((share - share.floor(), h));
        }
        if given == 0 {
            // Hand out one by one to the largest remainders.
            remainders.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for &(_, h) in &remainders {
                if given < left && allocation[h] < sizes[h] {
                    allocation[h] += 1;
                    given += 1;
                }
            }
        }
        left -= given.min(left);
        if given == 0 {
            break;
        }
    }
    allocation
}

#[cfg(test)]
pub(crate) mod tests;
