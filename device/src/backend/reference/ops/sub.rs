//! Sub: the broadcast binary kernel with the difference.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::binary;
use crate::ir::Sub;

impl Kernel for Sub {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        binary(&cx.ins[0], &cx.ins[1], cx.bufs, &cx.epi, |a, b| a - b)
    }
}
