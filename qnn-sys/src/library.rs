//! Loading a QNN backend library: the provider with a compatible interface table, checked calls through it,
//! and QNN's log captured for error messages (its stdout banner sent to stderr).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, Mutex};

use crate::types::*;
use crate::{QnnError, Result};

/// Interface table slots (index into the function-pointer table that follows `InterfaceHead`).
pub(crate) mod slot {
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
pub(crate) type LogCallback = unsafe extern "C" fn(*const c_char, u32, u64, *mut c_void);

extern "C" {
    fn vsnprintf(buf: *mut c_char, n: usize, fmt: *const c_char, ap: *mut c_void) -> c_int;
    fn dup(fd: c_int) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn fflush(stream: *mut c_void) -> c_int;
}

/// Runs `f` with the process's stdout pointed at stderr: libQnnHtp prints a banner on stdout when it
/// starts, which would corrupt the machine-readable output of amp's `--json` commands.
pub(crate) fn stdout_to_stderr<T>(f: impl FnOnce() -> T) -> T {
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

pub(crate) unsafe extern "C" fn log_callback(
    fmt: *const c_char,
    level: u32,
    _ts: u64,
    args: *mut c_void,
) {
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

/// What QNN logged since the last call to this: its errors, or when it logged none, its last warnings; each
/// message once (QNN repeats the same warnings for every graph).
pub(crate) fn take_log() -> String {
    let Ok(mut log) = LOG.lock() else {
        return String::new();
    };
    let all = std::mem::take(&mut *log);
    let errors: Vec<&String> = all.iter().filter(|m| m.starts_with("<E>")).collect();
    let mut kept: Vec<&String> = if errors.is_empty() {
        all.iter().rev().take(4).rev().collect()
    } else {
        errors
    };
    let mut seen = std::collections::HashSet::new();
    kept.retain(|m| seen.insert(m.as_str()));
    kept.into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// A loaded QNN backend library and its interface table.
pub struct Library {
    path: PathBuf,
    table: *const *const c_void,
    pub backend_id: u32,
    pub provider_name: String,
    pub core_api: Version,
    pub backend_api: Version,
    // never unloaded (dlclose): the HTP library runs worker threads and keeps thread-local state beyond the
    // handles it gave out. Once, after every test of a process that loaded and dropped it several times had
    // passed, the process aborted at exit ("double free or corruption"); six reruns did not repeat it, so
    // this removes the one teardown step amp controls rather than a cause proven
    _lib: std::mem::ManuallyDrop<libloading::Library>,
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
                    _lib: std::mem::ManuallyDrop::new(lib),
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
    pub(crate) unsafe fn func<F: Copy>(&self, slot: usize) -> F {
        let p = self.raw(slot);
        assert!(!p.is_null(), "QNN interface slot {slot} is empty");
        // SAFETY: the caller guarantees `F` is the slot's function-pointer type, which has pointer size.
        unsafe { std::mem::transmute_copy(&p) }
    }

    pub(crate) fn check(&self, call: &'static str, rc: ErrorHandle) -> Result<()> {
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
