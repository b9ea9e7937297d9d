//! Output shapes of each op at batch 1, from its input shapes.

use super::op::*;

pub fn conv_out(
    size: usize,
    k: usize,
    stride: usize,
    pad_a: usize,
    pad_b: usize,
    dil: usize,
    ceil: bool,
) -> Result<usize, String> {
    let eff = dil * (k - 1) + 1;
    let padded = size + pad_a + pad_b;
    if padded < eff {
        return Err(format!(
            "kernel extent {eff} is larger than the padded input {padded}"
        ));
    }
    let span = padded - eff;
    Ok(if ceil {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    })
}

/// Offset into an operand of shape `operand` of the element at flat index `idx` of the broadcast result
/// `out` (shapes right-aligned; size-1 dims repeat).
pub fn broadcast_offset(out: &[usize], operand: &[usize], idx: usize) -> usize {
    let mut rem = idx;
    let mut off = 0;
    let mut stride = 1;
    for d in (0..out.len()).rev() {
        let i = rem % out[d];
        rem /= out[d];
        let sd = d as isize - (out.len() as isize - operand.len() as isize);
        if sd >= 0 {
            let dim = operand[sd as usize];
            off += if dim == 1 { 0 } else { i } * stride;
            stride *= dim;
        }
    }
    off
}

/// Numpy-style broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

fn rank4(s: &[usize], what: &str) -> Result<(), String> {
    if s.len() != 4 {
        return Err(format!("{what} must be rank 4 (NCHW), found shape {s:?}"));
    }
    Ok(())
}

