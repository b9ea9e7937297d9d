//! The command line: subcommands and their flags (flag groups that several commands share are flattened
//! into them), kept apart from what the commands do (`commands/`).

use std::path::PathBuf;
use std::sync::Arc;

use amp_device::backend::qnn::QnnRuntime;
use amp_device::metrics::MetricKind;
use amp_device::protocol::BackendChoice;
use amp_device::quant::Precision;
use amp_host::amp::evaluator::EvalBackend;
use amp_host::amp::remote::DeviceSpec;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "amp-host",
    version,
    about = "Automatic mixed precision (int8/int16 per layer group) for QNN, measured on the device.",
    after_help = "Exit codes: 0 success; 1 the answer misses its target or a threshold; 2 bad command line; 3 a device could not be reached or was lost; 4 any other error (bad model or data, a failed evaluation)."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
    /// adb server host for adb devices (adb's -H); ADB_SERVER_SOCKET works too.
    #[arg(long, global = true)]
    pub adb_host: Option<String>,
    /// adb server port for adb devices (adb's -P).
    #[arg(long, global = true)]
    pub adb_port: Option<u16>,
    /// An adb server of the farm (HOST:PORT); give it once per lab host. Its devices are named
    /// SERIAL@HOST:PORT; `--device all` and `--device soc:NAME` pick among them. Also AMP_ADB_SERVERS
    /// (comma-separated).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub adb_server: Vec<String>,
    /// No progress on stderr (a bar in a terminal; otherwise a line per step every few seconds).
    #[arg(long, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Evaluate a model on data at FP32, a uniform precision or an encodings file, by any metric.
    Eval(EvalArgs),
    /// Print op counts, MACs per op type and tensor count of a model.
    Info(InfoArgs),
    /// List the quantizer groups (activation tensor, weights, MACs) of a model.
    Groups(InfoArgs),
    /// Search the smallest set of 16-bit groups within a drop of the metric; write the pareto curve.
    Tune(TuneArgs),
    /// Write the encodings of a tuned point in AIMET's format (for QNN's --quantization_overrides).
    Export(ExportArgs),
    /// Measure graph build time and execute latency of one config on a backend.
    Bench(BenchArgs),
    /// The CI gate: measure a tuned config's metric and latency on each device and check them against
    /// thresholds; exit 1 when a device fails one, 3 when a device cannot be reached.
    Check(CheckArgs),
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
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub input: ModelArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// fp32 (reference backend only) or a uniform precision aNwM.
    #[arg(long, default_value = "a8w8")]
    pub precision: Level,
    /// Samples per execution.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Untimed executions first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed executions.
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Measure on a device's agent (`local`, `adb:SERIAL`, `tcp:HOST:PORT`) instead of in this process;
    /// the agent reports host-side wall time per execution (with --precision only).
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    #[command(flatten)]
    pub deadline: DeadlineArgs,
    #[command(flatten)]
    pub quant: QuantArgs,
}

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub input: ModelArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// A tune's results folder: checks its chosen config (config.json) with its calibration.
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub results: Option<PathBuf>,
    /// The config to check, one precision per group in `amp-host groups` order (a16w8,a8w8,…), calibrated
    /// on --data.
    #[arg(long, value_delimiter = ',')]
    pub config: Option<Vec<Precision>>,
    /// Devices to check on (`local`, `adb:SERIAL`, `tcp:HOST:PORT`), each on its own; give it several times.
    #[arg(long, default_value = "local")]
    pub device: Vec<DeviceSpec>,
    /// Where calibration results and the local agent's blob cache are kept.
    #[arg(long, default_value = ".amp-cache")]
    pub cache: PathBuf,
    #[command(flatten)]
    pub deadline: DeadlineArgs,
    #[command(flatten)]
    pub metric: MetricArgs,
    /// Fail a device whose metric is worse than this (in the metric's own unit).
    #[arg(long)]
    pub min_metric: Option<f64>,
    /// Fail a device whose metric drops more than this below FP32 measured in the same run (metrics against
    /// labels; a metric against FP32 takes --min-metric).
    #[arg(long)]
    pub max_drop: Option<f64>,
    /// Fail a device whose median latency exceeds this many microseconds.
    #[arg(long)]
    pub max_latency_us: Option<f64>,
    /// A previous `check --json` output: latencies are compared with its devices' (by device name).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// With --baseline: fail a device whose median latency grew by more than this fraction (0.10 = 10%).
    #[arg(long, default_value_t = 0.10, requires = "baseline")]
    pub max_latency_regression: f64,
    /// Batch size of the latency measurement.
    #[arg(long, default_value_t = 1)]
    pub latency_batch: usize,
    /// Timed runs of the latency measurement (after 3 warm-up runs); min, median, p90 and max are reported.
    #[arg(long, default_value_t = 20)]
    pub latency_iterations: usize,
    /// Batch size of evaluation.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Samples (the first N of --data) used to calibrate, with --config.
    #[arg(long, default_value_t = 256)]
    pub calib_samples: usize,
    /// Write a JUnit XML report here: one test case per device and threshold.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary table here (for a CI job summary, e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Which backend runs quantized configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BackendKind {
    /// amp's reference backend (pure Rust, CPU).
    Ref,
    /// Qualcomm's HTP through QNN (libQnnHtp.so; on x86_64 the emulator from scripts/fetch-qnn-runtime.sh).
    Htp,
}

