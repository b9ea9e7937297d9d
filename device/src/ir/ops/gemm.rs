//! Gemm: fully connected, y = x · Wᵀ + b over the last axis. ONNX Gemm (any transB, alpha, beta) and MatMul
//! with a constant matrix as second input import as this.

use serde::{Deserialize, Serialize};

use super::{need, Mac, OpDef};

/// Inputs: x `[..., K]`, W `[N, K]`, optional b `[N]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gemm;

impl OpDef for Gemm {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        need(ins, 2)?;
        let (x, w) = (ins[0], ins[1]);
        if w.len() != 2 || x.is_empty() || x[x.len() - 1] != w[1] {
            return Err(format!("input {x:?} does not fit weight {w:?} ([out, in])"));
        }
        let mut s = x.to_vec();
        s[x.len() - 1] = w[0];
        Ok(s)
    }

    fn mac(&self) -> Mac {
        Mac::Weights { out_axis: 0 }
    }

    fn macs(&self, ins: &[&[usize]], out: &[usize]) -> u64 {
        (out.iter().product::<usize>() * ins[1][1]) as u64
    }
}
