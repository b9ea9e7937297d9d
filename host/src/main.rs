//! `amp-host`: picks per-layer int8/int16 precision for a quantized network by measuring it.
//!
//! Exit codes: 0 success, 1 error (the message names the file, node or device at fault), 2 bad usage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use amp_device::ir::Graph;
use amp_device::quant::{BitPlan, Precision, QuantPlan};
use amp_host::calib::calibrate_cached;
use amp_host::data::Dataset;
use amp_host::eval::evaluate;
use amp_host::import::{import_file, ImportOptions};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "amp-host",
    version,
    about = "Automatic mixed precision (int8/int16 per layer group) for QNN, measured on the device.",
    after_help = "Exit codes: 0 success; 1 an error (bad model, data, device); 2 bad command line."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// adb server host for adb devices (adb's -H); ADB_SERVER_SOCKET works too.
    #[arg(long, global = true)]
    adb_host: Option<String>,
    /// adb server port for adb devices (adb's -P).
    #[arg(long, global = true)]
    adb_port: Option<u16>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Evaluate a model on labelled data at FP32 or a uniform precision.
    Eval(EvalArgs),
    /// Print op counts, MACs per op type and tensor count of a model.
    Info(InfoArgs),
    /// List the quantizer groups (activation tensor, weights, MACs) of a model.
    Groups(InfoArgs),
    /// Search the smallest set of 16-bit groups within an accuracy drop; write the pareto curve.
    Tune(TuneArgs),
    /// Write the encodings of a tuned point in AIMET's format (for QNN's --quantization_overrides).
    Export(ExportArgs),
    /// Measure graph build time and execute latency of one config on a backend.
    Bench(BenchArgs),
    /// Compare the reference backend with QNN tensor by tensor on one config: where the device departs.
    Trace(TraceArgs),
    /// List the devices amp can use: this machine's agent and adb devices (state and model).
    Devices {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// Data for calibration and the benchmark batch (the first --batch samples).
    #[arg(long)]
    data: PathBuf,
    /// fp32 (reference backend only) or a uniform precision aNwM.
    #[arg(long, default_value = "a8w8")]
    precision: String,
    /// Benchmark exactly these encodings (AIMET format) instead of --precision.
    #[arg(long)]
    encodings: Option<PathBuf>,
    /// Samples per execution.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Untimed executions first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed executions.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Samples (the first N of --data) used to calibrate activation ranges.
    #[arg(long, default_value_t = 256)]
    calib_samples: usize,
    /// Where calibration results are cached.
    #[arg(long, default_value = ".amp-cache")]
    cache: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Measure on a device's agent (`local`, `adb:SERIAL`, `tcp:HOST:PORT`) instead of in this process;
    /// the agent reports host-side wall time per execution (with --precision only).
    #[arg(long)]
    device: Option<String>,
}

/// Which backend runs quantized configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BackendKind {
    /// amp's reference backend (pure Rust, CPU).
    Ref,
    /// Qualcomm's HTP through QNN (libQnnHtp.so; on x86_64 the emulator from scripts/fetch-qnn-runtime.sh).
    Htp,
}

#[derive(clap::Args, Clone)]
pub(crate) struct BackendArgs {
    /// Backend that runs quantized configs.
    #[arg(long, value_enum, default_value = "ref")]
    pub backend: BackendKind,
    /// Folder holding libQnnHtp.so (else QNN_LIB_DIR, QNN_SDK_ROOT, then ./qnn-runtime/lib).
    #[arg(long)]
    pub qnn_lib: Option<PathBuf>,
    /// HTP architecture to select (v73 or newer on the x86_64 emulator; at v68 16-bit accuracy is poor).
    #[arg(long, default_value_t = 73)]
    pub htp_arch: u32,
}

impl BackendArgs {
    pub(crate) fn load(&self, kind: BackendKind) -> Result<amp_host::amp::evaluator::EvalBackend> {
        use amp_host::amp::evaluator::EvalBackend;
        Ok(match kind {
            BackendKind::Ref => EvalBackend::Ref,
            BackendKind::Htp => {
                let lib = qnn_sys::locate_htp(self.qnn_lib.as_deref())?;
                let rt = amp_device::backend::qnn::QnnRuntime::load(&lib, self.htp_arch)
                    .with_context(|| format!("loading {}", lib.display()))?;
                EvalBackend::Htp(Arc::new(rt))
            }
        })
    }
}

