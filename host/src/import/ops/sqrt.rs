//! ONNX Sqrt → IR Sqrt.

use amp_device::ir::Sqrt;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    unary(imp, cx, Sqrt.into())
}
