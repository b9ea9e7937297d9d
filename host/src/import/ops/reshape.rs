//! ONNX Reshape, Flatten, Squeeze and Unsqueeze → IR Reshape to the shape they give (the batch axis must
//! stay where it is).

use amp_device::ir::Reshape;

use crate::import::node::{
    axes_of, dyn_input, get_const, norm_axis, reshape_target, squeeze_shape, unary, Ctx,
};
use crate::import::{ImportError, Importer};

/// ONNX Reshape (0 copies a dim, −1 is inferred).
pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let s = imp.shape_of(dyn_input(imp, cx, 0)?).to_vec();
    let t = get_const(imp, cx, 1)?.ok_or_else(|| cx.err("shape input is missing"))?;
    let target = reshape_target(&s, &t.to_i64()).map_err(|m| cx.err(m))?;
    to(imp, cx, &s, target)
}

/// ONNX Flatten: the dims before `axis` into one, the rest into another.
pub(crate) fn import_flatten(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let s = imp.shape_of(dyn_input(imp, cx, 0)?).to_vec();
    let axis = norm_axis(cx.int("axis", 1), s.len() + 1).map_err(|m| cx.err(m))?;
    if axis == 0 {
        return Err(cx.err("Flatten with axis 0 merges the batch axis, which amp does not support"));
    }
    let a: usize = s[..axis].iter().product();
    to(imp, cx, &s, vec![a, s.iter().product::<usize>() / a])
}

/// ONNX Squeeze and Unsqueeze.
pub(crate) fn import_squeeze(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let s = imp.shape_of(dyn_input(imp, cx, 0)?).to_vec();
    let axes = axes_of(imp, cx)?;
    let target = squeeze_shape(cx.op(), &s, axes.as_deref()).map_err(|m| cx.err(m))?;
    to(imp, cx, &s, target)
}

fn to(imp: &mut Importer, cx: &Ctx, s: &[usize], shape: Vec<usize>) -> Result<(), ImportError> {
    if shape.first() != Some(&1) || s.first() != Some(&1) {
        return Err(cx.err(format!(
            "reshaping {s:?} to {shape:?} moves the batch axis, which amp does not support"
        )));
    }
    unary(imp, cx, Reshape { shape }.into())
}