#[derive(clap::Args)]
struct TraceArgs {
    /// The ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// Data for calibration and the traced samples (the first --samples).
    #[arg(long)]
    data: PathBuf,
    /// A uniform precision aNwM.
    #[arg(long, default_value = "a16w8")]
    precision: String,
    /// Trace exactly these encodings (AIMET format) instead of --precision.
    #[arg(long)]
    encodings: Option<PathBuf>,
    /// Samples run through both backends.
    #[arg(long, default_value_t = 8)]
    samples: usize,
    /// Samples (the first N of --data) used to calibrate activation ranges.
    #[arg(long, default_value_t = 256)]
    calib_samples: usize,
    /// Where calibration results are cached.
    #[arg(long, default_value = ".amp-cache")]
    cache: PathBuf,
    /// Folder holding libQnnHtp.so (else QNN_LIB_DIR, QNN_SDK_ROOT, then ./qnn-runtime/lib).
    #[arg(long)]
    qnn_lib: Option<PathBuf>,
    /// HTP architecture to select.
    #[arg(long, default_value_t = 73)]
    htp_arch: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct TuneArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// Backend for phase 1 only (e.g. `ref` while phases 0 and 2 run on `htp`); default: --backend.
    #[arg(long, value_enum)]
    phase1_backend: Option<BackendKind>,
    /// The ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// Labelled data (.npz with `inputs` and `labels`, or a folder with inputs.npy and labels.npy).
    #[arg(long)]
    data: PathBuf,
    /// Where configs are evaluated: `local` (an amp-agent child over stdio), `adb:SERIAL` (or a bare serial),
    /// `tcp:HOST:PORT` (an agent serving there), or `inprocess`. Give it several times for a pool: jobs go
    /// to whichever device is free, and a device that fails is restarted once, then dropped.
    #[arg(long, default_value = "local")]
    device: Vec<String>,
    /// Largest accepted top-1 drop from FP32 (0.01 = one point), or `none` for the whole curve.
    #[arg(long, default_value = "0.01")]
    allowed_drop: String,
    /// Candidate precisions, comma-separated aNwM.
    #[arg(long, default_value = "a16w16,a16w8,a8w8", value_delimiter = ',')]
    candidates: Vec<String>,
    /// What phase 1 measures per group.
    #[arg(long, value_enum, default_value = "accuracy")]
    phase1_metric: amp_host::amp::evaluator::Metric,
    /// Samples (the first N of --data) for phase 1.
    #[arg(long, default_value_t = 256)]
    phase1_samples: usize,
    /// Phase-2 search.
    #[arg(long, value_enum, default_value = "binary")]
    search: amp_host::amp::search::SearchAlgo,
    /// Samples (the first N of --data) used to calibrate activation ranges.
    #[arg(long, default_value_t = 256)]
    calib_samples: usize,
    /// Results directory (default ./amp-results/<model file stem>).
    #[arg(long)]
    results: Option<PathBuf>,
    /// Ignore earlier evaluations in the results directory's journal.
    #[arg(long)]
    fresh: bool,
    /// Weights quantized per tensor instead of per output channel.
    #[arg(long)]
    per_tensor: bool,
    /// Batch size of each forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// What phase 2 ranks and reports: AIMET's bit-ops; bit-ops plus the Convert ops' overhead priced on
    /// the device (in bit-op equivalents via the uniform candidates' latencies); or whole-graph latency
    /// measured on the device for each point of the front.
    #[arg(long, value_enum, default_value = "bitops")]
    cost: amp_host::amp::cost::CostKind,
    /// Phase 3: from the phase-2 solution, raise groups to cut Convert overhead to α × its own for α in
    /// 1.0, 0.8 … 0.0 (exact solver), measure each on the device; phase3.json marks the fastest that meets
    /// the target.
    #[arg(long)]
    phase3: bool,
    /// Batch size of latency and Convert measurements.
    #[arg(long, default_value_t = 1)]
    latency_batch: usize,
    /// Timed runs per latency or Convert measurement (the median is kept), after 3 warm-up runs.
    #[arg(long, default_value_t = 20)]
    latency_iterations: usize,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// A results directory written by `amp-host tune`.
    #[arg(long)]
    results: PathBuf,
    /// Re-pick the cheapest evaluated point within this drop from FP32 (default: the tuned choice).
    #[arg(long)]
    allowed_drop: Option<f64>,
    /// Export phase 3's marked config (phase3.json) instead of phase 2's choice.
    #[arg(long, conflicts_with = "allowed_drop")]
    phase3: bool,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// AIMET encodings format version.
    #[arg(long, value_enum, default_value = "1.0.0")]
    format: amp_host::amp::export::Format,
}

