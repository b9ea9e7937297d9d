//! Relu → Relu.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Relu;

impl Lower for Relu {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("Relu", &[])
    }
}
