//! Cast to bool → Cast of the quantized input to BOOL_8 (HTP compares the value with zero); Cast to float →
//! ElementWiseSelect of 1 and 0, two static values at the output's encoding: HTP's Cast takes BOOL_8 to
//! UFIXED_POINT_8 but not to UFIXED_POINT_16 (backendValidateOpConfig lists the sets it takes), and the
//! Select works at both widths.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::{Cast, CastTo};

impl Lower for Cast {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        match self.to {
            CastTo::Bool => {
                let ins = cx.inputs()?;
                cx.emit_boolean("Cast", &ins)
            }
            CastTo::Float => {
                let c = cx.boolean(0)?;
                let e = cx.out_e()?.at_bits(cx.width());
                let name = cx.b.fresh(&cx.n.name);
                let one =
                    cx.b.static_values(&format!("{name}_one"), &[1], &[1.0], e)?;
                let zero =
                    cx.b.static_values(&format!("{name}_zero"), &[1], &[0.0], e)?;
                cx.emit("ElementWiseSelect", &[], &[c, one, zero])
            }
        }
    }
}
