//! Checkpoints in the safetensors format.
//!
//! - The model file holds every parameter and buffer under its dotted name
//!   (`layer1.0.conv1.weight`, `bn1.running_mean`, `bn1.num_batches_tracked`
//!   as an i64 scalar), the layout PyTorch's safetensors export writes for
//!   a torchvision model, so such files load without renaming.
//! - The training-state file holds the optimiser's tensors (momenta) and, in
//!   the file's metadata, the step count and the caller's training position.
//!
//! Writes are atomic: the file is written next to its destination under a
//! temporary name, flushed to disk, then renamed over it, so a crash leaves
//! either the old checkpoint or the new one, never a damaged one.
//!
//! Loading checks everything and reports every problem at once: a file that
//! is truncated or not safetensors, names the model lacks (unexpected),
//! names the file lacks (missing), shapes and dtypes that differ.

use crate::module::{Module, StateMut, StateRef};
use crate::optim::OptimState;
use safetensors::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use wengert_core::{DType, Error, Float, Result, Tensor};

/// A tensor ready to serialise: dtype, shape and little-endian bytes.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn dtype_of<T: Float>() -> Dtype {
    match T::DTYPE {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

fn raw_float<T: Float>(t: &Tensor<T>) -> Raw {
    let mut bytes = Vec::with_capacity(t.numel() * std::mem::size_of::<T>());
    for &v in t.data() {
        match T::DTYPE {
            DType::F32 => bytes.extend_from_slice(&(v.as_f64() as f32).to_le_bytes()),
            DType::F64 => bytes.extend_from_slice(&v.as_f64().to_le_bytes()),
        }
    }
    Raw { dtype: dtype_of::<T>(), shape: t.dims().to_vec(), bytes }
}

fn io_error(path: &Path, detail: impl std::fmt::Display) -> Error {
    Error::Io { path: path.display().to_string(), detail: detail.to_string() }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// flushed, then renamed over `path`. Temporary files of `path` that a
/// killed earlier writer left behind go too.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io_error(path, "not a file path"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path, e)
    })?;
    remove_stale_temporaries(dir, &name.to_string_lossy());
    Ok(())
}

