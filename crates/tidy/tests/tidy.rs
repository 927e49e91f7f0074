//! ARCHITECTURE.md's invariants, checked on this workspace (see the `tidy` crate for each rule,
//! and its unit tests for each rule failing on a deliberate violation).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn workspace() -> tidy::Workspace {
    tidy::read_workspace(&root()).unwrap()
}

#[test]
fn daemons_never_depend_on_daemons() {
    let w = workspace();
    assert!(tidy::daemons(&w).len() >= 10, "daemons found: {:?}", tidy::daemons(&w));
    let broken = tidy::daemon_dependencies(&w);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn protocol_depends_on_nothing_async() {
    let broken = tidy::protocol_dependencies(&workspace());
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_code_map_names_every_crate() {
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let broken = tidy::code_map_mismatches(&workspace(), &architecture);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
