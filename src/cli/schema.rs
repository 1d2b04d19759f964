//! `rbtx schema`: print the JSON Schema of mapping files, mapping test files or tenants files.

use clap::ValueEnum;

use super::{Error, Outcome};

#[derive(clap::Args)]
pub struct Args {
    #[arg(value_enum, default_value_t = SchemaKind::Mapping)]
    kind: SchemaKind,
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemaKind {
    Mapping,
    Test,
    /// The tenants file of `rbtx run --tenants`.
    Tenants,
}

pub fn run(Args { kind }: Args) -> Result<Outcome, Error> {
    let schema = match kind {
        SchemaKind::Mapping => rbtx::spec::mapping_schema(),
        SchemaKind::Test => rbtx::spec::test_schema(),
        SchemaKind::Tenants => rbtx::runtime::accounts::tenants_schema(),
    };
    let text = serde_json::to_string_pretty(&schema)?;
    println!("{text}");
    Ok(Outcome::Clean)
}
