//! Our own `#[repr(C)]` declarations of the subset of Qualcomm's QNN C API that amp calls, a loader that
//! finds a compatible provider with libloading, and safe handle types that free themselves in order.
//! Written from the published ABI facts; nothing here is copied or generated from the SDK's headers.
//!
//! Layers, as in cudarc/ash: raw types ([`types`]); [`Library`] (the loaded interface table, checked
//! `Result`-returning calls); [`Backend`], [`Device`], [`Context`], [`Graph`], [`Profile`] (each holds an
//! `Arc` of its parent, so the library outlives every handle and children are freed first).

pub mod types;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, Mutex};

pub use types::*;

/// Errors of loading QNN and of its calls.
#[derive(Debug, thiserror::Error)]
pub enum QnnError {
    #[error("cannot load {path}: {msg}")]
    Load { path: String, msg: String },
    #[error("{path}: {msg}")]
    Interface { path: String, msg: String },
    #[error("qnn {call}: error {code}: {message}{}", if .log.is_empty() { String::new() } else { format!(" (log: {})", .log) })]
    Call {
        call: &'static str,
        code: u64,
        message: String,
        log: String,
    },
    /// The backend refused a node (`backendValidateOpConfig`, or `graphAddNode` with an invalid op config):
    /// this op, at these data types, does not run there.
    #[error("{node}: rejected by {call}: error {code}: {message}{}", if .log.is_empty() { String::new() } else { format!(" (log: {})", .log) })]
    Rejected {
        node: String,
        call: &'static str,
        code: u64,
        message: String,
        log: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// `graphAddNode`'s code for an op config the backend does not support (QNN_GRAPH_ERROR_INVALID_OP_CONFIG).
const GRAPH_ERROR_INVALID_OP_CONFIG: u64 = 6005;

/// A failed node call as the backend's refusal of the node, when it is one.
fn rejected(e: QnnError, node: &str) -> QnnError {
    match e {
        QnnError::Call {
            call,
            code,
            message,
            log,
        } if call == "backendValidateOpConfig" || code == GRAPH_ERROR_INVALID_OP_CONFIG => {
            QnnError::Rejected {
                node: node.to_string(),
                call,
                code,
                message,
                log,
            }
        }
        other => with_context(other, node),
    }
}

pub type Result<T> = std::result::Result<T, QnnError>;

/// Interface table slots (index into the function-pointer table that follows `InterfaceHead`).
mod slot {
    pub const BACKEND_CREATE: usize = 1;
    pub const BACKEND_GET_BUILD_ID: usize = 4;
    pub const BACKEND_VALIDATE_OP_CONFIG: usize = 7;
    pub const BACKEND_FREE: usize = 8;
    pub const CONTEXT_CREATE: usize = 9;
    pub const CONTEXT_FREE: usize = 14;
    pub const GRAPH_CREATE: usize = 15;
    pub const GRAPH_ADD_NODE: usize = 18;
    pub const GRAPH_FINALIZE: usize = 19;
    pub const GRAPH_EXECUTE: usize = 21;
    pub const TENSOR_CREATE_GRAPH_TENSOR: usize = 24;
    pub const LOG_CREATE: usize = 25;
    pub const LOG_FREE: usize = 27;
    pub const PROFILE_CREATE: usize = 28;
    pub const PROFILE_GET_EVENTS: usize = 30;
    pub const PROFILE_GET_EVENT_DATA: usize = 32;
    pub const PROFILE_FREE: usize = 34;
    pub const DEVICE_CREATE: usize = 40;
    pub const DEVICE_FREE: usize = 43;
    pub const ERROR_GET_MESSAGE: usize = 48;
    pub const HIGHEST_USED: usize = 48;
}

type GetProviders = unsafe extern "C" fn(*mut *const *const InterfaceHead, *mut u32) -> ErrorHandle;
type LogCallback = unsafe extern "C" fn(*const c_char, u32, u64, *mut c_void);

extern "C" {
    fn vsnprintf(buf: *mut c_char, n: usize, fmt: *const c_char, ap: *mut c_void) -> c_int;
    fn dup(fd: c_int) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn fflush(stream: *mut c_void) -> c_int;
}

/// Runs `f` with the process's stdout pointed at stderr: libQnnHtp prints a banner on stdout when it
/// starts, which would corrupt the machine-readable output of amp's `--json` commands.
fn stdout_to_stderr<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: plain POSIX descriptor calls on fds 1 and 2; the saved copy is restored and closed below.
    // fflush(NULL) flushes C stdio buffers so the banner lands on stderr before stdout is restored.
    unsafe {
        let saved = dup(1);
        if saved < 0 {
            return f();
        }
        dup2(2, 1);
        let out = f();
        fflush(ptr::null_mut());
        dup2(saved, 1);
        close(saved);
        out
    }
}

/// The last messages QNN logged at warning level or above (shared by every backend in the process).
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn log_callback(fmt: *const c_char, level: u32, _ts: u64, args: *mut c_void) {
    if level > LOG_LEVEL_WARN || fmt.is_null() {
        return;
    }
    let mut buf = [0 as c_char; 1024];
    // SAFETY: `fmt` and `args` come from QNN as a printf format and its va_list (passed by pointer on the
    // LP64 ABIs amp targets); vsnprintf writes at most buf.len() bytes, NUL-terminated.
    let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, args) };
    if n < 0 {
        return;
    }
    // SAFETY: vsnprintf NUL-terminated the buffer.
    let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .trim()
        .to_string();
    if let Ok(mut log) = LOG.lock() {
        if log.len() >= 32 {
            log.remove(0);
        }
        log.push(msg);
    }
}

