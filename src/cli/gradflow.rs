//! `wengert gradflow`: the loss gradient at the first layer relative to the
//! last, at initialisation, for plain and residual stacks of growing depth.

use std::path::Path;
use std::process::ExitCode;
use wengert::core::{Error, Result};
use wengert::nn::checkpoint::write_atomic;
use wengert::plot::{line_chart, Chart, Series};
use wengert::resnet::gradflow::{measure, Setup};

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

/// The four nets of the table, in column order.
const NETS: [(&str, bool, bool); 4] =
    [("plain", false, false), ("plain+BN", false, true), ("residual", true, false), ("residual+BN", true, true)];

/// Measures every net at every depth; prints the table, writes
/// `gradflow.csv` and `gradflow.png` into `out`.
pub fn run(depths: &[usize], out: &Path, seed: u64) -> Result<ExitCode> {
    if let Some(d) = depths.iter().find(|d| *d % 2 != 0) {
        return Err(Error::argument("gradflow", "--depths", format!("{d} is odd; residual blocks hold two layers")));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::Io { path: out.display().to_string(), detail: e.to_string() })?;
    println!("‖∂L/∂W(first conv)‖ / ‖∂L/∂W(last conv)‖ at initialisation (He-normal weights, f64)");
    println!("{:>6} {:>12} {:>12} {:>12} {:>12}", "depth", NETS[0].0, NETS[1].0, NETS[2].0, NETS[3].0);
    let mut rows = vec!["depth,net,first,last,ratio".to_string()];
    let mut series: Vec<Series> = NETS.iter().map(|n| Series { name: n.0.into(), points: Vec::new() }).collect();
    for &depth in depths {
        let mut line = format!("{depth:>6}");
        for (i, &(name, residual, norm)) in NETS.iter().enumerate() {
            let flow = measure(&Setup { depth, residual, norm, seed, ..Setup::default() })?;
            line += &format!(" {:>12.3e}", flow.ratio());
            rows.push(format!("{depth},{name},{:e},{:e},{:e}", flow.first, flow.last, flow.ratio()));
            series[i].points.push((depth as f64, flow.ratio()));
        }
        println!("{line}");
    }
    write_atomic(&out.join("gradflow.csv"), (rows.join("\n") + "\n").as_bytes())?;
    let chart = Chart {
        title: "gradient at the first layer / at the last, at initialisation".into(),
        x_label: "depth (convolutions)".into(),
        y_label: "ratio".into(),
        log_x: true,
        log_y: true,
        series,
    };
    line_chart(&out.join("gradflow.png"), &chart)?;
    println!("wrote {} and {}", out.join("gradflow.csv").display(), out.join("gradflow.png").display());
    Ok(ExitCode::SUCCESS)
}
