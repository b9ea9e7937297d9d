//! Equal: the broadcast binary kernel with equality, 1 or 0 (on the values the inputs stand for: a
//! constant operand is on its stored grid, so `x == 0` compares with an exact zero).

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::binary;
use crate::ir::Equal;

impl Kernel for Equal {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        binary(&cx.ins[0], &cx.ins[1], cx.bufs, &cx.epi, |a, b| {
            f32::from(u8::from(a == b))
        })
    }
}
