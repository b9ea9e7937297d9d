//! Pad: the layout family's constant padding.

use super::{Cx, Kernel, Out};
use crate::backend::reference::layout::pad;
use crate::ir::Pad;

impl Kernel for Pad {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        pad(&cx.ins[0], &self.pads, self.value).map(Out::Real)
    }
}
