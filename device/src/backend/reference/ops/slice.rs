//! Slice: the layout family's strided gather.

use super::{Cx, Kernel, Out};
use crate::backend::reference::layout::slice;
use crate::ir::Slice;

impl Kernel for Slice {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        Ok(Out::Real(slice(&cx.ins[0], self)))
    }
}
