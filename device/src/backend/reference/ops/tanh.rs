//! Tanh: f32's tanh.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::map;
use crate::ir::Tanh;

impl Kernel for Tanh {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, |v| v.tanh()))
    }
}
