//! ONNX Mul → IR Mul (either input may be a constant).

use amp_device::ir::Mul;

use crate::import::node::{binary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    binary(imp, cx, Mul.into())
}
