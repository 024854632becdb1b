//! Hand-written SVG charts for reports: SHAP waterfalls, inspection-rate curves, bar charts.
//!
//! No plotting crate on purpose: they pull in font loading, rasterisers and image codecs, while
//! what reports need is a few rectangles, lines and text. Every function returns a self-contained
//! SVG 1.1 document (`xmlns`, `viewBox`, `font-family="sans-serif"`, a `<title>`) that can be
//! written to a `.svg` file or inlined into HTML.
//!
//! Architecture invariant: this crate only draws numbers it is given. It knows no domain type,
//! computes no statistic and does no I/O; callers (CLI, server, reports) decide what to plot.
//!
//! Robustness rules shared by all charts:
//! - text that comes from data (titles, feature names, axis labels) is XML-escaped;
//! - non-finite numbers never reach the output: they are drawn as zero-length bars / skipped
//!   points and labelled `n/a`;
//! - empty inputs give a valid SVG with a "no data" message.

use std::fmt::Write as _;

pub mod check;
pub mod intervals;
pub mod kit;
pub mod lines;

use kit::{c, label, name_margin, no_data, open, x_axis, y_axis, Scale, BOTTOM, TOP, WIDTH};

/// Colour of positive (risk-increasing) contributions.
const RED: &str = "#d62728";
/// Colour of negative (risk-decreasing) contributions.
const BLUE: &str = "#1f77b4";
/// Neutral bar colour.
const GREY: &str = "#555555";
/// Height of one bar row.
const ROW: f64 = 26.0;

/// Escapes `&`, `<`, `>`, `"` and `'` for use in XML text and attribute values.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab/newline are not allowed in XML 1.0.
            c if c.is_control() && c != '\t' && c != '\n' && c != '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A value with three decimals, `n/a` when not finite.
fn value_text(v: f64) -> String {
    if v.is_finite() {
        format!("{:.3}", if v == 0.0 { 0.0 } else { v })
    } else {
        "n/a".to_string()
    }
}

/// A signed value with three decimals (`+0.213`, `-0.050`), `n/a` when not finite.
fn signed_text(v: f64) -> String {
    if v.is_finite() {
        format!("{:+.3}", if v == 0.0 { 0.0 } else { v })
    } else {
        "n/a".to_string()
    }
}

