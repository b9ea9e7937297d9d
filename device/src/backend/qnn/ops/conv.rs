//! Conv → Conv2d, or DepthWiseConv2d when every group has one input and one output channel.

use qnn_sys::ParamSpec;

use super::{pads, pair, Lower, NodeCx};
use crate::backend::qnn::builder::WeightLayout;
use crate::backend::qnn::Result;
use crate::ir::Conv;

impl Lower for Conv {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let mut params = vec![
            pair("stride", self.strides),
            pads(self.pads),
            pair("dilation", self.dilations),
        ];
        let op = if self.is_depthwise(cx.in_shape(1)) {
            "DepthWiseConv2d"
        } else {
            params.push(ParamSpec::U32("group", self.group as u32));
            "Conv2d"
        };
        cx.mac(op, &params, WeightLayout::Hwio)
    }
}