#[derive(clap::Args)]
struct EvalArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// Labelled data: an .npz with `inputs` (N, …) float32 and `labels` (N,), or a folder with inputs.npy and labels.npy.
    #[arg(long)]
    data: PathBuf,
    /// fp32, or a uniform precision aNwM (a8w8, a16w8, a16w16).
    #[arg(long, default_value = "fp32")]
    precision: String,
    /// Samples (the first N of --data) used to calibrate activation ranges.
    #[arg(long, default_value_t = 256)]
    calib_samples: usize,
    /// Batch size of each forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Weights quantized per tensor instead of per output channel.
    #[arg(long)]
    per_tensor: bool,
    /// Evaluate exactly these encodings (AIMET format, 1.0.0 or 0.6.1) instead of --precision.
    #[arg(long)]
    encodings: Option<PathBuf>,
    /// Where calibration results are cached.
    #[arg(long, default_value = ".amp-cache")]
    cache: PathBuf,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct InfoArgs {
    /// The ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// Per-sample input shape for models with symbolic dims, e.g. 3,48,192.
    #[arg(long, value_delimiter = ',')]
    input_shape: Option<Vec<usize>>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

mod cli_tune;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("amp-host: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // read by the adb transport for every adb command it runs (set before any thread starts)
    if let Some(h) = &cli.adb_host {
        std::env::set_var("AMP_ADB_SERVER_HOST", h);
    }
    if let Some(p) = cli.adb_port {
        std::env::set_var("AMP_ADB_SERVER_PORT", p.to_string());
    }
    match cli.cmd {
        Cmd::Eval(a) => eval(a),
        Cmd::Info(a) => info(a),
        Cmd::Groups(a) => cli_tune::groups(a.model, a.input_shape, a.json),
        Cmd::Tune(a) => cli_tune::tune(a),
        Cmd::Export(a) => cli_tune::export(a),
        Cmd::Bench(a) => bench(a),
        Cmd::Trace(a) => trace(a),
        Cmd::Devices { json } => devices(json),
    }
}

pub(crate) fn load_model(path: &Path, sample_shape: Option<Vec<usize>>) -> Result<Graph> {
    import_file(
        path,
        &ImportOptions {
            input_shape: sample_shape,
        },
    )
    .with_context(|| format!("model {}", path.display()))
}

fn eval(a: EvalArgs) -> Result<()> {
    let data = Dataset::load(&a.data)?;
    let graph = Arc::new(load_model(&a.model, Some(data.sample_shape()))?);
    let plan = plan_for(
        &graph,
        &data,
        &a.precision,
        a.encodings.as_deref(),
        a.calib_samples,
        &a.cache,
        !a.per_tensor,
    )?;
    let backend = a.backend.load(a.backend.backend)?;
    let mut model = amp_host::amp::evaluator::prepare(&backend, &graph, plan, a.batch.max(1))?;
    let (r, _) = evaluate(&mut model, &data, a.batch.max(1), "evaluating")?;
    if a.json {
        let mut obj = serde_json::to_value(&r)?;
        obj["precision"] = match &a.encodings {
            Some(p) => p.display().to_string().into(),
            None => a.precision.to_ascii_lowercase().into(),
        };
        obj["model"] = a.model.display().to_string().into();
        obj["backend"] = match a.backend.backend {
            BackendKind::Ref => "ref".into(),
            BackendKind::Htp => format!("htp-v{}", a.backend.htp_arch).into(),
        };
        println!("{obj}");
    } else {
        println!("model      {}", a.model.display());
        match &a.encodings {
            Some(p) => println!("encodings  {}", p.display()),
            None => println!("precision  {}", a.precision.to_ascii_lowercase()),
        }
        println!("samples    {}", r.samples);
        println!("top-1      {:.4}", r.top1);
        if let Some(t5) = r.top5 {
            println!("top-5      {t5:.4}");
        }
        println!("samples/s  {:.1}", r.samples_per_s);
    }
    Ok(())
}

/// The quantization plan of `precision` or of an encodings file (None: FP32).
fn plan_for(
    graph: &Arc<Graph>,
    data: &Dataset,
    precision: &str,
    encodings: Option<&Path>,
    calib_samples: usize,
    cache: &Path,
    per_channel: bool,
) -> Result<Option<QuantPlan>> {
    if let Some(path) = encodings {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        return Ok(Some(
            amp_host::amp::export::plan_from_json(graph, &v)
                .with_context(|| format!("encodings {}", path.display()))?,
        ));
    }
    if precision.eq_ignore_ascii_case("fp32") {
        return Ok(None);
    }
    let p: Precision = precision.parse().map_err(anyhow::Error::msg)?;
    let calib = data.head(calib_samples.max(1));
    let (stats, _, _) = calibrate_cached(graph.clone(), &calib.inputs, &calib.hash(), cache)?;
    let mut bits = BitPlan::uniform(graph, p);
    bits.per_channel = per_channel;
    Ok(Some(QuantPlan::new(graph, &stats, &bits)?))
}

fn trace(a: TraceArgs) -> Result<()> {
    let data = Dataset::load(&a.data)?;
    let graph = Arc::new(load_model(&a.model, Some(data.sample_shape()))?);
    let plan = plan_for(
        &graph,
        &data,
        &a.precision,
        a.encodings.as_deref(),
        a.calib_samples,
        &a.cache,
        true,
    )?
    .context("trace compares quantized configs: give a precision aNwM or --encodings")?;
    let lib = qnn_sys::locate_htp(a.qnn_lib.as_deref())?;
    let rt = amp_device::backend::qnn::QnnRuntime::load(&lib, a.htp_arch)
        .with_context(|| format!("loading {}", lib.display()))?;
    let x = data.inputs.slice_batch(0, a.samples.clamp(1, data.len()));
    let diffs = amp_host::trace::trace(&rt, &graph, &plan, &x)?;
    let first = diffs
        .iter()
        .position(|d| d.max_lsb > amp_host::trace::WITHIN_1_LSB);
    if a.json {
        let o = serde_json::json!({
            "model": a.model.display().to_string(), "htp_arch": a.htp_arch, "samples": x.batch(),
            "tensors": diffs, "first_over_1_lsb": first.map(|i| diffs[i].tensor.clone()),
        });
        println!("{o}");
        return Ok(());
    }
    println!(
        "{}: reference vs HTP v{} on {} samples, per materialised tensor",
        a.model.display(),
        a.htp_arch,
        x.batch()
    );
    println!(
        "{:>4}  {:<32} {:<18} {:>4} {:>9} {:>9} {:>8}",
        "#", "node", "op", "bits", "max LSB", "mean LSB", "≤1 LSB"
    );
    for (i, d) in diffs.iter().enumerate() {
        let mark = if Some(i) == first {
            "  ← first over 1 LSB"
        } else {
            ""
        };
        println!(
            "{:>4}  {:<32} {:<18} {:>4} {:>9.2} {:>9.3} {:>7.1}%{mark}",
            i,
            d.node,
            d.op,
            d.bits,
            d.max_lsb,
            d.mean_lsb,
            d.within_1lsb * 100.0
        );
    }
    match first {
        Some(i) => println!(
            "first tensor more than 1 LSB away: {} ({} \"{}\")",
            diffs[i].tensor, diffs[i].op, diffs[i].node
        ),
        None => println!("every tensor within 1 LSB"),
    }
    Ok(())
}

fn bench(a: BenchArgs) -> Result<()> {
    use amp_host::amp::evaluator::{prepare, Prepared};
    use std::time::Instant;
    let data = Dataset::load(&a.data)?;
    let graph = Arc::new(load_model(&a.model, Some(data.sample_shape()))?);
    if let Some(d) = &a.device {
        return bench_on_device(&a, d, &data, graph);
    }
    let plan = plan_for(
        &graph,
        &data,
        &a.precision,
        a.encodings.as_deref(),
        a.calib_samples,
        &a.cache,
        true,
    )?;
    let backend = a.backend.load(a.backend.backend)?;
    let batch = a.batch.max(1);
    let t = Instant::now();
    let mut model = prepare(&backend, &graph, plan, batch)?;
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let x = data.inputs.slice_batch(0, batch.min(data.len()));
    for _ in 0..a.warmup {
        model.run(&x)?;
    }
    let mut wall = Vec::new();
    let mut device = Vec::new();
    for _ in 0..a.iters.max(1) {
        let t = Instant::now();
        model.run(&x)?;
        wall.push(t.elapsed().as_secs_f64() * 1e6);
        if let Prepared::Htp(m) = &model {
            if let Some(us) = m.last_execute_us {
                device.push(us as f64);
            }
        }
    }
    let stats = |v: &mut Vec<f64>| -> Option<serde_json::Value> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
        Some(
            serde_json::json!({"min": v[0], "median": q(0.5), "p90": q(0.9), "max": v[v.len() - 1]}),
        )
    };
    let label = a
        .encodings
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or(a.precision.to_ascii_lowercase());
    let backend_name = match a.backend.backend {
        BackendKind::Ref => "ref".to_string(),
        BackendKind::Htp => format!("htp-v{}", a.backend.htp_arch),
    };
    let o = serde_json::json!({
        "model": a.model.display().to_string(), "config": label, "backend": backend_name, "batch": batch,
        "build_and_finalize_ms": build_ms, "iters": a.iters.max(1),
        "wall_us": stats(&mut wall), "execute_us": stats(&mut device),
    });
    if a.json {
        println!("{o}");
    } else {
        println!(
            "{} {label} on {backend_name}, batch {batch}",
            a.model.display()
        );
        println!("build + finalize  {build_ms:.1} ms");
        if let Some(w) = o["wall_us"].as_object() {
            println!(
                "host wall time    min {:.0} µs, median {:.0} µs, p90 {:.0} µs, max {:.0} µs",
                w["min"].as_f64().unwrap_or(0.0),
                w["median"].as_f64().unwrap_or(0.0),
                w["p90"].as_f64().unwrap_or(0.0),
                w["max"].as_f64().unwrap_or(0.0)
            );
        }
        if let Some(d) = o["execute_us"].as_object() {
            println!("QNN execute time  min {:.0} µs, median {:.0} µs, p90 {:.0} µs, max {:.0} µs (profile event 400)", d["min"].as_f64().unwrap_or(0.0), d["median"].as_f64().unwrap_or(0.0), d["p90"].as_f64().unwrap_or(0.0), d["max"].as_f64().unwrap_or(0.0));
        }
    }
    Ok(())
}

