//! Tutorials: Wengert from a first gradient to training deep ResNets.
//!
//! Each chapter is short and runnable; every code block in it is compiled
//! and run as a doctest, so the chapters cannot go stale. Read them in order:
//!
//! 1. [`ch01_first_gradient`]: a tape, a leaf, an expression, `backward`.
//! 2. [`ch02_tensors_and_shapes`]: tensors, shapes, broadcasting, and what an error tells you.
//! 3. [`ch03_your_own_op`]: your own differentiable op in your own crate, and checking it.
//! 4. [`ch04_property_tests`]: the gradient check inside proptest, and Jacobians.
//! 5. [`ch05_why_residual_blocks_train`]: the chain of Jacobians, `I + ∂F/∂x`, and a measurement.
//! 6. [`ch06_training_a_resnet`]: model, data, optimiser, schedule, checkpoints, resuming.
//! 7. [`ch07_beyond_first_order`]: grad of grad, `jvp`, `jacobian`, Hessian-vector products.
//! 8. [`ch08_speed_and_memory`]: threads, recomputation in residual blocks, benchmarking.
//! 9. [`ch09_your_own_module`]: a module with a parameter and a buffer, freezing, saving, inference.
//! 10. [`ch10_wengert_in_your_crate`]: which crates to depend on, features, threads.
//! 11. [`ch11_debugging`]: reading errors, a shape error in a model, `Freed`, the first NaN, profiling.
//! 12. [`ch12_interop`]: weights from PyTorch and back, through safetensors.
//! 13. [`ch13_your_own_data`]: datasets, the loader's determinism, batches of your own.
//! 14. [`ch14_fine_tuning`]: starting from pretrained weights, a new classifier, a frozen or slower backbone; ONNX export.

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch01_first_gradient.md"))]
pub mod ch01_first_gradient {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch02_tensors_and_shapes.md"))]
pub mod ch02_tensors_and_shapes {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch03_your_own_op.md"))]
pub mod ch03_your_own_op {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch04_property_tests.md"))]
pub mod ch04_property_tests {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch05_why_residual_blocks_train.md"))]
pub mod ch05_why_residual_blocks_train {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch06_training_a_resnet.md"))]
pub mod ch06_training_a_resnet {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch07_beyond_first_order.md"))]
pub mod ch07_beyond_first_order {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch08_speed_and_memory.md"))]
pub mod ch08_speed_and_memory {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch09_your_own_module.md"))]
pub mod ch09_your_own_module {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch10_wengert_in_your_crate.md"))]
pub mod ch10_wengert_in_your_crate {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch11_debugging.md"))]
pub mod ch11_debugging {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch12_interop.md"))]
pub mod ch12_interop {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch13_your_own_data.md"))]
pub mod ch13_your_own_data {}

#[doc = include_str!(concat!(env!("OUT_DIR"), "/ch14_fine_tuning.md"))]
pub mod ch14_fine_tuning {}
