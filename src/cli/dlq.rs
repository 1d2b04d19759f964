//! `rbtx dlq`: list, show and replay dead letters.

use rbtx::runtime::dlq;
use rbtx::store::{Location, Store};

use super::{Error, Outcome};

#[derive(clap::Subcommand)]
pub enum Command {
    /// One line per dead letter.
    List,
    /// One dead letter in full, with its payload.
    Show { id: i64 },
    /// Put dead letters back in the queue (after fixing the mapping or the data).
    Replay {
        /// The dead letter to replay.
        id: Option<i64>,
        /// Replay every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

pub fn run(command: Command, store: Option<String>) -> Result<Outcome, Error> {
    let store = Location::from_arg_or_env(store.as_deref())?;
    super::runtime()?.block_on(async {
        // Opening would create an empty store; a mistyped path should say so instead.
        if let Location::Sqlite(path) = &store
            && !path.exists()
        {
            return Err(Error::NoStore(store));
        }
        rbtx::with_store!(store.open().await?, |s| on(&s, command).await)
    })
}

async fn on<S: Store>(s: &S, command: Command) -> Result<Outcome, Error> {
    s.migrate().await?;
    match command {
        Command::List => {
            let letters = s.list_dead_letters().await?;
            for d in &letters {
                // A record that keeps failing for one reason is one letter that counts.
                let repeats = match d.failures {
                    0 | 1 => String::new(),
                    n => format!(" ({n} times)"),
                };
                // A record's reason starts with its field already; an API's may not name it.
                let field = d
                    .field
                    .as_ref()
                    .filter(|f| !d.reason.contains(f.as_str()))
                    .map(|f| format!("{f}: "))
                    .unwrap_or_default();
                println!(
                    "{:>6}  {:<10} {:<18} {:<16} {field}{}{repeats}",
                    d.id, d.event.tenant, d.event.event, d.event.key, d.reason
                );
            }
            println!(
                "{} dead letter{}",
                letters.len(),
                if letters.len() == 1 { "" } else { "s" }
            );
        }
        Command::Show { id } => {
            let d = s
                .get_dead_letter(id)
                .await?
                .ok_or(dlq::ReplayError::NotFound(id))?;
            let out = serde_json::json!({
                "id": d.id, "tenant": d.event.tenant, "event": d.event.event, "entity": d.event.entity,
                "key": d.event.key, "attempts": d.event.attempts, "reason": d.reason,
                "mapping": d.mapping, "field": d.field, "failed_at_ms": d.failed_at,
                "failures": d.failures, "last_failed_at_ms": d.last_failed_at, "payload": d.event.payload,
            });
            let text = serde_json::to_string_pretty(&out)?;
            println!("{text}");
        }
        Command::Replay { id: Some(id), .. } => {
            dlq::replay(s, id).await?;
            println!("dead letter {id} is back in the queue");
        }
        Command::Replay {
            id: None,
            all: true,
        } => {
            let dlq::Replayed { queued, left } = dlq::replay_all(s).await?;
            println!(
                "{queued} dead letter{} back in the queue",
                if queued == 1 { "" } else { "s" }
            );
            if left > 0 {
                println!("{left} left for `rbtx sync initial` to retry");
            }
        }
        Command::Replay {
            id: None,
            all: false,
        } => {
            return Err(Error::NoDeadLetterChosen);
        }
    }
    Ok(Outcome::Clean)
}
