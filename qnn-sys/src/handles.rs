//! Safe handles: backend (with its logger), device (an HTP architecture), context, profile. Each holds an
//! `Arc` of its parent, so the library outlives every handle and children are freed first.

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use crate::library::{log_callback, slot, stdout_to_stderr, Library, LogCallback};
use crate::types::*;
use crate::Result;

/// A backend handle (with its logger).
pub struct Backend {
    pub lib: Arc<Library>,
    log: Handle,
    pub(crate) handle: Handle,
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
    pub(crate) handle: Handle,
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
    pub(crate) handle: Handle,
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
    pub(crate) handle: Handle,
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
