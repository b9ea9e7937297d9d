//! Max: the broadcast binary kernel with the maximum.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::binary;
use crate::ir::Max;

impl Kernel for Max {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        binary(&cx.ins[0], &cx.ins[1], cx.bufs, &cx.epi, |a, b| a.max(b))
    }
}
