//! The operator console, `/console/` on the intake's address: per tenant, the sync's status, the
//! latest activity, the dead letters (retry or discard one, several, or all that match) and a
//! preview of what a mapping would send. Pages are rendered on the server from templates compiled
//! into the binary, with every value escaped (a customer named `<script>` stays text); forms post
//! back to the server, and a page waiting for a retry refreshes itself. No JavaScript is needed.
//!
//! Who sees what is [`auth`]'s: without a token configured the console is not served at all.

pub mod auth;
mod links;
mod pages;
mod preview;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::store::Store;
use state::redirect;
pub use state::{Console, ConsoleTenant};

impl<S: Store + 'static> Console<S> {
    /// The console's routes, all under `/console/`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/console", get(|| async { redirect("/console/") }))
            .route("/console/", get(pages::status::<S>))
            .route(
                "/console/login",
                get(pages::login_form::<S>).post(pages::login::<S>),
            )
            .route("/console/logout", post(pages::logout::<S>))
            .route("/console/activity", get(pages::activity::<S>))
            .route("/console/dead-letters", get(pages::dead_letters::<S>))
            .route("/console/dead-letters/{id}", get(pages::dead_letter::<S>))
            .route("/console/dead-letters/retry", post(pages::retry::<S>))
            .route("/console/dead-letters/discard", post(pages::discard::<S>))
            .route("/console/events/{id}", get(pages::event::<S>))
            .route(
                "/console/preview",
                get(preview::form::<S>).post(preview::run::<S>),
            )
            .with_state(self)
    }
}
