//! Quantization: encodings (QNN's convention), precisions (`aNwM` candidates), the rule that says which
//! tensors are materialised (quantized) and a per-tensor plan both backends execute.
//!
//! Activations are unsigned asymmetric: `real = (q + offset) · scale` with `offset = −zero_point ≤ 0`
//! (QNN's `Qnn_ScaleOffset_t`). Weights are signed symmetric per output channel (or per tensor); biases are
//! int32 with scale `input scale × weight scale`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::convert::Dataflow;
use crate::ir::{FixedRange, Graph, Mac, Node, Op, Operand, TensorId};

/// Round half to even, as `f64::round_ties_even`, without a libm call on CPUs without SSE4.1: adding and
/// subtracting 1.5·2⁵² rounds in the FPU's default round-to-nearest-even mode, exactly, for |v| < 2⁵¹.
#[inline]
pub fn round_even(v: f64) -> f64 {
    const MAGIC: f64 = 6755399441055744.0; // 1.5 * 2^52
    if v.abs() < 2251799813685248.0 {
        (v + MAGIC) - MAGIC
    } else {
        v.round_ties_even()
    }
}

/// An unsigned asymmetric activation encoding.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Encoding {
    pub bits: u8,
    pub scale: f32,
    pub offset: i32,
}

impl Encoding {
    /// Min-max encoding over `[min, max]` widened to include 0 (so zero padding is exact).
    pub fn from_min_max(min: f32, max: f32, bits: u8) -> Encoding {
        let mn = (min as f64).min(0.0);
        let mut mx = (max as f64).max(0.0);
        if mx - mn < 1e-6 {
            mx = mn + 1e-6;
        }
        let n = ((1u64 << bits) - 1) as f64;
        let scale = ((mx - mn) / n) as f32;
        let offset = (mn / scale as f64).round_ties_even().clamp(-n, 0.0) as i32;
        Encoding {
            bits,
            scale,
            offset,
        }
    }

    /// Symmetric over `[-max_abs, max_abs]`: offset −2ᵇ⁻¹, `max_abs` at the largest code (at 16 bits, as
    /// weights are: see [`W16_MAX_CODE`]).
    pub fn symmetric(max_abs: f32, bits: u8) -> Encoding {
        let half = 1i32 << (bits - 1);
        let top = if bits == 16 {
            W16_MAX_CODE
        } else {
            (half - 1) as f64
        };
        Encoding {
            bits,
            scale: (max_abs.max(1e-6) as f64 / top) as f32,
            offset: -half,
        }
    }

    /// The encoding of a constant operand of an element-wise op (not a weight): min-max over its own values
    /// at the width of the op's output, as QNN's converters give it a static tensor of that width.
    pub fn for_constant(data: &[f32], bits: u8) -> Encoding {
        // ±∞ (a mask's fill) as f32's extremes, where its code saturates
        let (mn, mx) = data
            .iter()
            .map(|v| v.clamp(f32::MIN, f32::MAX))
            .fold((0f32, 0f32), |(a, b), v| (a.min(v), b.max(v)));
        Encoding::from_min_max(mn, mx, bits)
    }

    /// The encoding of input `k` of `op`, a constant, when the op's output has `out_bits`, as the op's
    /// [`Operand`] rule says: mostly [`Encoding::for_constant`], but where HTP accepts no such tensor, the
    /// nearest that it takes (symmetric at 16 bits); None for an int32 bias (exact here for all practical
    /// purposes: kept as it is), for booleans (kept exact) and for weights, which [`WeightQuant`] quantizes.
    pub fn for_operand(op: &Op, k: usize, data: &[f32], out_bits: u8) -> Option<Encoding> {
        match op.def().operand(k, out_bits) {
            Operand::MinMax => Some(Encoding::for_constant(data, out_bits)),
            Operand::Symmetric => {
                let m = data.iter().fold(0f32, |a, &v| a.max(v.abs()));
                Some(Encoding::symmetric(m, out_bits))
            }
            Operand::Int32Bias | Operand::Weights | Operand::Exact => None,
        }
    }

    /// The fixed encoding of an op's output range.
    pub fn fixed(range: FixedRange, bits: u8) -> Encoding {
        match range {
            FixedRange::Unit => Encoding::unit_range(bits),
            FixedRange::SignedUnit => Encoding::signed_unit_range(bits),
        }
    }

