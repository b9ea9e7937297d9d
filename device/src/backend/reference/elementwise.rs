//! The element-wise family: broadcast binary arithmetic, one-input maps (activations), per-channel
//! scale-shift, softmax. Each op's file passes its own function; every instance is its own loop, so each
//! vectorises.

use super::buffers::Buffers;
use super::ops::Out;
use super::requant::{clamp, Epilogue};
use super::ArrayRef;
use crate::backend::Array;
use crate::ir::broadcast as broadcast_shape;
use crate::quant::Encoding;

/// Strides of `shape` aligned to the right of an output of rank `rank`, 0 on broadcast dims.
fn bstrides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let mut s = vec![0; rank];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        let o = rank - shape.len() + i;
        s[o] = if shape[i] == 1 { 0 } else { acc };
        acc *= shape[i];
    }
    s
}

/// `f(a, b)` element by element, with numpy broadcasting, and the epilogue applied in the same loop where
/// there is an output encoding to round to ([`Out::Done`]; else [`Out::Real`], for the executor): one pass
/// over the output instead of two.
pub(crate) fn binary(
    a: &ArrayRef,
    b: &ArrayRef,
    bufs: &mut Buffers,
    epi: &Epilogue,
    f: impl Fn(f32, f32) -> f32 + Copy,
) -> Result<Out, String> {
    let shape = broadcast_shape(a.shape, b.shape)?;
    let n: usize = shape.iter().product();
    let mut out = bufs.take(n);
    let done = match (epi.quant.filter(|_| !epi.codes), epi.clamp) {
        (None, _) => {
            broadcast(&mut out, &shape, a, b, f);
            false
        }
        (Some(e), None) => {
            let q = e.fake_fn();
            broadcast(&mut out, &shape, a, b, move |x, y| q(f(x, y)));
            true
        }
        (Some(e), Some((lo, hi))) => {
            let q = e.fake_fn();
            broadcast(&mut out, &shape, a, b, move |x, y| {
                q(clamp(f(x, y), lo, hi))
            });
            true
        }
    };
    Ok(finished(Array::new(shape, out), done))
}

fn finished(y: Array, done: bool) -> Out {
    if done {
        Out::Done(y)
    } else {
        Out::Real(y)
    }
}

/// `out = f(a, b)` with numpy broadcasting. The innermost dims over which each operand is either
/// contiguous or constant form one run, done by a single vectorised loop (a whole same-shape op, or a
/// per-channel scale over a plane); an odometer walks the dims outside it.
fn broadcast(
    out: &mut [f32],
    shape: &[usize],
    a: &ArrayRef,
    b: &ArrayRef,
    f: impl Fn(f32, f32) -> f32 + Copy,
) {
    if out.is_empty() {
        return;
    }
    let (sa, sb) = (bstrides(a.shape, shape), bstrides(b.shape, shape));
    let (mut inner, mut d) = (1usize, shape.len());
    // over the run: is each operand contiguous (full) or constant?
    let (mut a_full, mut a_const, mut b_full, mut b_const) = (true, true, true, true);
    while d > 0 {
        let k = d - 1;
        if shape[k] != 1 {
            let (af, ac) = (a_full && sa[k] == inner, a_const && sa[k] == 0);
            let (bf, bc) = (b_full && sb[k] == inner, b_const && sb[k] == 0);
            if !(af || ac) || !(bf || bc) {
                break;
            }
            (a_full, a_const, b_full, b_const) = (af, ac, bf, bc);
            inner *= shape[k];
        }
        d -= 1;
    }
    let mut idx = vec![0usize; d];
    let (mut ia, mut ib) = (0usize, 0usize);
    for dst in out.chunks_mut(inner) {
        match (a_full, b_full) {
            (true, true) => {
                for ((o, &x), &y) in dst.iter_mut().zip(&a.data[ia..]).zip(&b.data[ib..]) {
                    *o = f(x, y);
                }
            }
            (true, false) => {
                let y = b.data[ib];
                for (o, &x) in dst.iter_mut().zip(&a.data[ia..]) {
                    *o = f(x, y);
                }
            }
            (false, true) => {
                let x = a.data[ia];
                for (o, &y) in dst.iter_mut().zip(&b.data[ib..]) {
                    *o = f(x, y);
                }
            }
            (false, false) => dst.fill(f(a.data[ia], b.data[ib])),
        }
        for k in (0..d).rev() {
            idx[k] += 1;
            ia += sa[k];
            ib += sb[k];
            if idx[k] < shape[k] {
                break;
            }
            ia -= sa[k] * shape[k];
            ib -= sb[k] * shape[k];
            idx[k] = 0;
        }
    }
}

