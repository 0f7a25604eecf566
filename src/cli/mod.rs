//! The subcommands of the `wengert` program, one module each, and what
//! they share that is the program's own, not the library's: the benchmark
//! workloads (`workloads`, which the criterion benches in `benches/` include
//! too), the PNG charts (`plot`) and the memory check before a run
//! (`memory`).

pub mod bench;
pub mod conformance;
pub mod degradation;
pub mod demo;
pub mod export;
pub mod finetune;
pub mod gradflow;
pub mod memory;
pub mod plot;
pub mod predict;
pub mod summary;
pub mod train;
pub mod workloads;

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::path::Path;
use std::str::FromStr;
use wengert::core::{Error, Result};
use wengert::data::DatasetName;
use wengert::resnet::registry::Model;

/// A registry type the command line takes by name.
pub trait Named: FromStr<Err = Error> + Clone + Send + Sync + 'static {
    /// The names `--help` lists.
    fn names() -> &'static [&'static str];
}

impl Named for Model {
    fn names() -> &'static [&'static str] {
        Model::catalogue()
    }
}

impl Named for DatasetName {
    fn names() -> &'static [&'static str] {
        DatasetName::catalogue()
    }
}

/// clap's parser for a [`Named`] type: `--help` lists the registry's names,
/// and a name it does not know gets the registry's error, which suggests
/// the nearest one.
#[derive(Clone)]
pub struct ByName<T>(PhantomData<T>);

/// The parser for `T`, for `#[arg(value_parser = by_name::<T>())]`.
pub fn by_name<T: Named>() -> ByName<T> {
    ByName(PhantomData)
}

impl<T: Named> clap::builder::TypedValueParser for ByName<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> std::result::Result<T, clap::Error> {
        // The option as typed (`--model`), or the positional argument's name.
        let option = arg.map(|a| a.get_long().map_or_else(|| a.get_id().to_string(), |l| format!("--{l}")));
        let invalid = |detail: String| {
            let detail = option.as_ref().map_or(detail.clone(), |o| format!("{o}: {detail}"));
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, detail + "\n").with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| invalid(format!("{value:?} is not UTF-8")))?;
        text.parse().map_err(|e: Error| invalid(e.to_string()))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(T::names().iter().map(|&n| clap::builder::PossibleValue::new(n))))
    }
}

/// An error naming `command`'s `option` unless `path` is a file that can
/// be opened.
pub fn existing_file(command: &str, option: &str, path: &Path) -> Result<()> {
    let bad = |detail: String| Err(Error::argument(command, option, detail));
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => bad(format!("{} is a folder, not a file", path.display())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bad(format!("{} does not exist", path.display())),
        Err(e) => bad(format!("{}: {e}", path.display())),
    }
}
