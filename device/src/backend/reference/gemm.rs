//! Fully connected (Gemm) and MatMul, FP32 and integer-domain, on faer's GEMM (and the int8 GEMM for a8w8).

use super::buffers::Buffers;
use super::int8;
use super::madd16::{self, GemmWork};
use super::numeric::{integer_codes, Layout, Num};
use super::requant::{Epilogue, QuantMac, Requant};
use super::ArrayRef;
use crate::backend::Array;
use crate::ir::{broadcast_offset, MatMul, OpDef};
use crate::quant::Encoding;

fn split_rows(x: &ArrayRef, k: usize) -> Result<usize, String> {
    if x.shape.last() != Some(&k) {
        return Err(format!("input {:?} does not end in {k}", x.shape));
    }
    Ok(x.data.len() / k)
}

/// The shape of `x` with its last dim (the features, checked by `split_rows`) replaced by `nout`.
fn fc_shape(x: &ArrayRef, nout: usize) -> Vec<usize> {
    let mut shape = x.shape.to_vec();
    if let Some(last) = shape.last_mut() {
        *last = nout;
    }
    shape
}

pub(crate) fn fc_f32(
    x: &ArrayRef,
    w: &ArrayRef,
    bias: Option<&[f32]>,
    epi: &Epilogue,
    bufs: &mut Buffers,
) -> Result<Array, String> {
    let (nout, k) = (w.shape[0], w.shape[1]);
    let m = split_rows(x, k)?;
    let mut out = bufs.take(m * nout);
    // y = x · wᵀ: b = wᵀ, element (p, j) at w[j*k + p]
    f32::gemm(
        m,
        k,
        nout,
        x.data,
        Layout::Rows(k),
        w.data,
        Layout::Cols(k),
        &mut out,
    );
    if let Some(b) = bias {
        for row in out.chunks_mut(nout) {
            row.iter_mut().zip(b).for_each(|(v, bv)| *v += bv);
        }
    }
    epi.apply(&mut out);
    Ok(Array::new(fc_shape(x, nout), out))
}

pub(crate) fn fc_quant(
    x: &ArrayRef,
    ws: &[usize],
    q: &QuantMac,
    e: Encoding,
    epi: &Epilogue,
    bufs: &mut Buffers,
) -> Result<Array, String> {
    let (nout, k) = (ws[0], ws[1]);
    let m = split_rows(x, k)?;
    let mut out = bufs.take(m * nout);
    // 16-bit operands split into bytes pay only on long sums into many outputs (as for Conv)
    let split = q.planes.is_some() && int8::long_enough(k, nout);
    if (q.codes_i8.is_some() || split) && int8::fc(x.data, m, k, nout, &e, q, epi, &mut out) {
        return Ok(Array::new(fc_shape(x, nout), out));
    }
    // y = x · wᵀ on integer codes (exact), then one requantization per output channel
    let rq = Requant::new(q, epi);
    // 16-bit activations on 8-bit weights: on 16-bit multiply-adds
    if let Some(r16) = q.rows16.as_ref().filter(|_| e.bits <= 16) {
        let mut acc = vec![0f64; m * nout];
        madd16::fc(x.data, m, &e, r16, &mut acc, &mut GemmWork::default());
        rq.rows(q, epi, 0, nout, &acc, &mut out);
        return Ok(Array::new(fc_shape(x, nout), out));
    }
    match &q.codes64 {
        None => rq.rows(
            q,
            epi,
            0,
            nout,
            &product(x.data, &e, &q.codes, m, k, nout),
            &mut out,
        ),
        Some(w64) => rq.rows(
            q,
            epi,
            0,
            nout,
            &product(x.data, &e, w64, m, k, nout),
            &mut out,
        ),
    }
    Ok(Array::new(fc_shape(x, nout), out))
}

/// The exact sums `x · wᵀ` (`m × nout`) on the integer codes of `x` (on `e`'s grid) and weight codes `w`
/// (`nout × k`), accumulated in `T`.
fn product<T: Num>(x: &[f32], e: &Encoding, w: &[T], m: usize, k: usize, nout: usize) -> Vec<T> {
    let xi = integer_codes::<T>(x, e);
    let mut acc = vec![T::default(); m * nout];
    T::gemm(
        m,
        k,
        nout,
        &xi,
        Layout::Rows(k),
        w,
        Layout::Cols(k),
        &mut acc,
    );
    acc
}

