//! The drift charts: PSI per feature, hit rate over windows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{DriftLevel, DriftReport, FeatureDrift, Series};
use crate::format;
use crate::svg::{self, c, Bands, Scale};

/// Colour of a drift level.
fn level_colour(level: DriftLevel) -> &'static str {
    match level {
        DriftLevel::Stable => "#2ca02c",
        DriftLevel::Moderate => "#ff7f0e",
        DriftLevel::Major => "#d62728",
    }
}

/// One horizontal bar per feature (the score last), coloured by level (green stable, orange
/// moderate, red major) and labelled with its PSI and level, with dashed vertical lines at 0.1 and
/// 0.25. Bars carry `class="bar"`; a report without features or score gives a "no data" chart.
pub fn psi_chart_svg(report: &DriftReport) -> String {
    let title = "Population stability index (PSI), current vs reference";
    let rows: Vec<(String, &FeatureDrift)> = report
        .features
        .iter()
        .map(|f| (f.name.clone(), f))
        .chain(
            report
                .score
                .iter()
                .map(|s| (format!("{} (score)", s.name), s)),
        )
        .collect();
    if rows.is_empty() {
        return svg::no_data(title);
    }
    let max = rows
        .iter()
        .map(|(_, f)| f.psi.value)
        .filter(|v| v.is_finite())
        .fold(0.3f64, f64::max);
    let left = svg::name_margin(rows.iter().map(|(n, _)| n.as_str()));
    let row = 26.0;
    let plot_top = svg::TOP + 24.0;
    let plot_bottom = plot_top + rows.len() as f64 * row;
    let height = plot_bottom + svg::BOTTOM;
    let scale = Scale {
        d0: 0.0,
        d1: max * 1.08,
        p0: left,
        p1: svg::WIDTH - 110.0,
    };
    let mut s = svg::open(title, height);
    svg::x_axis(&mut s, &scale, plot_bottom, plot_top, "PSI");
    for (i, (name, f)) in rows.iter().enumerate() {
        let y = plot_top + i as f64 * row;
        let value = if f.psi.value.is_finite() {
            f.psi.value
        } else {
            0.0
        };
        let x1 = scale.at(value);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{ty}\" text-anchor=\"end\">{}</text>\n\
             <rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n\
             <text x=\"{}\" y=\"{ty}\" font-size=\"11\" fill=\"#333333\">{} ({})</text>",
            c(left - 8.0),
            svg::label(name),
            c(scale.p0),
            c(y + 4.0),
            c(x1 - scale.p0),
            c(row - 8.0),
            level_colour(f.level),
            c(x1 + 4.0),
            format::psi(f.psi.value),
            f.level.as_str(),
            ty = c(y + row / 2.0 + 4.0),
        );
    }
    for (mark, text) in [(0.1, "0.1 moderate"), (0.25, "0.25 major")] {
        svg::x_marker(&mut s, &scale, mark, plot_top, plot_bottom, text, "#555555");
    }
    s.push_str("</svg>\n");
    s
}

/// A point of a hit-rate line: window index, rate, Wilson interval.
type PlotPoint = (usize, f64, Option<(f64, f64)>);

