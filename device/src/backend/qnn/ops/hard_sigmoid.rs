//! HardSigmoid → ElementWiseNeuron (operation 2, HARD_SIGMOID).

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::HardSigmoid;

impl Lower for HardSigmoid {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let params = [
            ParamSpec::U32("operation", 2),
            ParamSpec::F32("alpha", self.alpha),
            ParamSpec::F32("beta", self.beta),
        ];
        cx.node("ElementWiseNeuron", &params)
    }
}
