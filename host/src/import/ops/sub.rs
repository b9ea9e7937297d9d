//! ONNX Sub → IR Sub (either input may be a constant).

use amp_device::ir::Sub;

use crate::import::node::{binary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    binary(imp, cx, Sub.into())
}
