//! Add: the broadcast binary kernel with the sum.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::binary;
use crate::ir::Add;

impl Kernel for Add {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        binary(&cx.ins[0], &cx.ins[1], cx.bufs, &cx.epi, |a, b| a + b)
    }
}
