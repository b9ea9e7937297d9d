//! Gather → Gather (axis 0): the table a static tensor at the output's encoding (its own range), the
//! indices the model's INT_32 input.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Gather;
use crate::quant::Encoding;

impl Lower for Gather {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let (g, n) = (cx.b.g, cx.n);
        let Some(&idx) = cx.b.ints.get(&n.inputs[1]) else {
            return Err(cx.unsupported("indices that are not an integer model input"));
        };
        if g.tensors[n.output].shape.len() == 4 {
            return Err(cx.unsupported("a rank-4 result (HTP keeps rank 4 as NHWC)"));
        }
        let t = &g.tensors[n.inputs[0]];
        let data = g.const_data(n.inputs[0]).unwrap_or(&[]);
        let e = Encoding::for_operand(&n.op, 0, data, cx.width())
            .ok_or_else(|| cx.unsupported("a table without an encoding"))?;
        let table = cx.b.static_values(&t.name, &t.shape, data, e)?;
        cx.emit("Gather", &[ParamSpec::I32("axis", 0)], &[table, idx])
    }
}
