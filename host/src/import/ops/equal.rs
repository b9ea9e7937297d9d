//! ONNX Equal → IR Equal, a boolean. Equal of two constants (shape arithmetic) folds at import.

use amp_device::ir::Equal;

use crate::import::node::{binary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    binary(imp, cx, Equal.into())
}
