//! How an agent is reached: a [`DeviceSpec`] from the command line names a [`Transport`] (stdio to a child
//! agent, TCP to a serving one, adb to one it starts on a phone), which opens a [`Link`].

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

use super::adb::AdbSession;

/// Where evaluations run.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceSpec {
    /// In this process.
    InProcess,
    /// An `amp-agent` child over stdio, with its blob cache in the given folder.
    Local,
    /// An agent already serving at this address.
    Tcp(String),
    /// A device reached through adb (Debian's `adb` client; `ADB_SERVER_SOCKET` is honoured): its serial,
    /// or `SERIAL@HOST:PORT` on another adb server.
    Adb(String),
    /// Every ready adb device of the farm (`--device all`), resolved by [`DeviceSpec::resolve`].
    All,
    /// Every ready adb device whose SoC contains this name (`--device soc:NAME`).
    Soc(String),
}

impl std::str::FromStr for DeviceSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<DeviceSpec> {
        match s {
            "inprocess" => Ok(DeviceSpec::InProcess),
            "all" => Ok(DeviceSpec::All),
            t if t.starts_with("soc:") && t.len() > 4 => Ok(DeviceSpec::Soc(t[4..].to_string())),
            "local" => Ok(DeviceSpec::Local),
            "adb" => std::env::var("ANDROID_SERIAL")
                .map(DeviceSpec::Adb)
                .map_err(|_| anyhow!("--device adb: set ANDROID_SERIAL or give adb:SERIAL")),
            t if t.starts_with("tcp:") => Ok(DeviceSpec::Tcp(t[4..].to_string())),
            t if t.starts_with("adb:") => Ok(DeviceSpec::Adb(t[4..].to_string())),
            "" => bail!(
                "--device: empty; expected local, inprocess, tcp:HOST:PORT, adb:SERIAL[@HOST:PORT], a serial, soc:NAME or all"
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
            DeviceSpec::All => write!(f, "all"),
            DeviceSpec::Soc(s) => write!(f, "soc:{s}"),
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

/// An open connection to an agent: its two byte streams and what must live as long as they do.
pub struct Link {
    pub reader: Box<dyn Read + Send>,
    pub writer: Box<dyn Write + Send>,
    /// The agent process, when this side started it (waited for when the link closes).
    pub child: Option<Child>,
    /// Dropped after the streams: removes the adb forward and stops the agent on the device.
    pub session: Option<AdbSession>,
    /// The socket, when the link is one: shut down to give up on an agent that stopped answering.
    pub socket: Option<TcpStream>,
}

impl Link {
    /// Gives up on the agent: the socket is shut down and a child agent killed, so nothing stays blocked on
    /// the streams.
    pub fn abort(&mut self) {
        if let Some(s) = &self.socket {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(c) = &mut self.child {
            let _ = c.kill();
        }
    }
}

/// A way to reach an agent.
pub trait Transport {
    /// The device as messages name it: `local`, `tcp:HOST:PORT`, `adb:SERIAL`.
    fn name(&self) -> String;
    /// Starts the agent where this transport starts one (with its blob cache in `work`, QNN's libraries
    /// from `qnn_lib`), and connects to it.
    fn open(&self, work: &Path, qnn_lib: Option<&Path>) -> Result<Link>;
}

/// An `amp-agent` child of this process, over its stdin and stdout.
pub struct StdioTransport;

/// An agent already serving at an address (`amp-agent serve --listen`).
pub struct TcpTransport(pub String);

/// An agent pushed to and started on a device through Debian's `adb`, reached through `adb forward`.
pub struct AdbTransport(pub String);

impl Transport for StdioTransport {
    fn name(&self) -> String {
        "local".into()
    }

    fn open(&self, work: &Path, qnn_lib: Option<&Path>) -> Result<Link> {
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
            .with_context(|| {
                format!(
                    "starting {} (build it with `cargo build -p amp-device`, or set AMP_AGENT)",
                    agent.display()
                )
            })?;
        let r = child.stdout.take().context("the agent's stdout")?;
        let w = child.stdin.take().context("the agent's stdin")?;
        Ok(Link {
            reader: Box::new(BufReader::new(r)),
            writer: Box::new(BufWriter::new(w)),
            child: Some(child),
            session: None,
            socket: None,
        })
    }
}

/// Both ends of a TCP connection, buffered.
fn tcp_link(s: TcpStream, session: Option<AdbSession>) -> Result<Link> {
    s.set_nodelay(true)?;
    let r = s.try_clone()?;
    let socket = Some(s.try_clone()?);
    Ok(Link {
        reader: Box::new(BufReader::new(r)),
        writer: Box::new(BufWriter::new(s)),
        child: None,
        session,
        socket,
    })
}

impl Transport for TcpTransport {
    fn name(&self) -> String {
        format!("tcp:{}", self.0)
    }

    fn open(&self, _work: &Path, _qnn_lib: Option<&Path>) -> Result<Link> {
        let s = TcpStream::connect(&self.0)
            .with_context(|| format!("device tcp:{}: cannot connect", self.0))?;
        tcp_link(s, None)
    }
}

impl Transport for AdbTransport {
    fn name(&self) -> String {
        format!("adb:{}", self.0)
    }

    fn open(&self, _work: &Path, qnn_lib: Option<&Path>) -> Result<Link> {
        let session = AdbSession::start(&self.0, qnn_lib)?;
        let s = session.connect()?;
        tcp_link(s, Some(session))
    }
}

impl DeviceSpec {
    /// The transport that reaches this device (an in-process device has none).
    pub fn transport(&self) -> Result<Box<dyn Transport>> {
        Ok(match self {
            DeviceSpec::Local => Box::new(StdioTransport),
            DeviceSpec::Tcp(addr) => Box::new(TcpTransport(addr.clone())),
            DeviceSpec::Adb(serial) => Box::new(AdbTransport(serial.clone())),
            DeviceSpec::InProcess => bail!("an in-process device has no agent"),
            DeviceSpec::All | DeviceSpec::Soc(_) => {
                bail!("--device {self}: not resolved to devices")
            }
        })
    }

    /// `all` and `soc:NAME` expanded into the adb devices they select (each once, in farm order); other
    /// devices as they are.
    pub fn resolve(specs: &[DeviceSpec]) -> Result<Vec<DeviceSpec>> {
        Self::expand(specs)
            .map_err(|e| amp_device::error::EvalError::device_lost(format!("{e:#}")).into())
    }

    fn expand(specs: &[DeviceSpec]) -> Result<Vec<DeviceSpec>> {
        let mut out: Vec<DeviceSpec> = Vec::new();
        for s in specs {
            let add = match s {
                DeviceSpec::All => super::adb::select(None)?,
                DeviceSpec::Soc(n) => super::adb::select(Some(n))?,
                other => {
                    if !out.contains(other) {
                        out.push(other.clone());
                    }
                    continue;
                }
            };
            for (target, _) in add {
                let d = DeviceSpec::Adb(target);
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}
