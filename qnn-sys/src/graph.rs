//! A graph: tensors and nodes built from specs that borrow their data (validated node by node), finalized,
//! executed with app-owned buffers.

use std::ffi::{c_char, c_void, CString};
use std::ptr;
use std::sync::{Arc, Mutex};

use crate::error::{rejected, with_context};
use crate::handles::{Context, Profile};
use crate::library::{slot, Library};
use crate::types::*;
use crate::{QnnError, Result};

/// How a tensor is created in a graph.
#[derive(Clone, Debug)]
pub struct TensorSpec<'a> {
    pub name: &'a str,
    pub tensor_type: u32,
    pub data_type: u32,
    pub dims: &'a [u32],
    pub quant: Quant,
    /// Data of a STATIC tensor (copied into storage the graph keeps).
    pub data: Option<&'a [u8]>,
}

impl<'a> TensorSpec<'a> {
    /// A graph input: the application writes it at execute.
    pub fn input(name: &'a str, data_type: u32, dims: &'a [u32], quant: Quant) -> Self {
        Self::of(TENSOR_TYPE_APP_WRITE, name, data_type, dims, quant, None)
    }

    /// A graph output: the application reads it after execute.
    pub fn output(name: &'a str, data_type: u32, dims: &'a [u32], quant: Quant) -> Self {
        Self::of(TENSOR_TYPE_APP_READ, name, data_type, dims, quant, None)
    }

    /// A tensor between nodes, which the application never sees.
    pub fn native(name: &'a str, data_type: u32, dims: &'a [u32], quant: Quant) -> Self {
        Self::of(TENSOR_TYPE_NATIVE, name, data_type, dims, quant, None)
    }

    /// A constant holding `data`.
    pub fn constant(
        name: &'a str,
        data_type: u32,
        dims: &'a [u32],
        quant: Quant,
        data: &'a [u8],
    ) -> Self {
        Self::of(TENSOR_TYPE_STATIC, name, data_type, dims, quant, Some(data))
    }

    fn of(
        tensor_type: u32,
        name: &'a str,
        data_type: u32,
        dims: &'a [u32],
        quant: Quant,
        data: Option<&'a [u8]>,
    ) -> Self {
        Self {
            name,
            tensor_type,
            data_type,
            dims,
            quant,
            data,
        }
    }
}

/// Quantization parameters of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Quant {
    None,
    ScaleOffset {
        scale: f32,
        offset: i32,
    },
    /// Per-channel symmetric scales along `axis`.
    Axis {
        axis: i32,
        scales: Vec<f32>,
    },
}

impl Quant {
    /// One scale and offset for the whole tensor.
    pub fn scale_offset(scale: f32, offset: i32) -> Self {
        Quant::ScaleOffset { scale, offset }
    }
}

