//! Gemm → FullyConnected over a `[batch, features]` input, or over the last axis of a `[batch, tokens,
//! features]` one (a transformer's projections), reshaped to batch × tokens rows and back.

use super::{Lower, NodeCx};
use crate::backend::qnn::builder::WeightLayout;
use crate::backend::qnn::Result;
use crate::ir::Gemm;

impl Lower for Gemm {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        match cx.in_shape(0).len() {
            // HTP refuses keep_dims: the rows are flattened around it
            2 | 3 => cx.mac("FullyConnected", &[], WeightLayout::OutIn),
            _ => Err(cx.unsupported(
                "FullyConnected takes a [batch, features] or [batch, tokens, features] input",
            )),
        }
    }
}
