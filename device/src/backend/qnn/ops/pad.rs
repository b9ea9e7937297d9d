//! Pad → Pad (constant scheme), the amounts in NHWC order and the value as a code of the input's encoding.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx, NHWC_ORDER};
use crate::backend::qnn::Result;
use crate::ir::Pad;

impl Lower for Pad {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let (pads, rank) = (&self.pads, cx.rank());
        if pads[0] != 0 || pads[rank] != 0 {
            return Err(cx.unsupported("padding the batch axis"));
        }
        let ins = cx.inputs()?;
        let e = cx.b.get(cx.n.inputs[0], cx.width())?.1;
        let amount: Vec<u32> = (0..rank)
            .map(|i| if rank == 4 { NHWC_ORDER[i] } else { i })
            .flat_map(|a| [pads[a] as u32, pads[a + rank] as u32])
            .collect();
        let params = [
            ParamSpec::U32("scheme", 0),
            ParamSpec::U32Tensor("pad_amount", vec![rank as u32, 2], amount),
            ParamSpec::I32("pad_constant_value", e.quantize(self.value) as i32),
        ];
        cx.emit("Pad", &params, &ins)
    }
}
