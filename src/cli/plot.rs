//! PNG charts: the training curves and the confusion matrix of `wengert
//! train`, and the plots of `wengert gradflow` and `wengert degradation`.
//!
//! Text is drawn with DejaVu Sans, compiled into the binary (its licence is
//! in `assets/fonts/`), so a chart needs no system fonts or libraries. The
//! file is written atomically: drawn to a temporary file beside the target,
//! then renamed over it.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;
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

fn panel(area: &Area<'_>, chart: &Chart) -> DrawResult {
    let map = |v: f64, log: bool| if log { (v > 0.0).then(|| v.log10()) } else { Some(v) };
    let series: Vec<(String, Vec<(f64, f64)>)> = chart
        .series
        .iter()
        .map(|s| {
            let pts = s
                .points
                .iter()
                .filter_map(|&(x, y)| Some((map(x, chart.log_x)?, map(y, chart.log_y)?)))
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            (s.name.clone(), pts)
        })
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in series.iter().flat_map(|(_, p)| p.iter()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let pad = |a: f64, b: f64| if b - a > 0.0 { (b - a) * 0.05 } else { 0.5 };
    let (px, py) = (pad(x0, x1), pad(y0, y1));
    let label = |l: &str, log: bool| if log { format!("log10 {l}") } else { l.to_string() };
    let mut c = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))?;
    c.configure_mesh()
        .x_desc(label(&chart.x_label, chart.log_x))
        .y_desc(label(&chart.y_label, chart.log_y))
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
