//! What every op's import shares: the ONNX node with its attributes ([`Ctx`]), its inputs as constants or
//! activations, and adding the IR node (with its shape inferred) to the graph.

use amp_device::ir::{self, Op};

use super::consts::ConstTensor;
use super::proto::{AttributeProto, NodeProto};
use super::{ImportError, Importer, Val};

/// The node being converted, for attribute access and errors.
pub(crate) struct Ctx<'a> {
    pub node: &'a NodeProto,
    pub name: String,
}

impl<'a> Ctx<'a> {
    pub(crate) fn err(&self, msg: impl Into<String>) -> ImportError {
        ImportError::Node {
            node: self.name.clone(),
            op: self.op().to_string(),
            msg: msg.into(),
        }
    }
    pub(crate) fn op(&self) -> &str {
        self.node.op_type.as_deref().unwrap_or("")
    }
    pub(crate) fn attr(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }
    pub(crate) fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).and_then(|a| a.i).unwrap_or(default)
    }
    pub(crate) fn float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).and_then(|a| a.f).unwrap_or(default)
    }
    pub(crate) fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    pub(crate) fn string(&self, name: &str, default: &str) -> String {
        self.attr(name)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_else(|| default.to_string())
    }
    pub(crate) fn input(&self, i: usize) -> Option<&'a str> {
        self.node
            .input
            .get(i)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }
    pub(crate) fn output(&self) -> Result<&'a str, ImportError> {
        self.node
            .output
            .first()
            .map(|s| s.as_str())
            .ok_or_else(|| self.err("has no output"))
    }
}

/// `axis` (negative counts from the end) as an index into a shape of `rank`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank as i64 {
        return Err(format!("axis {axis} out of range for rank {rank}"));
    }
    Ok(a as usize)
}

pub(crate) fn get_const(
    imp: &Importer,
    cx: &Ctx,
    i: usize,
) -> Result<Option<ConstTensor>, ImportError> {
    let Some(name) = cx.input(i) else {
        return Ok(None);
    };
    match imp.val(name)? {
        Val::Const(c) => Ok(Some(c.clone())),
        Val::Dyn(_) => Err(cx.err(format!(
            "input {i} (\"{name}\") must be a constant, but it is computed from the model's input"
        ))),
    }
}

/// ONNX Slice's `starts`, `ends`, `axes` and `steps` over a tensor of `shape`, resolved to the indices read
/// per axis (negative values count from the end and are clamped, as ONNX says). An empty result is refused:
/// amp has no empty tensors.
pub(crate) fn slice_ranges(
    shape: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: &[usize],
    steps: &[i64],
) -> Result<ir::Slice, String> {
    let mut sl = ir::Slice {
        starts: vec![0; shape.len()],
        steps: vec![1; shape.len()],
        lens: shape.to_vec(),
    };
    if starts.len() != axes.len() || ends.len() != axes.len() {
        return Err(format!(
            "{} starts and {} ends for {} axes",
            starts.len(),
            ends.len(),
            axes.len()
        ));
    }
    for (k, &ax) in axes.iter().enumerate() {
        let d = shape[ax] as i64;
        let step = steps.get(k).copied().unwrap_or(1);
        if step == 0 {
            return Err("slice step 0".into());
        }
        let (lo, hi) = if step > 0 { (0, d) } else { (-1, d - 1) };
        let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v }.clamp(lo, hi);
        let (s, e) = (norm(starts[k]), norm(ends[k]));
        let len = if step > 0 {
            (e - s + step - 1).max(0) / step
        } else {
            (s - e - step - 1).max(0) / -step
        };
        if len == 0 {
            return Err(format!(
                "axis {ax}: starts {} ends {} steps {step} select nothing of {d}",
                starts[k], ends[k]
            ));
        }
        (sl.starts[ax], sl.steps[ax], sl.lens[ax]) = (s as usize, step, len as usize);
    }
    Ok(sl)
}

/// An ONNX Slice node's starts, ends, axes (resolved against `rank`) and steps: attributes before opset 10,
/// constant inputs since.
pub(crate) type SliceArgs = (Vec<i64>, Vec<i64>, Vec<usize>, Vec<i64>);

pub(crate) fn slice_args(imp: &Importer, cx: &Ctx, rank: usize) -> Result<SliceArgs, ImportError> {
    let ints = |i: usize| -> Result<Option<Vec<i64>>, ImportError> {
        Ok(get_const(imp, cx, i)?.map(|c| c.to_i64()))
    };
    let (starts, ends, axes, steps) = if imp.opset < 10 {
        (cx.ints("starts"), cx.ints("ends"), cx.ints("axes"), None)
    } else {
        (ints(1)?, ints(2)?, ints(3)?, ints(4)?)
    };
    let (starts, ends) = (starts.unwrap_or_default(), ends.unwrap_or_default());
    let axes: Vec<usize> = axes
        .unwrap_or_else(|| (0..starts.len() as i64).collect())
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Result<_, _>>()
        .map_err(|m| cx.err(m))?;
    Ok((starts, ends, axes, steps.unwrap_or_default()))
}

