//! One agent as an [`Evaluator`]: the handshake, the model, statistics and data pushed once as
//! content-addressed blobs (only the bytes the agent lacks), then one small request per evaluation.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amp_device::backend::Array;
use amp_device::error::EvalError;
use amp_device::ir::Graph;
use amp_device::protocol::{
    blob_hash, read_frame, to_exact_vec, write_frame, BackendChoice, DataBlobRef, Request,
    Response, CHUNK, MAX_FRAME, PROTOCOL_VERSION,
};
use amp_device::quant::{Precision, Stats};
use anyhow::{anyhow, Result};

use super::transport::{DeviceSpec, Link};
use crate::amp::evaluator::{
    Config, Evaluator, Latency, MetricSpec, Prices, Probe, Provenance, Runs, Subset,
};
use crate::amp::groups::Groups;
use crate::data::Dataset;

/// What it takes to (re)connect an agent.
#[derive(Clone)]
pub struct Connector {
    /// The blob cache of a local agent.
    pub work: PathBuf,
    /// Where QNN's libraries are, to push to an adb device or to point a local agent at.
    pub qnn_lib: Option<PathBuf>,
    pub backend: BackendChoice,
    pub graph: Arc<Graph>,
    pub groups: Groups,
    pub stats: Stats,
    pub per_channel: bool,
    /// Phase 1 runs on the first `phase1` samples of `data`.
    pub phase1: usize,
    pub data: Dataset,
    pub batch: usize,
    /// The least time a device may take to answer before it counts as lost (--device-timeout); None
    /// waits forever.
    pub timeout: Option<Duration>,
}

/// The handshake alone: the device's name and SoC as its agent reports them.
pub fn hello(spec: &DeviceSpec) -> Result<(String, String)> {
    let mut link = spec
        .transport()?
        .open(std::path::Path::new("."), None)
        .map_err(|e| EvalError::device_lost(format!("{e:#}")))?;
    if let Some(s) = &link.socket {
        let _ = s.set_read_timeout(Some(GOODBYE));
    }
    write_frame(
        &mut link.writer,
        &Request::Hello {
            protocol: PROTOCOL_VERSION,
            host_version: env!("CARGO_PKG_VERSION").into(),
        },
    )?;
    let answer = read_frame::<Response>(&mut link.reader);
    let _ = write_frame(&mut link.writer, &Request::Shutdown);
    let _ = read_frame::<Response>(&mut link.reader);
    if let Some(c) = &mut link.child {
        let _ = c.wait();
    }
    match answer.map_err(|e| EvalError::device_lost(format!("device {spec}: {e}")))? {
        Response::Hello { device, soc, .. } => Ok((device, soc)),
        other => Err(EvalError::device_lost(format!("device {spec}: answered {other:?}")).into()),
    }
}

impl Connector {
    /// Starts or reaches the agent of `spec`, handshakes, pushes what it lacks and loads model and data.
    pub fn connect(&self, spec: &DeviceSpec) -> Result<AgentEvaluator> {
        AgentEvaluator::connect(spec, self)
    }
}

pub struct AgentEvaluator {
    // dropped first: then the child is waited for and the adb session ends
    link: Link,
    wire: Wire,
    /// The least time a request may take before the device counts as lost; None waits forever.
    timeout: Option<Duration>,
    /// Per kind of request, the slowest answer so far in seconds per unit of work (a sample, a run).
    slowest: HashMap<&'static str, f64>,
    /// The link was given up: every further request fails at once.
    broken: bool,
    name: String,
    identity: String,
    soc: String,
    graph: Arc<Graph>,
    groups: Groups,
    per_channel: bool,
    phase1: usize,
    phase2: usize,
    batch: usize,
    /// Blob bytes sent in this session (0 when the agent already had everything).
    pub pushed_bytes: u64,
    /// Bytes of model outputs received (for a metric computed on the host).
    pub pulled_bytes: u64,
}

