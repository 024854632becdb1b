//! SVG primitives shared by the report charts, following the conventions of `borderlens_charts`
//! (whose helpers are private): a self-contained SVG 1.1 document with `xmlns`, `viewBox`,
//! `font-family="sans-serif"` and a `<title>`; text from data XML-escaped; non-finite numbers
//! never written (coordinates fall back to 0, values read `n/a`); empty inputs give a "no data"
//! chart.

use std::fmt::Write as _;

pub(crate) use borderlens_charts::escape_xml;

/// Width of every chart, in user units.
pub(crate) const WIDTH: f64 = 800.0;
/// Space above the plot area (title, legend).
pub(crate) const TOP: f64 = 50.0;
/// Space below the plot area (ticks and axis label).
pub(crate) const BOTTOM: f64 = 60.0;
/// Longest name drawn before truncation, in characters.
const MAX_NAME_CHARS: usize = 40;

/// Colours for lines of several groups (the usual ten-colour palette).
pub(crate) const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// A name shortened to `MAX_NAME_CHARS` characters and escaped.
pub(crate) fn label(name: &str) -> String {
    label_max(name, MAX_NAME_CHARS)
}

/// A name shortened to `max` characters (at least 2) and escaped.
pub(crate) fn label_max(name: &str, max: usize) -> String {
    let max = max.max(2);
    if name.chars().count() > max {
        let short: String = name.chars().take(max - 1).collect();
        escape_xml(&format!("{short}…"))
    } else {
        escape_xml(name)
    }
}

/// Coordinate formatting: two decimals, `0` for a non-finite value.
pub(crate) fn c(v: f64) -> String {
    if v.is_finite() {
        let v = if v == 0.0 { 0.0 } else { v };
        format!("{v:.2}")
    } else {
        "0".to_string()
    }
}

/// Opens the document: root element, `<title>`, white background and visible title.
pub(crate) fn open(title: &str, height: f64) -> String {
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
pub(crate) fn no_data(title: &str) -> String {
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
pub(crate) fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
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
pub(crate) fn tick_text(v: f64, ticks: &[f64]) -> String {
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
pub(crate) struct Scale {
    pub(crate) d0: f64,
    pub(crate) d1: f64,
    pub(crate) p0: f64,
    pub(crate) p1: f64,
}

impl Scale {
    /// Pixel position of `v`.
    pub(crate) fn at(&self, v: f64) -> f64 {
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
pub(crate) fn x_axis(s: &mut String, scale: &Scale, y: f64, grid_top: f64, axis_label: &str) {
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

/// Left margin wide enough for the longest (truncated) name at font size 12.
pub(crate) fn name_margin<'a>(names: impl Iterator<Item = &'a str>) -> f64 {
    let longest = names
        .map(|n| n.chars().count().min(MAX_NAME_CHARS))
        .max()
        .unwrap_or(0);
    (longest as f64 * 7.0 + 20.0).clamp(90.0, 300.0)
}

/// Checks used by the chart tests of every module.
#[cfg(test)]
pub(crate) mod check {
    /// Minimal well-formedness check: balanced, properly nested tags, quoted attributes, only
    /// known entities, a single root, no raw `<`/`&` in text, the SVG root attributes.
    pub(crate) fn assert_well_formed(svg: &str) {
        let bytes = svg.as_bytes();
        let mut stack: Vec<String> = Vec::new();
        let mut roots = 0;
        let mut i = 0;
        let check_entities = |text: &str| {
            let mut rest = text;
            while let Some(p) = rest.find('&') {
                let after = &rest[p..];
                let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| after.starts_with(e));
                assert!(ok, "bad entity near {:?}", &after[..after.len().min(10)]);
                rest = &after[1..];
            }
        };
        while i < bytes.len() {
            if bytes[i] == b'<' {
                let start = i;
                let mut quote: Option<u8> = None;
                i += 1;
                while i < bytes.len() {
                    let b = bytes[i];
                    match quote {
                        Some(q) if b == q => quote = None,
                        Some(_) => assert!(b != b'<', "raw < in attribute"),
                        None if b == b'"' || b == b'\'' => quote = Some(b),
                        None if b == b'>' => break,
                        None => assert!(b != b'<', "nested <"),
                    }
                    i += 1;
                }
                assert!(i < bytes.len(), "unterminated tag at {start}");
                let tag = &svg[start + 1..i];
                check_entities(tag);
                if let Some(name) = tag.strip_prefix('/') {
                    let open = stack.pop().expect("closing tag without opening");
                    assert_eq!(open, name.trim(), "mismatched tags");
                } else {
                    let self_closing = tag.ends_with('/');
                    let name: String = tag
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '/')
                        .collect();
                    assert!(!name.is_empty(), "empty tag name");
                    if stack.is_empty() {
                        roots += 1;
                    }
                    if !self_closing {
                        stack.push(name);
                    }
                }
                i += 1;
            } else {
                let next = svg[i..].find('<').map_or(svg.len(), |p| i + p);
                let text = &svg[i..next];
                check_entities(text);
                if stack.is_empty() {
                    assert!(text.trim().is_empty(), "text outside root: {text:?}");
                }
                i = next;
            }
        }
        assert!(stack.is_empty(), "unclosed tags: {stack:?}");
        assert_eq!(roots, 1, "exactly one root element");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("viewBox=\"0 0 "));
        assert!(svg.contains("font-family=\"sans-serif\""));
    }

    /// No non-finite number was written.
    pub(crate) fn assert_no_nan(svg: &str) {
        for bad in ["NaN", "inf", "Inf"] {
            assert!(!svg.contains(bad), "{bad} in {svg}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_data_chart_is_well_formed() {
        let svg = no_data("a <b> & c");
        check::assert_well_formed(&svg);
        assert!(svg.contains("no data"));
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
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
