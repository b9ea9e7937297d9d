//! MaxPool: the pool family's window loop, keeping the largest value.

use super::{Cx, Kernel, Out};
use crate::backend::reference::pool::max_pool;
use crate::ir::MaxPool;

impl Kernel for MaxPool {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        max_pool(&self.0, &cx.ins[0]).map(Out::Real)
    }
}
