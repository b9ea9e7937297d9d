//! Where mixed precision makes QNN insert Convert ops, and what they cost.
//!
//! The QNN backend computes a Conv/Gemm at the width of its input's encoding and every other op at the
//! width of its output's; a consumer that needs a tensor at the other width gets it through one Convert
//! (shared by all consumers at that width). [`sites`] lists, per tensor, which encodings decide the width it
//! is produced at and the widths it is read at; [`converts`] applies a bit plan to them. A test builds real
//! QNN graphs and checks the count against the Convert nodes the builder inserted.

use serde::{Deserialize, Serialize};

use crate::ir::{Graph, Op, TensorId};
use crate::quant::{roles, Role};

/// A tensor that may need a Convert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub tensor: TensorId,
    /// The `Own` tensor whose activation bits set the width `tensor` is produced at.
    pub src: TensorId,
    /// The `Own` tensors whose activation bits set the widths `tensor` is read at (never `src`).
    pub dsts: Vec<TensorId>,
}

/// One Convert a plan needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Convert {
    pub tensor: TensorId,
    pub from: u8,
    pub to: u8,
}

/// The tensor whose encoding `t` carries.
fn root(roles: &[Role], t: TensorId) -> TensorId {
    match roles[t] {
        Role::Alias(s) => s,
        _ => t,
    }
}

/// The QNN builder computes an op with weights at its input's width.
fn is_mac(op: &Op) -> bool {
    op.has_weights()
}

/// Every tensor whose producer and consumers can disagree on width, for any plan.
pub fn sites(g: &Graph) -> Vec<Site> {
    let roles = roles(g);
    let producers = g.producers();
    let consumers = g.consumers();
    let mut out = Vec::new();
    for t in 0..g.tensors.len() {
        if roles[t] == Role::Const {
            continue;
        }
        let src = match producers[t] {
            Some(p) if is_mac(&g.nodes[p].op) => root(&roles, g.nodes[p].inputs[0]),
            _ => root(&roles, t),
        };
        let mut dsts = Vec::new();
        for &c in &consumers[t] {
            let n = &g.nodes[c];
            for (slot, &i) in n.inputs.iter().enumerate() {
                if i != t {
                    continue;
                }
                let d = if is_mac(&n.op) {
                    if slot != 0 {
                        continue;
                    }
                    root(&roles, t)
                } else {
                    root(&roles, n.output)
                };
                dsts.push(d);
            }
        }
        if g.outputs.contains(&t) {
            dsts.push(root(&roles, t));
        }
        dsts.sort_unstable();
        dsts.dedup();
        dsts.retain(|&d| d != src);
        if !dsts.is_empty() {
            out.push(Site {
                tensor: t,
                src,
                dsts,
            });
        }
    }
    out
}

/// The Converts a plan needs, given activation bits per tensor (read at `Own` tensors).
pub fn converts(sites: &[Site], act_bits: &[u8]) -> Vec<Convert> {
    let mut out = Vec::new();
    for s in sites {
        let from = act_bits[s.src];
        let mut tos: Vec<u8> = s
            .dsts
            .iter()
            .map(|&d| act_bits[d])
            .filter(|&b| b != from)
            .collect();
        tos.sort_unstable();
        tos.dedup();
        for to in tos {
            out.push(Convert {
                tensor: s.tensor,
                from,
                to,
            });
        }
    }
    out
}

/// A Convert to price: the tensor's full shape (batch first, NCHW for images) and its direction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Probe {
    pub shape: Vec<usize>,
    pub from: u8,
    pub to: u8,
}

/// The cost in µs AIMET's phase 3 predicts for a Convert of this shape: its cycle model
/// (2.7517·C + 0.80653·H·C + 4.27418·H·W + 0.036244·size + 2255.28·⌈H/8⌉, shape as [N, C, H, W]) at a
/// nominal 1 GHz. Used where nothing can be measured (the reference backend); always labelled an estimate.
pub fn estimate_us(shape: &[usize]) -> f64 {
    let d: Vec<f64> = shape.iter().map(|&v| v.max(1) as f64).collect();
    let (c, h, w) = match d.len() {
        0 | 1 => (d.first().copied().unwrap_or(1.0), 1.0, 1.0),
        2 => (d[1], 1.0, 1.0),
        3 => (d[1], d[2], 1.0),
        _ => (d[1], d[2], d[3]),
    };
    let size: f64 = d.iter().product();
    let cycles = 2.7517 * c
        + 0.80653 * h * c
        + 4.27418 * h * w
        + 0.036244 * size
        + 2255.28 * (h / 8.0).ceil();
    cycles / 1000.0
}

/// Prices of a list of probes, in µs per Convert, and whether they were measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub us: Vec<f64>,
    pub measured: bool,
    /// How the prices were obtained, for the provenance record.
    pub method: String,
}