/// Where QNN's HTP library is and which HTP to emulate or select.
#[derive(clap::Args, Clone)]
pub(crate) struct QnnArgs {
    /// Folder holding libQnnHtp.so (else QNN_LIB_DIR, QNN_SDK_ROOT, then ./qnn-runtime/lib).
    #[arg(long)]
    pub qnn_lib: Option<PathBuf>,
    /// HTP architecture to select (v73 or newer on the x86_64 emulator; at v68 16-bit accuracy is poor).
    #[arg(long, default_value_t = 73)]
    pub htp_arch: u32,
}

impl QnnArgs {
    /// Loads QNN's HTP backend.
    pub(crate) fn runtime(&self) -> Result<QnnRuntime> {
        let lib = qnn_sys::locate_htp(self.qnn_lib.as_deref())?;
        QnnRuntime::load(&lib, self.htp_arch).with_context(|| format!("loading {}", lib.display()))
    }
}

/// The model and the data it runs on.
#[derive(clap::Args, Clone)]
pub(crate) struct ModelArgs {
    /// The ONNX model.
    #[arg(long)]
    pub model: PathBuf,
    /// The data: an .npz (or a folder of .npy files) with one array (N, …) per model input, named as the
    /// model's inputs (`inputs` for a single-input model too), float32 for float inputs and integers for
    /// integer ones, and optionally `labels` (N,) integer. Calibration and evaluation take the first
    /// samples.
    #[arg(long)]
    pub data: PathBuf,
}

/// Which encodings a command runs: an AIMET encodings file, or those calibrated on the data.
#[derive(clap::Args)]
pub(crate) struct QuantArgs {
    /// Use exactly these encodings (AIMET format, 1.0.0 or 0.6.1) instead of --precision.
    #[arg(long)]
    pub encodings: Option<PathBuf>,
    /// Samples (the first N of --data) used to calibrate activation ranges.
    #[arg(long, default_value_t = 256)]
    pub calib_samples: usize,
    /// Where calibration results are cached.
    #[arg(long, default_value = ".amp-cache")]
    pub cache: PathBuf,
}

/// How long a device may take to answer.
#[derive(clap::Args, Clone)]
pub(crate) struct DeadlineArgs {
    /// Seconds a device may take to answer one request before it counts as lost (restarted once, then
    /// dropped); longer requests get 10× the slowest answer so far per sample. 0 waits forever.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub device_timeout: u64,
}

