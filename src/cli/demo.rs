//! `rbtx demo`: the whole product on this machine with no accounts.

use super::{Error, Outcome, PackArg};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pack: PackArg,
    /// Keep the demo's store (SQLite) afterwards, to look at with `rbtx dlq --store`, and its
    /// console up with the demo's data until Ctrl-C.
    #[arg(long)]
    keep: bool,
}

pub fn run(Args { pack, keep }: Args) -> Result<Outcome, Error> {
    let pack = pack.root()?;
    let dir = rbtx::runtime::demo::scratch_dir()?;
    let outcome = super::runtime()?.block_on(rbtx::runtime::demo::demo(&pack, &dir, keep));
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
