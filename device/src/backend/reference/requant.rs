//! How a MAC op's exact sums become its output: the per-channel multiplier and int32 bias of a quantized
//! Conv/Gemm ([`QuantMac`]), what is applied after the op ([`Epilogue`]: a fused Relu/Clip, the output's
//! quantization) and the one-pass requantization every accumulator path shares ([`Requant`]).

use super::int8;
use super::madd16::Rows16;
use crate::quant::Encoding;

/// Integer-domain parameters of one MAC op with weights.
#[derive(Clone, Debug)]
pub(crate) struct QuantMac {
    /// Weight codes (integers stored as floats).
    pub codes: Vec<f32>,
    /// The same codes in f64, when accumulating in f32 would not be exact.
    pub codes64: Option<Vec<f64>>,
    /// The same codes in i8, for 8-bit weights on 8-bit activations (the int8 GEMM).
    pub codes_i8: Option<Vec<i8>>,
    /// The same codes as i8 byte planes, where the sums would otherwise run in f64 (16-bit activations or
    /// weights on the integer GEMM).
    pub planes: Option<int8::Planes>,
    /// The same codes in pairs for the 16-bit multiply-add GEMM, where the sums would otherwise run in f64
    /// and every code fits 8 bits (16-bit activations on 8-bit weights).
    pub rows16: Option<Rows16>,
    /// Output multiplier per channel: input scale × weight scale.
    pub mult: Vec<f64>,
    /// Dequantized int32 bias per channel.
    pub bias: Vec<f64>,
}

impl QuantMac {
    /// Weight `codes` with their f64 copy and byte planes where `wide` (f32 sums would not be exact) and
    /// their i8 copy where `int8` (8-bit weights on 8-bit activations) and every code fits.
    pub fn new(codes: Vec<f32>, mult: Vec<f64>, bias: Vec<f64>, wide: bool, int8: bool) -> Self {
        QuantMac {
            planes: if wide {
                int8::Planes::new(&codes, mult.len())
            } else {
                None
            },
            rows16: if wide {
                Rows16::new(&codes, mult.len())
            } else {
                None
            },
            codes64: wide.then(|| codes.iter().map(|&v| v as f64).collect()),
            codes_i8: if int8 {
                int8::weight_codes(&codes)
            } else {
                None
            },
            codes,
            mult,
            bias,
        }
    }
}

/// What a MAC kernel applies to its output before handing it on: a fused Relu/Clip, then the output's
/// quantization.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epilogue {
    pub clamp: Option<(f32, f32)>,
    pub quant: Option<Encoding>,
    /// Leave the quantized values as integer codes `q + offset` (for a tensor only MAC ops read).
    pub codes: bool,
}

impl Epilogue {
    #[cfg(test)]
    pub const NONE: Epilogue = Epilogue {
        clamp: None,
        quant: None,
        codes: false,
    };

    pub fn apply(&self, v: &mut [f32]) {
        self.apply_mapped(v, |x| x);
    }

    /// `v[i] = epilogue(pre(v[i]))` in one pass (one loop per variant, so each vectorises).
    #[inline]
    pub fn apply_mapped(&self, v: &mut [f32], pre: impl Fn(f32) -> f32) {
        match (self.clamp, self.quant) {
            (None, None) => v.iter_mut().for_each(|x| *x = pre(*x)),
            (Some((lo, hi)), None) => v.iter_mut().for_each(|x| *x = clamp(pre(*x), lo, hi)),
            (None, Some(e)) => {
                let f = e.quant_fn(if self.codes { 1.0 } else { e.scale });
                v.iter_mut().for_each(|x| *x = f(pre(*x)));
            }
            (Some((lo, hi)), Some(e)) => {
                let f = e.quant_fn(if self.codes { 1.0 } else { e.scale });
                v.iter_mut().for_each(|x| *x = f(clamp(pre(*x), lo, hi)));
            }
        }
    }
}

/// How a MAC op's exact sums become its output: per output channel `c`, `acc · mult[c] + bias[c]`, then the
/// epilogue. With an output encoding `s` (every quantized MAC op in `run`), straight to the code in one pass:
/// `t = acc · (mult[c] / s) + bias[c] / s`, rounded half to even and limited to the codes the activation and
/// the encoding allow. Clamping before or after rounding gives the same code (both are monotone), so this
/// is the fused Relu/Clip followed by the quantization. `t` is computed in f32 for 8-bit outputs (t ≤ 255:
/// f32 is within 1e-4 LSB of the exact value) and in f64 for 16-bit ones, the same way whichever
/// accumulator (f32, f64, i32) produced `acc`, so every path gives the same bits.
pub(crate) enum Requant {
    /// No output encoding: the real value `acc · mult + bias` in f32, then the epilogue's clamp.
    Real,
    Narrow {
        m: Vec<f32>,
        b: Vec<f32>,
        lo: f32,
        hi: f32,
        out_scale: f32,
    },
    Wide {
        m: Vec<f64>,
        b: Vec<f64>,
        lo: f64,
        hi: f64,
        out_scale: f32,
    },
}