fn bench_on_device(a: &BenchArgs, device: &str, data: &Dataset, graph: Arc<Graph>) -> Result<()> {
    use amp_device::protocol::BackendChoice;
    use amp_host::amp::remote::Connector;
    if a.encodings.is_some() {
        anyhow::bail!(
            "--device takes --precision (a uniform config); benchmark an encodings file in process"
        );
    }
    let spec: amp_host::amp::remote::DeviceSpec = device.parse()?;
    let groups = amp_host::amp::groups::Groups::new(&graph);
    let calib = data.head(a.calib_samples.max(1));
    let (stats, _, _) = calibrate_cached(graph.clone(), &calib.inputs, &calib.hash(), &a.cache)?;
    let plan = if a.precision.eq_ignore_ascii_case("fp32") {
        None
    } else {
        let p: Precision = a.precision.parse().map_err(anyhow::Error::msg)?;
        Some(groups.bit_plan(&graph, &vec![p; groups.len()], true))
    };
    let backend = match a.backend.backend {
        BackendKind::Ref => BackendChoice::Ref,
        BackendKind::Htp => BackendChoice::Htp {
            arch: a.backend.htp_arch,
        },
    };
    let connector = Connector {
        work: a.cache.join("agent"),
        qnn_lib: a.backend.qnn_lib.clone(),
        backend,
        graph,
        groups,
        stats,
        per_channel: true,
        phase1: 0,
        data: data.head(a.batch.max(1)),
        batch: a.batch.max(1),
    };
    let mut ev = connector.connect(&spec)?;
    let l = ev.profile(plan, a.warmup, a.iters.max(1))?;
    let (min, median, p90, max) = (l.min_us, l.median_us, l.p90_us, l.max_us);
    let who = amp_host::amp::evaluator::Evaluator::identity(&ev);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"model": a.model.display().to_string(), "config": a.precision.to_ascii_lowercase(), "device": device, "evaluator": who, "batch": a.batch.max(1), "iters": a.iters.max(1), "source": l.source, "latency_us": {"min": min, "median": median, "p90": p90, "max": max}})
        );
    } else {
        println!(
            "{} {} on {who}, batch {}",
            a.model.display(),
            a.precision.to_ascii_lowercase(),
            a.batch.max(1)
        );
        println!("latency (measured by the agent, {})  min {min:.0} µs, median {median:.0} µs, p90 {p90:.0} µs, max {max:.0} µs", l.source);
    }
    Ok(())
}

