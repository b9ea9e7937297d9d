//! Data movement: reshape, transpose, slice, tile, depth-to-space, concat, pad, resize.

use super::ArrayRef;
use crate::backend::Array;
use crate::ir::{CoordMode, DepthSpace, NearestMode, Resize, ResizeMode, Slice};

pub(crate) fn reshape(x: &ArrayRef, shape: &[usize]) -> Result<Array, String> {
    let mut s = shape.to_vec();
    s[0] = x.shape[0];
    if s.iter().product::<usize>() != x.data.len() {
        return Err(format!("cannot reshape {:?} to {s:?}", x.shape));
    }
    Ok(Array::new(s, x.data.to_vec()))
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

pub(crate) fn transpose(x: &ArrayRef, perm: &[usize]) -> Result<Array, String> {
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let xs = strides(x.shape);
    let src: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
    let rank = shape.len();
    let mut out = Vec::with_capacity(x.data.len());
    let mut idx = vec![0usize; rank];
    let mut off = 0usize;
    for _ in 0..x.data.len() {
        out.push(x.data[off]);
        for d in (0..rank).rev() {
            idx[d] += 1;
            off += src[d];
            if idx[d] < shape[d] {
                break;
            }
            off -= src[d] * shape[d];
            idx[d] = 0;
        }
    }
    Ok(Array::new(shape, out))
}

/// The elements a [`Slice`] reads, every sample's.
pub(crate) fn slice(x: &ArrayRef, s: &Slice) -> Array {
    let mut shape = s.lens.clone();
    shape[0] = x.shape[0];
    let rank = shape.len();
    let xs = strides(x.shape);
    // per axis, the input offset of each output index; the batch axis reads every sample
    let offs: Vec<Vec<usize>> = (0..rank)
        .map(|a| {
            (0..shape[a])
                .map(|j| if a == 0 { j } else { s.index(a, j) } * xs[a])
                .collect()
        })
        .collect();
    gather(x, shape, &offs)
}

/// `x` repeated `reps[a]` times along each axis (the batch axis once).
pub(crate) fn tile(x: &ArrayRef, reps: &[usize]) -> Array {
    let shape: Vec<usize> = x.shape.iter().zip(reps).map(|(&d, &r)| d * r).collect();
    let xs = strides(x.shape);
    let offs: Vec<Vec<usize>> = (0..shape.len())
        .map(|a| (0..shape[a]).map(|j| (j % x.shape[a]) * xs[a]).collect())
        .collect();
    gather(x, shape, &offs)
}

/// The output of `shape` whose element at index i reads `x` at offset Σₐ offs[a][i[a]] (per-axis offset
/// tables: a strided slice, a repetition).
fn gather(x: &ArrayRef, shape: Vec<usize>, offs: &[Vec<usize>]) -> Array {
    let rank = shape.len();
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; rank];
    for _ in 0..n {
        out.push(x.data[(0..rank).map(|a| offs[a][idx[a]]).sum::<usize>()]);
        for d in (0..rank).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Array::new(shape, out)
}

/// DepthToSpace or SpaceToDepth, every sample's.
pub(crate) fn depth_space(x: &ArrayRef, d: &DepthSpace, out: &[usize]) -> Array {
    let (n, c, h, w) = (x.shape[0], out[1], out[2], out[3]);
    let (xc, xh, xw) = (x.shape[1], x.shape[2], x.shape[3]);
    let mut y = Vec::with_capacity(n * c * h * w);
    for s in 0..n {
        for ci in 0..c {
            for hi in 0..h {
                for wi in 0..w {
                    let (sc, sh, sw) = d.source(c, (ci, hi, wi));
                    y.push(x.data[((s * xc + sc) * xh + sh) * xw + sw]);
                }
            }
        }
    }
    Array::new(vec![n, c, h, w], y)
}

/// Concatenation along `axis`. An input with batch 1 (a constant) is repeated over the others' batch.
pub(crate) fn concat(ins: &[ArrayRef], axis: usize) -> Result<Array, String> {
    let first = ins[0].shape;
    let mut shape = first.to_vec();
    shape[0] = ins.iter().map(|a| a.shape[0]).max().unwrap_or(1);
    for a in ins {
        let fits = a.shape.len() == first.len()
            && (0..first.len())
                .all(|d| d == axis || a.shape[d] == shape[d] || (d == 0 && a.shape[0] == 1));
        if !fits {
            return Err(format!(
                "inputs of shapes {:?} and {:?} cannot be concatenated on axis {axis}",
                first, a.shape
            ));
        }
    }
    shape[axis] = ins.iter().map(|a| a.shape[axis]).sum();
    let outer: usize = shape[..axis].iter().product();
    // rows per sample: an input of batch 1 reads its one sample's rows for every sample
    let per_sample: usize = shape[1..axis.max(1)].iter().product();
    let mut out = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for a in ins {
            let chunk: usize = a.shape[axis..].iter().product();
            let src = if a.shape[0] == shape[0] {
                o
            } else {
                o % per_sample
            };
            out.extend_from_slice(&a.data[src * chunk..(src + 1) * chunk]);
        }
    }
    Ok(Array::new(shape, out))
}

