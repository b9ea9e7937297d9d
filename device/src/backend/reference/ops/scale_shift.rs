//! ScaleShift: x · scale + shift per channel.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::scale_shift;
use crate::ir::ScaleShift;

impl Kernel for ScaleShift {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        scale_shift(&cx.ins[0], cx.ins[1].data, cx.ins[2].data).map(Out::Real)
    }
}
