//! a8w8 MAC ops on an integer GEMM (rten-gemm: u8 activations × i8 weights → i32, AVX-512 VNNI, AVX2, NEON
//! dot products): activations as their u8 codes with the encoding's zero point, weights as i8 codes, exact
//! i32 sums (|Σ| ≤ k · 255 · 128 < 2³¹ for k < 65,000). The same integers as the f32/f64 paths, so the same
//! outputs bit for bit, about twice as fast.
//!
//! x86 CPUs without VNNI run the int8 kernel through `vpmaddubsw`, whose 16-bit pair sums saturate; there
//! the kernel is not exact and these functions decline (return false), leaving the f32/f64 paths.

use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB, GemmOptions, QuantParams};
use rten_tensor::NdTensorView;

use super::geometry::{im2col, Geom, MIN_GEMM_WIDTH};
use super::requant::{Epilogue, QuantMac, Requant};
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

/// Runs `f` with the exact int8 GEMM and `e`'s zero point; false when either is missing.
fn with_gemm(e: &Encoding, f: impl FnOnce(&GemmExecutor<u8, i8, i32>, u8) -> bool) -> bool {
    let Some(zp) = zero_point(e) else {
        return false;
    };
    GEMM.with(|g| g.as_ref().is_some_and(|g| f(g, zp)))
}

/// acc = (a − zero point of each row of a) · b, in i32; false if rten refuses the shapes.
fn exact_gemm(
    gemm: &GemmExecutor<u8, i8, i32>,
    acc: &mut [i32],
    a: NdTensorView<u8, 2>,
    b: NdTensorView<i8, 2>,
    zero_points: &[u8],
) -> bool {
    let opts = GemmOptions {
        a_quant: Some(QuantParams {
            zero_point: zero_points,
        }),
        ..Default::default()
    };
    gemm.gemm(acc, GemmInputA::Unpacked(a), GemmInputB::Unpacked(b), opts)
        .is_ok()
}

/// Pixels rescaled and transposed together.
const TILE: usize = 16;

fn zero_point(e: &Encoding) -> Option<u8> {
    (e.bits == 8 && (-255..=0).contains(&e.offset)).then_some((-e.offset) as u8)
}

/// out (`n × cout × p`, NCHW) = the conv of `x` rescaled per channel, then `epi`. False when the int8 GEMM
/// cannot run exactly here (the caller falls back).
pub(crate) fn conv(
    g: &Geom,
    x: &[f32],
    e: &Encoding,
    w8: &[i8],
    q: &QuantMac,
    epi: &Epilogue,
    out: &mut [f32],
) -> bool {
    with_gemm(e, |gemm, zp| {
        let rq = Requant::new(q, epi);
        let (p, k, cout_g) = (g.p(), g.k(), g.cout_g());
        // one GEMM per sample when its output plane is wide enough, else one for the whole batch
        let ns = if p >= MIN_GEMM_WIDTH { 1 } else { g.n };
        let (mut xs, mut cols, mut acc, mut zps) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for b0 in (0..g.n).step_by(ns) {
            let nb = ns.min(g.n - b0);
            let ncols = nb * p;
            zps.resize(ncols, zp);
            for gi in 0..g.group {
                xs.clear();
                for b in b0..b0 + nb {
                    let lo = (b * g.cin + gi * g.cin_g) * g.plane();
                    activation_codes(&x[lo..lo + g.cin_g * g.plane()], e, &mut xs);
                }
                let bm: &[u8] = if g.pointwise() && nb == 1 {
                    &xs
                } else {
                    cols.clear();
                    cols.resize(k * ncols, zp);
                    for (i, xb) in xs.chunks(g.cin_g * g.plane()).enumerate() {
                        if g.pointwise() {
                            for (ci, plane) in xb.chunks(p).enumerate() {
                                cols[ci * ncols + i * p..][..p].copy_from_slice(plane);
                            }
                        } else {
                            im2col(g, xb, &mut cols, ncols, i * p, zp);
                        }
                    }
                    &cols
                };
                // accᵀ [ncols, cout_g] = colsᵀ · wᵀ, both read through strides
                let a = NdTensorView::from_data_with_strides([ncols, k], bm, [1, ncols])
                    .expect("columns fit their buffer");
                let wg = &w8[gi * cout_g * k..][..cout_g * k];
                let bt = NdTensorView::from_data_with_strides([k, cout_g], wg, [1, k])
                    .expect("weights fit their buffer");
                acc.clear();
                acc.resize(ncols * cout_g, 0i32);
                if !exact_gemm(gemm, &mut acc, a, bt, &zps) {
                    return false;
                }
                // requantize, and transpose back to channel-major a block of pixels at a time
                let mut tile = vec![0f32; TILE * cout_g];
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

/// out (`m × nout`) = x (`m × k`) · wᵀ rescaled per output, then `epi`; false when the int8 GEMM cannot
/// run exactly here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fc(
    x: &[f32],
    m: usize,
    k: usize,
    nout: usize,
    e: &Encoding,
    w8: &[i8],
    q: &QuantMac,
    epi: &Epilogue,
    out: &mut [f32],
) -> bool {
    with_gemm(e, |gemm, zp| {
        let mut xs = Vec::with_capacity(m * k);
        activation_codes(x, e, &mut xs);
        let a = NdTensorView::from_data([m, k], &xs[..]);
        let bt = NdTensorView::from_data_with_strides([k, nout], w8, [1, k])
            .expect("weights fit their buffer");
        let zps = vec![zp; m];
        let mut acc = vec![0i32; m * nout];
        if !exact_gemm(gemm, &mut acc, a, bt, &zps) {
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
