//! DepthToSpace and SpaceToDepth: the layout family's gather by block.

use super::{Cx, Kernel, Out};
use crate::backend::reference::layout::depth_space;
use crate::ir::DepthSpace;

impl Kernel for DepthSpace {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        Ok(Out::Real(depth_space(&cx.ins[0], self, cx.out_shape)))
    }
}
