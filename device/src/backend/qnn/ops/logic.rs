//! Logic → ElementWiseAnd, ElementWiseOr or ElementWiseXor on BOOL_8.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::{Connective, Logic};

impl Lower for Logic {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let op = match self.op {
            Connective::And => "ElementWiseAnd",
            Connective::Or => "ElementWiseOr",
            Connective::Xor => "ElementWiseXor",
        };
        let ins = [cx.boolean(0)?, cx.boolean(1)?];
        cx.emit_boolean(op, &ins)
    }
}
