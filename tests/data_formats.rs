//! The bundled MNIST, and what happens with damaged files.

use std::path::Path;
use wengert::data::{Dataset, Split};

fn mnist() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))
}

#[test]
fn bundled_mnist_has_the_published_counts() {
    let train = Dataset::load(mnist(), Split::Train).unwrap();
    let test = Dataset::load(mnist(), Split::Test).unwrap();
    assert_eq!((train.len(), train.rows(), train.cols()), (60_000, 28, 28));
    assert_eq!(test.len(), 10_000);
    let mut counts = [0usize; 10];
    train.labels().iter().for_each(|&l| counts[l as usize] += 1);
    // The training set's label histogram, as published with MNIST.
    assert_eq!(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
}

#[test]
fn damaged_files_are_named() {
    let dir = std::env::temp_dir().join(format!("wengert-idx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let labels = std::fs::read(mnist().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let images = std::fs::read(mnist().join("t10k-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), &labels).unwrap();
    // A gzip stream cut in half.
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), &images[..images.len() / 2]).unwrap();
    let e = Dataset::load(&dir, Split::Test).unwrap_err().to_string();
    assert!(e.contains("t10k-images-idx3-ubyte.gz") && e.contains("gzip data is damaged"), "{e}");
    // Missing files.
    let e = Dataset::load(&dir, Split::Train).unwrap_err().to_string();
    assert!(e.contains("no train-images-idx3-ubyte or train-images-idx3-ubyte.gz"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
