//! ONNX Pad (constant mode) → IR Pad: pads from the attribute before opset 11, from constant inputs after.

use amp_device::ir::Pad;

use crate::import::node::{get_const, unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
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
        let p = get_const(imp, cx, 1)?
            .ok_or_else(|| cx.err("pads input is missing"))?
            .to_i64();
        let v = get_const(imp, cx, 2)?.map(|c| c.to_f32()[0]).unwrap_or(0.0);
        (p, v)
    };
    if pads.iter().any(|&p| p < 0) {
        return Err(cx.err(format!("negative pads {pads:?} are not supported")));
    }
    let pads = pads.iter().map(|&p| p as usize).collect();
    unary(imp, cx, Pad { pads, value }.into())
}
