//! ONNX Erf → IR Erf.

use amp_device::ir::Erf;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    unary(imp, cx, Erf.into())
}
