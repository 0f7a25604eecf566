//! Residual-block cases, run through the ResNet crate's blocks, each
//! recorded as one node: the case's inputs are bound as the block's
//! parameters by their checkpoint names (`conv1.weight`, `bn1.bias`, ...).
//!
//! Batch norm runs in training mode with eps 1e-5; convolutions have no bias.

use super::attrs::{only, text, usize_of};
use super::Inputs;
use serde_json::{Map, Value};
use wengert_core::{Error, Float, Result, Var};
use wengert_nn::{Module, StateRef, Step, Visit};
use wengert_resnet::block::{Block, Kind, Shortcut};

pub(crate) fn build<'t, T: Float>(op: &str, attrs: &Map<String, Value>, inp: &Inputs<'t, T>) -> Result<Var<'t, T>> {
    let x = inp.var("x")?;
    let (kind, stride, shortcut) = match op {
        "preact_block" => {
            only(op, attrs, &[])?;
            (Kind::PreAct, 1, Shortcut::Identity)
        }
        _ => {
            only(op, attrs, &["stride", "downsample"])?;
            let stride = attrs.get("stride").map(|v| usize_of(op, v, "stride")).transpose()?.unwrap_or(1);
            let shortcut = match attrs
                .get("downsample")
                .map(|_| text(op, attrs, "downsample"))
                .transpose()?
                .unwrap_or("none")
            {
                "none" => Shortcut::Identity,
                "projection" => Shortcut::Projection,
                "zero_pad" => Shortcut::ZeroPad,
                other => {
                    return Err(Error::argument("conformance", "downsample", format!("unsupported value '{other}'")))
                }
            };
            let kind = if op == "basic_block" { Kind::Basic } else { Kind::Bottleneck };
            (kind, stride, shortcut)
        }
    };
    let rank4 = |name: &str, v: Var<'t, T>| {
        let s = v.shape();
        if s.rank() == 4 {
            Ok(s)
        } else {
            Err(Error::shape(op, format!("{name} is {s}; need rank 4")))
        }
    };
    let width = rank4("conv1.weight", inp.var("conv1.weight")?)?[0];
    let c_in = rank4("x", x)?[1];
    let mut block = Block::<T>::new(kind, c_in, width, stride, shortcut, &mut wengert_core::rng(0))?;
    let mut step = Step::train(x.tape(), 0);
    let mut missing = None;
    block.visit("", &mut |name, s| {
        if let StateRef::Param(p) = s {
            match inp.var(&name) {
                Ok(v) => step.bind(p, v),
                Err(e) => missing = Some(e),
            }
        }
    });
    if let Some(e) = missing {
        return Err(e);
    }
    block.forward(&mut step, x)
}
