//! Every WGSL file in `shaders/` parses and validates with naga, so a broken shader fails here
//! without any adapter.

use std::path::{Path, PathBuf};

fn shader_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wgsl"))
        .collect();
    files.sort();
    files
}

fn validated(path: &Path) -> naga::Module {
    let source = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let module = naga::front::wgsl::parse_str(&source)
        .unwrap_or_else(|e| panic!("{}", e.emit_to_string_with_path(&source, path)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap_or_else(|e| {
        panic!(
            "{}",
            e.emit_to_string_with_path(&source, &path.to_string_lossy())
        )
    });
    module
}

#[test]
fn every_shader_parses_and_validates_with_naga() {
    let files = shader_files();
    assert!(
        files.iter().any(|f| f.ends_with("blake3.wgsl")),
        "shaders/blake3.wgsl is missing: {files:?}"
    );
    for file in &files {
        validated(file);
    }
}

#[test]
fn blake3_shader_has_every_entry_point_the_worker_dispatches() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders/blake3.wgsl");
    let module = validated(&path);
    for name in [
        "chunk_cvs",
        "parent_cvs",
        "batch_chunk_cvs",
        "batch_parent_cvs",
    ] {
        let entry = module
            .entry_points
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no entry point {name}"));
        assert_eq!(entry.stage, naga::ShaderStage::Compute);
        // The host computes workgroup counts with 64 invocations per group.
        assert_eq!(entry.workgroup_size, [64, 1, 1], "{name}");
    }
}
