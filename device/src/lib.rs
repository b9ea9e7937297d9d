//! amp's device side and the definitions both ends share: the model IR ([`ir`]), quantization encodings and
//! precision configs ([`quant`]), and the execution backends ([`backend`]).
//!
//! The host imports ONNX into [`ir::Graph`], calibrates with the reference backend, and searches precision
//! configs; the agent (binary `amp-agent`) runs the same IR with the same encodings on the device.

#![forbid(unsafe_code)]

pub mod agent;
pub mod backend;
pub mod convert;
pub mod error;
pub mod ir;
pub mod metrics;
pub mod protocol;
pub mod quant;

pub use ir::{Graph, Node, Op, Tensor, TensorId};
