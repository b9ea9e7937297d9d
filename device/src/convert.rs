//! Where mixed precision makes QNN insert Convert ops, and what they cost.
//!
//! HTP runs every op with its activation inputs and its output at one width; only Convert changes a
//! tensor's width, exactly both ways (qnn-sys/tests/width_changes.rs). So amp builds, and the reference
//! computes, this dataflow ([`Dataflow`]):
//! - every materialised tensor is kept at its own encoding's width (its group's);
//! - an op computes at the widest width among its activation inputs and its output (a MAC op and the
//!   Relu/Clip QNN folds into it count as one op, whose output is the activation's), so an input of a
//!   narrower width is widened first (a Convert, lossless: 8-bit codes lie on the 16-bit grid of the same
//!   range), and an output of a narrower width is rounded from the op's wider result (a Convert after it);
//! - a tensor read at a wider width than it is kept is read through one widening Convert, shared by its
//!   readers at that width.
//!
//! [`sites`] lists, per tensor, the encodings that set those widths; [`converts`] applies a bit plan to them.
//! A test builds real QNN graphs and checks the count against the Convert nodes the builder inserted.

use serde::{Deserialize, Serialize};

use crate::ir::{Graph, TensorId};
use crate::quant::{roles, Role};

/// Which encodings set each width of the graph: every width is the largest activation width of a set of
/// materialised (`Own`) tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataflow {
    /// Per node: the tensors whose largest width the node computes at.
    pub node: Vec<Vec<TensorId>>,
    /// Per tensor: the tensors whose largest width it is kept at (`[t]` for a materialised tensor, its
    /// source for an alias, its pair's for a MAC output folded into its activation; empty for constants).
    pub kept: Vec<Vec<TensorId>>,
}

fn union(a: &mut Vec<TensorId>, b: &[TensorId]) {
    a.extend_from_slice(b);
    a.sort_unstable();
    a.dedup();
}

impl Dataflow {
    pub fn new(g: &Graph, roles: &[Role]) -> Dataflow {
        let consumers = g.consumers();
        let mut kept: Vec<Vec<TensorId>> = roles
            .iter()
            .enumerate()
            .map(|(t, r)| match r {
                Role::Own => vec![t],
                Role::Alias(s) => vec![*s],
                Role::Fused | Role::Const | Role::Int => Vec::new(),
            })
            .collect();
        let mut node = Vec::with_capacity(g.nodes.len());
        for n in &g.nodes {
            let mut set = Vec::new();
            if n.op.def().passthrough() {
                union(&mut set, &kept[n.inputs[0]]);
            } else {
                for &x in &n.inputs {
                    if !matches!(roles[x], Role::Const | Role::Int) {
                        union(&mut set, &kept[x]);
                    }
                }
                match roles[n.output] {
                    // a MAC op folded into its activation computes at that activation's width too
                    Role::Fused => {
                        let act = &g.nodes[consumers[n.output][0]];
                        union(&mut set, &[act.output]);
                        kept[n.output] = set.clone();
                    }
                    _ => union(&mut set, &kept[n.output]),
                }
            }
            node.push(set);
        }
        Dataflow { node, kept }
    }

    /// The largest width of a set under `act_bits` (8 for an empty set).
    pub fn width(set: &[TensorId], act_bits: &[u8]) -> u8 {
        set.iter().map(|&t| act_bits[t]).max().unwrap_or(8)
    }

    /// The width node `i` computes at.
    pub fn node_width(&self, i: usize, act_bits: &[u8]) -> u8 {
        Self::width(&self.node[i], act_bits)
    }

    /// The width tensor `t` is kept at.
    pub fn tensor_width(&self, t: TensorId, act_bits: &[u8]) -> u8 {
        Self::width(&self.kept[t], act_bits)
    }
}

/// A tensor that may need a Convert: narrowing after its producer, widening before a reader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub tensor: TensorId,
    /// The tensors whose largest width `tensor` is kept at.
    pub kept: Vec<TensorId>,
    /// The tensors whose largest width its producer computes at (`kept` for a graph input).
    pub produced: Vec<TensorId>,
    /// Per reader: the tensors whose largest width it reads at.
    pub read: Vec<Vec<TensorId>>,
}

