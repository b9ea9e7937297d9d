//! What HTP computes where a tensor changes width (8 ↔ 16 bits), against the exact result, on Qualcomm's
//! real libQnnHtp.so (x86_64 emulation, arch v73). One op per graph, its input(s) and output given types of
//! their own. Each case asserts what was measured, so a library that behaves otherwise fails here; the
//! numbers are in docs/design.md ("Width changes").

use std::path::PathBuf;

use qnn_sys::*;

fn htp() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../qnn-runtime/lib");
    locate_htp(Some(&dir)).expect("libQnnHtp.so: run scripts/fetch-qnn-runtime.sh first")
}

/// An unsigned activation type: bits, and the range its encoding covers.
#[derive(Clone, Copy)]
struct Act {
    bits: u8,
    min: f64,
    max: f64,
}

impl Act {
    fn scale(&self) -> f64 {
        (self.max - self.min) / ((1u64 << self.bits) - 1) as f64
    }
    fn offset(&self) -> i32 {
        (self.min / self.scale()).round() as i32
    }
    fn dtype(&self) -> u32 {
        if self.bits == 16 {
            DATATYPE_UFIXED_POINT_16
        } else {
            DATATYPE_UFIXED_POINT_8
        }
    }
    fn quant(&self) -> Quant {
        Quant::ScaleOffset {
            scale: self.scale() as f32,
            offset: self.offset(),
        }
    }
    fn real(&self, q: u32) -> f64 {
        (q as f64 + self.offset() as f64) * self.scale() as f32 as f64
    }
    fn code(&self, v: f64) -> u32 {
        ((v / self.scale() as f32 as f64).round() - self.offset() as f64)
            .clamp(0.0, ((1u64 << self.bits) - 1) as f64) as u32
    }
    fn bytes(&self, codes: &[u32]) -> Vec<u8> {
        if self.bits == 16 {
            codes
                .iter()
                .flat_map(|&c| (c as u16).to_le_bytes())
                .collect()
        } else {
            codes.iter().map(|&c| c as u8).collect()
        }
    }
    fn codes(&self, b: &[u8]) -> Vec<u32> {
        if self.bits == 16 {
            b.chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
                .collect()
        } else {
            b.iter().map(|&c| c as u32).collect()
        }
    }
}

const fn act(bits: u8, min: f64, max: f64) -> Act {
    Act { bits, min, max }
}
const A8: Act = act(8, -2.0, 3.0);
const A16: Act = act(16, -2.0, 3.0);
const OUT8: Act = act(8, -6.0, 7.0);
const OUT16: Act = act(16, -6.0, 7.0);

/// Deterministic codes.
fn codes(n: usize, bits: u8, seed: u64) -> Vec<u32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 20) as u32 % (1u32 << bits)
        })
        .collect()
}