    /// The fixed `[-1, 1)` encoding of Tanh outputs (HTP requires it at 16 bits: offset −32768).
    pub fn signed_unit_range(bits: u8) -> Encoding {
        Encoding {
            bits,
            scale: (2.0 / (1u64 << bits) as f64) as f32,
            offset: -(1i32 << (bits - 1)),
        }
    }

    /// The fixed `[0, 1)` encoding of Sigmoid, HardSigmoid and Softmax outputs (QNN requires it for Sigmoid;
    /// HTP computes HardSigmoid wrongly at 16 bits without it).
    pub fn unit_range(bits: u8) -> Encoding {
        Encoding {
            bits,
            scale: (1.0 / (1u64 << bits) as f64) as f32,
            offset: 0,
        }
    }

    /// The same range at another width. Widening is exact: an 8-bit code q lies on the 16-bit grid of the
    /// same range at 257·q (HTP's Convert agrees, qnn-sys/tests/width_changes.rs).
    pub fn at_bits(self, bits: u8) -> Encoding {
        if self.bits == bits {
            self
        } else {
            Encoding::from_min_max(self.min() as f32, self.max() as f32, bits)
        }
    }

    pub fn qmax(&self) -> f64 {
        ((1u64 << self.bits) - 1) as f64
    }

    /// The integer code of `x` (round half to even, saturating).
    #[inline]
    pub fn quantize(&self, x: f32) -> f64 {
        // in f32 like onnxruntime's QuantizeLinear; the clamp keeps |x / scale| where f32 rounding is exact
        let v = (x / self.scale)
            .clamp(-4194304.0, 4194304.0)
            .round_ties_even();
        (v as f64 - self.offset as f64).clamp(0.0, self.qmax())
    }

    /// Quantize then dequantize (within f32's range: the lowest code of a range down to f32's minimum, a
    /// mask's fill, would round just past it in f64, to −∞).
    #[inline]
    pub fn fake(&self, x: f32) -> f32 {
        let v = (self.quantize(x) + self.offset as f64) * self.scale as f64;
        v.clamp(f32::MIN as f64, f32::MAX as f64) as f32
    }

    /// Quantize-dequantize every element in place. Same rounding as [`Encoding::fake`] but in f32 like
    /// onnxruntime's QuantizeLinear (`x / scale`, round half to even), written so the loop vectorises.
    pub fn fake_slice(&self, data: &mut [f32]) {
        let f = self.fake_fn();
        for v in data.iter_mut() {
            *v = f(*v);
        }
    }

    /// [`Encoding::fake_slice`] for one value, as a closure with the encoding's constants hoisted, for loops
    /// that fuse it with other work.
    #[inline]
    pub fn fake_fn(&self) -> impl Fn(f32) -> f32 + Copy {
        self.quant_fn(self.scale)
    }

    /// Quantizes with this encoding and returns the integer `q + offset` times `out_scale`: the
    /// dequantized value for `out_scale = scale`, the integer code itself for 1.
    #[inline]
    pub fn quant_fn(&self, out_scale: f32) -> impl Fn(f32) -> f32 + Copy {
        const MAGIC: f32 = 12582912.0; // 1.5 * 2^23: (v + MAGIC) - MAGIC rounds half to even for |v| < 2^22
        let (scale, off, qmax) = (self.scale, self.offset as f32, self.qmax() as f32);
        move |v: f32| {
            let r = ((v / scale).clamp(-4194304.0, 4194304.0) + MAGIC) - MAGIC;
            ((r - off).clamp(0.0, qmax) + off) * out_scale
        }
    }

    /// Offset −2ᵇ⁻¹: zero at the middle code ([`Encoding::symmetric`]).
    pub fn is_symmetric(&self) -> bool {
        self.offset == -(1i32 << (self.bits - 1))
    }

    pub fn min(&self) -> f64 {
        self.offset as f64 * self.scale as f64
    }
    pub fn max(&self) -> f64 {
        (self.qmax() + self.offset as f64) * self.scale as f64
    }
}

/// The largest positive 16-bit weight code HTP computes with: 0x7F7F. HTP multiplies 16-bit weights as two
/// signed bytes, and a code above 127·256 + 127 saturates there (a channel whose largest weight is positive
/// came out of a single a16w16 Conv up to 37 LSB off). Scaling the largest |weight| to this code instead
/// of 32767 costs 0.4% of resolution and makes every code exact on the device; the exported encodings
/// carry the scale, so QNN's converter produces the same codes.
pub const W16_MAX_CODE: f64 = 32639.0;

