//! Fault injection for the sandboxes: seeded and reproducible. A fault applies to a request with
//! the configured probability, drawn from one seeded generator per sandbox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// What to inject, and how often (rates are probabilities between 0 and 1).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the generator that decides which requests get a fault.
    pub seed: u64,
    /// Extra latency added to every request.
    pub latency_ms: u64,
    /// Share of requests answered 429.
    pub rate_429: f64,
    /// Share of requests answered 500/502/503.
    pub rate_5xx: f64,
    /// Share of requests whose connection is dropped without an answer.
    pub rate_drop: f64,
    /// Share of requests that hang for `timeout_ms` before being answered normally.
    pub rate_timeout: f64,
    pub timeout_ms: u64,
    /// Apply faults only to requests that write (POST/PUT/DELETE).
    pub writes_only: bool,
    /// Apply faults only to requests whose path contains this (`/:invoice`), to fail one step of
    /// a sync while the others go through.
    pub only_paths_containing: Option<String>,
}

/// The fault chosen for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    TooManyRequests,
    ServerError(u16),
    Drop,
    Slow(Duration),
}

/// A seeded fault source; cheap to clone, shared by a sandbox's handlers.
#[derive(Debug, Clone)]
pub struct Faults {
    config: Arc<Mutex<FaultConfig>>,
    rng: Arc<Mutex<StdRng>>,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Faults {
            config: Arc::new(Mutex::new(config)),
            rng: Arc::new(Mutex::new(rng)),
        }
    }

    /// Replaces the configuration (the admin surface does this), reseeding the generator.
    pub fn set(&self, config: FaultConfig) {
        if let Ok(mut rng) = self.rng.lock() {
            *rng = StdRng::seed_from_u64(config.seed);
        }
        if let Ok(mut c) = self.config.lock() {
            *c = config;
        }
    }

    pub fn config(&self) -> FaultConfig {
        self.config.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Draws the fault for one request.
    pub fn draw(&self, is_write: bool, path: &str) -> (Fault, Duration) {
        let c = self.config();
        let latency = Duration::from_millis(c.latency_ms);
        if c.writes_only && !is_write {
            return (Fault::None, latency);
        }
        if c.only_paths_containing
            .as_deref()
            .is_some_and(|p| !path.contains(p))
        {
            return (Fault::None, latency);
        }
        let Ok(mut rng) = self.rng.lock() else {
            return (Fault::None, latency);
        };
        let x: f64 = rng.random();
        let mut edge = c.rate_429;
        if x < edge {
            return (Fault::TooManyRequests, latency);
        }
        edge += c.rate_5xx;
        if x < edge {
            let code = [500, 502, 503][rng.random_range(0..3)];
            return (Fault::ServerError(code), latency);
        }
        edge += c.rate_drop;
        if x < edge {
            return (Fault::Drop, latency);
        }
        edge += c.rate_timeout;
        if x < edge {
            return (Fault::Slow(Duration::from_millis(c.timeout_ms)), latency);
        }
        (Fault::None, latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let cfg = FaultConfig {
            seed: 7,
            rate_429: 0.3,
            rate_5xx: 0.3,
            ..Default::default()
        };
        let (a, b) = (Faults::new(cfg.clone()), Faults::new(cfg));
        let xs: Vec<_> = (0..50).map(|_| a.draw(true, "/product").0).collect();
        let ys: Vec<_> = (0..50).map(|_| b.draw(true, "/product").0).collect();
        assert_eq!(xs, ys);
        assert!(xs.contains(&Fault::TooManyRequests) && xs.contains(&Fault::None));
    }

    #[test]
    fn a_fault_can_be_kept_to_one_kind_of_path() {
        let f = Faults::new(FaultConfig {
            rate_5xx: 1.0,
            only_paths_containing: Some("/:invoice".into()),
            ..Default::default()
        });
        assert_eq!(f.draw(true, "/v2/order").0, Fault::None);
        assert!(matches!(
            f.draw(true, "/v2/order/7/:invoice").0,
            Fault::ServerError(_)
        ));
    }
}
