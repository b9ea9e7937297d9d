//! AveragePool: the pool family's window loop, summing in f64.

use super::{Cx, Kernel, Out};
use crate::backend::reference::pool::avg_pool;
use crate::ir::AveragePool;

impl Kernel for AveragePool {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        avg_pool(&self.0, &cx.ins[0]).map(Out::Real)
    }
}
