//! `amp-agent`: runs candidate precision configs on the device for `amp-host`.
//!
//! The wire protocol and transports are not built yet; until then this binary reports what it can run.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("info") | None => {
            println!("amp-agent {}", env!("CARGO_PKG_VERSION"));
            println!("backends: ref (reference, CPU)");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("amp-agent: unknown command {other:?}; available: info");
            ExitCode::from(2)
        }
    }
}
