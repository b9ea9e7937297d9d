//! ONNX Abs → IR Abs.

use amp_device::ir::Abs;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    unary(imp, cx, Abs.into())
}
