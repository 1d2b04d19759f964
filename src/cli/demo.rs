//! `rbtx demo`: the whole product on this machine with no accounts.

use std::path::PathBuf;

use super::{Error, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// The mapping pack.
    #[arg(long, default_value = "mappings")]
    pack: PathBuf,
    /// Keep the demo's store (SQLite) afterwards, to look at with `rbtx dlq --store`.
    #[arg(long)]
    keep: bool,
}

pub fn run(Args { pack, keep }: Args) -> Result<Outcome, Error> {
    let dir = rbtx::runtime::demo::scratch_dir()?;
    let outcome = super::runtime()?.block_on(rbtx::runtime::demo::demo(&pack, &dir));
    if keep {
        println!(
            "  The store is kept at {}",
            dir.join("rbtx.sqlite").display()
        );
    } else {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(Outcome::clean_if(outcome?.failures.is_empty()))
}
