//! `amp-agent`: runs candidate precision configs on the device for `amp-host`.
//!
//! `serve --stdio` talks the protocol over stdin/stdout (how `amp-host --device local` and adb run it);
//! `serve --listen ADDR` accepts TCP connections (loopback unless `--allow-remote`); `info` lists backends.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use amp_device::agent::{serve, WorkDir};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "amp-agent",
    version,
    about = "amp's device agent: evaluates precision configs on this device's backends."
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
    /// Serve amp-host over stdin/stdout or TCP.
    Serve {
        /// Talk over stdin/stdout (one session).
        #[arg(long, conflicts_with = "listen")]
        stdio: bool,
        /// Listen on this address, e.g. 127.0.0.1:7070.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Accept a non-loopback --listen address.
        #[arg(long)]
        allow_remote: bool,
        /// With --listen: exit after the first session (how amp-host starts it over adb).
        #[arg(long)]
        once: bool,
        /// Work directory for the blob cache (nothing is written outside it).
        #[arg(long, default_value = "amp-agent-work")]
        work: PathBuf,
        /// Folder holding libQnnHtp.so.
        #[arg(long)]
        qnn_lib: Option<PathBuf>,
        /// A name for this device in the handshake (default: the host name).
        #[arg(long)]
        device: Option<String>,
        /// With --listen: sessions served at once; a client beyond them is refused at once as busy.
        #[arg(long, default_value_t = 4)]
        sessions: usize,
        /// With --listen: a session whose client sends nothing for this many seconds (even within a
        /// request) is ended; 0 waits forever.
        #[arg(long, default_value_t = 3600)]
        idle_timeout: u64,
    },
}

/// Answers a client beyond `--sessions` with a "busy" error to its handshake, read first so that it gets
/// the answer rather than a reset connection.
fn refuse_busy(s: TcpStream, sessions: usize) {
    use amp_device::protocol::{read_frame, write_frame, Request, Response};
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut r = &s;
    let _ = read_frame::<Request>(&mut r);
    let message = format!("busy: this agent serves {sessions} sessions at once (--sessions)");
    log(&message);
    let _ = write_frame(
        &mut &s,
        &Response::Error {
            kind: amp_device::error::ErrorKind::Failed,
            message,
        },
    );
}

/// A line on stderr; never panics (a closed stderr must not take the agent down).
fn log(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "amp-agent: {msg}");
}

/// A line on stdout; a closed pipe (`amp-agent info | head -1`) ends nothing.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = amp_device::backend::resume::budget_from_env() {
        eprintln!("amp-agent: {e}");
        return ExitCode::from(2);
    }
    match cli.cmd {
        Cmd::Info { qnn_lib, htp_arch } => {
            say!("amp-agent {}", env!("CARGO_PKG_VERSION"));
            say!(
                "cpu: {} ({} threads)",
                std::env::consts::ARCH,
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            );
            // on Android, the phone's identity from its properties
            for prop in ["ro.product.model", "ro.soc.model", "ro.board.platform"] {
                if let Ok(out) = std::process::Command::new("getprop").arg(prop).output() {
                    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    if !v.is_empty() {
                        say!("{prop}: {v}");
                    }
                }
            }
            say!("backend ref: amp reference backend (CPU)");
            match qnn_sys::locate_htp(qnn_lib.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    amp_device::backend::qnn::QnnRuntime::load(&p, htp_arch)
                        .map(|rt| (p, rt))
                        .map_err(|e| e.to_string())
                }) {
                Ok((p, rt)) => say!("backend htp: {} from {}", rt.describe(), p.display()),
                Err(e) => say!("backend htp: unavailable: {e}"),
            }
            ExitCode::SUCCESS
        }
        Cmd::Serve {
            stdio,
            listen,
            allow_remote,
            once,
            work,
            qnn_lib,
            device,
            sessions,
            idle_timeout,
        } => {
            let device = device.unwrap_or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "localhost".into())
            });
            let wd = |w: &PathBuf| {
                WorkDir::new(w).map_err(|e| format!("work directory {}: {e}", w.display()))
            };
            let result: Result<(), String> = if stdio {
                wd(&work).and_then(|w| {
                    serve(
                        std::io::stdin().lock(),
                        std::io::stdout().lock(),
                        w,
                        qnn_lib,
                        device,
                    )
                    .map_err(|e| e.to_string())
                })
            } else if let Some(addr) = listen {
                if !addr.ip().is_loopback() && !allow_remote {
                    eprintln!("amp-agent: {addr} is not a loopback address; pass --allow-remote to accept other hosts");
                    return ExitCode::from(2);
                }
                match TcpListener::bind(addr) {
                    Err(e) => Err(format!("listening on {addr}: {e}")),
                    Ok(l) => {
                        log(&format!(
                            "listening on {}",
                            l.local_addr().map(|a| a.to_string()).unwrap_or_default()
                        ));
                        let idle = (idle_timeout > 0)
                            .then(|| std::time::Duration::from_secs(idle_timeout));
                        let active = Arc::new(AtomicUsize::new(0));
                        let mut res = Ok(());
                        for conn in l.incoming() {
                            let Ok(s) = conn else { continue };
                            let _ = s.set_nodelay(true);
                            // a client that stops sending, even within a frame, is let go after a while
                            let _ = s.set_read_timeout(idle);
                            let session = {
                                let (work, qnn_lib, device) =
                                    (work.clone(), qnn_lib.clone(), device.clone());
                                move |s: TcpStream| {
                                    let r = s.try_clone().map_err(|e| e.to_string())?;
                                    let w = wd(&work)?;
                                    serve(r, s, w, qnn_lib, device).map_err(|e| e.to_string())
                                }
                            };
                            if once {
                                res = session(s);
                                if let Err(e) = &res {
                                    log(&format!("connection ended: {e}"));
                                }
                                break;
                            }
                            // sessions run side by side, up to --sessions; one more is told so at once
                            if active.fetch_add(1, Ordering::SeqCst) >= sessions {
                                active.fetch_sub(1, Ordering::SeqCst);
                                refuse_busy(s, sessions);
                                continue;
                            }
                            let active = active.clone();
                            std::thread::spawn(move || {
                                if let Err(e) = session(s) {
                                    log(&format!("connection ended: {e}"));
                                }
                                active.fetch_sub(1, Ordering::SeqCst);
                            });
                        }
                        res
                    }
                }
            } else {
                Err("give --stdio or --listen ADDR".into())
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("amp-agent: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
