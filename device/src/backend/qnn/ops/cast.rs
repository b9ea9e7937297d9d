//! Cast to bool → ElementWiseNotEqual of the input and a static zero on its grid (exact at every width).
//! HTP's own Cast of a UFIXED_POINT_16 tensor to BOOL_8 computes right, but an op reading its result
//! through a Reshape or Tile then fails to build ("could not create op"). Cast to float →
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
                let (x, e) = cx.b.get(cx.n.inputs[0], cx.width())?;
                let name = cx.b.fresh(&cx.n.name);
                let zero =
                    cx.b.static_values(&format!("{name}_zero"), &[1], &[0.0], e)?;
                cx.emit_boolean("ElementWiseNotEqual", &[x, zero])
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