impl DeadlineArgs {
    pub(crate) fn limit(&self) -> Option<std::time::Duration> {
        (self.device_timeout > 0).then(|| std::time::Duration::from_secs(self.device_timeout))
    }
}

#[derive(clap::Args, Clone)]
pub(crate) struct BackendArgs {
    /// Backend that runs quantized configs.
    #[arg(long, value_enum, default_value = "ref")]
    pub backend: BackendKind,
    #[command(flatten)]
    pub qnn: QnnArgs,
}

impl BackendArgs {
    pub(crate) fn load(&self, kind: BackendKind) -> Result<EvalBackend> {
        Ok(match kind {
            BackendKind::Ref => EvalBackend::Ref,
            BackendKind::Htp => EvalBackend::Htp(Arc::new(self.qnn.runtime()?)),
        })
    }

    /// The backend as the agent protocol names it.
    pub(crate) fn choice(&self) -> BackendChoice {
        match self.backend {
            BackendKind::Ref => BackendChoice::Ref,
            BackendKind::Htp => BackendChoice::Htp {
                arch: self.qnn.htp_arch,
            },
        }
    }

    /// The backend's name in output: `ref` or `htp-vNN`.
    pub(crate) fn label(&self) -> String {
        match self.backend {
            BackendKind::Ref => "ref".into(),
            BackendKind::Htp => format!("htp-v{}", self.qnn.htp_arch),
        }
    }
}

#[derive(clap::Args)]
pub(crate) struct TraceArgs {
    #[command(flatten)]
    pub input: ModelArgs,
    /// A uniform precision aNwM.
    #[arg(long, default_value = "a16w8")]
    pub precision: Level,
    /// Samples run through both backends.
    #[arg(long, default_value_t = 8)]
    pub samples: usize,
    #[command(flatten)]
    pub qnn: QnnArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub quant: QuantArgs,
}

