//! InstanceNorm → InstanceNorm (mean and variance over the spatial axes), scale and bias as `[C]` static
//! tensors (bias an int32 at 16 bits). Only a 4-D tensor, which HTP holds as NHWC with channels last as the
//! op wants them; a rank-3 one would need its channels moved last, and is refused.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::InstanceNorm;

impl Lower for InstanceNorm {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        if cx.rank() != 4 {
            return Err(cx.unsupported(format!(
                "InstanceNorm of a rank-{} tensor (HTP takes it 4-D)",
                cx.rank()
            )));
        }
        let (n, bits) = (cx.n, cx.width());
        let x = cx.b.get(n.inputs[0], bits)?.0;
        let scale = cx.b.constant(n, 1, 1, bits)?;
        let bias = cx.b.constant(n, 2, 1, bits)?;
        let params = [ParamSpec::F32("epsilon", self.epsilon)];
        cx.emit("InstanceNorm", &params, &[x, scale, bias])
    }
}
