//! Tile → Tile, its repeats mapped through NHWC storage.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx, NHWC_ORDER};
use crate::backend::qnn::Result;
use crate::ir::Tile;

impl Lower for Tile {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let rank = cx.rank();
        let reps: Vec<u32> = if rank == 4 {
            NHWC_ORDER.iter().map(|&a| self.reps[a] as u32).collect()
        } else {
            self.reps.iter().map(|&r| r as u32).collect()
        };
        cx.node(
            "Tile",
            &[ParamSpec::U32Tensor("multiples", vec![rank as u32], reps)],
        )
    }
}
