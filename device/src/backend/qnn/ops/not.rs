//! Not → ElementWiseNot on BOOL_8.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Not;

impl Lower for Not {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let x = cx.boolean(0)?;
        cx.emit_boolean("ElementWiseNot", &[x])
    }
}
