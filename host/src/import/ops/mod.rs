//! Each ONNX op's import, one file per IR op it produces, on one explicit registration list ([`REGISTRY`]).
//! Nodes whose inputs are all constants fold at import first (`const_nodes`); the rest become IR nodes.
//!
//! Adding an op: a file here, its `mod` line and its line in [`REGISTRY`] (one per ONNX op type it takes).

use amp_device::ir::OpKind;

use super::const_nodes::{const_shape, fold_const};
use super::node::Ctx;
use super::proto::NodeProto;
use super::{ImportError, Importer, Val};

mod abs;
mod add;
mod average_pool;
mod cast;
mod clip;
mod compare;
mod computed_at_import;
mod concat;
mod conv;
mod conv_transpose;
mod depth_space;
mod div;
mod equal;
mod erf;
mod exp;
mod gather;
mod gelu;
mod gemm;
mod global_average_pool;
mod hard_sigmoid;
mod hard_swish;
mod identity;
mod instance_norm;
mod layer_norm;
mod leaky_relu;
mod logic;
mod matmul;
mod max;
mod max_pool;
mod min;
mod mul;
mod neg;
mod not;
mod pad;
mod pow;
mod reduce;
mod relu;
mod reshape;
mod resize;
mod scale_shift;
mod select;
mod sigmoid;
mod slice;
mod softmax;
mod sqrt;
mod sub;
mod tanh;
mod tile;
mod transpose;

/// How one ONNX op type imports.
pub struct Entry {
    /// The ONNX op type (default domain).
    pub onnx: &'static str,
    pub(crate) import: fn(&mut Importer, &Ctx) -> Result<(), ImportError>,
    /// The IR ops it may produce (none for ops that only rename or fold).
    pub produces: &'static [OpKind],
}

const fn entry(
    onnx: &'static str,
    import: fn(&mut Importer, &Ctx) -> Result<(), ImportError>,
    produces: &'static [OpKind],
) -> Entry {
    Entry {
        onnx,
        import,
        produces,
    }
}

use OpKind as K;

/// The ops that move a boolean's values unchanged (their IR ops are pass-through ones, whose output is then
/// boolean too); Concat does too when every input is a boolean ([`amp_device::ir::Node::writes_booleans`]).
const BOOL_MOVES: [&str; 8] = [
    "Reshape",
    "Unsqueeze",
    "Squeeze",
    "Flatten",
    "Expand",
    "Transpose",
    "Slice",
    "Tile",
];

/// Every ONNX op type the importer handles, in alphabetical order.
pub const REGISTRY: &[Entry] = &[
    entry("Abs", abs::import, &[K::Abs]),
    entry("Add", add::import, &[K::Add]),
    entry("And", logic::import, &[K::Logic]),
    entry("AveragePool", average_pool::import, &[K::AveragePool]),
    entry("BatchNormalization", scale_shift::import, &[K::ScaleShift]),
    entry("Cast", cast::import, &[K::Cast]),
    entry("Clip", clip::import, &[K::Clip]),
    entry("Concat", concat::import, &[K::Concat]),
    entry("Constant", computed_at_import::import, &[]),
    entry("ConstantOfShape", computed_at_import::import, &[]),
    entry("Conv", conv::import, &[K::Conv]),
    entry("ConvTranspose", conv_transpose::import, &[K::ConvTranspose]),
    entry("DepthToSpace", depth_space::import, &[K::DepthSpace]),
    entry("Div", div::import, &[K::Div]),
    entry("Dropout", identity::import, &[]),
    entry("Equal", equal::import, &[K::Equal]),
    entry("Erf", erf::import, &[K::Erf]),
    entry("Exp", exp::import, &[K::Exp]),
    entry("Expand", tile::import, &[K::Tile]),
    entry("Flatten", reshape::import_flatten, &[K::Reshape]),
    entry("Gather", gather::import, &[K::Gather]),
    entry("Gelu", gelu::import, &[K::Gelu]),
    entry("Gemm", gemm::import, &[K::Gemm]),
    entry("Greater", compare::import, &[K::Compare]),
    entry("GreaterOrEqual", compare::import, &[K::Compare]),
    entry(
        "GlobalAveragePool",
        global_average_pool::import,
        &[K::GlobalAveragePool],
    ),
    entry("HardSigmoid", hard_sigmoid::import, &[K::HardSigmoid]),
    entry("HardSwish", hard_swish::import, &[K::HardSwish]),
    entry("Identity", identity::import, &[]),
    entry(
        "InstanceNormalization",
        instance_norm::import,
        &[K::InstanceNorm],
    ),
    entry("LayerNormalization", layer_norm::import, &[K::LayerNorm]),
    entry("LeakyRelu", leaky_relu::import, &[K::LeakyRelu]),
    entry("Less", compare::import, &[K::Compare]),
    entry("LessOrEqual", compare::import, &[K::Compare]),
    entry("LogSoftmax", softmax::import_log, &[K::Softmax]),
    entry("MatMul", matmul::import, &[K::Gemm, K::MatMul]),
    entry("Max", max::import, &[K::Max]),
    entry("MaxPool", max_pool::import, &[K::MaxPool]),
    entry("Min", min::import, &[K::Min]),
    entry("Mul", mul::import, &[K::Mul]),
    entry("Neg", neg::import, &[K::Neg]),
    entry("Not", not::import, &[K::Not]),
    entry("Or", logic::import, &[K::Logic]),
    entry("Pad", pad::import, &[K::Pad]),
    entry("Pow", pow::import, &[K::Pow]),
    entry("Range", computed_at_import::import, &[]),
    entry("Reciprocal", div::import_reciprocal, &[K::Div]),
    entry("ReduceMax", reduce::import_max, &[K::Reduce]),
    entry("ReduceMean", reduce::import_mean, &[K::Reduce]),
    entry("ReduceMin", reduce::import_min, &[K::Reduce]),
    entry("ReduceSum", reduce::import_sum, &[K::Reduce]),
    entry("Relu", relu::import, &[K::Relu]),
    entry("Reshape", reshape::import, &[K::Reshape]),
    entry("Resize", resize::import, &[K::Resize]),
    entry("Shape", computed_at_import::import, &[]),
    entry("Sigmoid", sigmoid::import, &[K::Sigmoid]),
    entry("Slice", slice::import, &[K::Slice]),
    entry("Softmax", softmax::import, &[K::Softmax]),
    entry("SpaceToDepth", depth_space::import, &[K::DepthSpace]),
    entry("Split", slice::import_split, &[K::Slice]),
    entry("Sqrt", sqrt::import, &[K::Sqrt]),
    entry("Squeeze", reshape::import_squeeze, &[K::Reshape]),
    entry("Sub", sub::import, &[K::Sub]),
    entry("Tanh", tanh::import, &[K::Tanh]),
    entry("Tile", tile::import, &[K::Tile]),
    entry("Transpose", transpose::import, &[K::Transpose]),
    entry("Unsqueeze", reshape::import_squeeze, &[K::Reshape]),
    entry("Upsample", resize::import, &[K::Resize]),
    entry("Where", select::import, &[K::Where]),
    entry("Xor", logic::import, &[K::Logic]),
];

