//! ONNX Neg → IR Neg.

use amp_device::ir::Neg;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    unary(imp, cx, Neg.into())
}
