//! `amp-host`: picks per-layer int8/int16 precision for a quantized network by measuring it.
//!
//! Exit codes: 0 success, 1 error (the message names the file, node or device at fault), 2 bad usage.

#![forbid(unsafe_code)]

mod cli;
mod commands;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Cmd};

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
        Cmd::Eval(a) => commands::eval(a),
        Cmd::Info(a) => commands::info(a),
        Cmd::Groups(a) => commands::groups(a.model, a.input_shape, a.json),
        Cmd::Tune(a) => commands::tune(a),
        Cmd::Export(a) => commands::export(a),
        Cmd::Bench(a) => commands::bench(a),
        Cmd::Trace(a) => commands::trace(a),
        Cmd::Devices { json } => commands::devices(json),
    }
}
