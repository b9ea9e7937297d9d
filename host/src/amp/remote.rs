//! Evaluation through an `amp-agent`: spawned locally over stdio (`--device local`) or reached over TCP
//! (`--device tcp:HOST:PORT`). The model, statistics and data go once as content-addressed blobs (only the
//! bytes the agent lacks); each evaluation sends a per-tensor bit plan.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use amp_device::backend::qnn::QnnBackendError;
use amp_device::ir::Graph;
use amp_device::protocol::{
    blob_hash, read_frame, write_frame, BackendChoice, MetricKind, Request, Response, CHUNK,
    PROTOCOL_VERSION,
};
use amp_device::quant::{Precision, Stats};
use anyhow::{anyhow, bail, Context, Result};

use super::evaluator::{Evaluator, Metric, Subset};
use super::groups::Groups;
use crate::data::Dataset;

/// Where evaluations run.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceSpec {
    /// In this process.
    InProcess,
    /// An `amp-agent` child over stdio, with its blob cache in the given folder.
    Local,
    /// An agent already serving at this address.
    Tcp(String),
}

impl std::str::FromStr for DeviceSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<DeviceSpec> {
        match s {
            "inprocess" => Ok(DeviceSpec::InProcess),
            "local" => Ok(DeviceSpec::Local),
            t if t.starts_with("tcp:") => Ok(DeviceSpec::Tcp(t[4..].to_string())),
            other => bail!("--device {other:?}: expected local, inprocess or tcp:HOST:PORT (adb devices are not supported yet)"),
        }
    }
}

/// The `amp-agent` binary: `AMP_AGENT`, then beside this executable, then on PATH.
pub fn find_agent() -> PathBuf {
    if let Some(p) = std::env::var_os("AMP_AGENT") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let p = dir.join("amp-agent");
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from("amp-agent")
}

pub struct AgentEvaluator {
    reader: Box<dyn Read>,
    writer: Box<dyn Write>,
    child: Option<Child>,
    name: String,
    identity: String,
    graph: Arc<Graph>,
    groups: Groups,
    per_channel: bool,
    phase1: usize,
    phase2: usize,
    batch: usize,
    /// Blob bytes sent in this session (0 when the agent already had everything).
    pub pushed_bytes: u64,
}

