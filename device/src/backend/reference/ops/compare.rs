//! Compare: the broadcast binary kernel with the comparison, 1 or 0 (on the values the inputs stand for, as
//! Equal's).

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::binary;
use crate::ir::Compare;

impl Kernel for Compare {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let op = self.op;
        binary(&cx.ins[0], &cx.ins[1], cx.bufs, &cx.epi, |a, b| {
            f32::from(u8::from(op.holds(a, b)))
        })
    }
}
