//! Conv, FP32 and integer-domain. Each sample runs one GEMM per group straight into its own output (pointwise
//! convs read the input where it lies; others go through an im2col buffer of one sample); when the output
//! plane is too small to fill a GEMM, the whole batch's columns go into one GEMM instead. Depthwise convs run
//! a direct loop. The bias, a fused Relu/Clip and the output's quantization are applied to each sample while
//! it is still in cache.

use super::buffers::Buffers;
use super::geometry::{im2col, Geom, MIN_GEMM_WIDTH};
use super::int8;
use super::madd16::{self, GemmWork, Rows16};
use super::numeric::{Layout, Num, Source};
use super::requant::{Epilogue, QuantMac, Requant};
use super::ArrayRef;
use crate::backend::Array;
use crate::ir::Conv;
use crate::quant::Encoding;

/// Depthwise outputs accumulated together in registers.
const DW_LANES: usize = 16;
/// Lanes per block of [`FlatGrid`]'s grid: 64 f32 or 32 f64 sums (eight AVX2 registers) kept across
/// all taps, enough independent chains to hide the FMA latency; the grid is a whole number of either.
const FLAT_GRID: usize = 64;

/// The phase-plane grid of one depthwise conv: each channel is copied into padded planes, one per (row,
/// column) phase of the stride, all `pw` wide. Then the input a tap reads for the whole output, taken `pw`
/// columns per output row, is one contiguous run of a phase plane, at the tap's offset. The columns past the
/// output width are discarded.
pub(crate) struct PhaseGrid {
    pw: usize,
    pl: usize,
    s1: usize,
    plane_len: usize,
    planes: usize,
    /// Outputs computed per channel: `oh` rows of `pw`, in whole blocks.
    pub lanes: usize,
    /// Where each input row lands.
    rows: Vec<usize>,
    /// Per column phase: its first input column, where it lands, how many columns.
    cols: Vec<(usize, usize, usize)>,
    /// Where each tap (in (ky, kx) order) starts reading.
    pub taps: Vec<usize>,
}

impl PhaseGrid {
    /// The grid of `g`, its outputs in whole blocks of `block`.
    pub fn new(g: &Geom, block: usize) -> PhaseGrid {
        let (oh, ow, kh, kw) = (g.oh, g.ow, g.kh, g.kw);
        let ([s0, s1], [d0, d1]) = (g.s, g.d);
        let (pt, pl) = (g.pads[0], g.pads[1]);
        let pw = (ow + (kw - 1) * d1 / s1).max((g.w - 1 + pl) / s1 + 1);
        let prh = (oh + (kh - 1) * d0 / s0 + 1).max((g.h - 1 + pt) / s0 + 1);
        let plane_len = prh * pw;
        // no divisions in the channel loop
        let rows = (0..g.h)
            .map(|r| ((r + pt) % s0 * s1 * prh + (r + pt) / s0) * pw)
            .collect();
        let cols = (0..s1)
            .map(|px| {
                // columns c ≡ px − pl (mod s1) land at (c + pl) / s1
                let c0 = (px + s1 - pl % s1) % s1;
                let cnt = g.w.saturating_sub(c0).div_ceil(s1);
                (c0, px * plane_len + (c0 + pl) / s1, cnt)
            })
            .collect();
        let taps = (0..kh * kw)
            .map(|t| {
                let (ky, kx) = (t / kw, t % kw);
                let (py, oy) = ((ky * d0) % s0, (ky * d0) / s0);
                let (px, ox) = ((kx * d1) % s1, (kx * d1) / s1);
                (py * s1 + px) * plane_len + oy * pw + ox
            })
            .collect();
        PhaseGrid {
            pw,
            pl,
            s1,
            plane_len,
            planes: s0 * s1,
            lanes: (oh * pw).div_ceil(block) * block,
            rows,
            cols,
            taps,
        }
    }

    /// Elements of the planes, with `slack` more read past the last block (the last block reads into it).
    pub fn planes_len(&self, slack: usize) -> usize {
        self.planes * self.plane_len + self.lanes + slack
    }

    /// Copies one channel `xin` (`h × w`) into `planes`. The borders keep what they were filled with:
    /// every channel overwrites the same interior.
    pub fn fill<T: Copy>(&self, g: &Geom, planes: &mut [T], xin: &[T]) {
        let (s1, pl, pw, plane_len) = (self.s1, self.pl, self.pw, self.plane_len);
        for (row, &base) in xin.chunks(g.w).zip(&self.rows) {
            if s1 == 1 {
                // an inline loop: rows are short, and a memcpy call per row costs more than the copy
                for (d, &v) in planes[base + pl..][..g.w].iter_mut().zip(row) {
                    *d = v;
                }
                continue;
            }
            if s1 == 2 {
                // deinterleave in one pass: even columns to one phase, odd to the other
                let (lo, hi) = planes.split_at_mut(base + plane_len);
                let (ph0, ph1) = (&mut lo[base..base + pw], &mut hi[..pw]);
                let (ev, od) = if pl % 2 == 0 { (ph0, ph1) } else { (ph1, ph0) };
                let (ev, od) = (&mut ev[pl / 2..], &mut od[pl.div_ceil(2)..]);
                for ((e, o), c) in ev.iter_mut().zip(od.iter_mut()).zip(row.chunks_exact(2)) {
                    *e = c[0];
                    *o = c[1];
                }
                if g.w % 2 == 1 {
                    ev[g.w / 2] = row[g.w - 1];
                }
                continue;
            }
            for &(c0, at, cnt) in &self.cols {
                for (j, d) in planes[base + at..][..cnt].iter_mut().enumerate() {
                    *d = row[c0 + j * s1];
                }
            }
        }
    }

