//! 16-bit activations on 8-bit weights on 16-bit multiply-adds (`vpmaddwd` on AVX2, its SSE2 and NEON
//! counterparts elsewhere, through `wide`): sixteen products per instruction where the f64 path does four
//! (eight with AVX-512), and exact, so the sums are the f64 path's bit for bit. Depthwise convs
//! ([`depthwise`]) and the GEMM of every other conv ([`Rows16`], [`gemm`]).
//!
//! The multiply-add takes pairs of i16 (a 16-bit code less `c = offset + 32768` always fits) and adds each
//! pair's two products into one i32. On a depthwise conv's [`PhaseGrid`] a tap reads the run of the planes at
//! its offset, so two taps whose offsets are one apart (horizontal neighbours) read, for output `l`, elements
//! `l` and `l + 1` of one run. Each channel's planes are therefore also laid out as pairs (element `l` beside
//! element `l + 1`): sixteen i16 from there are eight outputs' inputs of both taps, one multiply-add with the
//! weight pair `(w₀, w₁)` in every lane, and the sums come out in output order. A tap without such a
//! neighbour is paired with a zero weight. Σ w · (code − c) + c · Σ w = Σ w · code; padding holds −c (code 0).
//! With |w| ≤ 128 and at most 255 taps every partial sum stays in i32.
//!
//! The GEMM pairs consecutive rows of its right operand (input channels, or im2col rows) the same way:
//! column `j` of a pair is the two rows' elements side by side, and each weight pair, packed into one i32,
//! is broadcast to every lane. Sums of at most [`CHUNK`] pairs stay in i32 (k · 128 · 32768 < 2³¹);
//! longer ones add their chunks in f64, exactly.

use wide::{bytemuck, i16x16, i32x8};

use super::conv::PhaseGrid;
use super::geometry::Geom;
use super::numeric::round_code;
use crate::quant::Encoding;

/// Outputs per multiply-add.
const LANES: usize = 8;
/// Multiply-adds in flight: outputs are computed `SPAN` at a time, each eight in its own register.
const GROUP: usize = 4;
const SPAN: usize = LANES * GROUP;

/// 1.5 · 2²³.
const MAGIC: f32 = 12582912.0;

/// Most taps: 255 · 128 · 65535 < 2³¹.
const MAX_TAPS: usize = 255;

/// Sixteen i16 from `v[at..]`.
#[inline(always)]
fn load(v: &[i16], at: usize) -> i16x16 {
    let a: [i16; 2 * LANES] = v[at..at + 2 * LANES].try_into().expect("sixteen lanes");
    i16x16::from(a)
}

/// Two i16 in one i32 (`lo` in the low half), the element order of a multiply-add's pair.
fn pair(lo: i16, hi: i16) -> i32 {
    (lo as u16 as u32 | (hi as u16 as u32) << 16) as i32
}

/// What codes of `e`'s grid are less to fit i16: `offset + 32768`.
pub(crate) fn shift(e: &Encoding) -> i32 {
    e.offset + 32768
}

/// Codes of `x` (activations on a grid of at most 16 bits, `inv` its inverse scale) less `c`, into `out`.
pub(crate) fn shifted_codes(x: &[f32], inv: f32, c: i32, out: &mut [i16]) {
    let cf = c as f32;
    // adding 1.5 · 2²³ to an integer in [-2¹⁵, 2¹⁵) leaves it in the low mantissa bits: no float-to-int
    // conversion (which does not vectorise to i16)
    for (d, &v) in out.iter_mut().zip(x) {
        let r = (round_code(v * inv) - cf).clamp(-32768.0, 32767.0);
        *d = (r + MAGIC).to_bits() as i16;
    }
}

