//! PNG charts: the training curves and the confusion matrix of `wengert
//! train`, and the plots of `wengert gradflow` and `wengert degradation`.
//!
//! Text is drawn with DejaVu Sans, compiled into the binary (its licence is
//! in `assets/fonts/`), so a chart needs no system fonts or libraries. The
//! file is written atomically: drawn to a temporary file beside the target,
//! then renamed over it.

use plotters::coord::combinators::IntoLogRange;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;
use std::ops::Range;
use std::path::Path;
use std::sync::Once;
use wengert_core::{Error, Result};
use wengert_train::report::Confusion;

/// Colours that stay apart on white (matplotlib's first six).
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// `(x, y)` points in order of x.
    pub points: Vec<(f64, f64)>,
}

/// What to draw.
#[derive(Clone, Debug, Default)]
pub struct Chart {
    /// The caption.
    pub title: String,
    /// The x-axis label.
    pub x_label: String,
    /// The y-axis label.
    pub y_label: String,
    /// Plot log₁₀ x (the label says so).
    pub log_x: bool,
    /// Plot log₁₀ y (the label says so).
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io { path: path.display().to_string(), detail: e.to_string() }
}

/// Draws `chart` into the PNG file `path` (800×500 pixels). Points that are
/// not finite, or not positive on a logarithmic axis, are left out.
pub fn line_chart(path: &Path, chart: &Chart) -> Result<()> {
    line_charts(path, std::slice::from_ref(chart))
}

/// Draws `charts` side by side into the PNG file `path` (800×500 pixels each).
pub fn line_charts(path: &Path, charts: &[Chart]) -> Result<()> {
    png(path, (800 * charts.len().max(1) as u32, 500), |root| {
        for (area, chart) in root.split_evenly((1, charts.len().max(1))).iter().zip(charts) {
            panel(area, chart)?;
        }
        Ok(())
    })
}

/// Draws a confusion matrix into the PNG file `path`: a row per true
/// class, a column per predicted one, each cell shaded by its share of
/// the row (so every class reads alike, however many images it has) and
/// labelled with its count when there are at most 20 classes.
pub fn confusion_png(path: &Path, title: &str, matrix: &Confusion, names: &[String]) -> Result<()> {
    let k = matrix.classes().max(1);
    let side = (40 * k as u32).clamp(400, 1600);
    png(path, (side + 160, side + 120), |root| {
        let mut c = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(100)
            .build_cartesian_2d((0..k as i32 - 1).into_segmented(), (0..k as i32 - 1).into_segmented())?;
        // Segments 0 ..= k−1, one per class; a label every few for many classes.
        let every = k.div_ceil(25).max(1) as i32;
        // Rows from the top: true class 0 first.
        let label = |v: &SegmentValue<i32>, flip: bool| match v {
            SegmentValue::CenterOf(v) if *v < k as i32 && v % every == 0 => {
                let class = if flip { k as i32 - 1 - v } else { *v } as usize;
                names.get(class).cloned().unwrap_or_else(|| class.to_string())
            }
            _ => String::new(),
        };
        c.configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .x_labels(k + 1)
            .y_labels(k + 1)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .label_style(("sans-serif", 12))
            .draw()?;
        let centred = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
        for t in 0..k {
            let total: u64 = (0..k).map(|p| matrix.count(t, p)).sum();
            let row = (k - 1 - t) as i32;
            for p in 0..k {
                let n = matrix.count(t, p);
                let share = if total > 0 { n as f64 / total as f64 } else { 0.0 };
                let shade = (255.0 * (1.0 - share)) as u8;
                let col = p as i32;
                let cell = [
                    (SegmentValue::Exact(col), SegmentValue::Exact(row)),
                    (SegmentValue::Exact(col + 1), SegmentValue::Exact(row + 1)),
                ];
                c.draw_series(std::iter::once(Rectangle::new(cell, RGBColor(shade, shade, 255).filled())))?;
                if k <= 20 && n > 0 {
                    let colour = if share > 0.5 { WHITE } else { BLACK };
                    let at = (SegmentValue::CenterOf(col), SegmentValue::CenterOf(row));
                    c.draw_series(std::iter::once(Text::new(n.to_string(), at, centred.clone().color(&colour))))?;
                }
            }
        }
        Ok(())
    })
}

/// Draws with `draw` into a `size` PNG written atomically at `path`.
fn png(path: &Path, size: (u32, u32), draw: impl FnOnce(&Area<'_>) -> DrawResult) -> Result<()> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The font is compiled in and known to parse; should it not, the
        // chart is drawn without text rather than not at all.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    // The encoder picks the format from the extension, so the temporary
    // file ends in .png too.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.png"));
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| io_error(path, e))?;
        draw(&root).map_err(|e| io_error(path, e))?;
        root.present().map_err(|e| io_error(path, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = std::result::Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

/// One axis's value range and scale.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    /// The range with a margin: 5% of it on a linear axis, 5% of its
    /// decades on a log axis, which also reaches down to the power of ten
    /// below when the values span none, so that a labelled tick (1, 10, 100
    /// …) is always in view.
    fn padded(&self) -> Range<f64> {
        if self.log {
            let (a, b) = (self.lo.log10(), self.hi.log10());
            let pad = ((b - a) * 0.05).max(0.02);
            let low = if b.floor() < a { a.floor() } else { a - pad };
            10f64.powf(low)..10f64.powf(b + pad)
        } else {
            let pad = if self.hi > self.lo { (self.hi - self.lo) * 0.05 } else { 0.5 };
            (self.lo - pad)..(self.hi + pad)
        }
    }
}

/// A tick's label: the value as a person writes it (`20`, `0.5`, `1e17`),
/// on log axes as on linear ones, as the paper's figures label them.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.0e}");
        return s;
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn panel(area: &Area<'_>, chart: &Chart) -> DrawResult {
    // A log axis shows positive values only.
    let shown = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
    let series: Vec<(String, Vec<(f64, f64)>)> = chart
        .series
        .iter()
        .map(|s| {
            let pts = s.points.iter().copied().filter(|&(x, y)| shown(x, chart.log_x) && shown(y, chart.log_y));
            (s.name.clone(), pts.collect())
        })
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in series.iter().flat_map(|(_, p)| p.iter()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (1.0, 10.0, 1.0, 10.0);
    }
    let x = Axis { lo: x0, hi: x1, log: chart.log_x };
    let y = Axis { lo: y0, hi: y1, log: chart.log_y };
    match (x.log, y.log) {
        (false, false) => draw(area, chart, series, x.padded(), y.padded()),
        (false, true) => draw(area, chart, series, x.padded(), y.padded().log_scale()),
        (true, false) => draw(area, chart, series, x.padded().log_scale(), y.padded()),
        (true, true) => draw(area, chart, series, x.padded().log_scale(), y.padded().log_scale()),
    }
}

/// Draws the series on axes of the given ranges (linear or logarithmic).
fn draw<X, Y>(area: &Area<'_>, chart: &Chart, series: Vec<(String, Vec<(f64, f64)>)>, x: X, y: Y) -> DrawResult
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut c = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)?;
    c.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (name, pts)) in series.into_iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()].to_rgba();
        let style = ShapeStyle::from(colour).stroke_width(2);
        c.draw_series(LineSeries::new(pts.iter().copied(), style))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        if pts.len() <= 60 {
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        }
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
}
