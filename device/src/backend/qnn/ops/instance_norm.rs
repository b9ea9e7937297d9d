//! InstanceNorm → InstanceNorm (mean and variance over the spatial axes, channels last), scale and bias as
//! `[C]` static tensors (bias an int32 at 16 bits). A 4-D tensor is held as NHWC already; a rank-3 `[N, C, L]`
//! one goes through a Transpose and a Reshape to `[N, 1, L, C]` and back, as the op takes 4-D tensors.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::InstanceNorm;

impl Lower for InstanceNorm {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let rank = cx.rank();
        if rank != 3 && rank != 4 {
            return Err(cx.unsupported(format!(
                "InstanceNorm of a rank-{rank} tensor (HTP takes it 4-D; amp moves rank 3 there)"
            )));
        }
        let (n, bits) = (cx.n, cx.width());
        let (x, xe) = cx.b.get(n.inputs[0], bits)?;
        let scale = cx.b.constant(n, 1, 1, bits)?;
        let bias = cx.b.constant(n, 2, 1, bits)?;
        let params = [ParamSpec::F32("epsilon", self.epsilon)];
        if rank == 4 {
            return cx.emit("InstanceNorm", &params, &[x, scale, bias]);
        }
        let s = cx.out_shape();
        let (batch, c, l) = (cx.b.batch as u32, s[1] as u32, s[2] as u32);
        let swap = || ParamSpec::U32Tensor("perm", vec![3], vec![0, 2, 1]);
        let wide = cx.out_e()?.at_bits(bits);
        // [N, C, L] → [N, L, C] → [N, 1, L, C], normalised, → [N, L, C], then the node's Transpose back
        let steps: [(&str, Vec<ParamSpec>, Vec<u32>, _); 4] = [
            ("Transpose", vec![swap()], vec![batch, l, c], xe),
            ("Reshape", vec![], vec![batch, 1, l, c], xe),
            ("InstanceNorm", params.to_vec(), vec![batch, 1, l, c], wide),
            ("Reshape", vec![], vec![batch, l, c], wide),
        ];
        let mut y = x;
        for (op, params, dims, e) in steps {
            let name = cx.b.fresh(&format!("{}_{op}", n.name));
            let out = cx.b.native(&name, &dims, e, false)?;
            let ins = if op == "InstanceNorm" {
                vec![y, scale, bias]
            } else {
                vec![y]
            };
            cx.b.q.node(&name, op, &params, &ins, &[out])?;
            y = out;
        }
        cx.emit("Transpose", &[swap()], &[y])
    }
}
