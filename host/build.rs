//! Compiles the vendored ONNX schema (`proto/onnx.proto`, Apache-2.0, from the ONNX project) with protox,
//! a pure-Rust protobuf compiler, so no `protoc` is needed on the build machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["proto/onnx.proto"], ["proto"])?;
    let mut cfg = prost_build::Config::new();
    // raw_data and friends become `bytes::Bytes`, sliced from the file buffer without copying.
    cfg.bytes(["."]);
    cfg.compile_fds(fds)?;
    Ok(())
}
