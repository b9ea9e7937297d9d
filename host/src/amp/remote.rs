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

use super::evaluator::{Evaluator, Job, Latency, Metric, Prices, Probe, Provenance, Subset};
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
    /// A device reached through adb (Debian's `adb` client; `ADB_SERVER_SOCKET` is honoured).
    Adb(String),
}

impl std::str::FromStr for DeviceSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<DeviceSpec> {
        match s {
            "inprocess" => Ok(DeviceSpec::InProcess),
            "local" => Ok(DeviceSpec::Local),
            "adb" => std::env::var("ANDROID_SERIAL")
                .map(DeviceSpec::Adb)
                .map_err(|_| anyhow!("--device adb: set ANDROID_SERIAL or give adb:SERIAL")),
            t if t.starts_with("tcp:") => Ok(DeviceSpec::Tcp(t[4..].to_string())),
            t if t.starts_with("adb:") => Ok(DeviceSpec::Adb(t[4..].to_string())),
            "" => bail!(
                "--device: empty; expected local, inprocess, tcp:HOST:PORT, adb:SERIAL or a serial"
            ),
            serial => Ok(DeviceSpec::Adb(serial.to_string())),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::InProcess => write!(f, "inprocess"),
            DeviceSpec::Local => write!(f, "local"),
            DeviceSpec::Tcp(a) => write!(f, "tcp:{a}"),
            DeviceSpec::Adb(s) => write!(f, "adb:{s}"),
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
    reader: Box<dyn Read + Send>,
    writer: Box<dyn Write + Send>,
    child: Option<Child>,
    // dropped after the connection: removes the forward and stops the agent
    _adb: Option<AdbSession>,
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
        let mut adb_session = None;
        let (reader, writer, child, name): (
            Box<dyn Read + Send>,
            Box<dyn Write + Send>,
            Option<Child>,
            String,
        ) = match spec {
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
                s.set_nodelay(true)?;
                let r = s.try_clone()?;
                (
                    Box::new(BufReader::new(r)),
                    Box::new(BufWriter::new(s)),
                    None,
                    format!("tcp:{addr}"),
                )
            }
            DeviceSpec::Adb(serial) => {
                let session = AdbSession::start(serial, qnn_lib)?;
                let s = session.connect()?;
                let r = s.try_clone()?;
                adb_session = Some(session);
                (
                    Box::new(BufReader::new(r)),
                    Box::new(BufWriter::new(s)),
                    None,
                    format!("adb:{serial}"),
                )
            }
            DeviceSpec::InProcess => bail!("an in-process device has no agent"),
        };
        let mut ev = AgentEvaluator {
            reader,
            writer,
            child,
            _adb: adb_session,
            name: name.clone(),
            identity: String::new(),
            soc: String::new(),
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
                backends,
                device,
                soc,
                ..
            } => {
                ev.soc = soc;
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

    /// The error for an answer that is not the expected one: an unsupported config (which the search
    /// prunes), the agent's own error, or a protocol surprise.
    fn failure(&self, r: Response) -> anyhow::Error {
        match r {
            Response::Error {
                unsupported: true,
                message,
            } => QnnBackendError::Unsupported {
                node: format!("device {}", self.name),
                op: "config",
                reason: message,
            }
            .into(),
            Response::Error { message, .. } => anyhow!("device {}: {message}", self.name),
            other => anyhow!("device {}: unexpected answer {other:?}", self.name),
        }
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

impl AgentEvaluator {
    /// Raw model outputs (batched as the agent ran them) and per-sample top-1 correctness of a config on the
    /// first `samples` samples, for metrics computed on the host.
    pub fn outputs(
        &mut self,
        config: Option<&[Precision]>,
        samples: usize,
    ) -> Result<(Vec<amp_device::backend::Array>, Vec<bool>)> {
        let plan = config.map(|c| self.groups.bit_plan(&self.graph, c, self.per_channel));
        match self.call(&Request::Evaluate {
            plan,
            samples,
            metric: MetricKind::Accuracy,
            batch: self.batch,
            outputs: true,
        })? {
            Response::Metric {
                outputs: Some(o),
                correct: Some(c),
                ..
            } => Ok((o, c)),
            Response::Error { message, .. } => bail!("device {}: {message}", self.name),
            other => bail!("device {}: unexpected answer {other:?}", self.name),
        }
    }

    /// Latency of one batch of the session's batch size, measured on the device.
    pub fn profile(
        &mut self,
        plan: Option<amp_device::quant::BitPlan>,
        warmup: usize,
        iterations: usize,
    ) -> Result<Latency> {
        let batch = self.batch;
        self.profile_batch(plan, batch, warmup, iterations)
    }

    fn profile_batch(
        &mut self,
        plan: Option<amp_device::quant::BitPlan>,
        batch: usize,
        warmup: usize,
        iterations: usize,
    ) -> Result<Latency> {
        match self.call(&Request::Profile {
            plan,
            batch,
            warmup,
            iterations,
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

    fn provenance(&self) -> Provenance {
        Provenance {
            device: self.name.clone(),
            soc: self.soc.clone(),
            backend: self.identity.clone(),
        }
    }

    fn latency(
        &mut self,
        config: Option<&[Precision]>,
        batch: usize,
        warmup: usize,
        iterations: usize,
    ) -> Result<Latency> {
        let plan = config.map(|c| self.groups.bit_plan(&self.graph, c, self.per_channel));
        self.profile_batch(plan, batch, warmup, iterations)
    }

    fn price_converts(
        &mut self,
        probes: &[Probe],
        warmup: usize,
        iterations: usize,
    ) -> Result<Prices> {
        match self.call(&Request::PriceConverts {
            probes: probes.to_vec(),
            warmup,
            iterations,
        })? {
            Response::Prices(p) => Ok(p),
            other => Err(self.failure(other)),
        }
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
            outputs: false,
        })? {
            Response::Metric { value, .. } => Ok(value),
            other => Err(self.failure(other)),
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

/// Where the agent lives on an Android device (or in the stand-in's sandbox).
const ADB_DIR: &str = "/data/local/tmp/amp";

/// An agent started on a device through adb, reached through `adb forward`.
pub struct AdbSession {
    serial: String,
    shell: Child,
    local_port: u16,
}

/// `adb -s SERIAL`, with `-H`/`-P` from `AMP_ADB_SERVER_HOST`/`AMP_ADB_SERVER_PORT` (set by amp-host's
/// `--adb-host`/`--adb-port`) for a remote adb server; `ADB_SERVER_SOCKET` is honoured by adb itself.
fn adb(serial: &str) -> Command {
    let mut c = Command::new(std::env::var_os("AMP_ADB").unwrap_or_else(|| "adb".into()));
    if let Some(h) = std::env::var_os("AMP_ADB_SERVER_HOST") {
        c.arg("-H").arg(h);
    }
    if let Some(p) = std::env::var_os("AMP_ADB_SERVER_PORT") {
        c.arg("-P").arg(p);
    }
    c.arg("-s").arg(serial);
    c
}

/// Runs an adb command; its output, or an error naming the device and adb's own message.
fn adb_run(serial: &str, args: &[&str]) -> Result<String> {
    let out = adb(serial)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| "running adb (install Debian's `adb` package)".to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "device {serial}: adb {} failed: {}{}",
            args.join(" "),
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(text)
}

impl AdbSession {
    /// Pushes the agent (and QNN libraries) unless the device has this version, starts it listening on a
    /// device port, and forwards a local port to it.
    pub fn start(serial: &str, qnn_lib: Option<&Path>) -> Result<AdbSession> {
        adb_run(serial, &["shell", &format!("mkdir -p {ADB_DIR}/work")])?;
        let agent = std::env::var_os("AMP_AGENT_DEVICE")
            .map(PathBuf::from)
            .unwrap_or_else(find_agent);
        let bytes = std::fs::read(&agent)
            .with_context(|| format!("reading the agent binary {}", agent.display()))?;
        let hash = blob_hash(&bytes);
        let remote_hash = adb_run(
            serial,
            &[
                "shell",
                &format!("cat {ADB_DIR}/amp-agent.blake3 2>/dev/null; true"),
            ],
        )?;
        if remote_hash.trim() != hash {
            adb_run(
                serial,
                &[
                    "push",
                    agent.to_str().unwrap_or_default(),
                    &format!("{ADB_DIR}/amp-agent"),
                ],
            )?;
            if let Some(dir) = qnn_lib {
                for e in std::fs::read_dir(dir)
                    .with_context(|| format!("reading {}", dir.display()))?
                    .flatten()
                {
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "so")
                        || p.to_string_lossy().contains(".so.")
                    {
                        adb_run(
                            serial,
                            &[
                                "push",
                                p.to_str().unwrap_or_default(),
                                &format!("{ADB_DIR}/"),
                            ],
                        )?;
                    }
                }
            }
            adb_run(
                serial,
                &[
                    "shell",
                    &format!(
                        "chmod 755 {ADB_DIR}/amp-agent && echo {hash} > {ADB_DIR}/amp-agent.blake3"
                    ),
                ],
            )?;
        }
        // a device port unlikely to be taken; the agent fails loudly if it is
        // distinct per process and per device (stand-in devices share one machine's ports)
        let salt = blake3::hash(serial.as_bytes()).as_bytes()[0] as u32 * 131;
        let port = 20000 + ((std::process::id() + salt) % 20000) as u16;
        let cmd = format!(
            "cd {ADB_DIR} && LD_LIBRARY_PATH={ADB_DIR} ADSP_LIBRARY_PATH={ADB_DIR} exec ./amp-agent serve --listen 127.0.0.1:{port} --once --work {ADB_DIR}/work --qnn-lib {ADB_DIR} --device {serial}"
        );
        let mut shell = adb(serial)
            .args(["shell", &cmd])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        // wait for the agent's "listening on" line, then keep relaying its log to our stderr
        let err = shell.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(err).lines();
            for line in lines.by_ref().map_while(|l| l.ok()) {
                let listening = line.contains("listening on");
                let _ = tx.send(line.clone());
                if listening {
                    break;
                }
            }
            for line in lines.map_while(|l| l.ok()) {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        });
        let mut log = Vec::new();
        loop {
            match rx.recv_timeout(std::time::Duration::from_secs(20)) {
                Ok(line) if line.contains("listening on") => break,
                Ok(line) => log.push(line),
                Err(_) => {
                    let _ = shell.kill();
                    bail!(
                        "device {serial}: the agent did not start: {}",
                        if log.is_empty() {
                            "no output".to_string()
                        } else {
                            log.join(" | ")
                        }
                    );
                }
            }
        }
        let fwd = adb_run(serial, &["forward", "tcp:0", &format!("tcp:{port}")])?;
        let local_port: u16 = fwd
            .trim()
            .parse()
            .map_err(|_| anyhow!("device {serial}: adb forward answered {fwd:?}"))?;
        Ok(AdbSession {
            serial: serial.to_string(),
            shell,
            local_port,
        })
    }

    /// Connects to the forwarded port (the agent is already listening).
    pub fn connect(&self) -> Result<TcpStream> {
        TcpStream::connect(("127.0.0.1", self.local_port))
            .with_context(|| format!("device {}: forwarded port {}", self.serial, self.local_port))
    }
}

impl Drop for AdbSession {
    fn drop(&mut self) {
        let _ = adb(&self.serial)
            .args(["forward", "--remove", &format!("tcp:{}", self.local_port)])
            .stdin(Stdio::null())
            .output();
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}

/// What it takes to (re)connect an agent: everything `AgentEvaluator::connect` needs.
#[derive(Clone)]
pub struct Connector {
    pub work: PathBuf,
    pub qnn_lib: Option<PathBuf>,
    pub backend: BackendChoice,
    pub graph: Arc<Graph>,
    pub groups: Groups,
    pub stats: Stats,
    pub per_channel: bool,
    pub phase1: usize,
    pub data: Dataset,
    pub batch: usize,
}

impl Connector {
    pub fn connect(&self, spec: &DeviceSpec) -> Result<AgentEvaluator> {
        AgentEvaluator::connect(
            spec,
            &self.work,
            self.qnn_lib.as_deref(),
            self.backend,
            self.graph.clone(),
            self.groups.clone(),
            &self.stats,
            self.per_channel,
            self.phase1,
            &self.data,
            self.batch,
        )
    }
}

struct Slot {
    spec: DeviceSpec,
    ev: Option<AgentEvaluator>,
    restarted: bool,
    served: usize,
}

/// Several devices with the same backend: jobs go to whichever is free; a device that fails is reconnected
/// once, then dropped, and its job goes back to the queue. Results do not depend on which device served.
pub struct PoolEvaluator {
    slots: Vec<Slot>,
    connector: Connector,
    identity: String,
}

fn is_unsupported(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<QnnBackendError>(),
        Some(QnnBackendError::Unsupported { .. })
    )
}

impl PoolEvaluator {
    pub fn connect(specs: &[DeviceSpec], connector: Connector) -> Result<PoolEvaluator> {
        let mut slots = Vec::new();
        let mut identity = None;
        for spec in specs {
            match connector.connect(spec) {
                Ok(ev) => {
                    // the pool's results are the backend's, whichever device serves
                    let backend = ev
                        .identity
                        .split('@')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    if let Some(id) = &identity {
                        if *id != backend {
                            bail!("device {spec} runs {backend}, but the pool's other devices run {id}; a pool needs one backend");
                        }
                    }
                    identity = Some(backend);
                    slots.push(Slot {
                        spec: spec.clone(),
                        ev: Some(ev),
                        restarted: false,
                        served: 0,
                    });
                }
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "amp-host: device {spec} left out of the pool: {e:#}"
                    );
                }
            }
        }
        let identity = identity.ok_or_else(|| anyhow!("no device of the pool could be reached"))?;
        Ok(PoolEvaluator {
            slots,
            connector,
            identity: format!("{identity}@pool"),
        })
    }
}

impl PoolEvaluator {
    /// The first device still in the pool: timings all come from it, so they compare with each other.
    fn first_live(&mut self) -> Result<&mut AgentEvaluator> {
        self.slots
            .iter_mut()
            .find_map(|s| s.ev.as_mut())
            .ok_or_else(|| anyhow!("every device of the pool is gone"))
    }
}

/// Runs one job on a slot, reconnecting once on failure. Err(job error) for an unsupported config or a
/// config error; None when the device is gone (the job must go elsewhere).
fn run_on(slot: &mut Slot, connector: &Connector, job: &Job) -> Option<Result<f64>> {
    loop {
        let ev = slot.ev.as_mut()?;
        match ev.evaluate(job.config.as_deref(), job.subset, job.metric) {
            Ok(v) => {
                slot.served += 1;
                return Some(Ok(v));
            }
            Err(e) if is_unsupported(&e) => return Some(Err(e)),
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "amp-host: device {} failed: {e:#}",
                    slot.spec
                );
                slot.ev = None;
                if slot.restarted {
                    let _ = writeln!(
                        std::io::stderr(),
                        "amp-host: device {} dropped from the pool",
                        slot.spec
                    );
                    return None;
                }
                slot.restarted = true;
                match connector.connect(&slot.spec) {
                    Ok(ev) => slot.ev = Some(ev),
                    Err(e) => {
                        let _ = writeln!(
                            std::io::stderr(),
                            "amp-host: device {} could not be restarted ({e:#}); dropped",
                            slot.spec
                        );
                        return None;
                    }
                }
            }
        }
    }
}

impl Evaluator for PoolEvaluator {
    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn pushed_bytes(&self) -> u64 {
        self.slots
            .iter()
            .filter_map(|s| s.ev.as_ref())
            .map(|e| e.pushed_bytes)
            .sum()
    }

