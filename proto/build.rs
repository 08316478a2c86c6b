//! Generates the dualrig.v1 prost messages and tonic services, plus the descriptor set for reflection.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("dualrig_descriptor.bin"))
        .bytes(".dualrig.v1.TranscodeJob.segment")
        .compile_protos(&["proto/dualrig/v1/dualrig.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
