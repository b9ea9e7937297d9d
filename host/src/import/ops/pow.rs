//! ONNX Pow with a constant exponent (one value, or every element equal) → IR Pow.

use amp_device::ir::Pow;

use crate::import::node::{get_const, unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let e = get_const(imp, cx, 1)?
        .ok_or_else(|| cx.err("input 1 (the exponent) is missing"))?
        .to_f32();
    let exponent = match e.first() {
        Some(&v) if e.iter().all(|&x| x == v) => v,
        _ => {
            return Err(cx.err(format!(
                "exponent {e:?}: amp takes one constant exponent for the whole tensor"
            )))
        }
    };
    unary(imp, cx, Pow { exponent }.into())
}
