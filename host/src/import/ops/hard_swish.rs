//! ONNX HardSwish → IR HardSwish.

use amp_device::ir::HardSwish;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    unary(imp, cx, HardSwish.into())
}
