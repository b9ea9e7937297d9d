//! One small function per ONNX op, registered in [`SUPPORTED`] / [`convert`]. Ops whose inputs are all
//! constants fold at import; the rest become IR nodes.

use amp_device::ir::{self, CoordMode, NearestMode, Op, Pool, ResizeMode};

use super::consts::{ConstData, ConstTensor};
use super::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto};
use super::{ImportError, Importer, Val};

/// Every ONNX op type the importer handles.
pub const SUPPORTED: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LeakyRelu",
    "MatMul",
    "MaxPool",
    "Mul",
    "Pad",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Resize",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
    "Upsample",
];

/// The node being converted, for attribute access and errors.
pub(crate) struct Ctx<'a> {
    pub node: &'a NodeProto,
    pub name: String,
}

impl<'a> Ctx<'a> {
    fn err(&self, msg: impl Into<String>) -> ImportError {
        ImportError::Node {
            node: self.name.clone(),
            op: self.op().to_string(),
            msg: msg.into(),
        }
    }
    fn op(&self) -> &str {
        self.node.op_type.as_deref().unwrap_or("")
    }
    fn attr(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).and_then(|a| a.i).unwrap_or(default)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).and_then(|a| a.f).unwrap_or(default)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str, default: &str) -> String {
        self.attr(name)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_else(|| default.to_string())
    }
    fn input(&self, i: usize) -> Option<&'a str> {
        self.node
            .input
            .get(i)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }
    fn output(&self) -> Result<&'a str, ImportError> {
        self.node
            .output
            .first()
            .map(|s| s.as_str())
            .ok_or_else(|| self.err("has no output"))
    }
}

fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank as i64 {
        return Err(format!("axis {axis} out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// Converts one node: folds it when its inputs are constant, else adds IR nodes.
pub(crate) fn convert(imp: &mut Importer, node: &NodeProto) -> Result<(), ImportError> {
    let op_type = node.op_type.clone().unwrap_or_default();
    let out0 = node.output.first().cloned().unwrap_or_default();
    let name = node
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{op_type}_{out0}"));
    let cx = Ctx { node, name };
    let domain = node.domain.clone().unwrap_or_default();
    if !(domain.is_empty() || domain == "ai.onnx") {
        return Err(ImportError::Unsupported {
            node: cx.name,
            op: op_type,
            domain: format!(" of domain {domain:?}"),
        });
    }
    if !SUPPORTED.contains(&op_type.as_str()) {
        return Err(ImportError::Unsupported {
            node: cx.name,
            op: op_type,
            domain: String::new(),
        });
    }
    if node.output.iter().skip(1).any(|o| !o.is_empty())
        && !matches!(op_type.as_str(), "Dropout" | "BatchNormalization")
    {
        return Err(cx.err("has more than one output; amp handles single-output ops"));
    }
    // Constant folding
    let inputs: Vec<&str> = node.input.iter().map(|s| s.as_str()).collect();
    let all_const = inputs
        .iter()
        .all(|i| i.is_empty() || matches!(imp.vals.get(*i), Some(Val::Const(_))));
    if op_type == "Shape" {
        let t = const_shape(imp, &cx)?;
        imp.vals.insert(cx.output()?.to_string(), Val::Const(t));
        return Ok(());
    }
    if all_const || op_type == "Constant" {
        if let Some(v) = fold_const(imp, &cx)? {
            imp.vals.insert(cx.output()?.to_string(), Val::Const(v));
            return Ok(());
        }
    }
    lower(imp, &cx, &op_type)
}

fn get_const(imp: &Importer, cx: &Ctx, i: usize) -> Result<Option<ConstTensor>, ImportError> {
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

fn const_shape(imp: &Importer, cx: &Ctx) -> Result<ConstTensor, ImportError> {
    let name = cx.input(0).ok_or_else(|| cx.err("has no input"))?;
    let shape: Vec<i64> = match imp.val(name)? {
        Val::Const(c) => c.shape.iter().map(|&d| d as i64).collect(),
        Val::Dyn(t) => imp.shape_of(*t).iter().map(|&d| d as i64).collect(),
    };
    let r = shape.len() as i64;
    let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clampi(cx.int("start", 0));
    let end = cx
        .attr("end")
        .and_then(|a| a.i)
        .map(clampi)
        .unwrap_or(r as usize);
    let s = shape[start..end.max(start)].to_vec();
    Ok(ConstTensor::i64(vec![s.len()], s))
}

fn fold_const(imp: &Importer, cx: &Ctx) -> Result<Option<ConstTensor>, ImportError> {
    let c = |i: usize| get_const(imp, cx, i);
    let req = |i: usize| -> Result<ConstTensor, ImportError> {
        c(i)?.ok_or_else(|| cx.err(format!("input {i} is missing")))
    };
    let e = |m: String| cx.err(m);
    let v = match cx.op() {
        "Constant" => {
            let a = cx
                .node
                .attribute
                .first()
                .ok_or_else(|| cx.err("has no value"))?;
            match a.name.as_deref() {
                Some("value") => ConstTensor::from_proto(
                    a.t.as_ref()
                        .ok_or_else(|| cx.err("value is not a tensor"))?,
                )
                .map_err(e)?,
                Some("value_float") => ConstTensor::f32(vec![], vec![a.f.unwrap_or(0.0)]),
                Some("value_floats") => ConstTensor::f32(vec![a.floats.len()], a.floats.clone()),
                Some("value_int") => ConstTensor::i64(vec![], vec![a.i.unwrap_or(0)]),
                Some("value_ints") => ConstTensor::i64(vec![a.ints.len()], a.ints.clone()),
                other => return Err(cx.err(format!("attribute {other:?} is not supported"))),
            }
        }
        "Identity" | "Dropout" => req(0)?,
        "Cast" => {
            let x = req(0)?;
            match cx.int("to", 1) {
                1 | 10 | 11 => ConstTensor::f32(x.shape.clone(), x.to_f32()),
                _ => ConstTensor::i64(x.shape.clone(), x.to_i64()),
            }
        }
        "Gather" => {
            let x = req(0)?;
            let axis = norm_axis(cx.int("axis", 0), x.shape.len()).map_err(e)?;
            x.gather(axis, &req(1)?).map_err(e)?
        }
        "Unsqueeze" | "Squeeze" => {
            let x = req(0)?;
            let axes = axes_of(imp, cx)?;
            let shape = squeeze_shape(cx.op(), &x.shape, axes.as_deref()).map_err(e)?;
            ConstTensor {
                shape,
                data: x.data,
            }
        }
        "Concat" => {
            let parts: Vec<ConstTensor> = (0..cx.node.input.len())
                .map(req)
                .collect::<Result<_, _>>()?;
            let rank = parts[0].shape.len();
            let axis = norm_axis(cx.int("axis", 0), rank.max(1)).map_err(e)?;
            if rank != 1 || axis != 0 {
                return Ok(None);
            }
            let float = parts.iter().any(|p| p.is_float());
            let n = parts.iter().map(|p| p.numel()).sum();
            if float {
                ConstTensor::f32(vec![n], parts.iter().flat_map(|p| p.to_f32()).collect())
            } else {
                ConstTensor::i64(vec![n], parts.iter().flat_map(|p| p.to_i64()).collect())
            }
        }
        "Slice" => {
            let x = req(0)?;
            let (starts, ends, axes, steps) = if imp.opset < 10 {
                (
                    cx.ints("starts").unwrap_or_default(),
                    cx.ints("ends").unwrap_or_default(),
                    cx.ints("axes"),
                    None,
                )
            } else {
                (
                    req(1)?.to_i64(),
                    req(2)?.to_i64(),
                    c(3)?.map(|a| a.to_i64()),
                    c(4)?.map(|s| s.to_i64()),
                )
            };
            let axes: Vec<usize> = axes
                .unwrap_or_else(|| (0..starts.len() as i64).collect())
                .iter()
                .map(|&a| norm_axis(a, x.shape.len()))
                .collect::<Result<_, _>>()
                .map_err(e)?;
            x.slice(&starts, &ends, &axes, &steps.unwrap_or_default())
                .map_err(e)?
        }
        "ConstantOfShape" => {
            let shape: Vec<usize> = req(0)?
                .to_i64()
                .iter()
                .map(|&d| d.max(0) as usize)
                .collect();
            let n = shape.iter().product();
            let value = cx
                .attr("value")
                .and_then(|a| a.t.as_ref())
                .map(ConstTensor::from_proto)
                .transpose()
                .map_err(e)?
                .unwrap_or(ConstTensor::f32(vec![1], vec![0.0]));
            match value.data {
                ConstData::F32(v) => ConstTensor::f32(shape, vec![v[0]; n]),
                ConstData::I64(v) => ConstTensor::i64(shape, vec![v[0]; n]),
            }
        }
        "Reshape" => {
            let x = req(0)?;
            let shape = reshape_target(&x.shape, &req(1)?.to_i64()).map_err(e)?;
            ConstTensor {
                shape,
                data: x.data,
            }
        }
        "Transpose" => {
            let x = req(0)?;
            let perm: Vec<usize> = cx
                .ints("perm")
                .map(|p| p.iter().map(|&v| v as usize).collect())
                .unwrap_or_else(|| (0..x.shape.len()).rev().collect());
            x.transpose(&perm).map_err(e)?
        }
        "Flatten" => {
            let x = req(0)?;
            let axis = norm_axis(cx.int("axis", 1), x.shape.len() + 1).map_err(e)?;
            let a: usize = x.shape[..axis].iter().product();
            ConstTensor {
                shape: vec![a, x.numel() / a.max(1)],
                data: x.data,
            }
        }
        "Add" => req(0)?.binary(&req(1)?, |a, b| a + b).map_err(e)?,
        "Sub" => req(0)?.binary(&req(1)?, |a, b| a - b).map_err(e)?,
        "Mul" => req(0)?.binary(&req(1)?, |a, b| a * b).map_err(e)?,
        "Div" => {
            let (a, b) = (req(0)?, req(1)?);
            let int = !a.is_float() && !b.is_float();
            a.binary(&b, |x, y| if int { (x / y).trunc() } else { x / y })
                .map_err(e)?
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

fn axes_of(imp: &Importer, cx: &Ctx) -> Result<Option<Vec<i64>>, ImportError> {
    if imp.opset >= 13 && cx.op() != "ReduceMean" || cx.op() == "ReduceMean" && imp.opset >= 18 {
        Ok(get_const(imp, cx, 1)?.map(|a| a.to_i64()))
    } else {
        Ok(cx.ints("axes"))
    }
}

fn squeeze_shape(op: &str, shape: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>, String> {
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
fn reshape_target(input: &[usize], target: &[i64]) -> Result<Vec<usize>, String> {
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

fn add_node(imp: &mut Importer, cx: &Ctx, op: Op, inputs: Vec<usize>) -> Result<(), ImportError> {
    let out_name = cx.output()?.to_string();
    let shapes: Vec<&[usize]> = inputs
        .iter()
        .map(|&t| imp.g.tensors[t].shape.as_slice())
        .collect();
    let shape = ir::infer_shape(&op, &shapes, |_| false).map_err(|m| cx.err(m))?;
    let t = imp.g.add_tensor(out_name.clone(), shape, None);
    imp.g.nodes.push(ir::Node {
        name: cx.name.clone(),
        op,
        inputs,
        output: t,
    });
    imp.vals.insert(out_name, Val::Dyn(t));
    Ok(())
}

fn dyn_input(imp: &Importer, cx: &Ctx, i: usize) -> Result<usize, ImportError> {
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

fn spatial_pads(
    cx: &Ctx,
    in_hw: [usize; 2],
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
) -> Result<[usize; 4], ImportError> {
    let auto = cx.string("auto_pad", "NOTSET");
    match auto.as_str() {
        "NOTSET" => {
            let p = cx.ints("pads").unwrap_or(vec![0; 4]);
            if p.len() != 4 || p.iter().any(|&v| v < 0) {
                return Err(cx.err(format!(
                    "pads {p:?}: amp handles 2-D ops with 4 non-negative pads"
                )));
            }
            Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
        }
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

fn pair(cx: &Ctx, name: &str, default: usize) -> Result<[usize; 2], ImportError> {
    match cx.ints(name) {
        None => Ok([default; 2]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x > 0) => Ok([v[0] as usize, v[1] as usize]),
        Some(v) => Err(cx.err(format!("{name} {v:?}: amp handles 2-D ops only"))),
    }
}

fn lower(imp: &mut Importer, cx: &Ctx, op_type: &str) -> Result<(), ImportError> {
    match op_type {
        "Conv" => lower_conv(imp, cx),
        "Gemm" => lower_gemm(imp, cx),
        "MatMul" => lower_matmul(imp, cx),
        "Add" | "Sub" | "Mul" | "Div" => {
            let a = imp.tensor(cx.input(0).ok_or_else(|| cx.err("missing input"))?)?;
            let b = imp.tensor(cx.input(1).ok_or_else(|| cx.err("missing input"))?)?;
            let op = match op_type {
                "Add" => Op::Add,
                "Sub" => Op::Sub,
                "Mul" => Op::Mul,
                _ => Op::Div,
            };
            add_node(imp, cx, op, vec![a, b])
        }
        "BatchNormalization" => {
            let x = dyn_input(imp, cx, 0)?;
            let p: Vec<Vec<f32>> = (1..5)
                .map(|i| get_const(imp, cx, i)?.map(|c| c.to_f32()).ok_or_else(|| cx.err(format!("input {i} is missing"))))
                .collect::<Result<_, _>>()?;
            let eps = cx.float("epsilon", 1e-5);
            let scale: Vec<f32> = (0..p[0].len()).map(|c| (p[0][c] as f64 / (p[3][c] as f64 + eps as f64).sqrt()) as f32).collect();
            let shift: Vec<f32> = (0..p[0].len()).map(|c| (p[1][c] as f64 - p[2][c] as f64 * scale[c] as f64) as f32).collect();
            let n = scale.len();
            let s = imp.g.add_tensor(format!("{}.scale", cx.name), vec![n], Some(scale));
            let b = imp.g.add_tensor(format!("{}.shift", cx.name), vec![n], Some(shift));
            add_node(imp, cx, Op::ScaleShift, vec![x, s, b])
        }
        "Relu" | "Sigmoid" | "Tanh" | "HardSwish" | "LeakyRelu" | "HardSigmoid" => {
            let x = dyn_input(imp, cx, 0)?;
            let op = match op_type {
                "Relu" => Op::Relu,
                "Sigmoid" => Op::Sigmoid,
                "Tanh" => Op::Tanh,
                "HardSwish" => Op::HardSwish,
                "LeakyRelu" => Op::LeakyRelu { alpha: cx.float("alpha", 0.01) },
                _ => Op::HardSigmoid { alpha: cx.float("alpha", 0.2), beta: cx.float("beta", 0.5) },
            };
            add_node(imp, cx, op, vec![x])
        }
        "Clip" => {
            let x = dyn_input(imp, cx, 0)?;
            let (min, max) = if imp.opset < 11 {
                (cx.float("min", f32::NEG_INFINITY), cx.float("max", f32::INFINITY))
            } else {
                let scalar = |c: Option<ConstTensor>, d: f32| c.map(|t| t.to_f32().first().copied().unwrap_or(d)).unwrap_or(d);
                (scalar(get_const(imp, cx, 1)?, f32::NEG_INFINITY), scalar(get_const(imp, cx, 2)?, f32::INFINITY))
            };
            add_node(imp, cx, Op::Clip { min, max }, vec![x])
        }
        "Softmax" => {
            let x = dyn_input(imp, cx, 0)?;
            let shape = imp.shape_of(x).to_vec();
            let default = if imp.opset >= 13 { -1 } else { 1 };
            let axis = norm_axis(cx.int("axis", default), shape.len()).map_err(|m| cx.err(m))?;
            if imp.opset < 13 && shape[axis + 1..].iter().any(|&d| d != 1) {
                return Err(cx.err("opset < 13 Softmax over more than one axis (flattened) is not supported"));
            }
            add_node(imp, cx, Op::Softmax { axis }, vec![x])
        }
        "MaxPool" | "AveragePool" => {
            let x = dyn_input(imp, cx, 0)?;
            let s = imp.shape_of(x).to_vec();
            if s.len() != 4 {
                return Err(cx.err(format!("input shape {s:?}: amp handles 2-D pooling (NCHW)")));
            }
            let kernel = pair(cx, "kernel_shape", 1)?;
            let strides = pair(cx, "strides", 1)?;
            if pair(cx, "dilations", 1)? != [1, 1] {
                return Err(cx.err("dilated pooling is not supported"));
            }
            let pads = spatial_pads(cx, [s[2], s[3]], kernel, strides, [1, 1])?;
            let p = Pool {
                kernel,
                strides,
                pads,
                ceil_mode: cx.int("ceil_mode", 0) != 0,
                count_include_pad: cx.int("count_include_pad", 0) != 0,
            };
            let op = if op_type == "MaxPool" { Op::MaxPool(p) } else { Op::AveragePool(p) };
            add_node(imp, cx, op, vec![x])
        }
        "GlobalAveragePool" => {
            let x = dyn_input(imp, cx, 0)?;
            add_node(imp, cx, Op::GlobalAveragePool, vec![x])
        }
        "ReduceMean" => {
            let x = dyn_input(imp, cx, 0)?;
            let rank = imp.shape_of(x).len();
            let axes = axes_of(imp, cx)?.unwrap_or_else(|| (0..rank as i64).collect());
            let mut axes: Vec<usize> = axes.iter().map(|&a| norm_axis(a, rank)).collect::<Result<_, _>>().map_err(|m| cx.err(m))?;
            axes.sort_unstable();
            add_node(imp, cx, Op::ReduceMean { axes, keepdims: cx.int("keepdims", 1) != 0 }, vec![x])
        }
        "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => {
            let x = dyn_input(imp, cx, 0)?;
            let s = imp.shape_of(x).to_vec();
            let target = match op_type {
                "Flatten" => {
                    let axis = norm_axis(cx.int("axis", 1), s.len() + 1).map_err(|m| cx.err(m))?;
                    if axis == 0 {
                        return Err(cx.err("Flatten with axis 0 merges the batch axis, which amp does not support"));
                    }
                    let a: usize = s[..axis].iter().product();
                    vec![a, s.iter().product::<usize>() / a]
                }
                "Reshape" => {
                    let t = get_const(imp, cx, 1)?.ok_or_else(|| cx.err("shape input is missing"))?;
                    reshape_target(&s, &t.to_i64()).map_err(|m| cx.err(m))?
                }
                _ => squeeze_shape(op_type, &s, axes_of(imp, cx)?.as_deref()).map_err(|m| cx.err(m))?,
            };
            if target.first() != Some(&1) || s.first() != Some(&1) {
                return Err(cx.err(format!("reshaping {s:?} to {target:?} moves the batch axis, which amp does not support")));
            }
            add_node(imp, cx, Op::Reshape { shape: target }, vec![x])
        }
        "Transpose" => {
            let x = dyn_input(imp, cx, 0)?;
            let r = imp.shape_of(x).len();
            let perm: Vec<usize> = cx
                .ints("perm")
                .map(|p| p.iter().map(|&v| v as usize).collect())
                .unwrap_or_else(|| (0..r).rev().collect());
            add_node(imp, cx, Op::Transpose { perm }, vec![x])
        }
        "Concat" => {
            let ins: Vec<usize> = (0..cx.node.input.len()).map(|i| dyn_input(imp, cx, i)).collect::<Result<_, _>>()?;
            let r = imp.shape_of(ins[0]).len();
            let axis = norm_axis(cx.int("axis", 1), r).map_err(|m| cx.err(m))?;
            add_node(imp, cx, Op::Concat { axis }, ins)
        }
        "Pad" => {
            let x = dyn_input(imp, cx, 0)?;
            let mode = cx.string("mode", "constant");
            if mode != "constant" {
                return Err(cx.err(format!("mode {mode:?} is not supported (only constant)")));
            }
            let (pads, value) = if imp.opset < 11 {
                (cx.ints("pads").unwrap_or_default(), cx.float("value", 0.0))
            } else {
                if cx.input(3).is_some() {
                    return Err(cx.err("the axes input is not supported"));
                }
                let p = get_const(imp, cx, 1)?.ok_or_else(|| cx.err("pads input is missing"))?.to_i64();
                let v = get_const(imp, cx, 2)?.map(|c| c.to_f32()[0]).unwrap_or(0.0);
                (p, v)
            };
            if pads.iter().any(|&p| p < 0) {
                return Err(cx.err(format!("negative pads {pads:?} are not supported")));
            }
            add_node(imp, cx, Op::Pad { pads: pads.iter().map(|&p| p as usize).collect(), value }, vec![x])
        }
        "Resize" | "Upsample" => lower_resize(imp, cx),
        "Identity" | "Dropout" => {
            let x = dyn_input(imp, cx, 0)?;
            imp.vals.insert(cx.output()?.to_string(), Val::Dyn(x));
            Ok(())
        }
        "Shape" | "Gather" | "Cast" | "Slice" | "ConstantOfShape" | "Constant" => Err(cx.err(
            "is computed from the model's input at run time; amp folds it only when its inputs are constant",
        )),
        other => Err(ImportError::Unsupported { node: cx.name.clone(), op: other.to_string(), domain: String::new() }),
    }
}

fn lower_conv(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let s = imp.shape_of(x).to_vec();
    let w = get_const(imp, cx, 1)?.ok_or_else(|| cx.err("weight is missing"))?;
    if s.len() != 4 || w.shape.len() != 4 {
        return Err(cx.err(format!(
            "input {s:?} / weight {:?}: amp handles 2-D convolutions (NCHW)",
            w.shape
        )));
    }
    let k = [w.shape[2], w.shape[3]];
    let strides = pair(cx, "strides", 1)?;
    let dilations = pair(cx, "dilations", 1)?;
    let pads = spatial_pads(cx, [s[2], s[3]], k, strides, dilations)?;
    let group = cx.int("group", 1).max(1) as usize;
    let wt = imp.tensor(cx.input(1).unwrap_or_default())?;
    let mut ins = vec![x, wt];
    if let Some(b) = cx.input(2) {
        get_const(imp, cx, 2)?;
        ins.push(imp.tensor(b)?);
    }
    add_node(
        imp,
        cx,
        Op::Conv(ir::Conv {
            strides,
            pads,
            dilations,
            group,
        }),
        ins,
    )
}

fn lower_gemm(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    if cx.int("transA", 0) != 0 {
        return Err(cx.err("transA=1 is not supported"));
    }
    let b = get_const(imp, cx, 1)?.ok_or_else(|| cx.err("B is missing"))?;
    if b.shape.len() != 2 {
        return Err(cx.err(format!("B has shape {:?}; expected a matrix", b.shape)));
    }
    let alpha = cx.float("alpha", 1.0);
    let beta = cx.float("beta", 1.0);
    let bv = b.to_f32();
    let (k, n) = if cx.int("transB", 0) != 0 {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    let w: Vec<f32> = if cx.int("transB", 0) != 0 {
        bv.iter().map(|v| v * alpha).collect()
    } else {
        (0..n)
            .flat_map(|j| (0..k).map(move |p| (j, p)))
            .map(|(j, p)| bv[p * n + j] * alpha)
            .collect()
    };
    let wname = cx.input(1).unwrap_or_default().to_string();
    let wt = imp.g.add_tensor(wname, vec![n, k], Some(w));
    let mut ins = vec![x, wt];
    if let Some(c) = get_const(imp, cx, 2)? {
        let cv = c.to_f32();
        let bias: Vec<f32> = match cv.len() {
            1 => vec![cv[0] * beta; n],
            l if l == n => cv.iter().map(|v| v * beta).collect(),
            _ => {
                return Err(cx.err(format!(
                    "C has shape {:?}; amp handles a bias of [{n}] or a scalar",
                    c.shape
                )))
            }
        };
        ins.push(
            imp.g
                .add_tensor(cx.input(2).unwrap_or_default(), vec![n], Some(bias)),
        );
    }
    add_node(imp, cx, Op::Gemm, ins)
}

fn lower_matmul(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let a = dyn_input(imp, cx, 0)?;
    let bname = cx.input(1).ok_or_else(|| cx.err("B is missing"))?;
    match imp.val(bname)?.clone() {
        Val::Const(b) if b.shape.len() == 2 => {
            let (k, n) = (b.shape[0], b.shape[1]);
            let bv = b.to_f32();
            let w: Vec<f32> = (0..n)
                .flat_map(|j| (0..k).map(move |p| (j, p)))
                .map(|(j, p)| bv[p * n + j])
                .collect();
            let wt = imp.g.add_tensor(bname, vec![n, k], Some(w));
            add_node(imp, cx, Op::Gemm, vec![a, wt])
        }
        Val::Const(b) => Err(cx.err(format!(
            "constant B of shape {:?}: amp handles a constant matrix or an activation",
            b.shape
        ))),
        Val::Dyn(b) => add_node(imp, cx, Op::MatMul, vec![a, b]),
    }
}

fn lower_resize(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let s = imp.shape_of(x).to_vec();
    if s.len() != 4 {
        return Err(cx.err(format!("input {s:?}: amp resizes NCHW tensors")));
    }
    let (scales_in, sizes_in) = if cx.op() == "Upsample" || imp.opset < 11 {
        (
            get_const(imp, cx, 1)?
                .map(|c| c.to_f32())
                .or_else(|| cx.attr("scales").map(|a| a.floats.clone())),
            None,
        )
    } else {
        (
            get_const(imp, cx, 2)?
                .map(|c| c.to_f32())
                .filter(|v| !v.is_empty()),
            get_const(imp, cx, 3)?.map(|c| c.to_i64()),
        )
    };
    let scales: [f32; 2] = match (scales_in, sizes_in) {
        (Some(sc), _) if sc.len() == 4 => {
            if sc[0] != 1.0 || sc[1] != 1.0 {
                return Err(cx.err("resizing the batch or channel axis is not supported"));
            }
            [sc[2], sc[3]]
        }
        (_, Some(sz)) if sz.len() == 4 => [sz[2] as f32 / s[2] as f32, sz[3] as f32 / s[3] as f32],
        _ => return Err(cx.err("needs 4 scales or 4 sizes")),
    };
    let mode = match cx.string("mode", "nearest").as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" | "bilinear" => ResizeMode::Linear,
        m => return Err(cx.err(format!("mode {m:?} is not supported (nearest, linear)"))),
    };
    let default_coord = if cx.op() == "Upsample" || imp.opset < 11 {
        "asymmetric"
    } else {
        "half_pixel"
    };
    let coord = match cx
        .string("coordinate_transformation_mode", default_coord)
        .as_str()
    {
        "half_pixel" => CoordMode::HalfPixel,
        "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
        "asymmetric" => CoordMode::Asymmetric,
        "align_corners" => CoordMode::AlignCorners,
        m => {
            return Err(cx.err(format!(
                "coordinate_transformation_mode {m:?} is not supported"
            )))
        }
    };
    let default_nearest = if cx.op() == "Upsample" || imp.opset < 11 {
        "floor"
    } else {
        "round_prefer_floor"
    };
    let nearest = match cx.string("nearest_mode", default_nearest).as_str() {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        m => return Err(cx.err(format!("nearest_mode {m:?} is not supported"))),
    };
    let _ = AttributeType::Float;
    add_node(
        imp,
        cx,
        Op::Resize(ir::Resize {
            mode,
            coord,
            nearest,
            scales,
        }),
        vec![x],
    )
}
