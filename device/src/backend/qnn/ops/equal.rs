//! Equal → ElementWiseEqual, the inputs at the width the node computes at, writing BOOL_8.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Equal;

impl Lower for Equal {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let ins = cx.inputs()?;
        cx.emit_boolean("ElementWiseEqual", &ins)
    }
}
