//! Not: 1 − x on booleans.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::map;
use crate::ir::Not;

impl Kernel for Not {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, |v| {
            f32::from(u8::from(v == 0.0))
        }))
    }
}
