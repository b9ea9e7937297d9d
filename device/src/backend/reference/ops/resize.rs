//! Resize: the layout family's nearest and linear resampling to the output's size.

use super::{Cx, Kernel, Out};
use crate::backend::reference::layout::resize;
use crate::ir::Resize;

impl Kernel for Resize {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        resize(self, &cx.ins[0], cx.out_shape).map(Out::Real)
    }
}
