//! ONNX Transpose → IR Transpose (no perm: the dims reversed).

use amp_device::ir::Transpose;

use crate::import::node::{dyn_input, unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let r = imp.shape_of(dyn_input(imp, cx, 0)?).len();
    let perm: Vec<usize> = cx
        .ints("perm")
        .map(|p| p.iter().map(|&v| v as usize).collect())
        .unwrap_or_else(|| (0..r).rev().collect());
    unary(imp, cx, Transpose { perm }.into())
}
