//! ONNX Identity and Dropout (inference: the identity) → no IR op; the output names the input's value.

use crate::import::node::{alias, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    alias(imp, cx)
}