    /// The grid's sums `wide` of one channel into its outputs `out` (`oh × ow`).
    pub fn copy_out<T: Copy>(&self, g: &Geom, wide: &[T], out: &mut [T]) {
        for (orow, wrow) in out.chunks_mut(g.ow).zip(wide.chunks(self.pw)) {
            for (o, &v) in orow.iter_mut().zip(wrow) {
                *o = v;
            }
        }
    }
}

/// Most weight lanes [`FlatGrid`] prepares (`cout · kh · kw` times its grid): it is for small planes,
/// where per-row work costs most.
const FLAT_DW_MAX_WEIGHTS: usize = 1 << 17;

/// Whether [`FlatGrid`] computes this depthwise conv: stride 1, or stride 2 over even sizes, with
/// "same" output sizes (the output is the input divided by the stride), no dilation, small planes.
fn flat_depthwise_fits(g: &Geom) -> bool {
    let s = g.s[0];
    (s == 1 || s == 2)
        && g.s[1] == s
        && g.d == [1, 1]
        && g.h % s == 0
        && g.w % s == 0
        && g.oh == g.h / s
        && g.ow == g.w / s
        && g.pads[0] < g.kh
        && g.pads[1] < g.kw
        && g.cout * g.kh * g.kw * flat_lanes(g) <= FLAT_DW_MAX_WEIGHTS
}

/// Outputs [`FlatGrid`] computes per channel: `oh` rows of `w` lanes, in whole blocks.
fn flat_lanes(g: &Geom) -> usize {
    (g.oh * g.w).div_ceil(FLAT_GRID) * FLAT_GRID
}

/// Per channel, tap and lane of [`FlatGrid`]'s grid: the tap's weight, or zero where the tap's input
/// column lies outside the row (it would read the row before or after).
fn flat_weights<T: Num>(g: &Geom, w: &[T]) -> Vec<T> {
    let (s, kt, lanes) = (g.s[0], g.kh * g.kw, flat_lanes(g));
    let inside: Vec<bool> = (0..kt * lanes)
        .map(|i| {
            let (t, l) = (i / lanes, i % lanes);
            let c = (s * (l % g.w) + t % g.kw).checked_sub(g.pads[1]);
            c.is_some_and(|c| c < g.w)
        })
        .collect();
    let mut wm = vec![T::default(); g.cout * kt * lanes];
    for (ch, per_ch) in wm.chunks_exact_mut(kt * lanes).enumerate() {
        for (t, (row, ins)) in per_ch
            .chunks_exact_mut(lanes)
            .zip(inside.chunks_exact(lanes))
            .enumerate()
        {
            let wv = w[ch * kt + t];
            for (v, &i) in row.iter_mut().zip(ins) {
                *v = if i { wv } else { T::default() };
            }
        }
    }
    wm
}

/// [`flat_weights`] of one depthwise conv, made once when a model is prepared (the weights and the plane
/// size are fixed; only the batch varies).
#[derive(Clone, Debug, Default)]
pub(crate) struct FlatDw {
    pub w32: Vec<f32>,
    pub w64: Vec<f64>,
}

impl FlatDw {
    /// For a depthwise conv over `input` (NCHW, any batch) with weights of shape `ws`, when the flat
    /// kernel computes it: from f32 weights (float or codes) and, when given, f64 codes.
    pub fn new(
        c: &Conv,
        input: &[usize],
        ws: &[usize],
        w32: &[f32],
        w64: Option<&[f64]>,
    ) -> Option<FlatDw> {
        let g = Geom::new(c, input, ws).ok()?;
        (g.depthwise() && flat_depthwise_fits(&g)).then(|| FlatDw {
            w32: flat_weights(&g, w32),
            w64: w64.map(|w| flat_weights(&g, w)).unwrap_or_default(),
        })
    }
}

/// The flat depthwise grid of one conv: outputs on `oh` rows of `w` lanes (the input's width; at stride 2
/// the second half of each row is discarded), and where each tap reads on it.
///
/// Each channel is copied once, whole: at stride 1 as it is, at stride 2 split by column parity into two
/// `h × w/2` planes (one flat pass). On that grid the input of tap `(ky, kx)` for every output is one
/// contiguous run of the copy, at a fixed offset. Rows above and below the plane read the slack, which holds
/// the padding value; where a tap's column lies outside the row its weight lane is zero.
struct FlatGrid {
    s: usize,
    /// Width of a column phase.
    half: usize,
    lanes: usize,
    margin: usize,
    phase_len: usize,
    /// From one phase to the next: `[margin | phase 0 | margin | phase 1 | margin + lanes]`.
    stride: usize,
    /// Where each tap (in (ky, kx) order) starts reading.
    taps: Vec<usize>,
}

impl FlatGrid {
    fn new(g: &Geom) -> FlatGrid {
        let s = g.s[0];
        let (kh, kw, pt, pl) = (g.kh, g.kw, g.pads[0], g.pads[1]);
        let half = g.w / s;
        let margin = (kh + 1) * half + kw;
        let phase_len = g.h * half;
        let stride = phase_len + margin;
        let taps = (0..kh * kw)
            .map(|t| {
                let c = (t % kw) as isize - pl as isize; // the tap's column offset at stride 1
                let (px, dj) = (c.rem_euclid(s as isize) as usize, c.div_euclid(s as isize));
                let off = ((t / kw) as isize - pt as isize) * half as isize + dj;
                ((margin + px * stride) as isize + off) as usize
            })
            .collect();
        FlatGrid {
            s,
            half,
            lanes: flat_lanes(g),
            margin,
            phase_len,
            stride,
            taps,
        }
    }

