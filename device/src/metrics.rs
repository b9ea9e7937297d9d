//! Metrics computed where the model runs: top-1 accuracy and AIMET's SQNR.

use crate::backend::Array;

/// Top-1 accuracy of batched outputs against labels.
pub fn accuracy(outs: &[Array], labels: &[i64]) -> f64 {
    correct(outs, labels).iter().filter(|&&c| c).count() as f64 / labels.len().max(1) as f64
}

/// Per-sample top-1 correctness of batched outputs against labels (the first highest score wins a tie).
pub fn correct(outs: &[Array], labels: &[i64]) -> Vec<bool> {
    let mut v = Vec::with_capacity(labels.len());
    for o in outs {
        let c = *o.shape.last().unwrap_or(&1);
        for row in o.data.chunks(c) {
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (j, &x)| if x > b.1 { (j, x) } else { b },
                )
                .0;
            v.push(labels.get(v.len()).is_some_and(|&l| l == best as i64));
        }
    }
    v
}

/// AIMET's SQNR: 10·log10(Σ_b mean(s²) / (mean((s − q)²) + 1e-4) / num_samples) over batches b.
pub fn sqnr(fp32: &[Array], quant: &[Array], num_samples: usize) -> f64 {
    let mut sum = 0.0;
    for (s, q) in fp32.iter().zip(quant) {
        let n = s.data.len().max(1) as f64;
        let sig: f64 = s.data.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / n;
        let noise: f64 = s
            .data
            .iter()
            .zip(&q.data)
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / n;
        sum += sig / (noise + 1e-4);
    }
    10.0 * (sum / num_samples.max(1) as f64).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqnr_follows_aimet_formula() {
        // one batch of ones against zeros: mean(s²)=1, noise 1 → ratio 1/(1+1e-4); one sample
        let s = vec![Array::new(vec![1, 4], vec![1.0; 4])];
        let q = vec![Array::new(vec![1, 4], vec![0.0; 4])];
        assert!((sqnr(&s, &q, 1) - 10.0 * (1.0f64 / 1.0001).log10()).abs() < 1e-12);
        // AIMET divides by num_samples, not by batches: two samples in one batch lose 10·log10(2)
        let s2 = vec![Array::new(vec![2, 2], vec![2.0; 4])];
        let q2 = vec![Array::new(vec![2, 2], vec![1.0; 4])];
        assert!((sqnr(&s2, &q2, 2) - 10.0 * (4.0f64 / 1.0001 / 2.0).log10()).abs() < 1e-12);
    }
}
