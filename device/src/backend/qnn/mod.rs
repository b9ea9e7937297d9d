//! The QNN backend: builds one QNN graph per (model, quantization plan, batch) through `qnn-sys`, in NHWC
//! with HWIO weights, int32 biases (scale = input × weight scale), UFIXED 8/16 activations and SFIXED 8/16
//! weights; inserts Convert ops where an op's precision differs from a tensor's; validates every node with
//! the backend; finalizes; executes with app-owned buffers and reads the execute time from the profile.
//!
//! Parts: the runtime and the finalized model (here), the graph builder (`builder`), each op's lowering
//! (`ops/<op>.rs`), data across the boundary (`io`) and Convert pricing (`price`). A node the backend
//! refuses, or an op with no lowering at some precision, is [`QnnBackendError::Unsupported`] naming the node;
//! it reaches the search as [`EvalError`] of kind Unsupported, so the search prunes that config.

mod builder;
mod io;
mod ops;
mod price;

use std::path::Path;
use std::sync::Arc;

use qnn_sys::{
    Backend, Context, Device, Graph as QGraph, Library, Profile, QnnError, Quant, TensorRef,
    DATATYPE_UFIXED_POINT_16, DATATYPE_UFIXED_POINT_8, PROFILE_EVENTTYPE_EXECUTE,
};

use super::Array;
use crate::error::EvalError;
use crate::ir::Node;
use crate::quant::Encoding;
use io::{decode, encode, to_nchw, to_nhwc};
pub use ops::LOWERINGS;
pub use price::measure_convert;

