//! The `WHERE` clauses of the console's reads, written once for both backends: SQLite and
//! PostgreSQL differ here only in how a parameter is numbered (`?1`, `$1`) and which `LIKE` folds
//! case. Only the filters given become conditions, so each backend's planner sees plain equalities
//! it can match to an index (a fixed `?1 IS NULL OR tenant = ?1` would defeat it).

use super::{ActivityFilter, DeadLetterFilter};

/// A query argument: the two kinds the filters use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

/// How a backend writes what differs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// Before a parameter's number.
    pub mark: char,
    /// The operator of a case-insensitive `LIKE`.
    pub like: &'static str,
}

pub(crate) const SQLITE: Dialect = Dialect {
    mark: '?',
    // SQLite's LIKE folds ASCII letters.
    like: "LIKE",
};

pub(crate) const POSTGRES: Dialect = Dialect {
    mark: '$',
    like: "ILIKE",
};

/// Conditions joined by `AND`, and their arguments in parameter order.
#[derive(Debug, Default)]
pub(crate) struct Where {
    conditions: Vec<String>,
    pub args: Vec<Arg>,
}

impl Where {
    /// Adds `arg` and returns its placeholder.
    fn arg(&mut self, dialect: Dialect, arg: Arg) -> String {
        self.args.push(arg);
        format!("{}{}", dialect.mark, self.args.len())
    }

    fn equals(&mut self, dialect: Dialect, column: &str, value: &Option<String>) {
        if let Some(v) = value {
            let p = self.arg(dialect, Arg::Text(v.clone()));
            self.conditions.push(format!("{column} = {p}"));
        }
    }

    /// Any of `columns` contains `text`, whatever its case.
    fn contains(&mut self, dialect: Dialect, columns: &[&str], text: &Option<String>) {
        let Some(text) = text.as_deref().filter(|t| !t.is_empty()) else {
            return;
        };
        let p = self.arg(dialect, Arg::Text(like_pattern(text)));
        let any = columns
            .iter()
            .map(|c| format!("{c} {} {p} ESCAPE '\\'", dialect.like))
            .collect::<Vec<_>>()
            .join(" OR ");
        self.conditions.push(format!("({any})"));
    }

    /// ` WHERE …`, or nothing when there are no conditions.
    pub fn sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// ` LIMIT ?n`, its argument added (0 is no limit: the largest the backends take).
    pub fn limit(&mut self, dialect: Dialect, limit: usize) -> String {
        let n = match limit {
            0 => i64::MAX,
            n => i64::try_from(n).unwrap_or(i64::MAX),
        };
        format!(" LIMIT {}", self.arg(dialect, Arg::Int(n)))
    }
}

/// `%text%` with the pattern's own characters escaped, so `_` and `%` match themselves.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The activity rows `filter` picks (the table unaliased).
pub(crate) fn activity(dialect: Dialect, filter: &ActivityFilter) -> Where {
    let mut w = Where::default();
    w.equals(dialect, "tenant", &filter.tenant);
    w.equals(dialect, "entity", &filter.entity);
    w.equals(dialect, "outcome", &filter.outcome);
    if let Some(id) = filter.event_id {
        let p = w.arg(dialect, Arg::Int(id));
        w.conditions.push(format!("event_id = {p}"));
    }
    w.contains(dialect, &["key", "event", "message"], &filter.text);
    if let Some(id) = filter.before_id {
        let p = w.arg(dialect, Arg::Int(id));
        w.conditions.push(format!("id < {p}"));
    }
    w
}

/// The dead letters `filter` picks, `d` joined to its event `e`; with `paged`, only those after
/// the letter `before_id` in the listing's order (latest failure first, then the higher id).
pub(crate) fn dead_letters(dialect: Dialect, filter: &DeadLetterFilter, paged: bool) -> Where {
    let mut w = Where::default();
    w.equals(dialect, "e.tenant", &filter.tenant);
    w.equals(dialect, "e.entity", &filter.entity);
    w.contains(
        dialect,
        &["e.key", "d.reason", "d.mapping", "d.field"],
        &filter.text,
    );
    if let (Some(id), true) = (filter.before_id, paged) {
        let p = w.arg(dialect, Arg::Int(id));
        w.conditions.push(format!(
            "(d.last_failed_at, d.id) < (SELECT last_failed_at, id FROM dead_letters WHERE id = {p})"
        ));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_filters_given_become_conditions() {
        let w = activity(SQLITE, &ActivityFilter::default());
        assert_eq!((w.sql(), w.args.len()), (String::new(), 0));
        let filter = ActivityFilter {
            tenant: Some("t1".into()),
            text: Some("50%_off".into()),
            before_id: Some(9),
            ..ActivityFilter::default()
        };
        let mut w = activity(POSTGRES, &filter);
        let limit = w.limit(POSTGRES, 0);
        assert_eq!(
            w.sql(),
            " WHERE tenant = $1 AND (key ILIKE $2 ESCAPE '\\' OR event ILIKE $2 ESCAPE '\\' \
             OR message ILIKE $2 ESCAPE '\\') AND id < $3"
        );
        assert_eq!(limit, " LIMIT $4");
        assert_eq!(
            w.args,
            [
                Arg::Text("t1".into()),
                Arg::Text("%50\\%\\_off%".into()),
                Arg::Int(9),
                Arg::Int(i64::MAX)
            ]
        );
    }
}
