//! A minimal adbd for tests: serves the adb device protocol (CNXN without AUTH, OPEN/OKAY/WRTE/CLSE
//! streams) on a loopback TCP port, so Debian's real `adb` client and server can `connect` to it. Services:
//! `shell,v2,…:` (stdout, stderr, exit code), `exec:`, `sync:` (STAT, LIST, SEND, RECV, QUIT) and
//! `tcp:PORT` (for `adb forward`). Commands run on this machine with `/data/local/tmp` mapped to a sandbox
//! folder.
//!
//!     amp-adbd-standin --port 5601 --sandbox /tmp/device1 [--model standin] [--abi arm64-v8a --soc SM8550]
//!
//! With `--abi arm64-v8a` the device is an ARM phone on an x86_64 machine: an aarch64 program pushed to it
//! runs under `qemu-aarch64 -L /usr/aarch64-linux-gnu` (Debian's qemu-user; `AMP_QEMU_AARCH64` names
//! another), as binfmt_misc would run it: unless the machine registers qemu for aarch64 itself, the pushed
//! file is kept beside a launcher of the same name that starts it under qemu. `getprop` on the device
//! answers the ABI and, with `--soc`, a Qualcomm SoC's properties.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

const A_CNXN: u32 = u32::from_le_bytes(*b"CNXN");
const A_OPEN: u32 = u32::from_le_bytes(*b"OPEN");
const A_OKAY: u32 = u32::from_le_bytes(*b"OKAY");
const A_WRTE: u32 = u32::from_le_bytes(*b"WRTE");
const A_CLSE: u32 = u32::from_le_bytes(*b"CLSE");
const VERSION: u32 = 0x0100_0001;
const MAX_DATA: usize = 256 * 1024;
const DEVICE_ROOT: &str = "/data/local/tmp";

/// What kind of device this stand-in is.
struct Device {
    /// `ro.product.cpu.abi`.
    abi: String,
}

static DEVICE: OnceLock<Device> = OnceLock::new();

fn is_arm() -> bool {
    DEVICE.get().is_some_and(|d| d.abi == "arm64-v8a")
}

/// Where the device's own programs (`getprop`) live in the sandbox.
fn device_bin(sandbox: &Path) -> PathBuf {
    sandbox.join(".standin-bin")
}

/// Writes `getprop`, answering `props` (one property, or all as `[name]: [value]` lines).
fn install_getprop(sandbox: &Path, props: &[(String, String)]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bin = device_bin(sandbox);
    std::fs::create_dir_all(&bin)?;
    let mut script = String::from("#!/bin/sh\ncase \"$1\" in\n");
    for (k, v) in props {
        script += &format!("  {k}) echo '{v}' ;;\n");
    }
    script += "  '')";
    for (k, v) in props {
        script += &format!(" echo '[{k}]: [{v}]';");
    }
    script += " ;;\n  *) echo ;;\nesac\n";
    let p = bin.join("getprop");
    std::fs::write(&p, script)?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
}

/// An aarch64 ELF executable (e_machine 183).
fn is_aarch64_elf(data: &[u8]) -> bool {
    data.len() > 20
        && data.starts_with(b"\x7fELF")
        && u16::from_le_bytes([data[18], data[19]]) == 183
}

/// Whether this machine runs aarch64 programs itself (natively, or through binfmt_misc).
fn runs_aarch64() -> bool {
    std::env::consts::ARCH == "aarch64"
        || std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
            .is_ok_and(|s| s.starts_with("enabled"))
}

/// Stores a pushed file at `target`; an aarch64 program on an ARM device that this machine cannot run
/// itself is kept as `.NAME.aarch64` beside a launcher `NAME` that runs it under qemu.
fn store(target: &Path, data: &[u8]) -> std::io::Result<()> {
    if !(is_arm() && is_aarch64_elf(data) && !runs_aarch64()) {
        return std::fs::write(target, data);
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let real = target.with_file_name(format!(".{name}.aarch64"));
    std::fs::write(&real, data)?;
    // qemu runs only a file it could execute
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755))?;
    let qemu = std::env::var("AMP_QEMU_AARCH64").unwrap_or_else(|_| "qemu-aarch64".into());
    std::fs::write(
        target,
        format!(
            "#!/bin/sh\nexec {qemu} -L /usr/aarch64-linux-gnu \"{}\" \"$@\"\n",
            real.display()
        ),
    )
}

struct Msg {
    cmd: u32,
    arg0: u32,
    arg1: u32,
    data: Vec<u8>,
}

