//! Layers applied in order, each named by its position as PyTorch's
//! `nn.Sequential` names them (`0.weight`, `1.bias`, …).

use crate::module::{Module, Named, Step, Visit};
use wengert_core::{Float, Result, Var};

/// Layers applied in order. Children are named `0`, `1`, ... as in
/// PyTorch's `nn.Sequential`, unless given names.
///
/// ```
/// use wengert_nn::layer::{Activation, Linear, Sequential};
/// use wengert_nn::Module;
/// let mut rng = wengert_core::rng(0);
/// let net = Sequential::<f32>::new()
///     .push(Linear::new(4, 8, true, &mut rng)?)
///     .push(Activation::Relu)
///     .push(Linear::new(8, 2, true, &mut rng)?);
/// assert_eq!(net.state_names(), ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// assert_eq!(net.num_parameters(), 4 * 8 + 8 + 8 * 2 + 2);
/// # Ok::<(), wengert_core::Error>(())
/// ```
#[derive(Default)]
pub struct Sequential<T: Float> {
    layers: Named<Box<dyn Module<T>>>,
}

impl<T: Float> Sequential<T> {
    /// An empty sequence.
    pub fn new() -> Self {
        Sequential { layers: Named::default() }
    }

    /// Appends a layer named by its position.
    pub fn push(self, layer: impl Module<T> + 'static) -> Self {
        let name = self.layers.0.len().to_string();
        self.push_named(name, layer)
    }

    /// Appends a layer with a given name.
    pub fn push_named(mut self, name: impl Into<String>, layer: impl Module<T> + 'static) -> Self {
        self.layers.0.push((name.into(), Box::new(layer)));
        self
    }

    /// The number of layers.
    pub fn len(&self) -> usize {
        self.layers.0.len()
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.0.is_empty()
    }
}

impl<T: Float> Module<T> for Sequential<T> {
    /// Runs the layers in order.
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, mut x: Var<'t, T>) -> Result<Var<'t, T>> {
        for (_, layer) in &mut self.layers.0 {
            x = layer.forward(step, x)?;
        }
        Ok(x)
    }
}

impl<T: Float> Visit<T> for Sequential<T> {
    crate::visit_fields!("" => layers);
}
