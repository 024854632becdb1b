//! Number formatting for the sentences of flags and alerts. Every helper writes `n/a` for a
//! non-finite value, so that no `NaN` or `inf` reaches a report.

/// A share as a percentage: `31%` from 10% up, `4.2%` from 1%, `0.35%` below; `n/a` if not finite.
pub(crate) fn pct(share: f64) -> String {
    if !share.is_finite() {
        return "n/a".to_string();
    }
    let p = share * 100.0;
    if p == 0.0 || p.abs() >= 9.95 {
        format!("{p:.0}%")
    } else if p.abs() >= 0.995 {
        format!("{p:.1}%")
    } else {
        format!("{p:.2}%")
    }
}

/// A rate with two significant decimals: `0.21`, `0.042`, `0.0031`; `n/a` if not finite.
pub(crate) fn rate(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".to_string();
    }
    if x == 0.0 || x.abs() >= 0.095 {
        let x = if x == 0.0 { 0.0 } else { x };
        return format!("{x:.2}");
    }
    let decimals = ((-x.abs().log10()).floor() as usize + 2).min(8);
    format!("{x:.decimals$}")
}

/// A ratio with one decimal (`3.1`), `n/a` if not finite.
pub(crate) fn ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "n/a".to_string()
    }
}

/// A PSI value with two decimals (three below 0.01), `n/a` if not finite.
pub(crate) fn psi(x: f64) -> String {
    if !x.is_finite() {
        "n/a".to_string()
    } else if x != 0.0 && x.abs() < 0.01 {
        format!("{x:.3}")
    } else {
        format!("{:.2}", if x == 0.0 { 0.0 } else { x })
    }
}

/// A p-value as `p=0.012` or `p<0.001`.
pub(crate) fn p_value(p: f64) -> String {
    if !p.is_finite() {
        "p=n/a".to_string()
    } else if p < 0.001 {
        "p<0.001".to_string()
    } else if p < 0.01 {
        format!("p={p:.3}")
    } else {
        format!("p={p:.2}")
    }
}

/// A confidence level as `95%` (or `97.5%`).
pub(crate) fn confidence(level: f64) -> String {
    let p = level * 100.0;
    if !p.is_finite() {
        "n/a".to_string()
    } else if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_read_well() {
        assert_eq!(pct(0.31), "31%");
        assert_eq!(pct(0.042), "4.2%");
        assert_eq!(pct(0.0035), "0.35%");
        assert_eq!(pct(0.0), "0%");
        assert_eq!(pct(f64::NAN), "n/a");
        assert_eq!(rate(0.214), "0.21");
        assert_eq!(rate(0.0421), "0.042");
        assert_eq!(rate(0.00312), "0.0031");
        assert_eq!(rate(0.0), "0.00");
        assert_eq!(ratio(3.06), "3.1");
        assert_eq!(ratio(f64::INFINITY), "n/a");
        assert_eq!(psi(0.414), "0.41");
        assert_eq!(psi(0.0042), "0.004");
        assert_eq!(p_value(0.0004), "p<0.001");
        assert_eq!(p_value(0.0012), "p=0.001");
        assert_eq!(p_value(0.2345), "p=0.23");
        assert_eq!(confidence(0.95), "95%");
        assert_eq!(confidence(0.975), "97.5%");
    }
}
