//! Tanh → Tanh.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Tanh;

impl Lower for Tanh {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("Tanh", &[])
    }
}