/// Signed symmetric weights: integer codes and one scale per channel (or one for the tensor).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightQuant {
    pub bits: u8,
    /// Axis of the per-channel scales (the output-channel axis), or None for per-tensor.
    pub axis: Option<usize>,
    pub scales: Vec<f32>,
    /// Integer codes, same layout as the float weights.
    pub codes: Vec<f32>,
}

impl WeightQuant {
    /// Quantizes `w` (shape `shape`) with per-channel scales along `axis` (None: per tensor). The largest
    /// |weight| of a channel maps to the largest code, except at 16 bits: see [`W16_MAX_CODE`].
    pub fn new(w: &[f32], shape: &[usize], axis: Option<usize>, bits: u8) -> WeightQuant {
        WeightQuant::with_floor(w, shape, axis, bits, &[])
    }

    /// As [`WeightQuant::new`], with each channel's scale at least `floor[c]` (one value when per tensor;
    /// empty: no floor).
    pub fn with_floor(
        w: &[f32],
        shape: &[usize],
        axis: Option<usize>,
        bits: u8,
        floor: &[f32],
    ) -> WeightQuant {
        let qmax = ((1i64 << (bits - 1)) - 1) as f64;
        let top = if bits == 16 { W16_MAX_CODE } else { qmax };
        let (channels, inner) = match axis {
            Some(a) => (shape[a], shape[a + 1..].iter().product::<usize>()),
            None => (1, w.len()),
        };
        let chan_of = |i: usize| {
            if axis.is_some() {
                (i / inner) % channels
            } else {
                0
            }
        };
        let mut amax = vec![0f32; channels];
        for (i, &v) in w.iter().enumerate() {
            let c = chan_of(i);
            amax[c] = amax[c].max(v.abs());
        }
        let scales: Vec<f32> = amax
            .iter()
            .enumerate()
            .map(|(c, &a)| {
                let s = (if a > 0.0 { a as f64 } else { 1.0 } / top) as f32;
                floor.get(c).map_or(s, |&f| s.max(f))
            })
            .collect();
        let codes = w
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                (v as f64 / scales[chan_of(i)] as f64)
                    .round_ties_even()
                    .clamp(-qmax, qmax) as f32
            })
            .collect();
        WeightQuant {
            bits,
            axis,
            scales,
            codes,
        }
    }

    /// Scale of channel `c` (the single scale when per tensor).
    pub fn scale(&self, c: usize) -> f32 {
        if self.scales.len() == 1 {
            self.scales[0]
        } else {
            self.scales[c]
        }
    }
}

/// The largest |bias code| amp lets an int32 bias take: half the int32 range, leaving the other half to
/// the sum of products the bias is added to in the accumulator.
pub const BIAS_MAX_CODE: f64 = 1073741824.0;

/// The smallest weight scale per channel (one value for a per-tensor weight) at which every bias code
/// `round(bias_c / (in_scale × w_scale_c))` stays within [`BIAS_MAX_CODE`]. At 16 × 16 bits the bias scale
/// is tiny and an ordinary bias overflows int32 (HTP adds the bias into its int32 accumulator at that
/// scale and ignores any other bias encoding); a weight scale raised just enough costs the channel a
/// little weight resolution instead of its whole bias. 0 where no raise is needed.
pub fn bias_safe_floor(bias: &[f32], in_scale: f32, per_channel: bool) -> Vec<f32> {
    let floor = |b: f32| {
        // rounded up in f32 so the code computed from the stored scale is within the bound
        let f = (b.abs() as f64 / (in_scale as f64 * BIAS_MAX_CODE)) as f32;
        if f > 0.0 {
            f * (1.0 + f32::EPSILON)
        } else {
            0.0
        }
    };
    if per_channel {
        bias.iter().map(|&b| floor(b)).collect()
    } else {
        vec![bias.iter().fold(0f32, |m, &b| m.max(floor(b)))]
    }
}

/// Weight channels whose scale the bias rule raised: how many, of how many, and the largest factor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BiasRaise {
    pub channels: usize,
    pub of: usize,
    pub max_factor: f32,
}

impl BiasRaise {
    pub fn add(&mut self, o: BiasRaise) {
        self.channels += o.channels;
        self.of += o.of;
        self.max_factor = self.max_factor.max(o.max_factor);
    }
}

/// int32 bias codes for `bias` with per-channel scales `in_scale × w_scale[c]` (computed in f64, stored f32).
pub fn quantize_bias(bias: &[f32], in_scale: f32, w: &WeightQuant) -> (Vec<f32>, Vec<f32>) {
    let scales: Vec<f32> = (0..bias.len())
        .map(|c| (in_scale as f64 * w.scale(c) as f64) as f32)
        .collect();
    let codes = bias
        .iter()
        .zip(&scales)
        .map(|(&b, &s)| {
            (b as f64 / s as f64)
                .round_ties_even()
                .clamp(-2147483648.0, 2147483647.0) as f32
        })
        .collect();
    (codes, scales)
}

