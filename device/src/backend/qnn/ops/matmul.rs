//! MatMul → MatMul. Rank-4 tensors (attention's `[batch, heads, rows, cols]`) are stored NHWC on HTP, so
//! their last two axes are not the IR's: each operand is first transposed to the IR's axis order (keeping
//! its encoding), the product taken there, and the result transposed back to NHWC.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx};
use crate::backend::qnn::{qdims, Result};
use crate::ir::MatMul;

/// QNN axes that put a stored NHWC tensor in the IR's NCHW order, and back.
const TO_NCHW: [u32; 4] = [0, 3, 1, 2];
const TO_NHWC: [u32; 4] = [0, 2, 3, 1];

impl Lower for MatMul {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let params = [
            ParamSpec::Bool("transpose_in0", false),
            ParamSpec::Bool("transpose_in1", false),
        ];
        if cx.rank() != 4 {
            return cx.node("MatMul", &params);
        }
        let (n, bits, batch) = (cx.n, cx.width(), cx.b.batch);
        let nchw = |d: Vec<u32>| TO_NCHW.map(|a| d[a as usize]).to_vec();
        let mut ins = Vec::with_capacity(2);
        for k in 0..2 {
            let t = n.inputs[k];
            if cx.b.g.tensors[t].is_const() || cx.in_shape(k).len() != 4 {
                return Err(
                    cx.unsupported("a rank-4 MatMul of a constant or of operands of another rank")
                );
            }
            let (r, e) = cx.b.get(t, bits)?;
            let dims = nchw(qdims(cx.in_shape(k), batch));
            let name = cx.b.fresh(&format!("{}_nchw", cx.b.g.tensors[t].name));
            let moved = cx.b.native(&name, &dims, e, false)?;
            let node = cx.b.fresh(&format!("{}_in{k}", n.name));
            let p = [ParamSpec::U32Tensor("perm", vec![4], TO_NCHW.to_vec())];
            cx.b.q.node(&node, "Transpose", &p, &[r], &[moved])?;
            ins.push(moved);
        }
        let dims = nchw(qdims(cx.out_shape(), batch));
        let out_name = cx.b.g.tensors[n.output].name.clone();
        let name = cx.b.fresh(&format!("{out_name}_nchw"));
        let product =
            cx.b.native(&name, &dims, cx.out_e()?.at_bits(bits), false)?;
        let node = cx.b.fresh(&format!("{}_nchw", n.name));
        cx.b.q.node(&node, "MatMul", &params, &ins, &[product])?;
        let p = [ParamSpec::U32Tensor("perm", vec![4], TO_NHWC.to_vec())];
        cx.emit("Transpose", &p, &[product])
    }
}
