//! A short training run lowers the loss, and evaluation and resuming work,
//! on a small slice of the bundled MNIST (seconds, not minutes).

use std::path::Path;
use wengert::data::{Dataset, Loader, Split};
use wengert::resnet::zoo::ResNet;
use wengert::train::report::Score;
use wengert::train::train::{Config, Trainer};

fn loader(n: usize) -> Loader {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"));
    Loader::new(Dataset::load(dir, Split::Train).unwrap().take(n), 32, 0).unwrap()
}

fn trainer(data: &Loader) -> Trainer {
    let model = ResNet::<f32>::by_name("resnet8", 1, 10, &mut wengert::core::rng(0)).unwrap();
    Trainer::new(model, Config::default().with_epochs(3).with_lr(0.1).with_weight_decay(0.0).with_warmup(5), data)
        .unwrap()
}

#[test]
fn a_short_run_lowers_the_loss() {
    let data = loader(640);
    let mut t = trainer(&data);
    let first = t.epoch(&data, |_, _| {}).unwrap();
    t.epoch(&data, |_, _| {}).unwrap();
    let third = t.epoch(&data, |_, _| {}).unwrap();
    assert!(third.loss < 0.7 * first.loss, "loss {} then {}", first.loss, third.loss);
    assert!(third.accuracy > first.accuracy);
    let mut eval = loader(320);
    eval.shuffle = false;
    let s = t.evaluate(&eval).unwrap();
    // Evaluation mode (running statistics) is well above chance (10%) after 60 steps.
    assert!(s.accuracy > 0.3 && s.images == 320, "{s:?}");
}

