//! Evaluation data: an `.npz` with one array per model input, named as the model's inputs (batch first),
//! and, optionally, `labels` (N,) integer; a single-input model's array may also be named `inputs`. Or a
//! folder of `.npy` files named the same way (`inputs.npy`, `labels.npy`, ...). Without labels only the
//! metrics against the FP32 outputs and the user's own command can score it.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use amp_device::backend::{Array, Inputs};
use amp_device::ir::Graph;
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
    #[error(
        "{path}: sample {index} of `{array}` contains a {what} value; amp needs finite inputs"
    )]
    NonFinite {
        path: String,
        array: String,
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
    #[error("{path}: the data's arrays ({found}) do not match the model's inputs ({model}); name one array per input, as the model does")]
    Names {
        path: String,
        found: String,
        model: String,
    },
}

/// One array per model input (batch first) and, when the data has them, integer labels. The arrays are
/// shared: a clone, or a head of every sample, takes no copy of them.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub path: String,
    /// The arrays' names, in the order of `inputs` (the model's input order once `bind` has run).
    pub names: Vec<String>,
    /// Per array: whether it holds integers (token ids), kept as exact floats.
    pub integer: Vec<bool>,
    pub inputs: Arc<Inputs>,
    pub labels: Option<Arc<[i64]>>,
}