/// Batched matrix product of two activations (with broadcasting of the leading dims). With encodings, the
/// product runs on integer codes and is scaled once.
pub(crate) fn matmul(
    a: &ArrayRef,
    b: &ArrayRef,
    enc: Option<(Encoding, Encoding)>,
) -> Result<Array, String> {
    let shape = MatMul.infer(&[a.shape, b.shape])?;
    let (ar, br) = (a.shape.len(), b.shape.len());
    let (m, k, n) = (a.shape[ar - 2], a.shape[ar - 1], b.shape[br - 1]);
    let lead = &shape[..shape.len() - 2];
    let batches: usize = lead.iter().product();
    let offset = |s: &[usize], idx: usize| broadcast_offset(lead, &s[..s.len() - 2], idx);
    let mut out = vec![0f32; batches * m * n];
    let (xa, xb, mult): (Vec<f64>, Vec<f64>, f64) = match enc {
        Some((ea, eb)) => (
            integer_codes::<f64>(a.data, &ea),
            integer_codes::<f64>(b.data, &eb),
            ea.scale as f64 * eb.scale as f64,
        ),
        None => (
            a.data.iter().map(|&v| v as f64).collect(),
            b.data.iter().map(|&v| v as f64).collect(),
            1.0,
        ),
    };
    let mut c = vec![0f64; m * n];
    for bi in 0..batches {
        let pa = &xa[offset(a.shape, bi) * m * k..][..m * k];
        let pb = &xb[offset(b.shape, bi) * k * n..][..k * n];
        f64::gemm(m, k, n, pa, Layout::Rows(k), pb, Layout::Rows(n), &mut c);
        for (o, v) in out[bi * m * n..][..m * n].iter_mut().zip(&c) {
            *o = (v * mult) as f32;
        }
    }
    Ok(Array::new(shape, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fc_computes_x_times_w_transposed_plus_bias() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let w = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let y = fc_f32(
            &ArrayRef {
                shape: &[2, 2],
                data: &x,
            },
            &ArrayRef {
                shape: &[3, 2],
                data: &w,
            },
            Some(&[0.5, 0.0, -1.0]),
            &Epilogue::NONE,
            &mut Buffers::default(),
        )
        .unwrap();
        assert_eq!(y.shape, vec![2, 3]);
        assert_eq!(y.data, vec![1.5, 2.0, 2.0, 3.5, 4.0, 6.0]);
    }

    #[test]
    fn matmul_broadcasts_leading_dims() {
        let a: Vec<f32> = (0..12).map(|v| v as f32).collect(); // [2, 2, 3]
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // [3, 2]
        let y = matmul(
            &ArrayRef {
                shape: &[2, 2, 3],
                data: &a,
            },
            &ArrayRef {
                shape: &[3, 2],
                data: &b,
            },
            None,
        )
        .unwrap();
        assert_eq!(y.shape, vec![2, 2, 2]);
        assert_eq!(y.data, vec![2.0, 3.0, 8.0, 9.0, 14.0, 15.0, 20.0, 21.0]);
    }

    /// Gemm on integer codes: the f32, f64 and int8 paths give the definition's result bit for bit.
    #[test]
    fn quantized_fc_is_the_integer_product_rescaled() {
        let e = Encoding {
            bits: 8,
            scale: 0.02,
            offset: -37,
        };
        let (m, k, nout) = (5, 70, 9);
        let q: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 256) as f32).collect();
        let x: Vec<f32> = q
            .iter()
            .map(|&q| ((q + e.offset as f32) as f64 * e.scale as f64) as f32)
            .collect();
        let codes: Vec<f32> = (0..nout * k)
            .map(|i| ((i * 11) % 255) as f32 - 127.0)
            .collect();
        let mult: Vec<f64> = (0..nout).map(|j| 1e-4 * (j + 1) as f64).collect();
        let bias: Vec<f64> = (0..nout).map(|j| j as f64 * 0.1).collect();
        let mut want = vec![0f32; m * nout];
        let mut sums = vec![0f32; m * nout];
        for r in 0..m {
            for j in 0..nout {
                let acc: f64 = (0..k)
                    .map(|p| (q[r * k + p] + e.offset as f32) as f64 * codes[j * k + p] as f64)
                    .sum();
                want[r * nout + j] = (acc * mult[j] + bias[j]) as f32;
                sums[r * nout + j] = acc as f32;
            }
        }
        for (wide, i8w) in [(false, false), (true, false), (false, true)] {
            let qm = QuantMac::new(codes.clone(), mult.clone(), bias.clone(), wide, i8w);
            assert_eq!(qm.codes_i8.is_some(), i8w);
            let input = ArrayRef {
                shape: &[m, k],
                data: &x,
            };
            let run = |epi: &Epilogue| {
                fc_quant(&input, &[nout, k], &qm, e, epi, &mut Buffers::default()).unwrap()
            };
            let y = run(&Epilogue::NONE);
            assert_eq!(y.data, want, "f64 {wide}, int8 {i8w}");
            // quantized output with a fused clamp, 8 and 16 bits: the requantization's definition
            for e_out in [
                Encoding {
                    bits: 8,
                    scale: 0.01,
                    offset: -100,
                },
                Encoding {
                    bits: 16,
                    scale: 0.01 / 256.0,
                    offset: -25600,
                },
            ] {
                let epi = Epilogue {
                    clamp: Some((0.0, 1.5)),
                    quant: Some(e_out),
                    codes: false,
                };
                let y = run(&epi);
                let want_q = super::super::requant::definition::requantized(
                    &sums,
                    1,
                    nout,
                    &mult,
                    &bias,
                    e_out,
                    (0.0, 1.5),
                );
                assert_eq!(
                    y.data, want_q,
                    "f64 {wide}, int8 {i8w}, {} bits",
                    e_out.bits
                );
            }
        }
    }

    /// 16-bit activations or weights on the byte-split integer GEMM, and 16-bit activations on 8-bit weights
    /// on the multiply-adds: the f64 path's outputs and the definition's, bit for bit.
    #[test]
    fn sixteen_bit_fc_on_integer_kernels_is_the_integer_product() {
        use crate::backend::reference::conv::tests::codes_in;
        use crate::backend::reference::requant::definition::{requantized, signed_outputs};
        let clamp = (-6.0, 6.0);
        // long sums into many outputs (the byte planes take them), rows and columns past whole blocks, a k
        // of more than one chunk
        let shapes = [(6, 75, 70), (5, 9, 7), (3, 601, 17)];
        let widths = [(16u8, 8u8), (16, 16), (8, 16)];
        for ((m, k, nout), (in_bits, w_bits)) in
            shapes.into_iter().flat_map(|s| widths.map(|w| (s, w)))
        {
            let e = Encoding {
                bits: in_bits,
                scale: 0.003,
                offset: if in_bits == 8 { -77 } else { -12345 },
            };
            let q = codes_in(m * k, 9, 0, (1i64 << in_bits) - 1);
            let x: Vec<f32> = q
                .iter()
                .map(|&q| ((q + e.offset as f32) as f64 * e.scale as f64) as f32)
                .collect();
            let wmax = (1i64 << (w_bits - 1)) - 1;
            let codes = codes_in(nout * k, 21, -wmax - 1, wmax);
            let sums: Vec<f64> = (0..m * nout)
                .map(|i| {
                    let (r, j) = (i / nout, i % nout);
                    (0..k)
                        .map(|p| (q[r * k + p] + e.offset as f32) as f64 * codes[j * k + p] as f64)
                        .sum()
                })
                .collect();
            let top = sums.iter().fold(0f64, |a, s| a.max(s.abs()));
            let mult: Vec<f64> = (0..nout)
                .map(|j| 7.0 * (j + 1) as f64 / (nout as f64 * top))
                .collect();
            let bias: Vec<f64> = (0..nout).map(|j| j as f64 * 0.1 - 0.3).collect();
            let split = QuantMac::new(codes.clone(), mult.clone(), bias.clone(), true, false);
            assert!(split.planes.is_some());
            let madd = QuantMac {
                planes: None,
                ..split.clone()
            };
            assert_eq!(madd.rows16.is_some(), w_bits == 8);
            let wide = QuantMac {
                rows16: None,
                ..madd.clone()
            };
            for e_out in signed_outputs() {
                // one row per output sample: the definition's channel is the column
                let want = requantized(&sums, 1, nout, &mult, &bias, e_out, clamp);
                let epi = Epilogue {
                    clamp: Some(clamp),
                    quant: Some(e_out),
                    codes: false,
                };
                let paths = [
                    (&split, "byte planes"),
                    (&madd, "multiply-adds"),
                    (&wide, "f64"),
                ];
                for (qm, path) in paths {
                    let input = ArrayRef {
                        shape: &[m, k],
                        data: &x,
                    };
                    let y =
                        fc_quant(&input, &[nout, k], qm, e, &epi, &mut Buffers::default()).unwrap();
                    assert_eq!(
                        y.data, want,
                        "a{in_bits}w{w_bits} on {path}, {}-bit output",
                        e_out.bits
                    );
                }
            }
        }
    }
}