/// Removes the temporary files of `name` that a killed writer left in
/// `dir` (`.NAME.tmp-PID` of a process no longer running: a write stopped
/// by a signal, or a full disk that killed the process). Only where
/// `/proc` tells which processes run; elsewhere a live writer's file could
/// not be told from a dead one's, and they stay.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else { continue };
        if pid.parse::<u32>().is_ok_and(|p| p != std::process::id() && !proc.join(pid).exists()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn serialize(entries: &[(String, Raw)], metadata: Option<HashMap<String, String>>, path: &Path) -> Result<Vec<u8>> {
    safetensors::serialize(entries.iter().map(|(n, r)| (n.as_str(), r)), metadata).map_err(|e| io_error(path, e))
}

/// Saves every parameter and buffer of `model` to `path`.
///
/// ```
/// use wengert_nn::checkpoint::{load_model, save_model};
/// use wengert_nn::{layer::Linear, Module};
///
/// let a = Linear::<f32>::new(3, 2, true, &mut wengert_core::rng(0))?;
/// let path = std::env::temp_dir().join(format!("wengert-doc-{}.safetensors", std::process::id()));
/// save_model(&a, &path)?;
/// let mut b = Linear::<f32>::new(3, 2, true, &mut wengert_core::rng(1))?;
/// let report = load_model(&mut b, &path, true)?;          // strict: names and shapes must match
/// assert_eq!(b.weight.value(), a.weight.value());
/// assert!(report.skipped.is_empty());
/// std::fs::remove_file(&path).ok();
/// # Ok::<(), wengert_core::Error>(())
/// ```
pub fn save_model<T: Float>(model: &dyn Module<T>, path: &Path) -> Result<()> {
    save_model_with(model, &BTreeMap::new(), path)
}

/// Saves `model` as [`save_model`] does, with `metadata` in the file's
/// header (the `model` key, when given, names the architecture, and
/// [`load_model`]'s errors quote it).
pub fn save_model_with<T: Float>(
    model: &dyn Module<T>,
    metadata: &BTreeMap<String, String>,
    path: &Path,
) -> Result<()> {
    let meta = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
    write_atomic(path, &serialize(&model_entries(model), meta, path)?)
}

/// The model's parameters, buffers and counters, ready to serialise.
fn model_entries<T: Float>(model: &dyn Module<T>) -> Vec<(String, Raw)> {
    let mut entries = Vec::new();
    model.visit("", &mut |name, s| {
        let raw = match s {
            StateRef::Param(p) => raw_float(p.value()),
            StateRef::Buffer(b) => raw_float(b),
            StateRef::Count(c) => Raw { dtype: Dtype::I64, shape: vec![], bytes: c.to_le_bytes().to_vec() },
        };
        entries.push((name, raw));
    });
    entries
}

/// The prefix under which [`save_checkpoint`] stores the optimiser's tensors.
const OPTIMIZER: &str = "optimizer/";

/// Saves a whole training checkpoint — the model, the optimiser's state and
/// the caller's metadata (position, settings) — as one safetensors file,
/// written atomically: a crash leaves the previous checkpoint or this one,
/// never a model of one step with the optimiser of another.
///
/// The model's entries keep their names, so the file also loads with
/// [`load_model`] (non-strict) or in PyTorch after dropping the
/// `optimizer/` entries.
pub fn save_checkpoint<T: Float>(
    model: &dyn Module<T>,
    state: &OptimState<T>,
    metadata: &BTreeMap<String, String>,
    path: &Path,
) -> Result<()> {
    let mut entries = model_entries(model);
    entries.extend(state.tensors.iter().map(|(n, t)| (format!("{OPTIMIZER}{n}"), raw_float(t))));
    let mut meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    meta.insert("optimizer.steps".into(), state.steps.to_string());
    write_atomic(path, &serialize(&entries, Some(meta), path)?)
}

/// Loads what [`save_checkpoint`] wrote: the model in place (strictly:
/// every name and shape must match, and nothing changes otherwise), and
/// returns the optimiser state and the metadata.
pub fn load_checkpoint<T: Float>(
    model: &mut dyn Module<T>,
    path: &Path,
) -> Result<(OptimState<T>, BTreeMap<String, String>)> {
    let bytes = open(path)?;
    let file = parse(path, &bytes)?;
    let meta = metadata_of(path, &bytes)?;
    let steps = meta
        .get("optimizer.steps")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io_error(path, "no optimizer.steps in the metadata: not a training checkpoint"))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        let Some(n) = name.strip_prefix(OPTIMIZER) else { continue };
        if view.dtype() != dtype_of::<T>() {
            return Err(io_error(path, format!("{name} is {:?}, expected {:?}", view.dtype(), dtype_of::<T>())));
        }
        tensors.push((n.to_string(), Tensor::from_vec(read_float(&view), view.shape().to_vec())?));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    load_entries(model, &file, &meta, path, true, |n| n.starts_with(OPTIMIZER))?;
    Ok((OptimState { tensors, steps }, meta.into_iter().collect()))
}

/// The header's metadata (empty when there is none).
fn metadata_of(path: &Path, bytes: &[u8]) -> Result<HashMap<String, String>> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| io_error(path, e))?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// The name and shape of every tensor in a safetensors file, whatever its
/// dtype, without converting the data.
pub fn read_shapes(path: &Path) -> Result<BTreeMap<String, Vec<usize>>> {
    let bytes = open(path)?;
    Ok(parse(path, &bytes)?.tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec())).collect())
}

/// The metadata of a safetensors file's header, read without the tensors'
/// data being checked (for a `model` or `classes` key, say).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let bytes = open(path)?;
    parse(path, &bytes)?;
    Ok(metadata_of(path, &bytes)?.into_iter().collect())
}

/// What [`load_model`] did beyond loading every entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Names in the file that the model does not have (only when not strict).
    pub skipped: Vec<String>,
}

/// Reads a float tensor of the file's dtype into `T`.
fn read_float<T: Float>(view: &safetensors::tensor::TensorView<'_>) -> Vec<T> {
    let b = view.data();
    match view.dtype() {
        Dtype::F32 => {
            b.chunks_exact(4).map(|c| T::of(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)).collect()
        }
        _ => b.chunks_exact(8).map(|c| T::of(f64::from_le_bytes(c.try_into().expect("8 bytes")))).collect(),
    }
}

fn open(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io_error(path, e))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes)
        .map_err(|e| io_error(path, format!("not a valid safetensors file ({e}); truncated or corrupted?")))
}

