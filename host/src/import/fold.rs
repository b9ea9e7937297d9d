//! Graph clean-up after import: fold per-channel affine ops into the preceding Conv/Gemm, drop dead nodes.

use std::sync::Arc;

use amp_device::ir::{self, Graph, Op, Pad, ReduceOp, TensorId};

/// Per-channel constant of a foldable op, as (scale, shift) vectors of length `c`.
fn per_channel(
    data: &[f32],
    shape: &[usize],
    c: usize,
    out_rank: usize,
    channel_axis: usize,
) -> Option<Vec<f32>> {
    if data.len() == 1 {
        return Some(vec![data[0]; c]);
    }
    if data.len() != c {
        return None;
    }
    // the single non-1 dim must align with the channel axis when right-aligned to the output rank
    let pos = shape.iter().position(|&d| d == c)?;
    let aligned = out_rank as isize - shape.len() as isize + pos as isize;
    (aligned == channel_axis as isize).then(|| data.to_vec())
}

/// Folds BatchNormalization (ScaleShift), and Add/Sub/Mul by a per-channel constant, into the Conv or Gemm
/// that produces their input when that output has no other reader. The folded op takes the output (and
/// name) of the op folded into it.
pub fn fold_into_mac_ops(g: &mut Graph) {
    loop {
        let producers = g.producers();
        let consumers = g.consumers();
        let mut done = false;
        for i in 0..g.nodes.len() {
            let n = &g.nodes[i];
            let (x, scale, shift) = match &n.op {
                Op::ScaleShift(_) => (
                    n.inputs[0],
                    g.const_data(n.inputs[1]).map(|s| s.to_vec()),
                    g.const_data(n.inputs[2]).map(|s| s.to_vec()),
                ),
                Op::Add(_) | Op::Sub(_) | Op::Mul(_) => {
                    let (a, b) = (n.inputs[0], n.inputs[1]);
                    let (x, c) = if g.tensors[b].is_const() && !g.tensors[a].is_const() {
                        (a, b)
                    } else if g.tensors[a].is_const()
                        && !g.tensors[b].is_const()
                        && !matches!(n.op, Op::Sub(_))
                    {
                        (b, a)
                    } else {
                        continue;
                    };
                    let Some(p) = producers[x] else { continue };
                    let pn = &g.nodes[p];
                    let (cout, axis) = match pn.op {
                        Op::Conv(_) => (g.tensors[pn.inputs[1]].shape[0], 1),
                        Op::Gemm(_) => (
                            g.tensors[pn.inputs[1]].shape[0],
                            g.tensors[x].shape.len() - 1,
                        ),
                        _ => continue,
                    };
                    let Some(v) = per_channel(
                        g.const_data(c).unwrap_or(&[]),
                        &g.tensors[c].shape,
                        cout,
                        g.tensors[x].shape.len(),
                        axis,
                    ) else {
                        continue;
                    };
                    match n.op {
                        Op::Add(_) => (x, Some(vec![1.0; cout]), Some(v)),
                        Op::Sub(_) => (
                            x,
                            Some(vec![1.0; cout]),
                            Some(v.iter().map(|v| -v).collect()),
                        ),
                        _ => (x, Some(v), Some(vec![0.0; cout])),
                    }
                }
                _ => continue,
            };
            let (Some(scale), Some(shift)) = (scale, shift) else {
                continue;
            };
            let Some(p) = producers[x] else { continue };
            if !g.nodes[p].op.has_weights() || consumers[x].len() != 1 || g.outputs.contains(&x) {
                continue;
            }
            let pn = g.nodes[p].clone();
            let wt = &g.tensors[pn.inputs[1]];
            let cout = wt.shape[0];
            if scale.len() != cout {
                continue;
            }
            let per = wt.numel() / cout;
            let mut w = wt.data.as_deref().cloned().unwrap_or_default();
            for (c, chunk) in w.chunks_mut(per).enumerate() {
                chunk.iter_mut().for_each(|v| *v *= scale[c]);
            }
            let bias_old = pn
                .inputs
                .get(2)
                .and_then(|&b| g.const_data(b))
                .map(|b| b.to_vec())
                .unwrap_or(vec![0.0; cout]);
            let bias: Vec<f32> = (0..cout)
                .map(|c| bias_old[c] * scale[c] + shift[c])
                .collect();
            let wname = g.tensors[pn.inputs[1]].name.clone();
            let wshape = g.tensors[pn.inputs[1]].shape.clone();
            let out = g.nodes[i].output;
            let new_w = g.add_tensor(wname, wshape, Some(w));
            let new_b = g.add_tensor(
                format!("{}.bias", g.tensors[out].name),
                vec![cout],
                Some(bias),
            );
            let pnode = &mut g.nodes[p];
            pnode.inputs = vec![pn.inputs[0], new_w, new_b];
            pnode.output = out;
            g.nodes.remove(i);
            done = true;
            break;
        }
        if !done {
            return;
        }
    }
}

