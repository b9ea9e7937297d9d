//! A lock on a results folder: one run at a time writes its journal, reports and agent uploads. The lock
//! is `DIR/.lock` holding the owner's PID, created exclusively, removed when the run ends; a lock whose
//! process is gone (a killed run) is stale and taken over.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

#[derive(Debug)]
pub struct ResultsLock {
    path: PathBuf,
}

/// Whether process `pid` is alive (signal 0 reaches it, or it exists under another user).
fn alive(pid: i32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    pid > 0 && !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

impl ResultsLock {
    /// Takes the lock of `dir`. Held by a live run: waits up to `wait` for it to end, then fails naming that
    /// run's PID.
    pub fn take(dir: &Path, wait: Duration) -> Result<ResultsLock> {
        let path = dir.join(".lock");
        let start = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id())
                        .with_context(|| format!("writing {}", path.display()))?;
                    return Ok(ResultsLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    match owner.trim().parse::<i32>() {
                        Ok(pid) if alive(pid) => {
                            if start.elapsed() >= wait {
                                bail!(
                                    "{} is in use by another run (PID {pid}); wait for it to end, pass --wait-lock SECONDS, or use another --results",
                                    dir.display()
                                );
                            }
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        // the owner is gone (killed), or the file is half written by a run just starting:
                        // give a starting run a moment, then treat the lock as stale
                        _ => {
                            let age = std::fs::metadata(&path)
                                .and_then(|m| m.modified())
                                .ok()
                                .and_then(|t| t.elapsed().ok())
                                .unwrap_or_default();
                            if owner.trim().is_empty() && age < Duration::from_secs(2) {
                                std::thread::sleep(Duration::from_millis(100));
                                continue;
                            }
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", path.display()));
                }
            }
        }
    }
}

impl Drop for ResultsLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_a_dead_holder_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let held = ResultsLock::take(dir.path(), Duration::ZERO).unwrap();
        let e = ResultsLock::take(dir.path(), Duration::from_millis(300)).unwrap_err();
        assert!(
            format!("{e}").contains(&format!("PID {}", std::process::id())),
            "{e}"
        );
        drop(held);
        assert!(!dir.path().join(".lock").exists());
        // a lock left by a process that no longer exists
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        std::fs::write(dir.path().join(".lock"), format!("{pid}\n")).unwrap();
        let _again = ResultsLock::take(dir.path(), Duration::ZERO).unwrap();
    }
}
