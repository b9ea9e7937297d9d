//! InstanceNorm: LayerNorm's row normalisation over each channel's spatial values, scaled and shifted per
//! channel.

use super::layer_norm::normalise_rows;
use super::{Cx, Kernel, Out};
use crate::backend::Array;
use crate::ir::InstanceNorm;

impl Kernel for InstanceNorm {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let x = &cx.ins[0];
        let c = x.shape[1];
        let n: usize = x.shape[2..].iter().product();
        let (scale, bias) = (cx.ins[1].data, cx.ins[2].data);
        let mut out = cx.bufs.take(x.data.len());
        normalise_rows(x.data, &mut out, n, self.epsilon, |r, _| {
            (scale[r % c], bias[r % c])
        });
        Ok(Out::Real(Array::new(x.shape.to_vec(), out)))
    }
}
