//! Starting `wengert train` from trained weights and choosing what trains:
//! `--init-from` (torchvision names or a Wengert model file, the
//! classifier replaced when the class count differs), `--init-partial`,
//! `--freeze backbone` and `--backbone-lr-scale`.

use super::existing_file;
use std::collections::BTreeMap;
use std::path::PathBuf;
use wengert::core::{Error, Result};
use wengert::data::IMAGENET_NORMALISATION;
use wengert::nn::checkpoint::{init_from, read_metadata, read_shapes, InitOptions};
use wengert::nn::optim::ParamGroups;
use wengert::nn::Module;
use wengert::resnet::registry::{identify, Model};

/// The classifier of every model of the registry: the last linear layer,
/// `fc`, as torchvision names it. Fine-tuning replaces and trains it.
const CLASSIFIER: &str = "fc.";

/// The fine-tuning options of `wengert train`.
#[derive(clap::Args)]
pub struct FineTune {
    /// Start from the weights in this file: a model.safetensors that
    /// `wengert train` wrote, or a PyTorch state dict saved as safetensors
    /// (`safetensors.torch.save_file(model.state_dict(), F)`), whose names
    /// the zoo shares. The optimiser starts afresh. When the data's class
    /// count differs from the file's, the classifier (`fc`) starts afresh.
    #[arg(long, conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    /// With --init-from: load the tensors that fit and start the others
    /// afresh, listing them, instead of refusing a file that does not fit.
    #[arg(long, requires = "init_from")]
    init_partial: bool,
    /// What does not train: none (the default), or backbone (everything but
    /// the classifier `fc`, whose batch norms then keep their running
    /// statistics).
    #[arg(long, default_value = "none", value_parser = ["none", "backbone"])]
    freeze: String,
    /// The backbone (everything but the classifier) learns at this multiple
    /// of --lr (0.1 is usual for pretrained weights); the classifier at
    /// --lr. Default 1.
    #[arg(long, allow_negative_numbers = true)]
    backbone_lr_scale: Option<f64>,
}

/// Each channel's `(mean, std)`.
pub type Normalise = Vec<(f64, f64)>;

/// What the weights file says of itself.
struct Weights {
    path: PathBuf,
    shapes: BTreeMap<String, Vec<usize>>,
    metadata: BTreeMap<String, String>,
}

impl FineTune {
    /// Checks the options that need no data.
    pub fn check(&self) -> Result<()> {
        let bad = |arg: &str, detail: String| Err(Error::argument("train", arg, detail));
        if let Some(w) = &self.init_from {
            existing_file("train", "--init-from", w)?;
        }
        if let Some(f) = self.backbone_lr_scale {
            if !(f.is_finite() && f >= 0.0) {
                return bad("--backbone-lr-scale", format!("must be finite and at least 0, got {f}"));
            }
            if self.freeze == "backbone" {
                return bad(
                    "--backbone-lr-scale",
                    "sets how fast the backbone learns, but --freeze backbone stops it learning: give one".into(),
                );
            }
            if f == 0.0 {
                return bad(
                    "--backbone-lr-scale",
                    "0 would leave the backbone unchanged: use --freeze backbone".into(),
                );
            }
        }
        Ok(())
    }

    /// The weights file's names, shapes and metadata, when there is one.
    fn weights(&self) -> Result<Option<Weights>> {
        let Some(path) = &self.init_from else { return Ok(None) };
        let named = |e: Error| match e {
            Error::Io { path, detail } => Error::argument("train", "--init-from", format!("{path}: {detail}")),
            e => e,
        };
        let (shapes, metadata) = (read_shapes(path).map_err(named)?, read_metadata(path).map_err(named)?);
        Ok(Some(Weights { path: path.clone(), shapes, metadata }))
    }

    /// The normalisation the weights' origin asks for, with what to say of
    /// it: the file's own (a Wengert model file records it), or ImageNet's
    /// for a PyTorch state dict and images of three channels. `None` when
    /// there are no weights or they say nothing that fits.
    pub fn normalisation(&self, channels: usize) -> Result<Option<(Normalise, String)>> {
        let Some(w) = self.weights()? else { return Ok(None) };
        if let Some(saved) = w.metadata.get("normalise") {
            let pairs: Option<Vec<(f64, f64)>> = saved
                .split(';')
                .map(|p| p.split_once(',').and_then(|(m, s)| Some((m.parse().ok()?, s.parse().ok()?))))
                .collect();
            if let Some(pairs) = pairs.filter(|p| p.len() == channels) {
                let said = format!("normalising as {} was trained", w.path.display());
                return Ok(Some((pairs, said)));
            }
            return Ok(None);
        }
        if channels == 3 {
            let said = "normalising with ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), as \
                        the pretrained weights were trained"
                .to_string();
            return Ok(Some((IMAGENET_NORMALISATION.to_vec(), said)));
        }
        Ok(None)
    }

