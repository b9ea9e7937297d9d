//! ONNX Div → IR Div (either input may be a constant); Reciprocal → Div of a constant 1 by x.

use amp_device::ir::Div;

use crate::import::node::{add_node, binary, dyn_input, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    binary(imp, cx, Div.into())
}

/// 1 / x as a Div whose numerator is a one-element constant 1, as QNN runs it (ElementWiseDivide).
pub(crate) fn import_reciprocal(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let one = imp
        .g
        .add_tensor(format!("{}.one", cx.name), vec![1], Some(vec![1.0]));
    add_node(imp, cx, Div.into(), vec![one, x])
}