    fn provenance(&self) -> Provenance {
        self.slots
            .iter()
            .find_map(|s| s.ev.as_ref())
            .map(|e| e.provenance())
            .unwrap_or_else(|| Provenance {
                device: self.identity.clone(),
                soc: String::new(),
                backend: self.identity.clone(),
            })
    }

    /// Timings come from one device (the first still in the pool), so they compare with each other.
    fn latency(
        &mut self,
        config: Option<&[Precision]>,
        batch: usize,
        warmup: usize,
        iterations: usize,
    ) -> Result<Latency> {
        let ev = self.first_live()?;
        ev.latency(config, batch, warmup, iterations)
    }

    fn price_converts(
        &mut self,
        probes: &[Probe],
        warmup: usize,
        iterations: usize,
    ) -> Result<Prices> {
        let ev = self.first_live()?;
        ev.price_converts(probes, warmup, iterations)
    }

    fn served(&self) -> Vec<(String, usize)> {
        self.slots
            .iter()
            .map(|s| (s.spec.to_string(), s.served))
            .collect()
    }

    fn evaluate(
        &mut self,
        config: Option<&[Precision]>,
        subset: Subset,
        metric: Metric,
    ) -> Result<f64> {
        let job = Job {
            config: config.map(|c| c.to_vec()),
            subset,
            metric,
        };
        for slot in &mut self.slots {
            if let Some(r) = run_on(slot, &self.connector, &job) {
                return r;
            }
        }
        bail!("every device of the pool is gone")
    }