/// `f(x)` element by element, with the epilogue applied in the same loop as [`binary`] does.
pub(crate) fn map(x: &ArrayRef, bufs: &mut Buffers, epi: &Epilogue, f: impl Fn(f32) -> f32) -> Out {
    let mut out = bufs.take(x.data.len());
    let pairs = out.iter_mut().zip(x.data);
    let done = match (epi.quant.filter(|_| !epi.codes), epi.clamp) {
        (None, _) => {
            pairs.for_each(|(o, &v)| *o = f(v));
            false
        }
        (Some(e), None) => {
            let q = e.fake_fn();
            pairs.for_each(|(o, &v)| *o = q(f(v)));
            true
        }
        (Some(e), Some((lo, hi))) => {
            let q = e.fake_fn();
            pairs.for_each(|(o, &v)| *o = q(clamp(f(v), lo, hi)));
            true
        }
    };
    finished(Array::new(x.shape.to_vec(), out), done)
}

/// `f` for the `n` elements of an input quantized on `e` (None: not quantized) through a table of `f` at every
/// point of `e`'s grid, where the input has more elements than twice the codes (a table is then cheaper than
/// `f` itself: erf, exp, tanh). An element reads the table only where it is exactly the grid point the table
/// holds (`code · scale` in f32, as quantization writes it); any other value, and an input kept as integer
/// codes, computes `f` itself. So the results are `f`'s bit for bit.
pub(crate) fn tabled(n: usize, e: Option<Encoding>, f: impl Fn(f32) -> f32) -> impl Fn(f32) -> f32 {
    let table = e.filter(|e| e.bits <= 16 && n >= 2 << e.bits).map(|e| {
        let xs: Vec<f32> = (0..=e.qmax() as i32)
            .map(|q| (q + e.offset) as f32 * e.scale)
            .collect();
        let ys: Vec<f32> = xs.iter().map(|&x| f(x)).collect();
        (1.0 / e.scale, e.offset, xs, ys)
    });
    move |v| {
        if let Some((inv, offset, xs, ys)) = &table {
            let i = ((v * inv).round_ties_even() as i32).wrapping_sub(*offset);
            if let Some(&x) = usize::try_from(i).ok().and_then(|i| xs.get(i)) {
                if x.to_bits() == v.to_bits() {
                    return ys[i as usize];
                }
            }
        }
        f(v)
    }
}

pub(crate) fn scale_shift(x: &ArrayRef, scale: &[f32], shift: &[f32]) -> Result<Array, String> {
    let c = x.shape[1];
    let inner: usize = x.shape[2..].iter().product();
    let mut out = x.data.to_vec();
    for (i, chunk) in out.chunks_mut(inner).enumerate() {
        let ch = i % c;
        chunk
            .iter_mut()
            .for_each(|v| *v = *v * scale[ch] + shift[ch]);
    }
    Ok(Array::new(x.shape.to_vec(), out))
}

