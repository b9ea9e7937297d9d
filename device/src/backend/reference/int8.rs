//! Quantized MAC ops on an integer GEMM (rten-gemm: u8 activations × i8 weights → i32, AVX-512 VNNI, AVX2,
//! NEON dot products). Every sum is exact in integers, the same integers as the f32/f64 paths, so the
//! outputs are the same bit for bit.
//!
//! - a8w8: activations as their u8 codes with the encoding's zero point, weights as i8 codes, one GEMM with
//!   i32 sums (|Σ| ≤ k · 255 · 128 < 2³¹ for k < 65,000).
//! - 16-bit activations or weights: split into bytes, as HTP itself multiplies 16-bit operands. A 16-bit
//!   code is `256·hi + lo` (two u8 planes); a 16-bit weight is `256·hi + (lo′ + 128)` with `hi` and `lo′`
//!   both i8 ([`Planes`]). Each pair of planes is one GEMM with zero point 0, exact in i32 as above; the
//!   pairs combine in f64 (exact: every sum stays below 2⁵³) with the row sums the `+ 128` needs and the
//!   zero point's `zp · Σw`. a16w8 is two GEMMs, a16w16 four; they beat the f64 GEMM only on long sums
//!   with many output channels ([`long_enough`]).
//!
//! x86 CPUs without VNNI run the int8 kernel through `vpmaddubsw`, whose 16-bit pair sums saturate; there
//! the kernel is not exact and these functions decline (return false), leaving the f32/f64 paths.

use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB, GemmOptions, QuantParams};
use rten_tensor::{Layout as _, NdTensorView};

use super::geometry::{im2col, Geom, MIN_GEMM_WIDTH};
use super::requant::{Acc, Epilogue, QuantMac, Requant};
use crate::quant::Encoding;

thread_local! {
    /// The executor, when its kernel is exact on this CPU (it is not `Send`, hence one per thread).
    static GEMM: Option<GemmExecutor<u8, i8, i32>> = {
        // rten-gemm splits a GEMM over rayon's global pool when it has more than one thread. amp runs
        // evaluations side by side instead and keeps each one on its own thread (handing every small GEMM
        // to a pool cost more than it saved), so the pool is made single-threaded, unless the embedding
        // program configured it first.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
        let e = GemmExecutor::<u8, i8, i32>::default();
        let off = std::env::var(NO_VNNI).is_ok_and(|v| !v.is_empty() && v != "0");
        usable(e.may_saturate(), off).then_some(e)
    };
}

/// Set (to anything but empty or 0), the int8 GEMM is not used, as on an x86 CPU without VNNI: one machine then measures
/// both paths (`scripts/bench_ref.py --no-vnni`). Read once per thread.
pub const NO_VNNI: &str = "AMP_REFERENCE_NO_VNNI";

/// Whether the int8 GEMM runs: its kernel is exact here and the user did not turn it off.
fn usable(may_saturate: bool, turned_off: bool) -> bool {
    !may_saturate && !turned_off
}

/// Whether the int8 GEMM is exact here (true on CPUs with VNNI and on aarch64).
#[cfg(test)]
pub fn available() -> bool {
    GEMM.with(|g| g.is_some())
}

/// i8 weight codes, when every code fits.
pub(crate) fn weight_codes(codes: &[f32]) -> Option<Vec<i8>> {
    codes
        .iter()
        .map(|&c| (-128.0..=127.0).contains(&c).then_some(c as i8))
        .collect()
}

/// u8 codes of activations on `e`'s grid (`round(x / scale) − offset`, clamped to 0..=255), appended to
/// `out`.
fn activation_codes(x: &[f32], e: &Encoding, out: &mut Vec<u8>) {
    // x / scale lies within 0.01 of an integer, so adding the zero point first rounds the same. Adding 2²³
    // to a value in [0, 255] rounds it half to even and leaves the integer in the low mantissa bits: no
    // float-to-int conversion, so the loop vectorises.
    const TWO23: f32 = 8388608.0;
    let (inv, zp) = (1.0 / e.scale, -e.offset as f32);
    let at = out.len();
    out.resize(at + x.len(), 0);
    // a zip over two slices vectorises (an `extend` from a map does not)
    for (d, &v) in out[at..].iter_mut().zip(x) {
        *d = ((v * inv + zp).clamp(0.0, 255.0) + TWO23).to_bits() as u8;
    }
}

