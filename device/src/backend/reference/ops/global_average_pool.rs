//! GlobalAveragePool: each plane's mean, summed in f64.

use super::{Cx, Kernel, Out};
use crate::backend::reference::pool::global_avg;
use crate::ir::GlobalAveragePool;

impl Kernel for GlobalAveragePool {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        global_avg(&cx.ins[0]).map(Out::Real)
    }
}
