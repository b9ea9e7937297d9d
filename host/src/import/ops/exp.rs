//! ONNX Exp → IR Exp.

use amp_device::ir::Exp;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    unary(imp, cx, Exp.into())
}