/// Loads `path` into `model`. Every model entry must be in the file with the
/// same shape and dtype (floats as the model's element type, counters as
/// i64). Names in the file that the model lacks are an error when `strict`;
/// otherwise they are skipped and listed in the report. Nothing is changed
/// unless the whole file checks out.
pub fn load_model<T: Float>(model: &mut dyn Module<T>, path: &Path, strict: bool) -> Result<LoadReport> {
    let bytes = open(path)?;
    let file = parse(path, &bytes)?;
    let meta = metadata_of(path, &bytes)?;
    load_entries(model, &file, &meta, path, strict, |_| false)
}

/// Every entry of `model` with the shape and dtype a file must hold it in.
fn entries<T: Float>(model: &dyn Module<T>) -> BTreeMap<String, (Vec<usize>, Dtype)> {
    let mut expected = BTreeMap::new();
    model.visit("", &mut |name, s| {
        let (shape, dtype) = match s {
            StateRef::Param(p) => (p.value().dims().to_vec(), dtype_of::<T>()),
            StateRef::Buffer(b) => (b.dims().to_vec(), dtype_of::<T>()),
            StateRef::Count(_) => (vec![], Dtype::I64),
        };
        expected.insert(name, (shape, dtype));
    });
    expected
}

/// [`load_model`] on a parsed file, ignoring the file's entries that `skip`
/// names.
fn load_entries<T: Float>(
    model: &mut dyn Module<T>,
    file: &SafeTensors<'_>,
    meta: &HashMap<String, String>,
    path: &Path,
    strict: bool,
    skip: impl Fn(&str) -> bool,
) -> Result<LoadReport> {
    let expected = entries(model);
    let present: BTreeMap<String, (Vec<usize>, Dtype)> = file
        .tensors()
        .into_iter()
        .filter(|(n, _)| !skip(n))
        .map(|(n, v)| (n, (v.shape().to_vec(), v.dtype())))
        .collect();
    let missing: Vec<&String> = expected.keys().filter(|n| !present.contains_key(*n)).collect();
    let unexpected: Vec<String> = present.keys().filter(|n| !expected.contains_key(*n)).cloned().collect();
    let mismatched: Vec<String> = expected
        .iter()
        .filter_map(|(n, (shape, dtype))| {
            let (fs, fd) = present.get(n)?;
            (fs != shape || fd != dtype).then(|| format!("{n}: file has {fd:?} {fs:?}, model has {dtype:?} {shape:?}"))
        })
        .collect();
    let mut problems = Vec::new();
    let misfit = !missing.is_empty() || !mismatched.is_empty() || (strict && !unexpected.is_empty());
    if let Some(held) = meta.get("model").filter(|_| misfit) {
        problems.push(format!("the file holds a {held} (its metadata says so), which does not fit this model"));
    }
    if !missing.is_empty() {
        problems.push(format!("missing from the file: {}", join_names(&missing)));
    }
    if strict && !unexpected.is_empty() {
        problems.push(format!("not in the model: {}", join_names(&unexpected.iter().collect::<Vec<_>>())));
    }
    if !mismatched.is_empty() {
        problems.push(format!("shape or dtype differs: {}", join_some(&mismatched, "; ")));
    }
    if !problems.is_empty() {
        return Err(io_error(path, problems.join(". ")));
    }
    assign(model, file, path, |_| true)?;
    Ok(LoadReport { skipped: unexpected })
}

/// Sets every model entry that `load` picks from the file's entry of the
/// same name, whose shape and dtype the caller has checked.
fn assign<T: Float>(
    model: &mut dyn Module<T>,
    file: &SafeTensors<'_>,
    path: &Path,
    load: impl Fn(&str) -> bool,
) -> Result<()> {
    let mut failure = None;
    model.visit_mut("", &mut |name, s| {
        if !load(&name) {
            return;
        }
        let view = match file.tensor(&name) {
            Ok(v) => v,
            Err(e) => {
                failure.get_or_insert_with(|| io_error(path, format!("{name}: {e}")));
                return;
            }
        };
        match s {
            StateMut::Param(p) => {
                *p.value_mut() = Tensor::from_vec(read_float(&view), view.shape().to_vec()).expect("shape checked")
            }
            StateMut::Buffer(b) => {
                *b = Tensor::from_vec(read_float(&view), view.shape().to_vec()).expect("shape checked")
            }
            StateMut::Count(c) => *c = i64::from_le_bytes(view.data().try_into().expect("i64 scalar checked")),
        }
    });
    failure.map_or(Ok(()), Err)
}

