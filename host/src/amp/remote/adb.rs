//! A device reached through Debian's `adb` client: the agent (and QNN's libraries) pushed to
//! `/data/local/tmp/amp` unless the device has this version, started there listening on a device port, and
//! reached through `adb forward`, which is removed when the session ends.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use amp_device::protocol::blob_hash;
use anyhow::{anyhow, bail, Context, Result};

use super::transport::find_agent;

/// Where the agent lives on an Android device (or in the stand-in's sandbox).
const ADB_DIR: &str = "/data/local/tmp/amp";

/// An agent started on a device through adb, reached through `adb forward`.
pub struct AdbSession {
    serial: String,
    shell: Child,
    local_port: u16,
}

/// A device target: its serial, and the adb server that lists it when that is not the default one
/// (`SERIAL@HOST:PORT`).
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.rsplit_once('@') {
        Some((serial, server))
            if server
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok()) =>
        {
            (serial, Some(server))
        }
        _ => (target, None),
    }
}

/// `adb` at an adb server: `server` (HOST:PORT), else `-H`/`-P` from `AMP_ADB_SERVER_HOST`/
/// `AMP_ADB_SERVER_PORT` (set by amp-host's `--adb-host`/`--adb-port`); `ADB_SERVER_SOCKET` is honoured by
/// adb itself.
fn adb_at(server: Option<&str>) -> Command {
    let mut c = Command::new(std::env::var_os("AMP_ADB").unwrap_or_else(|| "adb".into()));
    match server.and_then(|s| s.rsplit_once(':')) {
        Some((host, port)) => {
            c.args(["-H", host, "-P", port]);
        }
        None => {
            if let Some(h) = std::env::var_os("AMP_ADB_SERVER_HOST") {
                c.arg("-H").arg(h);
            }
            if let Some(p) = std::env::var_os("AMP_ADB_SERVER_PORT") {
                c.arg("-P").arg(p);
            }
        }
    }
    c
}

/// `adb -s SERIAL` for a device target (`SERIAL` or `SERIAL@HOST:PORT`).
fn adb(target: &str) -> Command {
    let (serial, server) = split_target(target);
    let mut c = adb_at(server);
    c.arg("-s").arg(serial);
    c
}

/// The adb servers amp reaches: `AMP_ADB_SERVERS` (HOST:PORT, comma-separated; amp-host's `--adb-server`),
/// else the one adb finds itself (None).
pub fn servers() -> Vec<Option<String>> {
    let list: Vec<Option<String>> = std::env::var("AMP_ADB_SERVERS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Some(s.to_string()))
        .collect();
    if list.is_empty() {
        vec![None]
    } else {
        list
    }
}

/// A device as its adb server lists it.
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    /// The target amp names it by: `SERIAL`, or `SERIAL@HOST:PORT` on a server given by `--adb-server`.
    pub target: String,
    /// `HOST:PORT`, or `default`.
    pub server: String,
    pub state: String,
    pub model: String,
    /// Its properties when it is ready (`device`), or why they could not be read.
    pub facts: Option<Result<DeviceFacts, String>>,
}

/// Every device of every adb server amp reaches, with the properties of the ready ones; a server that cannot
/// be reached is an error naming it.
pub fn farm() -> Vec<Result<Listed, String>> {
    let mut out = Vec::new();
    for server in servers() {
        let name = server.clone().unwrap_or_else(|| "default".into());
        let listed = adb_at(server.as_deref())
            .args(["devices", "-l"])
            .stdin(Stdio::null())
            .output();
        let text = match listed {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
                out.push(Err(format!("adb server {name}: {why}")));
                continue;
            }
            Err(e) => {
                out.push(Err(format!("adb server {name}: running adb: {e}")));
                continue;
            }
        };
        for line in text.lines().skip(1) {
            let mut parts = line.split_whitespace();
            let (Some(serial), Some(state)) = (parts.next(), parts.next()) else {
                continue;
            };
            let model = parts.find_map(|p| p.strip_prefix("model:")).unwrap_or("");
            let target = match &server {
                Some(s) => format!("{serial}@{s}"),
                None => serial.to_string(),
            };
            let facts =
                (state == "device").then(|| describe(&target).map_err(|e| format!("{e:#}")));
            out.push(Ok(Listed {
                target,
                server: name.clone(),
                state: state.into(),
                model: model.into(),
                facts,
            }));
        }
    }
    out
}

