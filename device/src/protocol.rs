//! The wire protocol between `amp-host` and `amp-agent`: serde + postcard messages in length-prefixed frames
//! (u32 little-endian length, then the payload), capped in size, opened by a versioned handshake.
//!
//! Everything large (model, calibration statistics, data) travels once as a content-addressed blob, in
//! chunks the agent verifies by hash and keeps in its work directory; each evaluation then sends only a
//! small per-tensor bit plan.

use std::io::{Read, Write};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::metrics::MetricSpec;
use crate::quant::BitPlan;

/// Bumped on any incompatible change of the messages below.
pub const PROTOCOL_VERSION: u32 = 6;
/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 64 << 20;
/// Blob chunk size.
pub const CHUNK: usize = 4 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendChoice {
    Ref,
    Htp { arch: u32 },
}

/// The data blob: one array per model input (batch first) and, when the data has them, integer labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataBlob {
    pub inputs: crate::backend::Inputs,
    pub labels: Option<Vec<i64>>,
}

/// A [`DataBlob`] borrowed from the host's data: it serializes to the same bytes, without a copy of them.
#[derive(Serialize)]
pub struct DataBlobRef<'a> {
    pub inputs: &'a crate::backend::Inputs,
    pub labels: Option<&'a [i64]>,
}

/// `value`'s postcard bytes in a buffer of their exact size (a blob of data is hundreds of megabytes: a
/// growing buffer would take up to twice that).
pub fn to_exact_vec<T: Serialize>(value: &T) -> postcard::Result<Vec<u8>> {
    let n = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())?;
    postcard::to_extend(value, Vec::with_capacity(n))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Hello {
        protocol: u32,
        host_version: String,
    },
    /// How many bytes of blob `hash` the agent already has (to resume an interrupted upload).
    BlobStatus {
        hash: String,
    },
    PutBlob {
        hash: String,
        offset: u64,
        total: u64,
        chunk: Vec<u8>,
    },
    /// Load the model (postcard `Graph`) and calibration statistics (postcard `Stats`) blobs.
    LoadModel {
        graph: String,
        stats: String,
        backend: BackendChoice,
    },
    /// Load data: a blob holding a postcard [`DataBlob`].
    LoadData {
        data: String,
    },
    /// Score a plan (None: FP32) on the first `samples` samples by a built-in metric.
    Evaluate {
        plan: Option<BitPlan>,
        samples: usize,
        metric: MetricSpec,
        batch: usize,
    },
    /// The model outputs of a plan (None: FP32) on samples `start..end`, for a metric of the user's own on
    /// the host; asked in ranges so that no answer outgrows a frame.
    Outputs {
        plan: Option<BitPlan>,
        start: usize,
        end: usize,
        batch: usize,
    },
    /// Time `iterations` executions of one batch after `warmup`.
    Profile {
        plan: Option<BitPlan>,
        batch: usize,
        warmup: usize,
        iterations: usize,
    },
    /// Price Convert ops of these shapes and directions on the loaded backend.
    PriceConverts {
        probes: Vec<crate::convert::Probe>,
        warmup: usize,
        iterations: usize,
    },
    Shutdown,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Hello {
        protocol: u32,
        agent_version: String,
        backends: Vec<String>,
        device: String,
        /// The SoC or CPU the agent runs on (Android's ro.soc.model, else the CPU model).
        soc: String,
    },
    BlobStatus {
        have: u64,
    },
    Ok,
    Metric {
        value: f64,
        seconds: f64,
    },
    /// One array per model output, the asked samples batch first.
    Outputs {
        outputs: Vec<crate::backend::Array>,
        seconds: f64,
    },
    Latency(crate::backend::Latency),
    Prices(crate::convert::Prices),
    /// What went wrong, and what the host's search and pool should do about it.
    Error {
        kind: crate::error::ErrorKind,
        message: String,
    },
    Bye,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("truncated frame: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed message: {0}")]
    Decode(#[from] postcard::Error),
}

/// Writes one message as a frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    let bytes = postcard::to_allocvec(msg)?;
    if bytes.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(bytes.len()));
    }
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(&bytes)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame; `Closed` on a clean end of stream before the length.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(FrameError::TooLarge(n));
    }
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)?;
    Ok(postcard::from_bytes(&buf)?)
}

/// The content hash blobs are named by.
pub fn blob_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        let m = Request::Evaluate {
            plan: None,
            samples: 7,
            metric: MetricSpec {
                kind: crate::metrics::MetricKind::Sqnr,
                output: Some(1),
            },
            batch: 4,
        };
        write_frame(&mut buf, &m).unwrap();
        assert_eq!(read_frame::<Request>(&mut buf.as_slice()).unwrap(), m);
    }

    #[test]
    fn a_borrowed_data_blob_is_the_same_blob_in_a_buffer_of_its_size() {
        use crate::backend::{Array, Inputs};
        let owned = DataBlob {
            inputs: Inputs(vec![
                Array::new(vec![3, 2], vec![0.5, -1.0, 2.0, 3.5, 1e-3, 7.0]),
                Array::new(vec![3], vec![1.0, 2.0, 3.0]),
            ]),
            labels: Some(vec![4, 0, 9]),
        };
        for labels in [owned.labels.as_deref(), None] {
            let want = DataBlob {
                labels: labels.map(<[i64]>::to_vec),
                ..owned.clone()
            };
            let bytes = to_exact_vec(&DataBlobRef {
                inputs: &owned.inputs,
                labels,
            })
            .unwrap();
            assert_eq!(bytes, postcard::to_allocvec(&want).unwrap());
            assert_eq!(bytes.capacity(), bytes.len());
            assert_eq!(postcard::from_bytes::<DataBlob>(&bytes).unwrap(), want);
        }
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        // oversized length
        let big = (u32::MAX).to_le_bytes();
        assert!(matches!(
            read_frame::<Request>(&mut &big[..]),
            Err(FrameError::TooLarge(_))
        ));
        // truncated payload
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Shutdown).unwrap();
        buf.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
        let mut r = buf.as_slice();
        assert_eq!(read_frame::<Request>(&mut r).unwrap(), Request::Shutdown);
        assert!(matches!(
            read_frame::<Request>(&mut r),
            Err(FrameError::Io(_))
        ));
        // clean end
        assert!(matches!(
            read_frame::<Request>(&mut &[][..]),
            Err(FrameError::Closed)
        ));
        // random garbage: never a panic
        let mut seed = 1u64;
        for _ in 0..2000 {
            let n = (seed % 40) as usize;
            let mut frame = (n as u32).to_le_bytes().to_vec();
            for _ in 0..n {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                frame.push((seed >> 56) as u8);
            }
            let _ = read_frame::<Request>(&mut frame.as_slice());
            let _ = read_frame::<Response>(&mut frame.as_slice());
        }
    }
}