/// A precision candidate: activation and weight bitwidths (AIMET's "W8A16" is `a16w8` here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Precision {
    pub act: u8,
    pub weight: u8,
}

impl Precision {
    pub const A8W8: Precision = Precision { act: 8, weight: 8 };
    pub const A16W8: Precision = Precision { act: 16, weight: 8 };
    pub const A16W16: Precision = Precision {
        act: 16,
        weight: 16,
    };
    /// Every candidate amp knows, narrowest first.
    pub const ALL: [Precision; 3] = [Precision::A8W8, Precision::A16W8, Precision::A16W16];
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a{}w{}", self.act, self.weight)
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("precision {s:?}: expected aNwM with N, M in {{8, 16}}, e.g. a16w8");
        let rest = s.trim().to_ascii_lowercase();
        let rest = rest.strip_prefix('a').ok_or_else(bad)?;
        let (a, w) = rest.split_once('w').ok_or_else(bad)?;
        let a: u8 = a.parse().map_err(|_| bad())?;
        let w: u8 = w.parse().map_err(|_| bad())?;
        if !matches!(a, 8 | 16) || !matches!(w, 8 | 16) {
            return Err(bad());
        }
        Ok(Precision { act: a, weight: w })
    }
}

/// How a tensor is treated in quantized execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Quantized with its own encoding (graph inputs and most op outputs).
    Own,
    /// Carries the encoding of the given tensor (outputs of pass-through ops).
    Alias(TensorId),
    /// Not materialised: a Conv/Gemm/MatMul output folded into its only consumer, a Relu/Clip.
    Fused,
    /// Constant data (weights, biases, other constants).
    Const,
    /// Integers a model input holds (token ids), read only as Gather indices, or booleans an op computes
    /// ([`crate::ir::OpDef::logical`]), read only as conditions: exact, never quantized.
    Int,
}

/// Which tensors QNN materialises, and how. Deterministic: depends only on the graph.
pub fn roles(g: &Graph) -> Vec<Role> {
    let consumers = g.consumers();
    let mut roles: Vec<Role> = g
        .tensors
        .iter()
        .map(|t| if t.is_const() { Role::Const } else { Role::Own })
        .collect();
    for &t in &g.integer {
        roles[t] = Role::Int;
    }
    for n in &g.nodes {
        let t = n.output;
        let def = n.op.def();
        if n.writes_booleans(|x| roles[x] == Role::Int) {
            // booleans, and booleans moved (a mask unsqueezed)
            roles[t] = Role::Int;
        } else if def.passthrough() {
            let src = n.inputs[0];
            roles[t] = match roles[src] {
                Role::Alias(s) => Role::Alias(s),
                _ => Role::Alias(src),
            };
        } else if def.mac() != Mac::None
            && !g.outputs.contains(&t)
            && consumers[t].len() == 1
            && g.nodes[consumers[t][0]]
                .op
                .def()
                .activation_clamp()
                .is_some()
        {
            roles[t] = Role::Fused;
        }
    }
    roles
}

/// min/max of each activation tensor over the calibration data, keyed by tensor name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub ranges: BTreeMap<String, [f32; 2]>,
}

/// Per-tensor precision choices: activation bits per materialised tensor, weight bits per weighted node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BitPlan {
    /// Indexed by tensor id; only read for tensors whose role is `Own`.
    pub act_bits: Vec<u8>,
    /// Indexed by node; only read for nodes with weights.
    pub weight_bits: Vec<u8>,
    /// Weights per output channel (true) or per tensor.
    pub per_channel: bool,
}

impl BitPlan {
    pub fn uniform(g: &Graph, p: Precision) -> BitPlan {
        BitPlan {
            act_bits: vec![p.act; g.tensors.len()],
            weight_bits: vec![p.weight; g.nodes.len()],
            per_channel: true,
        }
    }
}

/// Errors turning statistics and bit choices into encodings.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error(
        "tensor \"{0}\" has no calibration range (were the statistics made for another model?)"
    )]
    MissingRange(String),
    #[error("tensor \"{0}\" has a non-finite calibration range [{1}, {2}]")]
    BadRange(String, f32, f32),
}

