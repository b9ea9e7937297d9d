//! Tile: the layout family's repeating copy.

use super::{Cx, Kernel, Out};
use crate::backend::reference::layout::tile;
use crate::ir::Tile;

impl Kernel for Tile {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        Ok(Out::Real(tile(&cx.ins[0], &self.reps)))
    }
}
