//! HardSigmoid: clamp(alpha · x + beta, 0, 1).

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::map;
use crate::ir::HardSigmoid;

impl Kernel for HardSigmoid {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let (alpha, beta) = (self.alpha, self.beta);
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, |v| {
            (alpha * v + beta).clamp(0.0, 1.0)
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::reference::ops::testing::run_fp32;
    use crate::ir::HardSigmoid;

    #[test]
    fn matches_the_onnx_definition() {
        let op = HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        };
        let y = run_fp32(&op.into(), &[(&[1, 4], &[-4.0, -1.0, 0.0, 1.0])], &[1, 4]);
        assert_eq!(y.data[0], 0.0);
        assert!((y.data[3] - 0.7).abs() < 1e-7);
    }
}
