//! Pow → ElementWiseMultiply of x by itself (exponent 2) or ElementWiseSquareRoot (0.5); other exponents
//! are refused (HTP's ElementWisePower would need the exponent as a quantized tensor).

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Pow;

impl Lower for Pow {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        match self.exponent {
            2.0 => {
                let x = cx.inputs()?[0];
                cx.emit("ElementWiseMultiply", &[], &[x, x])
            }
            0.5 => cx.node("ElementWiseSquareRoot", &[]),
            e => Err(cx.unsupported(format!(
                "Pow with exponent {e}: amp lowers exponents 2 and 0.5"
            ))),
        }
    }
}
