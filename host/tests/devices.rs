//! Evaluations through `amp-agent` over stdio (`--device local`) and TCP give the same results as in this
//! process; a rerun pushes no bytes; bad frames end a connection with an error, never a panic.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};

mod common;
use common::{
    amp, amp_in, assert_same_as_single, bin, finish, full_curve, root, spawn, wait_for_phase1,
};

/// The whole curve of digits_outlier on `device`.
fn tune(results: &Path, device: &str) -> serde_json::Value {
    amp_in(&mut full_curve("digits_outlier", results, &[device]))
}

/// The whole curve of mnist_mbv on a pool, started in the background.
fn tune_mbv(results: &Path, devices: &[String]) -> std::process::Child {
    let devices: Vec<&str> = devices.iter().map(String::as_str).collect();
    spawn(&mut full_curve("mnist_mbv", results, &devices))
}

/// Starts `amp-agent serve --listen 127.0.0.1:0` and returns it with the port it bound.
fn serve_tcp(work: &Path) -> (Child, u16) {
    common::spawn_listening(Command::new(bin("amp-agent")).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--work",
        work.to_str().unwrap(),
    ]))
}

#[test]
fn local_tcp_and_inprocess_give_the_same_curve() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let work = tempfile::tempdir().unwrap();
    let (mut agent, port) = serve_tcp(work.path());
    let runs = [
        ("inprocess", dirs[0].path()),
        ("local", dirs[1].path()),
        (&*format!("tcp:127.0.0.1:{port}"), dirs[2].path()),
    ];
    let mut curves = Vec::new();
    for (device, dir) in runs {
        let r = tune(dir, device);
        assert!(r["evaluations"].as_u64().unwrap() > 0);
        let mut pareto: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("pareto.json")).unwrap())
                .unwrap();
        pareto.as_object_mut().unwrap().remove("target");
        curves.push((device.to_string(), pareto, r));
    }
    for (device, curve, _) in &curves[1..] {
        assert_eq!(
            curve, &curves[0].1,
            "{device} gave another curve than in-process evaluation"
        );
    }
    assert!(curves[1].2["pushed_bytes"].as_u64().unwrap() > 0);
    // the same tune again: nothing pushed (the agent keeps its blobs), nothing evaluated
    let again = tune(dirs[1].path(), "local");
    assert_eq!(
        (
            again["pushed_bytes"].as_u64(),
            again["evaluations"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
    // a fresh journal re-evaluates but still pushes nothing
    let tcp_dir = tempfile::tempdir().unwrap();
    let fresh = tune(tcp_dir.path(), &format!("tcp:127.0.0.1:{port}"));
    assert_eq!(fresh["pushed_bytes"].as_u64(), Some(0), "{fresh}");
    agent.kill().unwrap();
    agent.wait().unwrap();
}

#[test]
fn garbage_and_version_mismatch_end_the_connection_not_the_agent() {
    let work = tempfile::tempdir().unwrap();
    let (mut agent, port) = serve_tcp(work.path());
    let mut seed = 42u64;
    for round in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut bytes = Vec::new();
        for _ in 0..(round * 7 + 3) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            bytes.push((seed >> 56) as u8);
        }
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
    }
    // a host speaking another protocol version is told both versions
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    amp_device::protocol::write_frame(
        &mut s,
        &amp_device::protocol::Request::Hello {
            protocol: 999,
            host_version: "x".into(),
        },
    )
    .unwrap();
    let r: amp_device::protocol::Response = amp_device::protocol::read_frame(&mut s).unwrap();
    match r {
        amp_device::protocol::Response::Error { message, .. } => assert!(
            message.contains("999")
                && message.contains(&format!(
                    "agent speaks {}",
                    amp_device::protocol::PROTOCOL_VERSION
                )),
            "{message}"
        ),
        other => panic!("expected an error, got {other:?}"),
    }
    // the agent is still serving
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent died on bad input"
    );
    let dir = tempfile::tempdir().unwrap();
    let r = tune(dir.path(), &format!("tcp:127.0.0.1:{port}"));
    assert!(
        r["fp32"].as_f64().unwrap() > 0.98 && r["evaluations"].as_u64().unwrap() > 0,
        "{r}"
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
}

#[test]
fn a_pool_survives_a_device_killed_in_phase_1() {
    let works: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut a, pa) = serve_tcp(works[0].path());
    let (mut b, pb) = serve_tcp(works[1].path());
    let pool = vec![format!("tcp:127.0.0.1:{pa}"), format!("tcp:127.0.0.1:{pb}")];

    // the reference: one device (b), uninterrupted
    let single_dir = tempfile::tempdir().unwrap();
    let single = finish(tune_mbv(single_dir.path(), &pool[1..]));

    // the pool, with device a killed once phase 1 has journalled a few evaluations
    let dir = tempfile::tempdir().unwrap();
    let mut child = tune_mbv(dir.path(), &pool);
    wait_for_phase1(&mut child, &dir.path().join("journal.jsonl"), 4);
    a.kill().unwrap();
    a.wait().unwrap();
    let r = finish(child);
    assert_same_as_single(&r, dir.path(), &single, single_dir.path());
    let served = r["served"].as_array().unwrap();
    assert_eq!(served.len(), 2, "{r}");
    let total: u64 = served.iter().map(|s| s[1].as_u64().unwrap()).sum();
    assert_eq!(total, r["evaluations"].as_u64().unwrap(), "{r}");
    b.kill().unwrap();
    b.wait().unwrap();
}

