//! `amp-agent`: runs candidate precision configs on the device for `amp-host`.
//!
//! Today it reports what this machine can run (`info`); the wire protocol and `serve` are not built yet.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "amp-agent",
    version,
    about = "amp's device agent: reports and (to come) serves the backends of this device."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the backends available here, with the QNN build id and API versions.
    Info {
        /// Folder holding libQnnHtp.so (else QNN_LIB_DIR, QNN_SDK_ROOT, then ./qnn-runtime/lib).
        #[arg(long)]
        qnn_lib: Option<PathBuf>,
        /// HTP architecture to select.
        #[arg(long, default_value_t = 73)]
        htp_arch: u32,
    },
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Info { qnn_lib, htp_arch } => {
            println!("amp-agent {}", env!("CARGO_PKG_VERSION"));
            println!(
                "cpu: {} ({} threads)",
                std::env::consts::ARCH,
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            );
            println!("backend ref: amp reference backend (CPU)");
            match qnn_sys::locate_htp(qnn_lib.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    amp_device::backend::qnn::QnnRuntime::load(&p, htp_arch)
                        .map(|rt| (p, rt))
                        .map_err(|e| e.to_string())
                }) {
                Ok((p, rt)) => println!("backend htp: {} from {}", rt.describe(), p.display()),
                Err(e) => println!("backend htp: unavailable: {e}"),
            }
            ExitCode::SUCCESS
        }
    }
}