fn take_log() -> String {
    LOG.lock()
        .map(|mut l| std::mem::take(&mut *l).join(" | "))
        .unwrap_or_default()
}

/// A loaded QNN backend library and its interface table.
pub struct Library {
    path: PathBuf,
    table: *const *const c_void,
    pub backend_id: u32,
    pub provider_name: String,
    pub core_api: Version,
    pub backend_api: Version,
    // declared after everything that points into it, so it is dropped after them
    _lib: libloading::Library,
    // dropped last: sends what the library left in C's stdout buffer to stderr
    _flush: FlushToStderr,
}

/// On drop, flushes C stdio with stdout pointed at stderr (see [`stdout_to_stderr`]).
struct FlushToStderr;

impl Drop for FlushToStderr {
    fn drop(&mut self) {
        // SAFETY: fflush(NULL) flushes every C stdio stream.
        stdout_to_stderr(|| unsafe { fflush(ptr::null_mut()) });
    }
}

// SAFETY: the interface table is immutable data inside the loaded library, which lives as long as `Library`;
// QNN documents its API as callable from several threads (verified on the x86 HTP library with 4 threads).
unsafe impl Send for Library {}
// SAFETY: as above.
unsafe impl Sync for Library {}

impl Library {
    /// Loads `path` and picks a provider with core API 2.x, x ≥ 18 (older tables have other slot orders).
    pub fn load(path: &Path) -> Result<Arc<Library>> {
        let p = path.display().to_string();
        // SAFETY: loading a shared library runs its initialisers; QNN libraries are meant to be dlopen'ed.
        let lib = stdout_to_stderr(|| unsafe { libloading::Library::new(path) }).map_err(|e| {
            QnnError::Load {
                path: p.clone(),
                msg: e.to_string(),
            }
        })?;
        // SAFETY: the symbol's type is QNN's documented entry point.
        let get: libloading::Symbol<GetProviders> = unsafe {
            lib.get(b"QnnInterface_getProviders\0")
        }
        .map_err(|e| QnnError::Interface {
            path: p.clone(),
            msg: format!("not a QNN backend library: {e}"),
        })?;
        let mut list: *const *const InterfaceHead = ptr::null();
        let mut n = 0u32;
        // SAFETY: both out-pointers are valid for writes.
        let rc = unsafe { get(&mut list, &mut n) };
        if rc != 0 || list.is_null() || n == 0 {
            return Err(QnnError::Interface {
                path: p,
                msg: format!("QnnInterface_getProviders returned {rc} with {n} providers"),
            });
        }
        let mut found = Vec::new();
        for i in 0..n as usize {
            // SAFETY: QNN returned `n` provider pointers, valid while the library is loaded.
            let head = unsafe { *list.add(i) };
            if head.is_null() {
                continue;
            }
            // SAFETY: `head` points at a QnnInterface_t whose first 40 bytes are `InterfaceHead`.
            let h = unsafe { &*head };
            found.push(format!(
                "{}.{}.{}",
                h.core_api.major, h.core_api.minor, h.core_api.patch
            ));
            if h.core_api.major == 2 && h.core_api.minor >= 18 {
                let name = if h.provider_name.is_null() {
                    String::new()
                } else {
                    // SAFETY: a NUL-terminated string owned by the library.
                    unsafe { CStr::from_ptr(h.provider_name) }
                        .to_string_lossy()
                        .into_owned()
                };
                let table = (head as *const u8).wrapping_add(INTERFACE_TABLE_OFFSET)
                    as *const *const c_void;
                let l = Library {
                    path: path.to_path_buf(),
                    table,
                    backend_id: h.backend_id,
                    provider_name: name,
                    core_api: h.core_api,
                    backend_api: h.backend_api,
                    _lib: lib,
                    _flush: FlushToStderr,
                };
                for s in [
                    slot::BACKEND_CREATE,
                    slot::GRAPH_EXECUTE,
                    slot::HIGHEST_USED,
                ] {
                    if l.raw(s).is_null() {
                        return Err(QnnError::Interface {
                            path: p,
                            msg: format!("interface slot {s} is empty"),
                        });
                    }
                }
                return Ok(Arc::new(l));
            }
        }
        Err(QnnError::Interface {
            path: p,
            msg: format!(
                "no provider with core API 2.x (x ≥ 18); found {}",
                found.join(", ")
            ),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn raw(&self, slot: usize) -> *const c_void {
        // SAFETY: slots 0..=HIGHEST_USED exist in every table with core API ≥ 2.18 (checked at load).
        unsafe { *self.table.add(slot) }
    }

    /// The function in `slot`, typed as `F`.
    ///
    /// # Safety
    /// `F` must be the C signature of that slot.
    unsafe fn func<F: Copy>(&self, slot: usize) -> F {
        let p = self.raw(slot);
        assert!(!p.is_null(), "QNN interface slot {slot} is empty");
        // SAFETY: the caller guarantees `F` is the slot's function-pointer type, which has pointer size.
        unsafe { std::mem::transmute_copy(&p) }
    }

    fn check(&self, call: &'static str, rc: ErrorHandle) -> Result<()> {
        if rc == 0 {
            return Ok(());
        }
        let mut msg: *const c_char = ptr::null();
        // SAFETY: errorGetMessage(Qnn_ErrorHandle_t, const char**).
        let f: unsafe extern "C" fn(ErrorHandle, *mut *const c_char) -> ErrorHandle =
            unsafe { self.func(slot::ERROR_GET_MESSAGE) };
        // SAFETY: out-pointer valid.
        let ok = unsafe { f(rc, &mut msg) } == 0 && !msg.is_null();
        let message = if ok {
            // SAFETY: a NUL-terminated string owned by the library.
            unsafe { CStr::from_ptr(msg) }
                .to_string_lossy()
                .into_owned()
        } else {
            "(no message)".to_string()
        };
        Err(QnnError::Call {
            call,
            code: rc & 0xFFFF,
            message,
            log: take_log(),
        })
    }

    /// The backend's build id, e.g. `v2.51.0.260929181845`.
    pub fn build_id(&self) -> Result<String> {
        let mut s: *const c_char = ptr::null();
        // SAFETY: backendGetBuildId(const char**).
        let f: unsafe extern "C" fn(*mut *const c_char) -> ErrorHandle =
            unsafe { self.func(slot::BACKEND_GET_BUILD_ID) };
        // SAFETY: out-pointer valid.
        self.check("backendGetBuildId", unsafe { f(&mut s) })?;
        // SAFETY: a NUL-terminated string owned by the library.
        Ok(if s.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
        })
    }
}

/// A backend handle (with its logger).
pub struct Backend {
    pub lib: Arc<Library>,
    log: Handle,
    handle: Handle,
}

// SAFETY: QNN handles may be used from any thread; amp serialises calls per graph.
unsafe impl Send for Backend {}
// SAFETY: as above.
unsafe impl Sync for Backend {}

impl Backend {
    pub fn new(lib: Arc<Library>) -> Result<Arc<Backend>> {
        let mut log: Handle = ptr::null_mut();
        // SAFETY: logCreate(callback, maxLevel, Qnn_LogHandle_t*).
        let log_create: unsafe extern "C" fn(Option<LogCallback>, u32, *mut Handle) -> ErrorHandle =
            unsafe { lib.func(slot::LOG_CREATE) };
        // SAFETY: the callback matches QnnLog_Callback_t; out-pointer valid.
        lib.check("logCreate", unsafe {
            log_create(Some(log_callback), LOG_LEVEL_WARN, &mut log)
        })?;
        let mut handle: Handle = ptr::null_mut();
        // SAFETY: backendCreate(log, const QnnBackend_Config_t**, Qnn_BackendHandle_t*).
        let create: unsafe extern "C" fn(Handle, *const *const Config, *mut Handle) -> ErrorHandle =
            unsafe { lib.func(slot::BACKEND_CREATE) };
        // SAFETY: NULL config list means defaults; out-pointer valid.
        lib.check(
            "backendCreate",
            stdout_to_stderr(|| unsafe { create(log, ptr::null(), &mut handle) }),
        )?;
        Ok(Arc::new(Backend { lib, log, handle }))
    }

    /// Asks the backend whether it supports an op config (QNN's addNode does not check dtype combinations).
    pub fn validate(&self, op: OpConfig) -> Result<()> {
        // SAFETY: backendValidateOpConfig(backend, Qnn_OpConfig_t by value).
        let f: unsafe extern "C" fn(Handle, OpConfig) -> ErrorHandle =
            unsafe { self.lib.func(slot::BACKEND_VALIDATE_OP_CONFIG) };
        // SAFETY: `op` points at tensors and params the caller keeps alive for this call.
        self.lib
            .check("backendValidateOpConfig", unsafe { f(self.handle, op) })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // SAFETY: backendFree(backend) and logFree(log) on handles this value owns; errors are ignored.
        unsafe {
            let free: unsafe extern "C" fn(Handle) -> ErrorHandle =
                self.lib.func(slot::BACKEND_FREE);
            free(self.handle);
            let log_free: unsafe extern "C" fn(Handle) -> ErrorHandle =
                self.lib.func(slot::LOG_FREE);
            log_free(self.log);
        }
    }
}

/// A device handle configured for an HTP architecture.
pub struct Device {
    backend: Arc<Backend>,
    handle: Handle,
}

// SAFETY: see Backend.
unsafe impl Send for Device {}
// SAFETY: see Backend.
unsafe impl Sync for Device {}

impl Device {
    /// Creates a device emulating/selecting HTP architecture `arch` (e.g. 73), with the ≥ 5.47 config layout.
    pub fn htp(backend: Arc<Backend>, arch: u32) -> Result<Arc<Device>> {
        let mut custom = HtpDeviceCustomConfig::arch(arch);
        let cfg = Config {
            option: DEVICE_CONFIG_OPTION_CUSTOM,
            payload: &mut custom as *mut _ as *mut c_void,
        };
        let list: [*const Config; 2] = [&cfg, ptr::null()];
        let mut handle: Handle = ptr::null_mut();
        // SAFETY: deviceCreate(log, const QnnDevice_Config_t**, Qnn_DeviceHandle_t*).
        let create: unsafe extern "C" fn(Handle, *const *const Config, *mut Handle) -> ErrorHandle =
            unsafe { backend.lib.func(slot::DEVICE_CREATE) };
        // SAFETY: `list`, `cfg` and `custom` live across the call; out-pointer valid.
        backend.lib.check("deviceCreate", unsafe {
            create(backend.log, list.as_ptr(), &mut handle)
        })?;
        Ok(Arc::new(Device { backend, handle }))
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: deviceFree on the handle this value owns.
        unsafe {
            let free: unsafe extern "C" fn(Handle) -> ErrorHandle =
                self.backend.lib.func(slot::DEVICE_FREE);
            free(self.handle);
        }
    }
}

/// A context: owns the graphs created in it.
pub struct Context {
    pub backend: Arc<Backend>,
    _device: Option<Arc<Device>>,
    handle: Handle,
}

// SAFETY: see Backend.
unsafe impl Send for Context {}
// SAFETY: see Backend.
unsafe impl Sync for Context {}

impl Context {
    pub fn new(backend: Arc<Backend>, device: Option<Arc<Device>>) -> Result<Arc<Context>> {
        let mut handle: Handle = ptr::null_mut();
        // SAFETY: contextCreate(backend, device, const QnnContext_Config_t**, Qnn_ContextHandle_t*).
        let create: unsafe extern "C" fn(
            Handle,
            Handle,
            *const *const Config,
            *mut Handle,
        ) -> ErrorHandle = unsafe { backend.lib.func(slot::CONTEXT_CREATE) };
        let dev = device.as_ref().map(|d| d.handle).unwrap_or(ptr::null_mut());
        // SAFETY: handles are live; NULL config list; out-pointer valid.
        backend.lib.check("contextCreate", unsafe {
            create(backend.handle, dev, ptr::null(), &mut handle)
        })?;
        Ok(Arc::new(Context {
            backend,
            _device: device,
            handle,
        }))
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: contextFree(ctx, NULL profile) frees the context and every graph and tensor in it.
        unsafe {
            let free: unsafe extern "C" fn(Handle, Handle) -> ErrorHandle =
                self.backend.lib.func(slot::CONTEXT_FREE);
            free(self.handle, ptr::null_mut());
        }
    }
}

/// A profile handle (basic level) for finalize and execute timings.
pub struct Profile {
    backend: Arc<Backend>,
    handle: Handle,
}

// SAFETY: see Backend.
unsafe impl Send for Profile {}

impl Profile {
    pub fn basic(backend: Arc<Backend>) -> Result<Profile> {
        let mut handle: Handle = ptr::null_mut();
        // SAFETY: profileCreate(backend, level, Qnn_ProfileHandle_t*).
        let create: unsafe extern "C" fn(Handle, u32, *mut Handle) -> ErrorHandle =
            unsafe { backend.lib.func(slot::PROFILE_CREATE) };
        // SAFETY: out-pointer valid.
        backend.lib.check("profileCreate", unsafe {
            create(backend.handle, PROFILE_LEVEL_BASIC, &mut handle)
        })?;
        Ok(Profile { backend, handle })
    }

    /// The value (µs) of the first top-level event of `event_type` recorded by the last call.
    pub fn event_us(&self, event_type: u32) -> Result<Option<u64>> {
        let lib = &self.backend.lib;
        let mut ids: *const u64 = ptr::null();
        let mut n = 0u32;
        // SAFETY: profileGetEvents(profile, const QnnProfile_EventId_t**, uint32_t*).
        let events: unsafe extern "C" fn(Handle, *mut *const u64, *mut u32) -> ErrorHandle =
            unsafe { lib.func(slot::PROFILE_GET_EVENTS) };
        // SAFETY: out-pointers valid.
        lib.check("profileGetEvents", unsafe {
            events(self.handle, &mut ids, &mut n)
        })?;
        // SAFETY: profileGetEventData(eventId, QnnProfile_EventData_t*).
        let data: unsafe extern "C" fn(u64, *mut ProfileEventData) -> ErrorHandle =
            unsafe { lib.func(slot::PROFILE_GET_EVENT_DATA) };
        for i in 0..n as usize {
            // SAFETY: QNN returned `n` ids.
            let id = unsafe { *ids.add(i) };
            let mut d = ProfileEventData {
                event_type: 0,
                unit: 0,
                value: 0,
                identifier: ptr::null(),
            };
            // SAFETY: out-pointer valid.
            lib.check("profileGetEventData", unsafe { data(id, &mut d) })?;
            if d.event_type == event_type {
                return Ok(Some(d.value));
            }
        }
        Ok(None)
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        // SAFETY: profileFree on the handle this value owns.
        unsafe {
            let free: unsafe extern "C" fn(Handle) -> ErrorHandle =
                self.backend.lib.func(slot::PROFILE_FREE);
            free(self.handle);
        }
    }
}

/// How a tensor is created in a graph.
#[derive(Clone, Debug)]
pub struct TensorSpec<'a> {
    pub name: &'a str,
    pub tensor_type: u32,
    pub data_type: u32,
    pub dims: &'a [u32],
    pub quant: Quant,
    /// Data of a STATIC tensor (copied into storage the graph keeps).
    pub data: Option<&'a [u8]>,
}

/// Quantization parameters of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Quant {
    None,
    ScaleOffset {
        scale: f32,
        offset: i32,
    },
    /// Per-channel symmetric scales along `axis`.
    Axis {
        axis: i32,
        scales: Vec<f32>,
    },
}

