//! Graph clean-up after import: fold per-channel affine ops into the preceding Conv/Gemm, drop dead nodes.

use std::sync::Arc;

use amp_device::ir::{Graph, Op, Pad, TensorId};

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
            .run(&input)
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
            .run(&input)
            .unwrap();
        assert_eq!(before, after);
    }
}