/// How [`init_from`] starts a model from weights trained for another task.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct InitOptions {
    /// Model entries under these prefixes (`"fc."`) keep their fresh
    /// initial values when the file's are missing or of another shape: the
    /// classifier that fine-tuning replaces with one for its own classes.
    /// The file's entries under them are then left unused.
    pub replace: Vec<String>,
    /// Load what fits and keep the rest as initialised, listing it,
    /// instead of refusing a file that does not fit the model.
    pub partial: bool,
}

/// Builder methods, one per setting (the struct is `#[non_exhaustive]`).
impl InitOptions {
    /// Adds a prefix to [`InitOptions::replace`](Self::replace).
    pub fn with_replace(mut self, prefix: impl Into<String>) -> Self {
        self.replace.push(prefix.into());
        self
    }

    /// Sets [`InitOptions::partial`](Self::partial).
    pub fn with_partial(mut self, value: bool) -> Self {
        self.partial = value;
        self
    }
}

/// What [`init_from`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InitReport {
    /// The model entries loaded from the file.
    pub loaded: usize,
    /// The model entries kept as initialised, each with why
    /// (`fc.weight: the file's is F32 [1000, 512], the model's F32 [5, 512]`).
    pub fresh: Vec<String>,
    /// The file's entries that were not loaded: not in the model, or
    /// replaced.
    pub unused: Vec<String>,
}

/// Starts `model` from the weights in `path` (a Wengert model file, or a
/// PyTorch state dict saved as safetensors, whose names Wengert's zoo
/// shares): PyTorch's `load_state_dict(strict=True)`, except for the
/// entries `options` lets stay fresh. Every entry missing from the file,
/// every entry of another shape or dtype and every file entry the model
/// lacks is an error naming them all, and nothing is changed, unless it is
/// under a [`replace`](InitOptions::replace) prefix or the load is
/// [`partial`](InitOptions::partial).
///
/// ```
/// use wengert_nn::checkpoint::{init_from, save_model, InitOptions};
/// use wengert_nn::layer::{Linear, Sequential};
/// use wengert_nn::Module;
///
/// let net = |classes| -> wengert_core::Result<Sequential<f32>> {
///     Ok(Sequential::new()
///         .push_named("body", Linear::new(4, 3, true, &mut wengert_core::rng(0))?)
///         .push_named("fc", Linear::new(3, classes, true, &mut wengert_core::rng(1))?))
/// };
/// let path = std::env::temp_dir().join(format!("wengert-init-doc-{}.safetensors", std::process::id()));
/// save_model(&net(1000)?, &path)?;
/// let mut mine = net(5)?;
/// assert!(init_from(&mut mine, &path, &InitOptions::default()).is_err()); // fc differs
/// let report = init_from(&mut mine, &path, &InitOptions::default().with_replace("fc."))?;
/// assert_eq!((report.loaded, report.fresh.len()), (2, 2)); // body loaded, fc fresh
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn init_from<T: Float>(model: &mut dyn Module<T>, path: &Path, options: &InitOptions) -> Result<InitReport> {
    let bytes = open(path)?;
    let file = parse(path, &bytes)?;
    let meta = metadata_of(path, &bytes)?;
    let replaced = |name: &str| options.replace.iter().any(|p| name.starts_with(p.as_str()));
    let expected = entries(model);
    let present: BTreeMap<String, (Vec<usize>, Dtype)> =
        file.tensors().into_iter().map(|(n, v)| (n, (v.shape().to_vec(), v.dtype()))).collect();
    // Float files of the other width load as the model's floats.
    let fits = |(fs, fd): &(Vec<usize>, Dtype), (ms, md): &(Vec<usize>, Dtype)| {
        fs == ms && (fd == md || (matches!(fd, Dtype::F32 | Dtype::F64) && matches!(md, Dtype::F32 | Dtype::F64)))
    };
    let (mut missing, mut mismatched, mut fresh, mut load) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (name, want) in &expected {
        let why = match present.get(name) {
            Some(have) if fits(have, want) => {
                load.push(name.clone());
                continue;
            }
            Some((fs, fd)) => format!("{name}: the file's is {fd:?} {fs:?}, the model's {:?} {:?}", want.1, want.0),
            None => format!("{name}: not in the file"),
        };
        if replaced(name) || options.partial {
            fresh.push(why);
        } else if present.contains_key(name) {
            mismatched.push(why);
        } else {
            missing.push(name.clone());
        }
    }
    let unexpected: Vec<String> = present.keys().filter(|n| !expected.contains_key(*n)).cloned().collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("missing from the file: {}", join_names(&missing)));
    }
    let strangers: Vec<&String> = unexpected.iter().filter(|n| !replaced(n) && !options.partial).collect();
    if !strangers.is_empty() {
        problems.push(format!("not in the model: {}", join_names(&strangers)));
    }
    if !mismatched.is_empty() {
        problems.push(format!("shape or dtype differs: {}", join_some(&mismatched, "; ")));
    }
    if !problems.is_empty() {
        if let Some(held) = meta.get("model") {
            problems.insert(0, format!("the file holds a {held} (its metadata says so)"));
        }
        return Err(io_error(path, format!("does not fit the model: {}", problems.join(". "))));
    }
    assign(model, &file, path, |name| load.binary_search_by(|n| n.as_str().cmp(name)).is_ok())?;
    let mut unused = unexpected;
    unused.extend(present.keys().filter(|n| expected.contains_key(*n) && !load.contains(n)).cloned());
    Ok(InitReport { loaded: load.len(), fresh, unused })
}