/// A parameter of a node.
#[derive(Clone, Debug)]
pub enum ParamSpec {
    U32(&'static str, u32),
    I32(&'static str, i32),
    F32(&'static str, f32),
    Bool(&'static str, bool),
    /// A UINT_32 tensor parameter with its dimensions.
    U32Tensor(&'static str, Vec<u32>, Vec<u32>),
}

/// A graph tensor as QNN created it (the struct to reference in nodes and at execute).
#[derive(Clone, Copy)]
pub struct TensorRef {
    raw: Tensor,
    bytes: usize,
}

impl TensorRef {
    pub fn id(&self) -> u32 {
        // SAFETY: amp creates every tensor as version 1.
        unsafe { self.raw.u.v1.id }
    }
    /// Size of the tensor's data in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Bytes per element: the low byte of a `Qnn_DataType_t` spells the bit width in decimal digits (0x08, 0x16,
/// 0x32, 0x64).
fn dtype_bytes(dt: u32) -> usize {
    let bits = ((dt >> 4) & 0xF) * 10 + (dt & 0xF);
    (bits as usize).div_ceil(8).max(1)
}

/// Storage the graph's tensors and nodes point into; kept for the graph's lifetime.
#[derive(Default)]
struct Arena {
    strings: Vec<CString>,
    dims: Vec<Box<[u32]>>,
    data: Vec<Box<[u8]>>,
    scales: Vec<Box<[ScaleOffset]>>,
}

/// A graph under construction, then finalized and executable.
pub struct Graph {
    ctx: Arc<Context>,
    handle: Handle,
    arena: Mutex<Arena>,
}

// SAFETY: see Backend; the arena is behind a mutex.
unsafe impl Send for Graph {}
// SAFETY: as above.
unsafe impl Sync for Graph {}

impl Graph {
    pub fn new(ctx: Arc<Context>, name: &str) -> Result<Graph> {
        let cname = CString::new(name)
            .map_err(|_| QnnError::Invalid(format!("graph name {name:?} contains NUL")))?;
        let mut handle: Handle = ptr::null_mut();
        let lib = &ctx.backend.lib;
        // SAFETY: graphCreate(ctx, name, const QnnGraph_Config_t**, Qnn_GraphHandle_t*).
        let create: unsafe extern "C" fn(
            Handle,
            *const c_char,
            *const *const Config,
            *mut Handle,
        ) -> ErrorHandle = unsafe { lib.func(slot::GRAPH_CREATE) };
        // SAFETY: name NUL-terminated; NULL configs; out-pointer valid.
        lib.check("graphCreate", unsafe {
            create(ctx.handle, cname.as_ptr(), ptr::null(), &mut handle)
        })?;
        let mut arena = Arena::default();
        arena.strings.push(cname);
        Ok(Graph {
            ctx,
            handle,
            arena: Mutex::new(arena),
        })
    }

    fn lib(&self) -> &Library {
        &self.ctx.backend.lib
    }

    fn cstr(arena: &mut Arena, s: &str) -> Result<*const c_char> {
        let c =
            CString::new(s).map_err(|_| QnnError::Invalid(format!("name {s:?} contains NUL")))?;
        let p = c.as_ptr();
        arena.strings.push(c);
        Ok(p)
    }

    /// Creates a graph tensor.
    pub fn tensor(&self, spec: &TensorSpec) -> Result<TensorRef> {
        let mut arena = self
            .arena
            .lock()
            .map_err(|_| QnnError::Invalid("graph arena poisoned".into()))?;
        let name = Self::cstr(&mut arena, spec.name)?;
        let dims: Box<[u32]> = spec.dims.into();
        let dims_ptr = dims.as_ptr() as *mut u32;
        arena.dims.push(dims);
        let quantize_params = match &spec.quant {
            Quant::None => QuantizeParams::undefined(),
            Quant::ScaleOffset { scale, offset } => QuantizeParams::scale_offset(*scale, *offset),
            Quant::Axis { axis, scales } => {
                let mut so: Box<[ScaleOffset]> = scales
                    .iter()
                    .map(|&scale| ScaleOffset { scale, offset: 0 })
                    .collect();
                let q = QuantizeParams::axis_scale_offset(*axis, &mut so);
                arena.scales.push(so);
                q
            }
        };
        let elems: usize = spec.dims.iter().map(|&d| d as usize).product();
        let bytes = elems * dtype_bytes(spec.data_type);
        let client_buf = match spec.data {
            Some(d) => {
                if d.len() != bytes {
                    return Err(QnnError::Invalid(format!(
                        "tensor {:?}: {} bytes of data for {bytes} expected",
                        spec.name,
                        d.len()
                    )));
                }
                let b: Box<[u8]> = d.into();
                let p = b.as_ptr() as *mut c_void;
                arena.data.push(b);
                ClientBuffer {
                    data: p,
                    data_size: bytes as u32,
                }
            }
            None => ClientBuffer {
                data: ptr::null_mut(),
                data_size: 0,
            },
        };
        let mut raw = Tensor {
            version: TENSOR_VERSION_1,
            u: TensorUnion {
                v1: TensorV1 {
                    id: 0,
                    name,
                    tensor_type: spec.tensor_type,
                    data_format: 0,
                    data_type: spec.data_type,
                    quantize_params,
                    rank: spec.dims.len() as u32,
                    dimensions: dims_ptr,
                    mem_type: 0,
                    client_buf,
                },
            },
        };
        // SAFETY: tensorCreateGraphTensor(graph, Qnn_Tensor_t*).
        let create: unsafe extern "C" fn(Handle, *mut Tensor) -> ErrorHandle =
            unsafe { self.lib().func(slot::TENSOR_CREATE_GRAPH_TENSOR) };
        // SAFETY: every pointer in `raw` points into the arena, which lives as long as the graph.
        self.lib()
            .check("tensorCreateGraphTensor", unsafe {
                create(self.handle, &mut raw)
            })
            .map_err(|e| with_context(e, spec.name))?;
        Ok(TensorRef { raw, bytes })
    }

    /// Validates a node with the backend, then adds it. A node the backend rejects is an error naming it.
    pub fn node(
        &self,
        name: &str,
        op_type: &str,
        params: &[ParamSpec],
        inputs: &[TensorRef],
        outputs: &[TensorRef],
    ) -> Result<()> {
        let mut arena = self
            .arena
            .lock()
            .map_err(|_| QnnError::Invalid("graph arena poisoned".into()))?;
        let cname = Self::cstr(&mut arena, name)?;
        let package = Self::cstr(&mut arena, "qti.aisw")?;
        let ctype = Self::cstr(&mut arena, op_type)?;
        drop(arena);
        let mut raw_params = Vec::with_capacity(params.len());
        let mut tensor_params = Vec::new();
        for p in params {
            let mut arena = self
                .arena
                .lock()
                .map_err(|_| QnnError::Invalid("graph arena poisoned".into()))?;
            let scalar = |n: &'static str, data_type: u32, value: ScalarValue| {
                (
                    n,
                    ParamValue {
                        scalar: Scalar { data_type, value },
                    },
                    PARAM_TYPE_SCALAR,
                )
            };
            let (pname, value, ptype) = match p {
                ParamSpec::U32(n, v) => scalar(n, DATATYPE_UINT_32, ScalarValue { u32: *v }),
                ParamSpec::I32(n, v) => scalar(n, DATATYPE_INT_32, ScalarValue { i32: *v }),
                ParamSpec::F32(n, v) => scalar(n, DATATYPE_FLOAT_32, ScalarValue { f32: *v }),
                ParamSpec::Bool(n, v) => {
                    scalar(n, DATATYPE_BOOL_8, ScalarValue { bool8: *v as u8 })
                }
                ParamSpec::U32Tensor(n, dims, data) => {
                    drop(arena);
                    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
                    let t = self.tensor(&TensorSpec {
                        name: &format!("{name}.{n}"),
                        tensor_type: TENSOR_TYPE_STATIC,
                        data_type: DATATYPE_UINT_32,
                        dims,
                        quant: Quant::None,
                        data: Some(&bytes),
                    })?;
                    tensor_params.push(t);
                    arena = self
                        .arena
                        .lock()
                        .map_err(|_| QnnError::Invalid("graph arena poisoned".into()))?;
                    (*n, ParamValue { tensor: t.raw }, PARAM_TYPE_TENSOR)
                }
            };
            let pn = Self::cstr(&mut arena, pname)?;
            raw_params.push(Param {
                param_type: ptype,
                name: pn,
                value,
            });
        }
        let mut ins: Vec<Tensor> = inputs.iter().map(|t| t.raw).collect();
        let mut outs: Vec<Tensor> = outputs.iter().map(|t| t.raw).collect();
        let op = OpConfig {
            version: OPCONFIG_VERSION_1,
            v1: OpConfigV1 {
                name: cname,
                package_name: package,
                type_name: ctype,
                num_params: raw_params.len() as u32,
                params: raw_params.as_mut_ptr(),
                num_inputs: ins.len() as u32,
                input_tensors: ins.as_mut_ptr(),
                num_outputs: outs.len() as u32,
                output_tensors: outs.as_mut_ptr(),
            },
        };
        let node = format!("{op_type} \"{name}\"");
        self.ctx
            .backend
            .validate(op)
            .map_err(|e| rejected(e, &node))?;
        // SAFETY: graphAddNode(graph, Qnn_OpConfig_t by value).
        let add: unsafe extern "C" fn(Handle, OpConfig) -> ErrorHandle =
            unsafe { self.lib().func(slot::GRAPH_ADD_NODE) };
        // SAFETY: `op` points into raw_params, ins, outs and the arena, all alive across the call.
        self.lib()
            .check("graphAddNode", unsafe { add(self.handle, op) })
            .map_err(|e| rejected(e, &node))
    }

    pub fn finalize(&self, profile: Option<&Profile>) -> Result<()> {
        // SAFETY: graphFinalize(graph, profile, signal).
        let f: unsafe extern "C" fn(Handle, Handle, Handle) -> ErrorHandle =
            unsafe { self.lib().func(slot::GRAPH_FINALIZE) };
        let p = profile.map(|p| p.handle).unwrap_or(ptr::null_mut());
        // SAFETY: live handles; NULL signal.
        self.lib().check("graphFinalize", unsafe {
            f(self.handle, p, ptr::null_mut())
        })
    }

    /// Executes with app-owned buffers; every buffer must have exactly its tensor's size (QNN does not check).
    pub fn execute(
        &self,
        inputs: &[(TensorRef, &[u8])],
        outputs: &mut [(TensorRef, &mut [u8])],
        profile: Option<&Profile>,
    ) -> Result<()> {
        let mut ins = Vec::with_capacity(inputs.len());
        for (t, buf) in inputs {
            if buf.len() != t.bytes {
                return Err(QnnError::Invalid(format!(
                    "input tensor {}: buffer of {} bytes, expected {}",
                    t.id(),
                    buf.len(),
                    t.bytes
                )));
            }
            let mut raw = t.raw;
            // QNN only reads APP_WRITE buffers
            raw.u.v1.client_buf = ClientBuffer {
                data: buf.as_ptr() as *mut c_void,
                data_size: buf.len() as u32,
            };
            ins.push(raw);
        }
        let mut outs = Vec::with_capacity(outputs.len());
        for (t, buf) in outputs.iter_mut() {
            if buf.len() != t.bytes {
                return Err(QnnError::Invalid(format!(
                    "output tensor {}: buffer of {} bytes, expected {}",
                    t.id(),
                    buf.len(),
                    t.bytes
                )));
            }
            let mut raw = t.raw;
            // QNN writes exactly `bytes` into the buffer
            raw.u.v1.client_buf = ClientBuffer {
                data: buf.as_mut_ptr() as *mut c_void,
                data_size: buf.len() as u32,
            };
            outs.push(raw);
        }
        // SAFETY: graphExecute(graph, const Qnn_Tensor_t*, n, Qnn_Tensor_t*, n, profile, signal).
        let f: unsafe extern "C" fn(
            Handle,
            *const Tensor,
            u32,
            *mut Tensor,
            u32,
            Handle,
            Handle,
        ) -> ErrorHandle = unsafe { self.lib().func(slot::GRAPH_EXECUTE) };
        let p = profile.map(|p| p.handle).unwrap_or(ptr::null_mut());
        // SAFETY: buffers checked above and borrowed for the call's duration.
        self.lib().check("graphExecute", unsafe {
            f(
                self.handle,
                ins.as_ptr(),
                ins.len() as u32,
                outs.as_mut_ptr(),
                outs.len() as u32,
                p,
                ptr::null_mut(),
            )
        })
    }
}

fn with_context(e: QnnError, what: &str) -> QnnError {
    match e {
        QnnError::Call {
            call,
            code,
            message,
            log,
        } => QnnError::Call {
            call,
            code,
            message: format!("{what}: {message}"),
            log,
        },
        other => other,
    }
}

/// Finds `libQnnHtp.so`: the explicit directory, then `QNN_LIB_DIR`, then `QNN_SDK_ROOT`'s library folder for
/// this platform, then `qnn-runtime/lib` (what `scripts/fetch-qnn-runtime.sh` writes) in the working
/// directory or beside the executable's ancestors. The error lists every path tried.
pub fn locate_htp(explicit: Option<&Path>) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = explicit {
        dirs.push(d.to_path_buf());
    }
    if let Some(d) = std::env::var_os("QNN_LIB_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(root) = std::env::var_os("QNN_SDK_ROOT") {
        let sub = if cfg!(target_os = "android") {
            "lib/aarch64-android"
        } else if cfg!(target_arch = "aarch64") {
            "lib/aarch64-oe-linux-gcc11.2"
        } else {
            "lib/x86_64-linux-clang"
        };
        dirs.push(PathBuf::from(root).join(sub));
    }
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd.join("qnn-runtime/lib"));
    }
    if let Ok(exe) = std::env::current_exe() {
        for a in exe.ancestors().skip(1).take(5) {
            dirs.push(a.join("qnn-runtime/lib"));
        }
    }
    locate_in("libQnnHtp.so", &dirs)
}

/// The first `dirs[i]/name` that exists; the error lists every path tried and what to do.
pub fn locate_in(name: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    let mut tried = Vec::new();
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p.display().to_string());
    }
    Err(QnnError::Load {
        path: name.into(),
        msg: format!(
            "not found; tried {}. Run scripts/fetch-qnn-runtime.sh (x86_64 emulator), or set QNN_SDK_ROOT or QNN_LIB_DIR, or pass --qnn-lib DIR",
            tried.join(", ")
        ),
    })
}
