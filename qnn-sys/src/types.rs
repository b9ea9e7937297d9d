//! `#[repr(C)]` declarations of the QNN C API types amp uses, written from the published ABI facts (field
//! order, sizes and offsets measured against libQnnHtp.so 2.51, core API 2.40). Checked by the layout
//! tests below, and against the SDK's headers by bindgen when `QNN_SDK_ROOT` is set.

use std::ffi::{c_char, c_void};

/// `Qnn_ErrorHandle_t`: 0 on success; the error code is the low 16 bits.
pub type ErrorHandle = u64;
/// Every QNN handle is an opaque pointer (small integers on the x86 emulator: never test them for null).
pub type Handle = *mut c_void;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// The fixed head of `QnnInterface_t`; the function-pointer table follows at offset 40.
#[repr(C)]
pub struct InterfaceHead {
    pub backend_id: u32,
    pub provider_name: *const c_char,
    pub core_api: Version,
    pub backend_api: Version,
}

pub const INTERFACE_TABLE_OFFSET: usize = 40;

// Qnn_DataType_t
pub const DATATYPE_INT_32: u32 = 0x0032;
pub const DATATYPE_UINT_8: u32 = 0x0108;
pub const DATATYPE_UINT_32: u32 = 0x0132;
pub const DATATYPE_FLOAT_32: u32 = 0x0232;
pub const DATATYPE_SFIXED_POINT_8: u32 = 0x0308;
pub const DATATYPE_SFIXED_POINT_16: u32 = 0x0316;
pub const DATATYPE_SFIXED_POINT_32: u32 = 0x0332;
pub const DATATYPE_UFIXED_POINT_8: u32 = 0x0408;
pub const DATATYPE_UFIXED_POINT_16: u32 = 0x0416;
pub const DATATYPE_BOOL_8: u32 = 0x0508;

// Qnn_TensorType_t
pub const TENSOR_TYPE_APP_WRITE: u32 = 0;
pub const TENSOR_TYPE_APP_READ: u32 = 1;
pub const TENSOR_TYPE_NATIVE: u32 = 3;
pub const TENSOR_TYPE_STATIC: u32 = 4;

// Qnn_Definition_t and Qnn_QuantizationEncoding_t
pub const DEFINITION_DEFINED: u32 = 1;
pub const DEFINITION_UNDEFINED: u32 = 0x7FFF_FFFF;
pub const ENCODING_SCALE_OFFSET: u32 = 0;
pub const ENCODING_AXIS_SCALE_OFFSET: u32 = 1;
pub const ENCODING_UNDEFINED: u32 = 0x7FFF_FFFF;

pub const PARAM_TYPE_SCALAR: u32 = 0;
pub const PARAM_TYPE_TENSOR: u32 = 1;

