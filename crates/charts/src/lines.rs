//! Lines of (x, y) points with optional logarithmic axes and horizontal reference lines, e.g.
//! latency percentiles against the offered request rate of a load test.

use std::fmt::Write as _;

use crate::escape_xml;
use crate::kit::{c, label, no_data, open, tick_text, PALETTE, TOP, WIDTH};

/// One line of a [`lines_svg`] chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Legend entry.
    pub name: String,
    /// Points, joined in the order given; points with a non-finite coordinate (or a coordinate
    /// ≤ 0 on a logarithmic axis) are skipped.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (e.g. a median beside its solid 99th percentile).
    pub dashed: bool,
    /// Index into the palette (lines sharing a colour belong together).
    pub colour: usize,
}

/// A horizontal reference line across the plot (e.g. a target), with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// The y value.
    pub y: f64,
    /// Text written above the line, at its right end.
    pub label: String,
}

/// Axes of a [`lines_svg`] chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Axes {
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Logarithmic x axis (ticks at 1, 2, 5 × 10^k).
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
}

/// An axis mapping data values to pixels, linear or logarithmic.
struct Axis {
    lo: f64,
    hi: f64,
    p0: f64,
    p1: f64,
    log: bool,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, log: bool, p0: f64, p1: f64) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !(lo.is_finite() && hi.is_finite()) {
            (lo, hi) = if log { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        if log {
            // Whole decades, or at least 1-2-5 steps around the data.
            lo = down_125(lo);
            hi = up_125(hi);
            if hi <= lo {
                hi = lo * 10.0;
            }
        } else {
            lo = lo.min(0.0);
            if hi <= lo {
                hi = lo + 1.0;
            }
            hi *= 1.05;
        }
        Axis {
            lo,
            hi,
            p0,
            p1,
            log,
        }
    }

    fn t(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    fn at(&self, v: f64) -> f64 {
        let (lo, hi) = (self.t(self.lo), self.t(self.hi));
        let v = self.t(v.clamp(self.lo, self.hi));
        self.p0 + (v - lo) / (hi - lo) * (self.p1 - self.p0)
    }

    fn shows(&self, v: f64) -> bool {
        v.is_finite() && (!self.log || v > 0.0)
    }

    fn ticks(&self) -> Vec<f64> {
        if !self.log {
            return crate::kit::nice_ticks(self.lo, self.hi, 6);
        }
        let mut ticks = Vec::new();
        let mut decade = 10f64.powf(self.lo.log10().floor());
        while decade <= self.hi && ticks.len() < 40 {
            for m in [1.0, 2.0, 5.0] {
                let t = decade * m;
                if t >= self.lo * (1.0 - 1e-9) && t <= self.hi * (1.0 + 1e-9) {
                    ticks.push(t);
                }
            }
            decade *= 10.0;
        }
        ticks
    }

    fn tick_label(&self, v: f64, ticks: &[f64]) -> String {
        if !self.log {
            return tick_text(v, ticks);
        }
        if v >= 1.0 {
            format!("{v:.0}")
        } else {
            let decimals = (-v.log10()).ceil().clamp(0.0, 6.0) as usize;
            format!("{v:.decimals$}")
        }
    }
}

/// The largest of 1, 2, 5 × 10^k at or below `v` (`v` > 0).
fn down_125(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|t| *t <= v * (1.0 + 1e-9))
        .unwrap_or(decade)
}

/// The smallest of 1, 2, 5 × 10^k at or above `v` (`v` > 0).
fn up_125(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|t| *t >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * decade)
}

