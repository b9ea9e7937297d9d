//! ONNX Gelu (opset 20) → IR Gelu.

use amp_device::ir::Gelu;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let tanh = match cx.string("approximate", "none").as_str() {
        "none" => false,
        "tanh" => true,
        other => {
            return Err(cx.err(format!(
                "approximate {other:?} is not supported (amp takes \"none\" and \"tanh\")"
            )))
        }
    };
    unary(imp, cx, Gelu { tanh }.into())
}