    /// Elements of the planes, with `slack` more read past the last block.
    fn planes_len(&self, slack: usize) -> usize {
        self.margin + self.s * self.stride + self.lanes + slack
    }

    /// Copies one channel `xin` into `planes` (whose slack keeps what it was filled with).
    fn fill<T: Copy>(&self, planes: &mut [T], xin: &[T]) {
        if self.s == 1 {
            planes[self.margin..][..self.phase_len].copy_from_slice(xin);
        } else {
            let (e, o) = planes[self.margin..].split_at_mut(self.stride);
            for ((ev, ov), pair) in e[..self.phase_len]
                .iter_mut()
                .zip(&mut o[..self.phase_len])
                .zip(xin.chunks_exact(2))
            {
                *ev = pair[0];
                *ov = pair[1];
            }
        }
    }

    /// The grid's sums `wide` of one channel into its outputs `out` (`oh × ow`).
    fn copy_out<T: Copy>(&self, g: &Geom, wide: &[T], out: &mut [T]) {
        if self.s == 1 {
            out.copy_from_slice(&wide[..g.p()]);
        } else {
            for (orow, wrow) in out.chunks_exact_mut(g.ow).zip(wide.chunks_exact(g.w)) {
                orow.copy_from_slice(&wrow[..g.ow]);
            }
        }
        debug_assert_eq!(self.half * self.s, g.w);
    }
}

/// Where a depthwise conv's sums are computed: on phase planes ([`PhaseGrid`], any shape), or for small common
/// shapes ([`flat_depthwise_fits`]) without per-row work on a [`FlatGrid`], with the weight lanes of
/// [`flat_weights`]. Padding taps add exact zeros and each output sums its taps in (ky, kx) order on both,
/// so the sums are the same.
enum DwGrid<'w, T> {
    Phase(PhaseGrid),
    Flat(FlatGrid, &'w [T]),
}

/// Depthwise accumulators of sample `b` (`acc`: `[cout, p]`) on `grid`, each tap a single long vector loop
/// over the channel.
#[allow(clippy::too_many_arguments)]
fn depthwise_sample<T: Num>(
    g: &Geom,
    grid: &DwGrid<T>,
    src: &Source<T>,
    b: usize,
    w: &[T],
    acc: &mut [T],
    scratch: &mut Vec<T>,
    (planes, wide): &mut (Vec<T>, Vec<T>),
) {
    let (zero, p, kt) = (T::default(), g.p(), g.kh * g.kw);
    let (len, lanes) = match grid {
        DwGrid::Phase(ph) => (ph.planes_len(0), ph.lanes),
        DwGrid::Flat(f, _) => (f.planes_len(0), f.lanes),
    };
    planes.clear();
    planes.resize(len, zero);
    wide.clear();
    wide.resize(lanes, zero);
    for ch in 0..g.cout {
        let xin = src.get((b * g.cin + ch) * g.plane(), g.plane(), scratch);
        let out = &mut acc[ch * p..][..p];
        match grid {
            DwGrid::Phase(ph) => {
                ph.fill(g, planes, xin);
                tap_blocks(planes, &w[ch * kt..][..kt], &ph.taps, wide);
                ph.copy_out(g, wide, out);
            }
            DwGrid::Flat(f, wm) => {
                f.fill(planes, xin);
                let wc = &wm[ch * kt * lanes..][..kt * lanes];
                if std::mem::size_of::<T>() == 4 {
                    flat_blocks::<T, 64>(planes, wc, &f.taps, lanes, wide);
                } else {
                    flat_blocks::<T, 32>(planes, wc, &f.taps, lanes, wide);
                }
                f.copy_out(g, wide, out);
            }
        }
    }
}

/// Phase-plane sums of one channel (weights `wk` per tap), [`DW_LANES`] outputs at a time kept in registers
/// across all taps.
fn tap_blocks<T: Num>(planes: &[T], wk: &[T], taps: &[usize], wide: &mut [T]) {
    for (i, block) in wide.chunks_exact_mut(DW_LANES).enumerate() {
        let mut a = [T::default(); DW_LANES];
        for (&at, &wv) in taps.iter().zip(wk) {
            let xs = &planes[at + i * DW_LANES..][..DW_LANES];
            for (av, &xv) in a.iter_mut().zip(xs) {
                *av = *av + xv * wv;
            }
        }
        block.copy_from_slice(&a);
    }
}

/// [`FlatGrid`] sums of one channel, `N` lanes at a time kept in registers across all taps.
fn flat_blocks<T: Num, const N: usize>(
    planes: &[T],
    wc: &[T],
    taps: &[usize],
    lanes: usize,
    wide: &mut [T],
) {
    for (i, block) in wide.chunks_exact_mut(N).enumerate() {
        let mut a = [T::default(); N];
        for (t, &at) in taps.iter().enumerate() {
            let xs = &planes[at + i * N..][..N];
            let ws = &wc[t * lanes + i * N..][..N];
            for ((av, &xv), &wv) in a.iter_mut().zip(xs).zip(ws) {
                *av = *av + xv * wv;
            }
        }
        block.copy_from_slice(&a);
    }
}

