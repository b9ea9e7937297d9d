//! ONNX Softmax and LogSoftmax → IR Softmax on one axis (before opset 13, ONNX flattens from the axis on: amp
//! takes that only when the axes after it have size 1).

use amp_device::ir::Softmax;

use crate::import::node::{dyn_input, norm_axis, unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    import_as(imp, cx, false)
}

pub(crate) fn import_log(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    import_as(imp, cx, true)
}

fn import_as(imp: &mut Importer, cx: &Ctx, log: bool) -> Result<(), ImportError> {
    let shape = imp.shape_of(dyn_input(imp, cx, 0)?).to_vec();
    let default = if imp.opset >= 13 { -1 } else { 1 };
    let axis = norm_axis(cx.int("axis", default), shape.len()).map_err(|m| cx.err(m))?;
    if imp.opset < 13 && shape[axis + 1..].iter().any(|&d| d != 1) {
        return Err(
            cx.err("opset < 13 Softmax over more than one axis (flattened) is not supported")
        );
    }
    unary(imp, cx, Softmax { axis, log }.into())
}
