//! ScaleShift → Batchnorm, with `[C]` scale and shift (the shift an int32 bias at 16 bits).

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::ScaleShift;

impl Lower for ScaleShift {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let (n, bits) = (cx.n, cx.width());
        let x = cx.b.get(n.inputs[0], bits)?.0;
        let scale = cx.b.constant(n, 1, 1, bits)?;
        let shift = cx.b.constant(n, 2, 1, bits)?;
        cx.emit("Batchnorm", &[], &[x, scale, shift])
    }
}
