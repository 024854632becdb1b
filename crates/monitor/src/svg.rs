//! The SVG primitives of `borderlens_charts::kit`, under the names the report charts use.

pub(crate) use borderlens_charts::escape_xml;
pub(crate) use borderlens_charts::kit::{
    band_axis, c, label, label_max, name_margin, nice_ticks, no_data, open, x_axis, x_marker,
    y_axis, Bands, Scale, BOTTOM, PALETTE, TOP, WIDTH,
};

/// Checks used by the chart tests of every module.
#[cfg(test)]
pub(crate) use borderlens_charts::check;