/// Sums of a depthwise conv of activations `x` on `e`'s grid (at most 16 bits, NCHW) and 8-bit weight codes
/// `w` (`[cout, kh · kw]`), handed to `finish(b, acc_b)` (`acc_b`: `[cout, p]`) one sample at a time. False,
/// computing nothing, when a code does not fit 8 bits or the kernel has more than 255 taps.
pub(crate) fn depthwise(
    g: &Geom,
    x: &[f32],
    e: &Encoding,
    w: &[f32],
    mut finish: impl FnMut(usize, &[i32]),
) -> bool {
    let kt = g.kh * g.kw;
    if kt > MAX_TAPS || w.iter().any(|&v| !(-128.0..=127.0).contains(&v)) {
        return false;
    }
    let grid = PhaseGrid::new(g, SPAN);
    // pair taps that read one element apart
    let mut order: Vec<usize> = (0..kt).collect();
    order.sort_by_key(|&t| grid.taps[t]);
    let mut items: Vec<(usize, Option<usize>)> = Vec::new();
    let mut i = 0;
    while i < kt {
        let t = order[i];
        match order.get(i + 1) {
            Some(&u) if grid.taps[u] == grid.taps[t] + 1 => {
                items.push((t, Some(u)));
                i += 2;
            }
            _ => {
                items.push((t, None));
                i += 1;
            }
        }
    }
    let at: Vec<usize> = items.iter().map(|&(t, _)| grid.taps[t]).collect();
    // per channel: each item's weight pair, and c · Σ w
    let (c, inv) = (shift(e), 1.0 / e.scale);
    let mut wv: Vec<i16x16> = Vec::with_capacity(g.cout * items.len());
    let mut cw = Vec::with_capacity(g.cout);
    for wc in w.chunks_exact(kt) {
        for &(t0, t1) in &items {
            let p = pair(wc[t0] as i16, t1.map_or(0, |t| wc[t] as i16));
            wv.push(bytemuck::cast(i32x8::splat(p)));
        }
        cw.push(i32x8::splat(
            c.wrapping_mul(wc.iter().map(|&v| v as i32).sum()),
        ));
    }
    let (lanes, p, n) = (grid.lanes, g.p(), items.len());
    let mut codes = vec![0i16; g.plane()];
    let mut planes = vec![(-c) as i16; grid.planes_len(1)];
    let mut pairs = vec![0i16; 2 * planes.len()];
    let mut wide = vec![0i32; lanes];
    let mut acc = vec![0i32; g.cout * p];
    for b in 0..g.n {
        for ch in 0..g.cout {
            let xin = &x[(b * g.cin + ch) * g.plane()..][..g.plane()];
            shifted_codes(xin, inv, c, &mut codes);
            grid.fill(g, &mut planes, &codes);
            for ((d, &u), &v) in pairs.chunks_exact_mut(2).zip(&planes).zip(&planes[1..]) {
                d[0] = u;
                d[1] = v;
            }
            let wc = &wv[ch * n..][..n];
            for (span, out) in wide.chunks_exact_mut(SPAN).enumerate() {
                let mut sums = [cw[ch]; GROUP];
                for (&a, &wv) in at.iter().zip(wc) {
                    let base = 2 * (a + span * SPAN);
                    let xs = &pairs[base..base + 2 * SPAN];
                    for (k, s) in sums.iter_mut().enumerate() {
                        *s += load(xs, 2 * LANES * k).dot(wv);
                    }
                }
                let out: &mut [i32; SPAN] = out.try_into().expect("a span");
                *out = bytemuck::cast(sums.map(|s| s.to_array()));
            }
            grid.copy_out(g, &wide, &mut acc[ch * p..][..p]);
        }
        finish(b, &acc);
    }
    true
}

/// Pairs of k summed in i32 before the sum goes on in f64: 255 · 2 · 128 · 32768 < 2³¹.
const CHUNK: usize = 255;
/// Output rows and columns of the GEMM's register block: four rows by sixteen columns, eight i32 each.
const MR: usize = 4;
const NR: usize = 16;

/// Rows of 8-bit weight codes (`m × k`: a conv's output channels over its im2col rows) laid out for
/// [`gemm`]: each pair of codes along k in one i32, and each row's Σ w.
#[derive(Clone, Debug)]
pub(crate) struct Rows16 {
    k: usize,
    pairs: Vec<i32>,
    wsum: Vec<f64>,
}

