//! ONNX AveragePool → IR AveragePool.

use amp_device::ir::AveragePool;

use crate::import::node::{pool_window, unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let window = pool_window(imp, cx)?;
    unary(imp, cx, AveragePool(window).into())
}
