//! ONNX Tanh → IR Tanh.

use amp_device::ir::Tanh;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    unary(imp, cx, Tanh.into())
}
