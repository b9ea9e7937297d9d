//! ONNX MaxPool → IR MaxPool.

use amp_device::ir::MaxPool;

use crate::import::node::{pool_window, unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let window = pool_window(imp, cx)?;
    unary(imp, cx, MaxPool(window).into())
}
