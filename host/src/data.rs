//! Evaluation data: an `.npz` with `inputs` (N, …) float32 and, optionally, `labels` (N,) integer, or a
//! folder holding `inputs.npy` and, optionally, `labels.npy`. Without labels only the metrics against the
//! FP32 outputs and the user's own command can score it.

use std::fs::File;
use std::path::Path;

use amp_device::backend::Array;
use ndarray::ArrayD;
use ndarray_npy::{NpzReader, ReadNpyExt};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("{path}: the data set is empty")]
    Empty { path: String },
    #[error("{path}: {n_in} inputs but {n_lab} labels")]
    Count {
        path: String,
        n_in: usize,
        n_lab: usize,
    },
    #[error("{path}: sample {index} contains a {what} value; amp needs finite inputs")]
    NonFinite {
        path: String,
        index: usize,
        what: &'static str,
    },
    #[error("{path}: label {label} of sample {index} is outside the model's {classes} classes")]
    Label {
        path: String,
        index: usize,
        label: i64,
        classes: usize,
    },
}

/// Inputs (batch first) and, when the data has them, integer labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub path: String,
    pub inputs: Array,
    pub labels: Option<Vec<i64>>,
}

impl Dataset {
    pub fn load(path: &Path) -> Result<Dataset, DataError> {
        let p = path.display().to_string();
        let err = |msg: String| DataError::File {
            path: p.clone(),
            msg,
        };
        let (inputs, labels): (ArrayD<f32>, Option<Vec<i64>>) = if path.is_dir() {
            let open =
                |name: &str| File::open(path.join(name)).map_err(|e| err(format!("{name}: {e}")));
            let inputs = ArrayD::<f32>::read_npy(open("inputs.npy")?)
                .map_err(|e| err(format!("inputs.npy: {e} (amp needs float32 inputs)")))?;
            let lpath = path.join("labels.npy");
            let labels = lpath
                .exists()
                .then(|| read_int_npy(&lpath).map_err(|e| err(format!("labels.npy: {e}"))))
                .transpose()?;
            (inputs, labels)
        } else {
            let file = File::open(path).map_err(|e| err(e.to_string()))?;
            let mut npz =
                NpzReader::new(file).map_err(|e| err(format!("not a readable .npz ({e})")))?;
            let names = npz.names().map_err(|e| err(e.to_string()))?;
            let find = |want: &str| {
                names
                    .iter()
                    .find(|n| n.trim_end_matches(".npy") == want)
                    .cloned()
            };
            let iname = find("inputs")
                .ok_or_else(|| err(format!("no array named `inputs` (found {names:?})")))?;
            let inputs: ArrayD<f32> = npz
                .by_name(&iname)
                .map_err(|e| err(format!("inputs: {e} (amp needs float32 inputs)")))?;
            let labels = match find("labels") {
                Some(l) => {
                    Some(read_int_npz(&mut npz, &l).map_err(|e| err(format!("labels: {e}")))?)
                }
                None => None,
            };
            (inputs, labels)
        };
        let shape = inputs.shape().to_vec();
        if shape.is_empty() || shape[0] == 0 {
            return Err(DataError::Empty { path: p });
        }
        if let Some(l) = labels.as_ref().filter(|l| l.len() != shape[0]) {
            return Err(DataError::Count {
                path: p,
                n_in: shape[0],
                n_lab: l.len(),
            });
        }
        let data: Vec<f32> = inputs.as_standard_layout().iter().copied().collect();
        let per = data.len() / shape[0];
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            let what = if data[i].is_nan() { "NaN" } else { "infinite" };
            return Err(DataError::NonFinite {
                path: p,
                index: i / per.max(1),
                what,
            });
        }
        Ok(Dataset {
            path: p,
            inputs: Array::new(shape, data),
            labels,
        })
    }

    pub fn len(&self) -> usize {
        self.inputs.batch()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Per-sample input shape (without the batch dim).
    pub fn sample_shape(&self) -> Vec<usize> {
        self.inputs.shape[1..].to_vec()
    }

    /// Checks every label (if any) against the number of classes the model outputs.
    pub fn check_labels(&self, classes: usize) -> Result<(), DataError> {
        let labels = self.labels.as_deref().unwrap_or_default();
        match labels.iter().position(|&l| l < 0 || l as usize >= classes) {
            Some(index) => Err(DataError::Label {
                path: self.path.clone(),
                index,
                label: labels[index],
                classes,
            }),
            None => Ok(()),
        }
    }

    /// The first `n` samples.
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            path: self.path.clone(),
            inputs: self.inputs.slice_batch(0, n),
            labels: self.labels.as_ref().map(|l| l[..n].to_vec()),
        }
    }

    /// A content hash of inputs and labels.
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        for d in &self.inputs.shape {
            h.update(&(*d as u64).to_le_bytes());
        }
        for v in &self.inputs.data {
            h.update(&v.to_le_bytes());
        }
        if let Some(labels) = &self.labels {
            h.update(b"labels");
            for l in labels {
                h.update(&l.to_le_bytes());
            }
        }
        h.finalize().to_hex()[..16].to_string()
    }
}

fn read_int_npz(npz: &mut NpzReader<File>, name: &str) -> Result<Vec<i64>, String> {
    let mut read =
        |n: &str| -> Result<ArrayD<i64>, String> { npz.by_name(n).map_err(|e| e.to_string()) };
    if let Ok(a) = read(name) {
        return Ok(a.iter().copied().collect());
    }
    let mut r32 =
        |n: &str| -> Result<ArrayD<i32>, String> { npz.by_name(n).map_err(|e| e.to_string()) };
    if let Ok(a) = r32(name) {
        return Ok(a.iter().map(|&v| v as i64).collect());
    }
    let a: ArrayD<u8> = npz
        .by_name(name)
        .map_err(|e| format!("{e} (amp needs integer labels: int64, int32 or uint8)"))?;
    Ok(a.iter().map(|&v| v as i64).collect())
}

fn read_int_npy(path: &Path) -> Result<Vec<i64>, String> {
    let open = || File::open(path).map_err(|e| e.to_string());
    if let Ok(a) = ArrayD::<i64>::read_npy(open()?) {
        return Ok(a.iter().copied().collect());
    }
    if let Ok(a) = ArrayD::<i32>::read_npy(open()?) {
        return Ok(a.iter().map(|&v| v as i64).collect());
    }
    ArrayD::<u8>::read_npy(open()?)
        .map(|a| a.iter().map(|&v| v as i64).collect())
        .map_err(|e| format!("{e} (amp needs integer labels: int64, int32 or uint8)"))
}
