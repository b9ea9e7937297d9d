//! Finding `libQnnHtp.so` on this machine.

use std::path::{Path, PathBuf};

use crate::{QnnError, Result};

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
