//! Sqrt: √x, negative inputs (an encoding's codes just below zero) read as zero.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::map;
use crate::ir::Sqrt;

impl Kernel for Sqrt {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, |v| v.max(0.0).sqrt()))
    }
}
