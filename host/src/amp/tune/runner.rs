//! Every evaluation and latency measurement of a tune goes through the [`Runner`]: answered from the journal
//! when an earlier run (or this one) made it, else measured and journalled at once. An evaluation that
//! cannot run (unsupported) or fails for a reason of the config's own is journalled with its message and
//! answered None, so the search drops that config; a lost device stops the tune (the journal keeps what was
//! measured).

use std::time::Instant;

use amp_device::error::{ErrorKind, EvalError};
use amp_device::quant::Precision;
use anyhow::Result;

use super::result::PhaseStats;
use super::{Identity, Timing};
pub use crate::amp::evaluator::config_str;
use crate::amp::evaluator::{Evaluator, Job, Metric, Subset};
use crate::amp::journal::{self, Journal};

/// The phase as the journal names it.
fn phase_name(phase: usize) -> String {
    match phase {
        VERIFY => "verify".into(),
        p => p.to_string(),
    }
}

/// The phase index of the verification on another backend.
pub const VERIFY: usize = 4;

/// What the journal keeps of one measurement's outcome.
struct Outcome {
    value: Option<f64>,
    unsupported: Option<String>,
    failed: Option<String>,
}

/// The outcome of a measurement, or the error when the device is lost.
fn outcome(r: Result<f64>) -> Result<Outcome> {
    let none = Outcome {
        value: None,
        unsupported: None,
        failed: None,
    };
    match r {
        Ok(v) => Ok(Outcome {
            value: Some(v),
            ..none
        }),
        Err(e) => match EvalError::kind_of(&e) {
            ErrorKind::Unsupported => Ok(Outcome {
                unsupported: Some(format!("{e:#}")),
                ..none
            }),
            ErrorKind::Failed => Ok(Outcome {
                failed: Some(format!("{e:#}")),
                ..none
            }),
            ErrorKind::DeviceLost | ErrorKind::Halt => Err(e),
        },
    }
}

pub struct Runner<'a, 'b> {
    pub ev: &'a mut dyn Evaluator,
    /// The evaluator of phase 1 (the same device as `ev`, or the reference backend as a fast path).
    pub ev1: Option<&'b mut dyn Evaluator>,
    pub journal: &'a mut Journal,
    pub id: &'a Identity,
    /// Phases 0–3, and 4: the verification on another backend.
    pub phases: [PhaseStats; 5],
    pub timing: PhaseStats,
    /// "phase P, CONFIG: message" of every failed evaluation.
    pub failures: Vec<String>,
}

impl<'a, 'b> Runner<'a, 'b> {
    pub fn new(
        ev: &'a mut dyn Evaluator,
        ev1: Option<&'b mut dyn Evaluator>,
        journal: &'a mut Journal,
        id: &'a Identity,
    ) -> Self {
        Runner {
            ev,
            ev1,
            journal,
            id,
            phases: Default::default(),
            timing: Default::default(),
            failures: Vec::new(),
        }
    }

    /// The evaluator of `phase`.
    fn evaluator(&mut self, phase: usize) -> &mut dyn Evaluator {
        match (phase, self.ev1.as_deref_mut()) {
            (1, Some(e)) => e,
            _ => &mut *self.ev,
        }
    }

    fn data_hash(&self, subset: Subset) -> &str {
        match subset {
            Subset::Phase1 => &self.id.phase1_data,
            Subset::Phase2 => &self.id.phase2_data,
        }
    }

    /// Journals one measurement's outcome; its value, None when it could not be had.
    #[allow(clippy::too_many_arguments)]
    fn record(
        journal: &mut Journal,
        failures: &mut Vec<String>,
        key: String,
        phase: String,
        config: String,
        metric: String,
        r: Result<f64>,
        seconds: f64,
    ) -> Result<Option<f64>> {
        let o = outcome(r)?;
        if let Some(m) = &o.failed {
            failures.push(format!("phase {phase}, {config}: {m}"));
        }
        journal.append(journal::Entry {
            key,
            phase,
            config,
            metric,
            value: o.value,
            unsupported: o.unsupported,
            failed: o.failed,
            seconds,
            sum: None,
        })?;
        Ok(o.value)
    }