    fn evaluate_many(
        &mut self,
        jobs: &[Job],
        done: &mut dyn FnMut(usize, Result<f64>) -> Result<()>,
    ) -> Result<()> {
        use std::collections::VecDeque;
        use std::sync::mpsc::channel;
        use std::sync::Mutex;
        let queue = Mutex::new((0..jobs.len()).collect::<VecDeque<usize>>());
        let (tx, rx) = channel::<(usize, Result<f64>)>();
        let connector = &self.connector;
        let mut first_err = None;
        std::thread::scope(|scope| {
            for slot in self.slots.iter_mut().filter(|s| s.ev.is_some()) {
                let tx = tx.clone();
                let queue = &queue;
                scope.spawn(move || loop {
                    let Some(i) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                        return;
                    };
                    match run_on(slot, connector, &jobs[i]) {
                        Some(r) => {
                            if tx.send((i, r)).is_err() {
                                return;
                            }
                        }
                        None => {
                            // this device is gone: the job goes back for the others
                            if let Ok(mut q) = queue.lock() {
                                q.push_front(i);
                            }
                            return;
                        }
                    }
                });
            }
            drop(tx);
            let mut finished = 0;
            for (i, r) in rx.iter() {
                finished += 1;
                if first_err.is_none() {
                    if let Err(e) = done(i, r) {
                        first_err = Some(e);
                        // let the workers drain quickly
                        if let Ok(mut q) = queue.lock() {
                            q.clear();
                        }
                    }
                }
            }
            if first_err.is_none() && finished < jobs.len() {
                first_err = Some(anyhow!(
                    "every device of the pool is gone; {} evaluations were not run",
                    jobs.len() - finished
                ));
            }
        });
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
