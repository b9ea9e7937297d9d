//! LeakyRelu: x, or alpha · x below 0.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::map;
use crate::ir::LeakyRelu;

impl Kernel for LeakyRelu {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let alpha = self.alpha;
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, |v| {
            if v >= 0.0 {
                v
            } else {
                alpha * v
            }
        }))
    }
}
