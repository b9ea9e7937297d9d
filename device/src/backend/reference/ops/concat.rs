//! Concat: the layout family's copy along the axis.

use super::{Cx, Kernel, Out};
use crate::backend::reference::layout::concat;
use crate::ir::Concat;

impl Kernel for Concat {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        concat(&cx.ins, self.axis).map(Out::Real)
    }
}