/// Everything quantized execution needs: an encoding per materialised tensor and quantized weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuantPlan {
    pub roles: Vec<Role>,
    /// Encoding per tensor (None for Fused and Const; Alias tensors hold their source's encoding).
    pub encodings: Vec<Option<Encoding>>,
    /// Quantized weights per node (None for nodes without weights).
    pub weights: Vec<Option<WeightQuant>>,
    /// Per node: the width it computes at, the widest of its activation inputs and its output
    /// ([`crate::convert::Dataflow`]).
    pub compute: Vec<u8>,
    /// Weight channels raised so that their int32 bias fits ([`bias_safe_floor`]).
    #[serde(default)]
    pub bias_raise: BiasRaise,
}

/// Output-channel axis of a weighted node's weight tensor.
pub fn weight_axis(op: &Op) -> usize {
    match op.def().mac() {
        Mac::Weights { out_axis } => out_axis,
        _ => 0,
    }
}

impl QuantPlan {
    pub fn new(g: &Graph, stats: &Stats, bits: &BitPlan) -> Result<QuantPlan, QuantError> {
        let roles = roles(g);
        let producers = g.producers();
        let mut encodings: Vec<Option<Encoding>> = vec![None; g.tensors.len()];
        for t in 0..g.tensors.len() {
            if roles[t] != Role::Own {
                continue;
            }
            let b = bits.act_bits[t];
            let fixed = producers[t].and_then(|p| g.nodes[p].op.def().fixed_range());
            // a lookup's output: the table's own range, as its operand is stored at the op's width
            let table = producers[t].and_then(|p| {
                let n = &g.nodes[p];
                g.const_data(*n.inputs.get(n.op.def().const_range()?)?)
            });
            let enc = if let Some(range) = fixed {
                Encoding::fixed(range, b)
            } else if let Some(table) = table {
                Encoding::for_constant(table, b)
            } else {
                let name = &g.tensors[t].name;
                let [mn, mx] = *stats
                    .ranges
                    .get(name)
                    .ok_or_else(|| QuantError::MissingRange(name.clone()))?;
                if !mn.is_finite() || !mx.is_finite() {
                    return Err(QuantError::BadRange(name.clone(), mn, mx));
                }
                Encoding::from_min_max(mn, mx, b)
            };
            encodings[t] = Some(enc);
        }
        // HTP takes the second operand of a 16-bit product of two activations only symmetric
        for n in &g.nodes {
            if n.op.def().mac() != Mac::Activations {
                continue;
            }
            let src = match roles[n.inputs[1]] {
                Role::Alias(s) => s,
                _ => n.inputs[1],
            };
            if let Some(e) = encodings[src].filter(|e| e.bits == 16) {
                encodings[src] = Some(Encoding::symmetric(
                    e.min().abs().max(e.max().abs()) as f32,
                    16,
                ));
            }
        }
        for t in 0..g.tensors.len() {
            if let Role::Alias(src) = roles[t] {
                encodings[t] = encodings[src];
            }
        }
        let mut plan = QuantPlan::from_parts(g, roles, encodings, vec![None; g.nodes.len()]);
        for (i, n) in g.nodes.iter().enumerate() {
            if !n.op.has_weights() {
                continue;
            }
            let w = &g.tensors[n.inputs[1]];
            let data = w.data.as_deref().map(|v| v.as_slice()).unwrap_or(&[]);
            let axis = bits.per_channel.then(|| weight_axis(&n.op));
            let plain = WeightQuant::new(data, &w.shape, axis, bits.weight_bits[i]);
            // the bias is added at the scale of the input as the node reads it (at its compute width)
            let bias = n.inputs.get(2).and_then(|&b| g.const_data(b));
            let in_enc = plan.encodings[n.inputs[0]].map(|e| e.at_bits(plan.compute[i]));
            let (Some(bias), Some(in_enc)) = (bias, in_enc) else {
                plan.weights[i] = Some(plain);
                continue;
            };
            let floor = bias_safe_floor(bias, in_enc.scale, axis.is_some());
            let mut raise = BiasRaise {
                of: plain.scales.len(),
                ..BiasRaise::default()
            };
            for (&s, &f) in plain.scales.iter().zip(&floor) {
                if f > s {
                    raise.channels += 1;
                    raise.max_factor = raise.max_factor.max(f / s);
                }
            }
            plan.weights[i] = Some(if raise.channels > 0 {
                WeightQuant::with_floor(data, &w.shape, axis, bits.weight_bits[i], &floor)
            } else {
                plain
            });
            plan.bias_raise.add(raise);
        }
        Ok(plan)
    }

