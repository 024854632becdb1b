//! Estimates with their confidence intervals, one row per group: a dot at the estimate, a bar
//! from the low to the high end, and a hollow mark at a second value to compare (e.g. the naive
//! hits / inspected beside a Horvitz–Thompson estimate).

use std::fmt::Write as _;

use crate::kit::{c, label, name_margin, no_data, open, x_axis, Scale, BOTTOM, TOP, WIDTH};

/// Height of one row.
const ROW: f64 = 24.0;
/// Colour of the estimate and its interval.
const ESTIMATE: &str = "#1f77b4";
/// Colour of the value compared with.
const COMPARED: &str = "#d62728";

/// One row of an [`intervals_svg`] chart.
#[derive(Clone, Debug, PartialEq)]
pub struct IntervalRow {
    /// Group name.
    pub name: String,
    /// The estimate and its interval, when there is one.
    pub estimate: Option<(f64, f64, f64)>,
    /// A value to compare with (hollow mark), when there is one.
    pub compared: Option<f64>,
    /// Text written at the right end of the row (e.g. `3 / 41 inspected`).
    pub note: String,
}

/// Estimates with intervals against a shared value axis (`value_label`), top to bottom in the
/// caller's order; the legend names the estimate (`estimate_name`) and the compared value
/// (`compared_name`; empty: no legend entry). The axis starts at zero. Non-finite numbers are not drawn.
pub fn intervals_svg(
    title: &str,
    rows: &[IntervalRow],
    value_label: &str,
    estimate_name: &str,
    compared_name: &str,
) -> String {
    if rows.is_empty() {
        return no_data(title);
    }
    let finite = |v: f64| v.is_finite().then_some(v);
    let hi = rows
        .iter()
        .flat_map(|r| {
            [
                r.estimate.and_then(|(_, _, h)| finite(h)),
                r.compared.and_then(finite),
            ]
        })
        .flatten()
        .fold(0.0f64, f64::max);
    let d1 = if hi > 0.0 { hi * 1.05 } else { 1.0 };
    let left = name_margin(rows.iter().map(|r| r.name.as_str()));
    let scale = Scale {
        d0: 0.0,
        d1,
        p0: left,
        p1: WIDTH - 140.0,
    };
    let plot_top = TOP + 24.0;
    let plot_bottom = plot_top + rows.len() as f64 * ROW;
    let mut s = open(title, plot_bottom + BOTTOM);
    let _ = writeln!(
        s,
        "<circle cx=\"{}\" cy=\"{y}\" r=\"4\" fill=\"{ESTIMATE}\"/>\
         <text x=\"{}\" y=\"{ty}\">{}</text>",
        c(left),
        c(left + 10.0),
        label(estimate_name),
        y = c(TOP + 4.0),
        ty = c(TOP + 8.0),
    );
    // No value compared with: no legend entry for it.
    if !compared_name.is_empty() {
        let _ = writeln!(
            s,
            "<circle cx=\"{}\" cy=\"{y}\" r=\"4\" fill=\"none\" stroke=\"{COMPARED}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{ty}\">{}</text>",
            c(left + 260.0),
            c(left + 270.0),
            label(compared_name),
            y = c(TOP + 4.0),
            ty = c(TOP + 8.0),
        );
    }
    x_axis(&mut s, &scale, plot_bottom, plot_top, value_label);
    for (i, row) in rows.iter().enumerate() {
        let y = plot_top + i as f64 * ROW + ROW / 2.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            c(left - 8.0),
            c(y + 4.0),
            label(&row.name)
        );
        if let Some((estimate, low, high)) = row.estimate {
            if low.is_finite() && high.is_finite() {
                let _ = writeln!(
                    s,
                    "<line class=\"interval\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" \
                     stroke=\"{ESTIMATE}\" stroke-width=\"3\"/>",
                    c(scale.at(low)),
                    c(scale.at(high)),
                    y = c(y)
                );
            }
            if estimate.is_finite() {
                let _ = writeln!(
                    s,
                    "<circle class=\"estimate\" cx=\"{}\" cy=\"{}\" r=\"5\" fill=\"{ESTIMATE}\"/>",
                    c(scale.at(estimate)),
                    c(y)
                );
            }
        }
        if let Some(v) = row.compared.and_then(finite) {
            let _ = writeln!(
                s,
                "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"none\" stroke=\"{COMPARED}\" \
                 stroke-width=\"2\"/>",
                c(scale.at(v)),
                c(y)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#333333\">{}</text>",
            c(scale.p1 + 10.0),
            c(y + 4.0),
            label(&row.note)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{assert_no_nan, assert_well_formed};

    #[test]
    fn rows_draw_an_interval_and_a_dot_each_and_bad_numbers_are_left_out() {
        let rows = vec![
            IntervalRow {
                name: "KR <script>".into(),
                estimate: Some((0.2, 0.1, 0.35)),
                compared: Some(0.4),
                note: "3 / 41".into(),
            },
            IntervalRow {
                name: "CN".into(),
                estimate: Some((f64::NAN, f64::NAN, f64::INFINITY)),
                compared: None,
                note: String::new(),
            },
            IntervalRow {
                name: "US".into(),
                estimate: None,
                compared: Some(0.1),
                note: "no design draws".into(),
            },
        ];
        let svg = intervals_svg("rates", &rows, "rate", "HT", "naive");
        assert_well_formed(&svg);
        assert_no_nan(&svg);
        assert_eq!(svg.matches("class=\"interval\"").count(), 1);
        assert_eq!(svg.matches("class=\"estimate\"").count(), 1);
        assert!(svg.contains("KR &lt;script&gt;"));
        assert!(!svg.contains("<script>"));
        let empty = intervals_svg("rates", &[], "rate", "HT", "naive");
        assert!(empty.contains("no data"));
    }
}
