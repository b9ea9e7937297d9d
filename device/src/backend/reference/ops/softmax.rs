//! Softmax (or LogSoftmax) along its axis, summed in f64.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::softmax;
use crate::ir::Softmax;

impl Kernel for Softmax {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        softmax(&cx.ins[0], self.axis, self.log).map(Out::Real)
    }
}