/// Lines of points on shared axes (each optionally logarithmic), a legend on the right, and
/// dashed horizontal reference lines. Points are marked with small circles (`class="point"`),
/// lines carry `class="line"`. No drawable point gives a "no data" chart.
pub fn lines_svg(title: &str, axes: &Axes, lines: &[Line], references: &[Reference]) -> String {
    let height = 480.0;
    let (left, right, plot_top, plot_bottom) = (80.0, WIDTH - 210.0, TOP + 10.0, height - 60.0);
    let xs: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .filter(|(x, _)| !axes.log_x || *x > 0.0)
        .filter(|(_, y)| !axes.log_y || *y > 0.0)
        .map(|p| p.0)
        .collect();
    if xs.is_empty() {
        return no_data(title);
    }
    let x = Axis::new(xs.into_iter(), axes.log_x, left, right);
    let ys = lines
        .iter()
        .flat_map(|l| l.points.iter())
        .filter(|(px, py)| x.shows(*px) && py.is_finite() && (!axes.log_y || *py > 0.0))
        .map(|p| p.1)
        .chain(
            references
                .iter()
                .map(|r| r.y)
                .filter(|y| y.is_finite() && (!axes.log_y || *y > 0.0)),
        );
    let y = Axis::new(ys, axes.log_y, plot_bottom, plot_top);
    let mut s = open(title, height);
    // Grid, ticks and axis labels.
    let y_ticks = y.ticks();
    for &t in &y_ticks {
        let py = c(y.at(t));
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{py}\" x2=\"{}\" y2=\"{py}\" stroke=\"#e5e5e5\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#333333\">{}</text>",
            c(left),
            c(right),
            c(left - 6.0),
            c(y.at(t) + 4.0),
            y.tick_label(t, &y_ticks),
        );
    }
    let x_ticks = x.ticks();
    for &t in &x_ticks {
        let px = c(x.at(t));
        let _ = writeln!(
            s,
            "<line x1=\"{px}\" y1=\"{}\" x2=\"{px}\" y2=\"{}\" stroke=\"#e5e5e5\"/>\n\
             <text x=\"{px}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333333\">{}</text>",
            c(plot_top),
            c(plot_bottom),
            c(plot_bottom + 18.0),
            x.tick_label(t, &x_ticks),
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{l}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333333\"/>\n\
         <line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{b}\" stroke=\"#333333\"/>\n\
         <text x=\"{mx}\" y=\"{xl}\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n\
         <text x=\"18\" y=\"{my}\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 18 {my})\">{}</text>",
        escape_xml(&axes.x_label),
        escape_xml(&axes.y_label),
        l = c(left),
        r = c(right),
        t = c(plot_top),
        b = c(plot_bottom),
        mx = c((left + right) / 2.0),
        xl = c(plot_bottom + 40.0),
        my = c((plot_top + plot_bottom) / 2.0),
    );
    for r in references {
        if !y.shows(r.y) || r.y < y.lo || r.y > y.hi {
            continue;
        }
        let py = y.at(r.y);
        let _ = writeln!(
            s,
            "<line class=\"reference\" x1=\"{}\" y1=\"{p}\" x2=\"{}\" y2=\"{p}\" stroke=\"#d62728\" stroke-dasharray=\"6 4\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\" fill=\"#d62728\">{}</text>",
            c(left),
            c(right),
            c(right - 4.0),
            c(py - 4.0),
            label(&r.label),
            p = c(py),
        );
    }
    for (i, line) in lines.iter().enumerate() {
        let colour = PALETTE[line.colour % PALETTE.len()];
        let dash = if line.dashed {
            " stroke-dasharray=\"5 3\""
        } else {
            ""
        };
        let points: Vec<(f64, f64)> = line
            .points
            .iter()
            .filter(|(px, py)| x.shows(*px) && y.shows(*py))
            .map(|(px, py)| (x.at(*px), y.at(*py)))
            .collect();
        if points.len() > 1 {
            let path: Vec<String> = points
                .iter()
                .map(|(px, py)| format!("{},{}", c(*px), c(*py)))
                .collect();
            let _ = writeln!(
                s,
                "<polyline class=\"line\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>",
                path.join(" ")
            );
        }
        for (px, py) in &points {
            let _ = writeln!(
                s,
                "<circle class=\"point\" cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{colour}\"/>",
                c(*px),
                c(*py)
            );
        }
        let ly = plot_top + 10.0 + i as f64 * 20.0;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"3\"{dash}/>\n\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            c(right + 15.0),
            c(right + 40.0),
            c(right + 46.0),
            c(ly + 4.0),
            crate::kit::label_max(&line.name, 26),
            y = c(ly),
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{assert_no_nan, assert_well_formed};

    fn axes(log: bool) -> Axes {
        Axes {
            x_label: "offered requests / s".into(),
            y_label: "latency (ms)".into(),
            log_x: log,
            log_y: log,
        }
    }

    #[test]
    fn lines_points_legend_and_reference_are_drawn() {
        let lines = vec![
            Line {
                name: "p99 <submit>".into(),
                points: vec![(250.0, 3.0), (1000.0, 12.0), (4000.0, 900.0)],
                dashed: false,
                colour: 0,
            },
            Line {
                name: "p50".into(),
                points: vec![(250.0, 1.0), (1000.0, f64::NAN), (4000.0, 0.0)],
                dashed: true,
                colour: 0,
            },
        ];
        let reference = [Reference {
            y: 50.0,
            label: "target p99 ≤ 50 ms".into(),
        }];
        let svg = lines_svg("latency & rate", &axes(true), &lines, &reference);
        assert_well_formed(&svg);
        assert_no_nan(&svg);
        assert!(svg.contains("p99 &lt;submit&gt;"));
        assert!(svg.contains("latency &amp; rate"));
        assert_eq!(
            svg.matches("class=\"line\"").count(),
            1,
            "p50 has one drawable point"
        );
        // 3 + 1 points (NaN skipped, 0 skipped on a log axis).
        assert_eq!(svg.matches("class=\"point\"").count(), 4);
        assert_eq!(svg.matches("class=\"reference\"").count(), 1);
        assert!(svg.contains("stroke-dasharray=\"5 3\""));
        // Log ticks at 1-2-5 steps.
        for tick in [">200<", ">500<", ">1000<", ">5000<"] {
            assert!(svg.contains(tick), "{tick}");
        }
        let linear = lines_svg("linear", &axes(false), &lines, &[]);
        assert_well_formed(&linear);
        assert_no_nan(&linear);
    }

    #[test]
    fn nothing_drawable_is_no_data() {
        let empty = lines_svg("t", &axes(true), &[], &[]);
        assert!(empty.contains("no data"));
        let only_bad = vec![Line {
            name: "x".into(),
            points: vec![(f64::NAN, 1.0), (0.0, 1.0)],
            dashed: false,
            colour: 3,
        }];
        let svg = lines_svg("t", &axes(true), &only_bad, &[]);
        assert!(svg.contains("no data"));
        assert_well_formed(&svg);
    }

    #[test]
    fn one_two_five_bounds() {
        assert_eq!(down_125(250.0), 200.0);
        assert_eq!(up_125(4000.0), 5000.0);
        assert_eq!(up_125(1000.0), 1000.0);
        assert_eq!(down_125(0.7), 0.5);
    }
}