/// Whether sums of `k` terms into `width` output channels are long enough for the int8 GEMM to beat the
/// f32/f64 ones: at a8w8 with 32 channels it cost mnist_mbv 6% and textori 14%, and byte-split 16-bit
/// operands (two or four GEMMs) lost to the f64 GEMM on every conv of those models.
pub(crate) fn long_enough(k: usize, width: usize) -> bool {
    k >= 64 && width >= 64
}

/// Weight codes as i8 planes for the byte-split GEMMs: `w = Σₚ multₚ · planeₚ + add`, with each output
/// channel's `Σ w`. 8-bit codes are one plane; 16-bit codes are the high byte (× 256) and the low byte less
/// 128 (`add` 128), both i8.
#[derive(Clone, Debug)]
pub(crate) struct Planes {
    planes: Vec<(Vec<i8>, f64)>,
    add: f64,
    sums: Vec<f64>,
}

impl Planes {
    /// The planes of `cout` rows of weight codes, when every code fits 16 bits.
    pub fn new(codes: &[f32], cout: usize) -> Option<Planes> {
        if cout == 0 || codes.is_empty() || codes.len() % cout != 0 {
            return None;
        }
        let k = codes.len() / cout;
        let sums = codes
            .chunks(k)
            .map(|r| r.iter().map(|&v| v as f64).sum())
            .collect();
        if let Some(w8) = weight_codes(codes) {
            return Some(Planes {
                planes: vec![(w8, 1.0)],
                add: 0.0,
                sums,
            });
        }
        let w16: Vec<i16> = codes
            .iter()
            .map(|&c| (-32768.0..=32767.0).contains(&c).then_some(c as i16))
            .collect::<Option<_>>()?;
        Some(Planes {
            planes: vec![
                (w16.iter().map(|&w| (w >> 8) as i8).collect(), 256.0),
                (w16.iter().map(|&w| ((w & 255) - 128) as i8).collect(), 1.0),
            ],
            add: 128.0,
            sums,
        })
    }

    /// acc (`rows × width`, channels `first..first + width`) = Σₖ (code − zp) · w: one GEMM per pair of
    /// planes (`acts`: `rows × k` views of the codes' byte planes, with their weights 256 or 1), combined in f64
    /// with `row_sums` (Σₖ code per row, needed when `add` is not 0) and `zp · Σw`. False if rten refuses
    /// the shapes.
    #[allow(clippy::too_many_arguments)]
    fn sums(
        &self,
        gemm: &GemmExecutor<u8, i8, i32>,
        acts: &[(NdTensorView<u8, 2>, f64)],
        first: usize,
        width: usize,
        zp: f64,
        row_sums: &[f64],
        acc: &mut Vec<f64>,
        scratch: &mut Vec<i32>,
    ) -> bool {
        let Some(&(a0, _)) = acts.first() else {
            return false;
        };
        let (rows, k) = (a0.size(0), a0.size(1));
        acc.resize(rows * width, 0.0);
        let mut first_pass = true;
        for &(a, sa) in acts {
            // read by two GEMMs (16-bit weights), the activations' plane is packed once
            let packed = (self.planes.len() > 1).then(|| gemm.prepack_a(a));
            for (plane, mw) in &self.planes {
                let Ok(b) = NdTensorView::from_data_with_strides(
                    [k, width],
                    &plane[first * k..][..width * k],
                    [1, k],
                ) else {
                    return false;
                };
                // the GEMM overwrites its output: no need to clear it first
                scratch.resize(rows * width, 0);
                let a_in = match &packed {
                    Some(p) => GemmInputA::Packed(p),
                    None => GemmInputA::Unpacked(a),
                };
                if !exact_gemm(gemm, &mut scratch[..rows * width], a_in, b, None) {
                    return false;
                }
                let f = sa * mw;
                if std::mem::take(&mut first_pass) {
                    for (s, &g) in acc[..rows * width].iter_mut().zip(scratch.iter()) {
                        *s = f * g as f64;
                    }
                } else {
                    for (s, &g) in acc[..rows * width].iter_mut().zip(scratch.iter()) {
                        *s += f * g as f64;
                    }
                }
            }
        }
        acc.truncate(rows * width);
        let sums = &self.sums[first..first + width];
        for (r, row) in acc.chunks_mut(width).enumerate() {
            let add = if self.needs_row_sums() {
                self.add * row_sums[r]
            } else {
                0.0
            };
            for (s, &w) in row.iter_mut().zip(sums) {
                *s += add - zp * w;
            }
        }
        true
    }