impl Requant {
    pub fn new(q: &QuantMac, epi: &Epilogue) -> Requant {
        let Some(e) = epi.quant else {
            return Requant::Real;
        };
        let s = e.scale as f64;
        let off = e.offset as f64;
        let (alo, ahi) = epi.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        // codes `q + offset` the activation and the encoding allow
        let lo = (alo as f64 / s).round_ties_even().max(off);
        let hi = (ahi as f64 / s).round_ties_even().min(e.qmax() + off);
        let out_scale = if epi.codes { 1.0 } else { e.scale };
        if e.bits <= 8 {
            Requant::Narrow {
                m: q.mult.iter().map(|&m| (m / s) as f32).collect(),
                b: q.bias.iter().map(|&b| (b / s) as f32).collect(),
                lo: lo as f32,
                hi: hi as f32,
                out_scale,
            }
        } else {
            Requant::Wide {
                m: q.mult.iter().map(|&m| m / s).collect(),
                b: q.bias.iter().map(|&b| b / s).collect(),
                lo,
                hi,
                out_scale,
            }
        }
    }

    /// Channel `c`'s sums `acc` into `out`.
    pub fn row<A: Acc>(&self, q: &QuantMac, epi: &Epilogue, c: usize, acc: &[A], out: &mut [f32]) {
        self.channel(q, c, out.iter_mut().zip(acc.iter().copied()));
        if let Requant::Real = self {
            epi.apply(out);
        }
    }

    /// Channel `c`'s f32 sums, in place.
    pub fn row_in_place(&self, q: &QuantMac, epi: &Epilogue, c: usize, row: &mut [f32]) {
        self.channel(
            q,
            c,
            row.iter_mut().map(|o| {
                let a = *o;
                (o, a)
            }),
        );
        if let Requant::Real = self {
            epi.apply(row);
        }
    }

    /// Each (output, sum) pair of channel `c` (for `Real`, before the epilogue's clamp).
    #[inline(always)]
    fn channel<'o, A: Acc>(
        &self,
        q: &QuantMac,
        c: usize,
        pairs: impl Iterator<Item = (&'o mut f32, A)>,
    ) {
        match self {
            Requant::Real => {
                let (m, b) = (q.mult[c], q.bias[c]);
                pairs.for_each(|(o, a)| *o = (a.f64() * m + b) as f32);
            }
            Requant::Narrow {
                m,
                b,
                lo,
                hi,
                out_scale,
            } => {
                let (m, b, lo, hi, os) = (m[c], b[c], *lo, *hi, *out_scale);
                pairs.for_each(|(o, a)| *o = code_f32(a.f32() * m + b, lo, hi) * os);
            }
            Requant::Wide {
                m,
                b,
                lo,
                hi,
                out_scale,
            } => {
                let (m, b, lo, hi, os) = (m[c], b[c], *lo, *hi, *out_scale);
                pairs.for_each(|(o, a)| *o = code_f64(a.f64() * m + b, lo, hi) as f32 * os);
            }
        }
    }

    /// One sample's sums, channel by channel (`acc`: `[cout, p]`), into `out`, same layout.
    pub fn channels<A: Acc>(
        &self,
        q: &QuantMac,
        epi: &Epilogue,
        p: usize,
        acc: &[A],
        out: &mut [f32],
    ) {
        for (c, (o, a)) in out.chunks_mut(p).zip(acc.chunks(p)).enumerate() {
            self.row(q, epi, c, a, o);
        }
    }

