//! GlobalAveragePool → ReduceMean over the spatial axes (1 and 2 in NHWC), keeping them.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::GlobalAveragePool;

impl Lower for GlobalAveragePool {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let params = [
            ParamSpec::U32Tensor("axes", vec![2], vec![1, 2]),
            ParamSpec::Bool("keep_dims", true),
        ];
        cx.node("ReduceMean", &params)
    }
}