    fn needs_row_sums(&self) -> bool {
        self.add != 0.0
    }
}

/// The zero point of `e`'s codes and how many byte planes they split into (one for 8 bits, two for 16).
fn act_split(e: &Encoding) -> Option<(u32, usize)> {
    let planes = match e.bits {
        8 => 1,
        16 => 2,
        _ => return None,
    };
    let zp = -(e.offset as i64);
    (0..1i64 << e.bits)
        .contains(&zp)
        .then_some((zp as u32, planes))
}

/// Appends the codes of `x` on `e`'s grid to the byte planes: u8 codes (one plane), or the high and low
/// bytes of u16 codes (two).
fn activation_planes(x: &[f32], e: &Encoding, planes: &mut [Vec<u8>]) {
    let [hi, lo] = planes else {
        return activation_codes(x, e, &mut planes[0]);
    };
    // as in `activation_codes`: below 2¹⁶ the integer sits in the low mantissa bits
    const TWO23: f32 = 8388608.0;
    let (inv, zp) = (1.0 / e.scale, -e.offset as f32);
    let at = hi.len();
    hi.resize(at + x.len(), 0);
    lo.resize(at + x.len(), 0);
    for ((h, l), &v) in hi[at..].iter_mut().zip(lo[at..].iter_mut()).zip(x) {
        let c = ((v * inv + zp).clamp(0.0, 65535.0) + TWO23).to_bits();
        *h = (c >> 8) as u8;
        *l = c as u8;
    }
}

/// Σ over rows of a `k × cols` matrix of byte planes weighted `sa`: each column's Σₖ code.
fn column_sums(planes: &[(&[u8], f64)], k: usize, cols: usize, out: &mut Vec<f64>) {
    out.clear();
    out.resize(cols, 0.0);
    for &(p, sa) in planes {
        let mut s = vec![0u32; cols];
        for row in p[..k * cols].chunks(cols) {
            for (t, &v) in s.iter_mut().zip(row) {
                *t += v as u32;
            }
        }
        for (o, t) in out.iter_mut().zip(s) {
            *o += sa * t as f64;
        }
    }
}

/// Runs `f` with the exact int8 GEMM; false when it is missing here.
fn with_gemm(f: impl FnOnce(&GemmExecutor<u8, i8, i32>) -> bool) -> bool {
    GEMM.with(|g| g.as_ref().is_some_and(f))
}

/// acc = (a − zero point of each row of a) · b, in i32 (zero points 0 when None); false if rten refuses
/// the shapes.
fn exact_gemm(
    gemm: &GemmExecutor<u8, i8, i32>,
    acc: &mut [i32],
    a: GemmInputA<u8>,
    b: NdTensorView<i8, 2>,
    zero_points: Option<&[u8]>,
) -> bool {
    let opts = GemmOptions {
        a_quant: zero_points.map(|zero_point| QuantParams { zero_point }),
        ..Default::default()
    };
    gemm.gemm(acc, a, GemmInputB::Unpacked(b), opts).is_ok()
}

/// Pixels rescaled and transposed together.
const TILE: usize = 16;

fn zero_point(e: &Encoding) -> Option<u8> {
    (e.bits == 8 && (-255..=0).contains(&e.offset)).then_some((-e.offset) as u8)
}

