//! Depthwise convs of 16-bit activations and 8-bit weights on 16-bit multiply-adds (`vpmaddwd` on AVX2, its
//! SSE2 and NEON counterparts elsewhere, through `wide`): sixteen products per instruction where the f64
//! path does four, and exact, so the sums are the f64 path's bit for bit.
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

use wide::{i16x16, i32x8};

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
        let c = e.offset + 32768;
        let (cf, inv) = (c as f32, 1.0 / e.scale);
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
                // codes less c fit i16. Adding 1.5 · 2²³ to an integer in [-2¹⁵, 2¹⁵) leaves it in the
                // low mantissa bits: no float-to-int conversion (which does not vectorise to i16).
                for (d, &v) in codes.iter_mut().zip(xin) {
                    let r = (round_code(v * inv) - cf).clamp(-32768.0, 32767.0);
                    *d = (r + MAGIC).to_bits() as i16;
                }
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
