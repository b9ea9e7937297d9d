//! ONNX Clip → IR Clip: bounds from attributes before opset 11, from constant inputs after (absent: ±∞).

use amp_device::ir::Clip;

use crate::import::consts::ConstTensor;
use crate::import::node::{get_const, unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let (min, max) = if imp.opset < 11 {
        (
            cx.float("min", f32::NEG_INFINITY),
            cx.float("max", f32::INFINITY),
        )
    } else {
        let scalar = |c: Option<ConstTensor>, d: f32| {
            c.and_then(|t| t.to_f32().first().copied()).unwrap_or(d)
        };
        (
            scalar(get_const(imp, cx, 1)?, f32::NEG_INFINITY),
            scalar(get_const(imp, cx, 2)?, f32::INFINITY),
        )
    };
    unary(imp, cx, Clip { min, max }.into())
}