/// out (`n × cout × p`, NCHW) = the conv of `x` rescaled per channel, then `epi`: a8w8 on one GEMM, wider
/// operands split into bytes. False when the integer GEMM cannot run exactly here (the caller falls back).
pub(crate) fn conv(
    g: &Geom,
    x: &[f32],
    e: &Encoding,
    q: &QuantMac,
    epi: &Epilogue,
    out: &mut [f32],
) -> bool {
    let cout_g = g.cout_g();
    if let (Some(w8), Some(zp)) = (&q.codes_i8, zero_point(e)) {
        let mut zps = Vec::new();
        return conv_on(g, x, e, &[zp], q, epi, out, |gemm, gi, cols, ncols, acc| {
            let k = g.k();
            let Ok(a) = NdTensorView::from_data_with_strides([ncols, k], cols[0], [1, ncols])
            else {
                return false;
            };
            let wg = &w8[gi * cout_g * k..][..cout_g * k];
            let Ok(bt) = NdTensorView::from_data_with_strides([k, cout_g], wg, [1, k]) else {
                return false;
            };
            zps.resize(ncols, zp);
            acc.clear();
            acc.resize(ncols * cout_g, 0i32);
            exact_gemm(gemm, acc, GemmInputA::Unpacked(a), bt, Some(&zps))
        });
    }
    let (Some(w), Some((zp, n))) = (&q.planes, act_split(e)) else {
        return false;
    };
    let fills: Vec<u8> = if n == 1 {
        vec![zp as u8]
    } else {
        vec![(zp >> 8) as u8, zp as u8]
    };
    let weights: &[f64] = if n == 1 { &[1.0] } else { &[256.0, 1.0] };
    let (mut row_sums, mut scratch) = (Vec::new(), Vec::new());
    conv_on(
        g,
        x,
        e,
        &fills,
        q,
        epi,
        out,
        |gemm, gi, cols, ncols, acc| {
            let k = g.k();
            let mut acts = Vec::with_capacity(n);
            for (c, &sa) in cols.iter().zip(weights) {
                let Ok(a) = NdTensorView::from_data_with_strides([ncols, k], *c, [1, ncols]) else {
                    return false;
                };
                acts.push((a, sa));
            }
            if w.needs_row_sums() {
                let planes: Vec<(&[u8], f64)> =
                    cols.iter().copied().zip(weights.iter().copied()).collect();
                column_sums(&planes, k, ncols, &mut row_sums);
            }
            w.sums(
                gemm,
                &acts,
                gi * cout_g,
                cout_g,
                zp as f64,
                &row_sums,
                acc,
                &mut scratch,
            )
        },
    )
}

/// The conv's loop over batch blocks and groups: the input's codes as byte planes (padding filled with
/// `fills`, the zero point's bytes), each plane's columns (`k × ncols`), `sums` into `acc`
/// (`ncols × cout_g`), then the requantization, transposed back to channel-major a block of pixels at a
/// time.
#[allow(clippy::too_many_arguments)]
fn conv_on<A: Acc + Default + Clone>(
    g: &Geom,
    x: &[f32],
    e: &Encoding,
    fills: &[u8],
    q: &QuantMac,
    epi: &Epilogue,
    out: &mut [f32],
    mut sums: impl FnMut(&GemmExecutor<u8, i8, i32>, usize, &[&[u8]], usize, &mut Vec<A>) -> bool,
) -> bool {
    with_gemm(|gemm| {
        let rq = Requant::new(q, epi);
        let (p, k, cout_g) = (g.p(), g.k(), g.cout_g());
        // one GEMM per sample when its output plane is wide enough, else one for the whole batch
        let ns = if p >= MIN_GEMM_WIDTH { 1 } else { g.n };
        let np = fills.len();
        let mut xs: Vec<Vec<u8>> = vec![Vec::new(); np];
        let mut cols: Vec<Vec<u8>> = vec![Vec::new(); np];
        let mut acc: Vec<A> = Vec::new();
        let mut tile = vec![0f32; TILE * cout_g];
        for b0 in (0..g.n).step_by(ns) {
            let nb = ns.min(g.n - b0);
            let ncols = nb * p;
            for gi in 0..g.group {
                xs.iter_mut().for_each(Vec::clear);
                for b in b0..b0 + nb {
                    let lo = (b * g.cin + gi * g.cin_g) * g.plane();
                    activation_planes(&x[lo..lo + g.cin_g * g.plane()], e, &mut xs);
                }
                let direct = g.pointwise() && nb == 1;
                if !direct {
                    for ((c, xp), &fill) in cols.iter_mut().zip(&xs).zip(fills) {
                        c.clear();
                        c.resize(k * ncols, fill);
                        for (i, xb) in xp.chunks(g.cin_g * g.plane()).enumerate() {
                            if g.pointwise() {
                                for (ci, plane) in xb.chunks(p).enumerate() {
                                    c[ci * ncols + i * p..][..p].copy_from_slice(plane);
                                }
                            } else {
                                im2col(g, xb, c, ncols, i * p, fill);
                            }
                        }
                    }
                }
                let planes: Vec<&[u8]> = if direct {
                    xs.iter().map(|v| &v[..]).collect()
                } else {
                    cols.iter().map(|v| &v[..]).collect()
                };
                // accᵀ [ncols, cout_g] = colsᵀ · wᵀ, both read through strides
                if !sums(gemm, gi, &planes, ncols, &mut acc) {
                    return false;
                }
                for i in 0..nb {
                    let out_b = &mut out[((b0 + i) * g.cout + gi * cout_g) * p..][..cout_g * p];
                    for j0 in (0..p).step_by(TILE) {
                        let jn = TILE.min(p - j0);
                        let rows = &acc[(i * p + j0) * cout_g..][..jn * cout_g];
                        rq.rows(q, epi, gi * cout_g, cout_g, rows, &mut tile[..jn * cout_g]);
                        for (co, orow) in out_b.chunks_mut(p).enumerate() {
                            for (jj, o) in orow[j0..j0 + jn].iter_mut().enumerate() {
                                *o = tile[jj * cout_g + co];
                            }
                        }
                    }
                }
            }
        }
        true
    })
}

