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

/// `adb -s SERIAL`, with `-H`/`-P` from `AMP_ADB_SERVER_HOST`/`AMP_ADB_SERVER_PORT` (set by amp-host's
/// `--adb-host`/`--adb-port`) for a remote adb server; `ADB_SERVER_SOCKET` is honoured by adb itself.
fn adb(serial: &str) -> Command {
    let mut c = Command::new(std::env::var_os("AMP_ADB").unwrap_or_else(|| "adb".into()));
    if let Some(h) = std::env::var_os("AMP_ADB_SERVER_HOST") {
        c.arg("-H").arg(h);
    }
    if let Some(p) = std::env::var_os("AMP_ADB_SERVER_PORT") {
        c.arg("-P").arg(p);
    }
    c.arg("-s").arg(serial);
    c
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
    let soc = match (get("ro.soc.manufacturer"), get("ro.soc.model")) {
        (_, m) if m.is_empty() => get("ro.board.platform"),
        (v, m) if v.is_empty() => m,
        (v, m) => format!("{v} {m}"),
    };
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
