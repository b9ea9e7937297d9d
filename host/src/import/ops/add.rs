//! ONNX Add → IR Add (either input may be a constant).

use amp_device::ir::Add;

use crate::import::node::{binary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    binary(imp, cx, Add.into())
}
