//! Several devices with the same backend as one evaluator. Jobs go to whichever device is free. A device
//! that is lost (its transport or agent gone) is reconnected once, then dropped, and its job goes back to the
//! queue for the others; a config that fails, or that the backend cannot run, is that job's answer and the
//! device stays. Results do not depend on which device served.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::channel;
use std::sync::{Condvar, Mutex};

use amp_device::error::{ErrorKind, EvalError};
use amp_device::quant::Precision;
use anyhow::{bail, Result};

use super::agent::{AgentEvaluator, Connector};
use super::transport::DeviceSpec;
use crate::amp::evaluator::{
    Config, Evaluator, Job, Latency, Metric, MetricSpec, Prices, Probe, Provenance, Runs, Subset,
};
use amp_device::backend::Array;

struct Slot {
    spec: DeviceSpec,
    ev: Option<AgentEvaluator>,
    restarted: bool,
    served: usize,
}

pub struct PoolEvaluator {
    slots: Vec<Slot>,
    connector: Connector,
    identity: String,
}

fn say(msg: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "amp-host: {msg}");
}

impl PoolEvaluator {
    pub fn connect(specs: &[DeviceSpec], connector: Connector) -> Result<PoolEvaluator> {
        let mut slots = Vec::new();
        let mut identity = None;
        for spec in specs {
            match connector.connect(spec) {
                Ok(ev) => {
                    // the pool's results are the backend's, whichever device serves
                    let who = ev.identity();
                    let backend = who.split('@').next().unwrap_or_default().to_string();
                    if let Some(id) = &identity {
                        if *id != backend {
                            bail!("device {spec} runs {backend}, but the pool's other devices run {id}; a pool needs one backend");
                        }
                    }
                    identity = Some(backend);
                    slots.push(Slot {
                        spec: spec.clone(),
                        ev: Some(ev),
                        restarted: false,
                        served: 0,
                    });
                }
                Err(e) => say(format_args!("device {spec} left out of the pool: {e:#}")),
            }
        }
        let identity = identity
            .ok_or_else(|| EvalError::device_lost("no device of the pool could be reached"))?;
        // accuracy on one HTP generation and latency on one SoC say nothing of another's
        let socs: Vec<String> = (slots.iter())
            .filter_map(|s| {
                s.ev.as_ref()
                    .map(|e| format!("{} ({})", s.spec, e.provenance().soc))
            })
            .collect();
        let mut distinct: Vec<String> = (slots.iter())
            .filter_map(|s| s.ev.as_ref().map(|e| e.provenance().soc))
            .collect();
        distinct.sort();
        distinct.dedup();
        if distinct.len() > 1 {
            return Err(crate::Usage(format!(
                "the pool mixes SoCs: {}; a pool shares accuracy and latency work only among devices of one SoC: give --per-soc to tune each SoC, or --device soc:NAME",
                socs.join(", ")
            ))
            .into());
        }
        Ok(PoolEvaluator {
            slots,
            connector,
            identity: format!("{identity}@pool"),
        })
    }

    /// The devices still in the pool.
    pub fn live(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|s| s.ev.is_some())
            .map(|s| s.spec.to_string())
            .collect()
    }

    /// The first device still in the pool: timings all come from it, so they compare with each other.
    fn first_live(&mut self) -> Result<&mut AgentEvaluator> {
        self.slots
            .iter_mut()
            .find_map(|s| s.ev.as_mut())
            .ok_or_else(|| EvalError::device_lost("every device of the pool is gone").into())
    }
}

/// Runs one job on a slot, reconnecting once when the device is lost. The job's answer (a value, or an
/// error that is the config's: unsupported or failed); None when the device is gone and the job must go
/// elsewhere.
fn run_on(slot: &mut Slot, connector: &Connector, job: &Job) -> Option<Result<f64>> {
    loop {
        let ev = slot.ev.as_mut()?;
        let e = match ev.evaluate(job) {
            Ok(v) => {
                slot.served += 1;
                return Some(Ok(v));
            }
            Err(e) if EvalError::kind_of(&e) != ErrorKind::DeviceLost => return Some(Err(e)),
            Err(e) => e,
        };
        say(format_args!("device {} lost: {e:#}", slot.spec));
        slot.ev = None;
        if slot.restarted {
            say(format_args!("device {} dropped from the pool", slot.spec));
            return None;
        }
        slot.restarted = true;
        match connector.connect(&slot.spec) {
            Ok(ev) => slot.ev = Some(ev),
            Err(e) => {
                let spec = &slot.spec;
                say(format_args!(
                    "device {spec} could not be restarted ({e:#}); dropped"
                ));
                return None;
            }
        }
    }
}

