//! Our own `#[repr(C)]` declarations of the subset of Qualcomm's QNN C API that amp calls, a loader that
//! finds a compatible provider with libloading, and safe handle types that free themselves in order.
//! Written from the published ABI facts; nothing here is copied or generated from the SDK's headers.
//!
//! Layers, as in cudarc/ash: raw types ([`types`]); errors ([`error`]); [`Library`] (the loaded interface
//! table, checked `Result`-returning calls: [`library`]); [`Backend`], [`Device`], [`Context`], [`Profile`]
//! (each holds an `Arc` of its parent, so the library outlives every handle and children are freed first:
//! [`handles`]); [`Graph`] ([`graph`]); finding the library ([`locate`]).

pub mod error;
pub mod graph;
pub mod handles;
pub mod library;
pub mod locate;
pub mod types;

pub use error::{QnnError, Result};
pub use graph::{Graph, ParamSpec, Quant, TensorRef, TensorSpec};
pub use handles::{Backend, Context, Device, Profile};
pub use library::Library;
pub use locate::{locate_htp, locate_in};
pub use types::*;
