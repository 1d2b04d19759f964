//! `rbtx validate`: compile mapping files the way start-up does and report every problem.

use std::path::PathBuf;

use rbtx::plan::load_pack;
use rbtx::spec::diagnostic::{Format, render, sort};

use super::{Error, Outcome, PackArg};

#[derive(clap::Args)]
pub struct Args {
    /// Mapping files or folders (default: the pack RBTX_PACK names, else the one built into rbtx).
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Fail (exit 1) on warnings too: fields Rackbeat's schema, built from the samples seen, lacks.
    #[arg(long)]
    deny_warnings: bool,
}

pub fn run(
    Args {
        mut paths,
        format,
        deny_warnings,
    }: Args,
) -> Result<Outcome, Error> {
    if paths.is_empty() {
        let pack = PackArg {
            pack: std::env::var_os("RBTX_PACK").map(PathBuf::from),
        };
        paths.push(pack.root()?);
    }
    let pack = load_pack(&paths);
    let mut diags = pack.diagnostics;
    sort(&mut diags);
    // Nothing could be read at all: that is not a problem in the mappings.
    if diags
        .iter()
        .any(|d| d.code == rbtx::spec::Code::Io && d.text.is_none())
        && pack.plans.is_empty()
    {
        return Err(Error::Unreadable(
            diags
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    let warnings = pack.warnings;
    // One document per run (a JSON array), errors first.
    let all: Vec<_> = diags.iter().chain(&warnings).cloned().collect();
    print!("{}", render(&all, format));
    if format == Format::Human {
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        match (diags.len(), warnings.len()) {
            (0, 0) => println!("{} mappings valid", pack.plans.len()),
            (0, w) => println!(
                "{} mappings valid, {}",
                pack.plans.len(),
                count(w, "warning")
            ),
            (e, 0) => println!("{} found", count(e, "problem")),
            (e, w) => println!("{} found, {}", count(e, "problem"), count(w, "warning")),
        }
    }
    Ok(Outcome::clean_if(
        diags.is_empty() && (warnings.is_empty() || !deny_warnings),
    ))
}