/// Softmax along `axis`, or with `log` its logarithm, `x − max − ln Σ exp(x − max)`.
pub(crate) fn softmax(x: &ArrayRef, axis: usize, log: bool) -> Result<Array, String> {
    let dim = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let outer: usize = x.shape[..axis].iter().product();
    let mut out = vec![0f32; x.data.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * dim + k) * inner + i;
            let mx = (0..dim)
                .map(|k| x.data[at(k)])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f64;
            for k in 0..dim {
                let e = ((x.data[at(k)] - mx) as f64).exp();
                out[at(k)] = e as f32;
                sum += e;
            }
            if log {
                let ln_sum = sum.ln();
                for k in 0..dim {
                    out[at(k)] = ((x.data[at(k)] - mx) as f64 - ln_sum) as f32;
                }
            } else {
                for k in 0..dim {
                    out[at(k)] = (out[at(k)] as f64 / sum) as f32;
                }
            }
        }
    }
    Ok(Array::new(x.shape.to_vec(), out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn real(o: Out) -> Array {
        match o {
            Out::Real(a) => a,
            Out::Done(_) => panic!("an epilogue was applied without an encoding"),
        }
    }

    /// Rounding in the loop that computes the result gives the bits the executor's separate pass gives, with
    /// and without a fused clamp, for the binary and the one-input kernels.
    #[test]
    fn the_epilogue_in_the_loop_is_the_epilogue_after_it() {
        let a: Vec<f32> = (0..96).map(|v| (v as f32 * 0.37).sin() * 3.0).collect();
        let b: Vec<f32> = (0..4).map(|v| v as f32 * 0.61 - 1.0).collect();
        let (ra, rb) = (
            ArrayRef {
                shape: &[2, 4, 12],
                data: &a,
            },
            ArrayRef {
                shape: &[4, 1],
                data: &b,
            },
        );
        for bits in [8, 16] {
            let quant = Some(Encoding::from_min_max(-2.5, 4.0, bits));
            for clamp in [None, Some((0.0, 6.0))] {
                let epi = Epilogue {
                    clamp,
                    quant,
                    codes: false,
                };
                let mut bufs = Buffers::default();
                let after = |mut y: Array| {
                    epi.apply(&mut y.data);
                    y.data
                };
                let mul = |x: f32, y: f32| x * y;
                let Ok(Out::Done(y)) = binary(&ra, &rb, &mut bufs, &epi, mul) else {
                    panic!("binary left its epilogue to the executor");
                };
                let plain = binary(&ra, &rb, &mut bufs, &Epilogue::NONE, mul).map(real);
                assert_eq!(
                    y.data,
                    after(plain.unwrap()),
                    "binary, {bits} bits, {clamp:?}"
                );
                let Out::Done(y) = map(&ra, &mut bufs, &epi, f32::exp) else {
                    panic!("map left its epilogue to the executor");
                };
                let plain = real(map(&ra, &mut bufs, &Epilogue::NONE, f32::exp));
                assert_eq!(y.data, after(plain), "map, {bits} bits, {clamp:?}");
            }
        }
    }

    #[test]
    fn binary_broadcasts_per_channel() {
        let a: Vec<f32> = (0..8).map(|v| v as f32).collect(); // [1, 2, 2, 2]
        let b = [10.0, 20.0]; // [2, 1, 1]
        let y = binary(
            &ArrayRef {
                shape: &[1, 2, 2, 2],
                data: &a,
            },
            &ArrayRef {
                shape: &[2, 1, 1],
                data: &b,
            },
            &mut Buffers::default(),
            &Epilogue::NONE,
            |x, y| x + y,
        )
        .map(real)
        .unwrap();
        assert_eq!(y.data, vec![10.0, 11.0, 12.0, 13.0, 24.0, 25.0, 26.0, 27.0]);
    }

    /// Every broadcasting pattern against the definition: each output index mapped to each operand.
    #[test]
    fn binary_broadcasting_matches_the_definition() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[2, 3, 4, 5], &[2, 3, 4, 5]),
            (&[2, 3, 4, 5], &[3, 1, 1]),
            (&[2, 3, 4, 5], &[1, 3, 1, 1]),
            (&[2, 1, 4, 1], &[1, 3, 1, 5]),
            (&[5], &[2, 3, 5]),
            (&[2, 3, 1], &[2, 3, 4]),
            (&[1], &[2, 2]),
            (&[3, 1, 2], &[1, 1, 1]),
            (&[4, 1], &[4, 6]),
        ];
        for (sa, sb) in cases {
            let a: Vec<f32> = (0..sa.iter().product()).map(|v| v as f32 + 1.0).collect();
            let b: Vec<f32> = (0..sb.iter().product())
                .map(|v| v as f32 * 0.5 - 3.0)
                .collect();
            let y = binary(
                &ArrayRef {
                    shape: sa,
                    data: &a,
                },
                &ArrayRef {
                    shape: sb,
                    data: &b,
                },
                &mut Buffers::default(),
                &Epilogue::NONE,
                |x, y| x - y,
            )
            .map(real)
            .unwrap();
            let rank = y.shape.len();
            let at = |s: &[usize], idx: &[usize]| {
                let off = rank - s.len();
                s.iter().enumerate().fold(0, |acc, (i, &dim)| {
                    acc * dim + if dim == 1 { 0 } else { idx[off + i] }
                })
            };
            for (flat, &got) in y.data.iter().enumerate() {
                let mut idx = vec![0; rank];
                let mut r = flat;
                for k in (0..rank).rev() {
                    idx[k] = r % y.shape[k];
                    r /= y.shape[k];
                }
                let want = a[at(sa, &idx)] - b[at(sb, &idx)];
                assert_eq!(got, want, "{sa:?} - {sb:?} at {idx:?}");
            }
        }
    }

    #[test]
    fn softmax_sums_to_one_along_axis_and_log_softmax_is_its_log() {
        let x = [1.0, 2.0, 3.0, 1.0, 1.0, 1.0];
        let run = |log| {
            let a = ArrayRef {
                shape: &[2, 3],
                data: &x,
            };
            softmax(&a, 1, log).unwrap()
        };
        let (y, ly) = (run(false), run(true));
        assert!((y.data[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((y.data[3] - 1.0 / 3.0).abs() < 1e-7);
        for (p, l) in y.data.iter().zip(&ly.data) {
            assert!((p.ln() - l).abs() < 1e-6, "{p} {l}");
        }
    }

    /// A function through [`tabled`] gives the function's own bits on every grid point, off the grid and on
    /// a non-finite input, at 8 and 16 bits, and calls the function only off the grid once the table is made
    /// (so the table is what answers); below twice the codes, no table is made.
    #[test]
    fn a_tabled_function_is_the_function_bit_for_bit() {
        let f = |v: f32| libm::erff(v * 0.7) * v.exp();
        for e in [
            Encoding::from_min_max(-3.0, 2.5, 8),
            Encoding::from_min_max(-7.0, 0.3, 16),
        ] {
            let grid: Vec<f32> = (0..=e.qmax() as i32)
                .map(|q| (q + e.offset) as f32 * e.scale)
                .collect();
            let off = [
                0.1234,
                -2.9,
                e.scale * 0.5,
                -0.0,
                f32::NAN,
                f32::INFINITY,
                1e9,
            ];
            let calls = Cell::new(0usize);
            let counted = |v: f32| {
                calls.set(calls.get() + 1);
                f(v)
            };
            let t = tabled(2 * grid.len(), Some(e), counted);
            let made = calls.replace(0);
            assert_eq!(made, grid.len(), "{e:?}: the table holds every code");
            for &v in grid.iter().chain(&off) {
                assert_eq!(t(v).to_bits(), f(v).to_bits(), "{e:?} at {v}");
            }
            assert!(
                calls.get() <= off.len(),
                "{e:?}: grid points read the table"
            );
            calls.set(0);
            let t = tabled(2 * grid.len() - 1, Some(e), counted);
            assert_eq!(t(grid[1]).to_bits(), f(grid[1]).to_bits());
            assert_eq!(calls.get(), 1, "{e:?}: too few elements for a table");
        }
    }
}
