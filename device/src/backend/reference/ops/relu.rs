//! Relu: max(x, 0), by the same select the fused epilogue uses.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::map;
use crate::backend::reference::requant::clamp;
use crate::ir::Relu;

impl Kernel for Relu {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, |v| {
            clamp(v, 0.0, f32::INFINITY)
        }))
    }
}
