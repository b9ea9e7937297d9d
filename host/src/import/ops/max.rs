//! ONNX Max → IR Max. ONNX's Max takes any number of inputs: one is the input itself, two an element-wise
//! max (either may be a constant of any broadcastable shape, e.g. a per-channel bound).

use amp_device::ir::Max;

use crate::import::node::{alias, binary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    match cx.node.input.len() {
        1 => alias(imp, cx),
        2 => binary(imp, cx, Max.into()),
        n => Err(cx.err(format!("has {n} inputs; amp takes one or two"))),
    }
}
