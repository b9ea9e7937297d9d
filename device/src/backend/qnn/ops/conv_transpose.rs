//! ConvTranspose → TransposeConv2d (weights `[kh, kw, cin, cout]`, output padding as its own parameter).
//! QNN's TransposeConv2d takes no dilation: a dilated one is Unsupported.

use qnn_sys::ParamSpec;

use super::{pads, pair, Lower, NodeCx};
use crate::backend::qnn::builder::WeightLayout;
use crate::backend::qnn::Result;
use crate::ir::ConvTranspose;

impl Lower for ConvTranspose {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        if self.dilations != [1, 1] {
            return Err(cx.unsupported(format!(
                "dilations {:?}: QNN's TransposeConv2d has no dilation",
                self.dilations
            )));
        }
        let params = [
            pair("stride", self.strides),
            pads(self.pads),
            ParamSpec::U32("group", 1),
            pair("output_padding", self.output_padding),
        ];
        cx.mac("TransposeConv2d", &params, WeightLayout::Hwio)
    }
}
