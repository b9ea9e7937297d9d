//! Our own `#[repr(C)]` declarations of the subset of Qualcomm's QNN C API that amp calls, loaded at run time
//! with libloading. Written from the published ABI facts; nothing here is copied or generated from the SDK's
//! headers.
