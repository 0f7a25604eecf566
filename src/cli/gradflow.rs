//! `wengert gradflow`: the loss gradient at the first layer relative to the
//! last, at initialisation, for plain and residual stacks of growing depth.

use super::plot::{line_chart, Chart, Series};
use std::path::Path;
use std::process::ExitCode;
use wengert::core::{Error, Result};
use wengert::nn::checkpoint::write_atomic;
use wengert::nn::layer::Cell;
use wengert::resnet::gradflow::{measure, measure_recurrent, RecurrentSetup, Setup};

/// Parses a comma-separated list of positive integers.
pub fn parse_list(option: &str, s: &str) -> Result<Vec<usize>> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse().ok().filter(|&n| n > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::argument("gradflow", option, format!("'{s}' is not a list of positive integers")))?;
    if v.is_empty() {
        return Err(Error::argument("gradflow", option, "the list is empty"));
    }
    Ok(v)
}

/// One experiment: a table with a row per size and a column per net.
struct Table<'a> {
    /// The heading printed above the table.
    heading: &'a str,
    /// What the rows vary ("depth", "T").
    size: &'a str,
    /// The column names.
    nets: &'a [&'a str],
    /// File stem of the CSV and PNG.
    stem: &'a str,
    /// The chart's title and x-axis label.
    title: &'a str,
    x_label: &'a str,
}

/// Measures `flow(size, column)` for every size and column; prints the
/// table, writes `STEM.csv` and `STEM.png` into `out`.
fn tabulate(
    t: &Table<'_>,
    sizes: &[usize],
    out: &Path,
    flow: impl Fn(usize, usize) -> Result<wengert::resnet::gradflow::Flow>,
) -> Result<ExitCode> {
    std::fs::create_dir_all(out).map_err(|e| Error::Io { path: out.display().to_string(), detail: e.to_string() })?;
    out!("{}", t.heading);
    out!("{:>6}{}", t.size, t.nets.iter().map(|n| format!(" {n:>12}")).collect::<String>());
    let mut rows = vec![format!("{},net,first,last,ratio", t.size)];
    let mut series: Vec<Series> = t.nets.iter().map(|n| Series { name: n.to_string(), points: Vec::new() }).collect();
    for &size in sizes {
        let mut line = format!("{size:>6}");
        for (i, name) in t.nets.iter().enumerate() {
            let f = flow(size, i)?;
            line += &format!(" {:>12.3e}", f.ratio());
            rows.push(format!("{size},{name},{:e},{:e},{:e}", f.first, f.last, f.ratio()));
            series[i].points.push((size as f64, f.ratio()));
        }
        out!("{line}");
    }
    let (csv, png) = (out.join(format!("{}.csv", t.stem)), out.join(format!("{}.png", t.stem)));
    write_atomic(&csv, (rows.join("\n") + "\n").as_bytes())?;
    let chart = Chart {
        title: t.title.into(),
        x_label: t.x_label.into(),
        y_label: "ratio".into(),
        log_x: true,
        log_y: true,
        series,
    };
    line_chart(&png, &chart)?;
    out!("wrote {} and {}", csv.display(), png.display());
    Ok(ExitCode::SUCCESS)
}

/// The four nets of the table, in column order: (residual, batch norm).
const NETS: [(&str, bool, bool); 4] =
    [("plain", false, false), ("plain+BN", false, true), ("residual", true, false), ("residual+BN", true, true)];

/// Measures every net at every depth; prints the table, writes
/// `gradflow.csv` and `gradflow.png` into `out`.
pub fn run(depths: &[usize], out: &Path, seed: u64) -> Result<ExitCode> {
    if let Some(d) = depths.iter().find(|d| *d % 2 != 0) {
        return Err(Error::argument("gradflow", "--depths", format!("{d} is odd; residual blocks hold two layers")));
    }
    let table = Table {
        heading: "‖∂L/∂W(first conv)‖ / ‖∂L/∂W(last conv)‖ at initialisation (He-normal weights, f64)",
        size: "depth",
        nets: &NETS.map(|n| n.0),
        stem: "gradflow",
        title: "gradient at the first layer / at the last, at initialisation",
        x_label: "depth (convolutions)",
    };
    tabulate(&table, depths, out, |depth, i| {
        let (_, residual, norm) = NETS[i];
        measure(&Setup { depth, residual, norm, seed, ..Setup::default() })
    })
}

/// The three recurrences of the `--rnn` table, in column order.
const CELLS: [(&str, Cell); 3] = [("rnn", Cell::Elman), ("lstm", Cell::Lstm), ("residual_rnn", Cell::Residual)];

/// `--rnn`: `‖∂L/∂h(1)‖ / ‖∂L/∂h(T)‖` against `T` for the vanilla RNN, the
/// LSTM and the residual recurrence; table, `gradflow_rnn.csv`, `gradflow_rnn.png`.
pub fn run_recurrent(steps: &[usize], out: &Path, seed: u64) -> Result<ExitCode> {
    if let Some(t) = steps.iter().find(|t| **t < 2) {
        return Err(Error::argument("gradflow", "--steps", format!("{t} steps; need at least 2")));
    }
    let table = Table {
        heading: "‖∂L/∂h(1)‖ / ‖∂L/∂h(T)‖ at initialisation (PyTorch's default weights, 64 units, f64)",
        size: "T",
        nets: &CELLS.map(|c| c.0),
        stem: "gradflow_rnn",
        title: "gradient at the first state / at the last, at initialisation",
        x_label: "time steps T",
    };
    tabulate(&table, steps, out, |t, i| {
        measure_recurrent(&RecurrentSetup { cell: CELLS[i].1, steps: t, seed, ..RecurrentSetup::default() })
    })
}
