//! MatMul: the matrix product of two activations, with numpy broadcasting of the leading dims.

use serde::{Deserialize, Serialize};

use super::{need, Mac, OpDef, Operand};
use crate::ir::shape::broadcast;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatMul;

impl OpDef for MatMul {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        need(ins, 2)?;
        let (a, b) = (ins[0], ins[1]);
        if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
            return Err(format!("shapes {a:?} and {b:?} do not multiply"));
        }
        let mut s = broadcast(&a[..a.len() - 2], &b[..b.len() - 2])?;
        s.push(a[a.len() - 2]);
        s.push(b[b.len() - 1]);
        Ok(s)
    }

    fn mac(&self) -> Mac {
        Mac::Activations
    }

    fn macs(&self, ins: &[&[usize]], out: &[usize]) -> u64 {
        (out.iter().product::<usize>() * ins[0][ins[0].len() - 1]) as u64
    }

    /// HTP takes a 16-bit second operand only symmetric.
    fn operand(&self, k: usize, bits: u8) -> Operand {
        if k == 1 && bits == 16 {
            Operand::Symmetric
        } else {
            Operand::MinMax
        }
    }
}
