//! ONNX Greater, GreaterOrEqual, Less and LessOrEqual → IR Compare, a boolean. Comparisons of two constants
//! (a causal mask's) fold at import.

use amp_device::ir::{Compare, Comparison};

use crate::import::node::{binary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let op = match cx.op() {
        "Greater" => Comparison::Greater,
        "GreaterOrEqual" => Comparison::GreaterOrEqual,
        "Less" => Comparison::Less,
        _ => Comparison::LessOrEqual,
    };
    binary(imp, cx, Compare { op }.into())
}
