//! Reduce: means and sums over the op's axes summed in f64, maxima and minima.

use super::{Cx, Kernel, Out};
use crate::backend::reference::pool::reduce;
use crate::ir::Reduce;

impl Kernel for Reduce {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        reduce(&cx.ins[0], self.op, &self.axes, self.keepdims).map(Out::Real)
    }
}
