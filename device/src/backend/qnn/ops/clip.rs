//! Clip → ReluMinMax.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Clip;

impl Lower for Clip {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let params = [
            ParamSpec::F32("min_value", self.min),
            ParamSpec::F32("max_value", self.max),
        ];
        cx.node("ReluMinMax", &params)
    }
}
