//! Where the store is (a SQLite file or a PostgreSQL URL), and opening it as either backend.

use std::fmt;
use std::path::PathBuf;

use super::error::StoreError;
use crate::secret::Secret;

/// Where the store is: a SQLite file (the default) or a PostgreSQL database.
#[derive(Clone)]
pub enum Location {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL. It may hold a password, so it is a [`Secret`] and
    /// is shown without the password.
    Postgres(Secret),
}

impl Location {
    /// The environment variable read when no `--store` is given (or `RBTX_STORE_URL_FILE`,
    /// naming a file that holds it), so a password need not be on the command line.
    pub const ENV: &'static str = "RBTX_STORE_URL";
    pub const DEFAULT: &'static str = "rbtx.sqlite";

    /// A `postgres://` or `postgresql://` URL is PostgreSQL; a path is a SQLite file. Anything
    /// that looks like another kind of connection string is refused rather than taken as a file
    /// name: it may hold a password, which would then be logged and written to disk.
    pub fn parse(text: &str) -> std::result::Result<Location, LocationError> {
        let lower = text.trim_start().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Location::Postgres(Secret::new(text.trim())));
        }
        if lower.contains("://") || lower.contains("password=") || lower.contains("host=") {
            return Err(LocationError::Unsupported);
        }
        Ok(Location::Sqlite(PathBuf::from(text)))
    }

    /// `arg` when given, else [`Location::ENV`], else [`Location::DEFAULT`].
    pub fn from_arg_or_env(arg: Option<&str>) -> std::result::Result<Location, LocationError> {
        if let Some(arg) = arg {
            return Location::parse(arg);
        }
        match Secret::from_env(Self::ENV).map_err(LocationError::EnvFile)? {
            Some(value) => Location::parse(value.expose()),
            None => Location::parse(Self::DEFAULT),
        }
    }
}

/// A store opened from a [`Location`], for code generic over [`Store`]: [`with_store!`] runs
/// that code on whichever backend it is.
pub enum Opened {
    Sqlite(super::sqlite::SqliteStore),
    /// Boxed: its pool and connection settings are large beside a SQLite handle.
    Postgres(Box<super::postgres::PostgresStore>),
}

impl Location {
    /// Opens (or connects to) the store; the error names it, without a password.
    pub async fn open(&self) -> std::result::Result<Opened, LocationError> {
        match self {
            Location::Sqlite(path) => super::sqlite::SqliteStore::open(path).map(Opened::Sqlite),
            Location::Postgres(url) => super::postgres::PostgresStore::connect(url)
                .await
                .map(|p| Opened::Postgres(Box::new(p))),
        }
        .map_err(|source| LocationError::Open {
            store: self.to_string(),
            source,
        })
    }
}

/// Why a store could not be found or opened.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error(
        "the store is a SQLite file path or a postgres://user:password@host/db URL; other connection strings are not supported"
    )]
    Unsupported,
    /// `RBTX_STORE_URL_FILE` names a file that cannot be read.
    #[error("{0}")]
    EnvFile(String),
    /// Opening failed; `store` is shown without a password.
    #[error("{store}: {source}")]
    Open { store: String, source: StoreError },
}

/// `with_store!(opened, |s| body)`: `body` with `s` bound to the store in `opened` (an
/// [`Opened`]), whichever backend it is. The body is compiled once per backend, so it may call
/// functions generic over [`Store`].
#[macro_export]
macro_rules! with_store {
    ($opened:expr, |$s:ident| $body:expr) => {
        match $opened {
            $crate::store::Opened::Sqlite($s) => $body,
            $crate::store::Opened::Postgres($s) => {
                let $s = *$s;
                $body
            }
        }
    };
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&super::postgres::redacted(url.expose())),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}