/// The jobs of one `evaluate_many`: those waiting, and how many a device is running. A worker leaves only
/// when nothing waits and nothing runs (a running job may come back if its device is lost), or when its
/// own device is gone.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<usize>,
    running: usize,
    stop: bool,
}

/// The next job for a worker, waiting while other devices still run jobs that may come back; None when
/// there is nothing left to do.
fn next_job(q: &Mutex<Queue>, cv: &Condvar) -> Option<usize> {
    let mut g = q.lock().ok()?;
    loop {
        if g.stop {
            return None;
        }
        if let Some(i) = g.waiting.pop_front() {
            g.running += 1;
            return Some(i);
        }
        if g.running == 0 {
            return None;
        }
        g = cv.wait(g).ok()?;
    }
}

/// A worker is done with job `i`; `requeue` when its device is gone and the job must go elsewhere.
fn finish_job(q: &Mutex<Queue>, cv: &Condvar, i: usize, requeue: bool) {
    if let Ok(mut g) = q.lock() {
        g.running -= 1;
        if requeue {
            g.waiting.push_front(i);
        }
    }
    cv.notify_all();
}

impl Evaluator for PoolEvaluator {
    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn pushed_bytes(&self) -> u64 {
        self.slots
            .iter()
            .filter_map(|s| s.ev.as_ref())
            .map(|e| e.pushed_bytes)
            .sum()
    }

    fn pulled_bytes(&self) -> u64 {
        self.slots
            .iter()
            .filter_map(|s| s.ev.as_ref())
            .map(|e| e.pulled_bytes)
            .sum()
    }

    fn provenance(&self) -> Provenance {
        self.slots
            .iter()
            .find_map(|s| s.ev.as_ref())
            .map(|e| e.provenance())
            .unwrap_or_else(|| Provenance {
                device: self.identity.clone(),
                soc: String::new(),
                backend: self.identity.clone(),
            })
    }

    /// Timings come from one device (the first still in the pool), so they compare with each other.
    fn latency(&mut self, config: Option<&[Precision]>, runs: Runs) -> Result<Latency> {
        self.first_live()?.latency(config, runs)
    }

    fn price_converts(&mut self, probes: &[Probe], runs: Runs) -> Result<Prices> {
        self.first_live()?.price_converts(probes, runs)
    }

    fn served(&self) -> Vec<(String, usize)> {
        self.slots
            .iter()
            .map(|s| (s.spec.to_string(), s.served))
            .collect()
    }

    fn score(&mut self, config: Config, subset: Subset, metric: MetricSpec) -> Result<f64> {
        self.evaluate(&Job {
            config: config.map(|c| c.to_vec()),
            subset,
            metric: Metric::Builtin(metric),
        })
    }

    fn outputs(&mut self, config: Option<&[Precision]>, subset: Subset) -> Result<Vec<Array>> {
        self.first_live()?.outputs(config, subset)
    }

    fn evaluate(&mut self, job: &Job) -> Result<f64> {
        for slot in &mut self.slots {
            if let Some(r) = run_on(slot, &self.connector, job) {
                return r;
            }
        }
        Err(EvalError::device_lost("every device of the pool is gone").into())
    }

    fn evaluate_many(
        &mut self,
        jobs: &[Job],
        done: &mut dyn FnMut(usize, Result<f64>) -> Result<()>,
    ) -> Result<()> {
        let connector = &self.connector;
        let slots = self.slots.iter_mut().filter(|s| s.ev.is_some()).collect();
        share(
            slots,
            jobs.len(),
            &|slot: &mut &mut Slot, i| run_on(slot, connector, &jobs[i]),
            done,
        )
    }
}

