//! Conv: im2col + GEMM (matrixmultiply), a direct loop for depthwise convs; FP32 and integer-domain.

use super::gemm::Num;
use super::{ArrayRef, QuantMac};
use crate::backend::Array;
use crate::ir::{conv_out, Conv};
use crate::quant::{round_even, Encoding};

fn out_dims(c: &Conv, x: &[usize], w: &[usize]) -> Result<(usize, usize), String> {
    let (s, p, d) = (c.strides, c.pads, c.dilations);
    Ok((
        conv_out(x[2], w[2], s[0], p[0], p[2], d[0], false)?,
        conv_out(x[3], w[3], s[1], p[1], p[3], d[1], false)?,
    ))
}

/// Output indices `[lo, hi)` along one axis whose input index `o·stride + tap − pad` falls inside the input.
fn valid_range(
    tap: usize,
    stride: usize,
    pad: usize,
    len: usize,
    out_len: usize,
) -> (usize, usize) {
    // smallest o with o·stride + tap ≥ pad
    let lo = pad.saturating_sub(tap).div_ceil(stride);
    // largest o with o·stride + tap − pad ≤ len − 1
    if tap > len - 1 + pad {
        return (0, 0);
    }
    let hi = ((len - 1 + pad - tap) / stride + 1).min(out_len);
    (lo.min(hi), hi)
}

