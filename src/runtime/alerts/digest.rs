//! What is alerted, and a window's alerts of one tenant as one message: a subject, a plain text
//! (the e-mail's body and the webhook's `text`) and a JSON body for webhooks. Each item says what
//! failed, why, and where the console shows it.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

/// Items a digest lists one by one; the rest are counted.
pub const LISTED: usize = 20;

/// Something an operator should know of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// An event was moved to the dead letters: it waits for a fix and a replay.
    DeadLettered {
        tenant: String,
        entity: String,
        key: String,
        event: String,
        reason: String,
        mapping: Option<String>,
        field: Option<String>,
        dead_letter_id: i64,
    },
    /// An API refused the tenant's credentials (401, or Tripletex's session refused) or their
    /// rights (403).
    CredentialsRefused {
        tenant: String,
        /// `Tripletex` or `Rackbeat`.
        api: &'static str,
        message: String,
    },
    /// The tenant's oldest open event has waited longer than the tenant's `queue_age`.
    QueueStale {
        tenant: String,
        oldest_age: Duration,
        depth: u64,
    },
}

impl Alert {
    pub fn tenant(&self) -> &str {
        match self {
            Alert::DeadLettered { tenant, .. }
            | Alert::CredentialsRefused { tenant, .. }
            | Alert::QueueStale { tenant, .. } => tenant,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Alert::DeadLettered { .. } => "dead_lettered",
            Alert::CredentialsRefused { .. } => "credentials_refused",
            Alert::QueueStale { .. } => "queue_stale",
        }
    }

    /// What makes two alerts of a window the same: one dead letter failing again, one API
    /// refusing again, the queue still stale.
    fn same_as(&self) -> String {
        match self {
            Alert::DeadLettered { dead_letter_id, .. } => format!("dead letter {dead_letter_id}"),
            Alert::CredentialsRefused { api, .. } => format!("refused by {api}"),
            Alert::QueueStale { .. } => "queue".into(),
        }
    }
}

/// Whether the queue is stale: its oldest open event (received at `oldest_received_at`, unix
/// milliseconds) has waited `queue_age` or longer at `now_ms`.
pub fn queue_stale(
    tenant: &str,
    depth: u64,
    oldest_received_at: Option<i64>,
    now_ms: i64,
    queue_age: Duration,
) -> Option<Alert> {
    let waited = u64::try_from(now_ms - oldest_received_at?).unwrap_or(0);
    let oldest_age = Duration::from_millis(waited);
    (depth > 0 && oldest_age >= queue_age).then(|| Alert::QueueStale {
        tenant: tenant.into(),
        oldest_age,
        depth,
    })
}

/// Counts per kind, each alert once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub dead_lettered: u64,
    pub credentials_refused: u64,
    pub queue_stale: u64,
}

/// One tenant's alerts of one window.
#[derive(Debug, Clone)]
pub struct Digest {
    pub tenant: String,
    pub counts: Counts,
    /// The first [`LISTED`] alerts, in order; a stale queue is kept at its latest.
    items: Vec<Alert>,
    seen: HashSet<String>,
}

