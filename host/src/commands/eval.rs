//! `amp-host eval`: a model's metric at FP32, a uniform precision or an encodings file.

use amp_host::eval::evaluate;
use anyhow::Result;

use super::{model_and_data, plan_for};
use crate::cli::EvalArgs;

pub(crate) fn eval(a: EvalArgs) -> Result<()> {
    let (graph, data) = model_and_data(&a.input.model, &a.input.data)?;
    let plan = plan_for(&graph, &data, a.precision, &a.quant, !a.per_tensor)?;
    let backend = a.backend.load(a.backend.backend)?;
    let mut model = amp_host::amp::evaluator::prepare(&backend, &graph, plan, a.batch.max(1))?;
    let (r, _) = evaluate(&mut model, &data, a.batch.max(1), "evaluating")?;
    if a.json {
        let mut obj = serde_json::to_value(&r)?;
        obj["precision"] = match &a.quant.encodings {
            Some(p) => p.display().to_string().into(),
            None => a.precision.to_string().into(),
        };
        obj["model"] = a.input.model.display().to_string().into();
        obj["backend"] = a.backend.label().into();
        println!("{obj}");
    } else {
        println!("model      {}", a.input.model.display());
        match &a.quant.encodings {
            Some(p) => println!("encodings  {}", p.display()),
            None => println!("precision  {}", a.precision),
        }
        println!("samples    {}", r.samples);
        println!("top-1      {:.4}", r.top1);
        if let Some(t5) = r.top5 {
            println!("top-5      {t5:.4}");
        }
        println!("samples/s  {:.1}", r.samples_per_s);
    }
    Ok(())
}
