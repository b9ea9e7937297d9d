//! Sigmoid: 1 / (1 + e⁻ˣ) in f32.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::{map, tabled};
use crate::ir::Sigmoid;

impl Kernel for Sigmoid {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let f = tabled(cx.ins[0].data.len(), cx.encs[0], |v| {
            1.0 / (1.0 + (-v).exp())
        });
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, f))
    }
}
