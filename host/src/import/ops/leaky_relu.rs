//! ONNX LeakyRelu → IR LeakyRelu (alpha defaults to 0.01).

use amp_device::ir::LeakyRelu;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let alpha = cx.float("alpha", 0.01);
    unary(imp, cx, LeakyRelu { alpha }.into())
}
