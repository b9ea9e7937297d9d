//! 16-bit activations on 8-bit weights on 16-bit multiply-adds (`vpmaddwd` on AVX2, its SSE2 and NEON
//! counterparts elsewhere, through `wide`): sixteen products per instruction where the f64 path does four
//! (eight with AVX-512), and exact, so the sums are the f64 path's bit for bit. Small depthwise convs
//! ([`FlatDw16`]) and the GEMM of every other conv ([`Rows16`], [`gemm`]).
//!
//! The multiply-add takes pairs of i16 (a 16-bit code less `c = offset + 32768` always fits) and adds each
//! pair's two products into one i32. On [`FlatGrid`] a tap reads the run of the planes at its offset, so two
//! taps whose offsets are one apart (horizontal neighbours) read, for output `l`, elements `l` and `l + 1` of
//! one run. Each channel's planes are therefore also laid out as pairs (element `l` beside element `l + 1`):
//! sixteen i16 from there are eight outputs' inputs of both taps, one multiply-add with the weight pairs
//! `(w₀, w₁)`, and the sums come out in output order. A tap without such a neighbour is paired with a zero
//! weight. Weights vary per lane (zero where a tap's column leaves the row), so each lane has its own pair.
//!
//! Σ w · (code − c) + c · Σ w = Σ w · code, with Σ w per lane over the taps that count there; padding holds
//! −c (code 0). With |w| ≤ 128 and at most 255 taps every partial sum stays in i32.
//!
//! The GEMM pairs consecutive rows of its right operand (input channels, or im2col rows) the same way:
//! column `j` of a pair is the two rows' elements side by side, and each weight pair, packed into one i32,
//! is broadcast to every lane. Sums of at most [`CHUNK`] pairs stay in i32 (k · 128 · 32768 < 2³¹);
//! longer ones add their chunks in f64, exactly.

use wide::{bytemuck, i16x16, i32x8};

use super::conv::FlatGrid;
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

/// A flat depthwise conv's weights laid out for the multiply-adds, made once per model.
#[derive(Clone, Debug)]
pub(crate) struct FlatDw16 {
    /// Where each pair of taps (or lone tap) reads on the grid.
    items: Vec<usize>,
    /// Per channel, span of outputs and item: each output's weight pair.
    w: Vec<i16>,
    /// Per channel and lane: the sum of the taps' weights there.
    wsum: Vec<i32>,
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

/// Sixteen i16 from `v[at..]`.
#[inline(always)]
fn load(v: &[i16], at: usize) -> i16x16 {
    let a: [i16; 2 * LANES] = v[at..at + 2 * LANES].try_into().expect("sixteen lanes");
    i16x16::from(a)
}

impl FlatDw16 {
    /// From the flat kernel's weights `wm` (`[cout][tap][lane]`, codes as f32), when every code fits 8 bits.
    pub fn new(g: &Geom, wm: &[f32]) -> Option<FlatDw16> {
        let kt = g.kh * g.kw;
        if kt > MAX_TAPS || wm.iter().any(|&w| !(-128.0..=127.0).contains(&w)) {
            return None;
        }
        let grid = FlatGrid::new(g);
        let lanes = grid.lanes;
        // pair taps that read one element apart
        let mut order: Vec<usize> = (0..kt).collect();
        order.sort_by_key(|&t| grid.taps[t]);
        let mut pairs: Vec<(usize, Option<usize>)> = Vec::new();
        let mut i = 0;
        while i < kt {
            let t = order[i];
            match order.get(i + 1) {
                Some(&u) if grid.taps[u] == grid.taps[t] + 1 => {
                    pairs.push((t, Some(u)));
                    i += 2;
                }
                _ => {
                    pairs.push((t, None));
                    i += 1;
                }
            }
        }
        let mut w = Vec::with_capacity(g.cout * lanes * pairs.len() * 2);
        let mut wsum = vec![0i32; g.cout * lanes];
        for ch in 0..g.cout {
            let wc = &wm[ch * kt * lanes..][..kt * lanes];
            let at = |t: usize, l: usize| wc[t * lanes + l] as i16;
            for span in 0..lanes / SPAN {
                for &(t0, t1) in &pairs {
                    for l in span * SPAN..(span + 1) * SPAN {
                        w.push(at(t0, l));
                        w.push(t1.map_or(0, |t| at(t, l)));
                    }
                }
            }
            for (l, s) in wsum[ch * lanes..][..lanes].iter_mut().enumerate() {
                *s = (0..kt).map(|t| at(t, l) as i32).sum();
            }
        }
        Some(FlatDw16 {
            items: pairs.iter().map(|&(t, _)| grid.taps[t]).collect(),
            w,
            wsum,
        })
    }