#[derive(Debug, thiserror::Error)]
pub enum QnnBackendError {
    /// The backend cannot run this node at this precision (the search prunes the candidate).
    #[error("{op} \"{node}\": not supported by the QNN backend: {reason}")]
    Unsupported {
        node: String,
        op: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Qnn(#[from] QnnError),
    #[error("{0}")]
    Input(String),
}

impl From<QnnBackendError> for EvalError {
    /// A node the backend refuses is Unsupported (the search prunes the config); anything else failed.
    fn from(e: QnnBackendError) -> EvalError {
        match e {
            QnnBackendError::Unsupported { .. }
            | QnnBackendError::Qnn(QnnError::Rejected { .. }) => {
                EvalError::unsupported(e.to_string())
            }
            other => EvalError::failed(other.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, QnnBackendError>;

/// A loaded QNN backend (library + backend handle + device for an HTP arch), shared by every graph.
pub struct QnnRuntime {
    pub lib: Arc<Library>,
    backend: Arc<Backend>,
    device: Arc<Device>,
    pub arch: u32,
}

impl QnnRuntime {
    /// Loads `libQnnHtp.so` from `path` and selects HTP architecture `arch` (73 or newer on the x86
    /// emulator: at v68 16-bit accuracy is poor and A16W16 is refused).
    pub fn load(path: &Path, arch: u32) -> Result<QnnRuntime> {
        let lib = Library::load(path)?;
        let backend = Backend::new(lib.clone())?;
        let device = Device::htp(backend.clone(), arch)?;
        Ok(QnnRuntime {
            lib,
            backend,
            device,
            arch,
        })
    }

    /// "QNN <build id> (core API a.b.c, HTP API d.e.f, arch vNN)".
    pub fn describe(&self) -> String {
        let (c, b) = (self.lib.core_api, self.lib.backend_api);
        format!(
            "QNN {} (core API {}.{}.{}, backend API {}.{}.{}, {}, arch v{})",
            self.lib.build_id().unwrap_or_default(),
            c.major,
            c.minor,
            c.patch,
            b.major,
            b.minor,
            b.patch,
            self.lib.provider_name,
            self.arch
        )
    }
}

fn unsupported(n: &Node, reason: impl Into<String>) -> QnnBackendError {
    QnnBackendError::Unsupported {
        node: n.name.clone(),
        op: n.op.name(),
        reason: reason.into(),
    }
}

/// The QNN dims of an IR tensor of `shape` at `batch`: NCHW → NHWC at rank 4, others unchanged.
fn qdims(shape: &[usize], batch: usize) -> Vec<u32> {
    let mut s: Vec<u32> = shape.iter().map(|&d| d as u32).collect();
    s[0] = batch as u32;
    if s.len() == 4 {
        vec![s[0], s[2], s[3], s[1]]
    } else {
        s
    }
}

/// An activation encoding as QNN's quantization parameters.
fn act_quant(e: &Encoding) -> Quant {
    Quant::scale_offset(e.scale, e.offset)
}

fn act_dtype(bits: u8) -> u32 {
    if bits == 16 {
        DATATYPE_UFIXED_POINT_16
    } else {
        DATATYPE_UFIXED_POINT_8
    }
}

/// A graph built and finalized for one plan and batch size ([`QnnModel::build`]).
pub struct QnnModel {
    _ctx: Arc<Context>,
    graph: QGraph,
    profile: Profile,
    batch: usize,
    /// Per model input: its tensor, its encoding (None: integers, fed as INT_32) and its shape.
    inputs: Vec<(TensorRef, Option<Encoding>, Vec<usize>)>,
    outputs: Vec<(TensorRef, Encoding, Vec<usize>)>,
    /// Execute time (µs) of the last run's last batch, from QNN's profile.
    pub last_execute_us: Option<u64>,
    /// Convert ops the graph holds (mixed precision's width changes).
    pub converts: usize,
}

impl QnnModel {
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs any number of samples (NCHW floats, one array per model input) in batches of the graph's size;
    /// returns float outputs.
    pub fn run(&mut self, x: &[Array]) -> Result<Vec<Array>> {
        if x.len() != self.inputs.len() {
            return Err(QnnBackendError::Input(format!(
                "the model has {} inputs but {} arrays were given",
                self.inputs.len(),
                x.len()
            )));
        }
        for (a, (_, _, in_shape)) in x.iter().zip(&self.inputs) {
            if a.shape.len() != in_shape.len()
                || a.shape[1..] != in_shape[1..]
                || a.batch() != x[0].batch()
            {
                return Err(QnnBackendError::Input(format!(
                    "input has shape {:?}, the model expects {:?} (and {} samples, as the first input)",
                    a.shape,
                    in_shape,
                    x[0].batch()
                )));
            }
        }
        let n = x.first().map_or(0, Array::batch);
        let mut outs: Vec<Vec<f32>> = vec![Vec::new(); self.outputs.len()];
        for start in (0..n).step_by(self.batch) {
            let take = (n - start).min(self.batch);
            let in_bytes: Vec<Vec<u8>> = x
                .iter()
                .zip(&self.inputs)
                .map(|(a, (_, in_e, in_shape))| {
                    let per = a.sample_len();
                    let mut chunk = a.data[start * per..(start + take) * per].to_vec();
                    chunk.resize(self.batch * per, 0.0);
                    let nhwc = if in_shape.len() == 4 {
                        to_nhwc(&chunk, self.batch, in_shape)
                    } else {
                        chunk
                    };
                    match in_e {
                        Some(e) => encode(&nhwc, e),
                        None => nhwc
                            .iter()
                            .flat_map(|&v| (v as i32).to_le_bytes())
                            .collect(),
                    }
                })
                .collect();
            let ins_arg: Vec<(TensorRef, &[u8])> = self
                .inputs
                .iter()
                .zip(&in_bytes)
                .map(|((r, _, _), b)| (*r, b.as_slice()))
                .collect();
            let mut bufs: Vec<Vec<u8>> = self
                .outputs
                .iter()
                .map(|(r, _, _)| vec![0u8; r.bytes()])
                .collect();
            {
                let mut outs_arg: Vec<(TensorRef, &mut [u8])> = self
                    .outputs
                    .iter()
                    .zip(bufs.iter_mut())
                    .map(|((r, _, _), b)| (*r, b.as_mut_slice()))
                    .collect();
                self.graph
                    .execute(&ins_arg, &mut outs_arg, Some(&self.profile))?;
            }
            self.last_execute_us = self.profile.event_us(PROFILE_EVENTTYPE_EXECUTE)?;
            for (k, ((_, e, shape), buf)) in self.outputs.iter().zip(&bufs).enumerate() {
                let vals = decode(buf, e);
                let vals = if shape.len() == 4 {
                    to_nchw(&vals, self.batch, shape)
                } else {
                    vals
                };
                let per_out: usize = shape[1..].iter().product();
                outs[k].extend_from_slice(&vals[..take * per_out]);
            }
        }
        Ok(self
            .outputs
            .iter()
            .zip(outs)
            .map(|((_, _, shape), data)| {
                let mut s = shape.clone();
                s[0] = n;
                Array::new(s, data)
            })
            .collect())
    }
}
