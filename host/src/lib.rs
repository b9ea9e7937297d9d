//! amp's host side: ONNX import, data loading, calibration, the mixed-precision search, results and CLI.

#![forbid(unsafe_code)]

pub mod amp;
pub mod calib;
pub mod data;
pub mod eval;
pub mod import;
pub mod progress;
pub mod trace;
