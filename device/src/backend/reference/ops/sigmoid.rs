//! Sigmoid: 1 / (1 + e⁻ˣ) in f32.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::map;
use crate::ir::Sigmoid;

impl Kernel for Sigmoid {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, |v| {
            1.0 / (1.0 + (-v).exp())
        }))
    }
}
