//! Cast: to bool, 1 where the input is not zero; to float, the booleans as they are (the executor then
//! quantizes them to the output's encoding).

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::map;
use crate::ir::{Cast, CastTo};

impl Kernel for Cast {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        Ok(match self.to {
            CastTo::Bool => map(&cx.ins[0], cx.bufs, &cx.epi, |v| {
                f32::from(u8::from(v != 0.0))
            }),
            CastTo::Float => map(&cx.ins[0], cx.bufs, &cx.epi, |v| v),
        })
    }
}
