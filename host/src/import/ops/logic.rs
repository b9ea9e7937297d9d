//! ONNX And, Or and Xor → IR Logic, of two booleans earlier ops wrote. Of two constants they fold at import.

use amp_device::ir::{Connective, Logic};

use crate::import::node::{add_node, Ctx};
use crate::import::{ImportError, Importer};

use super::select::condition;

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let op = Connective::from_onnx(cx.op()).ok_or_else(|| cx.err("is not And, Or or Xor"))?;
    let ins = vec![condition(imp, cx, 0)?, condition(imp, cx, 1)?];
    add_node(imp, cx, Logic { op }.into(), ins)
}
