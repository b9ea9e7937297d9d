//! Gelu: 0.5·x·(1 + erf(x/√2)), or ONNX's tanh approximation.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::{map, tabled};
use crate::ir::Gelu;

impl Kernel for Gelu {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let (n, e, tanh) = (cx.ins[0].data.len(), cx.encs[0], self.tanh);
        let k = (2.0 / std::f32::consts::PI).sqrt();
        let f = tabled(n, e, |v: f32| {
            if tanh {
                0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh())
            } else {
                0.5 * v * (1.0 + libm::erff(v * std::f32::consts::FRAC_1_SQRT_2))
            }
        });
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, f))
    }
}