/// Folds a zero Pad of the two spatial axes into the Conv that is its only reader (exporters emit these for
/// TensorFlow-style "same" padding; onnxruntime fuses them the same way).
pub fn fold_pad_into_conv(g: &mut Graph) {
    loop {
        let consumers = g.consumers();
        let producers = g.producers();
        let mut done = false;
        for i in 0..g.nodes.len() {
            let Op::Conv(_) = g.nodes[i].op else { continue };
            let x = g.nodes[i].inputs[0];
            let Some(p) = producers[x] else { continue };
            let Op::Pad(Pad { pads, value }) = &g.nodes[p].op else {
                continue;
            };
            if *value != 0.0 || pads.len() != 8 || consumers[x].len() != 1 || g.outputs.contains(&x)
            {
                continue;
            }
            // only H and W may be padded: begins [n, c, h, w], ends [n, c, h, w]
            if pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0 {
                continue;
            }
            let (top, left, bottom, right) = (pads[2], pads[3], pads[6], pads[7]);
            let src = g.nodes[p].inputs[0];
            let Op::Conv(c) = &mut g.nodes[i].op else {
                continue;
            };
            c.pads = [
                c.pads[0] + top,
                c.pads[1] + left,
                c.pads[2] + bottom,
                c.pads[3] + right,
            ];
            g.nodes[i].inputs[0] = src;
            g.nodes.remove(p);
            done = true;
            break;
        }
        if !done {
            return;
        }
    }
}

/// Recognises LayerNorm as exporters decompose it — mean = ReduceMean(x); d = x − mean; var =
/// ReduceMean(d² (Pow 2 or d·d)); y = d / Sqrt(var + ε), then optionally · gamma and + beta (constants) — over
/// trailing axes, with no intermediate read elsewhere, and replaces it with one LayerNorm, as QNN's converter
/// does (HTP then normalises in one op, and the intermediates are never quantized).
pub fn fuse_layer_norm(g: &mut Graph) {
    while let Some((last, x, axis, eps, gamma, beta)) = find_layer_norm(g) {
        let n: usize = g.tensors[x].shape[axis..].iter().product();
        let name = g.nodes[last].name.clone();
        let mut operand = |what: &str, v: Option<Vec<f32>>, default: f32| {
            let data = match v {
                Some(d) if d.len() == 1 => vec![d[0]; n],
                Some(d) => d,
                None => vec![default; n],
            };
            g.add_tensor(format!("{name}.{what}"), vec![n], Some(data))
        };
        let gamma = operand("gamma", gamma, 1.0);
        let beta = operand("beta", beta, 0.0);
        let node = &mut g.nodes[last];
        node.op = Op::from(amp_device::ir::LayerNorm { axis, epsilon: eps });
        node.inputs = vec![x, gamma, beta];
    }
}

