//! Gemm: the gemm family's fully connected kernels (f32 in FP32, exact integer sums when quantized).

use super::{Cx, Kernel, Out};
use crate::backend::reference::gemm::{fc_f32, fc_quant};
use crate::ir::Gemm;

impl Kernel for Gemm {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let y = match cx.mac {
            Some(q) => {
                let e = cx.need_enc(0)?;
                fc_quant(&cx.ins[0], cx.ins[1].shape, q, e, &cx.epi, cx.bufs)
            }
            None => {
                let bias = cx.ins.get(2).map(|b| b.data);
                fc_f32(&cx.ins[0], &cx.ins[1], bias, &cx.epi, cx.bufs)
            }
        };
        y.map(Out::Done)
    }
}