/// Hit rate over windows, one coloured line per series with its Wilson interval as a faint
/// vertical error bar at each point; windows without inspections break the line. The x axis shows
/// the windows (string order, thinned to about ten labels), the y axis the hit rate from 0. A
/// legend on the right names the groups. No point with inspections gives a "no data" chart.
pub fn hit_rate_chart_svg(title: &str, series: &[Series]) -> String {
    let windows: Vec<&str> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.window.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    let top_value = series
        .iter()
        .flat_map(|s| &s.points)
        .flat_map(|p| [finite(p.rate), finite(p.high)])
        .flatten()
        .fold(f64::NEG_INFINITY, f64::max);
    if windows.is_empty() || !top_value.is_finite() {
        return svg::no_data(title);
    }
    let top_value = top_value.clamp(0.01, 1.0);
    // The y axis ends on a tick at or above the highest value (as many ticks as the axis draws).
    let ticks = svg::nice_ticks(0.0, top_value, 6);
    let step = if ticks.len() >= 2 {
        ticks[1] - ticks[0]
    } else {
        top_value
    };
    let last = ticks.last().copied().unwrap_or(top_value);
    let d1 = if last + 1e-12 >= top_value {
        last
    } else {
        last + step
    };
    let height = 480.0;
    let (left, right) = (70.0, svg::WIDTH - 180.0);
    let (plot_top, plot_bottom) = (svg::TOP + 10.0, height - svg::BOTTOM - 10.0);
    let ys = Scale {
        d0: 0.0,
        d1,
        p0: plot_bottom,
        p1: plot_top,
    };
    let bands = Bands {
        n: windows.len(),
        p0: left,
        p1: right,
    };
    let x_of = |i: usize| bands.at(i);
    let index: BTreeMap<&str, usize> = windows.iter().enumerate().map(|(i, w)| (*w, i)).collect();
    let mut s = svg::open(title, height);
    svg::y_axis(&mut s, &ys, left, right, "hit rate");
    svg::band_axis(&mut s, &bands, &windows, plot_bottom, "window");
    let legend_rows = ((plot_bottom - plot_top) / 20.0).floor().max(1.0) as usize;
    for (k, one) in series.iter().enumerate() {
        let colour = svg::PALETTE[k % svg::PALETTE.len()];
        let mut points: Vec<PlotPoint> = one
            .points
            .iter()
            .filter_map(|p| {
                let i = *index.get(p.window.as_str())?;
                let rate = finite(p.rate)?;
                let band = finite(p.low).zip(finite(p.high));
                Some((i, rate, band))
            })
            .collect();
        points.sort_by_key(|p| p.0);
        let _ = writeln!(s, "<g class=\"series\">");
        for &(i, _, band) in &points {
            if let Some((low, high)) = band {
                let x = c(x_of(i));
                let _ = writeln!(
                    s,
                    "<line class=\"ci\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{colour}\" stroke-opacity=\"0.3\" stroke-width=\"5\"/>",
                    c(ys.at(low.clamp(0.0, 1.0))),
                    c(ys.at(high.clamp(0.0, 1.0)))
                );
            }
        }
        // Runs of consecutive windows with a rate.
        let mut run: Vec<String> = Vec::new();
        let mut previous: Option<usize> = None;
        let flush = |run: &mut Vec<String>, s: &mut String| {
            if run.len() >= 2 {
                let _ = writeln!(
                    s,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                    run.join(" ")
                );
            }
            run.clear();
        };
        for &(i, rate, _) in &points {
            if previous.is_some_and(|p| p + 1 != i) {
                flush(&mut run, &mut s);
            }
            run.push(format!("{},{}", c(x_of(i)), c(ys.at(rate.clamp(0.0, 1.0)))));
            previous = Some(i);
        }
        flush(&mut run, &mut s);
        for &(i, rate, _) in &points {
            let _ = writeln!(
                s,
                "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{colour}\"/>",
                c(x_of(i)),
                c(ys.at(rate.clamp(0.0, 1.0)))
            );
        }
        s.push_str("</g>\n");
        if k < legend_rows {
            let ly = plot_top + 8.0 + k as f64 * 20.0;
            let _ = writeln!(
                s,
                "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"3\"/>\n\
                 <text x=\"{}\" y=\"{}\">{}</text>",
                c(right + 15.0),
                c(right + 38.0),
                c(right + 44.0),
                c(ly + 4.0),
                svg::label_max(&one.group, 18),
                y = c(ly),
            );
        } else if k == legend_rows {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" fill=\"#555555\">+{} more</text>",
                c(right + 15.0),
                c(plot_top + 12.0 + k as f64 * 20.0),
                series.len() - legend_rows
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