impl Rows16 {
    /// The rows of `codes` (`m` rows), when every code fits 8 bits.
    pub fn new(codes: &[f32], m: usize) -> Option<Rows16> {
        if m == 0 || codes.is_empty() || codes.len() % m != 0 {
            return None;
        }
        if codes.iter().any(|&w| !(-128.0..=127.0).contains(&w)) {
            return None;
        }
        let k = codes.len() / m;
        let mut pairs = Vec::with_capacity(m * k.div_ceil(2));
        for row in codes.chunks_exact(k) {
            for two in row.chunks(2) {
                pairs.push(pair(two[0] as i16, two.get(1).map_or(0, |&w| w as i16)));
            }
        }
        let wsum = codes
            .chunks_exact(k)
            .map(|r| r.iter().map(|&w| w as f64).sum())
            .collect();
        Some(Rows16 { k, pairs, wsum })
    }
}

/// Buffers of [`gemm`], reused across calls.
#[derive(Default)]
pub(crate) struct GemmWork {
    xp: Vec<i16>,
    tmp: Vec<i32>,
}

/// `acc` (`rows × n`) = Σₖ w · (b + c) for weight rows `first..first + rows` of `w` and `b` (`k × n`, row
/// stride `ld`): codes less `c`, as [`shifted_codes`] makes them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    w: &Rows16,
    first: usize,
    rows: usize,
    b: &[i16],
    ld: usize,
    n: usize,
    c: i32,
    acc: &mut [f64],
    work: &mut GemmWork,
) {
    let (k, kp) = (w.k, w.k.div_ceil(2));
    let a = &w.pairs[first * kp..][..rows * kp];
    let ws = &w.wsum[first..first + rows];
    chunked(
        a,
        kp,
        rows,
        n,
        work,
        |j, dst| {
            // rows 2j and 2j + 1 of b side by side
            let r0 = &b[2 * j * ld..][..n];
            let d = &mut dst[..2 * n];
            if 2 * j + 1 < k {
                let r1 = &b[(2 * j + 1) * ld..][..n];
                for ((d, &u), &v) in d.chunks_exact_mut(2).zip(r0).zip(r1) {
                    d[0] = u;
                    d[1] = v;
                }
            } else {
                for (d, &u) in d.chunks_exact_mut(2).zip(r0) {
                    d[0] = u;
                }
            }
        },
        |first, tmp| {
            // each row is one weight row: c · Σw is the row's
            for ((ar, tr), &s) in acc.chunks_exact_mut(n).zip(tmp.chunks_exact(n)).zip(ws) {
                add_chunk(ar, tr, first, |_| c as f64 * s);
            }
        },
    );
}

/// `acc` (`m × nout`) = x · wᵀ for `x` (`m × k` activations on `e`'s grid, at most 16 bits) and all rows of
/// `w` (`nout × k`): a Gemm. Each row of x is already pairs along k; the weights are laid out as the
/// GEMM's right operand (pairs along k, output channels side by side) per call, a cost of `1/m` of the
/// product.
pub(crate) fn fc(
    x: &[f32],
    m: usize,
    e: &Encoding,
    w: &Rows16,
    acc: &mut [f64],
    work: &mut GemmWork,
) {
    let (k, kp, nout) = (w.k, w.k.div_ceil(2), w.wsum.len());
    let (c, inv) = (shift(e), 1.0 / e.scale);
    let mut codes = vec![0i16; k];
    let mut a = Vec::with_capacity(m * kp);
    for row in x.chunks_exact(k).take(m) {
        shifted_codes(row, inv, c, &mut codes);
        a.extend(
            codes
                .chunks(2)
                .map(|t| pair(t[0], t.get(1).copied().unwrap_or(0))),
        );
    }
    chunked(
        &a,
        kp,
        m,
        nout,
        work,
        |j, dst| {
            // pair j of every weight row, the rows side by side
            for (o, d) in dst.chunks_exact_mut(2).take(nout).enumerate() {
                let p = w.pairs[o * kp + j];
                (d[0], d[1]) = (p as i16, (p >> 16) as i16);
            }
        },
        |first, tmp| {
            // each column is one weight row: c · Σw is the column's
            for (ar, tr) in acc.chunks_exact_mut(nout).zip(tmp.chunks_exact(nout)) {
                add_chunk(ar, tr, first, |o| c as f64 * w.wsum[o]);
            }
        },
    );
}