/// The first few names, and how many more: a file of another model can
/// differ in hundreds of entries, and a message should fit on a screen.
fn join_names<S: AsRef<str>>(names: &[S]) -> String {
    join_some(names, ", ")
}

fn join_some<S: AsRef<str>>(names: &[S], separator: &str) -> String {
    const SHOWN: usize = 4;
    let mut s = names.iter().take(SHOWN).map(|n| n.as_ref()).collect::<Vec<_>>().join(separator);
    if names.len() > SHOWN {
        s += &format!(" and {} more", names.len() - SHOWN);
    }
    s
}

/// Saves an optimiser state and the caller's training position (free-form
/// key/value pairs, e.g. epoch and iteration) to `path`.
pub fn save_training_state<T: Float>(
    state: &OptimState<T>,
    position: &BTreeMap<String, String>,
    path: &Path,
) -> Result<()> {
    let entries: Vec<(String, Raw)> = state.tensors.iter().map(|(n, t)| (n.clone(), raw_float(t))).collect();
    let mut meta: HashMap<String, String> =
        position.iter().map(|(k, v)| (format!("position.{k}"), v.clone())).collect();
    meta.insert("optimizer.steps".into(), state.steps.to_string());
    write_atomic(path, &serialize(&entries, Some(meta), path)?)
}

/// Loads what [`save_training_state`] wrote.
pub fn load_training_state<T: Float>(path: &Path) -> Result<(OptimState<T>, BTreeMap<String, String>)> {
    let bytes = open(path)?;
    let file = parse(path, &bytes)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| io_error(path, e))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let steps = meta
        .get("optimizer.steps")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io_error(path, "no optimizer.steps in the metadata: not a training-state file"))?;
    let tensors = float_tensors(&file, path)?.into_iter().collect();
    let position =
        meta.iter().filter_map(|(k, v)| k.strip_prefix("position.").map(|k| (k.to_string(), v.clone()))).collect();
    Ok((OptimState { tensors, steps }, position))
}

/// Every tensor of a parsed file, which must all be of type `T`.
fn float_tensors<T: Float>(file: &SafeTensors<'_>, path: &Path) -> Result<BTreeMap<String, Tensor<T>>> {
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() != dtype_of::<T>() {
            return Err(io_error(path, format!("{name} is {:?}, expected {:?}", view.dtype(), dtype_of::<T>())));
        }
        out.insert(name, Tensor::from_vec(read_float(&view), view.shape().to_vec())?);
    }
    Ok(out)
}

/// Reads every tensor of a safetensors file (all must be of type `T`), by name.
pub fn read_tensors<T: Float>(path: &Path) -> Result<BTreeMap<String, Tensor<T>>> {
    let bytes = open(path)?;
    float_tensors(&parse(path, &bytes)?, path)
}

/// Writes named tensors to a safetensors file, atomically.
pub fn write_tensors<T: Float>(tensors: &BTreeMap<String, Tensor<T>>, path: &Path) -> Result<()> {
    let entries: Vec<(String, Raw)> = tensors.iter().map(|(n, t)| (n.clone(), raw_float(t))).collect();
    write_atomic(path, &serialize(&entries, None, path)?)
}