#[derive(clap::Args, Clone)]
pub(crate) struct TuneArgs {
    #[command(flatten)]
    pub input: ModelArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Backend for phase 1 only (e.g. `ref` while phases 0 and 2 run on `htp`); default: --backend.
    #[arg(long, value_enum)]
    pub phase1_backend: Option<BackendKind>,
    /// Where configs are evaluated: `local` (an amp-agent child over stdio), `adb:SERIAL` (or a bare serial,
    /// or SERIAL@HOST:PORT on another adb server), `tcp:HOST:PORT` (an agent serving there), `inprocess`, or
    /// the farm's adb devices: `all`, `soc:NAME`. Give it several times for a pool: jobs go to whichever
    /// device is free, and a device that fails is restarted once, then dropped. A pool is of one SoC.
    #[arg(long, default_value = "local")]
    pub device: Vec<DeviceSpec>,
    /// Tune once per SoC of the devices, into <results>/<SoC>/, with a table comparing the choices in
    /// <results>/per-soc.md.
    #[arg(long)]
    pub per_soc: bool,
    #[command(flatten)]
    pub deadline: DeadlineArgs,
    /// Largest accepted drop of the metric, in its own unit (0.01 of top-1 = one point; 0.5 dB of SQNR),
    /// from FP32 or, for a metric against the FP32 outputs, from the best uniform candidate; `none` for the
    /// whole curve.
    #[arg(long, default_value = "0.01")]
    pub allowed_drop: AllowedDrop,
    #[command(flatten)]
    pub metric: MetricArgs,
    /// Candidate precisions, comma-separated aNwM.
    #[arg(long, default_value = "a16w16,a16w8,a8w8", value_delimiter = ',')]
    pub candidates: Vec<Precision>,
    /// What phase 1 ranks the groups by: a built-in metric (see --metric), e.g. sqnr, cheaper than a
    /// command; default: --metric.
    #[arg(long)]
    pub phase1_metric: Option<MetricName>,
    /// Samples (the first N of --data) for phase 1.
    #[arg(long, default_value_t = 256)]
    pub phase1_samples: usize,
    /// Phase-2 search.
    #[arg(long, value_enum, default_value = "binary")]
    pub search: amp_host::amp::search::SearchAlgo,
    /// Samples (the first N of --data) used to calibrate activation ranges.
    #[arg(long, default_value_t = 256)]
    pub calib_samples: usize,
    /// Results directory (default ./amp-results/<model file stem>, or <its folder> for a file named model.onnx).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Ignore earlier evaluations in the results directory's journal.
    #[arg(long)]
    pub fresh: bool,
    /// When another run holds the results directory, wait this many seconds for it to end (default: fail
    /// at once, naming that run's PID).
    #[arg(long, default_value_t = 0)]
    pub wait_lock: u64,
    /// Weights quantized per tensor instead of per output channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// Batch size of each forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// What phase 2 ranks and reports: AIMET's bit-ops; bit-ops plus the Convert ops' overhead priced on
    /// the device (in bit-op equivalents via the uniform candidates' latencies); or whole-graph latency
    /// measured on the device for each point of the front.
    #[arg(long, value_enum, default_value = "bitops")]
    pub cost: amp_host::amp::cost::CostKind,
    /// Phase 3: from the phase-2 solution, raise groups to cut Convert overhead to α × its own for α in
    /// 1.0, 0.8 … 0.0 (exact solver), measure each on the device; phase3.json marks the fastest that meets
    /// the target.
    #[arg(long)]
    pub phase3: bool,
    /// Batch size of latency and Convert measurements.
    #[arg(long, default_value_t = 1)]
    pub latency_batch: usize,
    /// Timed runs per latency or Convert measurement (the median is kept), after 3 warm-up runs.
    #[arg(long, default_value_t = 20)]
    pub latency_iterations: usize,
    /// After a search on the reference backend, measure the chosen config again on HTP (in this process for a
    /// local device, on the device's own HTP otherwise) and report both; `none` skips it. Done where HTP can
    /// run; the report says why when it is not.
    #[arg(long, value_enum, default_value = "htp")]
    pub verify_on: VerifyOn,
    /// Exit 0 even when the result misses its target (the best uniform candidate already misses it, or the
    /// chosen config misses it on HTP); without it, such a tune exits 1.
    #[arg(long)]
    pub allow_miss: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Where `tune` measures its chosen config again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum VerifyOn {
    /// Qualcomm's HTP (the emulator on x86_64, the device's on a phone).
    Htp,
    /// Do not verify.
    None,
}

#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// A results directory written by `amp-host tune` (its chosen config).
    #[arg(long, required_unless_present = "precision")]
    pub results: Option<PathBuf>,
    /// Instead of --results: a uniform precision aNwM of --model, calibrated on --data.
    #[arg(long, conflicts_with = "results", requires_all = ["model", "data"])]
    pub precision: Option<Precision>,
    /// The ONNX model (with --precision).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Calibration data (with --precision), as `tune` takes it.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Samples of --data calibrating the activation ranges (with --precision).
    #[arg(long, default_value_t = 256)]
    pub calib_samples: usize,
    /// Where calibration results are cached (with --precision).
    #[arg(long, default_value = ".amp-cache")]
    pub cache: PathBuf,
    /// Weights per tensor instead of per output channel (with --precision).
    #[arg(long)]
    pub per_tensor: bool,
    /// ONNX opset of a QDQ model: 21 (16-bit QuantizeLinear in the default domain) or lower with
    /// onnxruntime's com.microsoft Q/DQ ops.
    #[arg(long, default_value_t = amp_host::amp::qdq::QDQ16_OPSET)]
    pub opset: i64,
    /// Fixed batch size of a QDQ model (QNN compiles static shapes).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Re-pick the cheapest evaluated point within this drop of the tune's metric (from the reference the
    /// tune used; default: the tuned choice).
    #[arg(long)]
    pub allowed_drop: Option<AllowedDrop>,
    /// Export phase 3's marked config (phase3.json) instead of phase 2's choice.
    #[arg(long, conflicts_with = "allowed_drop")]
    pub phase3: bool,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    /// What to write: AIMET encodings for QNN's converters' --quantization_overrides (1.0.0, or 0.6.1;
    /// qnn-overrides is 1.0.0), or qdq, a QDQ ONNX model for onnxruntime (CPU or the QNN execution provider).
    #[arg(long, value_enum, default_value = "1.0.0")]
    pub format: amp_host::amp::export::Format,
}

