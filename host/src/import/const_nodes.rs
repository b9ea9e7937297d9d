//! ONNX nodes computed at import: those whose inputs are all constants (initializers, `Constant` nodes, the
//! Shape/Gather/Unsqueeze/Concat chains exporters write), and `Shape`, whose value the static shapes fix.

use amp_device::ir::Connective;

use super::consts::{ConstData, ConstTensor};
use super::node::{axes_of, get_const, norm_axis, reshape_target, slice_of, squeeze_shape, Ctx};
use super::{ImportError, Importer, Val};

/// `Shape` of a constant or of an activation (its shape is known at import).
pub(crate) fn const_shape(imp: &Importer, cx: &Ctx) -> Result<ConstTensor, ImportError> {
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

/// The value of a node whose inputs are all constants, computed at import (None: the op does not fold).
pub(crate) fn fold_const(imp: &Importer, cx: &Ctx) -> Result<Option<ConstTensor>, ImportError> {
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
                9 => x.truth(|v| v != 0.0),
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
            x.slice(&slice_of(imp, cx, &x.shape)?)
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
        "Range" => {
            let (start, limit, delta) = (req(0)?, req(1)?, req(2)?);
            start.range(&limit, &delta).map_err(e)?
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
        "Min" if cx.node.input.len() == 2 => req(0)?.binary(&req(1)?, f64::min).map_err(e)?,
        "Max" if cx.node.input.len() == 2 => req(0)?.binary(&req(1)?, f64::max).map_err(e)?,
        "Sub" => req(0)?.binary(&req(1)?, |a, b| a - b).map_err(e)?,
        "Mul" => req(0)?.binary(&req(1)?, |a, b| a * b).map_err(e)?,
        "Equal" | "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual" => {
            let holds: fn(f64, f64) -> bool = match cx.op() {
                "Equal" => |a, b| a == b,
                "Greater" => |a, b| a > b,
                "GreaterOrEqual" => |a, b| a >= b,
                "Less" => |a, b| a < b,
                _ => |a, b| a <= b,
            };
            let r = req(0)?.binary(&req(1)?, |a, b| f64::from(u8::from(holds(a, b))));
            r.map_err(e)?.truth(|v| v != 0.0)
        }
        "Not" => req(0)?.truth(|v| v == 0.0),
        "And" | "Or" | "Xor" => {
            let op = Connective::from_onnx(cx.op()).ok_or_else(|| cx.err("is not a connective"))?;
            let r = req(0)?.binary(&req(1)?, |a, b| {
                f64::from(u8::from(op.holds(a != 0.0, b != 0.0)))
            });
            r.map_err(e)?.truth(|v| v != 0.0)
        }
        "Where" => req(0)?.select(&req(1)?, &req(2)?).map_err(e)?,
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
