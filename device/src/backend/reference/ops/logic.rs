//! Logic: the broadcast binary kernel with And, Or or Xor on booleans (0 or 1).

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::binary;
use crate::ir::Logic;

impl Kernel for Logic {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let op = self.op;
        binary(&cx.ins[0], &cx.ins[1], cx.bufs, &cx.epi, |a, b| {
            f32::from(u8::from(op.holds(a != 0.0, b != 0.0)))
        })
    }
}
