//! Transpose: the layout family's strided copy.

use super::{Cx, Kernel, Out};
use crate::backend::reference::layout::transpose;
use crate::ir::Transpose;

impl Kernel for Transpose {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        transpose(&cx.ins[0], &self.perm).map(Out::Real)
    }
}
