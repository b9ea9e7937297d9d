//! Logic → ElementWiseAnd, ElementWiseOr or ElementWiseXor on BOOL_8.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Logic;

impl Lower for Logic {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        // QNN names them as ONNX does
        let op = format!("ElementWise{}", self.op.onnx());
        let ins = [cx.boolean(0)?, cx.boolean(1)?];
        cx.emit_boolean(&op, &ins)
    }
}