impl AgentEvaluator {
    /// Connects, handshakes, pushes what the agent lacks and loads model and data.
    pub fn connect(spec: &DeviceSpec, c: &Connector) -> Result<AgentEvaluator> {
        let transport = spec.transport()?;
        let name = transport.name();
        let mut link = transport
            .open(&c.work, c.qnn_lib.as_deref())
            .map_err(|e| EvalError::device_lost(format!("{e:#}")))?;
        let wire = Wire::new(
            std::mem::replace(&mut link.reader, Box::new(std::io::empty())),
            std::mem::replace(&mut link.writer, Box::new(std::io::sink())),
        );
        let mut ev = AgentEvaluator {
            link,
            wire,
            timeout: c.timeout,
            slowest: HashMap::new(),
            broken: false,
            name: name.clone(),
            identity: String::new(),
            soc: String::new(),
            graph: c.graph.clone(),
            groups: c.groups.clone(),
            per_channel: c.per_channel,
            phase1: c.phase1,
            phase2: c.data.len(),
            batch: c.batch.max(1),
            pushed_bytes: 0,
            pulled_bytes: 0,
        };
        match ev.call(Request::Hello {
            protocol: PROTOCOL_VERSION,
            host_version: env!("CARGO_PKG_VERSION").into(),
        })? {
            Response::Hello {
                backends,
                device,
                soc,
                ..
            } => {
                ev.soc = soc;
                let b = match c.backend {
                    BackendChoice::Ref => "ref".to_string(),
                    BackendChoice::Htp { arch } => {
                        let qnn = backends.iter().find(|b| b.starts_with("htp")).ok_or_else(|| anyhow!("device {name} ({device}): no HTP backend (it offers {backends:?})"))?;
                        format!("htp-v{arch} {qnn}")
                    }
                };
                ev.identity = format!("{b}@{device}");
            }
            Response::Error { message, .. } => {
                return Err(EvalError::device_lost(format!("device {name}: {message}")).into())
            }
            other => {
                return Err(EvalError::device_lost(format!(
                    "device {name}: unexpected handshake answer {other:?}"
                ))
                .into())
            }
        }
        let g = ev.push(&postcard::to_allocvec(&*ev.graph)?)?;
        let s = ev.push(&postcard::to_allocvec(&c.stats)?)?;
        ev.expect_ok(Request::LoadModel {
            graph: g,
            stats: s,
            backend: c.backend,
        })?;
        let d = ev.push(&to_exact_vec(&DataBlobRef {
            inputs: &c.data.inputs,
            labels: c.data.labels.as_deref(),
        })?)?;
        ev.expect_ok(Request::LoadData { data: d })?;
        Ok(ev)
    }

    /// One request and its answer. A connection that fails either way, or no answer within the deadline,
    /// is a lost device: the link is given up (a child agent killed, a socket shut down).
    fn call(&mut self, req: Request) -> Result<Response> {
        if self.broken {
            return Err(EvalError::device_lost(format!(
                "device {}: given up on after an earlier failure",
                self.name
            ))
            .into());
        }
        let (kind, units) = work_of(&req);
        let limit = self.timeout.map(|floor| {
            let slowest = self.slowest.get(kind).copied().unwrap_or(0.0);
            floor.max(Duration::from_secs_f64(SLACK * slowest * units))
        });
        let start = Instant::now();
        let answer = match self.wire.requests.send(req) {
            Err(_) => Err("the connection is closed".to_string()),
            Ok(()) => match limit {
                None => self
                    .wire
                    .answers
                    .recv()
                    .map_err(|_| "the connection is closed".into()),
                Some(l) => self.wire.answers.recv_timeout(l).map_err(|e| match e {
                    RecvTimeoutError::Timeout => format!(
                        "no answer within {:.0} s (--device-timeout; 0 waits forever)",
                        l.as_secs_f64()
                    ),
                    RecvTimeoutError::Disconnected => "the connection is closed".into(),
                }),
            },
        }
        .and_then(|a| a);
        match answer {
            Ok(r) => {
                let per_unit = start.elapsed().as_secs_f64() / units;
                let s = self.slowest.entry(kind).or_insert(0.0);
                *s = s.max(per_unit);
                Ok(r)
            }
            Err(e) => {
                self.broken = true;
                self.link.abort();
                Err(EvalError::device_lost(format!("device {}: {e}", self.name)).into())
            }
        }
    }

