//! Exp: eˣ.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::{map, tabled};
use crate::ir::Exp;

impl Kernel for Exp {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let f = tabled(cx.ins[0].data.len(), cx.encs[0], f32::exp);
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, f))
    }
}