impl Dataset {
    pub fn load(path: &Path) -> Result<Dataset, DataError> {
        let p = path.display().to_string();
        let err = |msg: String| DataError::File {
            path: p.clone(),
            msg,
        };
        let mut arrays: Vec<(String, (Array, bool))> = Vec::new();
        let mut labels = None;
        if path.is_dir() {
            let mut files: Vec<String> = std::fs::read_dir(path)
                .map_err(|e| err(e.to_string()))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".npy"))
                .collect();
            files.sort();
            for f in files {
                let name = f.trim_end_matches(".npy").to_string();
                let fp = path.join(&f);
                let open = || File::open(&fp).map_err(|e| err(format!("{f}: {e}")));
                if name == "labels" {
                    labels = Some(read_int_npy(&fp).map_err(|e| err(format!("{f}: {e}")))?);
                    continue;
                }
                let a = match ArrayD::<f32>::read_npy(open()?) {
                    Ok(a) => (to_array(a), false),
                    Err(e) => {
                        let (shape, ints) = read_int_npy_shaped(&fp).map_err(|_| {
                            err(format!(
                                "{f}: {e} (amp takes float32 inputs, or integer ones)"
                            ))
                        })?;
                        (int_array(&name, shape, ints).map_err(err)?, true)
                    }
                };
                arrays.push((name, a));
            }
        } else {
            let file = File::open(path).map_err(|e| err(e.to_string()))?;
            let mut npz =
                NpzReader::new(file).map_err(|e| err(format!("not a readable .npz ({e})")))?;
            let names = npz.names().map_err(|e| err(e.to_string()))?;
            for n in names {
                let name = n.trim_end_matches(".npy").to_string();
                if name == "labels" {
                    labels =
                        Some(read_int_npz(&mut npz, &n).map_err(|e| err(format!("labels: {e}")))?);
                    continue;
                }
                let a = match npz.by_name::<ndarray::OwnedRepr<f32>, ndarray::IxDyn>(&n) {
                    Ok(a) => (to_array(a), false),
                    Err(e) => {
                        let (shape, ints) = read_int_npz_shaped(&mut npz, &n).map_err(|_| {
                            err(format!(
                                "{name}: {e} (amp takes float32 inputs, or integer ones)"
                            ))
                        })?;
                        (int_array(&name, shape, ints).map_err(err)?, true)
                    }
                };
                arrays.push((name, a));
            }
        }
        if arrays.is_empty() {
            return Err(err(
                "no input arrays (name one array per model input, or `inputs` for a single-input model)"
                    .into(),
            ));
        }
        let integer: Vec<bool> = arrays.iter().map(|(_, (_, i))| *i).collect();
        let arrays: Vec<(String, Array)> = arrays.into_iter().map(|(n, (a, _))| (n, a)).collect();
        let n = arrays[0].1.shape.first().copied().unwrap_or(0);
        if n == 0 || arrays.iter().any(|(_, a)| a.shape.is_empty()) {
            return Err(DataError::Empty { path: p });
        }
        if let Some((name, a)) = arrays.iter().find(|(_, a)| a.batch() != n) {
            return Err(err(format!(
                "`{name}` has {} samples, `{}` has {n}",
                a.batch(),
                arrays[0].0
            )));
        }
        if let Some(l) = labels.as_ref().filter(|l: &&Vec<i64>| l.len() != n) {
            return Err(DataError::Count {
                path: p,
                n_in: n,
                n_lab: l.len(),
            });
        }
        for (name, a) in &arrays {
            if let Some(i) = a.data.iter().position(|v| !v.is_finite()) {
                let what = if a.data[i].is_nan() {
                    "NaN"
                } else {
                    "infinite"
                };
                return Err(DataError::NonFinite {
                    path: p,
                    array: name.clone(),
                    index: i / a.sample_len().max(1),
                    what,
                });
            }
        }
        let (names, inputs) = arrays.into_iter().unzip();
        Ok(Dataset {
            path: p,
            names,
            integer,
            inputs: Arc::new(Inputs(inputs)),
            labels: labels.map(Arc::from),
        })
    }

    /// Per-sample shapes by array name, for the model's import (symbolic dims).
    pub fn shapes(&self) -> std::collections::HashMap<String, Vec<usize>> {
        (self.names.iter().cloned())
            .zip(self.inputs.iter().map(|a| a.shape[1..].to_vec()))
            .collect()
    }

    /// Puts the arrays in the order of `graph`'s inputs, matched by name (a single `inputs` array serves a
    /// single-input model); names both sets where they do not match.
    pub fn bind(&mut self, graph: &Graph) -> Result<(), DataError> {
        let want: Vec<&str> = (graph.inputs.iter())
            .map(|&t| graph.tensors[t].name.as_str())
            .collect();
        if want.len() == 1 && self.names.len() == 1 && self.names[0] == "inputs" {
            return self.check_types(graph);
        }
        let mismatch = || DataError::Names {
            path: self.path.clone(),
            found: self.names.join(", "),
            model: want.join(", "),
        };
        if want.len() != self.names.len() {
            return Err(mismatch());
        }
        let mut order = Vec::with_capacity(want.len());
        for w in &want {
            order.push(
                self.names
                    .iter()
                    .position(|n| n == w)
                    .ok_or_else(mismatch)?,
            );
        }
        self.names = order.iter().map(|&i| self.names[i].clone()).collect();
        self.integer = order.iter().map(|&i| self.integer[i]).collect();
        let mut arrays = std::mem::take(Arc::make_mut(&mut self.inputs)).0;
        let mut taken: Vec<Option<Array>> = arrays.drain(..).map(Some).collect();
        self.inputs = Arc::new(Inputs(
            order.iter().filter_map(|&i| taken[i].take()).collect(),
        ));
        self.check_types(graph)
    }

    /// Each array holds what its input takes: integers for an integer input, floats for a float one.
    fn check_types(&self, graph: &Graph) -> Result<(), DataError> {
        for (k, &t) in graph.inputs.iter().enumerate() {
            let model_int = graph.declared_integer(t);
            if model_int != self.integer[k] {
                let kind = |i: bool| if i { "integers" } else { "float32" };
                return Err(DataError::File {
                    path: self.path.clone(),
                    msg: format!(
                        "`{}` holds {} but the model's input \"{}\" takes {}",
                        self.names[k],
                        kind(self.integer[k]),
                        graph.tensors[t].name,
                        kind(model_int)
                    ),
                });
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.inputs.batch()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Per-sample shape (without the batch dim) of the first input.
    pub fn sample_shape(&self) -> Vec<usize> {
        self.inputs[0].shape[1..].to_vec()
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

    /// The first `n` samples (all of them shared, not copied).
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        if n == self.len() {
            return self.clone();
        }
        Dataset {
            path: self.path.clone(),
            names: self.names.clone(),
            integer: self.integer.clone(),
            inputs: Arc::new(self.inputs.slice_batch(0, n)),
            labels: self.labels.as_ref().map(|l| Arc::from(&l[..n])),
        }
    }

    /// A content hash of inputs and labels.
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        for (k, a) in self.inputs.iter().enumerate() {
            if k > 0 {
                // a single input hashes as it always did
                h.update(self.names[k].as_bytes());
            }
            for d in &a.shape {
                h.update(&(*d as u64).to_le_bytes());
            }
            for v in &a.data {
                h.update(&v.to_le_bytes());
            }
        }
        if let Some(labels) = &self.labels {
            h.update(b"labels");
            for l in labels.iter() {
                h.update(&l.to_le_bytes());
            }
        }
        h.finalize().to_hex()[..16].to_string()
    }
}

/// The array as amp's, its buffer taken over when it is in row-major order (an `.npy` read is).
fn to_array(a: ArrayD<f32>) -> Array {
    let shape = a.shape().to_vec();
    if !a.is_standard_layout() {
        return Array::new(shape, a.iter().copied().collect());
    }
    let n = a.len();
    let (data, off) = a.into_raw_vec_and_offset();
    let off = off.unwrap_or(0);
    if off == 0 && data.len() == n {
        Array::new(shape, data)
    } else {
        Array::new(shape, data[off..off + n].to_vec())
    }
}

/// Integer data as exact floats (f32 holds every integer up to 2²⁴).
fn int_array(name: &str, shape: Vec<usize>, ints: Vec<i64>) -> Result<Array, String> {
    if let Some(v) = ints.iter().find(|v| v.unsigned_abs() > 1 << 24) {
        return Err(format!(
            "`{name}` holds {v}; amp takes integer inputs up to 2^24 in magnitude"
        ));
    }
    Ok(Array::new(shape, ints.iter().map(|&v| v as f32).collect()))
}

/// An integer array of an `.npz` (int64, int32 or uint8) and its shape.
fn read_int_npz_shaped(
    npz: &mut NpzReader<File>,
    name: &str,
) -> Result<(Vec<usize>, Vec<i64>), String> {
    if let Ok(a) = npz.by_name::<ndarray::OwnedRepr<i64>, ndarray::IxDyn>(name) {
        return Ok((a.shape().to_vec(), a.iter().copied().collect()));
    }
    if let Ok(a) = npz.by_name::<ndarray::OwnedRepr<i32>, ndarray::IxDyn>(name) {
        return Ok((a.shape().to_vec(), a.iter().map(|&v| v as i64).collect()));
    }
    npz.by_name::<ndarray::OwnedRepr<u8>, ndarray::IxDyn>(name)
        .map(|a| (a.shape().to_vec(), a.iter().map(|&v| v as i64).collect()))
        .map_err(|e| format!("{e} (amp needs integer labels: int64, int32 or uint8)"))
}

fn read_int_npz(npz: &mut NpzReader<File>, name: &str) -> Result<Vec<i64>, String> {
    read_int_npz_shaped(npz, name).map(|(_, v)| v)
}

fn read_int_npy(path: &Path) -> Result<Vec<i64>, String> {
    read_int_npy_shaped(path).map(|(_, v)| v)
}

/// An integer `.npy` (int64, int32 or uint8) and its shape.
fn read_int_npy_shaped(path: &Path) -> Result<(Vec<usize>, Vec<i64>), String> {
    let open = || File::open(path).map_err(|e| e.to_string());
    if let Ok(a) = ArrayD::<i64>::read_npy(open()?) {
        return Ok((a.shape().to_vec(), a.iter().copied().collect()));
    }
    if let Ok(a) = ArrayD::<i32>::read_npy(open()?) {
        return Ok((a.shape().to_vec(), a.iter().map(|&v| v as i64).collect()));
    }
    ArrayD::<u8>::read_npy(open()?)
        .map(|a| (a.shape().to_vec(), a.iter().map(|&v| v as i64).collect()))
        .map_err(|e| format!("{e} (amp needs integer labels: int64, int32 or uint8)"))
}