    /// The score of `config` on `subset` by `metric` (oriented: higher is better), from the journal or
    /// measured; None when it cannot be had (the search then drops the config).
    pub fn eval(
        &mut self,
        phase: usize,
        config: Option<&[Precision]>,
        subset: Subset,
        metric: &Metric,
    ) -> Result<Option<f64>> {
        let job = Job {
            config: config.map(|c| c.to_vec()),
            subset,
            metric: metric.clone(),
        };
        let mut value = None;
        self.eval_jobs(phase, &[job], |_, v| value = v)?;
        Ok(value)
    }

    /// Like [`Runner::eval`] for many configs at once (a device pool runs them in parallel); every result is
    /// journalled as soon as it arrives, and `tick` is called once per config.
    pub fn eval_many(
        &mut self,
        phase: usize,
        configs: &[Vec<Precision>],
        subset: Subset,
        metric: &Metric,
        mut tick: impl FnMut(),
    ) -> Result<Vec<Option<f64>>> {
        let jobs: Vec<Job> = configs
            .iter()
            .map(|c| Job {
                config: Some(c.clone()),
                subset,
                metric: metric.clone(),
            })
            .collect();
        let mut out = vec![None; configs.len()];
        self.eval_jobs(phase, &jobs, |i, v| {
            out[i] = v;
            tick();
        })?;
        Ok(out)
    }

    /// Answers every job, oriented (the journal keeps the metric's own values).
    fn eval_jobs(
        &mut self,
        phase: usize,
        jobs: &[Job],
        mut answer: impl FnMut(usize, Option<f64>),
    ) -> Result<()> {
        let mut answer = |i: usize, v: Option<f64>| answer(i, v.map(|v| jobs[i].metric.orient(v)));
        let who = self.evaluator(phase).identity();
        let mut todo = Vec::new();
        let mut keys = Vec::new();
        for (i, j) in jobs.iter().enumerate() {
            let key = journal::key(&[
                &self.id.model,
                self.data_hash(j.subset),
                &self.id.encodings,
                &config_str(j.config.as_deref()),
                &who,
                &j.metric.key(),
            ]);
            match self.journal.get(&key) {
                Some(e) => {
                    // "from the journal" counts an earlier run's records, not this run's own reused
                    if self.journal.from_earlier_run(&key) {
                        self.phases[phase].cached += 1;
                    }
                    answer(i, e.value);
                }
                None => {
                    todo.push(i);
                    keys.push(key);
                }
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let batch: Vec<Job> = todo.iter().map(|&i| jobs[i].clone()).collect();
        let t = Instant::now();
        let (journal, failures) = (&mut *self.journal, &mut self.failures);
        let stats = &mut self.phases[phase];
        let ev: &mut dyn Evaluator = match (phase, self.ev1.as_deref_mut()) {
            (1, Some(e)) => e,
            _ => &mut *self.ev,
        };
        ev.evaluate_many(&batch, &mut |k, r| {
            let j = &batch[k];
            let value = Self::record(
                journal,
                failures,
                keys[k].clone(),
                phase_name(phase),
                config_str(j.config.as_deref()),
                j.metric.key(),
                r,
                t.elapsed().as_secs_f64(),
            )?;
            stats.evaluations += 1;
            answer(todo[k], value);
            Ok(())
        })
    }

    /// Median whole-graph latency (µs) of a config measured on the main evaluator, journalled like an
    /// evaluation; None when the backend cannot run it.
    pub fn latency(&mut self, config: &[Precision], t: &Timing) -> Result<Option<f64>> {
        let cfg = config_str(Some(config));
        let metric = format!("latency-b{}", t.batch);
        let who = self.ev.identity();
        let key = journal::key(&[
            &self.id.model,
            "latency",
            &self.id.encodings,
            &cfg,
            &who,
            &metric,
        ]);
        if let Some(e) = self.journal.get(&key) {
            if self.journal.from_earlier_run(&key) {
                self.timing.cached += 1;
            }
            return Ok(e.value);
        }
        let start = Instant::now();
        let r = self.ev.latency(Some(config), t.runs()).map(|l| l.median_us);
        let secs = start.elapsed().as_secs_f64();
        let (journal, failures) = (&mut *self.journal, &mut self.failures);
        let phase = "latency".to_string();
        let value = Self::record(journal, failures, key, phase, cfg, metric, r, secs)?;
        self.timing.evaluations += 1;
        self.timing.seconds += secs;
        Ok(value)
    }
}
