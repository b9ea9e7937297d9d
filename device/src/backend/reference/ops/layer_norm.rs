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
        normalise_rows(x.data, &mut out, n, self.epsilon, |_, i| {
            (at(gamma, i), at(beta, i))
        });
        Ok(Out::Real(Array::new(x.shape.to_vec(), out)))
    }
}

/// Normalises each run of `n` values of `x` into `out` (mean and variance in f64), then scales and shifts
/// element `i` of row `r` by `affine(r, i)`. LayerNorm and InstanceNorm differ only in the rows and the
/// affine.
pub(super) fn normalise_rows(
    x: &[f32],
    out: &mut [f32],
    n: usize,
    epsilon: f32,
    affine: impl Fn(usize, usize) -> (f32, f32),
) {
    for (r, (row, y)) in x.chunks(n).zip(out.chunks_mut(n)).enumerate() {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let inv = 1.0 / (var + epsilon as f64).sqrt();
        for (i, (y, &v)) in y.iter_mut().zip(row).enumerate() {
            let (g, b) = affine(r, i);
            *y = (((v as f64 - mean) * inv) as f32) * g + b;
        }
    }
}
