//! Sqrt → ElementWiseSquareRoot.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Sqrt;

impl Lower for Sqrt {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("ElementWiseSquareRoot", &[])
    }
}
