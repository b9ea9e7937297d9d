//! Concat → Concat, its axis mapped to NHWC; the inputs are converted to the output's width, and each
//! activation input in another encoding is first requantized to the output's by a Convert of its own.
//! Booleans (BOOL_8) are joined as they are.
//!
//! HTP's Concat requantizes inputs of other encodings itself, except in a case measured on v73: an input
//! written by a nearest Resize of a SiLU (Sigmoid, Mul) was copied as codes, not requantized, so its values
//! came out scaled by the ratio of the two scales (about 2× in YOLOX's PAN, 122 LSB; ddddocr's detector lost
//! a quarter of its mAP). With every input in the output's encoding the Concat is a copy and the
//! requantization is the Convert's, the same single rounding the reference makes.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx, NCHW_IN_NHWC};
use crate::backend::qnn::{qdims, Result};
use crate::ir::Concat;

impl Lower for Concat {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let axis = if cx.rank() == 4 {
            NCHW_IN_NHWC[self.axis]
        } else {
            self.axis
        };
        let mut ins = cx.inputs()?;
        let params = [ParamSpec::U32("axis", axis as u32)];
        if cx.moves_boolean() {
            return cx.emit("Concat", &params, &ins);
        }
        let out = cx.out_e()?.at_bits(cx.width());
        for (k, &t) in cx.n.inputs.iter().enumerate() {
            let tensor = &cx.b.g.tensors[t];
            if tensor.is_const() {
                continue;
            }
            let e = cx.b.get(t, cx.width())?.1;
            if e != out {
                let dims = qdims(&tensor.shape, cx.b.batch);
                let name = cx.b.fresh(&format!("{}_as_{}", tensor.name, cx.n.name));
                let y = cx.b.native(&name, &dims, out, false)?;
                let node = cx.b.fresh("requantize");
                cx.b.q.node(&node, "Convert", &[], &[ins[k]], &[y])?;
                ins[k] = y;
            }
        }
        cx.emit("Concat", &params, &ins)
    }
}