/// The ONNX Slice node's ranges over its input of `shape`.
pub(crate) fn slice_of(
    imp: &Importer,
    cx: &Ctx,
    shape: &[usize],
) -> Result<ir::Slice, ImportError> {
    let (starts, ends, axes, steps) = slice_args(imp, cx, shape.len())?;
    slice_ranges(shape, &starts, &ends, &axes, &steps).map_err(|m| cx.err(m))
}

pub(crate) fn axes_of(imp: &Importer, cx: &Ctx) -> Result<Option<Vec<i64>>, ImportError> {
    // the axes became an input at opset 13 for Squeeze, Unsqueeze and ReduceSum, at 18 for the other reductions
    let since = match cx.op() {
        "ReduceMean" | "ReduceMax" | "ReduceMin" => 18,
        _ => 13,
    };
    if imp.opset >= since {
        Ok(get_const(imp, cx, 1)?.map(|a| a.to_i64()))
    } else {
        Ok(cx.ints("axes"))
    }
}

pub(crate) fn squeeze_shape(
    op: &str,
    shape: &[usize],
    axes: Option<&[i64]>,
) -> Result<Vec<usize>, String> {
    if op == "Unsqueeze" {
        let axes = axes.ok_or("Unsqueeze needs axes")?;
        let rank = shape.len() + axes.len();
        let mut norm: Vec<usize> = axes
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Result<_, _>>()?;
        norm.sort_unstable();
        let mut out = shape.to_vec();
        for a in norm {
            out.insert(a, 1);
        }
        Ok(out)
    } else {
        let norm: Vec<usize> = match axes {
            Some(a) => a
                .iter()
                .map(|&x| norm_axis(x, shape.len()))
                .collect::<Result<_, _>>()?,
            None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
        };
        for &a in &norm {
            if shape[a] != 1 {
                return Err(format!("cannot squeeze axis {a} of size {}", shape[a]));
            }
        }
        Ok(shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !norm.contains(i))
            .map(|(_, &d)| d)
            .collect())
    }
}

/// ONNX Reshape's target (0 copies the input dim, −1 is inferred).
pub(crate) fn reshape_target(input: &[usize], target: &[i64]) -> Result<Vec<usize>, String> {
    let n: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        match d {
            0 => out.push(*input.get(i).ok_or("0 in shape beyond the input's rank")?),
            -1 => {
                if infer.replace(i).is_some() {
                    return Err("more than one -1 in the target shape".into());
                }
                out.push(1);
            }
            d if d > 0 => out.push(d as usize),
            d => return Err(format!("invalid dim {d} in the target shape")),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || n % known != 0 {
            return Err(format!("cannot infer -1 reshaping {input:?} to {target:?}"));
        }
        out[i] = n / known;
    }
    if out.iter().product::<usize>() != n {
        return Err(format!(
            "cannot reshape {input:?} ({n} elements) to {target:?}"
        ));
    }
    Ok(out)
}

pub(crate) fn add_node(
    imp: &mut Importer,
    cx: &Ctx,
    op: Op,
    inputs: Vec<usize>,
) -> Result<(), ImportError> {
    add_node_as(imp, cx, cx.name.clone(), cx.output()?, op, inputs)
}

/// Adds an IR node named `name` writing the ONNX tensor `out` (one of several a node like Split writes).
pub(crate) fn add_node_as(
    imp: &mut Importer,
    cx: &Ctx,
    name: String,
    out: &str,
    op: Op,
    inputs: Vec<usize>,
) -> Result<(), ImportError> {
    let out_name = out.to_string();
    let shapes: Vec<&[usize]> = inputs
        .iter()
        .map(|&t| imp.g.tensors[t].shape.as_slice())
        .collect();
    let shape = op.def().infer(&shapes).map_err(|m| cx.err(m))?;
    let t = imp.g.add_tensor(out_name.clone(), shape, None);
    imp.g.nodes.push(ir::Node {
        name,
        op,
        inputs,
        output: t,
    });
    imp.vals.insert(out_name, Val::Dyn(t));
    Ok(())
}

pub(crate) fn dyn_input(imp: &Importer, cx: &Ctx, i: usize) -> Result<usize, ImportError> {
    let name = cx
        .input(i)
        .ok_or_else(|| cx.err(format!("input {i} is missing")))?;
    match imp.val(name)? {
        Val::Dyn(t) => Ok(*t),
        Val::Const(_) => Err(cx.err(format!(
            "input {i} (\"{name}\") is a constant where amp expects an activation"
        ))),
    }
}

