// The shipped pack is compiled into the binary (src/files.rs); a file added to or removed from
// it must rebuild the binary too, which include_dir alone does not tell Cargo.
fn main() {
    println!("cargo:rerun-if-changed=mappings");
    println!("cargo:rerun-if-changed=schemas");
}