#[derive(clap::Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    pub input: ModelArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// fp32, or a uniform precision aNwM (a8w8, a16w8, a16w16).
    #[arg(long, default_value = "fp32")]
    pub precision: Level,
    /// Batch size of each forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Weights quantized per tensor instead of per output channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub quant: QuantArgs,
    #[command(flatten)]
    pub metric: MetricArgs,
}

/// What configs are scored by.
#[derive(clap::Args, Clone)]
pub(crate) struct MetricArgs {
    /// top1 or top5 (against the labels), or against the FP32 outputs of the same inputs, needing no
    /// labels: sqnr (dB), cosine (mean per sample), mse (lower is better), psnr (dB). Default: top1 when
    /// the data has labels, else sqnr.
    #[arg(long)]
    pub metric: Option<MetricName>,
    /// Score this model output (by its ONNX name) alone; default: every output, their values averaged
    /// (top1 and top5: the first output).
    #[arg(long)]
    pub metric_output: Option<String>,
    /// Your own evaluation, instead of --metric: a shell command run for every config with the path of an
    /// .npz of the model's outputs appended (one float32 array per output, named as in the model, samples
    /// in --data order; the FP32 outputs' .npz in $AMP_FP32_OUTPUTS); the last line it prints is the metric.
    #[arg(long, conflicts_with = "metric")]
    pub metric_cmd: Option<String>,
    /// Whether the command's metric is better higher or lower.
    #[arg(long, value_enum, default_value = "higher", requires = "metric_cmd")]
    pub metric_direction: Direction,
    /// Seconds the command may take for one config.
    #[arg(long, default_value_t = 600, requires = "metric_cmd")]
    pub metric_timeout: u64,
}

/// A built-in metric's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MetricName(pub MetricKind);

impl std::str::FromStr for MetricName {
    type Err = String;
    fn from_str(s: &str) -> Result<MetricName, String> {
        MetricKind::from_name(s).map(MetricName).ok_or_else(|| {
            let names: Vec<&str> = MetricKind::ALL.iter().map(|m| m.name()).collect();
            format!(
                "{s:?}: expected one of {} (or --metric-cmd)",
                names.join(", ")
            )
        })
    }
}

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Direction {
    Higher,
    Lower,
}

#[derive(clap::Args)]
pub(crate) struct InfoArgs {
    /// The ONNX model.
    #[arg(long)]
    pub model: PathBuf,
    /// Per-sample input shape for models with symbolic dims, e.g. 3,48,192.
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Option<Vec<usize>>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `fp32`, or a uniform precision `aNwM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Fp32,
    Uniform(Precision),
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        if s.trim().eq_ignore_ascii_case("fp32") {
            return Ok(Level::Fp32);
        }
        s.parse()
            .map(Level::Uniform)
            .map_err(|e| format!("{e}, or fp32"))
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Level::Fp32 => write!(f, "fp32"),
            Level::Uniform(p) => write!(f, "{p}"),
        }
    }
}

/// The largest accepted drop of the metric (in its own unit), or none (the whole curve).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct AllowedDrop(pub Option<f64>);

impl std::str::FromStr for AllowedDrop {
    type Err = String;
    fn from_str(s: &str) -> Result<AllowedDrop, String> {
        if s.trim().eq_ignore_ascii_case("none") {
            return Ok(AllowedDrop(None));
        }
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(AllowedDrop(Some(v))),
            Ok(v) => Err(format!("{v}: expected a drop of 0 or more, or none")),
            Err(_) => Err(format!("{s:?}: expected a number such as 0.01, or none")),
        }
    }
}