/// The input's shape, the weight's, and the IR inputs `[x, weight, bias?]` of a 2-D op with constant weights.
pub(crate) type ConvOperands = (Vec<usize>, Vec<usize>, Vec<ir::TensorId>);

/// The input, weight and optional bias of a 2-D op with constant weights (Conv, ConvTranspose); `what` names
/// the op family in errors.
pub(crate) fn conv_operands(
    imp: &mut Importer,
    cx: &Ctx,
    what: &str,
) -> Result<ConvOperands, ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let s = imp.shape_of(x).to_vec();
    let w = get_const(imp, cx, 1)?.ok_or_else(|| cx.err("weight is missing"))?;
    let ws = w.shape.clone();
    if s.len() != 4 || ws.len() != 4 {
        return Err(cx.err(format!(
            "input {s:?} / weight {ws:?}: amp handles 2-D {what} (NCHW)"
        )));
    }
    let mut ins = vec![x, imp.tensor(cx.input(1).unwrap_or_default())?];
    if let Some(b) = cx.input(2) {
        get_const(imp, cx, 2)?;
        ins.push(imp.tensor(b)?);
    }
    Ok((s, ws, ins))
}

/// The `pads` attribute of a 2-D op: top, left, bottom, right (none: zeros).
pub(crate) fn explicit_pads(cx: &Ctx) -> Result<[usize; 4], ImportError> {
    let p = cx.ints("pads").unwrap_or(vec![0; 4]);
    if p.len() != 4 || p.iter().any(|&v| v < 0) {
        return Err(cx.err(format!(
            "pads {p:?}: amp handles 2-D ops with 4 non-negative pads"
        )));
    }
    Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
}

pub(crate) fn spatial_pads(
    cx: &Ctx,
    in_hw: [usize; 2],
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
) -> Result<[usize; 4], ImportError> {
    let auto = cx.string("auto_pad", "NOTSET");
    match auto.as_str() {
        "NOTSET" => explicit_pads(cx),
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut pads = [0; 4];
            for i in 0..2 {
                let out = in_hw[i].div_ceil(s[i]);
                let eff = d[i] * (k[i] - 1) + 1;
                let total = ((out - 1) * s[i] + eff).saturating_sub(in_hw[i]);
                let (small, big) = (total / 2, total - total / 2);
                if auto == "SAME_UPPER" {
                    pads[i] = small;
                    pads[i + 2] = big;
                } else {
                    pads[i] = big;
                    pads[i + 2] = small;
                }
            }
            Ok(pads)
        }
        other => Err(cx.err(format!("auto_pad {other:?} is not supported"))),
    }
}

pub(crate) fn pair(cx: &Ctx, name: &str, default: usize) -> Result<[usize; 2], ImportError> {
    match cx.ints(name) {
        None => Ok([default; 2]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x > 0) => Ok([v[0] as usize, v[1] as usize]),
        Some(v) => Err(cx.err(format!("{name} {v:?}: amp handles 2-D ops only"))),
    }
}

/// An element-wise op of two inputs, either of which may be a constant (of any broadcastable shape).
pub(crate) fn binary(imp: &mut Importer, cx: &Ctx, op: Op) -> Result<(), ImportError> {
    let a = imp.tensor(cx.input(0).ok_or_else(|| cx.err("missing input"))?)?;
    let b = imp.tensor(cx.input(1).ok_or_else(|| cx.err("missing input"))?)?;
    add_node(imp, cx, op, vec![a, b])
}

/// An op of one activation input.
pub(crate) fn unary(imp: &mut Importer, cx: &Ctx, op: Op) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    add_node(imp, cx, op, vec![x])
}

/// Binds the node's output to an existing value: the op computes nothing (Identity, Dropout at inference,
/// a one-input Min).
pub(crate) fn alias(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    imp.vals.insert(cx.output()?.to_string(), Val::Dyn(x));
    Ok(())
}

/// The 2-D window of a MaxPool or AveragePool node.
pub(crate) fn pool_window(imp: &Importer, cx: &Ctx) -> Result<ir::Pool, ImportError> {
    let s = imp.shape_of(dyn_input(imp, cx, 0)?).to_vec();
    if s.len() != 4 {
        return Err(cx.err(format!("input shape {s:?}: amp handles 2-D pooling (NCHW)")));
    }
    let kernel = pair(cx, "kernel_shape", 1)?;
    let strides = pair(cx, "strides", 1)?;
    if pair(cx, "dilations", 1)? != [1, 1] {
        return Err(cx.err("dilated pooling is not supported"));
    }
    Ok(ir::Pool {
        kernel,
        strides,
        pads: spatial_pads(cx, [s[2], s[3]], kernel, strides, [1, 1])?,
        ceil_mode: cx.int("ceil_mode", 0) != 0,
        count_include_pad: cx.int("count_include_pad", 0) != 0,
    })
}
