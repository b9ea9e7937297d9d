//! Abs → ElementWiseAbs.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Abs;

impl Lower for Abs {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("ElementWiseAbs", &[])
    }
}
