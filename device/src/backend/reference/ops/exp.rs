//! Exp: eˣ.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::map;
use crate::ir::Exp;

impl Kernel for Exp {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, |v| v.exp()))
    }
}