#[test]
fn bench_on_a_device_reports_the_agents_latency() {
    let ex = root().join("examples/digits");
    let cache = tempfile::tempdir().unwrap();
    let r = amp(&[
        "bench",
        "--model",
        ex.join("model.onnx").to_str().unwrap(),
        "--data",
        ex.join("val.npz").to_str().unwrap(),
        "--precision",
        "a8w8",
        "--device",
        "local",
        "--iters",
        "5",
        "--json",
        "--cache",
        cache.path().to_str().unwrap(),
    ]);
    // the reference backend has no profiler: the agent times the run call
    assert_eq!(r["source"], "wall-clock", "{r}");
    let w = &r["latency_us"];
    let (min, med, max) = (
        w["min"].as_f64().unwrap(),
        w["median"].as_f64().unwrap(),
        w["max"].as_f64().unwrap(),
    );
    assert!(min > 0.0 && min <= med && med <= max, "{r}");
    assert_eq!(r["evaluator"], "ref@local");
}

/// digits, its data and calibration statistics, and a connector to local agents (their blob caches in
/// `work`).
fn digits_connector(work: &Path) -> amp_host::amp::remote::Connector {
    let ex = root().join("examples/digits");
    let data = amp_host::data::Dataset::load(&ex.join("val.npz")).unwrap();
    let opts = amp_host::import::ImportOptions {
        input_shape: Some(data.sample_shape()),
        ..Default::default()
    };
    let graph =
        std::sync::Arc::new(amp_host::import::import_file(&ex.join("model.onnx"), &opts).unwrap());
    let stats = amp_host::calib::calibrate(graph.clone(), &data.head(64).inputs, 32).unwrap();
    amp_host::amp::remote::Connector {
        work: work.to_path_buf(),
        qnn_lib: None,
        backend: amp_device::protocol::BackendChoice::Ref,
        groups: amp_host::amp::groups::Groups::new(&graph),
        graph,
        stats,
        per_channel: true,
        phase1: 100,
        data,
        batch: 32,
        timeout: Some(std::time::Duration::from_secs(120)),
    }
}

/// What a metric of the user's own reads: the model outputs of a whole subset, which score on the host as
/// the agent scores them itself, with the bytes that came back counted.
#[test]
fn the_agent_returns_the_outputs_it_scores() {
    use amp_device::metrics::{score, MetricKind, MetricSpec};
    use amp_host::amp::evaluator::{Evaluator, Job, Metric, Subset};
    use amp_host::amp::remote::DeviceSpec;
    let work = tempfile::tempdir().unwrap();
    let connector = digits_connector(work.path());
    let (groups, labels) = (connector.groups.clone(), connector.data.labels.clone());
    let mut ev = connector.connect(&DeviceSpec::Local).unwrap();
    let cfg = vec![amp_device::quant::Precision::A8W8; groups.len()];
    let outs = ev.outputs(Some(&cfg), Subset::Phase1).unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].shape, vec![100, 10]);
    assert_eq!(ev.pulled_bytes(), 100 * 10 * 4);
    for kind in [MetricKind::Top1, MetricKind::Top5] {
        let spec = MetricSpec { kind, output: None };
        let here = score(spec, &outs, None, Some(&labels.as_ref().unwrap()[..100])).unwrap();
        let job = Job {
            config: Some(cfg.clone()),
            subset: Subset::Phase1,
            metric: Metric::Builtin(spec),
        };
        assert_eq!(ev.evaluate(&job).unwrap(), here, "{kind:?}");
    }
    // against FP32: the agent's FP32 outputs are those it returns
    let fp32 = ev.outputs(None, Subset::Phase1).unwrap();
    let spec = MetricSpec {
        kind: MetricKind::Sqnr,
        output: None,
    };
    let job = Job {
        config: Some(cfg),
        subset: Subset::Phase1,
        metric: Metric::Builtin(spec),
    };
    let there = ev.evaluate(&job).unwrap();
    assert_eq!(there, score(spec, &outs, Some(&fp32), None).unwrap());
    assert!(there > 10.0 && there < 60.0, "{there} dB");
}

