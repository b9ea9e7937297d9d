//! Sigmoid → Sigmoid.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Sigmoid;

impl Lower for Sigmoid {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("Sigmoid", &[])
    }
}
