//! The agent's request loop: handshake, content-addressed blob cache in a work directory, model and data
//! loading, evaluations scored here by the built-in metrics, model outputs for metrics the host computes,
//! latency profiling.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::backend::qnn::QnnRuntime;
use crate::backend::resume::Prefixes;
use crate::backend::{prepare, Array, EvalBackend, Prepared};
use crate::error::{ErrorKind, EvalError};
use crate::ir::Graph;
use crate::metrics::{score, MetricSpec};
use crate::protocol::{
    blob_hash, read_frame, write_frame, BackendChoice, DataBlob, FrameError, Request, Response,
    PROTOCOL_VERSION,
};
use crate::quant::{BitPlan, QuantPlan, Stats};

/// Where the agent keeps blobs; nothing is written outside it.
pub struct WorkDir {
    root: PathBuf,
}

impl WorkDir {
    pub fn new(root: &Path) -> std::io::Result<WorkDir> {
        fs::create_dir_all(root.join("blobs"))?;
        Ok(WorkDir {
            root: root.to_path_buf(),
        })
    }

    /// Path of blob `hash`; None when the name is not a plain hex digest (no path can escape the folder).
    fn blob(&self, hash: &str) -> Option<PathBuf> {
        (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.root.join("blobs").join(hash))
    }
}

/// This process's sessions still being served (by number), so that a new session resumes only uploads
/// whose session is over.
static LIVE: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());
static NEXT_SESSION: AtomicU64 = AtomicU64::new(0);

/// Sessions share the device: evaluations on the reference backend run side by side, while latency
/// measurements and anything on HTP (one accelerator) run alone.
static DEVICE: RwLock<()> = RwLock::new(());

/// One session's name among every agent process sharing a work directory: `PID-N`.
struct Session {
    n: u64,
    name: String,
}

impl Session {
    fn new() -> Session {
        let n = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = LIVE.lock() {
            l.insert(n);
        }
        Session {
            n,
            name: format!("{}-{n}", std::process::id()),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(mut l) = LIVE.lock() {
            l.remove(&self.n);
        }
    }
}

/// Whether the session named `PID-N` is still served, by this process or another one.
fn session_alive(name: &str) -> bool {
    let Some((pid, n)) = name.split_once('-') else {
        return false;
    };
    let (Ok(pid), Ok(n)) = (pid.parse::<u32>(), n.parse::<u64>()) else {
        return false;
    };
    if pid == std::process::id() {
        LIVE.lock().map(|l| l.contains(&n)).unwrap_or(false)
    } else {
        Path::new("/proc").join(pid.to_string()).exists()
    }
}

struct State {
    work: WorkDir,
    session: Session,
    qnn_lib: Option<PathBuf>,
    graph: Option<Arc<Graph>>,
    stats: Option<Stats>,
    backend: EvalBackend,
    data: Option<DataBlob>,
    /// The FP32 outputs of the first n samples, one array per model output.
    fp32: Option<(usize, Vec<Array>)>,
    /// The model last prepared, with its plan and batch size: the ranges of one config's outputs, and a
    /// profile after an evaluation, reuse it.
    last: Option<(Option<BitPlan>, usize, Prepared)>,
    /// Activations of earlier runs that later runs of other configs start from.
    prefixes: Prefixes,
}

/// A request that failed for a reason of its own (a missing blob, no model loaded): it will fail again.
fn err(message: impl Into<String>) -> Response {
    Response::Error {
        kind: ErrorKind::Failed,
        message: message.into(),
    }
}

/// The hash of a file's content ([`blob_hash`]), read a piece at a time: a blob of data is hundreds of
/// megabytes.
fn file_hash(p: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(fs::File::open(p)?)?;
    Ok(h.finalize().to_hex().to_string())
}

fn load_blob<T: serde::de::DeserializeOwned>(work: &WorkDir, hash: &str) -> Result<T, String> {
    let p = work
        .blob(hash)
        .ok_or_else(|| format!("blob name {hash:?} is not a hash"))?;
    let bytes = fs::read(&p).map_err(|e| format!("blob {hash}: {e}"))?;
    if blob_hash(&bytes) != hash {
        return Err(format!("blob {hash}: content does not match its hash"));
    }
    postcard::from_bytes(&bytes).map_err(|e| format!("blob {hash}: {e}"))
}

impl State {
    /// A new session's state: nothing loaded yet.
    fn new(work: WorkDir, qnn_lib: Option<PathBuf>) -> State {
        State {
            work,
            session: Session::new(),
            qnn_lib,
            graph: None,
            stats: None,
            backend: EvalBackend::Ref,
            data: None,
            fp32: None,
            last: None,
            prefixes: Prefixes::from_env(),
        }
    }

    fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Hello { .. } => err("handshake already done"),
            Request::BlobStatus { hash } => match self.work.blob(&hash) {
                None => err(format!("blob name {hash:?} is not a hash")),
                Some(p) => {
                    let done = file_hash(&p).is_ok_and(|h| h == hash);
                    let have = if done {
                        u64::MAX
                    } else {
                        self.partial(&p).map(|m| m.len()).unwrap_or(0)
                    };
                    Response::BlobStatus { have }
                }
            },
            Request::PutBlob {
                hash,
                offset,
                total,
                chunk,
            } => {
                let Some(p) = self.work.blob(&hash) else {
                    return err(format!("blob name {hash:?} is not a hash"));
                };
                let part = self.part(&p);
                let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                if offset != have {
                    return err(format!(
                        "blob {hash}: chunk at offset {offset}, but {have} bytes are stored"
                    ));
                }
                let mut f = match fs::OpenOptions::new().create(true).append(true).open(&part) {
                    Ok(f) => f,
                    Err(e) => return err(format!("blob {hash}: {e}")),
                };
                if let Err(e) = f.write_all(&chunk) {
                    return err(format!("blob {hash}: {e}"));
                }
                if offset + chunk.len() as u64 >= total {
                    if !file_hash(&part).is_ok_and(|h| h == hash) {
                        let _ = fs::remove_file(&part);
                        return err(format!(
                            "blob {hash}: received content does not match its hash; discarded"
                        ));
                    }
                    if let Err(e) = fs::rename(&part, &p) {
                        return err(format!("blob {hash}: {e}"));
                    }
                }
                Response::Ok
            }
            Request::LoadModel {
                graph,
                stats,
                backend,
            } => {
                let g: Graph = match load_blob(&self.work, &graph) {
                    Ok(g) => g,
                    Err(e) => return err(e),
                };
                let s: Stats = match load_blob(&self.work, &stats) {
                    Ok(s) => s,
                    Err(e) => return err(e),
                };
                self.backend = match backend {
                    BackendChoice::Ref => EvalBackend::Ref,
                    BackendChoice::Htp { arch } => {
                        let rt = qnn_sys::locate_htp(self.qnn_lib.as_deref())
                            .map_err(|e| e.to_string())
                            .and_then(|p| QnnRuntime::load(&p, arch).map_err(|e| e.to_string()));
                        match rt {
                            Ok(rt) => EvalBackend::Htp(Arc::new(rt)),
                            Err(e) => return err(e),
                        }
                    }
                };
                self.graph = Some(Arc::new(g));
                self.stats = Some(s);
                self.fp32 = None;
                self.last = None;
                self.prefixes.clear();
                Response::Ok
            }
            Request::LoadData { data } => match load_blob::<DataBlob>(&self.work, &data) {
                Ok(d) => {
                    self.data = Some(d);
                    self.fp32 = None;
                    self.prefixes.clear();
                    Response::Ok
                }
                Err(e) => err(e),
            },
            Request::Evaluate {
                plan,
                samples,
                metric,
                batch,
            } => self.evaluate(plan, samples, metric, batch),
            Request::Outputs {
                plan,
                start,
                end,
                batch,
            } => {
                let t = Instant::now();
                match self.run_range(plan, start, end, batch) {
                    Ok(outputs) => Response::Outputs {
                        outputs,
                        seconds: t.elapsed().as_secs_f64(),
                    },
                    Err(r) => r,
                }
            }
            Request::Profile {
                plan,
                batch,
                warmup,
                iterations,
            } => self.profile(plan, batch, warmup, iterations),
            Request::PriceConverts {
                probes,
                warmup,
                iterations,
            } => match crate::convert::price(&self.backend, &probes, warmup, iterations) {
                Ok(p) => Response::Prices(p),
                Err(e) => err(format!("{e:#}")),
            },
            Request::Shutdown => Response::Bye,
        }
    }

    /// Where this session writes an upload of blob `p`: a file of its own, so that sessions uploading the
    /// same blob at once never write into each other's.
    fn part(&self, p: &Path) -> PathBuf {
        p.with_extension(format!("part.{}", self.session.name))
    }

    /// This session's partial upload of blob `p`, else one left by a session that is over (taken over, to
    /// resume it), else None.
    fn partial(&self, p: &Path) -> Option<fs::Metadata> {
        let own = self.part(p);
        if let Ok(m) = fs::metadata(&own) {
            return Some(m);
        }
        let stem = format!("{}.part.", p.file_name()?.to_str()?);
        for e in fs::read_dir(p.parent()?).ok()?.flatten() {
            let name = e.file_name();
            let Some(owner) = name.to_str().and_then(|n| n.strip_prefix(&stem)) else {
                continue;
            };
            // a rename is atomic: of two sessions taking over the same upload, one gets it
            if !session_alive(owner) && fs::rename(e.path(), &own).is_ok() {
                return fs::metadata(&own).ok();
            }
        }
        None
    }

    /// The prepared model of `plan` at `batch`: the last one when it matches, else a new one.
    fn model(&mut self, plan: Option<BitPlan>, batch: usize) -> Result<&mut Prepared, Response> {
        let (Some(g), Some(stats)) = (&self.graph, &self.stats) else {
            return Err(err("load a model and data first"));
        };
        let fresh = !matches!(&self.last, Some((p, b, _)) if *p == plan && *b == batch);
        if fresh {
            self.last = None;
            let qp = match &plan {
                None => None,
                Some(b) => Some(QuantPlan::new(g, stats, b).map_err(|e| err(e.to_string()))?),
            };
            let m = prepare(&self.backend, g, qp, batch).map_err(classify)?;
            self.last = Some((plan, batch, m));
        }
        Ok(&mut self.last.as_mut().expect("prepared above").2)
    }

    /// The model outputs of `plan` on samples `start..end` (clamped to the data), one array per output.
    fn run_range(
        &mut self,
        plan: Option<BitPlan>,
        start: usize,
        end: usize,
        batch: usize,
    ) -> Result<Vec<Array>, Response> {
        let batch = batch.max(1);
        let Some(data) = self.data.take() else {
            return Err(err("load a model and data first"));
        };
        let end = end.min(data.inputs.batch());
        let mut prefixes = std::mem::take(&mut self.prefixes);
        let r = self.model(plan, batch).and_then(|m| {
            prefixes
                .run_batched(m, &data.inputs, start.min(end)..end, batch)
                .map_err(classify)
        });
        self.prefixes = prefixes;
        self.data = Some(data);
        r
    }

    fn evaluate(
        &mut self,
        plan: Option<BitPlan>,
        samples: usize,
        metric: MetricSpec,
        batch: usize,
    ) -> Response {
        let t = Instant::now();
        let outs = match self.run_range(plan, 0, samples, batch) {
            Ok(o) => o,
            Err(r) => return r,
        };
        let n = outs.first().map_or(0, |o| o.batch());
        if !metric.kind.needs_labels() && self.fp32.as_ref().map(|f| f.0) != Some(n) {
            match self.run_range(None, 0, n, batch) {
                Ok(f) => self.fp32 = Some((n, f)),
                Err(r) => return r,
            }
        }
        let labels = self
            .data
            .as_ref()
            .and_then(|d| d.labels.as_ref())
            .map(|l| &l[..n.min(l.len())]);
        let fp32 = self.fp32.as_ref().map(|f| &f.1[..]);
        match score(metric, &outs, fp32, labels) {
            Ok(value) => Response::Metric {
                value,
                seconds: t.elapsed().as_secs_f64(),
            },
            // the metric cannot score this data (no labels, a label outside the classes): no config will do
            Err(message) => Response::Error {
                kind: ErrorKind::Halt,
                message,
            },
        }
    }

    fn profile(
        &mut self,
        plan: Option<BitPlan>,
        batch: usize,
        warmup: usize,
        iterations: usize,
    ) -> Response {
        let Some(data) = self.data.take() else {
            return err("load a model and data first");
        };
        let batch = batch.max(1);
        let xb = data.inputs.slice_batch(0, batch.min(data.inputs.batch()));
        let r = match self.model(plan, batch) {
            Ok(m) => match crate::backend::measure_latency(m, &xb, warmup, iterations) {
                Ok(l) => Response::Latency(l),
                Err(e) => classify(e),
            },
            Err(r) => r,
        };
        self.data = Some(data);
        r
    }
}

