//! ONNX Conv (2-D, NCHW) → IR Conv with a constant weight and optional bias.

use amp_device::ir::Conv;

use crate::import::node::{add_node, conv_operands, pair, spatial_pads, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let (s, ws, ins) = conv_operands(imp, cx, "convolutions")?;
    let k = [ws[2], ws[3]];
    let strides = pair(cx, "strides", 1)?;
    let dilations = pair(cx, "dilations", 1)?;
    let pads = spatial_pads(cx, [s[2], s[3]], k, strides, dilations)?;
    let group = cx.int("group", 1).max(1) as usize;
    add_node(
        imp,
        cx,
        Conv {
            strides,
            pads,
            dilations,
            group,
        }
        .into(),
        ins,
    )
}
