//! `amp-host eval`: a model's metric at FP32, a uniform precision or an encodings file.

use amp_host::amp::evaluator::prepare;
use amp_host::amp::metric::MetricInfo;
use amp_host::eval::{evaluate, score_by};
use anyhow::Result;

use super::{metric_for, model_and_data, output_names, plan_for};
use crate::cli::{EvalArgs, Level};

pub(crate) fn eval(a: EvalArgs) -> Result<()> {
    let (graph, data) = model_and_data(&a.input.model, &a.input.data)?;
    let metric = metric_for(&a.metric, &graph, &data)?;
    let plan = plan_for(&graph, &data, a.precision, &a.quant, !a.per_tensor)?;
    let quantized = plan.is_some();
    let backend = a.backend.load(a.backend.backend)?;
    let batch = a.batch.max(1);
    let mut model = prepare(&backend, &graph, plan, batch)?;
    let (r, outs) = evaluate(&mut model, &data, batch, "evaluating")?;
    let config = match &a.quant.encodings {
        Some(p) => p.display().to_string(),
        None => a.precision.to_string(),
    };
    let fp32 = || -> Result<_> {
        if !quantized {
            return Ok(outs.clone());
        }
        // the reference backend's FP32, what every FP32 score in amp is
        let mut m = prepare(
            &amp_host::amp::evaluator::EvalBackend::Ref,
            &graph,
            None,
            batch,
        )?;
        Ok(evaluate(&mut m, &data, batch, "FP32 outputs")?.1)
    };
    let value = score_by(&metric, &outs, &data, &config, fp32)?;
    let info = MetricInfo::of(&metric, &output_names(&graph));
    if a.json {
        let mut obj = serde_json::to_value(&r)?;
        obj["precision"] = config.into();
        obj["model"] = a.input.model.display().to_string().into();
        obj["backend"] = a.backend.label().into();
        obj["metric"] = serde_json::to_value(&info)?;
        obj["score"] = value.into();
        println!("{obj}");
    } else {
        println!("model      {}", a.input.model.display());
        match (&a.quant.encodings, a.precision) {
            (Some(p), _) => println!("encodings  {}", p.display()),
            (None, Level::Fp32) => println!("precision  fp32"),
            (None, p) => println!("precision  {p}"),
        }
        println!("samples    {}", r.samples);
        println!("{}  {value:.4} ({})", info.name, info.label);
        if let (Some(t1), false) = (r.top1, info.name == "top1") {
            println!("top-1      {t1:.4}");
        }
        if let Some(t5) = r.top5.filter(|_| info.name != "top5") {
            println!("top-5      {t5:.4}");
        }
        println!("samples/s  {:.1}", r.samples_per_s);
    }
    Ok(())
}
