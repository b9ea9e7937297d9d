//! Pow: xᵉ (x·x for 2 and √x for 0.5, as the lowering computes them).

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::{map, tabled};
use crate::ir::Pow;

impl Kernel for Pow {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let e = self.exponent;
        let y = match e {
            2.0 => map(&cx.ins[0], cx.bufs, &cx.epi, |v| v * v),
            0.5 => map(&cx.ins[0], cx.bufs, &cx.epi, |v| v.max(0.0).sqrt()),
            _ => {
                let f = tabled(cx.ins[0].data.len(), cx.encs[0], |v| v.powf(e));
                map(&cx.ins[0], cx.bufs, &cx.epi, f)
            }
        };
        Ok(y)
    }
}