/// Expands `[lo, hi]` by 5% on each side (or to a unit interval around a single value).
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (-1.0, 1.0);
    }
    if hi - lo <= f64::EPSILON * lo.abs().max(1.0) {
        return (lo - 1.0, hi + 1.0);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// A SHAP-style waterfall: one horizontal bar per contribution, top to bottom in the caller's
/// order (not re-sorted), starting at `base_value` and accumulating, red for positive and blue for
/// negative contributions, each labelled with its name and signed value (`+0.213`). A dashed line
/// marks the base value and a black line with a final "output" row marks `output_value`. The x
/// axis is in the model's units (`value_label`, e.g. "log-odds"). Non-finite contributions are
/// drawn with zero length and labelled `n/a`; the output marker is omitted when `output_value` is
/// not finite. Bars carry `class="bar"`.
pub fn waterfall_svg(
    title: &str,
    base_value: f64,
    contributions: &[(String, f64)],
    output_value: f64,
    value_label: &str,
) -> String {
    if contributions.is_empty() {
        return no_data(title);
    }
    let base = if base_value.is_finite() {
        base_value
    } else {
        0.0
    };
    // Cumulative start/end of each bar.
    let mut spans = Vec::with_capacity(contributions.len());
    let mut acc = base;
    for (_, v) in contributions {
        let v = if v.is_finite() { *v } else { 0.0 };
        let next = acc + v;
        let next = if next.is_finite() { next } else { acc };
        spans.push((acc, next));
        acc = next;
    }
    let mut lo = base.min(acc);
    let mut hi = base.max(acc);
    for &(a, b) in &spans {
        lo = lo.min(a).min(b);
        hi = hi.max(a).max(b);
    }
    if output_value.is_finite() {
        lo = lo.min(output_value);
        hi = hi.max(output_value);
    }
    let (d0, d1) = padded(lo, hi);
    let left = name_margin(contributions.iter().map(|(n, _)| n.as_str()));
    // Room on both sides of the plot for value labels.
    let scale = Scale {
        d0,
        d1,
        p0: left + 55.0,
        p1: WIDTH - 70.0,
    };
    let n_rows = contributions.len() + 1; // + output row
    let plot_top = TOP + 10.0;
    let plot_bottom = plot_top + n_rows as f64 * ROW;
    let height = plot_bottom + BOTTOM;
    let mut s = open(title, height);
    x_axis(&mut s, &scale, plot_bottom, plot_top, value_label);

    // Base marker.
    let xb = c(scale.at(base));
    let _ = writeln!(
        s,
        "<line x1=\"{xb}\" y1=\"{}\" x2=\"{xb}\" y2=\"{}\" stroke=\"#888888\" stroke-dasharray=\"4 3\"/>\n\
         <text x=\"{xb}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555555\">base {}</text>",
        c(plot_top - 2.0),
        c(plot_bottom),
        c(plot_top - 5.0),
        value_text(base_value)
    );

    for (i, ((name, v), &(start, end))) in contributions.iter().zip(&spans).enumerate() {
        let y = plot_top + i as f64 * ROW;
        let (x0, x1) = (scale.at(start.min(end)), scale.at(start.max(end)));
        let positive = v.is_finite() && *v > 0.0;
        let colour = if !v.is_finite() || *v == 0.0 {
            GREY
        } else if positive {
            RED
        } else {
            BLUE
        };
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\"/>",
            c(left - 8.0),
            c(y + ROW / 2.0 + 4.0),
            label(name),
            c(x0),
            c(y + 4.0),
            c((x1 - x0).max(1.0)),
            c(ROW - 8.0),
        );
        // Value label beyond the bar's far end (right for increases, left for decreases).
        let (lx, anchor) = if v.is_finite() && *v < 0.0 {
            (x0 - 4.0, "end")
        } else {
            (x1.max(x0 + 1.0) + 4.0, "start")
        };
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"11\" fill=\"{colour}\">{}</text>",
            c(lx),
            c(y + ROW / 2.0 + 4.0),
            signed_text(*v)
        );
        // Connector to the next bar.
        if i + 1 < contributions.len() {
            let xe = c(scale.at(end));
            let _ = writeln!(
                s,
                "<line x1=\"{xe}\" y1=\"{}\" x2=\"{xe}\" y2=\"{}\" stroke=\"#999999\" stroke-width=\"0.8\"/>",
                c(y + ROW - 4.0),
                c(y + ROW + 4.0)
            );
        }
    }

    // Output row and marker.
    let y = plot_top + contributions.len() as f64 * ROW;
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-weight=\"bold\">output</text>",
        c(left - 8.0),
        c(y + ROW / 2.0 + 4.0)
    );
    if output_value.is_finite() {
        let xo = scale.at(output_value);
        let (lx, anchor) = if xo > (scale.p0 + scale.p1) / 2.0 {
            (xo - 8.0, "end")
        } else {
            (xo + 8.0, "start")
        };
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#000000\" stroke-width=\"1.5\"/>\n\
             <path d=\"M {x} {} l 6 6 l -6 6 l -6 -6 z\" fill=\"#000000\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" font-weight=\"bold\">f(x) = {}</text>",
            c(plot_top),
            c(plot_bottom),
            c(y + ROW / 2.0 - 6.0),
            c(lx),
            c(y + ROW / 2.0 + 4.0),
            value_text(output_value),
            x = c(xo),
        );
    } else {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\">f(x) = n/a</text>",
            c(scale.p0),
            c(y + ROW / 2.0 + 4.0)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One point of the inspection-rate curves: what controlling the top `rate_percent` % of
/// declarations (by risk score) achieves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateCurvePoint {
    /// Share of declarations inspected, in percent (0–100).
    pub rate_percent: f64,
    /// Share of inspected declarations that are positive (0–1).
    pub precision: f64,
    /// Share of all positives that are inspected (0–1).
    pub recall: f64,
    /// Share of the total recoverable revenue found by the inspections (0–1).
    pub revenue_share: f64,
}

