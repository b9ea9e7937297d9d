//! MatMul → MatMul (rank 2 and 3; rank-4 tensors are stored NHWC on HTP, so their last two axes are not the
//! IR's).

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::MatMul;

impl Lower for MatMul {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        if cx.rank() == 4 {
            return Err(cx.unsupported("MatMul of rank-4 tensors (they are stored NHWC on HTP)"));
        }
        let params = [
            ParamSpec::Bool("transpose_in0", false),
            ParamSpec::Bool("transpose_in1", false),
        ];
        cx.node("MatMul", &params)
    }
}