    /// Rows of sums whose column `j` is channel `first + j` (an FC output, or a transposed conv tile) into
    /// `out`, same layout.
    pub fn rows<A: Acc>(
        &self,
        q: &QuantMac,
        epi: &Epilogue,
        first: usize,
        width: usize,
        acc: &[A],
        out: &mut [f32],
    ) {
        for (orow, arow) in out.chunks_mut(width).zip(acc.chunks(width)) {
            match self {
                Requant::Real => {
                    for (j, (o, &a)) in orow.iter_mut().zip(arow).enumerate() {
                        let c = first + j;
                        *o = (a.f64() * q.mult[c] + q.bias[c]) as f32;
                    }
                    epi.apply(orow);
                }
                Requant::Narrow {
                    m,
                    b,
                    lo,
                    hi,
                    out_scale,
                } => {
                    let (m, b) = (&m[first..first + width], &b[first..first + width]);
                    for (((o, &a), &m), &b) in orow.iter_mut().zip(arow).zip(m).zip(b) {
                        *o = code_f32(a.f32() * m + b, *lo, *hi) * out_scale;
                    }
                }
                Requant::Wide {
                    m,
                    b,
                    lo,
                    hi,
                    out_scale,
                } => {
                    let (m, b) = (&m[first..first + width], &b[first..first + width]);
                    for (((o, &a), &m), &b) in orow.iter_mut().zip(arow).zip(m).zip(b) {
                        *o = code_f64(a.f64() * m + b, *lo, *hi) as f32 * out_scale;
                    }
                }
            }
        }
    }
}

/// An exact MAC sum as the requantization reads it: rounded to nearest f32 (exact below 2²⁴) or as f64.
pub(crate) trait Acc: Copy {
    fn f32(self) -> f32;
    fn f64(self) -> f64;
}

impl Acc for f32 {
    fn f32(self) -> f32 {
        self
    }
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Acc for f64 {
    fn f32(self) -> f32 {
        self as f32
    }
    fn f64(self) -> f64 {
        self
    }
}

impl Acc for i32 {
    fn f32(self) -> f32 {
        self as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
}

/// `t` rounded half to even, limited to `[lo, hi]` (f32 rounds exactly below 2²²; codes are far below).
#[inline(always)]
fn code_f32(t: f32, lo: f32, hi: f32) -> f32 {
    const MAGIC: f32 = 12582912.0; // 1.5 · 2²³
    clamp((clamp(t, -4194304.0, 4194304.0) + MAGIC) - MAGIC, lo, hi)
}

#[inline(always)]
fn code_f64(t: f64, lo: f64, hi: f64) -> f64 {
    const MAGIC: f64 = 6755399441055744.0; // 1.5 · 2⁵²
    let r = (t.clamp(-1e15, 1e15) + MAGIC) - MAGIC;
    let r = if r < lo { lo } else { r };
    if r > hi {
        hi
    } else {
        r
    }
}

/// `v` limited to `[lo, hi]` with two selects: one vector max and one min (`f32::max`/`min` add a NaN
/// check each), no panic on `lo > hi` (unlike `f32::clamp`); NaN passes through. Relu and Clip use it
/// fused or not, so both paths agree bit for bit.
#[inline(always)]
pub(crate) fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if v > hi {
        hi
    } else {
        v
    }
}

/// The definition of a quantized MAC op's output, for the kernels' tests.
#[cfg(test)]
pub(crate) mod definition {
    use super::Acc;
    use crate::quant::Encoding;

    /// 8- and 16-bit output encodings over [−6.4, 6.4), for kernels' tests with a (−6, 6) clamp.
    pub(crate) fn signed_outputs() -> [Encoding; 2] {
        [
            Encoding {
                bits: 8,
                scale: 0.05,
                offset: -128,
            },
            Encoding {
                bits: 16,
                scale: 12.8 / 65536.0,
                offset: -32768,
            },
        ]
    }

    /// The definition of a quantized MAC op's output from its exact sums `acc` (channel-major rows of `p`):
    /// `t = acc · (mult / s) + bias / s` in f32 for an 8-bit output and f64 for 16 bits, rounded half to
    /// even, limited to the codes the clamp and the encoding allow, times `s`.
    pub(crate) fn requantized<A: Acc>(
        acc: &[A],
        p: usize,
        cout: usize,
        mult: &[f64],
        bias: &[f64],
        e: Encoding,
        (lo, hi): (f32, f32),
    ) -> Vec<f32> {
        let s = e.scale as f64;
        let off = e.offset as f64;
        let qlo = (lo as f64 / s).round_ties_even().max(off);
        let qhi = (hi as f64 / s).round_ties_even().min(e.qmax() + off);
        acc.iter()
            .enumerate()
            .map(|(j, &a)| {
                let ch = (j / p) % cout;
                let code = if e.bits <= 8 {
                    let t = a.f32() * (mult[ch] / s) as f32 + (bias[ch] / s) as f32;
                    (t.round_ties_even() as f64).clamp(qlo, qhi)
                } else {
                    let t = a.f64() * (mult[ch] / s) + bias[ch] / s;
                    t.round_ties_even().clamp(qlo, qhi)
                };
                (code as f32) * e.scale
            })
            .collect()
    }
}
