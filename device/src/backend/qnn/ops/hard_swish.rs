//! HardSwish → HardSwish.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::HardSwish;

impl Lower for HardSwish {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("HardSwish", &[])
    }
}
