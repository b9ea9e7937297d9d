//! The model graph both ends share: tensors with static per-sample shapes, nodes in topological order, and
//! constant data (weights). Dimension 0 of every activation is the batch; shapes are stored at batch 1 and
//! every kernel takes the batch from its input at run time.

pub mod ops;
mod shape;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use ops::*;

/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

/// One tensor: an activation (no data) or a constant (weights, biases).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tensor {
    /// The name the ONNX model gives it: encodings files and errors use it.
    pub name: String,
    /// Shape at batch size 1.
    pub shape: Vec<usize>,
    /// Row-major data of a constant tensor.
    pub data: Option<Arc<Vec<f32>>>,
}

impl Tensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_const(&self) -> bool {
        self.data.is_some()
    }
}

/// One operation. Every op has exactly one output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    /// The ONNX node name (or, when empty in the file, `<op type>_<output name>`).
    pub name: String,
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
}

impl Node {
    /// Whether the node writes booleans, given which tensors hold them: a logical op does; a pass-through op
    /// moves input 0's; Concat moves its inputs' when every one holds booleans.
    pub fn writes_booleans(&self, holds: impl Fn(TensorId) -> bool) -> bool {
        let def = self.op.def();
        def.logical()
            || (def.passthrough() && holds(self.inputs[0]))
            || (matches!(self.op, Op::Concat(_)) && self.inputs.iter().all(|&t| holds(t)))
    }
}

/// A model: tensors, nodes in topological order, graph inputs and outputs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    /// The graph inputs that hold integers (token ids, positions): exact values in f32, never quantized,
    /// read only as Gather indices.
    #[serde(default)]
    pub integer: Vec<TensorId>,
    /// The graph inputs the model declares integer but reads only as floats, through a Cast to float (an
    /// attention mask): fed integer data, then quantized as any float input.
    #[serde(default)]
    pub int_as_float: Vec<TensorId>,
}

impl Graph {
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Option<Vec<f32>>,
    ) -> TensorId {
        self.tensors.push(Tensor {
            name: name.into(),
            shape,
            data: data.map(Arc::new),
        });
        self.tensors.len() - 1
    }

    /// Whether the model declares input `t` integer: read as indices ([`Graph::integer`]) or cast to float
    /// ([`Graph::int_as_float`]). Its data are integers either way.
    pub fn declared_integer(&self, t: TensorId) -> bool {
        self.integer.contains(&t) || self.int_as_float.contains(&t)
    }

    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id]
    }

    /// Constant data of `id`, if it is a constant.
    pub fn const_data(&self, id: TensorId) -> Option<&[f32]> {
        self.tensors[id].data.as_deref().map(|v| v.as_slice())
    }

    /// The node producing each tensor (None for graph inputs and constants).
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut p = vec![None; self.tensors.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            p[n.output] = Some(i);
        }
        p
    }

    /// The nodes consuming each tensor, in node order, each node once.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut c: Vec<Vec<usize>> = vec![Vec::new(); self.tensors.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &t in &n.inputs {
                if c[t].last() != Some(&i) {
                    c[t].push(i);
                }
            }
        }
        c
    }

    pub fn tensor_by_name(&self) -> HashMap<&str, TensorId> {
        self.tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect()
    }

    /// Multiply-accumulates per sample of a node (0 for ops that are not MAC ops).
    pub fn macs(&self, node: &Node) -> u64 {
        let ins: Vec<&[usize]> = node
            .inputs
            .iter()
            .map(|&t| self.tensors[t].shape.as_slice())
            .collect();
        node.op.def().macs(&ins, &self.tensors[node.output].shape)
    }

    /// A content hash of the whole graph (structure and weights), stable across processes.
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(
            serde_json::to_string(&self.nodes)
                .unwrap_or_default()
                .as_bytes(),
        );
        for t in &self.tensors {
            h.update(t.name.as_bytes());
            for d in &t.shape {
                h.update(&(*d as u64).to_le_bytes());
            }
            if let Some(d) = &t.data {
                // one update per tensor (the same bytes in the same order: the same hash), not one per value
                let bytes: Vec<u8> = d.iter().flat_map(|v| v.to_le_bytes()).collect();
                h.update(&bytes);
            }
        }
        for i in self.inputs.iter().chain(&self.outputs) {
            h.update(&(*i as u64).to_le_bytes());
        }
        if !self.integer.is_empty() {
            h.update(b"integer");
            for i in &self.integer {
                h.update(&(*i as u64).to_le_bytes());
            }
        }
        h.finalize().to_hex()[..16].to_string()
    }

    /// Recomputes every activation's shape from the inputs' shapes (at batch 1).
    pub fn infer_shapes(&mut self) -> Result<(), ShapeError> {
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            let ins: Vec<&[usize]> = node
                .inputs
                .iter()
                .map(|&t| self.tensors[t].shape.as_slice())
                .collect();
            let s = node.op.def().infer(&ins).map_err(|msg| ShapeError {
                node: node.name.clone(),
                op: node.op.name(),
                msg,
            })?;
            let out = node.output;
            self.tensors[out].shape = s;
        }
        Ok(())
    }
}

/// A node whose input shapes do not fit its op.
#[derive(Debug, thiserror::Error)]
#[error("{op} \"{node}\": {msg}")]
pub struct ShapeError {
    pub node: String,
    pub op: &'static str,
    pub msg: String,
}

pub use shape::{broadcast, broadcast_offset, conv_out};