/// Accumulators of one sample (`xb`: its `cin` planes; `acc`: `[cout, p]`), one GEMM per group.
fn sample_acc<T: Num>(g: &Geom, xb: &[T], w: &[T], acc: &mut [T], cols: &mut Vec<T>) {
    let (p, k, cout_g) = (g.p(), g.k(), g.cout_g());
    for gi in 0..g.group {
        let xg = &xb[gi * g.cin_g * g.plane()..][..g.cin_g * g.plane()];
        let bm: &[T] = if g.pointwise() {
            xg
        } else {
            cols.resize(k * p, T::default());
            im2col(g, xg, cols, p, 0, T::default());
            cols
        };
        T::gemm(
            cout_g,
            k,
            p,
            &w[gi * cout_g * k..][..cout_g * k],
            Layout::Rows(k),
            bm,
            Layout::Rows(p),
            &mut acc[gi * cout_g * p..][..cout_g * p],
        );
    }
}

/// Accumulators of the whole batch (`acc`: NCHW) with one GEMM per group over every sample's columns side by
/// side, for output planes too small to fill a GEMM alone.
fn batch_acc<T: Num>(g: &Geom, src: &Source<T>, w: &[T], acc: &mut [T], scratch: &mut Vec<T>) {
    let (p, k, cout_g) = (g.p(), g.k(), g.cout_g());
    let np = g.n * p;
    let mut cols = vec![T::default(); k * np];
    let mut tmp = vec![T::default(); cout_g * np];
    for gi in 0..g.group {
        for b in 0..g.n {
            let lo = (b * g.cin + gi * g.cin_g) * g.plane();
            let xg = src.get(lo, g.cin_g * g.plane(), scratch);
            if g.pointwise() {
                for ci in 0..g.cin_g {
                    cols[ci * np + b * p..][..p].copy_from_slice(&xg[ci * p..][..p]);
                }
            } else {
                im2col(g, xg, &mut cols, np, b * p, T::default());
            }
        }
        T::gemm(
            cout_g,
            k,
            np,
            &w[gi * cout_g * k..][..cout_g * k],
            Layout::Rows(k),
            &cols,
            Layout::Rows(np),
            &mut tmp,
        );
        for co in 0..cout_g {
            for b in 0..g.n {
                acc[(b * g.cout + gi * cout_g + co) * p..][..p]
                    .copy_from_slice(&tmp[co * np + b * p..][..p]);
            }
        }
    }
}

/// Computes the accumulators of every sample into `acc` (NCHW) and calls `finish(b, acc_b)` on each sample as
/// soon as its accumulators are complete.
fn conv_acc<T: Num>(
    g: &Geom,
    src: &Source<T>,
    w: &[T],
    flat: Option<&[T]>,
    acc: &mut [T],
    mut finish: impl FnMut(usize, &mut [T]),
) {
    let per = g.cout * g.p();
    let mut scratch = Vec::new();
    if g.depthwise() {
        let mut work = (Vec::new(), Vec::new());
        let made;
        let grid = match flat {
            _ if !flat_depthwise_fits(g) => DwGrid::Phase(PhaseGrid::new(g, DW_LANES)),
            Some(wm) => DwGrid::Flat(FlatGrid::new(g), wm),
            None => {
                made = flat_weights(g, w);
                DwGrid::Flat(FlatGrid::new(g), &made[..])
            }
        };
        for b in 0..g.n {
            let ab = &mut acc[b * per..][..per];
            depthwise_sample(g, &grid, src, b, w, ab, &mut scratch, &mut work);
            finish(b, ab);
        }
    } else if g.p() >= MIN_GEMM_WIDTH || g.n == 1 {
        let mut cols = Vec::new();
        for b in 0..g.n {
            let xb = src.get(b * g.cin * g.plane(), g.cin * g.plane(), &mut scratch);
            let ab = &mut acc[b * per..][..per];
            sample_acc(g, xb, w, ab, &mut cols);
            finish(b, ab);
        }
    } else {
        batch_acc(g, src, w, acc, &mut scratch);
        for b in 0..g.n {
            finish(b, &mut acc[b * per..][..per]);
        }
    }
}

/// Sums of a conv (not depthwise) of activations on `e`'s grid (at most 16 bits) and 8-bit weights `w` on
/// [`madd16::gemm`], one sample at a time, each handed to `finish(b, acc_b)` (`acc_b`: `[cout, p]`).
fn conv_madd16(
    g: &Geom,
    x: &[f32],
    e: &Encoding,
    w: &Rows16,
    mut finish: impl FnMut(usize, &[f64]),
) {
    let (p, k, cout_g, plane) = (g.p(), g.k(), g.cout_g(), g.plane());
    let (c, inv) = (madd16::shift(e), 1.0 / e.scale);
    let mut codes = vec![0i16; g.cin * plane];
    let mut cols = Vec::new();
    let mut acc = vec![0f64; g.cout * p];
    let mut work = GemmWork::default();
    for b in 0..g.n {
        madd16::shifted_codes(&x[b * g.cin * plane..][..g.cin * plane], inv, c, &mut codes);
        for gi in 0..g.group {
            let xg = &codes[gi * g.cin_g * plane..][..g.cin_g * plane];
            let bm: &[i16] = if g.pointwise() {
                xg
            } else {
                // padding is code 0, less c
                cols.resize(k * p, 0);
                im2col(g, xg, &mut cols, p, 0, (-c) as i16);
                &cols
            };
            let ag = &mut acc[gi * cout_g * p..][..cout_g * p];
            madd16::gemm(w, gi * cout_g, cout_g, bm, p, p, c, ag, &mut work);
        }
        finish(b, &acc);
    }
}