    /// The error for an answer that is not the expected one: the agent's own error, of the kind it gave
    /// (an unsupported config the search prunes, a failure), or a protocol surprise (the agent is not in a
    /// state to trust: a lost device).
    fn failure(&self, r: Response) -> anyhow::Error {
        match r {
            Response::Error { kind, message } => {
                EvalError::new(kind, format!("device {}: {message}", self.name)).into()
            }
            other => {
                EvalError::device_lost(format!("device {}: unexpected answer {other:?}", self.name))
                    .into()
            }
        }
    }

    fn expect_ok(&mut self, req: Request) -> Result<()> {
        match self.call(req)? {
            Response::Ok => Ok(()),
            other => Err(self.failure(other)),
        }
    }

    /// Uploads `bytes` unless the agent has them; resumes a partial upload. Returns the blob's hash.
    fn push(&mut self, bytes: &[u8]) -> Result<String> {
        let hash = blob_hash(bytes);
        let have = match self.call(Request::BlobStatus { hash: hash.clone() })? {
            Response::BlobStatus { have } => have,
            other => return Err(self.failure(other)),
        };
        if have == u64::MAX {
            return Ok(hash);
        }
        let mut offset = have.min(bytes.len() as u64) as usize;
        while offset < bytes.len() || bytes.is_empty() {
            let end = (offset + CHUNK).min(bytes.len());
            let chunk = bytes[offset..end].to_vec();
            self.pushed_bytes += chunk.len() as u64;
            self.expect_ok(Request::PutBlob {
                hash: hash.clone(),
                offset: offset as u64,
                total: bytes.len() as u64,
                chunk,
            })?;
            offset = end;
            if bytes.is_empty() {
                break;
            }
        }
        Ok(hash)
    }
}

impl AgentEvaluator {
    fn samples(&self, subset: Subset) -> usize {
        match subset {
            Subset::Phase1 => self.phase1,
            Subset::Phase2 => self.phase2,
        }
    }

    fn plan(&self, config: Option<&[Precision]>) -> Option<amp_device::quant::BitPlan> {
        config.map(|c| self.groups.bit_plan(&self.graph, c, self.per_channel))
    }

    /// Latency of one batch of the session's batch size, measured on the device.
    pub fn profile(
        &mut self,
        plan: Option<amp_device::quant::BitPlan>,
        warmup: usize,
        iterations: usize,
    ) -> Result<Latency> {
        let batch = self.batch;
        self.profile_batch(
            plan,
            Runs {
                batch,
                warmup,
                iterations,
            },
        )
    }

    fn profile_batch(
        &mut self,
        plan: Option<amp_device::quant::BitPlan>,
        runs: Runs,
    ) -> Result<Latency> {
        match self.call(Request::Profile {
            plan,
            batch: runs.batch,
            warmup: runs.warmup,
            iterations: runs.iterations,
        })? {
            Response::Latency(l) => Ok(l),
            other => Err(self.failure(other)),
        }
    }
}

impl Evaluator for AgentEvaluator {
    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn pushed_bytes(&self) -> u64 {
        self.pushed_bytes
    }

    fn pulled_bytes(&self) -> u64 {
        self.pulled_bytes
    }

    fn provenance(&self) -> Provenance {
        Provenance {
            device: self.name.clone(),
            soc: self.soc.clone(),
            backend: self.identity.clone(),
        }
    }

    fn latency(&mut self, config: Option<&[Precision]>, runs: Runs) -> Result<Latency> {
        self.profile_batch(self.plan(config), runs)
    }

    fn price_converts(&mut self, probes: &[Probe], runs: Runs) -> Result<Prices> {
        match self.call(Request::PriceConverts {
            probes: probes.to_vec(),
            warmup: runs.warmup,
            iterations: runs.iterations,
        })? {
            Response::Prices(p) => Ok(p),
            other => Err(self.failure(other)),
        }
    }

