//! MatMul: the gemm family's batched product of two activations, on integer codes when both are quantized.

use super::{Cx, Kernel, Out};
use crate::backend::reference::gemm::matmul;
use crate::ir::MatMul;

impl Kernel for MatMul {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let encs = cx.encs[0].zip(cx.encs[1]);
        matmul(&cx.ins[0], &cx.ins[1], encs).map(Out::Real)
    }
}