/// A config that fails the same way on every device (here every quantized config: one tensor's calibration
/// range is not finite) is that job's answer, of kind Failed; no device is dropped for it, and the pool
/// goes on serving.
#[test]
fn a_config_that_fails_everywhere_keeps_every_device_of_the_pool() {
    use amp_device::error::{ErrorKind, EvalError};
    use amp_host::amp::evaluator::{Evaluator, Job, Metric, Subset};
    use amp_host::amp::remote::{DeviceSpec, PoolEvaluator};
    let work = tempfile::tempdir().unwrap();
    let mut connector = digits_connector(work.path());
    let g = connector.graph.clone();
    let broken = g.tensors[g.inputs[0]].name.clone();
    connector.stats.ranges.insert(broken, [f32::NAN, 1.0]);
    let n = connector.groups.len();
    let mut pool =
        PoolEvaluator::connect(&[DeviceSpec::Local, DeviceSpec::Local], connector).unwrap();
    let jobs: Vec<Job> = amp_device::quant::Precision::ALL
        .iter()
        .flat_map(|&p| {
            [Subset::Phase1, Subset::Phase2].map(|subset| Job {
                config: Some(vec![p; n]),
                subset,
                metric: Metric::top1(),
            })
        })
        .collect();
    let mut answers = Vec::new();
    pool.evaluate_many(&jobs, &mut |i, r| {
        answers.push((i, r));
        Ok(())
    })
    .unwrap();
    assert_eq!(answers.len(), jobs.len());
    for (i, r) in &answers {
        let e = r
            .as_ref()
            .expect_err("a config with a NaN range cannot be evaluated");
        assert_eq!(EvalError::kind_of(e), ErrorKind::Failed, "job {i}: {e:#}");
        assert!(
            format!("{e:#}").contains("non-finite calibration range"),
            "{e:#}"
        );
    }
    assert_eq!(
        pool.live().len(),
        2,
        "a device was dropped for a failing config"
    );
    let fp32 = Job {
        config: None,
        subset: Subset::Phase2,
        metric: Metric::top1(),
    };
    assert!(pool.evaluate(&fp32).unwrap() > 0.9);
}

/// A client's model that breaks the agent (here a graph with no outputs, which the importer refuses but a
/// shared agent must not trust its clients about) is answered with an error; the agent keeps serving, and a
/// good model is tuned through it next.
#[test]
fn a_model_that_breaks_the_agent_gets_an_error_reply_and_the_agent_serves_on() {
    use amp_device::backend::Array;
    use amp_device::metrics::{MetricKind, MetricSpec};
    use amp_device::protocol::{
        blob_hash, read_frame, write_frame, BackendChoice, DataBlob, Request, Response,
        PROTOCOL_VERSION,
    };
    let work = tempfile::tempdir().unwrap();
    let (mut agent, port) = serve_tcp(work.path());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut call = |req: Request| -> Response {
        write_frame(&mut s, &req).unwrap();
        read_frame(&mut s).unwrap()
    };
    let hello = call(Request::Hello {
        protocol: PROTOCOL_VERSION,
        host_version: "test".into(),
    });
    assert!(matches!(hello, Response::Hello { .. }), "{hello:?}");
    let mut put = |bytes: Vec<u8>| -> String {
        let hash = blob_hash(&bytes);
        let r = call(Request::PutBlob {
            hash: hash.clone(),
            offset: 0,
            total: bytes.len() as u64,
            chunk: bytes,
        });
        assert_eq!(r, Response::Ok);
        hash
    };
    let mut g = amp_device::Graph::default();
    let x = g.add_tensor("x", vec![1, 4], None);
    g.inputs.push(x);
    let graph = put(postcard::to_allocvec(&g).unwrap());
    let stats = put(postcard::to_allocvec(&amp_device::quant::Stats::default()).unwrap());
    let data = put(postcard::to_allocvec(&DataBlob {
        inputs: Array::new(vec![2, 4], vec![0.5; 8]).into(),
        labels: None,
    })
    .unwrap());
    let mut call = |req: Request| -> Response {
        write_frame(&mut s, &req).unwrap();
        read_frame(&mut s).unwrap()
    };
    call(Request::LoadModel {
        graph,
        stats,
        backend: BackendChoice::Ref,
    });
    call(Request::LoadData { data });
    let r = call(Request::Evaluate {
        plan: None,
        samples: 2,
        metric: MetricSpec {
            kind: MetricKind::Sqnr,
            output: None,
        },
        batch: 2,
    });
    assert!(matches!(r, Response::Error { .. }), "{r:?}");
    // the same session still answers
    assert!(matches!(
        call(Request::BlobStatus {
            hash: blob_hash(b"")
        }),
        Response::BlobStatus { .. }
    ));
    drop(s);
    assert!(agent.try_wait().unwrap().is_none(), "the agent died");
    let dir = tempfile::tempdir().unwrap();
    let r = tune(dir.path(), &format!("tcp:127.0.0.1:{port}"));
    assert!(r["evaluations"].as_u64().unwrap() > 0, "{r}");
    agent.kill().unwrap();
    agent.wait().unwrap();
}
