//! ONNX HardSigmoid → IR HardSigmoid (alpha 0.2, beta 0.5 by default).

use amp_device::ir::HardSigmoid;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let (alpha, beta) = (cx.float("alpha", 0.2), cx.float("beta", 0.5));
    unary(imp, cx, HardSigmoid { alpha, beta }.into())
}