/// The output shape of `op` for these input shapes.
pub fn infer(
    op: &Op,
    ins: &[&[usize]],
    _is_const: impl Fn(usize) -> bool,
) -> Result<Vec<usize>, String> {
    let need = |n: usize| -> Result<(), String> {
        if ins.len() < n {
            Err(format!("expects {n} inputs, found {}", ins.len()))
        } else {
            Ok(())
        }
    };
    need(1)?;
    let x = ins[0];
    match op {
        Op::Conv(c) => {
            need(2)?;
            rank4(x, "input")?;
            let w = ins[1];
            rank4(w, "weight")?;
            if x[1] != w[1] * c.group || w[0] % c.group != 0 {
                return Err(format!(
                    "input has {} channels, weight {w:?} with group {} expects {}",
                    x[1],
                    c.group,
                    w[1] * c.group
                ));
            }
            if ins.len() > 2 && ins[2] != [w[0]] {
                return Err(format!(
                    "bias shape {:?} does not match {} output channels",
                    ins[2], w[0]
                ));
            }
            let h = conv_out(
                x[2],
                w[2],
                c.strides[0],
                c.pads[0],
                c.pads[2],
                c.dilations[0],
                false,
            )?;
            let wd = conv_out(
                x[3],
                w[3],
                c.strides[1],
                c.pads[1],
                c.pads[3],
                c.dilations[1],
                false,
            )?;
            Ok(vec![x[0], w[0], h, wd])
        }
        Op::Gemm => {
            need(2)?;
            let w = ins[1];
            if w.len() != 2 || x.is_empty() || x[x.len() - 1] != w[1] {
                return Err(format!("input {x:?} does not fit weight {w:?} ([out, in])"));
            }
            let mut s = x.to_vec();
            *s.last_mut().unwrap() = w[0];
            Ok(s)
        }
        Op::MatMul => {
            need(2)?;
            let (a, b) = (x, ins[1]);
            if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
                return Err(format!("shapes {a:?} and {b:?} do not multiply"));
            }
            let mut s = broadcast(&a[..a.len() - 2], &b[..b.len() - 2])?;
            s.push(a[a.len() - 2]);
            s.push(b[b.len() - 1]);
            Ok(s)
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div => {
            need(2)?;
            broadcast(x, ins[1])
        }
        Op::ScaleShift => {
            need(3)?;
            if x.len() < 2 || ins[1] != [x[1]] || ins[2] != [x[1]] {
                return Err(format!(
                    "scale/shift {:?}/{:?} do not match {} channels",
                    ins[1],
                    ins[2],
                    x.get(1).unwrap_or(&0)
                ));
            }
            Ok(x.to_vec())
        }
        Op::Relu
        | Op::Clip { .. }
        | Op::LeakyRelu { .. }
        | Op::Sigmoid
        | Op::HardSigmoid { .. }
        | Op::HardSwish
        | Op::Tanh => Ok(x.to_vec()),
        Op::Softmax { axis } => {
            if *axis >= x.len() {
                return Err(format!("axis {axis} out of range for shape {x:?}"));
            }
            Ok(x.to_vec())
        }
        Op::MaxPool(p) | Op::AveragePool(p) => {
            rank4(x, "input")?;
            let h = conv_out(
                x[2],
                p.kernel[0],
                p.strides[0],
                p.pads[0],
                p.pads[2],
                1,
                p.ceil_mode,
            )?;
            let w = conv_out(
                x[3],
                p.kernel[1],
                p.strides[1],
                p.pads[1],
                p.pads[3],
                1,
                p.ceil_mode,
            )?;
            Ok(vec![x[0], x[1], h, w])
        }
        Op::GlobalAveragePool => {
            if x.len() < 3 {
                return Err(format!("input must have spatial dims, found {x:?}"));
            }
            let mut s = x.to_vec();
            for d in s.iter_mut().skip(2) {
                *d = 1;
            }
            Ok(s)
        }
        Op::ReduceMean { axes, keepdims } => {
            if axes.iter().any(|&a| a >= x.len() || a == 0) {
                return Err(format!(
                    "axes {axes:?} invalid for shape {x:?} (the batch axis cannot be reduced)"
                ));
            }
            let mut s = Vec::new();
            for (i, &d) in x.iter().enumerate() {
                if axes.contains(&i) {
                    if *keepdims {
                        s.push(1);
                    }
                } else {
                    s.push(d);
                }
            }
            Ok(s)
        }
        Op::Reshape { shape } => {
            let n: usize = x.iter().product();
            if shape.iter().product::<usize>() != n || shape.first() != x.first() {
                return Err(format!(
                    "cannot reshape {x:?} to {shape:?} keeping the batch axis"
                ));
            }
            Ok(shape.clone())
        }
        Op::Transpose { perm } => {
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..x.len()).collect::<Vec<_>>() || perm.first() != Some(&0) {
                return Err(format!(
                    "perm {perm:?} invalid for shape {x:?} (must keep the batch axis first)"
                ));
            }
            Ok(perm.iter().map(|&p| x[p]).collect())
        }
        Op::Concat { axis } => {
            let mut s = x.to_vec();
            if *axis >= s.len() || *axis == 0 {
                return Err(format!("axis {axis} invalid for shape {x:?}"));
            }
            for other in &ins[1..] {
                if other.len() != s.len()
                    || other
                        .iter()
                        .enumerate()
                        .any(|(i, &d)| i != *axis && d != s[i])
                {
                    return Err(format!(
                        "input shapes {x:?} and {other:?} differ off axis {axis}"
                    ));
                }
                s[*axis] += other[*axis];
            }
            Ok(s)
        }
        Op::Pad { pads, .. } => {
            let r = x.len();
            if pads.len() != 2 * r || pads[0] != 0 || pads[r] != 0 {
                return Err(format!(
                    "pads {pads:?} invalid for shape {x:?} (the batch axis cannot be padded)"
                ));
            }
            Ok(x.iter()
                .enumerate()
                .map(|(i, &d)| d + pads[i] + pads[i + r])
                .collect())
        }
        Op::Resize(r) => {
            rank4(x, "input")?;
            let h = (x[2] as f64 * r.scales[0] as f64).floor() as usize;
            let w = (x[3] as f64 * r.scales[1] as f64).floor() as usize;
            if h == 0 || w == 0 {
                return Err(format!(
                    "scales {:?} give an empty output from {x:?}",
                    r.scales
                ));
            }
            Ok(vec![x[0], x[1], h, w])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_output_size_matches_onnx_formula() {
        let c = Conv {
            strides: [2, 2],
            pads: [1, 1, 1, 1],
            dilations: [1, 1],
            group: 1,
        };
        let s = infer(&Op::Conv(c), &[&[1, 3, 28, 28], &[8, 3, 3, 3]], |_| false).unwrap();
        assert_eq!(s, vec![1, 8, 14, 14]);
    }

    #[test]
    fn ceil_mode_pooling_rounds_up() {
        let p = Pool {
            kernel: [2, 2],
            strides: [2, 2],
            pads: [0; 4],
            ceil_mode: true,
            count_include_pad: false,
        };
        assert_eq!(
            infer(&Op::MaxPool(p.clone()), &[&[1, 1, 5, 5]], |_| false).unwrap(),
            vec![1, 1, 3, 3]
        );
        let p = Pool {
            ceil_mode: false,
            ..p
        };
        assert_eq!(
            infer(&Op::MaxPool(p), &[&[1, 1, 5, 5]], |_| false).unwrap(),
            vec![1, 1, 2, 2]
        );
    }

    #[test]
    fn broadcast_follows_numpy() {
        assert_eq!(
            broadcast(&[1, 16, 4, 4], &[16, 1, 1]).unwrap(),
            vec![1, 16, 4, 4]
        );
        assert!(broadcast(&[1, 3], &[4]).is_err());
    }
}
