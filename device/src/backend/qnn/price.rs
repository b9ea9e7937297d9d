//! What one Convert costs on the device: one-op graphs timed with QNN's profile.

use qnn_sys::{Context, Graph as QGraph, Profile, TensorSpec, PROFILE_EVENTTYPE_EXECUTE};

use super::{act_dtype, act_quant, qdims, QnnBackendError, QnnRuntime, Result};
use crate::quant::Encoding;

/// Median execute time in µs (QNN's profile) of `iterations` runs after `warmup` of a one-op graph on a
/// tensor of IR shape `shape`: `op` reads it at `from` bits and writes it at `to` bits.
fn one_op_us(
    rt: &QnnRuntime,
    op: &str,
    shape: &[usize],
    from: u8,
    to: u8,
    warmup: usize,
    iterations: usize,
) -> Result<f64> {
    let ctx = Context::new(rt.backend.clone(), Some(rt.device.clone()))?;
    let q = QGraph::new(ctx.clone(), "probe")?;
    let profile = Profile::basic(rt.backend.clone())?;
    let dims = qdims(shape, shape.first().copied().unwrap_or(1).max(1));
    let e = |bits| act_quant(&Encoding::from_min_max(-1.0, 1.0, bits));
    let x = q.tensor(&TensorSpec::input("x", act_dtype(from), &dims, e(from)))?;
    let y = q.tensor(&TensorSpec::output("y", act_dtype(to), &dims, e(to)))?;
    q.node("op", op, &[], &[x], &[y])?;
    q.finalize(None)?;
    let input = vec![0u8; x.bytes()];
    let mut output = vec![0u8; y.bytes()];
    let mut times = Vec::new();
    for i in 0..warmup + iterations.max(1) {
        q.execute(&[(x, &input)], &mut [(y, &mut output)], Some(&profile))?;
        if i >= warmup {
            if let Some(us) = profile.event_us(PROFILE_EVENTTYPE_EXECUTE)? {
                times.push(us as f64);
            }
        }
    }
    if times.is_empty() {
        return Err(QnnBackendError::Input(
            "the backend's profile reported no execute time".into(),
        ));
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// What one Convert costs on this backend: the median execute time of a graph holding only that Convert,
/// minus that of the same graph with a Reshape (no data change) in its place, so the per-graph overhead and
/// the input copy cancel. Returns (convert µs, reshape µs); the difference is the cost (clamped at 0 by the
/// caller).
pub fn measure_convert(
    rt: &QnnRuntime,
    shape: &[usize],
    from: u8,
    to: u8,
    warmup: usize,
    iterations: usize,
) -> Result<(f64, f64)> {
    let with = one_op_us(rt, "Convert", shape, from, to, warmup, iterations)?;
    let without = one_op_us(rt, "Reshape", shape, from, from, warmup, iterations)?;
    Ok((with, without))
}