/// The ONNX op types the importer handles, for messages.
pub fn supported() -> Vec<&'static str> {
    REGISTRY.iter().map(|e| e.onnx).collect()
}

/// Imports one node: folds it when its inputs are constant, else adds IR nodes.
pub(crate) fn convert(imp: &mut Importer, node: &NodeProto) -> Result<(), ImportError> {
    let op_type = node.op_type.clone().unwrap_or_default();
    let out0 = node.output.first().cloned().unwrap_or_default();
    let name = node
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{op_type}_{out0}"));
    let cx = Ctx { node, name };
    let domain = node.domain.clone().unwrap_or_default();
    if !(domain.is_empty() || domain == "ai.onnx") {
        return Err(ImportError::Unsupported {
            node: cx.name,
            op: op_type,
            domain: format!(" of domain {domain:?}"),
        });
    }
    let Some(entry) = REGISTRY.iter().find(|e| e.onnx == op_type) else {
        return Err(ImportError::Unsupported {
            node: cx.name,
            op: op_type,
            domain: String::new(),
        });
    };
    if node.output.iter().skip(1).any(|o| !o.is_empty())
        && !matches!(op_type.as_str(), "Dropout" | "BatchNormalization" | "Split")
    {
        return Err(cx.err("has more than one output; amp handles single-output ops"));
    }
    // an integer input (token ids) is read only as Gather's indices, or for its shape; one cast to float (a
    // mask) was made a float input at import
    for (k, i) in node.input.iter().enumerate() {
        if let Some(Val::Dyn(t)) = imp.vals.get(i) {
            let allowed = (op_type == "Gather" && k == 1) || op_type == "Shape";
            if imp.g.integer.contains(t) && !allowed {
                return Err(cx.err(format!(
                    "reads the integer input \"{i}\"; amp reads integer inputs only as Gather indices (an embedding lookup) or, when that is their only use, through a Cast to float32 or bool or a comparison (an attention mask)"
                )));
            }
        }
    }
    // a boolean is read only as Where's condition, by Not, And, Or, Xor, through a Cast, or moved by a reshape,
    // a Transpose, an Expand, a Slice, a Tile or a Concat of booleans only
    let concat_of_booleans = op_type == "Concat"
        && node.input.iter().all(|i| match imp.vals.get(i) {
            Some(Val::Dyn(t)) => imp.is_bool(*t),
            _ => false,
        });
    for (k, i) in node.input.iter().enumerate() {
        if let Some(Val::Dyn(t)) = imp.vals.get(i) {
            let reads_bool = matches!(op_type.as_str(), "And" | "Or" | "Xor")
                || (k == 0 && matches!(op_type.as_str(), "Where" | "Not" | "Cast"))
                || (k == 0 && BOOL_MOVES.contains(&op_type.as_str()))
                || concat_of_booleans;
            if imp.is_bool(*t) && !reads_bool {
                return Err(cx.err(format!(
                    "reads the boolean tensor \"{i}\"; amp reads booleans only as Where's condition, by Not, And, Or or Xor, through a Cast, or moved by a reshape, Transpose, Expand, Slice, Tile or a Concat of booleans only"
                )));
            }
        }
    }
    let all_const = node
        .input
        .iter()
        .all(|i| i.is_empty() || matches!(imp.vals.get(i), Some(Val::Const(_))));
    if op_type == "Shape" {
        let t = const_shape(imp, &cx)?;
        imp.vals.insert(cx.output()?.to_string(), Val::Const(t));
        return Ok(());
    }
    if all_const || op_type == "Constant" {
        if let Some(v) = fold_const(imp, &cx)? {
            imp.vals.insert(cx.output()?.to_string(), Val::Const(v));
            return Ok(());
        }
    }
    (entry.import)(imp, &cx)
}
