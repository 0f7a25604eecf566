//! A zoo model's evaluation-mode graph as ONNX (opset 17), for runtimes
//! where Wengert does not run: ONNX Runtime, tract, TensorRT, a browser.
//!
//! The graph is built from the model's architecture (a ResNet's
//! [`Spec`], or GoogLeNet's fixed layout) and its state
//! by name, the same names the zoo shares with torchvision: `Conv`,
//! `BatchNormalization` (with the running statistics), `Relu`, `Add`,
//! `MaxPool`, `Concat`, `GlobalAveragePool`, `Flatten` and `Gemm`, and for
//! option-A shortcuts a strided `Slice` and a `Pad` of channels. The
//! evaluation-mode graph has no dropout, and GoogLeNet's auxiliary
//! classifiers (training only) are left out.
//! The batch dimension is named (`N`), so one file serves any batch. The
//! protobuf encoding is `prost`'s, over the schema's messages written out
//! in `proto.rs`: a maintained encoder, and no build step (no `protoc`).
//!
//! ```
//! use wengert_resnet::onnx::to_onnx;
//! use wengert_resnet::zoo::ResNet;
//! let net = ResNet::<f32>::by_name("resnet20", 3, 10, &mut wengert_core::rng(0))?;
//! let bytes = to_onnx(&net, (3, 32, 32), &[("classes".into(), "10".into())])?;
//! assert!(bytes.len() > 4 * 270_000); // the weights, and the graph
//! # Ok::<(), wengert_core::Error>(())
//! ```

mod proto;

use crate::block::{Kind, Shortcut};
use crate::googlenet::{GoogLeNet, INCEPTIONS};
use crate::registry::Model;
use crate::zoo::{Family, ResNet, Spec};
use prost::Message;
use std::collections::BTreeMap;
use wengert_core::{Error, Result, Tensor};
use wengert_nn::{StateRef, Visit};

/// The opset the graph is written for.
pub const OPSET: i64 = 17;

/// ONNX's IR version for opset 17.
const IR_VERSION: i64 = 8;

/// `TensorProto.DataType` codes.
const FLOAT: i32 = 1;
const INT64: i32 = 7;

/// `AttributeProto.AttributeType` codes.
const ATTR_FLOAT: i32 = 1;
const ATTR_INT: i32 = 2;
const ATTR_INTS: i32 = 7;

/// Batch norm's ε in the ResNets (PyTorch's default).
const RESNET_BN_EPS: f32 = 1e-5;

/// Batch norm's ε in GoogLeNet (torchvision's `BasicConv2d`).
const GOOGLENET_BN_EPS: f32 = 1e-3;

/// A graph under construction: nodes, the weights they read, and fresh names.
struct Builder {
    nodes: Vec<proto::Node>,
    initializers: Vec<proto::TensorData>,
    weights: BTreeMap<String, Tensor<f32>>,
    /// The batch norms' ε.
    eps: f32,
    count: usize,
}

