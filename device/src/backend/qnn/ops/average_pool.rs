//! AveragePool → PoolAvg2d.

use qnn_sys::ParamSpec;

use super::{pool_params, Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::AveragePool;

impl Lower for AveragePool {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let mut params = pool_params(&self.0);
        params.push(ParamSpec::Bool(
            "count_pad_for_edges",
            self.0.count_include_pad,
        ));
        cx.node("PoolAvg2d", &params)
    }
}
