//! ONNX import: decodes the protobuf (prost over the vendored schema), folds constants (initializers,
//! `Constant` nodes, the Shape/Gather/Unsqueeze/Concat chains exporters emit: `const_nodes`), turns each
//! supported op into the IR (one file per op under `ops`, on its registration list), infers shapes at batch
//! 1, then folds BatchNormalization and per-channel Add/Mul into the preceding Conv/Gemm (`fold`: the same
//! folds onnxruntime's basic optimizer makes, keeping the folded op's output name, so tensor names match
//! what QNN's converter and onnxruntime see).

mod const_nodes;
mod consts;
mod fold;
mod node;
pub mod ops;

use std::collections::HashMap;
use std::path::Path;

use amp_device::ir::{Graph, TensorId};
use prost::Message;

pub use consts::ConstTensor;

#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

/// ONNX default-domain opsets the importer handles.
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=21;

/// What the importer was asked for beyond the file.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Per-sample input shape (without the batch dim), for models with symbolic non-batch dims: of the
    /// input named in `shapes`, else of a single-input model's one input.
    pub input_shape: Option<Vec<usize>>,
    /// Per-sample shapes by input name (a multi-input model's data).
    pub shapes: HashMap<String, Vec<usize>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not a valid ONNX model (protobuf decoding failed: {0}); is the file truncated?")]
    Decode(#[from] prost::DecodeError),
    #[error("the model has no graph")]
    NoGraph,
    #[error("opset {found} of the default ONNX domain is not supported (supported: {}..={})", OPSETS.start(), OPSETS.end())]
    Opset { found: i64 },
    #[error("{op} \"{node}\": unsupported op{domain}. Supported ops: {}", ops::supported().join(", "))]
    Unsupported {
        node: String,
        op: String,
        domain: String,
    },
    #[error("{op} \"{node}\": {msg}")]
    Node {
        node: String,
        op: String,
        msg: String,
    },
    #[error("input \"{name}\": {msg}")]
    Input { name: String, msg: String },
    #[error("the model lists no outputs; amp needs at least one")]
    NoOutputs,
    #[error("output \"{0}\" is a constant; amp needs outputs computed from the input")]
    ConstOutput(String),
    #[error("output \"{0}\" holds booleans; amp returns float outputs (cast it to float32 in the model)")]
    BoolOutput(String),
    #[error("tensor \"{0}\" is used but never produced")]
    Undefined(String),
    #[error(transparent)]
    Shape(#[from] amp_device::ir::ShapeError),
}

/// A value during import: folded to a constant, or an activation in the graph.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Const(ConstTensor),
    Dyn(TensorId),
}

/// The state of one import.
pub(crate) struct Importer {
    pub g: Graph,
    pub vals: HashMap<String, Val>,
    pub opset: i64,
    /// Constants already placed in the graph, by ONNX name.
    placed: HashMap<String, TensorId>,
}

impl Importer {
    /// Whether activation `t` holds booleans (an op with a logical output wrote it, or an op moved them).
    pub fn is_bool(&self, t: TensorId) -> bool {
        let producer = self.g.nodes.iter().rev().find(|n| n.output == t);
        producer.is_some_and(|n| n.writes_booleans(|x| self.is_bool(x)))
    }

    /// The value named `name` (empty names are absent optional inputs).
    pub fn val(&self, name: &str) -> Result<&Val, ImportError> {
        self.vals
            .get(name)
            .ok_or_else(|| ImportError::Undefined(name.to_string()))
    }

    /// A graph tensor for input `name`, placing a constant in the graph the first time it is used.
    pub fn tensor(&mut self, name: &str) -> Result<TensorId, ImportError> {
        match self.val(name)?.clone() {
            Val::Dyn(t) => Ok(t),
            Val::Const(c) => {
                if let Some(&t) = self.placed.get(name) {
                    return Ok(t);
                }
                let t = self.g.add_tensor(name, c.shape.clone(), Some(c.to_f32()));
                self.placed.insert(name.to_string(), t);
                Ok(t)
            }
        }
    }

    pub fn shape_of(&self, t: TensorId) -> &[usize] {
        &self.g.tensors[t].shape
    }
}

/// Reads and imports an ONNX file.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<Graph, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.display().to_string(),
        source,
    })?;
    import_bytes(&bytes, opts)
}

