//! The PNG plot: spawn rate against the parent's resident memory, one line per variant, for
//! the default options and for close_fds + cwd + session. Text uses an embedded DejaVu Sans,
//! so no system font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::{spawn_medians, Samples};
use crate::VARIANTS;

fn register_font() -> Result<(), String> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        )
        .map_err(|_| "the embedded font cannot be read".to_string());
    });
    result
}

const COLORS: [RGBColor; 10] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0xbc, 0x80, 0x00),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x98, 0xdf, 0x8a),
    RGBColor(0x40, 0x40, 0x40),
];

/// One panel's lines: variant name and its (GiB, spawns/s) points.
type Lines<'a> = Vec<(&'a str, Vec<(f64, f64)>)>;

/// Writes the plot to `path`: spawn rate (log scale) for the default options and for
/// close_fds + cwd + session, then a linear close-up of the default options without the
/// variants that fork.
pub fn spawn_rate(path: &Path, s: &Samples, levels: &[usize]) -> Result<(), String> {
    register_font()?;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let lines = |key: &str| -> Lines<'static> {
        VARIANTS
            .iter()
            .map(|&v| (v, spawn_medians(s, key, levels, v)))
            .collect()
    };
    let default = lines("spawn");
    // The close-up keeps the variants whose rate holds up with memory (no fork).
    let flat: Lines<'static> = default
        .iter()
        .filter(|(_, p)| {
            let first = p.first().map_or(0.0, |x| x.1);
            p.iter().all(|x| x.1 >= first * 0.5)
        })
        .cloned()
        .collect();
    let panels = [
        ("spawn + wait /bin/true, default options", default, true),
        ("close_fds + cwd + new session", lines("spawn_full"), true),
        ("default options, without fork (linear)", flat, false),
    ];
    let max_x = levels.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
    let x_range = -0.04 * max_x.max(0.01)..max_x.max(0.01) * 1.04;

    let root = BitMapBackend::new(path, (2100, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root
        .titled(
            "popen-bench: spawn rate vs parent resident memory (median of batches)",
            ("sans-serif", 26),
        )
        .map_err(|x| e(&x))?;
    let areas = root.split_evenly((1, 3));
    for (area, (title, lines, log)) in areas.iter().zip(panels.iter()) {
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for &(_, y) in lines.iter().flat_map(|(_, p)| p.iter()) {
            lo = lo.min(y);
            hi = hi.max(y);
        }
        if lo > hi {
            (lo, hi) = (1.0, 10.0);
        }
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(*title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70);
        let legend = SeriesLabelPosition::Coordinate(330, 150);
        if *log {
            let mut chart = builder
                .build_cartesian_2d(x_range.clone(), ((lo / 1.6).max(0.1)..hi * 1.6).log_scale())
                .map_err(|x| e(&x))?;
            draw(&mut chart, lines, "spawns/s (log scale)", legend).map_err(|x| e(&x))?;
        } else {
            let pad = (hi - lo).max(1.0) * 0.15;
            let mut chart = builder
                .build_cartesian_2d(x_range.clone(), (lo - pad).max(0.0)..hi + pad)
                .map_err(|x| e(&x))?;
            draw(
                &mut chart,
                lines,
                "spawns/s",
                SeriesLabelPosition::LowerRight,
            )
            .map_err(|x| e(&x))?;
        }
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// Draws the mesh, one line with points per variant, and the legend.
fn draw<'a, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    lines: &Lines<'_>,
    y_desc: &str,
    legend: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc("parent RSS (GiB), allocated and touched")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    for (name, pts) in lines.iter() {
        if pts.is_empty() {
            continue;
        }
        let i = VARIANTS.iter().position(|v| v == name).unwrap_or(0);
        let color = COLORS[i % COLORS.len()];
        let width = if name.starts_with("popen") { 3 } else { 2 };
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