pub(crate) fn pad(x: &ArrayRef, pads: &[usize], value: f32) -> Result<Array, String> {
    let r = x.shape.len();
    let shape: Vec<usize> = (0..r).map(|i| x.shape[i] + pads[i] + pads[i + r]).collect();
    let os = strides(&shape);
    let mut out = vec![value; shape.iter().product()];
    // copy whole rows of the last axis
    let row = x.shape[r - 1];
    let rows = x.data.len() / row.max(1);
    let mut idx = vec![0usize; r.saturating_sub(1)];
    for k in 0..rows {
        let o: usize = (0..r - 1)
            .map(|d| (idx[d] + pads[d]) * os[d])
            .sum::<usize>()
            + pads[r - 1];
        out[o..o + row].copy_from_slice(&x.data[k * row..(k + 1) * row]);
        for d in (0..r - 1).rev() {
            idx[d] += 1;
            if idx[d] < x.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(Array::new(shape, out))
}

/// Source coordinate of output index `o` along an axis resized from `n_in` to `n_out`.
fn source(coord: CoordMode, o: usize, n_in: usize, n_out: usize, scale: f64) -> f64 {
    let o = o as f64;
    match coord {
        CoordMode::HalfPixel => (o + 0.5) / scale - 0.5,
        CoordMode::PytorchHalfPixel => {
            if n_out > 1 {
                (o + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        CoordMode::Asymmetric => o / scale,
        CoordMode::AlignCorners => {
            if n_out > 1 {
                o * (n_in as f64 - 1.0) / (n_out as f64 - 1.0)
            } else {
                0.0
            }
        }
    }
}

pub(crate) fn resize(r: &Resize, x: &ArrayRef, out_shape: &[usize]) -> Result<Array, String> {
    let (h, w) = (x.shape[2], x.shape[3]);
    let (oh, ow) = (out_shape[2], out_shape[3]);
    let planes = x.shape[0] * x.shape[1];
    let (sy, sx) = (r.scales[0] as f64, r.scales[1] as f64);
    let mut out = vec![0f32; planes * oh * ow];
    let nearest = |s: f64, n: usize| -> usize {
        let i = match r.nearest {
            NearestMode::RoundPreferFloor => {
                if s.fract() == 0.5 {
                    s.floor()
                } else {
                    s.round()
                }
            }
            NearestMode::RoundPreferCeil => s.round(),
            NearestMode::Floor => s.floor(),
            NearestMode::Ceil => s.ceil(),
        };
        i.clamp(0.0, n as f64 - 1.0) as usize
    };
    for p in 0..planes {
        let xin = &x.data[p * h * w..][..h * w];
        for oy in 0..oh {
            let fy = source(r.coord, oy, h, oh, sy);
            for ox in 0..ow {
                let fx = source(r.coord, ox, w, ow, sx);
                let v = match r.mode {
                    ResizeMode::Nearest => xin[nearest(fy, h) * w + nearest(fx, w)],
                    ResizeMode::Linear => {
                        let cy = fy.clamp(0.0, h as f64 - 1.0);
                        let cx = fx.clamp(0.0, w as f64 - 1.0);
                        let (y0, x0) = (cy.floor() as usize, cx.floor() as usize);
                        let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
                        let (dy, dx) = (cy - y0 as f64, cx - x0 as f64);
                        let at = |yy: usize, xx: usize| xin[yy * w + xx] as f64;
                        let top = at(y0, x0) * (1.0 - dx) + at(y0, x1) * dx;
                        let bot = at(y1, x0) * (1.0 - dx) + at(y1, x1) * dx;
                        (top * (1.0 - dy) + bot * dy) as f32
                    }
                };
                out[(p * oh + oy) * ow + ox] = v;
            }
        }
    }
    let mut shape = out_shape.to_vec();
    shape[0] = x.shape[0];
    Ok(Array::new(shape, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_nchw_to_nhwc() {
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect(); // [1, 3, 2, 2]
        let y = transpose(
            &ArrayRef {
                shape: &[1, 3, 2, 2],
                data: &x,
            },
            &[0, 2, 3, 1],
        )
        .unwrap();
        assert_eq!(y.shape, vec![1, 2, 2, 3]);
        assert_eq!(&y.data[..6], &[0.0, 4.0, 8.0, 1.0, 5.0, 9.0]);
    }

    #[test]
    fn pad_and_concat() {
        let x = [1.0, 2.0];
        let y = pad(
            &ArrayRef {
                shape: &[1, 2],
                data: &x,
            },
            &[0, 1, 0, 2],
            0.0,
        )
        .unwrap();
        assert_eq!(y.data, vec![0.0, 1.0, 2.0, 0.0, 0.0]);
        let a = [1.0, 2.0, 3.0, 4.0];
        let c = concat(
            &[
                ArrayRef {
                    shape: &[2, 2],
                    data: &a,
                },
                ArrayRef {
                    shape: &[2, 1],
                    data: &[9.0, 8.0],
                },
            ],
            1,
        )
        .unwrap();
        assert_eq!(c.data, vec![1.0, 2.0, 9.0, 3.0, 4.0, 8.0]);
    }

    #[test]
    fn concat_repeats_a_batch_1_constant_and_refuses_misfits() {
        // activations [2, 1, 2] with a constant [1, 1, 2] on axis 1: every sample gets the constant's rows
        let a = [1.0, 2.0, 3.0, 4.0];
        let k = [7.0, 8.0];
        let x = ArrayRef {
            shape: &[2, 1, 2],
            data: &a,
        };
        let c = ArrayRef {
            shape: &[1, 1, 2],
            data: &k,
        };
        let y = concat(&[x, c], 1).unwrap();
        assert_eq!(y.shape, vec![2, 2, 2]);
        assert_eq!(y.data, vec![1.0, 2.0, 7.0, 8.0, 3.0, 4.0, 7.0, 8.0]);
        let bad = ArrayRef {
            shape: &[2, 1, 3],
            data: &[0.0; 6],
        };
        let x = ArrayRef {
            shape: &[2, 1, 2],
            data: &a,
        };
        assert!(concat(&[x, bad], 1)
            .unwrap_err()
            .contains("cannot be concatenated"));
    }

    #[test]
    fn resize_nearest_and_linear_double() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let r = Resize {
            mode: ResizeMode::Nearest,
            coord: CoordMode::Asymmetric,
            nearest: NearestMode::Floor,
            scales: [2.0, 2.0],
        };
        let input = ArrayRef {
            shape: &[1, 1, 2, 2],
            data: &x,
        };
        let y = resize(&r, &input, &[1, 1, 4, 4]).unwrap();
        assert_eq!(&y.data[..4], &[1.0, 1.0, 2.0, 2.0]);
        let r = Resize {
            mode: ResizeMode::Linear,
            coord: CoordMode::HalfPixel,
            ..r
        };
        let y = resize(&r, &input, &[1, 1, 4, 4]).unwrap();
        // onnxruntime: first row of bilinear half_pixel 2x upsampling of [[1,2],[3,4]]
        assert_eq!(&y.data[..4], &[1.0, 1.25, 1.75, 2.0]);
    }
}
