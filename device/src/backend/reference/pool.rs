//! Pooling and reductions.

use super::ArrayRef;
use crate::backend::Array;
use crate::ir::{Pool, ReduceOp};

fn pool(p: &Pool, x: &ArrayRef, max: bool) -> Result<Array, String> {
    let mut shape = p.infer(&[x.shape])?;
    shape[0] = x.shape[0];
    let (h, w) = (x.shape[2], x.shape[3]);
    let (oh, ow) = (shape[2], shape[3]);
    let planes = x.shape[0] * x.shape[1];
    let mut out = vec![0f32; planes * oh * ow];
    for pl in 0..planes {
        let xin = &x.data[pl * h * w..][..h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let y0 = (oy * p.strides[0]) as isize - p.pads[0] as isize;
                let x0 = (ox * p.strides[1]) as isize - p.pads[1] as isize;
                let mut m = f32::NEG_INFINITY;
                let mut sum = 0f64;
                let mut cnt = 0usize;
                let mut padded_cnt = 0usize;
                for ky in 0..p.kernel[0] as isize {
                    for kx in 0..p.kernel[1] as isize {
                        let (iy, ix) = (y0 + ky, x0 + kx);
                        // cells in the explicit padding count for count_include_pad; cells past it (ceil_mode) never do
                        if iy < (h + p.pads[2]) as isize && ix < (w + p.pads[3]) as isize {
                            padded_cnt += 1;
                        }
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = xin[iy as usize * w + ix as usize];
                        m = m.max(v);
                        sum += v as f64;
                        cnt += 1;
                    }
                }
                out[(pl * oh + oy) * ow + ox] = if max {
                    m
                } else {
                    let div = if p.count_include_pad { padded_cnt } else { cnt };
                    (sum / div.max(1) as f64) as f32
                };
            }
        }
    }
    Ok(Array::new(shape, out))
}

pub(crate) fn max_pool(p: &Pool, x: &ArrayRef) -> Result<Array, String> {
    pool(p, x, true)
}

pub(crate) fn avg_pool(p: &Pool, x: &ArrayRef) -> Result<Array, String> {
    pool(p, x, false)
}

/// The sum of `v` in f64, eight partial sums at a time (they vectorise; one running sum waits on each add).
/// f64 holds the sum of up to millions of f32 values exactly when they share a grid, as quantized values
/// do, so the order does not change it there.
fn sum_f64(v: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x as f64;
        }
    }
    let tail: f64 = it.remainder().iter().map(|&x| x as f64).sum();
    acc.iter().sum::<f64>() + tail
}

pub(crate) fn global_avg(x: &ArrayRef) -> Result<Array, String> {
    let inner: usize = x.shape[2..].iter().product();
    let out = x
        .data
        .chunks(inner)
        .map(|c| (sum_f64(c) / inner as f64) as f32)
        .collect();
    let mut shape = x.shape.to_vec();
    shape[2..].iter_mut().for_each(|d| *d = 1);
    Ok(Array::new(shape, out))
}

pub(crate) fn reduce(
    x: &ArrayRef,
    op: ReduceOp,
    axes: &[usize],
    keepdims: bool,
) -> Result<Array, String> {
    let rank = x.shape.len();
    let kept: Vec<usize> = x
        .shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let n_out: usize = kept.iter().product();
    let count: usize = axes.iter().map(|&a| x.shape[a]).product();
    let start = match op {
        ReduceOp::Mean | ReduceOp::Sum => 0.0,
        ReduceOp::Max => f64::NEG_INFINITY,
        ReduceOp::Min => f64::INFINITY,
    };
    let mut acc = vec![start; n_out];
    let mut idx = vec![0usize; rank];
    for &v in x.data {
        let mut o = 0;
        for d in 0..rank {
            o = o * kept[d] + if axes.contains(&d) { 0 } else { idx[d] };
        }
        let v = v as f64;
        acc[o] = match op {
            ReduceOp::Mean | ReduceOp::Sum => acc[o] + v,
            ReduceOp::Max => acc[o].max(v),
            ReduceOp::Min => acc[o].min(v),
        };
        for d in (0..rank).rev() {
            idx[d] += 1;
            if idx[d] < x.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    let shape = if keepdims {
        kept
    } else {
        x.shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    let div = if op == ReduceOp::Mean {
        count as f64
    } else {
        1.0
    };
    Ok(Array::new(
        shape,
        acc.into_iter().map(|s| (s / div) as f32).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_pool_excludes_padding_unless_asked() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let r = ArrayRef {
            shape: &[1, 1, 2, 2],
            data: &x,
        };
        let p = Pool {
            kernel: [2, 2],
            strides: [1, 1],
            pads: [1, 1, 0, 0],
            ceil_mode: false,
            count_include_pad: false,
        };
        assert_eq!(avg_pool(&p, &r).unwrap().data, vec![1.0, 1.5, 2.0, 2.5]);
        let p = Pool {
            count_include_pad: true,
            ..p
        };
        assert_eq!(avg_pool(&p, &r).unwrap().data, vec![0.25, 0.75, 1.0, 2.5]);
    }

    #[test]
    fn global_average_is_the_mean_of_each_plane() {
        // planes of 13 (eight partial sums and a tail of five), values on a quantization grid
        let x: Vec<f32> = (0..2 * 3 * 13)
            .map(|v| ((v * 7) % 31) as f32 * 0.125 - 1.5)
            .collect();
        let y = global_avg(&ArrayRef {
            shape: &[2, 3, 13, 1],
            data: &x,
        })
        .unwrap();
        assert_eq!(y.shape, vec![2, 3, 1, 1]);
        let want: Vec<f32> = x
            .chunks(13)
            .map(|c| (c.iter().map(|&v| v as f64).sum::<f64>() / 13.0) as f32)
            .collect();
        assert_eq!(y.data, want);
    }

    #[test]
    fn reductions_over_spatial_axes() {
        let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let x = ArrayRef {
            shape: &[1, 2, 2, 2],
            data: &x,
        };
        let y = |op| reduce(&x, op, &[2, 3], false).unwrap();
        assert_eq!(y(ReduceOp::Mean).shape, vec![1, 2]);
        assert_eq!(y(ReduceOp::Mean).data, vec![1.5, 5.5]);
        assert_eq!(y(ReduceOp::Sum).data, vec![6.0, 22.0]);
        assert_eq!(y(ReduceOp::Max).data, vec![3.0, 7.0]);
        assert_eq!(y(ReduceOp::Min).data, vec![0.0, 4.0]);
        let kept = reduce(&x, ReduceOp::Max, &[1], true).unwrap();
        assert_eq!(
            (kept.shape, kept.data),
            (vec![1, 1, 2, 2], vec![4.0, 5.0, 6.0, 7.0])
        );
    }
}
