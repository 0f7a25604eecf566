//! PNG charts: written whole (temporary file, then rename), errors not panics.

// The charts are the program's, not the library's: included by path.
#[allow(dead_code)]
#[path = "../src/cli/plot.rs"]
mod plot;

use plot::{line_chart, Chart, Series};

fn chart() -> Chart {
    Chart {
        title: "test".into(),
        x_label: "x".into(),
        y_label: "y".into(),
        log_y: true,
        series: vec![
            Series { name: "a".into(), points: vec![(1.0, 1.0), (2.0, 10.0), (3.0, 0.0), (4.0, f64::NAN)] },
            Series { name: "empty".into(), points: vec![] },
        ],
        ..Default::default()
    }
}

#[test]
fn a_chart_is_a_png_and_leaves_no_temporary_file() {
    let dir = std::env::temp_dir().join(format!("wengert-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chart.png");
    line_chart(&path, &chart()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("chart.png")]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_path_is_an_error() {
    let err = line_chart(std::path::Path::new("/nonexistent-folder/chart.png"), &chart()).unwrap_err();
    assert!(err.to_string().contains("/nonexistent-folder/chart.png"), "{err}");
}
