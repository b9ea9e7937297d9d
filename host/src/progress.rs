//! Progress of long work on stderr: a bar in a terminal; without one (a CI log, a pipe) one line per step
//! at most every few seconds, with counts and elapsed time, and a line when the step ends. `--quiet` turns
//! both off.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// No progress at all from now on (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// How often a line is written without a terminal.
const EVERY: Duration = Duration::from_secs(5);

struct Lines {
    what: String,
    len: u64,
    pos: u64,
    start: Instant,
    last: Instant,
}

pub struct Progress {
    bar: ProgressBar,
    lines: Option<Mutex<Lines>>,
}

impl Progress {
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if let Some(l) = &self.lines {
            let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
            l.pos += n;
            if l.last.elapsed() >= EVERY {
                l.last = Instant::now();
                eprintln!(
                    "{}: {}/{} ({:.0}%), {:.0} s",
                    l.what,
                    l.pos,
                    l.len,
                    100.0 * l.pos as f64 / l.len.max(1) as f64,
                    l.start.elapsed().as_secs_f64()
                );
            }
        }
    }

    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
        if let Some(l) = &self.lines {
            let l = l.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "{}: {}/{} done in {:.1} s",
                l.what,
                l.pos,
                l.len,
                l.start.elapsed().as_secs_f64()
            );
        }
    }
}

pub fn bar(len: u64, what: &str) -> Progress {
    let quiet = QUIET.load(Ordering::Relaxed);
    let terminal = std::io::stderr().is_terminal();
    let b = if quiet || !terminal {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(len);
        // the elapsed time and the rate move on through a step that takes minutes (one HTP evaluation)
        b.enable_steady_tick(Duration::from_millis(500));
        b
    };
    b.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_message(what.to_string());
    let lines = (!quiet && !terminal && len > 0).then(|| {
        Mutex::new(Lines {
            what: what.to_string(),
            len,
            pos: 0,
            start: Instant::now(),
            last: Instant::now(),
        })
    });
    Progress { bar: b, lines }
}

/// One line of progress on stderr (unless `--quiet`): what a step starts, or how it ended.
pub fn note(msg: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{msg}");
    }
}