/// Accumulates the convolution of `x` (NCHW) with `w` (OIHW) in `T`; returns NCHW accumulators.
fn conv_acc<T: Num>(
    c: &Conv,
    x: &[T],
    xs: &[usize],
    w: &[T],
    ws: &[usize],
) -> Result<(Vec<T>, Vec<usize>), String> {
    if xs.len() != 4 || ws.len() != 4 {
        return Err(format!(
            "expects NCHW input and OIHW weight, found {xs:?} and {ws:?}"
        ));
    }
    let (n, cin, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (cout, cin_g, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    if cin != cin_g * c.group {
        return Err(format!(
            "input has {cin} channels, weight expects {}",
            cin_g * c.group
        ));
    }
    let (oh, ow) = out_dims(c, xs, ws)?;
    let cout_g = cout / c.group;
    let p = oh * ow;
    let mut out = vec![T::default(); n * cout * p];
    let [sh, sw] = c.strides;
    let [dh, dw] = c.dilations;

    if cin_g == 1 && cout_g == 1 {
        // depthwise: accumulate one kernel tap at a time over the output rows it reaches (vectorises for
        // stride 1; each output still sums its taps in (ky, kx) order)
        for b in 0..n {
            for ch in 0..cout {
                let xin = &x[(b * cin + ch) * h * wd..][..h * wd];
                let wk = &w[ch * kh * kw..][..kh * kw];
                let o = &mut out[(b * cout + ch) * p..][..p];
                for ky in 0..kh {
                    let (ylo, yhi) = valid_range(ky * dh, sh, c.pads[0], h, oh);
                    for kx in 0..kw {
                        let wv = wk[ky * kw + kx];
                        let (xlo, xhi) = valid_range(kx * dw, sw, c.pads[1], wd, ow);
                        if xlo >= xhi {
                            continue;
                        }
                        for oy in ylo..yhi {
                            let row = &xin[(oy * sh + ky * dh - c.pads[0]) * wd..][..wd];
                            let orow = &mut o[oy * ow..][xlo..xhi];
                            let start = xlo * sw + kx * dw - c.pads[1];
                            if sw == 1 {
                                for (ov, &xv) in
                                    orow.iter_mut().zip(&row[start..start + (xhi - xlo)])
                                {
                                    *ov = *ov + xv * wv;
                                }
                            } else {
                                for (i, ov) in orow.iter_mut().enumerate() {
                                    *ov = *ov + row[start + i * sw] * wv;
                                }
                            }
                        }
                    }
                }
            }
        }
        return Ok((out, vec![n, cout, oh, ow]));
    }

    // One GEMM per group over the whole batch: cols is [k, n·p] (im2col of every sample side by side), so
    // the GEMM is wide enough to amortise packing; results are scattered back to NCHW.
    let k = cin_g * kh * kw;
    let np = n * p;
    let pointwise = kh == 1 && kw == 1 && sh == 1 && sw == 1 && c.pads == [0; 4];
    let mut cols = vec![T::default(); k * np];
    let mut tmp = vec![T::default(); cout_g * np];
    for g in 0..c.group {
        for b in 0..n {
            let xg = &x[(b * cin + g * cin_g) * h * wd..][..cin_g * h * wd];
            if pointwise {
                for ci in 0..cin_g {
                    cols[ci * np + b * p..][..p].copy_from_slice(&xg[ci * p..][..p]);
                }
                continue;
            }
            for ci in 0..cin_g {
                for ky in 0..kh {
                    let (ylo, yhi) = valid_range(ky * dh, sh, c.pads[0], h, oh);
                    for kx in 0..kw {
                        let row = (ci * kh + ky) * kw + kx;
                        let dst = &mut cols[row * np + b * p..][..p];
                        let (xlo, xhi) = valid_range(kx * dw, sw, c.pads[1], wd, ow);
                        dst.iter_mut().for_each(|v| *v = T::default());
                        if xlo >= xhi {
                            continue;
                        }
                        for oy in ylo..yhi {
                            let iy = oy * sh + ky * dh - c.pads[0];
                            let src = &xg[(ci * h + iy) * wd..][..wd];
                            let d = &mut dst[oy * ow..][xlo..xhi];
                            let start = xlo * sw + kx * dw - c.pads[1];
                            if sw == 1 {
                                d.copy_from_slice(&src[start..start + (xhi - xlo)]);
                            } else {
                                for (i, dv) in d.iter_mut().enumerate() {
                                    *dv = src[start + i * sw];
                                }
                            }
                        }
                    }
                }
            }
        }
        let wg = &w[g * cout_g * k..][..cout_g * k];
        T::gemm(
            cout_g,
            k,
            np,
            wg,
            (k as isize, 1),
            &cols,
            (np as isize, 1),
            &mut tmp,
        );
        for co in 0..cout_g {
            for b in 0..n {
                out[(b * cout + g * cout_g + co) * p..][..p]
                    .copy_from_slice(&tmp[co * np + b * p..][..p]);
            }
        }
    }
    Ok((out, vec![n, cout, oh, ow]))
}

pub(crate) fn conv_f32(
    c: &Conv,
    x: &ArrayRef,
    w: &ArrayRef,
    bias: Option<&[f32]>,
) -> Result<Array, String> {
    let (mut acc, shape) = conv_acc::<f32>(c, x.data, x.shape, w.data, w.shape)?;
    if let Some(b) = bias {
        let p = shape[2] * shape[3];
        for (i, chunk) in acc.chunks_mut(p).enumerate() {
            let bv = b[i % shape[1]];
            chunk.iter_mut().for_each(|v| *v += bv);
        }
    }
    Ok(Array::new(shape, acc))
}

/// Integer codes `q + offset` of activations that lie on `e`'s grid.
pub(crate) fn integer_codes<T: Num>(x: &[f32], e: &Encoding) -> Vec<T> {
    let inv = 1.0 / e.scale as f64;
    x.iter()
        .map(|&v| T::from_f64(round_even(v as f64 * inv)))
        .collect()
}

pub(crate) fn conv_quant(
    c: &Conv,
    x: &ArrayRef,
    ws: &[usize],
    q: &QuantMac,
    e: Encoding,
) -> Result<Array, String> {
    fn finish<T: Num>(acc: Vec<T>, shape: Vec<usize>, q: &QuantMac) -> Array {
        let p = shape[2] * shape[3];
        let mut out = vec![0f32; acc.len()];
        for (i, (o, a)) in out.chunks_mut(p).zip(acc.chunks(p)).enumerate() {
            let ch = i % shape[1];
            let (m, b) = (q.mult[ch], q.bias[ch]);
            for (ov, av) in o.iter_mut().zip(a) {
                *ov = (av.to_f64() * m + b) as f32;
            }
        }
        Array::new(shape, out)
    }
    if q.exact_f32 {
        let xi = integer_codes::<f32>(x.data, &e);
        let (acc, shape) = conv_acc::<f32>(c, &xi, x.shape, &q.codes, ws)?;
        Ok(finish(acc, shape, q))
    } else {
        let xi = integer_codes::<f64>(x.data, &e);
        let w: Vec<f64> = q.codes.iter().map(|&v| v as f64).collect();
        let (acc, shape) = conv_acc::<f64>(c, &xi, x.shape, &w, ws)?;
        Ok(finish(acc, shape, q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive convolution straight from the definition.
    fn naive(c: &Conv, x: &[f32], xs: [usize; 4], w: &[f32], ws: [usize; 4]) -> Vec<f32> {
        let (oh, ow) = out_dims(c, &xs, &ws).unwrap();
        let cout_g = ws[0] / c.group;
        let mut out = vec![0f32; xs[0] * ws[0] * oh * ow];
        for b in 0..xs[0] {
            for co in 0..ws[0] {
                let g = co / cout_g;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0f64;
                        for ci in 0..ws[1] {
                            for ky in 0..ws[2] {
                                for kx in 0..ws[3] {
                                    let iy = (oy * c.strides[0] + ky * c.dilations[0]) as isize
                                        - c.pads[0] as isize;
                                    let ix = (ox * c.strides[1] + kx * c.dilations[1]) as isize
                                        - c.pads[1] as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= xs[2] as isize
                                        || ix >= xs[3] as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((b * xs[1] + g * ws[1] + ci) * xs[2]
                                        + iy as usize)
                                        * xs[3]
                                        + ix as usize];
                                    acc += xv as f64
                                        * w[((co * ws[1] + ci) * ws[2] + ky) * ws[3] + kx] as f64;
                                }
                            }
                        }
                        out[((b * ws[0] + co) * oh + oy) * ow + ox] = acc as f32;
                    }
                }
            }
        }
        out
    }

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) % 17) as f32 - 8.0
            })
            .collect()
    }

    fn conv(strides: [usize; 2], pads: [usize; 4], dilations: [usize; 2], group: usize) -> Conv {
        Conv {
            strides,
            pads,
            dilations,
            group,
        }
    }

    #[test]
    fn matches_naive_for_strides_pads_dilations_groups() {
        let cases = [
            (
                conv([1, 2], [0, 2, 1, 0], [2, 1], 3),
                [2, 3, 9, 7],
                [3, 1, 3, 2],
            ),
            (
                conv([1, 1], [1, 1, 1, 1], [1, 1], 1),
                [2, 3, 7, 6],
                [4, 3, 3, 3],
            ),
            (
                conv([2, 1], [0, 2, 1, 0], [1, 2], 1),
                [1, 2, 9, 8],
                [3, 2, 3, 2],
            ),
            (
                conv([2, 2], [1, 1, 1, 1], [1, 1], 4),
                [1, 4, 8, 8],
                [4, 1, 3, 3],
            ),
            (
                conv([1, 1], [0, 0, 0, 0], [1, 1], 2),
                [2, 4, 5, 5],
                [6, 2, 1, 1],
            ),
            (
                conv([1, 1], [0, 0, 0, 0], [1, 1], 1),
                [2, 4, 5, 5],
                [6, 4, 1, 1],
            ),
        ];
        for (i, (c, xs, ws)) in cases.iter().enumerate() {
            let x = pseudo(xs.iter().product(), i as u32);
            let w = pseudo(ws.iter().product(), 100 + i as u32);
            let want = naive(c, &x, *xs, &w, *ws);
            let got = conv_f32(
                c,
                &ArrayRef {
                    shape: xs,
                    data: &x,
                },
                &ArrayRef {
                    shape: ws,
                    data: &w,
                },
                None,
            )
            .unwrap();
            assert_eq!(got.data, want, "case {i}");
        }
    }
}
