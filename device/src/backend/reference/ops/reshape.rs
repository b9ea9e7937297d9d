//! Reshape: the same values under the op's shape, with the input's batch.

use super::{Cx, Kernel, Out};
use crate::backend::reference::layout::reshape;
use crate::ir::Reshape;

impl Kernel for Reshape {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        reshape(&cx.ins[0], &self.shape).map(Out::Real)
    }
}
