//! Compare → ElementWiseGreater, ElementWiseGreaterEqual, ElementWiseLess or ElementWiseLessEqual, the inputs
//! at the width the node computes at, writing BOOL_8 (as Equal).

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::{Compare, Comparison};

impl Lower for Compare {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let op = match self.op {
            Comparison::Greater => "ElementWiseGreater",
            Comparison::GreaterOrEqual => "ElementWiseGreaterEqual",
            Comparison::Less => "ElementWiseLess",
            Comparison::LessOrEqual => "ElementWiseLessEqual",
        };
        let ins = cx.inputs()?;
        cx.emit_boolean(op, &ins)
    }
}