/// The last node of a decomposed LayerNorm and (x, first axis, ε, gamma, beta).
#[allow(clippy::type_complexity)]
fn find_layer_norm(
    g: &Graph,
) -> Option<(
    usize,
    TensorId,
    usize,
    f32,
    Option<Vec<f32>>,
    Option<Vec<f32>>,
)> {
    let producers = g.producers();
    let consumers = g.consumers();
    let made_by = |t: TensorId| producers[t].map(|p| &g.nodes[p]);
    // an intermediate: read only by `readers` nodes and not a graph output
    let private =
        |t: TensorId, readers: usize| consumers[t].len() == readers && !g.outputs.contains(&t);
    // the constant operand of a binary node whose other input is `t`
    let other_const = |n: &amp_device::ir::Node, t: TensorId| -> Option<Vec<f32>> {
        let o = if n.inputs[0] == t {
            n.inputs[1]
        } else {
            n.inputs[0]
        };
        (n.inputs.contains(&t)).then_some(())?;
        g.const_data(o).map(|d| d.to_vec())
    };
    let trailing = |axes: &[usize], rank: usize| -> Option<usize> {
        let first = *axes.first()?;
        (first > 0 && axes.iter().copied().eq(first..rank)).then_some(first)
    };
    for (i, div) in g.nodes.iter().enumerate() {
        let Op::Div(_) = div.op else { continue };
        let (d, s) = (div.inputs[0], div.inputs[1]);
        // d = x − mean(x)
        let Some(sub) = made_by(d).filter(|n| matches!(n.op, Op::Sub(_))) else {
            continue;
        };
        let (x, m) = (sub.inputs[0], sub.inputs[1]);
        let Some(mean) = made_by(m) else { continue };
        let Op::Reduce(
            r1 @ ir::Reduce {
                op: ReduceOp::Mean, ..
            },
        ) = &mean.op
        else {
            continue;
        };
        let rank = g.tensors[x].shape.len();
        let Some(axis) = trailing(&r1.axes, rank) else {
            continue;
        };
        if mean.inputs[0] != x || !r1.keepdims {
            continue;
        }
        // s = sqrt(mean(d²) + ε)
        let Some(sqrt) = made_by(s) else { continue };
        if !matches!(sqrt.op, Op::Sqrt(_)) {
            continue;
        }
        let Some(add) = made_by(sqrt.inputs[0]) else {
            continue;
        };
        if !matches!(add.op, Op::Add(_)) {
            continue;
        }
        let v = if g.tensors[add.inputs[1]].is_const() {
            add.inputs[0]
        } else {
            add.inputs[1]
        };
        let Some(eps) = other_const(add, v).filter(|e| e.len() == 1) else {
            continue;
        };
        let Some(var) = made_by(v) else { continue };
        let Op::Reduce(
            r2 @ ir::Reduce {
                op: ReduceOp::Mean, ..
            },
        ) = &var.op
        else {
            continue;
        };
        if r2.axes != r1.axes || !r2.keepdims {
            continue;
        }
        let Some(sq) = made_by(var.inputs[0]) else {
            continue;
        };
        let squares_d = match &sq.op {
            Op::Pow(p) => p.exponent == 2.0 && sq.inputs[0] == d,
            Op::Mul(_) => sq.inputs[0] == d && sq.inputs[1] == d,
            _ => false,
        };
        if !squares_d
            || !private(m, 1)
            || !private(d, 2)
            || !private(sq.output, 1)
            || !private(v, 1)
            || !private(add.output, 1)
            || !private(s, 1)
        {
            continue;
        }
        // optionally · gamma, then + beta
        let mut last = i;
        let mut out = div.output;
        let mut gamma = None;
        let mut beta = None;
        let n: usize = g.tensors[x].shape[axis..].iter().product();
        let fits = |c: &[f32]| c.len() == 1 || c.len() == n;
        if let [next] = consumers[out].as_slice() {
            let nn = &g.nodes[*next];
            if matches!(nn.op, Op::Mul(_)) && !g.outputs.contains(&out) {
                if let Some(c) = other_const(nn, out).filter(|c| fits(c)) {
                    gamma = Some(c);
                    last = *next;
                    out = nn.output;
                }
            }
        }
        if let [next] = consumers[out].as_slice() {
            let nn = &g.nodes[*next];
            if matches!(nn.op, Op::Add(_)) && !g.outputs.contains(&out) {
                if let Some(c) = other_const(nn, out).filter(|c| fits(c)) {
                    beta = Some(c);
                    last = *next;
                }
            }
        }
        return Some((last, x, axis, eps[0], gamma, beta));
    }
    None
}

/// Recognises the exact Gelu as exporters decompose it — e = Erf(x / √2 (or x · 1/√2)); y = x · (e + 1) ·
/// ½, the ½ applied first or last — with no intermediate read elsewhere, and replaces it with one Gelu, as
/// QNN's converter does (HTP has Gelu but no Erf, and the intermediates are never quantized).
pub fn fuse_gelu(g: &mut Graph) {
    while let Some((last, x)) = find_gelu(g) {
        let node = &mut g.nodes[last];
        node.op = Op::from(amp_device::ir::Gelu { tanh: false });
        node.inputs = vec![x];
    }
}