#[test]
fn a_resumed_run_continues_exactly() {
    let data = loader(128);
    let dir = std::env::temp_dir().join(format!("wengert-train-{}", std::process::id()));
    let mut straight = trainer(&data);
    straight.epoch(&data, |_, _| {}).unwrap();
    straight.epoch(&data, |_, _| {}).unwrap();

    let mut first = trainer(&data);
    first.epoch(&data, |_, _| {}).unwrap();
    first.save(&dir).unwrap();
    let mut resumed = trainer(&data);
    resumed.resume(&dir).unwrap();
    assert_eq!(resumed.position(), (1, 0));
    resumed.epoch(&data, |_, _| {}).unwrap();
    let state = |t: &Trainer| {
        let mut v = Vec::new();
        wengert::nn::Visit::visit(&t.model, "", &mut |n, s| {
            if let wengert::nn::StateRef::Param(p) = s {
                v.push((n, p.value().to_vec()));
            }
        });
        v
    };
    assert_eq!(state(&resumed), state(&straight));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn predict_writes_the_models_logits() {
    use std::collections::BTreeMap;
    use wengert::core::{Tape, Tensor};
    use wengert::nn::checkpoint::{read_tensors, save_model, write_tensors};
    use wengert::nn::{Module, Step};
    let dir = std::env::temp_dir().join(format!("wengert-predict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut net = ResNet::<f32>::by_name("resnet8", 1, 10, &mut wengert::core::rng(4)).unwrap();
    save_model(&net, &dir.join("w.safetensors")).unwrap();
    let x = Tensor::<f32>::normal([2, 1, 12, 12], 0.0, 1.0, &mut wengert::core::rng(5)).unwrap();
    write_tensors(&BTreeMap::from([("input".to_string(), x.clone())]), &dir.join("in.safetensors")).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_wengert"))
        .args(["predict", "--model", "resnet8", "--classes", "10"])
        .arg("--weights")
        .arg(dir.join("w.safetensors"))
        .arg("--input")
        .arg(dir.join("in.safetensors"))
        .arg("--output")
        .arg(dir.join("out.safetensors"))
        .status()
        .unwrap();
    assert!(status.success());
    let got = read_tensors::<f32>(&dir.join("out.safetensors")).unwrap().remove("logits").unwrap();
    let tape = Tape::new();
    let want = net.forward(&mut Step::eval(&tape), tape.constant(x)).unwrap().value().unwrap();
    assert_eq!(got, want);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Sequential MNIST: each recurrent classifier, read row by row, learns
/// (Adam, clipped gradients, as `wengert train --model rnn|lstm|residual_rnn`).
#[test]
fn recurrent_classifiers_learn_sequential_mnist() {
    use wengert::resnet::registry::Model;
    let data = loader(1280);
    for name in ["rnn", "lstm", "residual_rnn"] {
        let model = name.parse::<Model>().unwrap().build::<f32>((1, 28, 28), 10, &mut wengert::core::rng(0)).unwrap();
        let optimizer = wengert::train::train::OptimizerKind::Adam;
        let config = Config::default()
            .with_epochs(3)
            .with_lr(0.002)
            .with_weight_decay(0.0)
            .with_warmup(5)
            .with_optimizer(optimizer);
        let mut t = Trainer::new(model, config, &data).unwrap();
        t.clip = Some(1.0);
        let first = t.epoch(&data, |_, _| {}).unwrap();
        t.epoch(&data, |_, _| {}).unwrap();
        let third = t.epoch(&data, |_, _| {}).unwrap();
        assert!(third.loss < 0.8 * first.loss, "{name}: loss {} then {}", first.loss, third.loss);
        assert!(third.accuracy > 0.25, "{name}: {third:?}");
    }
}

#[test]
fn vanilla_and_lstm_gradients_vanish_through_time_at_initialisation() {
    use wengert::nn::layer::Cell;
    use wengert::resnet::gradflow::{measure_recurrent, RecurrentSetup};
    let ratio =
        |cell| measure_recurrent(&RecurrentSetup { cell, steps: 100, ..RecurrentSetup::default() }).unwrap().ratio();
    // 100 steps at PyTorch's default initialisation: the vanilla RNN and the
    // LSTM pass back less than 10⁻¹⁰ of the signal; the residual
    // recurrence's identity path keeps it from vanishing.
    assert!(ratio(Cell::Elman) < 1e-10);
    assert!(ratio(Cell::Lstm) < 1e-10);
    assert!(ratio(Cell::Residual) > 1.0);
    assert!(measure_recurrent(&RecurrentSetup { steps: 1, ..RecurrentSetup::default() }).is_err());
}

/// Stops after `at` steps of the run (counted across its epochs).
struct StopAt {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    steps: usize,
    at: usize,
}

impl wengert::train::run::Observer for StopAt {
    fn step(&mut self, _: &wengert::train::report::Score, _: f64) {
        self.steps += 1;
        if self.steps == self.at {
            self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A run stopped by its flag in the middle of an epoch, then resumed,
/// ends with the model and the step log of an uninterrupted run.
#[test]
fn a_stopped_run_resumes_to_the_same_model_and_log() {
    use wengert::train::run::{Outcome, Run, METRICS, STEPS};
    let data = loader(320);
    let mut test = loader(64);
    test.shuffle = false;
    let root = std::env::temp_dir().join(format!("wengert-run-{}", std::process::id()));
    let (a, b) = (root.join("straight"), root.join("stopped"));
    let mut straight = Run::new(trainer(&data), &data, &test).save_to(&a);
    straight.log_every = 3;
    let Outcome::Finished { test: score } = straight.run(&mut ()).unwrap() else { panic!("nothing stops it") };
    assert_eq!(straight.log().epochs().len(), 3);
    assert_eq!(straight.log().epochs()[2].test, Score { images: 64, ..score });

    let mut stopped = Run::new(trainer(&data), &data, &test).save_to(&b);
    stopped.log_every = 3;
    let mut observer = StopAt { flag: stopped.stop_flag(), steps: 0, at: 14 };
    let outcome = stopped.run(&mut observer).unwrap();
    assert_eq!(outcome, Outcome::Stopped { iteration: 14, epoch_done: false });
    assert_eq!(stopped.log().epochs().len(), 1);
    let mut resumed = Run::new(trainer(&data), &data, &test).save_to(&b);
    resumed.log_every = 3;
    resumed.resume().unwrap();
    assert_eq!(resumed.trainer().iteration, 14);
    assert!(matches!(resumed.run(&mut ()).unwrap(), Outcome::Finished { .. }));

    let params = |t: &Trainer| {
        let mut v = Vec::new();
        wengert::nn::Visit::visit(&t.model, "", &mut |n, s| {
            if let wengert::nn::StateRef::Param(p) = s {
                v.push((n, p.value().to_vec()));
            }
        });
        v
    };
    assert_eq!(params(resumed.trainer()), params(straight.trainer()));
    let steps = |d: &Path| std::fs::read_to_string(d.join(STEPS)).unwrap();
    assert_eq!(steps(&a), steps(&b));
    // metrics.csv alike but for the speed column.
    let metrics = |d: &Path| {
        let text = std::fs::read_to_string(d.join(METRICS)).unwrap();
        text.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(metrics(&a).len(), 4);
    assert_eq!(metrics(&a), metrics(&b));
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn step_decay_divides_the_rate_at_its_milestones() {
    use wengert::train::train::Decay;
    let model = ResNet::by_name("resnet8", 1, 10, &mut wengert::core::rng(0)).unwrap();
    let decay = Decay::Steps { milestones: vec![2, 4], gamma: 0.1 };
    let config = Config::default().with_epochs(3).with_warmup(0).with_decay(decay.clone());
    let mut t = Trainer::with_batches(model, config.clone(), 2).unwrap();
    let mut rates = Vec::new();
    for i in 0..6 {
        t.iteration = i;
        rates.push(t.lr());
    }
    let want = [0.1, 0.1, 0.01, 0.01, 0.001, 0.001];
    assert!(rates.iter().zip(want).all(|(r, w)| (r - w).abs() < 1e-15), "{rates:?}");
    let bad = |decay| config.clone().with_decay(decay).check().unwrap_err().to_string();
    assert!(bad(Decay::Steps { milestones: vec![4, 2], gamma: 0.1 }).contains("milestones must increase"));
    assert!(bad(Decay::Steps { milestones: vec![2], gamma: 0.0 }).contains("gamma must be in (0, 1]"));
}
