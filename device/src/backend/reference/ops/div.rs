//! Div: the broadcast binary kernel with the quotient.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::binary;
use crate::ir::Div;

impl Kernel for Div {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        binary(&cx.ins[0], &cx.ins[1], cx.bufs, &cx.epi, |a, b| a / b)
    }
}
