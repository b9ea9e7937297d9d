//! `amp-host`: picks per-layer int8/int16 precision for a quantized network by measuring it.
//!
//! Exit codes: 0 success; 1 the answer misses its target or a threshold; 2 bad command line; 3 a device could
//! not be reached or was lost; 4 any other error (the message names the file, node or device at fault).

#![forbid(unsafe_code)]

mod cli;
mod commands;

use std::process::ExitCode;

use amp_device::error::{ErrorKind, EvalError};
use amp_host::{Missed, Usage};
use anyhow::Result;
use clap::Parser;
use cli::{Cli, Cmd};

fn main() -> ExitCode {
    // clap answers bad flags itself, with exit code 2
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (code, what) = classify(&e);
            eprintln!("amp-host: {what}: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// The exit code and the word that leads the message, for an error a command ended with.
fn classify(e: &anyhow::Error) -> (u8, &'static str) {
    if e.chain().any(|c| c.is::<Missed>()) {
        (1, "target missed")
    } else if e.chain().any(|c| c.is::<Usage>()) {
        (2, "usage")
    } else if EvalError::kind_of(e) == ErrorKind::DeviceLost {
        (3, "device")
    } else {
        (4, "error")
    }
}

fn run(cli: Cli) -> Result<()> {
    amp_host::progress::set_quiet(cli.quiet);
    amp_device::backend::resume::budget_from_env().map_err(Usage)?;
    // read by the adb transport for every adb command it runs (set before any thread starts)
    if let Some(h) = &cli.adb_host {
        std::env::set_var("AMP_ADB_SERVER_HOST", h);
    }
    if let Some(p) = cli.adb_port {
        std::env::set_var("AMP_ADB_SERVER_PORT", p.to_string());
    }
    if !cli.adb_server.is_empty() {
        std::env::set_var("AMP_ADB_SERVERS", cli.adb_server.join(","));
    }
    match cli.cmd {
        Cmd::Eval(a) => commands::eval(a),
        Cmd::Info(a) => commands::info(a),
        Cmd::Groups(a) => commands::groups(a.model, a.input_shape, a.json),
        Cmd::Tune(a) => commands::tune(a),
        Cmd::Export(a) => commands::export(a),
        Cmd::Bench(a) => commands::bench(a),
        Cmd::Check(a) => commands::check(a),
        Cmd::Trace(a) => commands::trace(a),
        Cmd::Devices { json } => commands::devices(json),
    }
}
