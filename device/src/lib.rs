//! amp's device side and the definitions both ends share: the model IR ([`ir`]), quantization encodings and
//! precision configs ([`quant`]), and the execution backends ([`backend`]).
//!
//! The host imports ONNX into [`ir::Graph`], calibrates with the reference backend, and searches precision
//! configs; the agent (binary `amp-agent`) runs the same IR with the same encodings on the device.

#![forbid(unsafe_code)]

/// A layer's registration list of ops: `fn $dispatch(op: &Op) -> &dyn $Trait`, matching every op listed
/// (an op left out of the list does not compile, since the match must cover every op), and `$LIST`, the
/// ops listed, for the op-coverage test.
macro_rules! register_ops {
    ($vis:vis fn $dispatch:ident -> dyn $tr:ident; $lvis:vis const $list:ident; $($op:ident),* $(,)?) => {
        /// The entry of `op` in this layer.
        $vis fn $dispatch(op: &$crate::ir::Op) -> &dyn $tr {
            match op {
                $($crate::ir::Op::$op(o) => o,)*
            }
        }

        /// The ops this layer has an entry for.
        $lvis const $list: &[$crate::ir::OpKind] = &[$($crate::ir::OpKind::$op,)*];
    };
}

pub mod agent;
pub mod backend;
pub mod convert;
pub mod error;
pub mod ir;
pub mod metrics;
pub mod protocol;
pub mod quant;

pub use ir::{Graph, Node, Op, Tensor, TensorId};