fn read_msg(r: &mut impl Read) -> std::io::Result<Msg> {
    let mut h = [0u8; 24];
    r.read_exact(&mut h)?;
    let w = |i: usize| u32::from_le_bytes(h[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    let len = w(3) as usize;
    if len > 16 << 20 {
        return Err(std::io::Error::other("oversized message"));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok(Msg {
        cmd: w(0),
        arg0: w(1),
        arg1: w(2),
        data,
    })
}

/// The socket's write half, shared by every stream.
#[derive(Clone)]
struct Out(Arc<Mutex<TcpStream>>);

impl Out {
    fn send(&self, cmd: u32, arg0: u32, arg1: u32, data: &[u8]) -> std::io::Result<()> {
        let sum: u32 = data.iter().map(|&b| b as u32).sum();
        let mut buf = Vec::with_capacity(24 + data.len());
        for v in [cmd, arg0, arg1, data.len() as u32, sum, cmd ^ 0xffff_ffff] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        buf.extend_from_slice(data);
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .write_all(&buf)
    }
}

/// A device-side stream: writes go out as WRTE, each waiting for the host's OKAY.
struct Stream {
    out: Out,
    local: u32,
    remote: u32,
    acks: Receiver<()>,
}

impl Stream {
    fn write(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(MAX_DATA);
            self.out.send(A_WRTE, self.local, self.remote, &data[..n])?;
            self.acks
                .recv()
                .map_err(|_| std::io::Error::other("stream closed"))?;
            data = &data[n..];
        }
        Ok(())
    }
    fn close(&self) {
        let _ = self.out.send(A_CLSE, self.local, self.remote, &[]);
    }
}

/// Maps a device path to the sandbox.
fn host_path(sandbox: &Path, p: &str) -> PathBuf {
    match p.strip_prefix(DEVICE_ROOT) {
        Some(rest) => sandbox.join(rest.trim_start_matches('/')),
        None => sandbox.join(p.trim_start_matches('/')),
    }
}

fn shell_command(sandbox: &Path, cmd: &str) -> Command {
    let mapped = cmd.replace(DEVICE_ROOT, &sandbox.display().to_string());
    let mut c = Command::new("sh");
    let bin = device_bin(sandbox);
    if bin.is_dir() {
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", bin.display()));
    }
    c.arg("-c")
        .arg(if mapped.trim().is_empty() {
            "true".to_string()
        } else {
            mapped
        })
        .current_dir(sandbox);
    c
}

struct Session {
    out: Out,
    sandbox: PathBuf,
    next_id: u32,
    /// Host stream id → (our id, sender of host data, sender of OKAYs)
    streams: HashMap<u32, (Sender<Vec<u8>>, Sender<()>)>,
    banner: String,
}

impl Session {
    fn open(&mut self, host_id: u32, service: &str) {
        self.next_id += 1;
        let local = self.next_id;
        let (data_tx, data_rx) = channel::<Vec<u8>>();
        let (ack_tx, ack_rx) = channel::<()>();
        let stream = Stream {
            out: self.out.clone(),
            local,
            remote: host_id,
            acks: ack_rx,
        };
        let sandbox = self.sandbox.clone();
        let service = service.trim_end_matches('\0').to_string();
        if self.out.send(A_OKAY, local, host_id, &[]).is_err() {
            return;
        }
        self.streams.insert(local, (data_tx, ack_tx));
        std::thread::spawn(move || {
            let _ = run_service(&service, &stream, data_rx, &sandbox);
            stream.close();
        });
    }
}

fn shell_packet(id: u8, data: &[u8]) -> Vec<u8> {
    let mut p = vec![id];
    p.extend_from_slice(&(data.len() as u32).to_le_bytes());
    p.extend_from_slice(data);
    p
}

fn run_service(
    service: &str,
    s: &Stream,
    input: Receiver<Vec<u8>>,
    sandbox: &Path,
) -> std::io::Result<()> {
    if let Some(rest) = service.strip_prefix("shell") {
        // "shell,v2,TERM=xterm,raw:cmd" or "shell:cmd"
        let (opts, cmd) = rest.split_once(':').unwrap_or((rest, ""));
        let v2 = opts.contains("v2");
        let mut child = shell_command(sandbox, cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            for chunk in input {
                if !v2 {
                    if let Some(i) = stdin.as_mut() {
                        let _ = i.write_all(&chunk);
                    }
                    continue;
                }
                buf.extend_from_slice(&chunk);
                while buf.len() >= 5 {
                    let len = u32::from_le_bytes(buf[1..5].try_into().expect("4 bytes")) as usize;
                    if buf.len() < 5 + len {
                        break;
                    }
                    let (id, data): (u8, Vec<u8>) = (buf[0], buf[5..5 + len].to_vec());
                    buf.drain(..5 + len);
                    match id {
                        0 => {
                            if let Some(i) = stdin.as_mut() {
                                let _ = i.write_all(&data);
                            }
                        }
                        4 => stdin = None,
                        _ => {}
                    }
                }
            }
        });
        let (tx, rx) = channel::<(u8, Vec<u8>)>();
        let tx2 = tx.clone();
        let pump = move |mut r: Box<dyn Read + Send>, id: u8, tx: Sender<(u8, Vec<u8>)>| {
            std::thread::spawn(move || {
                let mut b = vec![0u8; 64 * 1024];
                while let Ok(n) = r.read(&mut b) {
                    if n == 0 || tx.send((id, b[..n].to_vec())).is_err() {
                        break;
                    }
                }
            })
        };
        let t1 = pump(Box::new(stdout), 1, tx);
        let t2 = pump(Box::new(stderr), 2, tx2);
        for (id, data) in rx {
            if v2 {
                s.write(&shell_packet(id, &data))?;
            } else {
                s.write(&data)?;
            }
        }
        let _ = (t1.join(), t2.join());
        let code = child.wait()?.code().unwrap_or(255);
        if v2 {
            s.write(&shell_packet(3, &[code as u8]))?;
        }
        Ok(())
    } else if let Some(cmd) = service.strip_prefix("exec:") {
        let mut child = shell_command(sandbox, cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        std::thread::spawn(move || {
            for chunk in input {
                if stdin.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let mut stdout = child.stdout.take().expect("piped");
        let mut b = vec![0u8; 64 * 1024];
        loop {
            let n = stdout.read(&mut b)?;
            if n == 0 {
                break;
            }
            s.write(&b[..n])?;
        }
        let _ = child.wait();
        Ok(())
    } else if service.starts_with("sync:") {
        sync(s, input, sandbox)
    } else if let Some(port) = service.strip_prefix("tcp:") {
        let port: u16 = port
            .parse()
            .map_err(|_| std::io::Error::other("bad port"))?;
        let conn = TcpStream::connect(("127.0.0.1", port))?;
        conn.set_nodelay(true)?;
        let mut w = conn.try_clone()?;
        std::thread::spawn(move || {
            for chunk in input {
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = w.shutdown(std::net::Shutdown::Write);
        });
        let mut r = conn;
        let mut b = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut b)?;
            if n == 0 {
                break;
            }
            s.write(&b[..n])?;
        }
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "unsupported service {service:?}"
        )))
    }
}

/// The sync protocol over a byte stream assembled from WRTE payloads.
fn sync(s: &Stream, input: Receiver<Vec<u8>>, sandbox: &Path) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let need = |n: usize, buf: &mut Vec<u8>| -> std::io::Result<Vec<u8>> {
        while buf.len() < n {
            let chunk = input.recv().map_err(|_| std::io::Error::other("closed"))?;
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.drain(..n).collect())
    };
    let resp = |id: &[u8; 4], v: u32| -> Vec<u8> {
        let mut r = id.to_vec();
        r.extend_from_slice(&v.to_le_bytes());
        r
    };
    loop {
        let h = need(8, &mut buf)?;
        let id: [u8; 4] = h[..4].try_into().expect("4 bytes");
        let len = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")) as usize;
        match &id {
            b"QUIT" => return Ok(()),
            b"STAT" => {
                let path = String::from_utf8_lossy(&need(len, &mut buf)?).into_owned();
                let mut r = b"STAT".to_vec();
                match std::fs::metadata(host_path(sandbox, &path)) {
                    Ok(m) => {
                        use std::os::unix::fs::MetadataExt;
                        for v in [m.mode(), m.size() as u32, m.mtime() as u32] {
                            r.extend_from_slice(&v.to_le_bytes());
                        }
                    }
                    Err(_) => r.extend_from_slice(&[0u8; 12]),
                }
                s.write(&r)?;
            }
            b"LIST" => {
                let path = String::from_utf8_lossy(&need(len, &mut buf)?).into_owned();
                let mut out = Vec::new();
                if let Ok(rd) = std::fs::read_dir(host_path(sandbox, &path)) {
                    use std::os::unix::fs::MetadataExt;
                    for e in rd.flatten() {
                        let m = e.metadata()?;
                        let name = e.file_name().to_string_lossy().into_owned();
                        out.extend_from_slice(b"DENT");
                        for v in [
                            m.mode(),
                            m.size() as u32,
                            m.mtime() as u32,
                            name.len() as u32,
                        ] {
                            out.extend_from_slice(&v.to_le_bytes());
                        }
                        out.extend_from_slice(name.as_bytes());
                    }
                }
                out.extend_from_slice(&resp(b"DONE", 0)[..]);
                out.extend_from_slice(&[0u8; 12]);
                s.write(&out)?;
            }
            b"SEND" => {
                let spec = String::from_utf8_lossy(&need(len, &mut buf)?).into_owned();
                let (path, mode) = spec.rsplit_once(',').unwrap_or((&spec, "420"));
                let target = host_path(sandbox, path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut data = Vec::new();
                loop {
                    let h = need(8, &mut buf)?;
                    let n = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")) as usize;
                    match &h[..4] {
                        b"DATA" => data.extend_from_slice(&need(n, &mut buf)?),
                        b"DONE" => break,
                        other => {
                            return Err(std::io::Error::other(format!(
                                "unexpected {other:?} in SEND"
                            )))
                        }
                    }
                }
                let result = store(&target, &data).and_then(|_| {
                    use std::os::unix::fs::PermissionsExt;
                    let m: u32 = mode.parse().unwrap_or(0o644);
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(m & 0o7777))
                });
                match result {
                    Ok(()) => s.write(&resp(b"OKAY", 0))?,
                    Err(e) => {
                        let msg = e.to_string();
                        let mut r = resp(b"FAIL", msg.len() as u32);
                        r.extend_from_slice(msg.as_bytes());
                        s.write(&r)?;
                    }
                }
            }
            b"RECV" => {
                let path = String::from_utf8_lossy(&need(len, &mut buf)?).into_owned();
                match std::fs::read(host_path(sandbox, &path)) {
                    Ok(data) => {
                        let mut out = Vec::new();
                        for c in data.chunks(64 * 1024) {
                            out.extend_from_slice(&resp(b"DATA", c.len() as u32));
                            out.extend_from_slice(c);
                        }
                        out.extend_from_slice(&resp(b"DONE", 0));
                        s.write(&out)?;
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        let mut r = resp(b"FAIL", msg.len() as u32);
                        r.extend_from_slice(msg.as_bytes());
                        s.write(&r)?;
                    }
                }
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "unknown sync request {other:?}"
                )))
            }
        }
    }
}