/// Shares jobs `0..n` among `workers`, one thread each: a worker takes the next waiting job, or waits while
/// jobs still run elsewhere (they come back when their device is lost), and leaves when its own device is
/// gone (`run` gives None: the job goes back for the others) or when nothing is left. `done` sees every
/// answer on this thread; its first error stops the sharing.
fn share<W: Send>(
    workers: Vec<W>,
    n: usize,
    run: &(dyn Fn(&mut W, usize) -> Option<Result<f64>> + Sync),
    done: &mut dyn FnMut(usize, Result<f64>) -> Result<()>,
) -> Result<()> {
    let queue = Mutex::new(Queue {
        waiting: (0..n).collect(),
        ..Queue::default()
    });
    let cv = Condvar::new();
    let (tx, rx) = channel::<(usize, Result<f64>)>();
    let mut first_err = None;
    std::thread::scope(|scope| {
        for mut w in workers {
            let (tx, queue, cv) = (tx.clone(), &queue, &cv);
            scope.spawn(move || {
                while let Some(i) = next_job(queue, cv) {
                    match run(&mut w, i) {
                        Some(r) => {
                            let sent = tx.send((i, r)).is_ok();
                            finish_job(queue, cv, i, false);
                            if !sent {
                                return;
                            }
                        }
                        None => {
                            // this device is gone: the job goes back for the others
                            finish_job(queue, cv, i, true);
                            return;
                        }
                    }
                }
            });
        }
        drop(tx);
        let mut finished = 0;
        for (i, r) in rx.iter() {
            finished += 1;
            if first_err.is_some() {
                continue;
            }
            if let Err(e) = done(i, r) {
                first_err = Some(e);
                // let the workers leave quickly
                if let Ok(mut q) = queue.lock() {
                    q.stop = true;
                    q.waiting.clear();
                }
                cv.notify_all();
            }
        }
        if first_err.is_none() && finished < n {
            first_err = Some(
                EvalError::device_lost(format!(
                    "every device of the pool is gone; {} evaluations were not run",
                    n - finished
                ))
                .into(),
            );
        }
    });
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A device that answers after `delay`, or is lost (None) on the first job it takes.
    struct Fake {
        delay: Duration,
        lost: bool,
        took: Vec<usize>,
    }

    fn run(f: &mut &mut Fake, i: usize) -> Option<Result<f64>> {
        f.took.push(i);
        std::thread::sleep(f.delay);
        (!f.lost).then(|| Ok(i as f64))
    }

    /// The defect this guards: a device lost while the last job was in flight, after the other device had
    /// found the queue empty, left that job without a taker ("every device of the pool is gone" with a live
    /// device).
    #[test]
    fn the_job_of_a_lost_device_is_taken_by_a_live_one_even_when_it_was_the_last() {
        let mut exercised = 0;
        for _ in 0..10 {
            let mut steady = Fake {
                delay: Duration::from_millis(10),
                lost: false,
                took: vec![],
            };
            let mut flaky = Fake {
                delay: Duration::from_millis(150),
                lost: true,
                took: vec![],
            };
            let mut answers = vec![];
            share(vec![&mut steady, &mut flaky], 2, &run, &mut |i, r| {
                answers.push((i, r.unwrap()));
                Ok(())
            })
            .unwrap();
            answers.sort_by_key(|a| a.0);
            assert_eq!(answers, vec![(0, 0.0), (1, 1.0)]);
            // the lost device's job went to the steady one once its own queue had run dry
            if let [j] = flaky.took[..] {
                assert!(steady.took.ends_with(&[j]), "{:?}", steady.took);
                exercised += 1;
            }
        }
        assert!(exercised > 0, "the lost device never took a job");
    }

    #[test]
    fn with_every_device_lost_the_jobs_left_are_counted() {
        let mut fakes: Vec<Fake> = (0..2)
            .map(|_| Fake {
                delay: Duration::ZERO,
                lost: true,
                took: vec![],
            })
            .collect();
        let e = share(fakes.iter_mut().collect(), 3, &run, &mut |_, _| Ok(())).unwrap_err();
        assert!(format!("{e}").contains("3 evaluations were not run"), "{e}");
    }
}