pub const TENSOR_VERSION_1: u32 = 1;
pub const OPCONFIG_VERSION_1: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ScaleOffset {
    pub scale: f32,
    pub offset: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AxisScaleOffset {
    pub axis: i32,
    pub num_scale_offsets: u32,
    pub scale_offset: *mut ScaleOffset,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union QuantizeParamsValue {
    pub scale_offset: ScaleOffset,
    pub axis_scale_offset: AxisScaleOffset,
    _size: [u64; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct QuantizeParams {
    pub encoding_definition: u32,
    pub quantization_encoding: u32,
    pub value: QuantizeParamsValue,
}

impl QuantizeParams {
    pub fn undefined() -> Self {
        QuantizeParams {
            encoding_definition: DEFINITION_UNDEFINED,
            quantization_encoding: ENCODING_UNDEFINED,
            value: QuantizeParamsValue { _size: [0; 4] },
        }
    }
    pub fn scale_offset(scale: f32, offset: i32) -> Self {
        QuantizeParams {
            encoding_definition: DEFINITION_DEFINED,
            quantization_encoding: ENCODING_SCALE_OFFSET,
            value: QuantizeParamsValue {
                scale_offset: ScaleOffset { scale, offset },
            },
        }
    }
    /// Per-channel scales; `scale_offset` must outlive every call that reads this struct.
    pub fn axis_scale_offset(axis: i32, scale_offset: &mut [ScaleOffset]) -> Self {
        QuantizeParams {
            encoding_definition: DEFINITION_DEFINED,
            quantization_encoding: ENCODING_AXIS_SCALE_OFFSET,
            value: QuantizeParamsValue {
                axis_scale_offset: AxisScaleOffset {
                    axis,
                    num_scale_offsets: scale_offset.len() as u32,
                    scale_offset: scale_offset.as_mut_ptr(),
                },
            },
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ClientBuffer {
    pub data: *mut c_void,
    pub data_size: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct TensorV1 {
    pub id: u32,
    pub name: *const c_char,
    pub tensor_type: u32,
    pub data_format: u32,
    pub data_type: u32,
    pub quantize_params: QuantizeParams,
    pub rank: u32,
    pub dimensions: *mut u32,
    pub mem_type: u32,
    pub client_buf: ClientBuffer,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union TensorUnion {
    pub v1: TensorV1,
    /// The union is as large as `Qnn_TensorV2_t` (136 bytes).
    _v2: [u64; 17],
}

/// `Qnn_Tensor_t` (144 bytes); amp fills version 1.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Tensor {
    pub version: u32,
    pub u: TensorUnion,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union ScalarValue {
    pub f32: f32,
    pub u32: u32,
    pub i32: i32,
    pub bool8: u8,
    _size: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Scalar {
    pub data_type: u32,
    pub value: ScalarValue,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union ParamValue {
    pub scalar: Scalar,
    pub tensor: Tensor,
}

/// `Qnn_Param_t` (160 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Param {
    pub param_type: u32,
    pub name: *const c_char,
    pub value: ParamValue,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpConfigV1 {
    pub name: *const c_char,
    pub package_name: *const c_char,
    pub type_name: *const c_char,
    pub num_params: u32,
    pub params: *mut Param,
    pub num_inputs: u32,
    pub input_tensors: *mut Tensor,
    pub num_outputs: u32,
    pub output_tensors: *mut Tensor,
}

/// `Qnn_OpConfig_t` (80 bytes), passed by value to `graphAddNode` and `backendValidateOpConfig`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpConfig {
    pub version: u32,
    pub v1: OpConfigV1,
}

/// `QnnDevice_Config_t` / `QnnGraph_Config_t` / ...: an option and a pointer-sized payload (16 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Config {
    pub option: u32,
    pub payload: *mut c_void,
}

pub const DEVICE_CONFIG_OPTION_CUSTOM: u32 = 0;

/// HTP device custom config in the layout of HTP API ≥ 5.47: option, then the payload at offset 8.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HtpDeviceCustomConfig {
    pub option: u32,
    _pad: u32,
    pub device_id: u32,
    pub arch: u32,
}

pub const HTP_DEVICE_CONFIG_OPTION_ARCH: u32 = 1;

impl HtpDeviceCustomConfig {
    pub fn arch(arch: u32) -> Self {
        HtpDeviceCustomConfig {
            option: HTP_DEVICE_CONFIG_OPTION_ARCH,
            _pad: 0,
            device_id: 0,
            arch,
        }
    }
}

/// `QnnProfile_EventData_t` (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProfileEventData {
    pub event_type: u32,
    pub unit: u32,
    pub value: u64,
    pub identifier: *const c_char,
}

pub const PROFILE_LEVEL_BASIC: u32 = 1;
pub const PROFILE_EVENTTYPE_EXECUTE: u32 = 400;
pub const LOG_LEVEL_ERROR: u32 = 1;
pub const LOG_LEVEL_WARN: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts_match_the_measured_abi() {
        assert_eq!(size_of::<InterfaceHead>(), INTERFACE_TABLE_OFFSET);
        assert_eq!(offset_of!(InterfaceHead, core_api), 16);
        assert_eq!(offset_of!(InterfaceHead, backend_api), 28);
        assert_eq!(size_of::<QuantizeParams>(), 40);
        assert_eq!(offset_of!(QuantizeParams, value), 8);
        assert_eq!(size_of::<TensorV1>(), 112);
        assert_eq!(offset_of!(TensorV1, quantize_params), 32);
        assert_eq!(offset_of!(TensorV1, rank), 72);
        assert_eq!(offset_of!(TensorV1, dimensions), 80);
        assert_eq!(offset_of!(TensorV1, mem_type), 88);
        assert_eq!(offset_of!(TensorV1, client_buf), 96);
        assert_eq!(size_of::<Tensor>(), 144);
        assert_eq!(offset_of!(Tensor, u), 8);
        assert_eq!(size_of::<Scalar>(), 16);
        assert_eq!(size_of::<Param>(), 160);
        assert_eq!(offset_of!(Param, value), 16);
        assert_eq!(size_of::<OpConfig>(), 80);
        assert_eq!(offset_of!(OpConfig, v1), 8);
        assert_eq!(offset_of!(OpConfigV1, params), 32);
        assert_eq!(offset_of!(OpConfigV1, input_tensors), 48);
        assert_eq!(offset_of!(OpConfigV1, output_tensors), 64);
        assert_eq!(size_of::<Config>(), 16);
        assert_eq!(size_of::<HtpDeviceCustomConfig>(), 16);
        assert_eq!(size_of::<ProfileEventData>(), 24);
    }

    #[test]
    fn htp_arch_config_puts_the_arch_at_offset_12() {
        let c = HtpDeviceCustomConfig::arch(73);
        // SAFETY: reading the 16 bytes of a plain-old-data struct as u32 words.
        let words: [u32; 4] = unsafe { std::mem::transmute(c) };
        assert_eq!(words, [HTP_DEVICE_CONFIG_OPTION_ARCH, 0, 0, 73]);
    }
}

/// With `QNN_SDK_ROOT` set at build time: amp's declarations against bindgen's reading of the SDK headers.
#[cfg(all(test, qnn_sdk))]
mod sdk_layout {
    #[allow(
        non_camel_case_types,
        non_snake_case,
        non_upper_case_globals,
        dead_code,
        clippy::all
    )]
    mod sdk {
        include!(concat!(env!("OUT_DIR"), "/sdk.rs"));
    }
    use std::mem::size_of;

    #[test]
    fn sizes_equal_the_sdk_headers() {
        assert_eq!(size_of::<super::Tensor>(), size_of::<sdk::Qnn_Tensor_t>());
        assert_eq!(
            size_of::<super::TensorV1>(),
            size_of::<sdk::Qnn_TensorV1_t>()
        );
        assert_eq!(
            size_of::<super::QuantizeParams>(),
            size_of::<sdk::Qnn_QuantizeParams_t>()
        );
        assert_eq!(size_of::<super::Param>(), size_of::<sdk::Qnn_Param_t>());
        assert_eq!(
            size_of::<super::OpConfig>(),
            size_of::<sdk::Qnn_OpConfig_t>()
        );
        assert_eq!(size_of::<super::Scalar>(), size_of::<sdk::Qnn_Scalar_t>());
        assert_eq!(
            size_of::<super::ProfileEventData>(),
            size_of::<sdk::QnnProfile_EventData_t>()
        );
        assert_eq!(
            std::mem::offset_of!(super::TensorV1, client_buf),
            std::mem::offset_of!(sdk::Qnn_TensorV1_t, clientBuf)
        );
        assert_eq!(
            std::mem::offset_of!(super::TensorV1, quantize_params),
            std::mem::offset_of!(sdk::Qnn_TensorV1_t, quantizeParams)
        );
    }
}
