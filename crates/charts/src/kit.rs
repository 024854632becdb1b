//! SVG primitives for every chart of borderlens (this crate's and other report crates'): a
//! self-contained SVG 1.1 document with `xmlns`, `viewBox`, `font-family="sans-serif"` and a
//! `<title>`; text from data XML-escaped; non-finite numbers never written (coordinates fall back
//! to 0, values read `n/a`); empty inputs give a "no data" chart.

use std::fmt::Write as _;

use crate::escape_xml;

/// Width of every chart, in user units.
pub const WIDTH: f64 = 800.0;
/// Space above the plot area (title, legend).
pub const TOP: f64 = 50.0;
/// Space below the plot area (ticks and axis label).
pub const BOTTOM: f64 = 60.0;
/// Longest name drawn before truncation, in characters.
pub const MAX_NAME_CHARS: usize = 40;

/// Colours for lines of several groups (the usual ten-colour palette).
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// A name shortened to `MAX_NAME_CHARS` characters and escaped.
pub fn label(name: &str) -> String {
    label_max(name, MAX_NAME_CHARS)
}

/// A name shortened to `max` characters (at least 2) and escaped.
pub fn label_max(name: &str, max: usize) -> String {
    let max = max.max(2);
    if name.chars().count() > max {
        let short: String = name.chars().take(max - 1).collect();
        escape_xml(&format!("{short}…"))
    } else {
        escape_xml(name)
    }
}

/// Coordinate formatting: two decimals, `0` for a non-finite value.
pub fn c(v: f64) -> String {
    if v.is_finite() {
        let v = if v == 0.0 { 0.0 } else { v };
        format!("{v:.2}")
    } else {
        "0".to_string()
    }
}

/// Opens the document: root element, `<title>`, white background and visible title.
pub fn open(title: &str, height: f64) -> String {
    let title = escape_xml(title);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <title>{title}</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n\
         <text x=\"{cx}\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">{title}</text>\n",
        w = c(WIDTH),
        h = c(height),
        cx = c(WIDTH / 2.0),
    );
    s
}

/// A complete SVG with only the title and a "no data" message.
pub fn no_data(title: &str) -> String {
    let height = 160.0;
    let mut s = open(title, height);
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"14\" fill=\"#777777\">no data</text>",
        c(WIDTH / 2.0),
        c(height / 2.0 + 10.0)
    );
    s.push_str("</svg>\n");
    s
}

/// About `target` "nice" tick values (1, 2, 5 × 10^k steps) covering `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![if lo.is_finite() { lo } else { 0.0 }];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    if !(step.is_finite() && step > 0.0) {
        return vec![lo, hi];
    }
    let first = (lo / step).ceil();
    let mut ticks = Vec::new();
    let mut i = 0.0;
    while (first + i) * step <= hi + step * 1e-9 && ticks.len() < 50 {
        let t = (first + i) * step;
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        i += 1.0;
    }
    ticks
}

/// Tick label with just enough decimals for the step.
pub fn tick_text(v: f64, ticks: &[f64]) -> String {
    let step = if ticks.len() >= 2 {
        (ticks[1] - ticks[0]).abs()
    } else {
        1.0
    };
    let decimals = if step >= 1.0 || !step.is_finite() || step <= 0.0 {
        0
    } else {
        (-step.log10()).ceil().clamp(0.0, 6.0) as usize
    };
    let v = if v == 0.0 || !v.is_finite() { 0.0 } else { v };
    format!("{v:.decimals$}")
}

/// A linear map from data interval `[d0, d1]` to pixel interval `[p0, p1]`; values outside the
/// data interval are clamped to it, non-finite values map to `d0`.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub d0: f64,
    pub d1: f64,
    pub p0: f64,
    pub p1: f64,
}

impl Scale {
    /// Pixel position of `v`.
    pub fn at(&self, v: f64) -> f64 {
        let v = if v.is_finite() {
            v.clamp(self.d0.min(self.d1), self.d0.max(self.d1))
        } else {
            self.d0
        };
        let span = self.d1 - self.d0;
        if !(span.is_finite() && span != 0.0) {
            return self.p0;
        }
        self.p0 + (v - self.d0) / span * (self.p1 - self.p0)
    }
}