pub(crate) fn conv_f32(
    c: &Conv,
    x: &ArrayRef,
    w: &ArrayRef,
    bias: Option<&[f32]>,
    epi: &Epilogue,
    bufs: &mut Buffers,
    flat: Option<&FlatDw>,
) -> Result<Array, String> {
    let g = Geom::new(c, x.shape, w.shape)?;
    let p = g.p();
    let mut out = bufs.take(g.n * g.cout * p);
    let fw = flat.map(|f| &f.w32[..]);
    conv_acc::<f32>(
        &g,
        &Source::Ready(x.data),
        w.data,
        fw,
        &mut out,
        |_, ob| match bias {
            // bias and epilogue in one pass per channel
            Some(b) => {
                for (row, &bv) in ob.chunks_mut(p).zip(b) {
                    epi.apply_mapped(row, |v| v + bv);
                }
            }
            None => epi.apply(ob),
        },
    );
    Ok(Array::new(g.shape(), out))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_quant(
    c: &Conv,
    x: &ArrayRef,
    ws: &[usize],
    q: &QuantMac,
    e: Encoding,
    epi: &Epilogue,
    bufs: &mut Buffers,
    flat: Option<&FlatDw>,
) -> Result<Array, String> {
    let g = Geom::new(c, x.shape, ws)?;
    let (p, per) = (g.p(), g.cout * g.p());
    let mut out = bufs.take(g.n * per);
    // the int8 GEMM pays for its transposed output on long sums into many channels, and at a8w8 also
    // where f32 is not exact; 16-bit operands split into bytes pay only on the long sums
    let long = int8::long_enough(g.k(), g.cout_g());
    let int8_pays = long || q.codes64.is_some();
    let int_gemm = q.codes_i8.is_some() || (q.planes.is_some() && long);
    if int_gemm && !g.depthwise() && int8_pays && int8::conv(&g, x.data, &e, q, epi, &mut out) {
        return Ok(Array::new(g.shape(), out));
    }
    let inv_scale = 1.0 / e.scale;
    let rq = Requant::new(q, epi);
    let Some(w64) = &q.codes64 else {
        // an input kept as codes (scale 1) is already integers: read it in place
        let src = if inv_scale == 1.0 {
            Source::Ready(x.data)
        } else {
            Source::<f32>::codes(x.data, inv_scale)
        };
        conv_acc(
            &g,
            &src,
            &q.codes,
            flat.map(|f| &f.w32[..]),
            &mut out,
            |_, ob| {
                for (c, row) in ob.chunks_mut(p).enumerate() {
                    rq.row_in_place(q, epi, c, row);
                }
            },
        );
        return Ok(Array::new(g.shape(), out));
    };
    // 16-bit activations on 8-bit weights: on 16-bit multiply-adds
    if let Some(r16) = q.rows16.as_ref().filter(|_| e.bits <= 16) {
        if !g.depthwise() {
            conv_madd16(&g, x.data, &e, r16, |b, ab| {
                rq.channels(q, epi, p, ab, &mut out[b * per..][..per])
            });
            return Ok(Array::new(g.shape(), out));
        }
        if madd16::depthwise(&g, x.data, &e, &q.codes, |b, ab| {
            rq.channels(q, epi, p, ab, &mut out[b * per..][..per])
        }) {
            return Ok(Array::new(g.shape(), out));
        }
    }
    let src = Source::<f64>::codes(x.data, inv_scale);
    // every path writes each sum before reading it: the buffer need not be zeroed
    let mut acc = bufs.take64(out.len());
    let fw = flat.map(|f| &f.w64[..]).filter(|f| !f.is_empty());
    conv_acc(&g, &src, w64, fw, &mut acc, |b, ab| {
        rq.channels(q, epi, p, ab, &mut out[b * per..][..per])
    });
    bufs.give64(acc);
    Ok(Array::new(g.shape(), out))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::reference::geometry::out_dims;
    use crate::backend::reference::requant::definition::{requantized, signed_outputs};

    /// Naive convolution straight from the definition.
    fn naive(c: &Conv, x: &[f32], xs: [usize; 4], w: &[f32], ws: [usize; 4]) -> Vec<f32> {
        naive_f64(c, x, xs, w, ws)
            .into_iter()
            .map(|v| v as f32)
            .collect()
    }

    /// The same sums in f64 (exact for integer operands below 2⁵³).
    fn naive_f64(c: &Conv, x: &[f32], xs: [usize; 4], w: &[f32], ws: [usize; 4]) -> Vec<f64> {
        let (oh, ow) = out_dims(c, &xs, &ws).unwrap();
        let cout_g = ws[0] / c.group;
        let mut out = vec![0f64; xs[0] * ws[0] * oh * ow];
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
                        out[((b * ws[0] + co) * oh + oy) * ow + ox] = acc;
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
            // output planes of at least MIN_GEMM_WIDTH: one GEMM per sample (pointwise, im2col, groups)
            (
                conv([1, 1], [0, 0, 0, 0], [1, 1], 1),
                [2, 5, 13, 11],
                [7, 5, 1, 1],
            ),
            (
                conv([1, 1], [1, 0, 2, 1], [1, 1], 2),
                [3, 4, 12, 12],
                [6, 2, 3, 3],
            ),
            (
                conv([2, 2], [0, 0, 0, 0], [1, 1], 1),
                [2, 3, 25, 24],
                [4, 3, 1, 1],
            ),
            // depthwise: odd widths, strides 2 and 3, asymmetric pads, dilation, 5×5 kernels, large planes
            (
                conv([2, 2], [1, 2, 0, 1], [1, 1], 3),
                [2, 3, 15, 13],
                [3, 1, 3, 3],
            ),
            (
                conv([3, 2], [2, 2, 2, 2], [1, 1], 2),
                [1, 2, 17, 16],
                [2, 1, 5, 5],
            ),
            (
                conv([1, 1], [2, 2, 2, 2], [2, 2], 4),
                [2, 4, 9, 10],
                [4, 1, 3, 3],
            ),
            (
                conv([1, 1], [2, 2, 2, 2], [1, 1], 2),
                [2, 2, 40, 37],
                [2, 1, 5, 5],
            ),
            (
                conv([2, 2], [0, 1, 1, 0], [1, 1], 3),
                [1, 3, 1, 6],
                [3, 1, 1, 3],
            ),
            // depthwise on the flat kernel: "same" sizes at stride 1 and 2, odd and even planes
            (
                conv([1, 1], [1, 1, 1, 1], [1, 1], 3),
                [2, 3, 7, 5],
                [3, 1, 3, 3],
            ),
            (
                conv([1, 1], [2, 2, 2, 2], [1, 1], 2),
                [2, 2, 9, 6],
                [2, 1, 5, 5],
            ),
            (
                conv([2, 2], [1, 1, 1, 1], [1, 1], 5),
                [3, 5, 14, 14],
                [5, 1, 3, 3],
            ),
            (
                conv([2, 2], [0, 0, 1, 1], [1, 1], 2),
                [2, 2, 8, 6],
                [2, 1, 3, 3],
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
                &Epilogue::NONE,
                &mut Buffers::default(),
                None,
            )
            .unwrap();
            assert_eq!(got.data, want, "case {i}");
        }
    }

    /// Quantized conv against the definition: integer codes `q + offset`, an exact integer sum, one rescale
    /// per channel, then the output encoding. Both accumulators (f32 where exact, f64) and both the
    /// batched and per-sample GEMMs.
    #[test]
    fn quantized_conv_is_the_integer_conv_rescaled() {
        let e_in = Encoding {
            bits: 8,
            scale: 0.05,
            offset: -100,
        };
        let outs = [
            Encoding {
                bits: 8,
                scale: 0.3,
                offset: -128,
            },
            Encoding {
                bits: 16,
                scale: 0.3 / 256.0,
                offset: -32768,
            },
        ];
        let cases = [
            (
                conv([1, 1], [1, 1, 1, 1], [1, 1], 1),
                [2, 3, 6, 7],
                [4, 3, 3, 3],
            ),
            (
                conv([2, 2], [1, 1, 1, 1], [1, 1], 5),
                [2, 5, 16, 17],
                [5, 1, 3, 3],
            ),
            // depthwise on the flat kernel (stride 1 and 2, "same" sizes)
            (
                conv([2, 2], [1, 1, 1, 1], [1, 1], 5),
                [2, 5, 14, 14],
                [5, 1, 3, 3],
            ),
            (
                conv([1, 1], [1, 1, 1, 1], [1, 1], 4),
                [2, 4, 7, 7],
                [4, 1, 3, 3],
            ),
            (
                conv([1, 1], [0, 0, 0, 0], [1, 1], 1),
                [2, 6, 12, 12],
                [3, 6, 1, 1],
            ),
            // long enough sums for the int8 GEMM: batched, per sample, pointwise, two groups
            (
                conv([1, 1], [1, 1, 1, 1], [1, 1], 1),
                [3, 8, 5, 6],
                [5, 8, 3, 3],
            ),
            (
                conv([2, 1], [1, 0, 1, 2], [1, 1], 1),
                [2, 8, 27, 13],
                [4, 8, 3, 3],
            ),
            (
                conv([1, 1], [0, 0, 0, 0], [1, 1], 1),
                [2, 70, 12, 11],
                [3, 70, 1, 1],
            ),
            (
                conv([1, 1], [1, 1, 1, 1], [1, 1], 2),
                [2, 16, 12, 12],
                [4, 8, 3, 3],
            ),
            // and wide enough for it where f32 sums are exact
            (
                conv([1, 1], [0, 0, 0, 0], [1, 1], 1),
                [2, 70, 5, 4],
                [64, 70, 1, 1],
            ),
        ];
        assert!(
            cases
                .iter()
                .any(|(_, _, ws)| ws[0] >= 64 && ws[1] * ws[2] * ws[3] >= 64),
            "a case takes the int8 GEMM with exact f32 sums"
        );
        for (i, (c, xs, ws)) in cases.iter().enumerate() {
            let n_x: usize = xs.iter().product();
            // activations on e_in's grid: codes 0..=255
            let q: Vec<f32> = pseudo(n_x, 7 + i as u32)
                .iter()
                .map(|v| ((v + 8.0) * 15.0).min(255.0))
                .collect();
            let x: Vec<f32> = q
                .iter()
                .map(|&q| ((q + e_in.offset as f32) as f64 * e_in.scale as f64) as f32)
                .collect();
            let codes = pseudo(ws.iter().product(), 50 + i as u32);
            let cout = ws[0];
            let mult: Vec<f64> = (0..cout).map(|c| 0.001 * (c + 1) as f64).collect();
            let bias: Vec<f64> = (0..cout).map(|c| 0.25 * c as f64 - 0.5).collect();
            let shifted: Vec<f32> = q.iter().map(|&q| q + e_in.offset as f32).collect();
            let acc = naive(c, &shifted, *xs, &codes, *ws);
            let p = acc.len() / (xs[0] * cout);
            for e_out in outs {
                let want = requantized(&acc, p, cout, &mult, &bias, e_out, (0.0, 6.0));
                let epi = Epilogue {
                    clamp: Some((0.0, 6.0)),
                    quant: Some(e_out),
                    codes: false,
                };
                if !int8::available() {
                    println!(
                        "no exact int8 GEMM on this CPU: only the f32 and f64 paths are checked"
                    );
                }
                for (wide, i8w) in [(false, false), (true, false), (false, true), (true, true)] {
                    let q = QuantMac::new(codes.clone(), mult.clone(), bias.clone(), wide, i8w);
                    assert_eq!(q.codes_i8.is_some(), i8w);
                    let got = quant_conv(c, xs, &x, ws, &q, e_in, &epi);
                    assert_eq!(
                        got.data, want,
                        "case {i}, f64 {wide}, int8 {i8w}, {}-bit output",
                        e_out.bits
                    );
                }
            }
        }
    }

    /// `conv_quant` of `x` (shape `xs`), on free buffers full of NaN (so every sum must be written before it
    /// is read), no flat depthwise weights.
    fn quant_conv(
        c: &Conv,
        xs: &[usize],
        x: &[f32],
        ws: &[usize],
        q: &QuantMac,
        e_in: Encoding,
        epi: &Epilogue,
    ) -> Array {
        let x = ArrayRef { shape: xs, data: x };
        conv_quant(
            c,
            &x,
            ws,
            q,
            e_in,
            epi,
            &mut Buffers::poisoned(1 << 16),
            None,
        )
        .unwrap()
    }

    /// A conv over activation codes `q` (`0..=qmax` of `e_in`, shape `xs`) and weight `codes` (shape `ws`):
    /// the activations, the definition's exact sums (f64), multipliers that bring the largest sum to a few
    /// units, and biases.
    fn exact_case(
        c: &Conv,
        xs: &[usize; 4],
        ws: &[usize; 4],
        e_in: &Encoding,
        q: &[f32],
        codes: &[f32],
    ) -> (Vec<f32>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let off = e_in.offset as f32;
        let x = q
            .iter()
            .map(|&q| ((q + off) as f64 * e_in.scale as f64) as f32)
            .collect();
        let shifted: Vec<f32> = q.iter().map(|&q| q + off).collect();
        let acc = naive_f64(c, &shifted, *xs, codes, *ws);
        let cout = ws[0];
        let top = acc.iter().fold(0f64, |m, a| m.max(a.abs()));
        let mult = (0..cout)
            .map(|c| 8.0 * (c + 1) as f64 / (cout as f64 * top))
            .collect();
        let bias = (0..cout).map(|c| 0.25 * c as f64 - 0.5).collect();
        (x, acc, mult, bias)
    }

    /// Integers in `[lo, hi]`, both ends included, from a fixed seed.
    pub(crate) fn codes_in(n: usize, seed: u32, lo: i64, hi: i64) -> Vec<f32> {
        let mut s = seed as u64;
        let span = (hi - lo + 1) as u64;
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // the ends themselves every few values: the extreme bytes of each plane
                match i % 11 {
                    0 => lo as f32,
                    5 => hi as f32,
                    _ => (lo + ((s >> 33) % span) as i64) as f32,
                }
            })
            .collect()
    }

    /// 16-bit activations or weights on the byte-split integer GEMM, and 16-bit activations on 8-bit
    /// weights on the multiply-add GEMM: the f64 path's outputs and the definition's, bit for bit (padded, strided, batched, per-sample pointwise and grouped convs, all with
    /// the long sums and many channels that take the split).
    #[test]
    fn sixteen_bit_convs_on_integer_kernels_are_the_integer_conv() {
        if !int8::available() {
            println!("no exact int8 GEMM on this CPU: only the f64 path is checked");
        }
        // (strides, pads, group, input shape, weight shape)
        let cases = [
            ([1, 1], [1, 1, 1, 1], 1, [2, 8, 9, 7], [64, 8, 3, 3]),
            ([1, 1], [0, 0, 0, 0], 1, [2, 70, 12, 11], [65, 70, 1, 1]),
            ([2, 1], [1, 0, 1, 2], 1, [2, 8, 27, 13], [64, 8, 3, 3]),
            ([1, 1], [1, 1, 1, 1], 2, [2, 16, 12, 12], [128, 8, 3, 3]),
            // short sums (the multiply-adds alone): an odd k, rows and columns past whole blocks, and a
            // k of more than one chunk
            ([2, 2], [1, 1, 1, 1], 1, [2, 3, 11, 9], [7, 3, 3, 3]),
            ([1, 1], [0, 0, 0, 0], 1, [3, 9, 5, 7], [5, 9, 1, 1]),
            ([1, 1], [0, 0, 0, 0], 1, [1, 600, 3, 5], [6, 600, 1, 1]),
        ]
        .map(|(s, p, g, xs, ws)| (conv(s, p, [1, 1], g), xs, ws));
        let clamp = (-6.0, 6.0);
        let outs = signed_outputs();
        for (i, (c, xs, ws)) in cases.iter().enumerate() {
            for (in_bits, w_bits) in [(16u8, 8u8), (16, 16), (8, 16)] {
                let e_in = Encoding {
                    bits: in_bits,
                    scale: 0.001,
                    offset: match (in_bits, i % 4) {
                        (8, _) => -100,
                        (_, 0) => -30001,
                        (_, 1) => 0,
                        (_, 2) => -65535,
                        _ => -1,
                    },
                };
                let qmax = (1i64 << in_bits) - 1;
                let q = codes_in(xs.iter().product(), 3 + i as u32, 0, qmax);
                let wmax = (1i64 << (w_bits - 1)) - 1;
                let codes = codes_in(ws.iter().product(), 40 + i as u32, -wmax - 1, wmax);
                let (x, acc, mult, bias) = exact_case(c, xs, ws, &e_in, &q, &codes);
                let (cout, p) = (ws[0], acc.len() / (xs[0] * ws[0]));
                for e_out in outs {
                    let want = requantized(&acc, p, cout, &mult, &bias, e_out, clamp);
                    let epi = Epilogue {
                        clamp: Some(clamp),
                        quant: Some(e_out),
                        codes: false,
                    };
                    let split =
                        QuantMac::new(codes.clone(), mult.clone(), bias.clone(), true, false);
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
                    let paths = [
                        (&split, "byte planes"),
                        (&madd, "multiply-adds"),
                        (&wide, "f64"),
                    ];
                    for (q, path) in paths {
                        let got = quant_conv(c, xs, &x, ws, q, e_in, &epi);
                        assert_eq!(
                            got.data, want,
                            "case {i}, a{in_bits}w{w_bits} on {path}, {}-bit output",
                            e_out.bits
                        );
                    }
                }
            }
        }
    }

    /// 16-bit activations on 8-bit weights, depthwise convs: the 16-bit multiply-adds give the definition's
    /// outputs and the f64 kernels' (flat and phase planes), bit for bit, over every activation code (both
    /// ends), every weight code (-128 and 127 too), zero points at both ends of the range and between,
    /// strides 1 and 2, 3×3 and 5×5 kernels, dilation, uneven pads, lone taps and pairs.
    #[test]
    fn sixteen_bit_depthwise_on_multiply_adds_is_the_integer_conv() {
        // (strides, pads, dilations, input shape, weight shape)
        let cases = [
            ([1, 1], [1, 1, 1, 1], [1, 1], [2, 5, 14, 14], [5, 1, 3, 3]),
            ([2, 2], [1, 1, 1, 1], [1, 1], [2, 4, 14, 14], [4, 1, 3, 3]),
            ([1, 1], [2, 2, 2, 2], [1, 1], [3, 3, 9, 9], [3, 1, 5, 5]),
            ([2, 2], [2, 2, 2, 2], [1, 1], [1, 6, 10, 10], [6, 1, 5, 5]),
            ([1, 1], [0, 1, 0, 1], [1, 1], [2, 2, 6, 8], [2, 1, 1, 3]),
            ([2, 1], [1, 0, 2, 1], [2, 2], [2, 3, 13, 11], [3, 1, 3, 3]),
            ([3, 3], [1, 1, 1, 1], [1, 1], [1, 2, 40, 37], [2, 1, 3, 3]),
        ]
        .map(|(s, p, d, xs, ws)| (conv(s, p, d, xs[1]), xs, ws));
        let clamp = (-6.0, 6.0);
        for (i, (c, xs, ws)) in cases.iter().enumerate() {
            for offset in [0, -1, -32768, -30001, -65535] {
                let e_in = Encoding {
                    bits: 16,
                    scale: 0.001,
                    offset,
                };
                let q = codes_in(xs.iter().product(), 9 + i as u32, 0, 65535);
                let codes = codes_in(ws.iter().product(), 60 + i as u32, -128, 127);
                let (x, acc, mult, bias) = exact_case(c, xs, ws, &e_in, &q, &codes);
                let (cout, p) = (ws[0], acc.len() / (xs[0] * ws[0]));
                let madd = QuantMac::new(codes.clone(), mult.clone(), bias.clone(), true, false);
                assert!(
                    madd.rows16.is_some(),
                    "8-bit weights take the multiply-adds"
                );
                let wide = QuantMac {
                    rows16: None,
                    ..madd.clone()
                };
                let one = [1, xs[1], xs[2], xs[3]];
                let flat = FlatDw::new(c, &one, ws, &madd.codes, madd.codes64.as_deref());
                for e_out in signed_outputs() {
                    let want = requantized(&acc, p, cout, &mult, &bias, e_out, clamp);
                    let epi = Epilogue {
                        clamp: Some(clamp),
                        quant: Some(e_out),
                        codes: false,
                    };
                    let paths = [
                        (&madd, None, "multiply-adds"),
                        (&wide, flat.as_ref(), "f64"),
                        (&wide, None, "f64 without prepared weights"),
                    ];
                    for (q, f, path) in paths {
                        let x = ArrayRef {
                            shape: xs,
                            data: &x,
                        };
                        let mut bufs = Buffers::poisoned(1 << 16);
                        let got = conv_quant(c, &x, ws, q, e_in, &epi, &mut bufs, f);
                        assert_eq!(
                            got.unwrap().data,
                            want,
                            "case {i}, offset {offset} on {path}, {}-bit output",
                            e_out.bits
                        );
                    }
                }
            }
        }
    }
}
