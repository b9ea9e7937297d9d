//! ONNX Sigmoid → IR Sigmoid.

use amp_device::ir::Sigmoid;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    unary(imp, cx, Sigmoid.into())
}
