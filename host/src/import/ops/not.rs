//! ONNX Not → IR Not, of a boolean an earlier op wrote (Equal, a Cast to bool).

use amp_device::ir::Not;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

use super::select::condition;

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    condition(imp, cx, 0)?;
    unary(imp, cx, Not.into())
}
