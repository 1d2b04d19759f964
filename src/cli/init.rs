//! `rbtx init`: write the built-in mapping pack into a folder, to edit.

use std::path::PathBuf;

use super::{Error, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// The folder to write (created; nothing in it is overwritten).
    #[arg(default_value = "mappings")]
    dir: PathBuf,
}

pub fn run(Args { dir }: Args) -> Result<Outcome, Error> {
    let written = rbtx::files::init(&dir)?;
    let mappings = written
        .iter()
        .filter(|p| rbtx::plan::is_mapping_file(p) && !p.starts_with(dir.join("schemas")))
        .count();
    println!(
        "Wrote {} files into {}: {mappings} mappings with their tests and samples, and their JSON Schemas under schemas/.",
        written.len(),
        dir.display()
    );
    println!(
        "Use it with `--pack {0}` (or RBTX_PACK={0}); check edits with `rbtx validate {0}` and `rbtx test --pack {0}`.",
        dir.display()
    );
    Ok(Outcome::Clean)
}