    fn score(&mut self, config: Config, subset: Subset, metric: MetricSpec) -> Result<f64> {
        match self.call(Request::Evaluate {
            plan: self.plan(config),
            samples: self.samples(subset),
            metric,
            batch: self.batch,
        })? {
            Response::Metric { value, .. } => Ok(value),
            other => Err(self.failure(other)),
        }
    }

    /// Asked in ranges of samples whose outputs fit well within a frame.
    fn outputs(&mut self, config: Option<&[Precision]>, subset: Subset) -> Result<Vec<Array>> {
        let per_sample: usize = (self.graph.outputs.iter())
            .map(|&t| 4 * self.graph.tensors[t].shape[1..].iter().product::<usize>())
            .sum();
        let step = (MAX_FRAME / 4 / per_sample.max(1)).max(1);
        let (n, plan) = (self.samples(subset), self.plan(config));
        let mut parts: Vec<Vec<Array>> = Vec::new();
        for start in (0..n).step_by(step) {
            let outputs = match self.call(Request::Outputs {
                plan: plan.clone(),
                start,
                end: (start + step).min(n),
                batch: self.batch,
            })? {
                Response::Outputs { outputs, .. } => outputs,
                other => return Err(self.failure(other)),
            };
            self.pulled_bytes += outputs.iter().map(|o| 4 * o.data.len() as u64).sum::<u64>();
            parts.resize_with(outputs.len(), Vec::new);
            for (p, o) in parts.iter_mut().zip(outputs) {
                p.push(o);
            }
        }
        Ok(parts.iter().map(|p| Array::concat(p)).collect())
    }
}

impl Drop for AgentEvaluator {
    fn drop(&mut self) {
        if !self.broken {
            // the agent's goodbye, briefly waited for
            let wait = (self.timeout).unwrap_or(GOODBYE).min(GOODBYE);
            let bye = self.wire.requests.send(Request::Shutdown).is_ok()
                && matches!(self.wire.answers.recv_timeout(wait), Ok(Ok(_)));
            if !bye {
                self.link.abort();
            }
        }
        if let Some(c) = &mut self.link.child {
            let _ = c.wait();
        }
    }
}

/// How long a closing session waits for the agent's goodbye.
const GOODBYE: Duration = Duration::from_secs(30);

/// A request may take this many times the slowest answer so far per unit of work before its device counts
/// as lost (never less than the connector's timeout).
const SLACK: f64 = 10.0;

/// A request's kind and its units of work, by which deadlines scale.
fn work_of(req: &Request) -> (&'static str, f64) {
    let (kind, units) = match req {
        Request::Evaluate { samples, .. } => ("evaluate", *samples),
        Request::Outputs { start, end, .. } => ("outputs", end.saturating_sub(*start)),
        Request::Profile {
            batch,
            warmup,
            iterations,
            ..
        } => ("profile", batch * (warmup + iterations)),
        Request::PriceConverts {
            probes,
            warmup,
            iterations,
        } => ("prices", probes.len() * (warmup + iterations)),
        _ => ("other", 1),
    };
    (kind, units.max(1) as f64)
}

/// The agent's streams on a thread of their own, one request and its answer at a time, so that the caller
/// can stop waiting: a stalled agent never blocks the host.
struct Wire {
    requests: Sender<Request>,
    answers: Receiver<Result<Response, String>>,
}

impl Wire {
    fn new(mut r: Box<dyn Read + Send>, mut w: Box<dyn Write + Send>) -> Wire {
        let (requests, asked) = channel::<Request>();
        let (answer, answers) = channel();
        std::thread::spawn(move || {
            for req in asked {
                let a = write_frame(&mut w, &req)
                    .map_err(|e| format!("sending: {e}"))
                    .and_then(|()| {
                        read_frame(&mut r)
                            .map_err(|e| format!("no answer (did the agent die?): {e}"))
                    });
                let failed = a.is_err();
                if answer.send(a).is_err() || failed {
                    return;
                }
            }
        });
        Wire { requests, answers }
    }
}