    /// The learning-rate groups: the backbone at `--backbone-lr-scale`.
    pub fn groups(&self) -> Result<ParamGroups> {
        match self.backbone_lr_scale {
            Some(f) if f != 1.0 => ParamGroups::new().with_group("", f)?.with_group(CLASSIFIER, 1.0),
            _ => Ok(ParamGroups::new()),
        }
    }

    /// The settings a resumed run must repeat, as `(key, value)` tags.
    pub fn tags(&self) -> Vec<(&'static str, String)> {
        let mut tags = Vec::new();
        if self.freeze != "none" {
            tags.push(("freeze", self.freeze.clone()));
        }
        if let Some(f) = self.backbone_lr_scale.filter(|f| *f != 1.0) {
            tags.push(("backbone_lr_scale", f.to_string()));
        }
        tags
    }

    /// Loads the weights into `net` (a fresh `model`) and freezes what
    /// `--freeze` names; returns the lines to print.
    pub fn apply(&self, net: &mut dyn Module<f32>, model: &Model) -> Result<Vec<String>> {
        let mut said = Vec::new();
        if let Some(w) = self.weights()? {
            said.extend(load(net, model, &w, self.init_partial)?);
        }
        if self.freeze == "backbone" {
            let names = net.state_names();
            if !names.iter().any(|n| n.starts_with(CLASSIFIER)) {
                return Err(Error::argument(
                    "train",
                    "--freeze",
                    format!("{model} has no classifier named fc to train alone"),
                ));
            }
            let all = net.num_parameters();
            let frozen = net.set_frozen(&|name| !name.starts_with(CLASSIFIER));
            said.push(format!(
                "training fc alone: {frozen} of {all} parameters frozen, batch norms on their running statistics"
            ));
        }
        Ok(said)
    }
}

/// Loads `w` into `net`, replacing the classifier when its shape differs;
/// an error names what does not fit, and the model the file holds when
/// it can tell.
fn load(net: &mut dyn Module<f32>, model: &Model, w: &Weights, partial: bool) -> Result<Vec<String>> {
    let options = InitOptions::default().with_replace(CLASSIFIER).with_partial(partial);
    let held = w.metadata.get("model").cloned().or_else(|| identify(&w.shapes));
    if let Some(held) = held.as_ref().filter(|h| !h.split(" or ").any(|h| h == model.to_string())) {
        if !partial {
            return Err(Error::argument(
                "train",
                "--init-from",
                format!("{} holds a {held}, not a {model}: pass --model {}", w.path.display(), first_name(held)),
            ));
        }
    }
    let report = init_from(net, &w.path, &options).map_err(|e| match e {
        Error::Io { path, detail } => Error::argument("train", "--init-from", format!("{path}: {detail}")),
        e => e,
    })?;
    let mut said = vec![format!("started from {}: {} tensors loaded", w.path.display(), report.loaded)];
    let mut own_fc = BTreeMap::new();
    net.visit("", &mut |name, s| {
        if let wengert::nn::StateRef::Param(p) = s {
            own_fc.insert(name, p.value().dims().to_vec());
        }
    });
    let fresh_fc = report.fresh.iter().any(|f| f.starts_with(CLASSIFIER));
    if let (true, Some(file), Some(mine)) =
        (fresh_fc, w.shapes.get("fc.weight").and_then(|s| s.first()), own_fc.get("fc.weight").and_then(|s| s.first()))
    {
        said.push(format!("fc: {file} → {mine} classes, initialised afresh"));
    }
    let others: Vec<&String> = report.fresh.iter().filter(|f| !f.starts_with(CLASSIFIER)).collect();
    if !others.is_empty() {
        said.push(format!("initialised afresh (--init-partial): {}", list(&others)));
    }
    let unused: Vec<&String> = report.unused.iter().filter(|u| !u.starts_with(CLASSIFIER)).collect();
    if !unused.is_empty() {
        said.push(format!("not in the model, skipped (--init-partial): {}", list(&unused)));
    }
    Ok(said)
}

/// The first of `resnet20 or plain20`.
pub(crate) fn first_name(held: &str) -> &str {
    held.split(" or ").next().unwrap_or(held)
}

fn list(items: &[&String]) -> String {
    const SHOWN: usize = 6;
    let mut s = items.iter().take(SHOWN).map(|s| s.as_str()).collect::<Vec<_>>().join("; ");
    if items.len() > SHOWN {
        s += &format!(" and {} more", items.len() - SHOWN);
    }
    s
}
