//! ConvTranspose → TransposeConv2d (weights `[kh, kw, cin, cout]`, output padding as its own parameter).
//! QNN's TransposeConv2d takes no dilation: a dilated kernel goes as the larger one with zero taps between
//! (`ConvTranspose::undilated`, in the builder's weights), the same sums. A grouped one arrives as one group
//! (block-diagonal weights).

use qnn_sys::ParamSpec;

use super::{pads, pair, Lower, NodeCx};
use crate::backend::qnn::builder::WeightLayout;
use crate::backend::qnn::Result;
use crate::ir::ConvTranspose;

impl Lower for ConvTranspose {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let params = [
            pair("stride", self.strides),
            pads(self.pads),
            ParamSpec::U32("group", 1),
            pair("output_padding", self.output_padding),
        ];
        cx.mac("TransposeConv2d", &params, WeightLayout::Hwio)
    }
}