/// Prices `probes` on `backend`: measured on QNN (see [`crate::backend::qnn::measure_convert`]), estimated on
/// the reference backend, which has no Convert op of its own.
pub fn price(
    backend: &crate::backend::EvalBackend,
    probes: &[Probe],
    warmup: usize,
    iterations: usize,
) -> anyhow::Result<Prices> {
    match backend {
        crate::backend::EvalBackend::Ref => Ok(Prices {
            us: probes.iter().map(|p| estimate_us(&p.shape)).collect(),
            measured: false,
            method: "estimated, not measured: AIMET's Convert cycle model at 1 GHz".into(),
        }),
        crate::backend::EvalBackend::Htp(rt) => {
            let mut us = Vec::with_capacity(probes.len());
            for p in probes {
                let (with, without) = crate::backend::qnn::measure_convert(
                    rt, &p.shape, p.from, p.to, warmup, iterations,
                )
                .map_err(|e| {
                    anyhow::anyhow!(
                        "measuring a Convert of {:?} u{}→u{}: {e}",
                        p.shape,
                        p.from,
                        p.to
                    )
                })?;
                // a Convert is never free; below the profile's 1 µs resolution it counts as 1 µs
                us.push((with - without).max(1.0));
            }
            Ok(Prices {
                us,
                measured: true,
                method: format!(
                    "measured: median QNN execute time of a one-Convert graph minus a one-Reshape graph, {iterations} runs after {warmup} warm-up, at least 1 µs"
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Add, Conv, Node, Relu};

    fn node(
        g: &mut Graph,
        name: &str,
        op: Op,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
    ) -> TensorId {
        let y = g.add_tensor(format!("{name}_out"), shape, None);
        g.nodes.push(Node {
            name: name.into(),
            op,
            inputs,
            output: y,
        });
        y
    }

    /// x → conv1 → relu → (a) ; a → conv2 → b ; a + b → out
    fn residual() -> (Graph, [TensorId; 5]) {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 2, 4, 4], None);
        g.inputs.push(x);
        let w1 = g.add_tensor("w1", vec![2, 2, 1, 1], Some(vec![1.0; 4]));
        let w2 = g.add_tensor("w2", vec![2, 2, 1, 1], Some(vec![1.0; 4]));
        let conv = || {
            Op::from(Conv {
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
                group: 1,
            })
        };
        let c1 = node(&mut g, "conv1", conv(), vec![x, w1], vec![1, 2, 4, 4]);
        let a = node(&mut g, "relu", Relu.into(), vec![c1], vec![1, 2, 4, 4]);
        let b = node(&mut g, "conv2", conv(), vec![a, w2], vec![1, 2, 4, 4]);
        let out = node(&mut g, "add", Add.into(), vec![a, b], vec![1, 2, 4, 4]);
        g.outputs.push(out);
        (g, [x, c1, a, b, out])
    }

    #[test]
    fn sites_follow_the_compute_widths() {
        let (g, [x, c1, a, b, out]) = residual();
        let s = sites(&g);
        // conv1's fused output is computed at x's width and read by relu at a's width
        assert!(s.contains(&Site {
            tensor: c1,
            src: x,
            dsts: vec![a]
        }));
        // a is read by conv2 at its own width (no site for that) and by add at out's width
        assert!(s.contains(&Site {
            tensor: a,
            src: a,
            dsts: vec![out]
        }));
        // conv2's output is produced at a's width and read by add at out's (b's own width is never read)
        assert!(s.contains(&Site {
            tensor: b,
            src: a,
            dsts: vec![out]
        }));
        assert_eq!(s.len(), 3);
        let mut bits = vec![8u8; g.tensors.len()];
        assert!(converts(&s, &bits).is_empty());
        bits[out] = 16;
        let c = converts(&s, &bits);
        assert_eq!(c.len(), 2, "{c:?}"); // a and b each converted once for add
        assert!(c.iter().all(|c| c.from == 8 && c.to == 16));
        bits[a] = 16;
        // only conv1's output: computed at x's 8 bits, read by relu at 16
        assert_eq!(
            converts(&s, &bits),
            vec![Convert {
                tensor: c1,
                from: 8,
                to: 16
            }]
        );
        bits[out] = 8;
        // now a and b (both at a's 16 bits) are read by add at 8
        assert_eq!(
            converts(&s, &bits),
            vec![
                Convert {
                    tensor: c1,
                    from: 8,
                    to: 16
                },
                Convert {
                    tensor: a,
                    from: 16,
                    to: 8
                },
                Convert {
                    tensor: b,
                    from: 16,
                    to: 8
                }
            ]
        );
        let _ = b;
    }

    #[test]
    fn estimate_grows_with_size_and_is_positive() {
        let small = estimate_us(&[1, 8, 8, 8]);
        let big = estimate_us(&[1, 64, 32, 32]);
        assert!(small > 0.0 && big > small);
        // the formula itself, by hand: C=8, H=8, W=8, size=512
        let by_hand =
            (2.7517 * 8.0 + 0.80653 * 64.0 + 4.27418 * 64.0 + 0.036244 * 512.0 + 2255.28) / 1000.0;
        assert!((small - by_hand).abs() < 1e-12);
        assert!(estimate_us(&[4, 10]) > 0.0);
    }
}