/// A parameter of a node.
#[derive(Clone, Debug)]
pub enum ParamSpec {
    U32(&'static str, u32),
    I32(&'static str, i32),
    F32(&'static str, f32),
    Bool(&'static str, bool),
    /// A UINT_32 tensor parameter with its dimensions.
    U32Tensor(&'static str, Vec<u32>, Vec<u32>),
    /// An INT_32 tensor parameter with its dimensions.
    I32Tensor(&'static str, Vec<u32>, Vec<i32>),
}

impl ParamSpec {
    /// A tensor parameter's QNN data type and little-endian bytes (a scalar: none).
    fn tensor_bytes(&self) -> (u32, Vec<u8>) {
        match self {
            ParamSpec::U32Tensor(_, _, v) => (
                DATATYPE_UINT_32,
                v.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            ParamSpec::I32Tensor(_, _, v) => (
                DATATYPE_INT_32,
                v.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            _ => (DATATYPE_UINT_32, Vec::new()),
        }
    }
}

/// A graph tensor as QNN created it (the struct to reference in nodes and at execute).
#[derive(Clone, Copy)]
pub struct TensorRef {
    raw: Tensor,
    bytes: usize,
}

impl TensorRef {
    /// The tensor with `len` bytes at `data` as its client buffer, which must be exactly its size.
    fn bound(&self, what: &str, data: *mut c_void, len: usize) -> Result<Tensor> {
        if len != self.bytes {
            return Err(QnnError::Invalid(format!(
                "{what} tensor {}: buffer of {len} bytes, expected {}",
                self.id(),
                self.bytes
            )));
        }
        let mut raw = self.raw;
        raw.u.v1.client_buf = ClientBuffer {
            data,
            data_size: len as u32,
        };
        Ok(raw)
    }

    pub fn id(&self) -> u32 {
        // SAFETY: amp creates every tensor as version 1.
        unsafe { self.raw.u.v1.id }
    }
    /// Size of the tensor's data in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Bytes per element: the low byte of a `Qnn_DataType_t` spells the bit width in decimal digits (0x08, 0x16,
/// 0x32, 0x64).
fn dtype_bytes(dt: u32) -> usize {
    let bits = ((dt >> 4) & 0xF) * 10 + (dt & 0xF);
    (bits as usize).div_ceil(8).max(1)
}

/// Storage the graph's tensors and nodes point into; kept for the graph's lifetime.
#[derive(Default)]
struct Arena {
    strings: Vec<CString>,
    dims: Vec<Box<[u32]>>,
    data: Vec<Box<[u8]>>,
    scales: Vec<Box<[ScaleOffset]>>,
}

/// A graph under construction, then finalized and executable.
pub struct Graph {
    ctx: Arc<Context>,
    handle: Handle,
    arena: Mutex<Arena>,
}

// SAFETY: see Backend; the arena is behind a mutex.
unsafe impl Send for Graph {}
// SAFETY: as above.
unsafe impl Sync for Graph {}

impl Graph {
    pub fn new(ctx: Arc<Context>, name: &str) -> Result<Graph> {
        let cname = CString::new(name)
            .map_err(|_| QnnError::Invalid(format!("graph name {name:?} contains NUL")))?;
        let mut handle: Handle = ptr::null_mut();
        let lib = &ctx.backend.lib;
        // SAFETY: graphCreate(ctx, name, const QnnGraph_Config_t**, Qnn_GraphHandle_t*).
        let create: unsafe extern "C" fn(
            Handle,
            *const c_char,
            *const *const Config,
            *mut Handle,
        ) -> ErrorHandle = unsafe { lib.func(slot::GRAPH_CREATE) };
        // SAFETY: name NUL-terminated; NULL configs; out-pointer valid.
        lib.check("graphCreate", unsafe {
            create(ctx.handle, cname.as_ptr(), ptr::null(), &mut handle)
        })?;
        let mut arena = Arena::default();
        arena.strings.push(cname);
        Ok(Graph {
            ctx,
            handle,
            arena: Mutex::new(arena),
        })
    }

    fn lib(&self) -> &Library {
        &self.ctx.backend.lib
    }

    fn cstr(arena: &mut Arena, s: &str) -> Result<*const c_char> {
        let c =
            CString::new(s).map_err(|_| QnnError::Invalid(format!("name {s:?} contains NUL")))?;
        let p = c.as_ptr();
        arena.strings.push(c);
        Ok(p)
    }

    /// Creates a graph tensor.
    pub fn tensor(&self, spec: &TensorSpec) -> Result<TensorRef> {
        let mut arena = self
            .arena
            .lock()
            .map_err(|_| QnnError::Invalid("graph arena poisoned".into()))?;
        let name = Self::cstr(&mut arena, spec.name)?;
        let dims: Box<[u32]> = spec.dims.into();
        let dims_ptr = dims.as_ptr() as *mut u32;
        arena.dims.push(dims);
        let quantize_params = match &spec.quant {
            Quant::None => QuantizeParams::undefined(),
            Quant::ScaleOffset { scale, offset } => QuantizeParams::scale_offset(*scale, *offset),
            Quant::Axis { axis, scales } => {
                let mut so: Box<[ScaleOffset]> = scales
                    .iter()
                    .map(|&scale| ScaleOffset { scale, offset: 0 })
                    .collect();
                let q = QuantizeParams::axis_scale_offset(*axis, &mut so);
                arena.scales.push(so);
                q
            }
        };
        let elems: usize = spec.dims.iter().map(|&d| d as usize).product();
        let bytes = elems * dtype_bytes(spec.data_type);
        let client_buf = match spec.data {
            Some(d) => {
                if d.len() != bytes {
                    return Err(QnnError::Invalid(format!(
                        "tensor {:?}: {} bytes of data for {bytes} expected",
                        spec.name,
                        d.len()
                    )));
                }
                let b: Box<[u8]> = d.into();
                let p = b.as_ptr() as *mut c_void;
                arena.data.push(b);
                ClientBuffer {
                    data: p,
                    data_size: bytes as u32,
                }
            }
            None => ClientBuffer {
                data: ptr::null_mut(),
                data_size: 0,
            },
        };
        let mut raw = Tensor {
            version: TENSOR_VERSION_1,
            u: TensorUnion {
                v1: TensorV1 {
                    id: 0,
                    name,
                    tensor_type: spec.tensor_type,
                    data_format: 0,
                    data_type: spec.data_type,
                    quantize_params,
                    rank: spec.dims.len() as u32,
                    dimensions: dims_ptr,
                    mem_type: 0,
                    client_buf,
                },
            },
        };
        // SAFETY: tensorCreateGraphTensor(graph, Qnn_Tensor_t*).
        let create: unsafe extern "C" fn(Handle, *mut Tensor) -> ErrorHandle =
            unsafe { self.lib().func(slot::TENSOR_CREATE_GRAPH_TENSOR) };
        // SAFETY: every pointer in `raw` points into the arena, which lives as long as the graph.
        self.lib()
            .check("tensorCreateGraphTensor", unsafe {
                create(self.handle, &mut raw)
            })
            .map_err(|e| with_context(e, spec.name))?;
        Ok(TensorRef { raw, bytes })
    }

    /// Validates a node with the backend, then adds it. A node the backend rejects is an error naming it.
    pub fn node(
        &self,
        name: &str,
        op_type: &str,
        params: &[ParamSpec],
        inputs: &[TensorRef],
        outputs: &[TensorRef],
    ) -> Result<()> {
        let mut arena = self
            .arena
            .lock()
            .map_err(|_| QnnError::Invalid("graph arena poisoned".into()))?;
        let cname = Self::cstr(&mut arena, name)?;
        let package = Self::cstr(&mut arena, "qti.aisw")?;
        let ctype = Self::cstr(&mut arena, op_type)?;
        drop(arena);
        let mut raw_params = Vec::with_capacity(params.len());
        let mut tensor_params = Vec::new();
        for p in params {
            let mut arena = self
                .arena
                .lock()
                .map_err(|_| QnnError::Invalid("graph arena poisoned".into()))?;
            let scalar = |n: &'static str, data_type: u32, value: ScalarValue| {
                (
                    n,
                    ParamValue {
                        scalar: Scalar { data_type, value },
                    },
                    PARAM_TYPE_SCALAR,
                )
            };
            let (pname, value, ptype) = match p {
                ParamSpec::U32(n, v) => scalar(n, DATATYPE_UINT_32, ScalarValue { u32: *v }),
                ParamSpec::I32(n, v) => scalar(n, DATATYPE_INT_32, ScalarValue { i32: *v }),
                ParamSpec::F32(n, v) => scalar(n, DATATYPE_FLOAT_32, ScalarValue { f32: *v }),
                ParamSpec::Bool(n, v) => {
                    scalar(n, DATATYPE_BOOL_8, ScalarValue { bool8: *v as u8 })
                }
                ParamSpec::U32Tensor(n, dims, _) | ParamSpec::I32Tensor(n, dims, _) => {
                    drop(arena);
                    let (dtype, bytes) = p.tensor_bytes();
                    let t = self.tensor(&TensorSpec::constant(
                        &format!("{name}.{n}"),
                        dtype,
                        dims,
                        Quant::None,
                        &bytes,
                    ))?;
                    tensor_params.push(t);
                    arena = self
                        .arena
                        .lock()
                        .map_err(|_| QnnError::Invalid("graph arena poisoned".into()))?;
                    (*n, ParamValue { tensor: t.raw }, PARAM_TYPE_TENSOR)
                }
            };
            let pn = Self::cstr(&mut arena, pname)?;
            raw_params.push(Param {
                param_type: ptype,
                name: pn,
                value,
            });
        }
        let mut ins: Vec<Tensor> = inputs.iter().map(|t| t.raw).collect();
        let mut outs: Vec<Tensor> = outputs.iter().map(|t| t.raw).collect();
        let op = OpConfig {
            version: OPCONFIG_VERSION_1,
            v1: OpConfigV1 {
                name: cname,
                package_name: package,
                type_name: ctype,
                num_params: raw_params.len() as u32,
                params: raw_params.as_mut_ptr(),
                num_inputs: ins.len() as u32,
                input_tensors: ins.as_mut_ptr(),
                num_outputs: outs.len() as u32,
                output_tensors: outs.as_mut_ptr(),
            },
        };
        let node = format!("{op_type} \"{name}\"");
        self.ctx
            .backend
            .validate(op)
            .map_err(|e| rejected(e, &node))?;
        // SAFETY: graphAddNode(graph, Qnn_OpConfig_t by value).
        let add: unsafe extern "C" fn(Handle, OpConfig) -> ErrorHandle =
            unsafe { self.lib().func(slot::GRAPH_ADD_NODE) };
        // SAFETY: `op` points into raw_params, ins, outs and the arena, all alive across the call.
        self.lib()
            .check("graphAddNode", unsafe { add(self.handle, op) })
            .map_err(|e| rejected(e, &node))
    }

    pub fn finalize(&self, profile: Option<&Profile>) -> Result<()> {
        // SAFETY: graphFinalize(graph, profile, signal).
        let f: unsafe extern "C" fn(Handle, Handle, Handle) -> ErrorHandle =
            unsafe { self.lib().func(slot::GRAPH_FINALIZE) };
        let p = profile.map(|p| p.handle).unwrap_or(ptr::null_mut());
        // SAFETY: live handles; NULL signal.
        self.lib().check("graphFinalize", unsafe {
            f(self.handle, p, ptr::null_mut())
        })
    }

    /// Executes with app-owned buffers; every buffer must have exactly its tensor's size (QNN does not check).
    pub fn execute(
        &self,
        inputs: &[(TensorRef, &[u8])],
        outputs: &mut [(TensorRef, &mut [u8])],
        profile: Option<&Profile>,
    ) -> Result<()> {
        // QNN only reads APP_WRITE buffers and writes exactly `bytes` into APP_READ ones
        let ins = inputs
            .iter()
            .map(|(t, buf)| t.bound("input", buf.as_ptr() as *mut c_void, buf.len()))
            .collect::<Result<Vec<_>>>()?;
        let mut outs = outputs
            .iter_mut()
            .map(|(t, buf)| t.bound("output", buf.as_mut_ptr() as *mut c_void, buf.len()))
            .collect::<Result<Vec<_>>>()?;
        // SAFETY: graphExecute(graph, const Qnn_Tensor_t*, n, Qnn_Tensor_t*, n, profile, signal).
        let f: unsafe extern "C" fn(
            Handle,
            *const Tensor,
            u32,
            *mut Tensor,
            u32,
            Handle,
            Handle,
        ) -> ErrorHandle = unsafe { self.lib().func(slot::GRAPH_EXECUTE) };
        let p = profile.map(|p| p.handle).unwrap_or(ptr::null_mut());
        // SAFETY: buffers checked above and borrowed for the call's duration.
        self.lib().check("graphExecute", unsafe {
            f(
                self.handle,
                ins.as_ptr(),
                ins.len() as u32,
                outs.as_mut_ptr(),
                outs.len() as u32,
                p,
                ptr::null_mut(),
            )
        })
    }
}