impl Digest {
    pub fn new(tenant: &str) -> Self {
        Digest {
            tenant: tenant.into(),
            counts: Counts::default(),
            items: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Adds `alert`; `false` when the window has it already (a stale queue is updated).
    pub fn add(&mut self, alert: Alert) -> bool {
        let same = alert.same_as();
        if !self.seen.insert(same) {
            if let Alert::QueueStale { .. } = alert
                && let Some(old) = self.items.iter_mut().find(|a| a.kind() == alert.kind())
            {
                *old = alert;
            }
            return false;
        }
        match alert {
            Alert::DeadLettered { .. } => self.counts.dead_lettered += 1,
            Alert::CredentialsRefused { .. } => self.counts.credentials_refused += 1,
            Alert::QueueStale { .. } => self.counts.queue_stale += 1,
        }
        // A refusal or a stale queue is news however many records failed before it.
        let listed_dead = self
            .items
            .iter()
            .filter(|a| a.kind() == "dead_lettered")
            .count();
        if !matches!(alert, Alert::DeadLettered { .. }) || listed_dead < LISTED {
            self.items.push(alert);
        }
        true
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `rbtx: 50 records failed for tenant fjord`, and so on.
    pub fn subject(&self) -> String {
        let mut parts = Vec::new();
        match self.counts.dead_lettered {
            0 => {}
            1 => parts.push("1 record failed".to_string()),
            n => parts.push(format!("{n} records failed")),
        }
        for a in &self.items {
            match a {
                Alert::CredentialsRefused { api, .. } => {
                    parts.push(format!("{api} refused the credentials"))
                }
                Alert::QueueStale { oldest_age, .. } => {
                    parts.push(format!("the queue is {} behind", age(*oldest_age)))
                }
                Alert::DeadLettered { .. } => {}
            }
        }
        format!("rbtx: {} for tenant {}", parts.join("; "), self.tenant)
    }

    /// The message as plain text; `console` is the console's base URL, when one is known.
    pub fn text(&self, console: Option<&str>) -> String {
        let mut out = format!("{}\n", self.subject());
        let tenant = &self.tenant;
        let dead: Vec<&Alert> = self
            .items
            .iter()
            .filter(|a| a.kind() == "dead_lettered")
            .collect();
        if !dead.is_empty() {
            let n = self.counts.dead_lettered;
            let what = if n == 1 { "record was" } else { "records were" };
            let _ = writeln!(
                out,
                "\n{n} {what} dead-lettered: they wait for a fix in the data or the mapping, then a replay (`rbtx dlq replay`)."
            );
        }
        for a in &self.items {
            let link = link(console, tenant, a);
            match a {
                Alert::DeadLettered {
                    entity,
                    key,
                    event,
                    reason,
                    mapping,
                    field,
                    dead_letter_id,
                    ..
                } => {
                    let _ = writeln!(out, "\n- {entity} {key} ({event})");
                    let _ = writeln!(out, "  why:     {reason}");
                    if let Some(m) = mapping {
                        let at = field.as_ref().map(|f| format!(", field {f}"));
                        let _ = writeln!(out, "  mapping: {m}{}", at.unwrap_or_default());
                    }
                    let _ = writeln!(out, "  details: `rbtx dlq show {dead_letter_id}`");
                    if let Some(link) = link {
                        let _ = writeln!(out, "  console: {link}");
                    }
                }
                Alert::CredentialsRefused { api, message, .. } => {
                    let _ = writeln!(out, "\n{api} refused the credentials of tenant {tenant}:");
                    let _ = writeln!(out, "  why:     {message}");
                    let _ = writeln!(
                        out,
                        "  fix:     renew the {api} tokens (the environment or the tenants file), restart, then replay the dead letters"
                    );
                    if let Some(link) = link {
                        let _ = writeln!(out, "  console: {link}");
                    }
                }
                Alert::QueueStale {
                    oldest_age, depth, ..
                } => {
                    let _ = writeln!(
                        out,
                        "\nThe queue of tenant {tenant} is behind: its oldest open event has waited {} ({depth} open).",
                        age(*oldest_age)
                    );
                    if let Some(link) = link {
                        let _ = writeln!(out, "  console: {link}");
                    }
                }
            }
        }
        let unlisted = self.counts.dead_lettered.saturating_sub(dead.len() as u64);
        if unlisted > 0 {
            let all = console
                .map(|c| format!(": {}", overview(c, tenant)))
                .unwrap_or_else(|| ": `rbtx dlq list`".into());
            let _ = writeln!(out, "\n... and {unlisted} more dead letters{all}");
        }
        out
    }

    /// The webhook's body: `text` for Slack and Teams, the same facts as data beside it.
    pub fn json(&self, console: Option<&str>) -> Value {
        let tenant = &self.tenant;
        let items: Vec<Value> = self
            .items
            .iter()
            .map(|a| {
                let link = link(console, tenant, a);
                match a {
                    Alert::DeadLettered {
                        entity,
                        key,
                        event,
                        reason,
                        mapping,
                        field,
                        dead_letter_id,
                        ..
                    } => json!({
                        "kind": a.kind(), "entity": entity, "key": key, "event": event,
                        "reason": reason, "mapping": mapping, "field": field,
                        "dead_letter_id": dead_letter_id, "link": link,
                    }),
                    Alert::CredentialsRefused { api, message, .. } => json!({
                        "kind": a.kind(), "api": api, "reason": message, "link": link,
                    }),
                    Alert::QueueStale {
                        oldest_age, depth, ..
                    } => json!({
                        "kind": a.kind(), "oldest_age_seconds": oldest_age.as_secs(),
                        "depth": depth, "link": link,
                    }),
                }
            })
            .collect();
        json!({
            "text": chat_text(&self.text(console)),
            "subject": self.subject(),
            "tenant": tenant,
            "counts": {
                "dead_lettered": self.counts.dead_lettered,
                "credentials_refused": self.counts.credentials_refused,
                "queue_stale": self.counts.queue_stale,
            },
            "alerts": items,
        })
    }
}

/// `text` as Slack and Teams show it as typed: `&`, `<` and `>` escaped, so a record named
/// `<!channel>` or `<https://…|here>` pings no one and disguises no link.
fn chat_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Where the console shows `alert`: its dead letter, or the tenant's overview.
fn link(console: Option<&str>, tenant: &str, alert: &Alert) -> Option<String> {
    let base = console?.trim_end_matches('/');
    Some(match alert {
        Alert::DeadLettered { dead_letter_id, .. } => format!(
            "{base}/console/dead-letters/{dead_letter_id}?tenant={}",
            crate::expr::filters::percent_encode(tenant)
        ),
        _ => overview(base, tenant),
    })
}

fn overview(console: &str, tenant: &str) -> String {
    format!(
        "{}/console/?tenant={}",
        console.trim_end_matches('/'),
        crate::expr::filters::percent_encode(tenant)
    )
}

/// `45 s`, `20 min`, `3 h 5 min`.
fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ if (s % 3600) / 60 == 0 => format!("{} h", s / 3600),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(id: i64) -> Alert {
        Alert::DeadLettered {
            tenant: "fjord".into(),
            entity: "product".into(),
            key: format!("P-{id}"),
            event: "product.created".into(),
            reason: "vatType.id: no VAT code for 7 %".into(),
            mapping: Some("mappings/rackbeat-to-tripletex/product.yaml".into()),
            field: Some("vatType.id".into()),
            dead_letter_id: id,
        }
    }

    #[test]
    fn a_storm_is_one_digest_that_counts_and_lists_the_first() {
        let mut d = Digest::new("fjord");
        for id in 1..=50 {
            assert!(d.add(dead(id)));
        }
        // A repeat of one dead letter, of a refusal, or of a stale queue counts once.
        assert!(!d.add(dead(7)));
        let refused = |message: &str| Alert::CredentialsRefused {
            tenant: "fjord".into(),
            api: "Tripletex",
            message: message.into(),
        };
        assert!(d.add(refused("POST /token/session/:create: 401")));
        assert!(!d.add(refused("again")));
        let stale = |secs| Alert::QueueStale {
            tenant: "fjord".into(),
            oldest_age: Duration::from_secs(secs),
            depth: 9,
        };
        assert!(d.add(stale(1200)));
        assert!(!d.add(stale(1500)));
        assert_eq!(
            d.counts,
            Counts {
                dead_lettered: 50,
                credentials_refused: 1,
                queue_stale: 1
            }
        );
        assert_eq!(
            d.subject(),
            "rbtx: 50 records failed; Tripletex refused the credentials; the queue is 25 min behind for tenant fjord"
        );
        let text = d.text(Some("http://rbtx.example:8470/"));
        assert_eq!(text.matches("\n- product ").count(), LISTED);
        assert!(text.contains("why:     vatType.id: no VAT code for 7 %"));
        assert!(
            text.contains("console: http://rbtx.example:8470/console/dead-letters/1?tenant=fjord")
        );
        assert!(text.contains(
            "... and 30 more dead letters: http://rbtx.example:8470/console/?tenant=fjord"
        ));
        assert!(text.contains("Tripletex refused the credentials of tenant fjord"));
        assert!(text.contains("has waited 25 min (9 open)"));
        let body = d.json(None);
        assert_eq!(body["counts"]["dead_lettered"], 50);
        assert_eq!(body["alerts"].as_array().map(Vec::len), Some(LISTED + 2));
        assert!(
            body["text"]
                .as_str()
                .is_some_and(|t| t.contains("`rbtx dlq show 1`"))
        );
        assert_eq!(body["alerts"][0]["link"], Value::Null);
    }

    #[test]
    fn a_record_named_like_markup_is_text_in_a_chat() {
        let mut d = Digest::new("fjord");
        let mut a = dead(1);
        if let Alert::DeadLettered { key, .. } = &mut a {
            *key = "<!channel> <https://evil.test|fix here> & co".into();
        }
        d.add(a);
        let body = d.json(None);
        let text = body["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("&lt;!channel&gt; &lt;https://evil.test|fix here&gt; &amp; co"),
            "{text}"
        );
        assert!(!text.contains("<!channel>"));
        assert_eq!(
            body["alerts"][0]["key"], "<!channel> <https://evil.test|fix here> & co",
            "the structured fields stay as they are"
        );
    }

    #[test]
    fn one_record_is_said_in_the_singular() {
        let mut d = Digest::new("nord fjell");
        d.add(dead(3));
        assert_eq!(d.subject(), "rbtx: 1 record failed for tenant nord fjell");
        assert!(
            d.text(Some("https://x"))
                .contains("https://x/console/dead-letters/3?tenant=nord%20fjell")
        );
    }

    #[test]
    fn the_queue_is_stale_once_its_oldest_event_is_old_enough() {
        let age = Duration::from_secs(900);
        let now = 10_000_000;
        assert_eq!(queue_stale("t", 5, None, now, age), None);
        assert_eq!(queue_stale("t", 5, Some(now - 899_999), now, age), None);
        assert_eq!(queue_stale("t", 0, Some(now - 900_000), now, age), None);
        assert_eq!(
            queue_stale("t", 5, Some(now - 900_000), now, age),
            Some(Alert::QueueStale {
                tenant: "t".into(),
                oldest_age: age,
                depth: 5
            })
        );
        // A clock behind the store's never makes a negative age.
        assert_eq!(queue_stale("t", 5, Some(now + 5), now, age), None);
    }
}
