//! `rbtx preview`: print the request a mapping would send for one record; sends nothing.

use std::path::PathBuf;

use rbtx::preview::{Input, Preview, preview};
use rbtx::spec::diagnostic::{Format, render};

use super::{Error, Outcome, PackArg};

#[derive(clap::Args)]
pub struct Args {
    /// The mapping file.
    mapping: PathBuf,
    /// The source record as JSON (a `source.get` response or one listed record).
    #[arg(long)]
    input: PathBuf,
    /// The existing target record, as JSON, to preview an update.
    #[arg(long)]
    target: Option<PathBuf>,
    /// Fixtures (YAML: `refs:` and `lookups:`) for references and API lookups; without them
    /// placeholders are shown.
    #[arg(long)]
    fixtures: Option<PathBuf>,
    #[command(flatten)]
    pack: PackArg,
}

pub fn run(args: Args) -> Result<Outcome, Error> {
    let pack = super::pack_root(args.pack.pack)?;
    // A mapping file on disk is previewed from there; one named within the pack, from the pack.
    if !rbtx::files::exists(&args.mapping) {
        eprintln!("pack: {}", rbtx::files::describe(&pack));
    }
    let input = Input {
        mapping: args.mapping,
        source: args.input,
        target: args.target,
        fixtures: args.fixtures,
        pack,
    };
    match preview(&input)? {
        Preview::Invalid(diagnostics) => {
            eprint!("{}", render(&diagnostics, Format::Human));
            Ok(Outcome::Problems)
        }
        Preview::Rendered(text) => {
            println!("{text}");
            Ok(Outcome::Clean)
        }
        Preview::Refused(e) => {
            eprintln!("error: {}: {e}", input.source.display());
            Ok(Outcome::Problems)
        }
    }
}
