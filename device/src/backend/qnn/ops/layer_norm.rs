//! LayerNorm → LayerNorm over the normalised axes, gamma and beta as `[D]` static tensors (beta an int32
//! bias at 16 bits). A 4-D tensor, which HTP holds as NHWC, is refused when its normalised axes would not map
//! onto trailing NHWC axes.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::LayerNorm;

impl Lower for LayerNorm {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let rank = cx.rank();
        if rank == 4 && self.axis != 1 {
            return Err(cx.unsupported(format!(
                "LayerNorm from axis {} of a 4-D (NHWC on HTP) tensor",
                self.axis
            )));
        }
        let (n, bits) = (cx.n, cx.width());
        let x = cx.b.get(n.inputs[0], bits)?.0;
        let gamma = cx.b.constant(n, 1, 1, bits)?;
        let beta = cx.b.constant(n, 2, 1, bits)?;
        let axes: Vec<u32> = (self.axis as u32..rank as u32).collect();
        let params = [
            ParamSpec::F32("epsilon", self.epsilon),
            ParamSpec::U32Tensor("axes", vec![axes.len() as u32], axes),
        ];
        cx.emit("LayerNorm", &params, &[x, gamma, beta])
    }
}