/// The product of `a` (`rows` rows of `kp` pairs) and a right operand of `kp` rows of `n` pairs, in chunks
/// of at most [`CHUNK`] pairs: `pack(j, dst)` writes row `j` of the right operand (its pairs past `n` stay
/// zero), and `add(first, tmp)` takes each chunk's i32 sums (`rows × n`).
fn chunked(
    a: &[i32],
    kp: usize,
    rows: usize,
    n: usize,
    work: &mut GemmWork,
    mut pack: impl FnMut(usize, &mut [i16]),
    mut add: impl FnMut(bool, &[i32]),
) {
    let np = n.div_ceil(NR) * NR;
    let GemmWork { xp, tmp } = work;
    tmp.resize(rows * n, 0);
    for (ci, j0) in (0..kp).step_by(CHUNK).enumerate() {
        let jn = CHUNK.min(kp - j0);
        xp.clear();
        xp.resize(jn * np * 2, 0);
        for (j, dst) in xp.chunks_exact_mut(np * 2).enumerate() {
            pack(j0 + j, dst);
        }
        kernel(a, kp, rows, j0, jn, xp, np, n, tmp);
        add(ci == 0, tmp);
    }
}

/// One chunk's i32 sums `tr` into the f64 sums `ar`: the first sets them (with `base(j)` added at column
/// `j`), later ones add to them.
#[inline(always)]
fn add_chunk(ar: &mut [f64], tr: &[i32], first: bool, base: impl Fn(usize) -> f64) {
    if first {
        for (j, (a, &t)) in ar.iter_mut().zip(tr).enumerate() {
            *a = t as f64 + base(j);
        }
    } else {
        for (a, &t) in ar.iter_mut().zip(tr) {
            *a += t as f64;
        }
    }
}

/// `tmp` (`rows × n`) = the sums over pairs `j0..j0 + jn` of the rows of `a` (pairs, row stride `lda`) and
/// `xp` (`jn × np` pairs), [`MR`] rows by [`NR`] columns at a time.
#[allow(clippy::too_many_arguments)]
fn kernel(
    a: &[i32],
    lda: usize,
    rows: usize,
    j0: usize,
    jn: usize,
    xp: &[i16],
    np: usize,
    n: usize,
    tmp: &mut [i32],
) {
    let zero = vec![0i32; jn];
    for r0 in (0..rows).step_by(MR) {
        let ws: [&[i32]; MR] = std::array::from_fn(|i| match r0 + i < rows {
            true => &a[(r0 + i) * lda + j0..][..jn],
            false => &zero[..],
        });
        for c0 in (0..np).step_by(NR) {
            let mut sums = [[i32x8::ZERO; 2]; MR];
            for j in 0..jn {
                let xs = &xp[(j * np + c0) * 2..][..2 * NR];
                let (x0, x1) = (load(xs, 0), load(xs, 2 * LANES));
                for (s, wr) in sums.iter_mut().zip(&ws) {
                    let wv: i16x16 = bytemuck::cast(i32x8::splat(wr[j]));
                    s[0] += x0.dot(wv);
                    s[1] += x1.dot(wv);
                }
            }
            for (i, s) in sums.iter().enumerate().take(rows - r0) {
                let row = &mut tmp[(r0 + i) * n..][..n];
                let lanes: [i32; NR] = bytemuck::cast([s[0].to_array(), s[1].to_array()]);
                match row.get_mut(c0..c0 + NR) {
                    // a whole block as one fixed-size store (a copy of a run this short costs more as a
                    // memcpy call)
                    Some(d) => {
                        let d: &mut [i32; NR] = d.try_into().expect("a block");
                        *d = lanes;
                    }
                    None => {
                        let m = n - c0;
                        row[c0..].copy_from_slice(&lanes[..m]);
                    }
                }
            }
        }
    }
}
