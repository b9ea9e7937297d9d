//! ReduceMean: means over the op's axes, summed in f64.

use super::{Cx, Kernel, Out};
use crate::backend::reference::pool::reduce_mean;
use crate::ir::ReduceMean;

impl Kernel for ReduceMean {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        reduce_mean(&cx.ins[0], &self.axes, self.keepdims).map(Out::Real)
    }
}
