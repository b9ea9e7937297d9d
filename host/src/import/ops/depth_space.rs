//! ONNX DepthToSpace (mode DCR or CRD) and SpaceToDepth → IR DepthSpace.

use amp_device::ir::DepthSpace;

use crate::import::node::{unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let to_depth = cx.op() == "SpaceToDepth";
    let block = cx.int("blocksize", 0);
    if block < 1 {
        return Err(cx.err(format!("blocksize {block}: must be at least 1")));
    }
    let crd = match cx.string("mode", "DCR").as_str() {
        "DCR" => false,
        "CRD" if !to_depth => true,
        other => return Err(cx.err(format!("mode {other:?} is not supported (DCR, CRD)"))),
    };
    let op = DepthSpace {
        block: block as usize,
        to_depth,
        crd,
    };
    unary(imp, cx, op.into())
}
