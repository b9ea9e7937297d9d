//! ONNX GlobalAveragePool → IR GlobalAveragePool.

use amp_device::ir::GlobalAveragePool;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    unary(imp, cx, GlobalAveragePool.into())
}