/// Precision, recall and revenue share (three coloured polylines with a legend) against the
/// inspection rate in percent (x axis from 0 to the largest rate), y axis 0–1 with gridlines, and
/// dashed vertical lines at each of `marks` (in percent) inside the x range. Points are joined in
/// the order given; points with a non-finite value are skipped for that curve, values are clamped
/// to 0–1.
pub fn rate_curves_svg(title: &str, points: &[RateCurvePoint], marks: &[f64]) -> String {
    let max_rate = points
        .iter()
        .map(|p| p.rate_percent)
        .filter(|r| r.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !max_rate.is_finite() {
        return no_data(title);
    }
    let max_rate = if max_rate > 0.0 { max_rate } else { 1.0 };
    let height = 480.0;
    let (left, right, plot_top, plot_bottom) = (70.0, WIDTH - 170.0, TOP + 10.0, height - BOTTOM);
    let xs = Scale {
        d0: 0.0,
        d1: max_rate,
        p0: left,
        p1: right,
    };
    let ys = Scale {
        d0: 0.0,
        d1: 1.0,
        p0: plot_bottom,
        p1: plot_top,
    };
    let mut s = open(title, height);
    y_axis(&mut s, &ys, left, right, "share (0–1)");
    x_axis(
        &mut s,
        &xs,
        plot_bottom,
        plot_top,
        "inspection rate (% of declarations)",
    );
    for &m in marks {
        if !(m.is_finite() && m >= 0.0 && m <= max_rate) {
            continue;
        }
        let x = c(xs.at(m));
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#7f7f7f\" stroke-dasharray=\"5 4\"/>\n\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555555\">{}%</text>",
            c(plot_top),
            c(plot_bottom),
            c(plot_top - 4.0),
            m,
        );
    }
    type Getter = fn(&RateCurvePoint) -> f64;
    let series: [(&str, &str, Getter); 3] = [
        ("precision", "#1f77b4", |p| p.precision),
        ("recall", "#ff7f0e", |p| p.recall),
        ("revenue share", "#2ca02c", |p| p.revenue_share),
    ];
    for (i, (name, colour, get)) in series.iter().enumerate() {
        let mut path = String::new();
        for p in points {
            let v = get(p);
            if !(p.rate_percent.is_finite() && v.is_finite()) {
                continue;
            }
            let _ = write!(
                path,
                "{},{} ",
                c(xs.at(p.rate_percent.clamp(0.0, max_rate))),
                c(ys.at(v.clamp(0.0, 1.0)))
            );
        }
        if !path.is_empty() {
            let _ = writeln!(
                s,
                "<polyline class=\"curve\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                path.trim_end()
            );
        }
        // Legend entry.
        let ly = plot_top + 10.0 + i as f64 * 22.0;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"3\"/>\n\
             <text x=\"{}\" y=\"{}\">{name}</text>",
            c(right + 20.0),
            c(right + 45.0),
            c(right + 52.0),
            c(ly + 4.0),
            y = c(ly),
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Horizontal bars, top to bottom in the caller's order (e.g. global feature importance), each
/// labelled with its name and value; bars grow from zero, so negative values extend to the left.
/// Non-finite values are drawn with zero length and labelled `n/a`. Bars carry `class="bar"`.
pub fn bar_chart_svg(title: &str, bars: &[(String, f64)], value_label: &str) -> String {
    if bars.is_empty() {
        return no_data(title);
    }
    let finite = bars.iter().map(|(_, v)| *v).filter(|v| v.is_finite());
    let lo = finite.clone().fold(0.0f64, f64::min);
    let hi = finite.fold(0.0f64, f64::max);
    let (d0, d1) = if hi > lo {
        (
            if lo < 0.0 { lo * 1.05 } else { 0.0 },
            if hi > 0.0 { hi * 1.05 } else { 0.0 },
        )
    } else {
        (0.0, 1.0)
    };
    let left = name_margin(bars.iter().map(|(n, _)| n.as_str()));
    let scale = Scale {
        d0,
        d1,
        p0: left + if d0 < 0.0 { 50.0 } else { 0.0 },
        p1: WIDTH - 70.0,
    };
    let plot_top = TOP + 10.0;
    let plot_bottom = plot_top + bars.len() as f64 * ROW;
    let height = plot_bottom + BOTTOM;
    let mut s = open(title, height);
    x_axis(&mut s, &scale, plot_bottom, plot_top, value_label);
    let x_zero = scale.at(0.0);
    let _ = writeln!(
        s,
        "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#333333\"/>",
        c(plot_top),
        c(plot_bottom),
        x = c(x_zero)
    );
    for (i, (name, v)) in bars.iter().enumerate() {
        let y = plot_top + i as f64 * ROW;
        let xv = if v.is_finite() { scale.at(*v) } else { x_zero };
        let (x0, x1) = (x_zero.min(xv), x_zero.max(xv));
        let (lx, anchor) = if v.is_finite() && *v < 0.0 {
            (x0 - 4.0, "end")
        } else {
            (x1 + 4.0, "start")
        };
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{ty}\" text-anchor=\"end\">{}</text>\n\
             <rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n\
             <text x=\"{}\" y=\"{ty}\" text-anchor=\"{anchor}\" font-size=\"11\" fill=\"#333333\">{}</text>",
            c(left - 8.0),
            label(name),
            c(x0),
            c(y + 4.0),
            c(x1 - x0),
            c(ROW - 8.0),
            if v.is_finite() && *v < 0.0 { BLUE } else { "#4c72b0" },
            c(lx),
            value_text(*v),
            ty = c(y + ROW / 2.0 + 4.0),
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::check::{assert_no_nan, assert_well_formed};
    use crate::kit::nice_ticks;

    #[test]
    fn escape_all_five() {
        assert_eq!(
            escape_xml("a&b<c>d\"e'f"),
            "a&amp;b&lt;c&gt;d&quot;e&apos;f"
        );
    }

    #[test]
    fn well_formedness_checker_rejects_bad_input() {
        for bad in [
            "<svg><g></svg>",
            "<svg>a & b</svg>",
            "<svg></svg><svg></svg>",
            "<svg><g>",
        ] {
            let result = std::panic::catch_unwind(|| assert_well_formed(bad));
            assert!(result.is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn waterfall_draws_every_contribution_in_order() {
        let contributions = vec![
            ("declared_value <&> \"x\"".to_string(), 0.8),
            ("origin 'CN'".to_string(), -0.3),
            ("weight".to_string(), 0.05),
        ];
        let svg = waterfall_svg(
            "Why <this> declaration?",
            -2.0,
            &contributions,
            -1.45,
            "log-odds",
        );
        assert_well_formed(&svg);
        assert_no_nan(&svg);
        assert_eq!(svg.matches("class=\"bar\"").count(), 3);
        assert!(svg.contains("declared_value &lt;&amp;&gt; &quot;x&quot;"));
        assert!(svg.contains("origin &apos;CN&apos;"));
        assert!(svg.contains("Why &lt;this&gt; declaration?"));
        assert!(svg.contains("+0.800") && svg.contains("-0.300") && svg.contains("+0.050"));
        assert!(svg.contains(RED) && svg.contains(BLUE));
        assert!(svg.contains("log-odds"));
        assert!(svg.contains("f(x) = -1.450"));
        // Caller order is kept (top to bottom).
        let a = svg.find("declared_value").unwrap();
        let b = svg.find("origin").unwrap();
        let w = svg.find(">weight<").unwrap();
        assert!(a < b && b < w);
    }

    #[test]
    fn waterfall_handles_non_finite_and_empty() {
        let contributions = vec![
            ("a".to_string(), f64::NAN),
            ("b".to_string(), f64::INFINITY),
            ("c".to_string(), 0.2),
        ];
        let svg = waterfall_svg("t", f64::NAN, &contributions, f64::NEG_INFINITY, "x");
        assert_well_formed(&svg);
        assert_no_nan(&svg);
        assert_eq!(svg.matches("class=\"bar\"").count(), 3);
        assert!(svg.contains("n/a"));

        let empty = waterfall_svg("empty & co", 0.0, &[], 0.0, "x");
        assert_well_formed(&empty);
        assert!(empty.contains("no data"));
        assert!(empty.contains("empty &amp; co"));
    }

    #[test]
    fn rate_curves_have_three_series_and_marks() {
        let points: Vec<RateCurvePoint> = (0..=20)
            .map(|i| {
                let r = i as f64;
                RateCurvePoint {
                    rate_percent: r,
                    precision: 0.5 / (1.0 + r / 5.0),
                    recall: (r / 20.0).sqrt(),
                    revenue_share: (r / 20.0).powf(0.3),
                }
            })
            .collect();
        let svg = rate_curves_svg("Top-k <rates>", &points, &[1.0, 2.0, 5.0, 10.0, 50.0]);
        assert_well_formed(&svg);
        assert_no_nan(&svg);
        assert_eq!(svg.matches("class=\"curve\"").count(), 3);
        assert_eq!(svg.matches("stroke-dasharray=\"5 4\"").count(), 4);
        for s in [
            "precision",
            "recall",
            "revenue share",
            "1%",
            "10%",
            "Top-k &lt;rates&gt;",
        ] {
            assert!(svg.contains(s), "missing {s}");
        }
    }

    #[test]
    fn rate_curves_handle_non_finite_and_empty() {
        let points = [
            RateCurvePoint {
                rate_percent: f64::NAN,
                precision: 0.1,
                recall: 0.2,
                revenue_share: 0.3,
            },
            RateCurvePoint {
                rate_percent: 5.0,
                precision: f64::NAN,
                recall: f64::INFINITY,
                revenue_share: 0.3,
            },
            RateCurvePoint {
                rate_percent: 10.0,
                precision: 0.2,
                recall: 0.5,
                revenue_share: 2.0,
            },
        ];
        let svg = rate_curves_svg("t", &points, &[f64::NAN, 1.0]);
        assert_well_formed(&svg);
        assert_no_nan(&svg);
        let empty = rate_curves_svg("t", &[], &[1.0]);
        assert_well_formed(&empty);
        assert!(empty.contains("no data"));
        let all_nan = rate_curves_svg(
            "t",
            &[RateCurvePoint {
                rate_percent: f64::NAN,
                precision: f64::NAN,
                recall: f64::NAN,
                revenue_share: f64::NAN,
            }],
            &[],
        );
        assert_well_formed(&all_nan);
        assert!(all_nan.contains("no data"));
    }

    #[test]
    fn bar_chart_counts_and_escapes() {
        let bars = vec![
            ("hs_code".to_string(), 0.42),
            ("trader <new>".to_string(), 0.1),
            (
                "a very long feature name that goes on and on and on forever".to_string(),
                0.01,
            ),
            ("neg".to_string(), -0.05),
            ("bad".to_string(), f64::NAN),
        ];
        let svg = bar_chart_svg("Importance", &bars, "mean |SHAP|");
        assert_well_formed(&svg);
        assert_no_nan(&svg);
        assert_eq!(svg.matches("class=\"bar\"").count(), bars.len());
        assert!(svg.contains("trader &lt;new&gt;"));
        assert!(svg.contains("mean |SHAP|"));
        assert!(svg.contains("n/a"));

        let empty = bar_chart_svg("Importance", &[], "x");
        assert_well_formed(&empty);
        assert!(empty.contains("no data"));

        let degenerate = bar_chart_svg("z", &[("z".to_string(), 0.0)], "x");
        assert_well_formed(&degenerate);
        assert_no_nan(&degenerate);
    }

    #[test]
    fn ticks_are_nice() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        let t = nice_ticks(-2.3, 0.4, 6);
        assert!(t.contains(&0.0));
        assert!(t.iter().all(|v| (-2.3..=0.4).contains(v)));
    }
}
