//! LayerNorm: mean and variance in f64 over the normalised axes, then gamma and beta.

use super::{Cx, Kernel, Out};
use crate::backend::Array;
use crate::ir::LayerNorm;

impl Kernel for LayerNorm {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let x = &cx.ins[0];
        let n: usize = x.shape[self.axis..].iter().product();
        let (gamma, beta) = (cx.ins[1].data, cx.ins[2].data);
        let at = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
        let mut out = cx.bufs.take(x.data.len());
        for (row, y) in x.data.chunks(n).zip(out.chunks_mut(n)) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            let inv = 1.0 / (var + self.epsilon as f64).sqrt();
            for (i, (y, &v)) in y.iter_mut().zip(row).enumerate() {
                *y = (((v as f64 - mean) * inv) as f32) * at(gamma, i) + at(beta, i);
            }
        }
        Ok(Out::Real(Array::new(x.shape.to_vec(), out)))
    }
}