/// Draws a horizontal value axis at `y` with ticks, vertical gridlines up to `grid_top`, and the
/// axis label.
pub fn x_axis(s: &mut String, scale: &Scale, y: f64, grid_top: f64, axis_label: &str) {
    let ticks = nice_ticks(scale.d0, scale.d1, 6);
    let _ = writeln!(
        s,
        "<line x1=\"{}\" y1=\"{y1}\" x2=\"{}\" y2=\"{y1}\" stroke=\"#333333\"/>",
        c(scale.p0),
        c(scale.p1),
        y1 = c(y)
    );
    for &t in &ticks {
        if t < scale.d0 || t > scale.d1 {
            continue;
        }
        let x = c(scale.at(t));
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#e5e5e5\"/>\n\
             <line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#333333\"/>\n\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333333\">{}</text>",
            c(grid_top),
            c(y),
            c(y),
            c(y + 5.0),
            c(y + 18.0),
            tick_text(t, &ticks)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
        c((scale.p0 + scale.p1) / 2.0),
        c(y + 40.0),
        escape_xml(axis_label)
    );
}

/// Draws a vertical value axis at `x`: horizontal gridlines across to `grid_right` with tick
/// labels left of the axis, the axis line, and the axis label turned along the left edge. The
/// scale maps values to heights (`p0` the bottom, `p1` the top of the plot).
pub fn y_axis(s: &mut String, scale: &Scale, x: f64, grid_right: f64, axis_label: &str) {
    // `nice_ticks` stays inside the data interval but for rounding (a top tick of 6 × 0.05 is
    // 0.30000000000000004): no tick is dropped for that, `at` clamps it to the edge.
    let ticks = nice_ticks(scale.d0, scale.d1, 6);
    for &t in &ticks {
        let y = scale.at(t);
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{py}\" x2=\"{}\" y2=\"{py}\" stroke=\"#e5e5e5\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#333333\">{}</text>",
            c(x),
            c(grid_right),
            c(x - 6.0),
            c(y + 4.0),
            tick_text(t, &ticks),
            py = c(y),
        );
    }
    let my = c((scale.p0 + scale.p1) / 2.0);
    let _ = writeln!(
        s,
        "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#333333\"/>\n\
         <text x=\"18\" y=\"{my}\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 18 {my})\">{}</text>",
        c(scale.p1),
        c(scale.p0),
        escape_xml(axis_label),
        x = c(x),
    );
}

/// `n` equal bands (categories, such as time windows) side by side across `[p0, p1]`.
#[derive(Clone, Copy, Debug)]
pub struct Bands {
    /// Number of bands.
    pub n: usize,
    /// Pixel position of the left edge of the first band.
    pub p0: f64,
    /// Pixel position of the right edge of the last band.
    pub p1: f64,
}

impl Bands {
    /// Pixel position of the centre of band `i`.
    pub fn at(&self, i: usize) -> f64 {
        self.p0 + (i as f64 + 0.5) * (self.p1 - self.p0) / self.n.max(1) as f64
    }
}

/// Longest band name drawn by [`band_axis`] before truncation, in characters.
pub const MAX_BAND_NAME_CHARS: usize = 12;

/// Draws a horizontal category axis at `y`: the axis line, the names of the bands under their
/// centres (about ten of them: every k-th when there are more), and the axis label.
pub fn band_axis(s: &mut String, bands: &Bands, names: &[&str], y: f64, axis_label: &str) {
    let _ = writeln!(
        s,
        "<line x1=\"{}\" y1=\"{y1}\" x2=\"{}\" y2=\"{y1}\" stroke=\"#333333\"/>",
        c(bands.p0),
        c(bands.p1),
        y1 = c(y)
    );
    let every = names.len().div_ceil(10).max(1);
    for (i, name) in names.iter().enumerate().step_by(every) {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#333333\">{}</text>",
            c(bands.at(i)),
            c(y + 16.0),
            label_max(name, MAX_BAND_NAME_CHARS)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
        c((bands.p0 + bands.p1) / 2.0),
        c(y + 40.0),
        escape_xml(axis_label)
    );
}