fn ints(name: &str, v: &[usize]) -> proto::Attribute {
    proto::Attribute {
        name: name.into(),
        ints: v.iter().map(|&x| x as i64).collect(),
        r#type: ATTR_INTS,
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> proto::Attribute {
    proto::Attribute { name: name.into(), i: v, r#type: ATTR_INT, ..Default::default() }
}

fn float(name: &str, v: f32) -> proto::Attribute {
    proto::Attribute { name: name.into(), f: v, r#type: ATTR_FLOAT, ..Default::default() }
}

impl Builder {
    /// A node of `op` on `inputs`; returns its output's name.
    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<proto::Attribute>) -> String {
        self.count += 1;
        let output = format!("{}_{}", op.to_lowercase(), self.count);
        self.nodes.push(proto::Node {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute,
        });
        output
    }

    /// The weight `name` as an initializer (once); an error when the
    /// model has no such entry.
    fn weight(&mut self, name: &str) -> Result<String> {
        if !self.initializers.iter().any(|t| t.name == name) {
            let t = self.weights.get(name).ok_or_else(|| {
                Error::argument("to_onnx", "model", format!("the model has no {name}, which its architecture needs"))
            })?;
            let raw = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
            let dims = t.dims().iter().map(|&d| d as i64).collect();
            self.initializers.push(proto::TensorData { dims, data_type: FLOAT, name: name.into(), raw_data: raw });
        }
        Ok(name.into())
    }

    /// An int64 constant as an initializer.
    fn int64s(&mut self, values: &[i64]) -> String {
        self.count += 1;
        let name = format!("const_{}", self.count);
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(proto::TensorData {
            dims: vec![values.len() as i64],
            data_type: INT64,
            name: name.clone(),
            raw_data: raw,
        });
        name
    }

    /// A max pool of `k × k` windows, `stride` apart, the input padded by
    /// `pad` and a last partial window kept (`ceil_mode`) when `ceil`.
    fn max_pool(&mut self, x: &str, k: usize, stride: usize, pad: usize, ceil: bool) -> String {
        let attrs = vec![
            ints("kernel_shape", &[k, k]),
            ints("strides", &[stride, stride]),
            ints("pads", &[pad; 4]),
            int("ceil_mode", ceil as i64),
        ];
        self.node("MaxPool", &[x], attrs)
    }

    /// A square convolution without bias, weight `{prefix}weight`.
    fn conv(&mut self, x: &str, prefix: &str, stride: usize, pad: usize) -> Result<String> {
        let w = self.weight(&format!("{prefix}weight"))?;
        let k = self.weights[&w].dims()[2];
        let attrs = vec![ints("kernel_shape", &[k, k]), ints("strides", &[stride, stride]), ints("pads", &[pad; 4])];
        Ok(self.node("Conv", &[x, &w], attrs))
    }

    /// Batch norm `{prefix}` with its running statistics, and a ReLU after when `relu`.
    fn bn(&mut self, x: &str, prefix: &str, relu: bool) -> Result<String> {
        let names = ["weight", "bias", "running_mean", "running_var"].map(|n| format!("{prefix}{n}"));
        let mut inputs = vec![x.to_string()];
        for n in &names {
            inputs.push(self.weight(n)?);
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let y = self.node("BatchNormalization", &refs, vec![float("epsilon", self.eps)]);
        Ok(if relu { self.node("Relu", &[&y], vec![]) } else { y })
    }

    /// Option A: `x[:, :, ::s, ::s]` with `extra` zero channels, half before.
    fn zero_pad(&mut self, x: &str, stride: usize, extra: usize) -> String {
        let (starts, ends) = (self.int64s(&[0, 0]), self.int64s(&[i64::MAX, i64::MAX]));
        let (axes, steps) = (self.int64s(&[2, 3]), self.int64s(&[stride as i64, stride as i64]));
        let sliced = self.node("Slice", &[x, &starts, &ends, &axes, &steps], vec![]);
        let (before, after) = ((extra / 2) as i64, (extra - extra / 2) as i64);
        let pads = self.int64s(&[0, before, 0, 0, 0, after, 0, 0]);
        self.node("Pad", &[&sliced, &pads], vec![])
    }

    /// One residual block of `kind` under `p` (`layer2.0.`) on `x` of `c_in` channels.
    fn block(
        &mut self,
        x: &str,
        p: &str,
        kind: Kind,
        stride: usize,
        shortcut: Shortcut,
        c_in: usize,
    ) -> Result<String> {
        let out_channels = |b: &Builder, conv: &str| b.weights.get(&format!("{p}{conv}.weight")).map(|w| w.dims()[0]);
        let last = if kind.expands() { "conv3" } else { "conv2" };
        let c_out = out_channels(self, last).ok_or_else(|| {
            Error::argument(
                "to_onnx",
                "model",
                format!("the model has no {p}{last}.weight, which its architecture needs"),
            )
        })?;
        let changes = stride != 1 || c_in != c_out;
        let f = |name: &str| format!("{p}{name}.");
        // The branch, and what the shortcut reads.
        let (branch, shortcut_input) = match kind {
            Kind::Basic | Kind::Plain => {
                let h = self.conv(x, &f("conv1"), stride, 1)?;
                let h = self.bn(&h, &f("bn1"), true)?;
                let h = self.conv(&h, &f("conv2"), 1, 1)?;
                (self.bn(&h, &f("bn2"), false)?, x.to_string())
            }
            Kind::Bottleneck => {
                let h = self.conv(x, &f("conv1"), 1, 0)?;
                let h = self.bn(&h, &f("bn1"), true)?;
                let h = self.conv(&h, &f("conv2"), stride, 1)?;
                let h = self.bn(&h, &f("bn2"), true)?;
                let h = self.conv(&h, &f("conv3"), 1, 0)?;
                (self.bn(&h, &f("bn3"), false)?, x.to_string())
            }
            Kind::PreAct | Kind::PreActBottleneck => {
                let a = self.bn(x, &f("bn1"), true)?;
                let h = if kind == Kind::PreAct {
                    let h = self.conv(&a, &f("conv1"), stride, 1)?;
                    let h = self.bn(&h, &f("bn2"), true)?;
                    self.conv(&h, &f("conv2"), 1, 1)?
                } else {
                    let h = self.conv(&a, &f("conv1"), 1, 0)?;
                    let h = self.bn(&h, &f("bn2"), true)?;
                    let h = self.conv(&h, &f("conv2"), stride, 1)?;
                    let h = self.bn(&h, &f("bn3"), true)?;
                    self.conv(&h, &f("conv3"), 1, 0)?
                };
                // A projection reads the pre-activated input; the others x.
                let projects = changes && shortcut == Shortcut::Projection;
                (h, if projects { a } else { x.to_string() })
            }
        };
        if kind == Kind::Plain {
            return Ok(self.node("Relu", &[&branch], vec![]));
        }
        let short = match (changes, shortcut) {
            (false, _) | (_, Shortcut::Identity) => shortcut_input,
            (true, Shortcut::ZeroPad) => self.zero_pad(&shortcut_input, stride, c_out - c_in),
            (true, Shortcut::Projection) if kind.pre_activation() => {
                self.conv(&shortcut_input, &f("shortcut.0"), stride, 0)?
            }
            (true, Shortcut::Projection) => {
                let h = self.conv(&shortcut_input, &f("downsample.0"), stride, 0)?;
                self.bn(&h, &f("downsample.1"), false)?
            }
        };
        let sum = self.node("Add", &[&short, &branch], vec![]);
        Ok(if kind.pre_activation() { sum } else { self.node("Relu", &[&sum], vec![]) })
    }
}

/// A graph input or output of `f32` with the named batch dimension `N`.
fn value(name: &str, dims: &[usize]) -> proto::ValueInfo {
    let mut dim = vec![proto::Dimension { dim_value: None, dim_param: Some("N".into()) }];
    dim.extend(dims.iter().map(|&d| proto::Dimension { dim_value: Some(d as i64), dim_param: None }));
    let tensor_type = proto::TensorType { elem_type: FLOAT, shape: Some(proto::Shape { dim }) };
    proto::ValueInfo { name: name.into(), r#type: Some(proto::Type { tensor_type: Some(tensor_type) }) }
}

/// Every tensor of a model's state by name: parameters and buffers.
fn state(net: &dyn Visit<f32>) -> BTreeMap<String, Tensor<f32>> {
    let mut weights = BTreeMap::new();
    net.visit("", &mut |name, s| match s {
        StateRef::Param(p) => {
            weights.insert(name, p.value().clone());
        }
        StateRef::Buffer(b) => {
            weights.insert(name, b.clone());
        }
        StateRef::Count(_) => {}
    });
    weights
}

/// A ResNet of `spec` from `input` to its pooled, flattened features.
fn resnet_features(g: &mut Builder, spec: &Spec) -> Result<String> {
    let pre = spec.kind.pre_activation();
    let mut x = match spec.family {
        Family::Cifar => g.conv("input", "conv1.", 1, 1)?,
        Family::ImageNet => g.conv("input", "conv1.", 2, 3)?,
    };
    if !pre {
        x = g.bn(&x, "bn1.", true)?;
    }
    if spec.family == Family::ImageNet {
        x = g.max_pool(&x, 3, 2, 1, false);
    }
    let mut channels = g.weights["conv1.weight"].dims()[0];
    let last = if spec.kind.expands() { "conv3" } else { "conv2" };
    for (stage, &blocks) in spec.blocks.iter().enumerate() {
        for j in 0..blocks {
            let stride = if stage > 0 && j == 0 { 2 } else { 1 };
            let prefix = format!("layer{}.{j}.", stage + 1);
            x = g.block(&x, &prefix, spec.kind, stride, spec.shortcut, channels)?;
            channels = g.weights[&format!("{prefix}{last}.weight")].dims()[0];
        }
    }
    if pre {
        x = g.bn(&x, "bn.", true)?;
    }
    let pooled = g.node("GlobalAveragePool", &[&x], vec![]);
    Ok(g.node("Flatten", &[&pooled], vec![int("axis", 1)]))
}

/// GoogLeNet's `BasicConv2d` under `prefix` (`inception3a.branch1.`):
/// convolution (padding half its kernel), batch norm, ReLU.
fn basic_conv(g: &mut Builder, x: &str, prefix: &str, stride: usize) -> Result<String> {
    let w = g.weight(&format!("{prefix}conv.weight"))?;
    let k = g.weights[&w].dims()[2];
    let h = g.conv(x, &format!("{prefix}conv."), stride, k / 2)?;
    g.bn(&h, &format!("{prefix}bn."), true)
}

/// GoogLeNet from `input` to its pooled, flattened features, in
/// evaluation mode (no dropout, no auxiliary classifiers).
fn googlenet_features(g: &mut Builder) -> Result<String> {
    let x = basic_conv(g, "input", "conv1.", 2)?;
    let x = g.max_pool(&x, 3, 2, 0, true);
    let x = basic_conv(g, &x, "conv2.", 1)?;
    let x = basic_conv(g, &x, "conv3.", 1)?;
    let mut x = g.max_pool(&x, 3, 2, 0, true);
    for (name, _, _, after) in INCEPTIONS {
        let p = |branch: &str| format!("{name}.{branch}.");
        let b1 = basic_conv(g, &x, &p("branch1"), 1)?;
        let h = basic_conv(g, &x, &p("branch2.0"), 1)?;
        let b2 = basic_conv(g, &h, &p("branch2.1"), 1)?;
        let h = basic_conv(g, &x, &p("branch3.0"), 1)?;
        let b3 = basic_conv(g, &h, &p("branch3.1"), 1)?;
        let pooled = g.max_pool(&x, 3, 1, 1, true);
        let b4 = basic_conv(g, &pooled, &p("branch4.1"), 1)?;
        x = g.node("Concat", &[&b1, &b2, &b3, &b4], vec![int("axis", 1)]);
        if let Some((k, s)) = after {
            x = g.max_pool(&x, k, s, 0, true);
        }
    }
    let pooled = g.node("GlobalAveragePool", &[&x], vec![]);
    Ok(g.node("Flatten", &[&pooled], vec![int("axis", 1)]))
}

/// The graph's architecture: what [`encode`] builds the features with.
enum Architecture<'a> {
    ResNet(&'a Spec),
    GoogLeNet,
}

/// The ONNX bytes of the network `name` of `architecture` with `weights`,
/// for images of `(c, h, w)`: the features, then `fc` as a `Gemm`
/// writing `logits`.
fn encode(
    architecture: Architecture<'_>,
    name: &str,
    weights: BTreeMap<String, Tensor<f32>>,
    (c, h, w): (usize, usize, usize),
    metadata: &[(String, String)],
) -> Result<Vec<u8>> {
    let eps = match architecture {
        Architecture::ResNet(_) => RESNET_BN_EPS,
        Architecture::GoogLeNet => GOOGLENET_BN_EPS,
    };
    let mut g = Builder { nodes: Vec::new(), initializers: Vec::new(), weights, eps, count: 0 };
    let features = match architecture {
        Architecture::ResNet(spec) => resnet_features(&mut g, spec)?,
        Architecture::GoogLeNet => googlenet_features(&mut g)?,
    };
    let (fw, fb) = (g.weight("fc.weight")?, g.weight("fc.bias")?);
    let classes = g.weights[&fw].dims()[0];
    g.node("Gemm", &[&features, &fw, &fb], vec![int("transB", 1)]);
    // The last node writes the graph's output.
    if let Some(last) = g.nodes.last_mut() {
        last.output = vec!["logits".into()];
    }
    let graph = proto::Graph {
        node: g.nodes,
        name: name.into(),
        initializer: g.initializers,
        input: vec![value("input", &[c, h, w])],
        output: vec![value("logits", &[classes])],
    };
    let mut props = vec![proto::Entry { key: "model".into(), value: name.into() }];
    props.extend(
        metadata.iter().filter(|(k, _)| k != "model").map(|(k, v)| proto::Entry { key: k.clone(), value: v.clone() }),
    );
    let model = proto::Model {
        ir_version: IR_VERSION,
        producer_name: "wengert".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("{name} in evaluation mode"),
        graph: Some(graph),
        opset_import: vec![proto::OperatorSet { domain: String::new(), version: OPSET }],
        metadata_props: props,
    };
    Ok(model.encode_to_vec())
}

/// A network that can be written as ONNX: the zoo's ResNets (every
/// family, block kind and shortcut) and GoogLeNet.
pub trait Export {
    /// The ONNX model of the network in evaluation mode for images of
    /// `(c, h, w)`: input `input` `[N, C, H, W]` with the batch dimension
    /// named `N`, output `logits` `[N, classes]`, and `metadata` (the
    /// class names, say) with the model's name under `model` in the
    /// model's metadata. An input the network cannot take is an error.
    fn to_onnx(&self, input: (usize, usize, usize), metadata: &[(String, String)]) -> Result<Vec<u8>>;
}

impl Export for ResNet<f32> {
    fn to_onnx(&self, input: (usize, usize, usize), metadata: &[(String, String)]) -> Result<Vec<u8>> {
        self.summary(input)?;
        let spec = self.spec();
        encode(Architecture::ResNet(spec), &spec.name, state(self), input, metadata)
    }
}

impl Export for GoogLeNet<f32> {
    fn to_onnx(&self, input: (usize, usize, usize), metadata: &[(String, String)]) -> Result<Vec<u8>> {
        self.summary(input)?;
        encode(Architecture::GoogLeNet, "googlenet", state(self), input, metadata)
    }
}

/// The ONNX model of `net` (see [`Export::to_onnx`]).
pub fn to_onnx<M: Export>(net: &M, input: (usize, usize, usize), metadata: &[(String, String)]) -> Result<Vec<u8>> {
    net.to_onnx(input, metadata)
}

/// The ONNX model of a network `model` built by [`Model::build`] (boxed,
/// as the command line holds it) and then given its weights: `net`'s
/// state is read by name, in `model`'s architecture. The recurrent
/// classifiers have no export; asking is an error, as is a state that
/// lacks a tensor the architecture needs.
pub fn model_to_onnx(
    model: &Model,
    net: &dyn Visit<f32>,
    input: (usize, usize, usize),
    metadata: &[(String, String)],
) -> Result<Vec<u8>> {
    model.summary(input, 1)?;
    let name = model.to_string();
    match model {
        Model::Zoo(spec) => encode(Architecture::ResNet(spec), &name, state(net), input, metadata),
        Model::GoogLeNet { .. } => encode(Architecture::GoogLeNet, "googlenet", state(net), input, metadata),
        Model::Sequence(_) => Err(Error::argument(
            "model_to_onnx",
            "model",
            format!(
                "{name} is a recurrent classifier; ONNX export covers the image models (the ResNets and GoogLeNet)"
            ),
        )),
    }
}