    /// The sums of every sample of `x` (activations on `e`'s grid of at most 16 bits, NCHW), handed to
    /// `finish(b, acc_b)` (`acc_b`: `[cout, p]`) one sample at a time.
    pub fn run(&self, g: &Geom, x: &[f32], e: &Encoding, mut finish: impl FnMut(usize, &[i32])) {
        let grid = FlatGrid::new(g);
        let (lanes, p, n) = (grid.lanes, g.p(), self.items.len());
        let (c, inv) = (shift(e), 1.0 / e.scale);
        // c · Σ w per channel and lane, once for every sample
        let cw: Vec<i32> = self.wsum.iter().map(|&s| c.wrapping_mul(s)).collect();
        let mut codes = vec![0i16; g.plane()];
        let mut planes = vec![(-c) as i16; grid.planes_len(1)];
        let mut pairs = vec![0i16; 2 * planes.len()];
        let mut wide = vec![0i32; lanes];
        let mut acc = vec![0i32; g.cout * p];
        for b in 0..g.n {
            for ch in 0..g.cout {
                let xin = &x[(b * g.cin + ch) * g.plane()..][..g.plane()];
                shifted_codes(xin, inv, c, &mut codes);
                grid.fill(&mut planes, &codes);
                for ((d, &a), &b) in pairs.chunks_exact_mut(2).zip(&planes).zip(&planes[1..]) {
                    d[0] = a;
                    d[1] = b;
                }
                let ws = &self.w[ch * lanes * n * 2..][..lanes * n * 2];
                let cws = &cw[ch * lanes..][..lanes];
                for (span, (out, cs)) in wide
                    .chunks_exact_mut(SPAN)
                    .zip(cws.chunks_exact(SPAN))
                    .enumerate()
                {
                    let mut sums = [i32x8::ZERO; GROUP];
                    let wspan = &ws[span * n * 2 * SPAN..][..n * 2 * SPAN];
                    for (&at, wp) in self.items.iter().zip(wspan.chunks_exact(2 * SPAN)) {
                        let base = 2 * (at + span * SPAN);
                        let xs = &pairs[base..base + 2 * SPAN];
                        for (k, s) in sums.iter_mut().enumerate() {
                            *s += load(xs, 2 * LANES * k).dot(load(wp, 2 * LANES * k));
                        }
                    }
                    for ((o, s), cs) in out
                        .chunks_exact_mut(LANES)
                        .zip(sums)
                        .zip(cs.chunks_exact(LANES))
                    {
                        let cs: [i32; LANES] = cs.try_into().expect("eight lanes");
                        o.copy_from_slice(&(s + i32x8::from(cs)).to_array());
                    }
                }
                grid.copy_out(g, &wide, &mut acc[ch * p..][..p]);
            }
            finish(b, &acc);
        }
    }
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
            for pair in row.chunks(2) {
                let lo = pair[0] as i16 as u16 as u32;
                let hi = pair.get(1).map_or(0, |&w| w as i16 as u16 as u32);
                pairs.push((lo | hi << 16) as i32);
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
    let np = n.div_ceil(NR) * NR;
    let GemmWork { xp, tmp } = work;
    tmp.resize(rows * n, 0);
    for (ci, j0) in (0..kp).step_by(CHUNK).enumerate() {
        let jn = CHUNK.min(kp - j0);
        // the chunk's rows of b, two by two side by side; columns past n are zero
        xp.clear();
        xp.resize(jn * np * 2, 0);
        for (j, dst) in xp.chunks_exact_mut(np * 2).enumerate() {
            let r = 2 * (j0 + j);
            let r0 = &b[r * ld..][..n];
            let d = &mut dst[..2 * n];
            if r + 1 < k {
                let r1 = &b[(r + 1) * ld..][..n];
                for ((d, &u), &v) in d.chunks_exact_mut(2).zip(r0).zip(r1) {
                    d[0] = u;
                    d[1] = v;
                }
            } else {
                for (d, &u) in d.chunks_exact_mut(2).zip(r0) {
                    d[0] = u;
                }
            }
        }
        kernel(w, first, rows, j0, jn, xp, np, n, tmp);
        let ws = &w.wsum[first..first + rows];
        for ((ar, tr), &s) in acc.chunks_exact_mut(n).zip(tmp.chunks_exact(n)).zip(ws) {
            if ci == 0 {
                let base = c as f64 * s;
                for (a, &t) in ar.iter_mut().zip(tr) {
                    *a = t as f64 + base;
                }
            } else {
                for (a, &t) in ar.iter_mut().zip(tr) {
                    *a += t as f64;
                }
            }
        }
    }
}

/// `tmp` (`rows × n`) = the sums over pairs `j0..j0 + jn` of weight rows `first..` and `xp` (`jn × np`
/// pairs), [`MR`] rows by [`NR`] columns at a time.
#[allow(clippy::too_many_arguments)]
fn kernel(
    w: &Rows16,
    first: usize,
    rows: usize,
    j0: usize,
    jn: usize,
    xp: &[i16],
    np: usize,
    n: usize,
    tmp: &mut [i32],
) {
    let kp = w.k.div_ceil(2);
    let zero = vec![0i32; jn];
    for r0 in (0..rows).step_by(MR) {
        let ws: [&[i32]; MR] = std::array::from_fn(|i| match r0 + i < rows {
            true => &w.pairs[(first + r0 + i) * kp + j0..][..jn],
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
