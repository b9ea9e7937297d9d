//! amp's host side: ONNX import, data loading, calibration, the mixed-precision search, results and CLI.

#![forbid(unsafe_code)]

pub mod amp;
pub mod calib;
pub mod data;
pub mod eval;
pub mod import;
pub mod progress;
pub mod trace;

/// A command's answer misses the target or threshold it was given (exit code 1): not an error of amp's, a
/// result a CI job acts on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Missed(pub String);

/// A command line that asks for something impossible (exit code 2), beyond what the flags' own parsing
/// catches.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);