/// The last node of a decomposed exact Gelu and its input.
fn find_gelu(g: &Graph) -> Option<(usize, TensorId)> {
    let producers = g.producers();
    let consumers = g.consumers();
    let made_by = |t: TensorId| producers[t].map(|p| &g.nodes[p]);
    let private = |t: TensorId| consumers[t].len() == 1 && !g.outputs.contains(&t);
    // the one-value constant operand of a binary node, and its other input
    let scalar = |n: &amp_device::ir::Node| -> Option<(f32, TensorId)> {
        let [a, b] = n.inputs[..] else { return None };
        let one = |t: TensorId| g.const_data(t).filter(|d| d.len() == 1).map(|d| d[0]);
        match (one(a), one(b)) {
            (None, Some(c)) => Some((c, a)),
            (Some(c), None) if !matches!(n.op, Op::Div(_) | Op::Sub(_)) => Some((c, b)),
            _ => None,
        }
    };
    let near = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs();
    let half = std::f32::consts::FRAC_1_SQRT_2;
    for erf in &g.nodes {
        let Op::Erf(_) = erf.op else { continue };
        // x / √2
        let Some(scaled) = made_by(erf.inputs[0]) else {
            continue;
        };
        let x = match (&scaled.op, scalar(scaled)) {
            (Op::Div(_), Some((c, x))) if near(c, std::f32::consts::SQRT_2) => x,
            (Op::Mul(_), Some((c, x))) if near(c, half) => x,
            _ => continue,
        };
        // e + 1
        let [plus] = consumers[erf.output][..] else {
            continue;
        };
        let plus = &g.nodes[plus];
        if !matches!(plus.op, Op::Add(_)) || !scalar(plus).is_some_and(|(c, _)| c == 1.0) {
            continue;
        }
        // x · (e + 1) and · ½, in either order: x·½ first, or the product then ·½
        let [m1] = consumers[plus.output][..] else {
            continue;
        };
        let m1n = &g.nodes[m1];
        if !matches!(m1n.op, Op::Mul(_)) || !m1n.inputs.contains(&plus.output) {
            continue;
        }
        let other = if m1n.inputs[0] == plus.output {
            m1n.inputs[1]
        } else {
            m1n.inputs[0]
        };
        let is_half = |n: &amp_device::ir::Node| {
            matches!(n.op, Op::Mul(_)) && scalar(n).is_some_and(|(c, _)| c == 0.5)
        };
        let last = if other == x {
            let [m2] = consumers[m1n.output][..] else {
                continue;
            };
            if !is_half(&g.nodes[m2]) || !private(m1n.output) {
                continue;
            }
            m2
        } else if made_by(other).is_some_and(|h| is_half(h) && scalar(h).map(|s| s.1) == Some(x))
            && private(other)
        {
            m1
        } else {
            continue;
        };
        if !private(scaled.output) || !private(erf.output) || !private(plus.output) {
            continue;
        }
        return Some((last, x));
    }
    None
}

/// Removes nodes no output depends on and tensors nothing references; renumbers tensors.
pub fn remove_dead(g: &mut Graph) {
    let producers = g.producers();
    let mut live = vec![false; g.tensors.len()];
    let mut stack: Vec<TensorId> = g.outputs.clone();
    while let Some(t) = stack.pop() {
        if std::mem::replace(&mut live[t], true) {
            continue;
        }
        if let Some(p) = producers[t] {
            stack.extend(g.nodes[p].inputs.iter().copied());
        }
    }
    g.nodes.retain(|n| live[n.output]);
    for &i in &g.inputs {
        live[i] = true;
    }
    let mut map = vec![usize::MAX; g.tensors.len()];
    let mut tensors = Vec::new();
    for (i, t) in g.tensors.iter().enumerate() {
        if live[i] {
            map[i] = tensors.len();
            tensors.push(t.clone());
        }
    }
    for n in &mut g.nodes {
        n.inputs.iter_mut().for_each(|t| *t = map[*t]);
        n.output = map[n.output];
    }
    g.inputs.iter_mut().for_each(|t| *t = map[*t]);
    g.integer.iter_mut().for_each(|t| *t = map[*t]);
    g.int_as_float.iter_mut().for_each(|t| *t = map[*t]);
    g.outputs.iter_mut().for_each(|t| *t = map[*t]);
    g.tensors = tensors;
    let _ = Arc::<Vec<f32>>::default;
}

#[cfg(test)]
mod tests {
    use super::*;
    use amp_device::backend::reference::Reference;
    use amp_device::backend::Array;
    use amp_device::ir::{Conv, Node, Pad};

    #[test]
    fn zero_pad_folds_into_the_conv_with_the_same_result() {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 2, 5, 5], None);
        g.inputs.push(x);
        let p = g.add_tensor("p", vec![1, 2, 6, 8], None);
        g.nodes.push(Node {
            name: "pad".into(),
            op: Op::from(Pad {
                pads: vec![0, 0, 0, 1, 0, 0, 1, 2],
                value: 0.0,
            }),
            inputs: vec![x],
            output: p,
        });
        let w = g.add_tensor(
            "w",
            vec![3, 2, 3, 3],
            Some((0..54).map(|i| (i % 7) as f32 - 3.0).collect()),
        );
        let y = g.add_tensor("y", vec![1, 3, 4, 6], None);
        g.nodes.push(Node {
            name: "conv".into(),
            op: Op::Conv(Conv {
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
                group: 1,
            }),
            inputs: vec![p, w],
            output: y,
        });
        g.outputs.push(y);
        let input = Array::new(
            vec![2, 2, 5, 5],
            (0..100).map(|i| (i % 11) as f32 * 0.5).collect(),
        );
        let before = Reference::new(std::sync::Arc::new(g.clone()), None)
            .unwrap()
            .run(std::slice::from_ref(&input))
            .unwrap();
        fold_pad_into_conv(&mut g);
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(
            g.nodes[0].op,
            Op::Conv(Conv {
                strides: [1, 1],
                pads: [0, 1, 1, 2],
                dilations: [1, 1],
                group: 1
            })
        );
        let after = Reference::new(std::sync::Arc::new(g), None)
            .unwrap()
            .run(std::slice::from_ref(&input))
            .unwrap();
        assert_eq!(before, after);
    }
}