/// Draws a dashed vertical reference line at value `v` of a horizontal `scale` (an average, a
/// threshold), from just above `top` down to `bottom`, with `text` above it.
pub fn x_marker(
    s: &mut String,
    scale: &Scale,
    v: f64,
    top: f64,
    bottom: f64,
    text: &str,
    stroke: &str,
) {
    let x = c(scale.at(v));
    let _ = writeln!(
        s,
        "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{stroke}\" stroke-dasharray=\"5 4\"/>\n\
         <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555555\">{}</text>",
        c(top - 4.0),
        c(bottom),
        c(top - 8.0),
        escape_xml(text),
    );
}

/// Left margin wide enough for the longest (truncated) name at font size 12.
pub fn name_margin<'a>(names: impl Iterator<Item = &'a str>) -> f64 {
    let longest = names
        .map(|n| n.chars().count().min(MAX_NAME_CHARS))
        .max()
        .unwrap_or(0);
    (longest as f64 * 7.0 + 20.0).clamp(90.0, 300.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::assert_well_formed;

    #[test]
    fn no_data_chart_is_well_formed() {
        let svg = no_data("a <b> & c");
        assert_well_formed(&svg);
        assert!(svg.contains("no data"));
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
    }

    #[test]
    fn axes_gridlines_and_markers() {
        let mut s = open("axes", 480.0);
        // A top of 0.25 + 0.05 is one rounding below the sixth tick, 6 × 0.05: it is drawn.
        let ys = Scale {
            d0: 0.0,
            d1: 0.25 + 0.05,
            p0: 410.0,
            p1: 60.0,
        };
        y_axis(&mut s, &ys, 70.0, 620.0, "hit <rate>");
        let bands = Bands {
            n: 25,
            p0: 70.0,
            p1: 620.0,
        };
        let names: Vec<String> = (1..=25).map(|i| format!("2021-window-{i:02}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        band_axis(&mut s, &bands, &names, 410.0, "window");
        let xs = Scale {
            d0: 0.0,
            d1: 2.0,
            p0: 70.0,
            p1: 620.0,
        };
        x_marker(&mut s, &xs, 1.0, 60.0, 410.0, "average & more", "#333333");
        s.push_str("</svg>\n");
        assert_well_formed(&s);
        // Gridlines at 0, 0.05, ..., 0.30, the top one at the top of the plot.
        assert_eq!(s.matches("stroke=\"#e5e5e5\"").count(), 7);
        assert!(s.contains("y1=\"60.00\" x2=\"620.00\" y2=\"60.00\" stroke=\"#e5e5e5\""));
        assert!(s.contains(">0.30</text>") && s.contains(">0.05</text>"));
        assert!(s.contains("hit &lt;rate&gt;"));
        // 25 bands: every third named (9 names), shortened to 12 characters.
        assert_eq!(s.matches(">2021-window…</text>").count(), 9);
        assert_eq!(bands.at(0), 70.0 + 11.0);
        assert!(s.contains("average &amp; more"));
        assert!(s.contains("x1=\"345.00\" y1=\"56.00\" x2=\"345.00\" y2=\"410.00\""));
    }

    #[test]
    fn scale_clamps_and_survives_degenerate_intervals() {
        let s = Scale {
            d0: 0.0,
            d1: 1.0,
            p0: 10.0,
            p1: 110.0,
        };
        assert_eq!(s.at(0.5), 60.0);
        assert_eq!(s.at(2.0), 110.0);
        assert_eq!(s.at(f64::NAN), 10.0);
        let flat = Scale { d1: 0.0, ..s };
        assert_eq!(flat.at(0.3), 10.0);
        assert_eq!(c(f64::INFINITY), "0");
        assert_eq!(tick_text(f64::NAN, &[0.0, 0.1]), "0.0");
    }
}