fn devices(json: bool) -> Result<()> {
    let mut rows = Vec::new();
    let agent = amp_host::amp::remote::find_agent();
    let local_backends = amp_device::agent::backends(None);
    rows.push(serde_json::json!({"device": "local", "transport": "stdio", "state": if agent.is_file() { "ready" } else { "agent binary missing" }, "agent": agent.display().to_string(), "backends": local_backends}));
    let mut adb =
        std::process::Command::new(std::env::var_os("AMP_ADB").unwrap_or_else(|| "adb".into()));
    if let Some(h) = std::env::var_os("AMP_ADB_SERVER_HOST") {
        adb.arg("-H").arg(h);
    }
    if let Some(p) = std::env::var_os("AMP_ADB_SERVER_PORT") {
        adb.arg("-P").arg(p);
    }
    match adb.args(["devices", "-l"]).output() {
        Ok(out) => {
            for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
                let mut parts = line.split_whitespace();
                let (Some(serial), Some(state)) = (parts.next(), parts.next()) else { continue };
                let model = parts.find_map(|p| p.strip_prefix("model:")).unwrap_or("");
                rows.push(serde_json::json!({"device": format!("adb:{serial}"), "transport": "adb", "state": state, "model": model}));
            }
        }
        Err(e) => rows.push(serde_json::json!({"device": "adb", "transport": "adb", "state": format!("adb not available: {e}")})),
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for r in rows {
            println!(
                "{:<28} {:<6} {:<12} {}",
                r["device"].as_str().unwrap_or(""),
                r["transport"].as_str().unwrap_or(""),
                r["state"].as_str().unwrap_or(""),
                r.get("model")
                    .and_then(|m| m.as_str())
                    .map(|m| format!("model {m}"))
                    .or_else(|| r.get("backends").map(|b| format!("backends {b}")))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn info(a: InfoArgs) -> Result<()> {
    let g = load_model(&a.model, a.input_shape)?;
    let mut ops: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for n in &g.nodes {
        let e = ops.entry(n.op.name()).or_default();
        e.0 += 1;
        e.1 += g.macs(n);
    }
    let total: u64 = ops.values().map(|v| v.1).sum();
    let consts = g.tensors.iter().filter(|t| t.is_const()).count();
    let params: usize = g
        .tensors
        .iter()
        .filter(|t| t.is_const())
        .map(|t| t.numel())
        .sum();
    if a.json {
        let o = serde_json::json!({
            "model": a.model.display().to_string(),
            "hash": g.hash(),
            "input_shape": g.tensors[g.inputs[0]].shape,
            "nodes": g.nodes.len(),
            "tensors": g.tensors.len(),
            "constants": consts,
            "parameters": params,
            "macs_per_sample": total,
            "ops": ops.iter().map(|(k, v)| (k.to_string(), serde_json::json!({"count": v.0, "macs": v.1}))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{o}");
    } else {
        println!("model        {}  (hash {})", a.model.display(), g.hash());
        println!(
            "input        {:?} (batch first)",
            g.tensors[g.inputs[0]].shape
        );
        println!("nodes        {}", g.nodes.len());
        println!(
            "tensors      {} ({consts} constant, {params} parameters)",
            g.tensors.len()
        );
        println!("MACs/sample  {total}");
        println!("{:<20} {:>6} {:>14}", "op", "count", "MACs");
        for (k, v) in &ops {
            println!("{k:<20} {:>6} {:>14}", v.0, v.1);
        }
    }
    Ok(())
}