/// An evaluation's error as the host's search reads it.
fn classify(e: anyhow::Error) -> Response {
    Response::Error {
        kind: EvalError::kind_of(&e),
        message: format!("{e:#}"),
    }
}

/// What this agent can run, for the handshake.
pub fn backends(qnn_lib: Option<&Path>) -> Vec<String> {
    let mut b = vec!["ref".to_string()];
    if let Ok(p) = qnn_sys::locate_htp(qnn_lib) {
        if let Ok(lib) = qnn_sys::Library::load(&p) {
            b.push(format!("htp {}", lib.build_id().unwrap_or_default()));
        }
    }
    b
}

/// The SoC (Android's `ro.soc.manufacturer`/`ro.soc.model`, else `ro.board.platform`) or, elsewhere, the CPU
/// model from /proc/cpuinfo.
pub fn soc() -> String {
    let prop = |name: &str| {
        std::process::Command::new("getprop")
            .arg(name)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(soc) = soc_from(prop) {
        return soc;
    }
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Hardware"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// An Android device's SoC from its properties: `ro.soc.model` (Android 12 and later) or else
/// `ro.board.platform`, after `ro.soc.manufacturer` when that is set; None without either. The one rule for
/// the agent on the device and for the host reading `adb shell getprop`.
pub fn soc_from(prop: impl Fn(&str) -> Option<String>) -> Option<String> {
    let prop = |name: &str| prop(name).filter(|v| !v.is_empty());
    let model = prop("ro.soc.model").or_else(|| prop("ro.board.platform"))?;
    Some(match prop("ro.soc.manufacturer") {
        Some(v) => format!("{v} {model}"),
        None => model,
    })
}

/// Serves one connection until Shutdown or end of stream. Protocol errors end the connection with an error
/// saying what was wrong.
pub fn serve(
    mut r: impl Read,
    mut w: impl Write,
    work: WorkDir,
    qnn_lib: Option<PathBuf>,
    device: String,
) -> Result<(), FrameError> {
    match read_frame::<Request>(&mut r)? {
        Request::Hello { protocol, .. } if protocol == PROTOCOL_VERSION => {
            let backends = backends(qnn_lib.as_deref());
            write_frame(
                &mut w,
                &Response::Hello {
                    protocol: PROTOCOL_VERSION,
                    agent_version: env!("CARGO_PKG_VERSION").into(),
                    backends,
                    device,
                    soc: soc(),
                },
            )?;
        }
        Request::Hello { protocol, .. } => {
            let msg = format!("protocol version mismatch: host speaks {protocol}, agent speaks {PROTOCOL_VERSION}");
            write_frame(&mut w, &err(msg))?;
            return Ok(());
        }
        other => {
            write_frame(&mut w, &err(format!("expected Hello first, got {other:?}")))?;
            return Ok(());
        }
    }
    let mut st = State::new(work, qnn_lib);
    loop {
        let req = match read_frame::<Request>(&mut r) {
            Ok(req) => req,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) => {
                let _ = write_frame(&mut w, &err(format!("bad frame: {e}")));
                return Err(e);
            }
        };
        let bye = req == Request::Shutdown;
        // a request that panics (a model or data nothing validated for this case) is answered with an error
        // and the state it was building is dropped; the session and the agent go on
        let alone = matches!(
            req,
            Request::Profile { .. } | Request::PriceConverts { .. } | Request::LoadModel { .. }
        ) || matches!(st.backend, EvalBackend::Htp(_));
        let (_shared, _alone) = if alone {
            (
                None,
                Some(DEVICE.write().unwrap_or_else(|e| e.into_inner())),
            )
        } else {
            (Some(DEVICE.read().unwrap_or_else(|e| e.into_inner())), None)
        };
        let reply = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| st.handle(req)))
        {
            Ok(r) => r,
            Err(p) => {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                st.last = None;
                st.fp32 = None;
                err(format!("the agent failed on this request: {what}"))
            }
        };
        drop((_shared, _alone));
        write_frame(&mut w, &reply)?;
        if bye {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soc_is_the_model_after_its_maker_else_the_platform() {
        let props = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
        };
        const FULL: &[(&str, &str)] = &[
            ("ro.soc.manufacturer", "QTI"),
            ("ro.soc.model", "SM8550"),
            ("ro.board.platform", "kalama"),
        ];
        assert_eq!(soc_from(props(FULL)).as_deref(), Some("QTI SM8550"));
        const OLD: &[(&str, &str)] = &[("ro.soc.model", ""), ("ro.board.platform", "kona")];
        assert_eq!(soc_from(props(OLD)).as_deref(), Some("kona"));
        assert_eq!(soc_from(props(&[])), None);
    }

    fn session(requests: &[Request]) -> Vec<Response> {
        let dir = std::env::temp_dir().join(format!(
            "amp-agent-test-{}-{}",
            std::process::id(),
            requests.len()
        ));
        let mut input = Vec::new();
        write_frame(
            &mut input,
            &Request::Hello {
                protocol: PROTOCOL_VERSION,
                host_version: "test".into(),
            },
        )
        .unwrap();
        for r in requests {
            write_frame(&mut input, r).unwrap();
        }
        let mut output = Vec::new();
        serve(
            input.as_slice(),
            &mut output,
            WorkDir::new(&dir).unwrap(),
            None,
            "test".into(),
        )
        .unwrap();
        let mut r = output.as_slice();
        let mut out = Vec::new();
        while let Ok(m) = read_frame::<Response>(&mut r) {
            out.push(m);
        }
        let _ = fs::remove_dir_all(&dir);
        out
    }

    #[test]
    fn a_blob_whose_content_does_not_match_its_hash_is_refused() {
        let good = b"hello".to_vec();
        let hash = blob_hash(&good);
        let out = session(&[
            Request::PutBlob {
                hash: hash.clone(),
                offset: 0,
                total: 5,
                chunk: b"jello".to_vec(),
            },
            Request::BlobStatus { hash: hash.clone() },
            Request::PutBlob {
                hash: hash.clone(),
                offset: 0,
                total: 5,
                chunk: good,
            },
            Request::BlobStatus { hash },
        ]);
        assert!(
            matches!(&out[1], Response::Error { message, .. } if message.contains("does not match its hash")),
            "{out:?}"
        );
        assert_eq!(out[2], Response::BlobStatus { have: 0 });
        assert_eq!(out[3], Response::Ok);
        assert_eq!(out[4], Response::BlobStatus { have: u64::MAX });
    }

    fn state(dir: &Path) -> State {
        State::new(WorkDir::new(dir).unwrap(), None)
    }

    /// The defect this guards: two sessions uploading one blob at once wrote into one partial file ("chunk
    /// at offset 0, but 44547 bytes are stored").
    #[test]
    fn sessions_uploading_one_blob_at_once_each_write_their_own_and_an_ended_one_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let blob: Vec<u8> = (0..100u8).collect();
        let hash = blob_hash(&blob);
        let put = |st: &mut State, from: usize, to: usize| {
            st.handle(Request::PutBlob {
                hash: hash.clone(),
                offset: from as u64,
                total: blob.len() as u64,
                chunk: blob[from..to].to_vec(),
            })
        };
        let status = |st: &mut State| st.handle(Request::BlobStatus { hash: hash.clone() });
        let (mut a, mut b) = (state(dir.path()), state(dir.path()));
        assert_eq!(put(&mut a, 0, 40), Response::Ok);
        // b starts while a is live: it does not take a's upload
        assert_eq!(status(&mut b), Response::BlobStatus { have: 0 });
        assert_eq!(put(&mut b, 0, 30), Response::Ok);
        assert_eq!(put(&mut a, 40, 70), Response::Ok);
        assert_eq!(put(&mut b, 30, 100), Response::Ok);
        assert_eq!(status(&mut b), Response::BlobStatus { have: u64::MAX });
        assert_eq!(put(&mut a, 70, 100), Response::Ok);
        assert_eq!(
            fs::read(dir.path().join("blobs").join(&hash)).unwrap(),
            blob
        );

        // an upload whose session ended is resumed by the next one
        let other: Vec<u8> = (0..50u8).rev().collect();
        let h2 = blob_hash(&other);
        let mut c = state(dir.path());
        let r = c.handle(Request::PutBlob {
            hash: h2.clone(),
            offset: 0,
            total: 50,
            chunk: other[..20].to_vec(),
        });
        assert_eq!(r, Response::Ok);
        drop(c);
        let mut d = state(dir.path());
        let r = d.handle(Request::BlobStatus { hash: h2.clone() });
        assert_eq!(r, Response::BlobStatus { have: 20 });
        let r = d.handle(Request::PutBlob {
            hash: h2.clone(),
            offset: 20,
            total: 50,
            chunk: other[20..].to_vec(),
        });
        assert_eq!(r, Response::Ok);
        assert_eq!(fs::read(dir.path().join("blobs").join(&h2)).unwrap(), other);
    }

    #[test]
    fn blob_names_that_are_not_hashes_cannot_leave_the_work_dir() {
        let out = session(&[
            Request::PutBlob {
                hash: "../../etc/passwd".into(),
                offset: 0,
                total: 1,
                chunk: vec![1],
            },
            Request::LoadData {
                data: "/etc/passwd".into(),
            },
        ]);
        for r in &out[1..] {
            assert!(
                matches!(r, Response::Error { message, .. } if message.contains("is not a hash")),
                "{r:?}"
            );
        }
    }

    #[test]
    fn evaluating_before_loading_is_an_error_not_a_panic() {
        let out = session(&[
            Request::Evaluate {
                plan: None,
                samples: 4,
                metric: MetricSpec {
                    kind: crate::metrics::MetricKind::Top1,
                    output: None,
                },
                batch: 2,
            },
            Request::Outputs {
                plan: None,
                start: 0,
                end: 4,
                batch: 2,
            },
            Request::Shutdown,
        ]);
        for r in &out[1..3] {
            assert!(
                matches!(r, Response::Error { message, .. } if message.contains("load a model")),
                "{out:?}"
            );
        }
        assert_eq!(out[3], Response::Bye);
    }
}