fn serve(conn: TcpStream, sandbox: PathBuf, model: String) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = conn.try_clone()?;
    let out = Out(Arc::new(Mutex::new(conn)));
    let banner = format!("device::ro.product.name={model};ro.product.model={model};ro.product.device={model};features=shell_v2,cmd\0");
    let mut sess = Session {
        out,
        sandbox,
        next_id: 0,
        streams: HashMap::new(),
        banner,
    };
    loop {
        let m = read_msg(&mut reader)?;
        match m.cmd {
            A_CNXN => sess.out.send(
                A_CNXN,
                VERSION,
                MAX_DATA as u32,
                sess.banner.clone().as_bytes(),
            )?,
            A_OPEN => {
                let service = String::from_utf8_lossy(&m.data).into_owned();
                sess.open(m.arg0, &service);
            }
            A_OKAY => {
                if let Some((_, ack)) = sess.streams.get(&m.arg1) {
                    let _ = ack.send(());
                }
            }
            A_WRTE => {
                if let Some((data, _)) = sess.streams.get(&m.arg1) {
                    let _ = data.send(m.data);
                }
                sess.out.send(A_OKAY, m.arg1, m.arg0, &[])?;
            }
            A_CLSE => {
                sess.streams.remove(&m.arg1);
            }
            _ => {}
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let port: u16 = get("--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let sandbox = PathBuf::from(get("--sandbox").unwrap_or_else(|| "/tmp/amp-adbd-sandbox".into()));
    let model = get("--model").unwrap_or_else(|| "standin".into());
    let abi = get("--abi").unwrap_or_else(|| "x86_64".into());
    let mut props = Vec::new();
    if abi == "arm64-v8a" || get("--soc").is_some() {
        props.push(("ro.product.model".to_string(), model.clone()));
        props.push(("ro.product.cpu.abi".to_string(), abi.clone()));
    }
    if let Some(soc) = get("--soc") {
        props.push(("ro.soc.manufacturer".to_string(), "QTI".to_string()));
        props.push(("ro.soc.model".to_string(), soc));
    }
    if let Err(e) = std::fs::create_dir_all(&sandbox) {
        let _ = writeln!(
            std::io::stderr(),
            "amp-adbd-standin: sandbox {}: {e}",
            sandbox.display()
        );
        std::process::exit(1);
    }
    if !props.is_empty() {
        if let Err(e) = install_getprop(&sandbox, &props) {
            let _ = writeln!(std::io::stderr(), "amp-adbd-standin: getprop: {e}");
            std::process::exit(1);
        }
    }
    let _ = DEVICE.set(Device { abi });
    let l = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "amp-adbd-standin: port {port}: {e}");
            std::process::exit(1);
        }
    };
    let _ = writeln!(
        std::io::stderr(),
        "amp-adbd-standin: listening on {}",
        l.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    for conn in l.incoming().flatten() {
        let (sb, m) = (sandbox.clone(), model.clone());
        std::thread::spawn(move || serve(conn, sb, m));
    }
}
