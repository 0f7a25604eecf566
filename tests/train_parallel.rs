//! Data-parallel training on ranks that are threads of this process
//! (`LocalGroup`): the same algorithm as over MPI, checked without MPI.

use std::sync::Arc;
use wengert::core::collective::{Collective, LocalGroup};
use wengert::data::{Augment, Dataset, Loader};
use wengert::nn::{StateRef, Visit};
use wengert::resnet::zoo::ResNet;
use wengert::train::parallel::Parallel;
use wengert::train::report::Score;
use wengert::train::train::{Config, Trainer};

/// 100 noisy 8×8 two-channel images of 4 classes.
fn images() -> Dataset {
    let pixels = (0..100 * 128).map(|i| ((i * 37 + i / 128 * 11) % 251) as u8).collect();
    Dataset::with_channels(pixels, (0..100).map(|i| (i % 4) as u8).collect(), 2, 8, 8).unwrap()
}

/// Steps of the sync-bn comparison: 20, into the third of the run's four
/// epochs of 7 batches.
const STEPS: usize = 20;

fn loader(batch: usize) -> Loader {
    Loader::new(images(), batch, 3).unwrap().with_augment(Augment::default().with_pad(1).with_flip(true)).unwrap()
}

fn trainer() -> Trainer<ResNet<f32>> {
    let model = ResNet::by_name("resnet8", 2, 4, &mut wengert::core::rng(7)).unwrap();
    Trainer::new(model, Config::default().with_epochs(4).with_warmup(2), &loader(16)).unwrap()
}

/// Every parameter and buffer, flattened in visiting order.
fn state(t: &Trainer<ResNet<f32>>) -> Vec<f32> {
    let mut v = Vec::new();
    t.model.visit("", &mut |_, s| match s {
        StateRef::Param(p) => v.extend_from_slice(p.value().data()),
        StateRef::Buffer(b) => v.extend_from_slice(b.data()),
        StateRef::Count(_) => {}
    });
    v
}

/// Trains the first `steps` steps on `ranks` threads; returns each rank's
/// final state and the steps' scores.
fn train_on(ranks: usize, sync_bn: bool, steps: usize) -> Vec<(Vec<f32>, Vec<Score>)> {
    let group = LocalGroup::new(ranks).unwrap();
    std::thread::scope(|s| {
        let jobs: Vec<_> = group
            .into_iter()
            .map(|g| {
                s.spawn(move || {
                    let mut t = trainer();
                    let g: Arc<dyn Collective> = Arc::new(g);
                    let mut p = Parallel::new(g.clone()).with_sync_bn(sync_bn);
                    p.bucket_bytes = 4096; // several buckets even for this small net
                    t.data_parallel(p).unwrap();
                    let share = loader(16).shard(g.rank(), g.size()).unwrap();
                    let n = share.batches();
                    let scores: Vec<Score> =
                        (0..steps).map(|i| t.step(&share.batch((i / n) as u64, i % n).unwrap()).unwrap()).collect();
                    (state(&t), scores)
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    })
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let num = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max);
    let den = a.iter().map(|x| x.abs() as f64).fold(0.0, f64::max);
    num / den
}

#[test]
fn two_ranks_with_sync_bn_compute_what_one_process_computes() {
    let one = train_on(1, true, STEPS);
    let two = train_on(2, true, STEPS);
    assert_eq!(two[0].0, two[1].0, "the ranks' models stay identical");
    let d = max_rel_diff(&one[0].0, &two[0].0);
    assert!(d < 1e-4, "max-norm relative difference {d:e}");
    assert!(d > 0.0 || one[0].0 == two[0].0);
    // The scores are those of the whole batch.
    for (a, b) in one[0].1.iter().zip(&two[0].1) {
        assert_eq!(a.images, b.images);
        assert!((a.loss - b.loss).abs() < 1e-4 * a.loss.abs(), "{a:?} {b:?}");
        assert_eq!(a.correct(), b.correct());
    }
}

#[test]
fn without_sync_bn_the_ranks_stay_identical_but_differ_from_one_process() {
    let one = train_on(1, false, 4);
    let three = train_on(3, false, 4);
    assert!(three.iter().all(|r| r.0 == three[0].0), "every rank holds the same model");
    // Per-rank batch statistics are another computation.
    assert!(max_rel_diff(&one[0].0, &three[0].0) > 1e-4);
}

#[test]
fn the_split_evaluation_counts_every_image_once() {
    let test = Loader::new(images(), 30, 0).unwrap().in_order();
    let mut alone = trainer();
    let want = alone.evaluate(&test).unwrap();
    let group = LocalGroup::new(3).unwrap();
    let got: Vec<Score> = std::thread::scope(|s| {
        let jobs: Vec<_> = group
            .into_iter()
            .map(|g| {
                let test = test.clone();
                s.spawn(move || {
                    let mut t = trainer();
                    t.data_parallel(Parallel::new(Arc::new(g))).unwrap();
                    t.evaluate(&test).unwrap()
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    for s in got {
        assert_eq!(s.images, 100);
        assert_eq!(s.correct(), want.correct());
        assert!((s.loss - want.loss).abs() < 1e-5 * want.loss, "{s:?} {want:?}");
    }
}

#[test]
fn ranks_start_from_rank_0s_weights_and_stop_together() {
    let group = LocalGroup::new(2).unwrap();
    let out: Vec<(Vec<f32>, usize)> = std::thread::scope(|s| {
        let jobs: Vec<_> = group
            .into_iter()
            .map(|g| {
                s.spawn(move || {
                    let rank = g.rank();
                    // Rank 1 starts from other weights: rank 0's replace them.
                    let model = ResNet::by_name("resnet8", 2, 4, &mut wengert::core::rng(rank as u64)).unwrap();
                    let mut t = Trainer::new(model, Config::default(), &loader(16)).unwrap();
                    t.data_parallel(Parallel::new(Arc::new(g))).unwrap();
                    // Only rank 1 asks to stop, after its second step.
                    let mut steps = 0;
                    t.epoch(&loader(16), |_, _| {
                        steps += 1;
                        if rank == 1 && steps == 2 {
                            std::ops::ControlFlow::Break(())
                        } else {
                            std::ops::ControlFlow::Continue(())
                        }
                    })
                    .unwrap();
                    (state(&t), t.iteration)
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    assert_eq!(out[0], out[1]);
    assert_eq!(out[0].1, 2, "both stopped after the second step");
}

#[test]
fn a_batch_that_does_not_split_evenly_is_refused() {
    let group = LocalGroup::new(3).unwrap();
    let errors: Vec<String> = std::thread::scope(|s| {
        let jobs: Vec<_> = group
            .into_iter()
            .map(|g| {
                s.spawn(move || {
                    let mut t = trainer();
                    t.data_parallel(Parallel::new(Arc::new(g))).unwrap();
                    t.epoch(&loader(16), |_, _| ()).unwrap_err().to_string()
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    assert!(errors.iter().all(|e| e == "train: batch_size: the batch of 16 does not split evenly across 3 ranks"));
}