/// One Convert a plan needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Convert {
    pub tensor: TensorId,
    pub from: u8,
    pub to: u8,
}

/// Every materialised tensor whose producer or readers can run at another width than it is kept at, for
/// some plan.
pub fn sites(g: &Graph) -> Vec<Site> {
    let roles = roles(g);
    let df = Dataflow::new(g, &roles);
    let producers = g.producers();
    let consumers = g.consumers();
    let mut out = Vec::new();
    for t in 0..g.tensors.len() {
        if !matches!(roles[t], Role::Own | Role::Alias(_)) {
            continue;
        }
        let kept = df.kept[t].clone();
        let produced = match producers[t] {
            Some(p) => df.node[p].clone(),
            None => kept.clone(),
        };
        let read: Vec<Vec<TensorId>> = consumers[t].iter().map(|&c| df.node[c].clone()).collect();
        let other = |set: &Vec<TensorId>| set.iter().any(|x| !kept.contains(x));
        if other(&produced) || read.iter().any(other) {
            out.push(Site {
                tensor: t,
                kept,
                produced,
                read,
            });
        }
    }
    out
}

/// The Converts a plan needs, given activation bits per tensor (read at `Own` tensors).
pub fn converts(sites: &[Site], act_bits: &[u8]) -> Vec<Convert> {
    let width = |set: &[TensorId]| Dataflow::width(set, act_bits);
    let mut out = Vec::new();
    for s in sites {
        let k = width(&s.kept);
        let p = width(&s.produced).max(k);
        if p > k {
            out.push(Convert {
                tensor: s.tensor,
                from: p,
                to: k,
            });
        }
        let mut ups: Vec<u8> = s.read.iter().map(|r| width(r)).filter(|&w| w > k).collect();
        ups.sort_unstable();
        ups.dedup();
        out.extend(ups.into_iter().map(|to| Convert {
            tensor: s.tensor,
            from: k,
            to,
        }));
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
    use crate::ir::{Add, Conv, Node, Op, Relu};

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
    fn ops_compute_at_their_widest_tensor_and_converts_follow() {
        let (g, [x, c1, a, b, out]) = residual();
        let s = sites(&g);
        // conv1 and relu are one op: it computes at the wider of x and a, and keeps c1 there
        let df = Dataflow::new(&g, &roles(&g));
        assert_eq!(df.node[0], vec![x, a]);
        assert_eq!(df.kept[c1], vec![x, a]);
        // x: kept at its own width, read by conv1 at x's and a's
        assert!(s.contains(&Site {
            tensor: x,
            kept: vec![x],
            produced: vec![x],
            read: vec![vec![x, a]],
        }));
        // a: produced by the pair (x, a), read by conv2 (a, b) and by add (a, b, out)
        assert!(s.contains(&Site {
            tensor: a,
            kept: vec![a],
            produced: vec![x, a],
            read: vec![vec![a, b], vec![a, b, out]],
        }));
        assert_eq!(s.len(), 4, "{s:?}"); // x, a, b, out
        let mut bits = vec![8u8; g.tensors.len()];
        assert!(converts(&s, &bits).is_empty());
        // out at 16: add computes at 16, so a and b are widened for it
        bits[out] = 16;
        let c = converts(&s, &bits);
        assert_eq!(
            c,
            vec![
                Convert {
                    tensor: a,
                    from: 8,
                    to: 16
                },
                Convert {
                    tensor: b,
                    from: 8,
                    to: 16
                },
            ]
        );
        // a at 16 too: conv1 computes at 16 (x widened once), conv2 at 16 (b is produced at 16, kept at 8)
        bits[a] = 16;
        let c = converts(&s, &bits);
        assert!(
            c.contains(&Convert {
                tensor: x,
                from: 8,
                to: 16
            }),
            "{c:?}"
        );
        assert!(
            c.contains(&Convert {
                tensor: b,
                from: 16,
                to: 8
            }),
            "{c:?}"
        );
        assert!(
            c.contains(&Convert {
                tensor: b,
                from: 8,
                to: 16
            }),
            "{c:?}"
        );
        assert_eq!(c.len(), 3, "{c:?}");
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