/// out (`m × nout`) = x (`m × k`) · wᵀ rescaled per output, then `epi`; false when the integer GEMM cannot
/// run exactly here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fc(
    x: &[f32],
    m: usize,
    k: usize,
    nout: usize,
    e: &Encoding,
    q: &QuantMac,
    epi: &Epilogue,
    out: &mut [f32],
) -> bool {
    if let (Some(w8), Some(zp)) = (&q.codes_i8, zero_point(e)) {
        return with_gemm(|gemm| {
            let mut xs = Vec::with_capacity(m * k);
            activation_codes(x, e, &mut xs);
            let a = NdTensorView::from_data([m, k], &xs[..]);
            let Ok(bt) = NdTensorView::from_data_with_strides([k, nout], &w8[..], [1, k]) else {
                return false;
            };
            let zps = vec![zp; m];
            let mut acc = vec![0i32; m * nout];
            if !exact_gemm(gemm, &mut acc, GemmInputA::Unpacked(a), bt, Some(&zps)) {
                return false;
            }
            Requant::new(q, epi).rows(q, epi, 0, nout, &acc, out);
            true
        });
    }
    let (Some(w), Some((zp, n))) = (&q.planes, act_split(e)) else {
        return false;
    };
    with_gemm(|gemm| {
        let mut xs: Vec<Vec<u8>> = vec![Vec::with_capacity(m * k); n];
        activation_planes(x, e, &mut xs);
        let weights: &[f64] = if n == 1 { &[1.0] } else { &[256.0, 1.0] };
        let acts: Vec<_> = xs
            .iter()
            .zip(weights)
            .map(|(p, &sa)| (NdTensorView::from_data([m, k], &p[..]), sa))
            .collect();
        let mut row_sums = Vec::new();
        if w.needs_row_sums() {
            row_sums = vec![0.0; m];
            for (p, &sa) in xs.iter().zip(weights) {
                for (r, row) in p.chunks(k).enumerate() {
                    row_sums[r] += sa * row.iter().map(|&v| v as u32).sum::<u32>() as f64;
                }
            }
        }
        let (mut acc, mut scratch) = (Vec::new(), Vec::new());
        if !w.sums(
            gemm,
            &acts,
            0,
            nout,
            zp as f64,
            &row_sums,
            &mut acc,
            &mut scratch,
        ) {
            return false;
        }
        Requant::new(q, epi).rows(q, epi, 0, nout, &acc, out);
        true
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_no_vnni_switch_and_a_saturating_kernel_both_decline() {
        assert!(super::usable(false, false));
        assert!(!super::usable(false, true));
        assert!(!super::usable(true, false));
    }
}
