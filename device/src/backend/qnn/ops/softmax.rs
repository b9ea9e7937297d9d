//! Softmax → Softmax (LogSoftmax → LogSoftmax), which HTP runs over the last axis (the channels of an NHWC
//! tensor); over any other axis, between two Transposes that move that axis last and back (the transposed
//! input keeps its encoding, the Softmax writes the output's).

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx, NCHW_IN_NHWC};
use crate::backend::qnn::{qdims, Result};
use crate::ir::Softmax;

impl Lower for Softmax {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let rank = cx.rank();
        let axis = if rank == 4 {
            NCHW_IN_NHWC[self.axis]
        } else {
            self.axis
        };
        if axis == 0 {
            return Err(cx.unsupported("a Softmax over the batch axis"));
        }
        // HTP validates a LogSoftmax only with its beta and axis given (a Softmax without them)
        let (op, params) = match self.log {
            true => (
                "LogSoftmax",
                vec![
                    ParamSpec::F32("beta", 1.0),
                    ParamSpec::U32("axis", rank as u32 - 1),
                ],
            ),
            false => ("Softmax", vec![]),
        };
        if axis == rank - 1 {
            return cx.node(op, &params);
        }
        let x = cx.inputs()?[0];
        let xe = cx.b.get(cx.n.inputs[0], cx.width())?.1;
        let dims = qdims(cx.out_shape(), cx.b.batch);
        // QNN axes in the order that puts `axis` last, and the order that undoes it
        let perm: Vec<u32> = (0..rank as u32)
            .filter(|&a| a != axis as u32)
            .chain([axis as u32])
            .collect();
        let mut back = vec![0u32; rank];
        for (i, &p) in perm.iter().enumerate() {
            back[p as usize] = i as u32;
        }
        let moved: Vec<u32> = perm.iter().map(|&p| dims[p as usize]).collect();
        let name = cx.b.g.tensors[cx.n.output].name.clone();
        let (t_name, s_name) = (cx.b.fresh(&format!("{name}_in")), cx.b.fresh(&name));
        let t = cx.b.native(&t_name, &moved, xe, false)?;
        let s =
            cx.b.native(&s_name, &moved, cx.out_e()?.at_bits(cx.width()), false)?;
        let rank_u = rank as u32;
        let node = cx.b.fresh(&format!("{}_to_last", cx.n.name));
        let p = [ParamSpec::U32Tensor("perm", vec![rank_u], perm)];
        cx.b.q.node(&node, "Transpose", &p, &[x], &[t])?;
        let node = cx.b.fresh(&format!("{}_last", cx.n.name));
        cx.b.q.node(&node, op, &params, &[t], &[s])?;
        cx.emit(
            "Transpose",
            &[ParamSpec::U32Tensor("perm", vec![rank_u], back)],
            &[s],
        )
    }
}
