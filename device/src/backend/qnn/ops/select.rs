//! Where → ElementWiseSelect: the BOOL_8 condition, then both values at the width the node computes at
//! (constants stored over their own range at that width).

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Where;

impl Lower for Where {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let mut ins = vec![cx.boolean(0)?];
        ins.extend(cx.inputs_from(1)?);
        cx.emit("ElementWiseSelect", &[], &ins)
    }
}
