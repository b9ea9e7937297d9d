//! Resize of the two spatial dimensions of an NCHW tensor (nearest or linear).

use serde::{Deserialize, Serialize};

use super::{need, rank4, OpDef};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResizeMode {
    Nearest,
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordMode {
    HalfPixel,
    PytorchHalfPixel,
    Asymmetric,
    AlignCorners,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resize {
    pub mode: ResizeMode,
    pub coord: CoordMode,
    pub nearest: NearestMode,
    /// Output spatial size when given by scales: out = floor(in * scale).
    pub scales: [f32; 2],
}

impl OpDef for Resize {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        need(ins, 1)?;
        let x = ins[0];
        rank4(x, "input")?;
        let h = (x[2] as f64 * self.scales[0] as f64).floor() as usize;
        let w = (x[3] as f64 * self.scales[1] as f64).floor() as usize;
        if h == 0 || w == 0 {
            return Err(format!(
                "scales {:?} give an empty output from {x:?}",
                self.scales
            ));
        }
        Ok(vec![x[0], x[1], h, w])
    }
}