/// Imports an ONNX model from its bytes.
pub fn import_bytes(bytes: &[u8], opts: &ImportOptions) -> Result<Graph, ImportError> {
    let model = proto::ModelProto::decode(bytes)?;
    let graph = model.graph.as_ref().ok_or(ImportError::NoGraph)?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| {
            o.domain.as_deref().unwrap_or("").is_empty() || o.domain.as_deref() == Some("ai.onnx")
        })
        .and_then(|o| o.version)
        .unwrap_or(1);
    if !OPSETS.contains(&opset) {
        return Err(ImportError::Opset { found: opset });
    }
    let mut imp = Importer {
        g: Graph::default(),
        vals: HashMap::new(),
        opset,
        placed: HashMap::new(),
    };
    for init in &graph.initializer {
        let name = init.name.clone().unwrap_or_default();
        let c = ConstTensor::from_proto(init).map_err(|msg| ImportError::Input {
            name: name.clone(),
            msg,
        })?;
        imp.vals.insert(name, Val::Const(c));
    }
    let real_inputs: Vec<&proto::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !imp.vals.contains_key(i.name.as_deref().unwrap_or("")))
        .collect();
    if real_inputs.is_empty() {
        return Err(ImportError::Input {
            name: String::new(),
            msg: "the model has no inputs".into(),
        });
    }
    let single = real_inputs.len() == 1;
    for input in real_inputs {
        let in_name = input.name.clone().unwrap_or_default();
        let given = match opts.shapes.get(&in_name) {
            Some(s) => Some(s),
            None if single => opts.input_shape.as_ref(),
            None => None,
        };
        let (shape, integer) = input_shape(input, given).map_err(|msg| ImportError::Input {
            name: in_name.clone(),
            msg,
        })?;
        let t = imp.g.add_tensor(in_name.clone(), shape, None);
        imp.g.inputs.push(t);
        if integer && read_as_float(graph, &in_name) {
            imp.g.int_as_float.push(t);
        } else if integer {
            imp.g.integer.push(t);
        }
        imp.vals.insert(in_name, Val::Dyn(t));
    }

    for node in &graph.node {
        ops::convert(&mut imp, node)?;
    }
    for out in &graph.output {
        let name = out.name.clone().unwrap_or_default();
        match imp.val(&name)? {
            Val::Dyn(t) if imp.is_bool(*t) => return Err(ImportError::BoolOutput(name)),
            Val::Dyn(t) => {
                let t = *t;
                imp.g.outputs.push(t);
            }
            Val::Const(_) => return Err(ImportError::ConstOutput(name)),
        }
    }
    if imp.g.outputs.is_empty() {
        return Err(ImportError::NoOutputs);
    }
    let mut g = imp.g;
    fold::fuse_layer_norm(&mut g);
    fold::fuse_gelu(&mut g);
    fold::fold_into_mac_ops(&mut g);
    fold::fold_pad_into_conv(&mut g);
    fold::remove_dead(&mut g);
    g.infer_shapes()?;
    Ok(g)
}

/// Whether integer input `input` is read only as a float: every reader, past ops that only reshape it
/// (Unsqueeze, Squeeze, Reshape, Flatten, Expand, Identity), is a Cast to float32 or bool, a comparison (Equal,
/// Greater, Less, …) or a Shape, and one is not a Shape. That is an attention mask (`mask → Unsqueeze → Cast
/// → Sub → Mul`, `mask.bool()`, `mask == 0`): amp then feeds its integers as exact floats and quantizes them
/// as any float input (0 and 1 are exact at every width), and a Cast to float32 is the identity.
fn read_as_float(graph: &proto::GraphProto, input: &str) -> bool {
    const RESHAPES: [&str; 6] = [
        "Unsqueeze",
        "Squeeze",
        "Reshape",
        "Flatten",
        "Expand",
        "Identity",
    ];
    let mut ints = vec![input.to_string()];
    let mut cast = false;
    while let Some(t) = ints.pop() {
        for n in &graph.node {
            for (k, i) in n.input.iter().enumerate() {
                if *i != t {
                    continue;
                }
                let op = n.op_type.as_deref().unwrap_or("");
                // to float32 or bool
                let to_float = || {
                    n.attribute
                        .iter()
                        .any(|a| a.name.as_deref() == Some("to") && matches!(a.i, Some(1 | 9)))
                };
                match op {
                    _ if RESHAPES.contains(&op) && k == 0 => ints.extend(n.output.first().cloned()),
                    "Cast" if to_float() => cast = true,
                    // `mask == 0`, `mask > 0`: exact on the integers as floats
                    "Equal" | "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual" => cast = true,
                    "Shape" => {}
                    _ => return false,
                }
            }
        }
    }
    cast
}

/// An input's shape (batch 1) and whether it holds integers (int64 or int32: token ids, positions).
fn input_shape(
    input: &proto::ValueInfoProto,
    given: Option<&Vec<usize>>,
) -> Result<(Vec<usize>, bool), String> {
    use proto::tensor_shape_proto::dimension::Value;
    let tt = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(proto::type_proto::Value::TensorType(tt)) => tt,
        _ => return Err("is not a tensor".into()),
    };
    // ONNX TensorProto codes: 1 float, 6 int32, 7 int64
    let integer = match tt.elem_type {
        Some(1) => false,
        Some(6 | 7) => true,
        other => {
            return Err(format!(
                "has element type {} (ONNX TensorProto code); amp takes float32 inputs, and int64/int32 ones read as Gather indices or cast to float32",
                other.unwrap_or(0)
            ))
        }
    };
    let dims = tt.shape.as_ref().map(|s| s.dim.clone()).unwrap_or_default();
    if dims.is_empty() {
        return Err("has no declared shape; amp needs at least a batch dimension".into());
    }
    let mut shape = vec![1usize];
    for (i, d) in dims.iter().enumerate().skip(1) {
        let given = given.and_then(|s| s.get(i - 1)).copied();
        match (&d.value, given) {
            (Some(Value::DimValue(v)), g) if *v > 0 => {
                if let Some(g) = g {
                    if g != *v as usize {
                        return Err(format!("dim {i} is {v} in the model but the data has {g}"));
                    }
                }
                shape.push(*v as usize)
            }
            (_, Some(g)) => shape.push(g),
            (other, None) => {
                let what = match other {
                    Some(Value::DimParam(p)) => format!("symbolic ({p:?})"),
                    _ => "unknown".into(),
                };
                return Err(format!("dim {i} is {what}; give the per-sample shape: `info` and `groups` take --input-shape (e.g. 3,48,192), the other commands take it from --data"));
            }
        }
    }
    if let Some(s) = given {
        if s.len() != dims.len() - 1 {
            return Err(format!("the model's input has rank {} (batch first) but the data's samples have shape {s:?}", dims.len()));
        }
    }
    Ok((shape, integer))
}