impl AgentEvaluator {
    /// Connects, handshakes, pushes what the agent lacks and loads model and data.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        spec: &DeviceSpec,
        work: &Path,
        qnn_lib: Option<&Path>,
        backend: BackendChoice,
        graph: Arc<Graph>,
        groups: Groups,
        stats: &Stats,
        per_channel: bool,
        phase1: usize,
        data: &Dataset,
        batch: usize,
    ) -> Result<AgentEvaluator> {
        let (reader, writer, child, name): (Box<dyn Read>, Box<dyn Write>, Option<Child>, String) =
            match spec {
                DeviceSpec::Local => {
                    let agent = find_agent();
                    let mut cmd = Command::new(&agent);
                    cmd.args(["serve", "--stdio", "--device", "local", "--work"])
                        .arg(work);
                    if let Some(l) = qnn_lib {
                        cmd.arg("--qnn-lib").arg(l);
                    }
                    let mut child = cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .with_context(|| format!("starting {} (build it with `cargo build -p amp-device`, or set AMP_AGENT)", agent.display()))?;
                    let r = child.stdout.take().expect("piped");
                    let w = child.stdin.take().expect("piped");
                    (
                        Box::new(BufReader::new(r)),
                        Box::new(BufWriter::new(w)),
                        Some(child),
                        "local".into(),
                    )
                }
                DeviceSpec::Tcp(addr) => {
                    let s = TcpStream::connect(addr)
                        .with_context(|| format!("device tcp:{addr}: cannot connect"))?;
                    let r = s.try_clone()?;
                    (
                        Box::new(BufReader::new(r)),
                        Box::new(BufWriter::new(s)),
                        None,
                        format!("tcp:{addr}"),
                    )
                }
                DeviceSpec::InProcess => bail!("an in-process device has no agent"),
            };
        let mut ev = AgentEvaluator {
            reader,
            writer,
            child,
            name: name.clone(),
            identity: String::new(),
            graph,
            groups,
            per_channel,
            phase1,
            phase2: data.len(),
            batch: batch.max(1),
            pushed_bytes: 0,
        };
        match ev.call(&Request::Hello {
            protocol: PROTOCOL_VERSION,
            host_version: env!("CARGO_PKG_VERSION").into(),
        })? {
            Response::Hello {
                backends, device, ..
            } => {
                let b = match backend {
                    BackendChoice::Ref => "ref".to_string(),
                    BackendChoice::Htp { arch } => {
                        let qnn = backends.iter().find(|b| b.starts_with("htp")).ok_or_else(|| anyhow!("device {name} ({device}): no HTP backend (it offers {backends:?})"))?;
                        format!("htp-v{arch} {qnn}")
                    }
                };
                ev.identity = format!("{b}@{device}");
            }
            Response::Error { message, .. } => bail!("device {name}: {message}"),
            other => bail!("device {name}: unexpected handshake answer {other:?}"),
        }
        let g = ev.push(&postcard::to_allocvec(&*ev.graph)?)?;
        let s = ev.push(&postcard::to_allocvec(stats)?)?;
        ev.expect_ok(&Request::LoadModel {
            graph: g,
            stats: s,
            backend,
        })?;
        let d = ev.push(&postcard::to_allocvec(&(&data.inputs, &data.labels))?)?;
        ev.expect_ok(&Request::LoadData { data: d })?;
        Ok(ev)
    }

    fn call(&mut self, req: &Request) -> Result<Response> {
        write_frame(&mut self.writer, req)
            .with_context(|| format!("device {}: sending", self.name))?;
        read_frame(&mut self.reader)
            .with_context(|| format!("device {}: no answer (did the agent die?)", self.name))
    }

    fn expect_ok(&mut self, req: &Request) -> Result<()> {
        match self.call(req)? {
            Response::Ok => Ok(()),
            Response::Error { message, .. } => bail!("device {}: {message}", self.name),
            other => bail!("device {}: unexpected answer {other:?}", self.name),
        }
    }

    /// Uploads `bytes` unless the agent has them; resumes a partial upload. Returns the blob's hash.
    fn push(&mut self, bytes: &[u8]) -> Result<String> {
        let hash = blob_hash(bytes);
        let have = match self.call(&Request::BlobStatus { hash: hash.clone() })? {
            Response::BlobStatus { have } => have,
            Response::Error { message, .. } => bail!("device {}: {message}", self.name),
            other => bail!("device {}: unexpected answer {other:?}", self.name),
        };
        if have == u64::MAX {
            return Ok(hash);
        }
        let mut offset = have.min(bytes.len() as u64) as usize;
        while offset < bytes.len() || bytes.is_empty() {
            let end = (offset + CHUNK).min(bytes.len());
            let chunk = bytes[offset..end].to_vec();
            self.pushed_bytes += chunk.len() as u64;
            self.expect_ok(&Request::PutBlob {
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

impl Evaluator for AgentEvaluator {
    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn pushed_bytes(&self) -> u64 {
        self.pushed_bytes
    }

    fn evaluate(
        &mut self,
        config: Option<&[Precision]>,
        subset: Subset,
        metric: Metric,
    ) -> Result<f64> {
        let plan = config.map(|c| self.groups.bit_plan(&self.graph, c, self.per_channel));
        let samples = if subset == Subset::Phase1 {
            self.phase1
        } else {
            self.phase2
        };
        let metric = match metric {
            Metric::Accuracy => MetricKind::Accuracy,
            Metric::Sqnr => MetricKind::Sqnr,
        };
        match self.call(&Request::Evaluate {
            plan,
            samples,
            metric,
            batch: self.batch,
        })? {
            Response::Metric { value, .. } => Ok(value),
            Response::Error {
                unsupported: true,
                message,
            } => Err(QnnBackendError::Unsupported {
                node: format!("device {}", self.name),
                op: "config",
                reason: message,
            }
            .into()),
            Response::Error { message, .. } => bail!("device {}: {message}", self.name),
            other => bail!("device {}: unexpected answer {other:?}", self.name),
        }
    }
}

impl Drop for AgentEvaluator {
    fn drop(&mut self) {
        let _ = write_frame(&mut self.writer, &Request::Shutdown);
        let _ = read_frame::<Response>(&mut self.reader);
        if let Some(c) = &mut self.child {
            let _ = c.wait();
        }
    }
}