    /// The encoding constant input `k` of node `n` is stored in when the node computes at `bits`, as
    /// [`Encoding::for_operand`] says; None where it is kept as it is (an int32 bias, booleans, weights). A constant
    /// added to an activation is stored over no more than the range that can reach the sum, with the sum's
    /// span to spare: values below the sum's minimum less the activation's maximum saturate the sum anyway. It
    /// matters only for an attention mask's fill (`finfo(float32).min`, calibrated to saturate below the
    /// scores), which would otherwise make the constant's scale 10³⁶ times the sum's: HTP's Add of the two is
    /// then off by hundreds of LSB where the reference saturates.
    pub fn operand(&self, g: &Graph, n: &Node, k: usize, bits: u8) -> Option<Encoding> {
        let data = g.const_data(n.inputs[k])?;
        let other = n.inputs.get(1 - k.min(1)).filter(|_| n.inputs.len() == 2);
        let sum = match (&n.op, other) {
            (Op::Add(_), Some(&x)) => self.encodings[x].zip(self.encodings[n.output]),
            _ => None,
        };
        match (sum, n.op.def().operand(k, bits)) {
            (Some((x, y)), Operand::MinMax) => {
                let lo = y.min() - x.max() - (y.max() - y.min());
                let hi = y.max() - x.min() + (y.max() - y.min());
                let d: Vec<f32> = (data.iter())
                    .map(|&v| (v as f64).clamp(lo, hi) as f32)
                    .collect();
                Some(Encoding::for_constant(&d, bits))
            }
            _ => Encoding::for_operand(&n.op, k, data, bits),
        }
    }

    /// A plan from its encodings and weights, each node computing at the widest width of its activation
    /// inputs and its output.
    pub fn from_parts(
        g: &Graph,
        roles: Vec<Role>,
        encodings: Vec<Option<Encoding>>,
        weights: Vec<Option<WeightQuant>>,
    ) -> QuantPlan {
        let bits: Vec<u8> = encodings.iter().map(|e| e.map_or(8, |e| e.bits)).collect();
        let df = Dataflow::new(g, &roles);
        let compute = (0..g.nodes.len())
            .map(|i| df.node_width(i, &bits))
            .collect();
        QuantPlan {
            roles,
            encodings,
            weights,
            compute,
            bias_raise: BiasRaise::default(),
        }
    }

