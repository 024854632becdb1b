//! One goods item of an import declaration, as declared, and what its control found.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::{DeclaredValue, HsCode};

/// Identity of a declaration item: re-importing the same key replaces nothing and adds nothing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ItemKey {
    /// Declaration number as issued by the customs system.
    pub declaration_id: String,
    /// Item (goods line) number within the declaration, from 1.
    pub item_no: u32,
}

/// The outcome of a physical or documentary control of an item.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ControlLabel {
    /// Any irregularity found (undervaluation, misclassification, false origin...).
    pub fraud: bool,
    /// 0 = compliant, 1 = fraud, 2 = critical fraud (the dataset's `Critical Fraud` column).
    pub critical: u8,
}

/// One goods item of an import declaration, with the fields of the WCO-style declaration that the
/// risk engine reads. Code fields keep the declared text verbatim (trimmed); optional parties are
/// `None` when not declared. Nothing here is ever rewritten by the system.
#[derive(Clone, PartialEq, Debug)]
pub struct DeclarationItem {
    /// Identity.
    pub key: ItemKey,
    /// Acceptance date of the declaration.
    pub date: NaiveDate,
    /// Customs office of declaration.
    pub office_id: String,
    /// Process type code (e.g. B = normal).
    pub process_type: String,
    /// Import type code.
    pub import_type: String,
    /// Import use code.
    pub import_use: String,
    /// Payment type code.
    pub payment_type: String,
    /// Mode of transport code (10 = sea, 40 = air...).
    pub transport_mode: String,
    /// Customs broker / declarant.
    pub declarant_id: String,
    /// Importer of record.
    pub importer_id: String,
    /// Foreign seller, when declared.
    pub seller_id: Option<String>,
    /// Express courier, when the goods came by courier.
    pub courier_id: Option<String>,
    /// Declared HS6 code.
    pub hs6: HsCode,
    /// Country of departure (ISO 3166 alpha-2 as declared).
    pub departure_country: String,
    /// Country of origin (ISO 3166 alpha-2 as declared).
    pub origin_country: String,
    /// Duty rate in percent.
    pub tax_rate: f64,
    /// Tax type code (tariff regime, e.g. preferential agreement).
    pub tax_type: String,
    /// How origin is indicated/proven.
    pub origin_indicator: String,
    /// Net mass in kg.
    pub net_mass: f64,
    /// Declared item price (customs value) in national currency.
    pub item_price: f64,
    /// Control outcome, when the item was controlled.
    pub label: Option<ControlLabel>,
    /// Values of the declared fields that have no member above ([`crate::DeclaredField::extra`]),
    /// by field name; an absent value has no entry.
    pub extra: BTreeMap<&'static str, DeclaredValue>,
}

impl DeclarationItem {
    /// Duty at stake: item price × tax rate. Revenue figures weigh frauds by this.
    pub fn duty_at_stake(&self) -> f64 {
        (self.item_price * self.tax_rate / 100.0).max(0.0)
    }

    /// Declared price per kg of net mass; `None` when mass or price is zero (no unit value
    /// can be read from them). The one definition that models and drift monitoring share.
    pub fn unit_value(&self) -> Option<f64> {
        (self.net_mass > 0.0 && self.item_price > 0.0).then(|| self.item_price / self.net_mass)
    }

    /// `ln` of [`DeclarationItem::unit_value`].
    pub fn log_unit_value(&self) -> Option<f64> {
        self.unit_value().map(f64::ln)
    }
}