/// The ready adb devices that `--device all` or `--device soc:NAME` (a case-insensitive part of the SoC,
/// `SM8550` for `QTI SM8550`) selects, as targets with their SoC; an error listing what there is when none
/// matches.
pub fn select(soc: Option<&str>) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    let mut picked = Vec::new();
    for d in farm() {
        let d = d.map_err(|e| anyhow!(e))?;
        let Some(Ok(f)) = &d.facts else {
            found.push(format!("{} ({})", d.target, d.state));
            continue;
        };
        found.push(format!("{} ({})", d.target, f.soc));
        if soc.is_none_or(|s| f.soc.to_lowercase().contains(&s.to_lowercase())) {
            picked.push((d.target.clone(), f.soc.clone()));
        }
    }
    if picked.is_empty() {
        bail!(
            "--device {}: no ready adb device matches; found: {}",
            soc.map(|s| format!("soc:{s}")).unwrap_or("all".into()),
            if found.is_empty() {
                "none".to_string()
            } else {
                found.join(", ")
            }
        );
    }
    Ok(picked)
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

/// What `amp-host devices` shows of an adb device: its properties and whether it holds this agent.
#[derive(Debug, Default, serde::Serialize)]
pub struct DeviceFacts {
    /// `ro.soc.model` (after `ro.soc.manufacturer`), else `ro.board.platform`.
    pub soc: String,
    /// `ro.product.cpu.abi`.
    pub abi: String,
    /// `ro.build.version.release`.
    pub android: String,
    /// `current` (the device holds the agent amp would push), `outdated`, or `absent`.
    pub agent: String,
}

/// The `[name]: [value]` lines of `getprop`.
fn parse_getprop(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once("]: [")?;
            Some((k.strip_prefix('[')?.into(), v.strip_suffix(']')?.into()))
        })
        .collect()
}

/// One adb call for a device's properties and the agent it holds.
pub fn describe(serial: &str) -> Result<DeviceFacts> {
    let out = adb_run(
        serial,
        &[
            "shell",
            &format!(
                "getprop 2>/dev/null; echo ---; cat {ADB_DIR}/amp-agent.blake3 2>/dev/null; true"
            ),
        ],
    )?;
    let (props, held) = out.split_once("---").unwrap_or((&out, ""));
    let props = parse_getprop(props);
    let get = |k: &str| props.get(k).cloned().unwrap_or_default();
    let soc = amp_device::agent::soc_from(|k| props.get(k).cloned()).unwrap_or_default();
    let ours = std::fs::read(device_agent()).map(|b| blob_hash(&b)).ok();
    let agent = match held.trim() {
        "" => "absent",
        h if Some(h) == ours.as_deref() => "current",
        _ => "outdated",
    };
    Ok(DeviceFacts {
        soc,
        abi: get("ro.product.cpu.abi"),
        android: get("ro.build.version.release"),
        agent: agent.into(),
    })
}

/// The agent binary amp pushes to devices: `AMP_AGENT_DEVICE`, else this machine's.
fn device_agent() -> PathBuf {
    std::env::var_os("AMP_AGENT_DEVICE")
        .map(PathBuf::from)
        .unwrap_or_else(find_agent)
}

impl AdbSession {
    /// Pushes the agent (and QNN libraries) unless the device has this version, starts it listening on a
    /// device port, and forwards a local port to it.
    pub fn start(serial: &str, qnn_lib: Option<&Path>) -> Result<AdbSession> {
        adb_run(serial, &["shell", &format!("mkdir -p {ADB_DIR}/work")])?;
        let agent = device_agent();
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

#[cfg(test)]
mod tests {
    #[test]
    fn getprop_lines_parse_and_others_are_ignored() {
        let p = super::parse_getprop("[ro.soc.model]: [SM8550]\n[ro.x]: []\nnoise\n");
        assert_eq!(p["ro.soc.model"], "SM8550");
        assert_eq!(p["ro.x"], "");
        assert_eq!(p.len(), 2);
    }
}
