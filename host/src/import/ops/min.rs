//! ONNX Min → IR Min. ONNX's Min takes any number of inputs: one is the input itself, two an element-wise
//! min (either may be a constant of any broadcastable shape, e.g. a per-channel bound).

use amp_device::ir::Min;

use crate::import::node::{alias, binary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    match cx.node.input.len() {
        1 => alias(imp, cx),
        2 => binary(imp, cx, Min.into()),
        n => Err(cx.err(format!("has {n} inputs; amp takes one or two"))),
    }
}
