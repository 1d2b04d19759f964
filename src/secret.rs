//! Credentials: tokens and passwords read from the environment or a file, never from YAML, and never
//! shown in `Debug`, `Display`, logs or errors.

use std::fmt;

/// A credential. It never appears in `Debug`, `Display`, logs or errors; `expose` is the one way
/// to read it, at the place it goes on the wire.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from the environment variable `var`, or from the file named by `{var}_FILE`.
    pub fn from_env(var: &str) -> Result<Option<Secret>, String> {
        if let Ok(v) = std::env::var(var) {
            return Ok(Some(Secret(v.trim().to_string())));
        }
        match std::env::var(format!("{var}_FILE")) {
            Ok(path) => std::fs::read_to_string(&path)
                .map(|v| Some(Secret(v.trim().to_string())))
                .map_err(|e| format!("{var}_FILE={path}: {e}")),
            Err(_) => Ok(None),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("eyJhbGciOi.super-secret");
        assert_eq!(format!("{s}"), "[redacted]");
        assert!(!format!("{s:?}").contains("super-secret"));
    }
}
