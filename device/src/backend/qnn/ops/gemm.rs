//! Gemm → FullyConnected over a `[batch, features]` input.

use super::{Lower, NodeCx};
use crate::backend::qnn::builder::WeightLayout;
use crate::backend::qnn::Result;
use crate::ir::Gemm;

impl Lower for Gemm {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        if cx.in_shape(0).len() != 2 {
            return Err(cx.unsupported("FullyConnected takes a [batch, features] input"));
        }
        cx.mac("FullyConnected", &[], WeightLayout::OutIn)
    }
}