    /// Per node: whether its one reader, a Relu/Clip, clamps the node's exact result rather than the result
    /// rounded to the node's own encoding (HTP fuses an Add/Sub/Mul/Div/Min/Max with a lone Relu/Clip; the
    /// node's encoding is still materialised). Only where nothing stands between them: a Convert (a width
    /// change) ends the fusion.
    pub fn clamp_reads_exact(&self, g: &Graph) -> Vec<bool> {
        let consumers = g.consumers();
        g.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let [reader] = consumers[n.output][..] else {
                    return false;
                };
                let same_width = self.encodings[n.output]
                    .is_some_and(|e| self.compute[i] == e.bits && self.compute[reader] == e.bits);
                n.op.def().act_reads_exact()
                    && !g.outputs.contains(&n.output)
                    && g.nodes[reader].op.def().activation_clamp().is_some()
                    && same_width
            })
            .collect()
    }

    /// The encoding node `i` writes its result in: its output's (for a MAC op folded into a Relu/Clip, the
    /// activation's) over the same range at the width the node computes at. None in FP32 terms (no
    /// encoding).
    pub fn compute_encoding(&self, g: &Graph, i: usize) -> Option<Encoding> {
        let out = g.nodes[i].output;
        let e = match self.roles[out] {
            Role::Fused => {
                let reader = g.consumers()[out].first().copied()?;
                self.encodings[g.nodes[reader].output]?
            }
            _ => self.encodings[out]?,
        };
        Some(e.at_bits(self.compute[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_encoding_follows_qnn_sign_convention() {
        // [-1, 3] at 8 bits: scale 4/255, zero point 64 → offset −64
        let e = Encoding::from_min_max(-1.0, 3.0, 8);
        assert_eq!(e.offset, -64);
        assert!((e.scale - 4.0 / 255.0).abs() < 1e-9);
        assert_eq!(e.quantize(0.0), 64.0);
        assert_eq!(e.fake(0.0), 0.0);
        // saturates at both ends
        assert_eq!(e.quantize(100.0), 255.0);
        assert_eq!(e.quantize(-100.0), 0.0);
    }

    #[test]
    fn sixteen_bit_weights_stop_at_htps_largest_code() {
        let w = [0.5f32, -1.0, 0.25, 1.0];
        let q16 = WeightQuant::new(&w, &[4], None, 16);
        assert_eq!(
            q16.codes.iter().cloned().fold(0f32, f32::max),
            W16_MAX_CODE as f32
        );
        assert_eq!(q16.codes[1], -(W16_MAX_CODE as f32));
        let q8 = WeightQuant::new(&w, &[4], None, 8);
        assert_eq!(q8.codes[3], 127.0);
    }

    #[test]
    fn constant_operands_follow_what_htp_accepts() {
        let d = [0.5f32, 2.0, -1.0];
        // most constants: min-max over their own values (with 0) at the output's width
        assert_eq!(
            Encoding::for_operand(&Op::Add(crate::ir::Add), 1, &d, 8),
            Some(Encoding::from_min_max(-1.0, 2.0, 8))
        );
        // 16-bit MatMul second operand and ScaleShift scale: symmetric, offset −32768
        let e = Encoding::for_operand(&Op::MatMul(crate::ir::MatMul), 1, &d, 16).unwrap();
        assert_eq!(e.offset, -32768);
        assert_eq!((2.0 / e.scale as f64).round(), W16_MAX_CODE);
        assert_eq!(
            Encoding::for_operand(&Op::ScaleShift(crate::ir::ScaleShift), 1, &d, 16)
                .unwrap()
                .offset,
            -32768
        );
        // a 16-bit ScaleShift shift is an int32 bias, kept as it is
        assert_eq!(
            Encoding::for_operand(&Op::ScaleShift(crate::ir::ScaleShift), 2, &d, 16),
            None
        );
    }

    /// A constant added to an activation is stored over the range that can reach the sum: a mask's fill of
    /// f32's minimum (the sum calibrated to end below the scores) is bounded there, and saturates the sum as
    /// before; a constant within that range keeps its own encoding.
    #[test]
    fn a_constant_added_is_stored_over_what_reaches_the_sum() {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 4], None);
        let mask = g.add_tensor("mask", vec![1, 4], Some(vec![0.0, 0.0, f32::MIN, f32::MIN]));
        let bias = g.add_tensor("bias", vec![1, 4], Some(vec![0.5, -1.0, 2.0, 0.0]));
        let (s, b) = (
            g.add_tensor("s", vec![], None),
            g.add_tensor("b", vec![], None),
        );
        for (name, c, y) in [("masked", mask, s), ("biased", bias, b)] {
            g.nodes.push(Node {
                name: name.into(),
                op: Op::Add(crate::ir::Add),
                inputs: vec![x, c],
                output: y,
            });
        }
        g.inputs = vec![x];
        g.outputs = vec![s, b];
        g.infer_shapes().unwrap();
        let mut stats = Stats::default();
        for (t, r) in [("x", [-4.0, 4.0]), ("s", [-40.0, 4.0]), ("b", [-5.0, 6.0])] {
            stats.ranges.insert(t.into(), r);
        }
        for p in Precision::ALL {
            let plan = QuantPlan::new(&g, &stats, &BitPlan::uniform(&g, p)).unwrap();
            let bits = plan.compute[0];
            let e = plan.operand(&g, &g.nodes[0], 1, bits).unwrap();
            // below -40 - 4, the sum's minimum less x's maximum, with the sum's span (44) to spare
            assert!((e.min() + 88.0).abs() < 0.5, "{p}: {}", e.min());
            let sum = plan.encodings[s].unwrap();
            assert_eq!(sum.quantize(e.fake(f32::MIN) + 4.0), 0.0);
            assert_eq!(e.fake(0.0), 0.0);
            let d = g.const_data(bias).unwrap();
            assert_eq!(
                plan.operand(&g, &g.nodes[1], 1, bits),
                Encoding::for_operand(&g.nodes[1].op, 1, d, bits)
            );
        }
    }

    #[test]
    fn fast_rounding_is_round_half_to_even() {
        for v in [
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            2.4999999,
            1e15 + 0.5,
            -3.7,
            4503599627370497.0,
            f64::MAX,
        ] {
            assert_eq!(round_even(v), v.round_ties_even(), "{v}");
        }
    }

    #[test]
    fn slice_quantization_matches_scalar() {
        let e = Encoding::from_min_max(-1.3, 2.9, 8);
        let mut xs: Vec<f32> = (-400..400).map(|i| i as f32 * 0.01).collect();
        xs.extend([f32::MAX, f32::MIN, 1e9, -1e9, 0.5 * e.scale, 1.5 * e.scale]);
        let want: Vec<f32> = xs.iter().map(|&x| e.fake(x)).collect();
        e.fake_slice(&mut xs);
        assert_eq!(xs, want);
    }

    #[test]
    fn widening_puts_every_code_on_the_wider_grid() {
        for (mn, mx) in [(-1.3f32, 2.9f32), (0.0, 6.0), (-4.0, -0.5), (-0.01, 300.0)] {
            let e8 = Encoding::from_min_max(mn, mx, 8);
            let e16 = e8.at_bits(16);
            assert_eq!(e16.offset, 257 * e8.offset, "[{mn}, {mx}]");
            for q in 0..=255u32 {
                let v = e8.fake(((q as f64 + e8.offset as f64) * e8.scale as f64) as f32);
                assert_eq!(e16.quantize(v), 257.0 * q as f64, "[{mn}, {mx}] code {q}");
            }
        }
    }

    #[test]
    fn range_is_widened_to_include_zero() {
        let e = Encoding::from_min_max(2.0, 4.0, 8);
        assert_eq!(e.offset, 0);
        assert!((e.max() - 4.0).abs() < 1e-6);
    }

    #[test]
    fn symmetric_weights_per_channel() {
        // two output channels of two weights each
        let w = WeightQuant::new(&[0.5, -1.0, 0.1, 0.2], &[2, 2], Some(0), 8);
        assert_eq!(
            w.scales,
            vec![(1.0f64 / 127.0) as f32, (0.2f64 / 127.0) as f32]
        );
        assert_eq!(w.codes, vec![64.0, -127.0, 64.0, 127.0]);
        let t = WeightQuant::new(&[0.5, -1.0, 0.1, 0.2], &[2, 2], None, 8);
        assert_eq!(t.scales.len(), 1);
        assert_eq!(t.codes, vec![64.0, -127.0, 13.0, 25.0]);
    }

    #[test]
    fn a_bias_beyond_int32_raises_the_weight_scale_just_enough() {
        // in_scale 1e-4: a bias of 1 needs w_scale ≥ 1 / (1e-4 · 2³⁰) ≈ 9.3e-6
        let floor = bias_safe_floor(&[1.0, -3.0, 0.0], 1e-4, true);
        assert!(floor[0] > 9.31e-6 && floor[0] < 9.32e-6, "{floor:?}");
        assert!((floor[1] / floor[0] - 3.0).abs() < 1e-5);
        assert_eq!(floor[2], 0.0);
        assert_eq!(bias_safe_floor(&[1.0, -3.0], 1e-4, false), vec![floor[1]]);
        let w = [1e-3f32, -2e-3, 5e-4, 1e-4];
        let q = WeightQuant::with_floor(&w, &[2, 2], Some(0), 16, &floor[..2]);
        // channel 0: 2e-3 / 32639 = 6.1e-8 < floor, raised; the codes follow the scale
        assert_eq!(q.scales[0], floor[0]);
        assert_eq!(q.codes[1], (-2e-3f64 / floor[0] as f64).round() as f32);
        let (codes, _) = quantize_bias(&[1.0, -3.0], 1e-4, &q);
        assert!(
            codes.iter().all(|c| c.abs() <= BIAS_MAX_CODE as f32),
            "{codes:?}"
        );
        // a floor below the plain scale changes nothing
        assert_eq!(
            WeightQuant::with_floor(&w, &[2, 2], Some(0), 8, &[1e-9, 1e-9]),
            WeightQuant::new(&w, &[2, 2], Some(0), 8)
        );
    }

    #[test]
    fn bias_scale_is_input_times_weight_scale() {
        let w = WeightQuant::new(&[1.0, 2.0], &[2, 1], Some(0), 8);
        let (codes, scales) = quantize_bias(&[0.5, -0.5], 0.1, &w);
        assert!((scales[0] as f64 - 0.1 / 127.0).abs() < 1e-9);
        assert_eq!(codes[0], (0.5f64 / scales[0] as f64).round() as f32);
        assert!(codes[1] < 0.0);
    }

    #[test]
    fn precision_parses_and_prints() {
        assert_eq!("a16w8".parse::<Precision>().unwrap(), Precision::A16W8);
        assert_eq!(Precision::A8W8.to_string(), "a8w8");
        assert!("a4w8".parse::<Precision>().is_err());
        assert!("w8a8".parse::<Precision>().is_err());
    }
}
