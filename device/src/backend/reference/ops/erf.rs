//! Erf: libm's erff.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::{map, tabled};
use crate::ir::Erf;

impl Kernel for Erf {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let f = tabled(cx.ins[0].data.len(), cx.encs[0], libm::erff);
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, f))
    }
}
