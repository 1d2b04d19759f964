//! `rbtx test`: run the mapping unit tests (`*.test.yaml`) and show a diff for each failure.

use std::path::PathBuf;
use std::sync::Arc;

use rbtx::plan::load_pack;
use rbtx::spec::diagnostic::{Format, render, sort};

use super::{Error, Outcome, PackArg};

#[derive(clap::Args)]
pub struct Args {
    /// Test files or folders (default: the pack's own).
    paths: Vec<PathBuf>,
    /// The mapping pack the tests run against.
    #[command(flatten)]
    pack: PackArg,
    /// Rewrite `expect_file` expectations from what the mappings produce.
    #[arg(long)]
    bless: bool,
}

pub fn run(
    Args {
        mut paths,
        pack,
        bless,
    }: Args,
) -> Result<Outcome, Error> {
    let root = pack.root()?;
    if paths.is_empty() {
        paths.push(root.clone());
    }
    if bless && paths.iter().any(|p| rbtx::files::is_embedded(p)) {
        return Err(Error::BlessBuiltIn);
    }
    let pack = load_pack(&[root]);
    let report = rbtx::testing::run(&paths, &pack, bless);
    let mut diags = pack.diagnostics.clone();
    diags.extend(report.diagnostics.iter().cloned());
    sort(&mut diags);
    print!("{}", render(&diags, Format::Human));
    print!("{}", report.render());
    if !diags.is_empty() {
        return Ok(Outcome::clean_if(false));
    }
    // Each pair of opposite mappings, there and back on the sandboxes' seed.
    let round_trip = super::runtime()?.block_on(rbtx::round_trip::run(Arc::new(pack)))?;
    print!("{}", round_trip.render());
    Ok(Outcome::clean_if(
        report.failed() == 0 && round_trip.passed(),
    ))
}