/// What one graph did: refused (and where), or the largest difference from the exact result in LSB of the
/// output.
#[derive(Debug, PartialEq)]
enum Seen {
    Refused(&'static str),
    Within(u32),
}

/// An empty graph on HTP v73.
fn graph() -> Graph {
    let lib = Library::load(&htp()).unwrap();
    let backend = Backend::new(lib).unwrap();
    let device = Device::htp(backend.clone(), 73).unwrap();
    Graph::new(Context::new(backend, Some(device)).unwrap(), "probe").unwrap()
}

/// Adds one node writing `y`, finalizes `g` and runs it on `inputs`: the largest difference of `y` (of type
/// `out`) from `exact`, or the step that refused the graph.
fn run(
    g: &Graph,
    (op, params, ins): (&str, &[ParamSpec], &[TensorRef]),
    inputs: &[(TensorRef, &[u8])],
    (y, out): (TensorRef, Act),
    exact: &[f64],
) -> Seen {
    if g.node("op", op, params, ins, &[y]).is_err() {
        return Seen::Refused("validation");
    }
    if g.finalize(None).is_err() {
        return Seen::Refused("finalize");
    }
    let mut ybuf = vec![0u8; y.bytes()];
    g.execute(inputs, &mut [(y, &mut ybuf)], None).unwrap();
    Seen::Within(max_lsb(out, &out.codes(&ybuf), exact))
}

const N: usize = 64; // elements per input: [1, 4, 4, 4]
const DIMS: [u32; 4] = [1, 4, 4, 4];

fn max_lsb(out: Act, got: &[u32], exact: &[f64]) -> u32 {
    got.iter()
        .zip(exact)
        .map(|(&g, &e)| (g as i64 - out.code(e) as i64).unsigned_abs() as u32)
        .max()
        .unwrap()
}

/// `op` on activation inputs of types `ins` (random codes) writing `out`; `exact` maps the inputs' real
/// values to the exact results.
fn elementwise(op: &str, ins: &[Act], out: Act, exact: impl Fn(&[f64]) -> f64) -> Seen {
    let g = graph();
    let names = ["a", "b"];
    let mut refs = Vec::new();
    let mut data = Vec::new();
    for (k, a) in ins.iter().enumerate() {
        let t = g
            .tensor(&TensorSpec::input(names[k], a.dtype(), &DIMS, a.quant()))
            .unwrap();
        refs.push(t);
        data.push(codes(N, a.bits, 7 + k as u64));
    }
    let y = g
        .tensor(&TensorSpec::output("y", out.dtype(), &DIMS, out.quant()))
        .unwrap();
    let bytes: Vec<Vec<u8>> = ins.iter().zip(&data).map(|(a, c)| a.bytes(c)).collect();
    let inputs: Vec<(TensorRef, &[u8])> =
        refs.iter().zip(&bytes).map(|(r, b)| (*r, &b[..])).collect();
    let exact: Vec<f64> = (0..N)
        .map(|i| {
            let vals: Vec<f64> = ins.iter().zip(&data).map(|(a, c)| a.real(c[i])).collect();
            exact(&vals)
        })
        .collect();
    run(&g, (op, &[], &refs), &inputs, (y, out), &exact)
}

/// A 1×1 Conv2d (4 → 4 channels, s8 weights, s32 bias at input × weight scale) from `inp` to `out`.
fn conv(inp: Act, out: Act) -> Seen {
    let g = graph();
    let w: Vec<i8> = (0..16).map(|i| ((i * 37) % 127) as i8 - 60).collect();
    let s_w = 0.01f32;
    let x = g
        .tensor(&TensorSpec::input("x", inp.dtype(), &DIMS, inp.quant()))
        .unwrap();
    let wb: Vec<u8> = w.iter().map(|&v| v as u8).collect();
    let wt = g
        .tensor(&TensorSpec::constant(
            "w",
            DATATYPE_SFIXED_POINT_8,
            &[1, 1, 4, 4],
            Quant::scale_offset(s_w, 0),
            &wb,
        ))
        .unwrap();
    let bias = [0u8; 16];
    let bt = g
        .tensor(&TensorSpec::constant(
            "b",
            DATATYPE_SFIXED_POINT_32,
            &[4],
            Quant::scale_offset(inp.scale() as f32 * s_w, 0),
            &bias,
        ))
        .unwrap();
    let y = g
        .tensor(&TensorSpec::output("y", out.dtype(), &DIMS, out.quant()))
        .unwrap();
    let params = [
        ParamSpec::U32Tensor("stride", vec![2], vec![1, 1]),
        ParamSpec::U32Tensor("pad_amount", vec![2, 2], vec![0, 0, 0, 0]),
    ];
    let xc = codes(N, inp.bits, 3);
    let exact: Vec<f64> = (0..16)
        .flat_map(|p| {
            let (xc, w) = (&xc, &w);
            (0..4).map(move |co| {
                (0..4)
                    .map(|ci| inp.real(xc[p * 4 + ci]) * w[ci * 4 + co] as f64 * s_w as f64)
                    .sum::<f64>()
            })
        })
        .collect();
    let node = ("Conv2d", &params[..], &[x, wt, bt][..]);
    run(&g, node, &[(x, &inp.bytes(&xc))], (y, out), &exact)
}

#[test]
fn conv_takes_no_width_change_between_its_input_and_output() {
    assert_eq!(conv(A8, OUT8), Seen::Within(1));
    assert_eq!(conv(A16, OUT16), Seen::Within(2));
    // an 8-bit input with a 16-bit output, or the reverse, is not an HTP Conv2d config
    assert_eq!(conv(A8, OUT16), Seen::Refused("validation"));
    assert_eq!(conv(A16, OUT8), Seen::Refused("validation"));
}

#[test]
fn element_wise_ops_take_no_width_change_either() {
    let add = |v: &[f64]| v[0] + v[1];
    let mul = |v: &[f64]| v[0] * v[1];
    assert_eq!(
        elementwise("ElementWiseAdd", &[A8, A8], OUT8, add),
        Seen::Within(0)
    );
    assert_eq!(
        elementwise("ElementWiseAdd", &[A16, A16], OUT16, add),
        Seen::Within(1)
    );
    for (ins, out) in [
        ([A16, A8], OUT8),
        ([A8, A16], OUT8),
        ([A16, A8], OUT16),
        ([A8, A8], OUT16),
        ([A16, A16], OUT8),
    ] {
        assert_eq!(
            elementwise("ElementWiseAdd", &ins, out, add),
            Seen::Refused("validation")
        );
        assert_eq!(
            elementwise("ElementWiseMultiply", &ins, out, mul),
            Seen::Refused("validation")
        );
    }
    let relu = |v: &[f64]| v[0].max(0.0);
    assert_eq!(
        elementwise("Relu", &[A8], OUT16, relu),
        Seen::Refused("validation")
    );
    assert_eq!(
        elementwise("Relu", &[A16], OUT8, relu),
        Seen::Refused("validation")
    );
}

/// Convert is the one op that changes width, and it is exact both ways: widening puts every 8-bit code on
/// the 16-bit grid of the same range (q16 = 257·q8), narrowing rounds once.
#[test]
fn convert_changes_width_exactly() {
    let same = |v: &[f64]| v[0];
    assert_eq!(elementwise("Convert", &[A8], A16, same), Seen::Within(0));
    assert_eq!(elementwise("Convert", &[A16], A8, same), Seen::Within(0));
    assert_eq!(elementwise("Convert", &[A8], OUT16, same), Seen::Within(0));
    assert_eq!(elementwise("Convert", &[A16], OUT8, same), Seen::Within(0));
}
