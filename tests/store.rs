//! The store's contract, written once over `S: Store` and run against every backend.
//!
//! Each test below is a generic function; `store_tests!` lists them once, and each backend
//! instantiates that list with its own constructor (`sqlite_suite!`, `postgres_suite!`). Time is
//! passed in, never slept. Each PostgreSQL test gets a database of its own (`support::postgres`).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rbtx::secret::Secret;
use rbtx::store::postgres::PostgresStore;
use rbtx::store::sqlite::SqliteStore;
use rbtx::store::{
    ActivityCounts, ActivityFilter, Binding, DeadLetterFilter, Location, NewActivity, NewEvent,
    QueueSummary, Store,
};
use serde_json::json;

const LEASE_MS: i64 = 30_000;

fn event(tenant: &str, key: &str, name: &str, n: i64) -> NewEvent {
    NewEvent {
        tenant: tenant.into(),
        entity: "product".into(),
        key: key.into(),
        event: name.into(),
        payload: json!({ "key_name": "number", "key": key, "n": n }),
        received_at: 1_700_000_000_000 + n,
    }
}

fn binding(key: &str, target_id: i64, version: Option<i64>) -> Binding {
    Binding {
        tenant: "t1".into(),
        direction: "rackbeat_to_tripletex".into(),
        entity: "product".into(),
        source_key: key.into(),
        target_id: json!(target_id),
        version,
        body_hash: Some(format!("hash-{target_id}-{version:?}")),
        body: Some(json!({ "name": format!("Product {key}"), "price": { "net": target_id } })),
        updated_at: 1_700_000_000_000,
    }
}

async fn migrations_are_idempotent<S: Store>(s: &S) {
    assert_eq!(s.pending_migrations().await.unwrap(), 0);
    assert_eq!(
        s.migrate().await.unwrap(),
        0,
        "the suite's store is already migrated"
    );
    s.enqueue(event("t1", "P1", "product.created", 1))
        .await
        .unwrap();
    assert_eq!(s.migrate().await.unwrap(), 0);
    assert_eq!(
        s.queue_depth().await.unwrap(),
        1,
        "migrating again keeps the data"
    );
}

async fn a_batch_is_enqueued_in_order<S: Store>(s: &S) {
    let batch = vec![
        event("t1", "A", "product.created", 1),
        event("t1", "B", "product.created", 2),
        event("t1", "A", "product.updated", 3),
    ];
    let ids = s.enqueue_many(batch).await.unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    // The two events of A coalesce to the later one.
    let claimed = s.claim(None, "w1", 10, 10, LEASE_MS).await.unwrap();
    let mut got: Vec<(String, String)> = claimed
        .iter()
        .map(|e| (e.key.clone(), e.event.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("A".into(), "product.updated".into()),
            ("B".into(), "product.created".into())
        ]
    );
}

async fn enqueue_claim_complete<S: Store>(s: &S) {
    let new = event("t1", "P1", "product.created", 1);
    let id = s.enqueue(new.clone()).await.unwrap();
    assert_eq!(s.queue_depth().await.unwrap(), 1);

    let claimed = s.claim(None, "w1", 10, 0, LEASE_MS).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let e = &claimed[0];
    assert_eq!(e.id, id);
    assert_eq!(
        (&e.tenant, &e.entity, &e.key, &e.event),
        (&new.tenant, &new.entity, &new.key, &new.event)
    );
    assert_eq!(e.payload, new.payload);
    assert_eq!(e.received_at, new.received_at);
    assert_eq!(e.attempts, 0);

    assert!(
        s.claim(None, "w2", 10, 1, LEASE_MS)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert_eq!(
        s.queue_depth().await.unwrap(),
        1,
        "claimed work still counts"
    );
    assert!(
        !s.complete(id, "w2").await.unwrap(),
        "only the lease holder completes"
    );
    assert!(s.complete(id, "w1").await.unwrap());
    assert!(
        !s.complete(id, "w1").await.unwrap(),
        "completing twice is refused"
    );
    assert_eq!(s.queue_depth().await.unwrap(), 0);
    assert!(
        s.claim(None, "w1", 10, 2, LEASE_MS)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn claims_can_be_limited_to_one_tenant<S: Store>(s: &S) {
    let a = s
        .enqueue(event("t1", "P1", "product.updated", 1))
        .await
        .unwrap();
    let b = s
        .enqueue(event("t2", "P1", "product.updated", 2))
        .await
        .unwrap();
    let t2 = s.claim(Some("t2"), "w1", 10, 0, LEASE_MS).await.unwrap();
    assert_eq!(t2.iter().map(|e| e.id).collect::<Vec<_>>(), [b]);
    let any = s.claim(None, "w2", 10, 0, LEASE_MS).await.unwrap();
    assert_eq!(
        any.iter().map(|e| e.id).collect::<Vec<_>>(),
        [a],
        "same key, other tenant"
    );
}

async fn ten_updates_to_one_key_coalesce_to_the_latest<S: Store>(s: &S) {
    let mut last = 0;
    for n in 1..=10 {
        last = s
            .enqueue(event("t1", "P1", "product.updated", n))
            .await
            .unwrap();
    }
    let other = s
        .enqueue(event("t1", "P2", "product.updated", 11))
        .await
        .unwrap();
    assert_eq!(s.queue_depth().await.unwrap(), 11);

    let claimed = s.claim(None, "w1", 10, 0, LEASE_MS).await.unwrap();
    let ids: Vec<i64> = claimed.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        [last, other],
        "one event per key, the oldest waiting key first"
    );
    assert_eq!(claimed[0].payload["n"], 10, "the latest state of P1");
    assert_eq!(
        s.queue_depth().await.unwrap(),
        2,
        "the nine older updates are superseded"
    );

    for e in &claimed {
        assert!(s.complete(e.id, "w1").await.unwrap());
    }
    assert_eq!(s.queue_depth().await.unwrap(), 0);
    assert!(
        s.claim(None, "w1", 10, 1, LEASE_MS)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn two_keys_run_concurrently_but_one_key_never_twice<S: Store>(s: &S) {
    let p1 = s
        .enqueue(event("t1", "P1", "product.updated", 1))
        .await
        .unwrap();
    let p2 = s
        .enqueue(event("t1", "P2", "product.updated", 2))
        .await
        .unwrap();

    let w1 = s.claim(None, "w1", 1, 0, LEASE_MS).await.unwrap();
    let w2 = s.claim(None, "w2", 1, 0, LEASE_MS).await.unwrap();
    assert_eq!(w1.iter().map(|e| e.id).collect::<Vec<_>>(), [p1]);
    assert_eq!(
        w2.iter().map(|e| e.id).collect::<Vec<_>>(),
        [p2],
        "another key, at once"
    );

    // A newer event for P1 waits while w1 holds P1, even for another worker.
    let p1_again = s
        .enqueue(event("t1", "P1", "product.updated", 3))
        .await
        .unwrap();
    assert!(
        s.claim(None, "w3", 10, 1, LEASE_MS)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.complete(p1, "w1").await.unwrap());
    let w3 = s.claim(None, "w3", 10, 2, LEASE_MS).await.unwrap();
    assert_eq!(w3.iter().map(|e| e.id).collect::<Vec<_>>(), [p1_again]);
}

async fn workers_racing_never_share_a_key<S: Store>(s: &S) {
    const KEYS: i64 = 5;
    const EVENTS: i64 = 60;
    let producing = AtomicBool::new(true);
    let in_flight = Mutex::new(HashSet::new());
    let handled = Mutex::new(Vec::new());

    let producer = async {
        for n in 0..EVENTS {
            let key = format!("P{}", n % KEYS);
            s.enqueue(event("t1", &key, "product.updated", n))
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
        producing.store(false, Ordering::SeqCst);
    };
    let worker = |name: &'static str| {
        let (producing, in_flight, handled) = (&producing, &in_flight, &handled);
        async move {
            loop {
                let batch = s.claim(None, name, 2, 0, LEASE_MS).await.unwrap();
                if batch.is_empty() {
                    if !producing.load(Ordering::SeqCst) && s.queue_depth().await.unwrap() == 0 {
                        break;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                for e in batch {
                    let fresh = in_flight.lock().unwrap().insert(e.key.clone());
                    assert!(fresh, "{} claimed by two workers at once", e.key);
                    tokio::task::yield_now().await;
                    in_flight.lock().unwrap().remove(&e.key);
                    handled.lock().unwrap().push((e.key.clone(), e.id));
                    assert!(s.complete(e.id, name).await.unwrap());
                }
            }
        }
    };
    tokio::join!(producer, worker("w1"), worker("w2"), worker("w3"));

    let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (key, id) in handled.into_inner().unwrap() {
        per_key.entry(key).or_default().push(id);
    }
    assert_eq!(per_key.len(), KEYS as usize);
    for (key, ids) in &per_key {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {ids:?}"
        );
    }
    // The last event of each key was handled, so every key ends in its latest state.
    let last_ids: HashSet<i64> = per_key
        .values()
        .filter_map(|ids| ids.last().copied())
        .collect();
    assert_eq!(last_ids.len(), KEYS as usize);
    assert_eq!(
        *last_ids.iter().max().unwrap(),
        EVENTS,
        "ids start at 1 on a fresh store"
    );
    assert_eq!(s.queue_depth().await.unwrap(), 0);
}

async fn events_of_one_key_are_handed_out_in_order<S: Store>(s: &S) {
    let created = s
        .enqueue(event("t1", "P1", "product.created", 1))
        .await
        .unwrap();
    let first = s.claim(None, "w1", 10, 0, LEASE_MS).await.unwrap();
    assert_eq!(first[0].id, created);

    // Arrives while the create is being applied: it waits, then follows.
    let updated = s
        .enqueue(event("t1", "P1", "product.updated", 2))
        .await
        .unwrap();
    assert!(
        s.claim(None, "w2", 10, 1, LEASE_MS)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.complete(created, "w1").await.unwrap());
    let second = s.claim(None, "w2", 10, 2, LEASE_MS).await.unwrap();
    assert_eq!(second[0].id, updated);
    assert_eq!(second[0].event, "product.updated");
    assert!(s.complete(updated, "w2").await.unwrap());

    let deleted = s
        .enqueue(event("t1", "P1", "product.deleted", 3))
        .await
        .unwrap();
    let third = s.claim(None, "w1", 10, 3, LEASE_MS).await.unwrap();
    assert_eq!(third[0].id, deleted);
}

async fn an_expired_lease_makes_the_event_claimable_again<S: Store>(s: &S) {
    let id = s
        .enqueue(event("t1", "P1", "product.updated", 1))
        .await
        .unwrap();
    assert_eq!(s.claim(None, "w1", 1, 0, 1_000).await.unwrap()[0].id, id);
    assert!(s.claim(None, "w2", 1, 999, 1_000).await.unwrap().is_empty());

    // w1 crashed; at the lease's end w2 takes the event over.
    let again = s.claim(None, "w2", 1, 1_000, 1_000).await.unwrap();
    assert_eq!(again.iter().map(|e| e.id).collect::<Vec<_>>(), [id]);
    assert!(
        !s.complete(id, "w1").await.unwrap(),
        "the old holder lost its lease"
    );
    assert!(!s.retry(id, "w1", "late", 0).await.unwrap());
    assert_eq!(
        s.dead_letter(id, "w1", "late", None, None, 0, None)
            .await
            .unwrap(),
        None
    );
    assert!(s.complete(id, "w2").await.unwrap());
    assert_eq!(s.queue_depth().await.unwrap(), 0);
}

async fn retry_waits_for_not_before<S: Store>(s: &S) {
    let id = s
        .enqueue(event("t1", "P1", "product.updated", 1))
        .await
        .unwrap();
    s.claim(None, "w1", 1, 0, LEASE_MS).await.unwrap();
    assert!(
        s.retry(id, "w1", "503 from Tripletex", 5_000)
            .await
            .unwrap()
    );
    assert!(
        !s.retry(id, "w1", "again", 5_000).await.unwrap(),
        "no longer claimed"
    );
    assert_eq!(s.queue_depth().await.unwrap(), 1);

    assert!(
        s.claim(None, "w1", 1, 4_999, LEASE_MS)
            .await
            .unwrap()
            .is_empty()
    );
    let due = s.claim(None, "w1", 1, 5_000, LEASE_MS).await.unwrap();
    assert_eq!(
        due.iter().map(|e| (e.id, e.attempts)).collect::<Vec<_>>(),
        [(id, 1)]
    );
    assert!(s.retry(id, "w1", "503 again", 20_000).await.unwrap());

    // A newer event for the key is due now and carries the latest state: it replaces the retry.
    let newer = s
        .enqueue(event("t1", "P1", "product.updated", 2))
        .await
        .unwrap();
    let claimed = s.claim(None, "w1", 10, 6_000, LEASE_MS).await.unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|e| (e.id, e.attempts))
            .collect::<Vec<_>>(),
        [(newer, 0)]
    );
    assert!(s.complete(newer, "w1").await.unwrap());
    assert_eq!(
        s.queue_depth().await.unwrap(),
        0,
        "the scheduled retry was superseded"
    );
}

async fn dead_letter_then_replay<S: Store>(s: &S) {
    let new = event("t1", "P1", "product.updated", 1);
    let id = s.enqueue(new.clone()).await.unwrap();
    s.claim(None, "w1", 1, 0, LEASE_MS).await.unwrap();
    s.retry(id, "w1", "503", 0).await.unwrap();
    s.claim(None, "w1", 1, 0, LEASE_MS).await.unwrap();
    let reason = "422 validation: vatType.id is required";
    let dl = s
        .dead_letter(
            id,
            "w1",
            reason,
            Some("rackbeat-to-tripletex/product"),
            Some("vatType.id"),
            77,
            None,
        )
        .await
        .unwrap()
        .expect("w1 holds the lease");
    assert_eq!(s.queue_depth().await.unwrap(), 0);
    assert!(
        s.claim(None, "w1", 10, 100, LEASE_MS)
            .await
            .unwrap()
            .is_empty()
    );

    let listed = s.list_dead_letters().await.unwrap();
    assert_eq!(listed.len(), 1);
    let d = &listed[0];
    assert_eq!((d.id, d.event.id, d.event.attempts), (dl, id, 1));
    assert_eq!(d.event.payload, new.payload);
    assert_eq!(d.reason, reason);
    assert_eq!(d.mapping.as_deref(), Some("rackbeat-to-tripletex/product"));
    assert_eq!(d.field.as_deref(), Some("vatType.id"));
    assert_eq!(d.failed_at, 77);
    assert_eq!(s.get_dead_letter(dl).await.unwrap().as_ref(), Some(d));
    assert_eq!(s.get_dead_letter(dl + 1000).await.unwrap(), None);

    assert!(s.replay(dl).await.unwrap());
    assert!(!s.replay(dl).await.unwrap(), "already replayed");
    assert!(s.list_dead_letters().await.unwrap().is_empty());
    let again = s.claim(None, "w1", 10, 200, LEASE_MS).await.unwrap();
    assert_eq!(
        again.iter().map(|e| (e.id, e.attempts)).collect::<Vec<_>>(),
        [(id, 0)]
    );
    assert!(s.complete(id, "w1").await.unwrap());

    for (key, n) in [("P2", 2), ("P3", 3)] {
        s.enqueue(event("t1", key, "product.updated", n))
            .await
            .unwrap();
    }
    for e in s.claim(None, "w1", 10, 300, LEASE_MS).await.unwrap() {
        s.dead_letter(e.id, "w1", "403", None, None, 300, None)
            .await
            .unwrap();
    }
    assert_eq!(s.list_dead_letters().await.unwrap().len(), 2);
    assert_eq!(s.replay_all(None).await.unwrap(), 2);
    assert_eq!(s.replay_all(None).await.unwrap(), 0);
    assert_eq!(s.queue_depth().await.unwrap(), 2);
}

async fn failures_outside_the_queue_are_dead_lettered_once_per_record<S: Store>(s: &S) {
    let mut failed = event("t1", "C1", "initial_sync", 1);
    failed.entity = "customer".into();
    let first = s
        .put_dead_letter(
            failed.clone(),
            "422 name",
            Some("customer.yaml"),
            Some("name"),
            None,
        )
        .await
        .unwrap();
    // The same record failing again replaces its dead letter instead of adding one.
    failed.payload = json!({ "n": 2 });
    let second = s
        .put_dead_letter(failed.clone(), "422 again", None, None, None)
        .await
        .unwrap();
    let listed = s.list_dead_letters().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, second);
    assert_ne!(first, second);
    assert_eq!(listed[0].reason, "422 again");
    assert_eq!(listed[0].event.payload, json!({ "n": 2 }));
    assert_eq!(listed[0].event.event, "initial_sync");
    assert_eq!(
        s.queue_depth().await.unwrap(),
        0,
        "a dead letter is not open"
    );

    // Another record's dead letter, and the same key's under another event name, stay.
    let mut other = failed.clone();
    other.key = "C2".into();
    s.put_dead_letter(other, "403", None, None, None)
        .await
        .unwrap();
    let mut webhook = failed.clone();
    webhook.event = "customer.updated".into();
    s.put_dead_letter(webhook, "403", None, None, None)
        .await
        .unwrap();
    assert_eq!(
        s.discard_dead_letters("t1", "customer", "C1", "initial_sync")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.discard_dead_letters("t1", "customer", "C1", "initial_sync")
            .await
            .unwrap(),
        0
    );
    let keys: Vec<_> = s
        .list_dead_letters()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.event.key, d.event.event))
        .collect();
    assert_eq!(
        keys,
        [
            ("C2".to_string(), "initial_sync".to_string()),
            ("C1".to_string(), "customer.updated".to_string())
        ]
    );

    // Replayed, it is queued like any event.
    let c2 = s.list_dead_letters().await.unwrap()[0].id;
    assert!(s.replay(c2).await.unwrap());
    let claimed = s.claim(Some("t1"), "w1", 10, 0, LEASE_MS).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].key.as_str(), claimed[0].attempts), ("C2", 0));
}

async fn a_released_event_is_claimable_at_once_with_its_attempts<S: Store>(s: &S) {
    let id = s
        .enqueue(event("t1", "R1", "product.created", 1))
        .await
        .unwrap();
    let claimed = s.claim(None, "w1", 10, 100, LEASE_MS).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        !s.release(id, "w2").await.unwrap(),
        "only the holder releases"
    );
    assert!(s.release(id, "w1").await.unwrap());
    assert!(!s.release(id, "w1").await.unwrap(), "released once");
    // Well before the lease would have ended, another worker takes it, attempts unchanged.
    let again = s.claim(None, "w2", 10, 101, LEASE_MS).await.unwrap();
    assert_eq!(
        again.iter().map(|e| (e.id, e.attempts)).collect::<Vec<_>>(),
        [(id, 0)]
    );
    assert!(!s.complete(id, "w1").await.unwrap());
    assert!(s.complete(id, "w2").await.unwrap());
}

async fn a_key_can_be_claimed_for_inline_work_unless_held<S: Store>(s: &S) {
    let mut dep = event("t1", "C1", "dependency", 1);
    dep.entity = "customer".into();
    // An update of the key waiting in the queue is superseded: the inline work reads the latest.
    let mut waiting = dep.clone();
    waiting.event = "customer.updated".into();
    s.enqueue(waiting).await.unwrap();
    let id = s
        .claim_key(dep.clone(), "w1", 100, LEASE_MS)
        .await
        .unwrap()
        .expect("free key");
    assert!(
        s.claim(None, "w2", 10, 101, LEASE_MS)
            .await
            .unwrap()
            .is_empty(),
        "the key is held, and its older event superseded"
    );
    assert_eq!(
        s.claim_key(dep.clone(), "w2", 102, LEASE_MS).await.unwrap(),
        None,
        "held by w1"
    );
    assert!(s.complete(id, "w1").await.unwrap());
    assert_eq!(s.queue_depth().await.unwrap(), 0);

    // A key a worker is applying an event of cannot be taken inline.
    let mut queued = dep.clone();
    queued.event = "customer.created".into();
    s.enqueue(queued).await.unwrap();
    let claimed = s.claim(None, "w3", 10, 200, LEASE_MS).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        s.claim_key(dep.clone(), "w1", 201, LEASE_MS).await.unwrap(),
        None
    );
    // The worker that holds the key (a later event of its own batch) takes it inline: that
    // event is superseded, so the record is not synced twice at once.
    let id = s
        .claim_key(dep.clone(), "w3", 202, LEASE_MS)
        .await
        .unwrap()
        .expect("its own key");
    assert!(
        !s.complete(claimed[0].id, "w3").await.unwrap(),
        "superseded"
    );
    assert!(s.complete(id, "w3").await.unwrap());
    // Released inline work stays queued for a worker to do.
    let id = s
        .claim_key(dep, "w1", 300, LEASE_MS)
        .await
        .unwrap()
        .expect("free again");
    assert!(s.release(id, "w1").await.unwrap());
    let later = s.claim(None, "w4", 10, 301, LEASE_MS).await.unwrap();
    assert_eq!(later.iter().map(|e| e.id).collect::<Vec<_>>(), [id]);
}

async fn bindings_upsert_and_move<S: Store>(s: &S) {
    let (t, d, e) = ("t1", "rackbeat_to_tripletex", "product");
    assert_eq!(s.get_binding(t, d, e, "P1").await.unwrap(), None);

    s.put_binding(binding("P1", 101, Some(1))).await.unwrap();
    assert_eq!(
        s.get_binding(t, d, e, "P1").await.unwrap(),
        Some(binding("P1", 101, Some(1)))
    );
    s.put_binding(binding("P1", 101, Some(2))).await.unwrap();
    assert_eq!(
        s.get_binding(t, d, e, "P1").await.unwrap(),
        Some(binding("P1", 101, Some(2)))
    );
    let mut no_version = binding("P1", 101, None);
    no_version.body_hash = None;
    no_version.target_id = json!("uuid-101");
    s.put_binding(no_version.clone()).await.unwrap();
    assert_eq!(
        s.get_binding(t, d, e, "P1").await.unwrap(),
        Some(no_version.clone())
    );
    for other in [
        ("t2", d, e),
        (t, "tripletex_to_rackbeat", e),
        (t, d, "customer"),
    ] {
        assert_eq!(
            s.get_binding(other.0, other.1, other.2, "P1")
                .await
                .unwrap(),
            None
        );
    }

    // Renumbering P1 to P9 keeps the Tripletex record.
    assert!(s.move_binding(t, d, e, "P1", "P9").await.unwrap());
    assert_eq!(s.get_binding(t, d, e, "P1").await.unwrap(), None);
    let moved = s.get_binding(t, d, e, "P9").await.unwrap().unwrap();
    assert_eq!(
        moved,
        Binding {
            source_key: "P9".into(),
            ..no_version
        }
    );
    assert!(
        !s.move_binding(t, d, e, "P1", "P10").await.unwrap(),
        "nothing at P1 any more"
    );
    assert_eq!(s.get_binding(t, d, e, "P10").await.unwrap(), None);

    // Onto a key that is already bound: the moved binding wins.
    s.put_binding(binding("P2", 102, Some(1))).await.unwrap();
    assert!(s.move_binding(t, d, e, "P9", "P2").await.unwrap());
    assert_eq!(
        s.get_binding(t, d, e, "P2")
            .await
            .unwrap()
            .unwrap()
            .target_id,
        json!("uuid-101")
    );
    assert!(
        s.move_binding(t, d, e, "P2", "P2").await.unwrap(),
        "moving onto itself keeps it"
    );
    assert!(s.get_binding(t, d, e, "P2").await.unwrap().is_some());
}

async fn checkpoints_are_kept_per_tenant<S: Store>(s: &S) {
    assert_eq!(
        s.get_checkpoint("t1", "rackbeat.products").await.unwrap(),
        None
    );
    s.set_checkpoint("t1", "rackbeat.products", "2024-05-01T10:00:00Z")
        .await
        .unwrap();
    s.set_checkpoint("t1", "rackbeat.customers", "c")
        .await
        .unwrap();
    assert_eq!(
        s.get_checkpoint("t1", "rackbeat.products")
            .await
            .unwrap()
            .as_deref(),
        Some("2024-05-01T10:00:00Z")
    );
    s.set_checkpoint("t1", "rackbeat.products", "2024-05-02T10:00:00Z")
        .await
        .unwrap();
    assert_eq!(
        s.get_checkpoint("t1", "rackbeat.products")
            .await
            .unwrap()
            .as_deref(),
        Some("2024-05-02T10:00:00Z")
    );
    assert_eq!(
        s.get_checkpoint("t2", "rackbeat.products").await.unwrap(),
        None
    );
    assert_eq!(
        s.get_checkpoint("t1", "rackbeat.customers")
            .await
            .unwrap()
            .as_deref(),
        Some("c")
    );
}

/// The token of one tenant's subscription to one event, as `Secret`s that never print.
async fn token<S: Store>(s: &S, tenant: &str, event: &str) -> Option<String> {
    let got = s.get_webhook_token(tenant, event).await.unwrap();
    if let Some(t) = &got {
        assert!(!format!("{got:?}").contains(t.expose()), "a token in Debug");
    }
    got.map(|t| t.expose().to_string())
}

async fn webhook_tokens_are_kept_per_tenant_and_event<S: Store>(s: &S) {
    assert_eq!(token(s, "t1", "product.updated").await, None);
    for (tenant, event, value) in [
        ("t1", "product.updated", "tok-1"),
        ("t1", "product.created", "tok-2"),
        ("t2", "product.updated", "tok-3"),
    ] {
        s.put_webhook_token(tenant, event, &Secret::new(value))
            .await
            .unwrap();
    }
    assert_eq!(
        token(s, "t1", "product.updated").await.as_deref(),
        Some("tok-1")
    );
    assert_eq!(
        token(s, "t1", "product.created").await.as_deref(),
        Some("tok-2")
    );
    assert_eq!(
        token(s, "t2", "product.updated").await.as_deref(),
        Some("tok-3")
    );
    // Subscribing again hands out a new token, which replaces the old one.
    s.put_webhook_token("t1", "product.updated", &Secret::new("tok-4"))
        .await
        .unwrap();
    assert_eq!(
        token(s, "t1", "product.updated").await.as_deref(),
        Some("tok-4")
    );
    assert_eq!(
        s.get_checkpoint("t1", "webhook token product.updated")
            .await
            .unwrap(),
        None,
        "tokens are not checkpoints"
    );
}

/// Checkpoint rows as versions before 3 wrote them: webhook tokens among the sync's positions.
const OLD_CHECKPOINTS: [(&str, &str, &str); 3] = [
    ("t1", "webhook token product.updated", "tok-old-1"),
    ("t2", "webhook token customer.created", "tok-old-2"),
    ("t1", "catch-up product /products", "2024-05-01 10:00:00"),
];

/// After migrating a store made by version 2 with `OLD_CHECKPOINTS` in it: the tokens are read
/// through `get_webhook_token`, gone from the checkpoints, and the other checkpoint is untouched.
/// A dead letter written before repeats were counted (no `last_failed_at`), in SQL both
/// backends take.
const OLD_DEAD_LETTER: &str = "
    INSERT INTO events (tenant, entity, key, event, payload, received_at, state)
        VALUES ('t1', 'product', 'OLD', 'product.updated', '{}', 5, 'dead');
    INSERT INTO dead_letters (event_id, reason, failed_at)
        SELECT id, '422 old', 7 FROM events WHERE key = 'OLD';";

/// The letter of [`OLD_DEAD_LETTER`] after the migrations: its latest failure is its first, and
/// it has no detail.
async fn an_old_dead_letter_is_found_latest_failure_first<S: Store>(s: &S) {
    let (letters, total) = s
        .find_dead_letters(&DeadLetterFilter::default())
        .await
        .unwrap();
    assert_eq!(total, 1);
    let d = &letters[0];
    assert_eq!(
        (
            d.event.key.as_str(),
            d.failed_at,
            d.last_failed_at,
            &d.detail
        ),
        ("OLD", 7, 7, &None)
    );
}

async fn old_tokens_were_moved<S: Store>(s: &S) {
    assert_eq!(s.pending_migrations().await.unwrap(), 0);
    assert_eq!(
        token(s, "t1", "product.updated").await.as_deref(),
        Some("tok-old-1")
    );
    assert_eq!(
        token(s, "t2", "customer.created").await.as_deref(),
        Some("tok-old-2")
    );
    assert_eq!(token(s, "t1", "customer.created").await, None);
    for (tenant, name, _) in &OLD_CHECKPOINTS[..2] {
        assert_eq!(
            s.get_checkpoint(tenant, name).await.unwrap(),
            None,
            "{name}"
        );
    }
    assert_eq!(
        s.get_checkpoint("t1", "catch-up product /products")
            .await
            .unwrap()
            .as_deref(),
        Some("2024-05-01 10:00:00")
    );
}

#[tokio::test]
async fn sqlite_migration_moves_webhook_tokens_out_of_checkpoints() {
    let dir = TempDir::new("tokens");
    let path = dir.0.join("rbtx.db");
    {
        // A store as version 2 left it, written with that version's own migrations.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(concat!(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY);",
            include_str!("../src/store/migrations/sqlite/0001_init.sql"),
            include_str!("../src/store/migrations/sqlite/0002_repeats_and_baselines.sql"),
            "INSERT INTO schema_migrations (version) VALUES (1), (2);",
        ))
        .unwrap();
        conn.execute_batch(OLD_DEAD_LETTER).unwrap();
        for (tenant, name, value) in OLD_CHECKPOINTS {
            conn.execute(
                "INSERT INTO checkpoints (tenant, name, value) VALUES (?1, ?2, ?3)",
                [tenant, name, value],
            )
            .unwrap();
        }
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.pending_migrations().await.unwrap(), 2);
    assert_eq!(s.migrate().await.unwrap(), 2);
    old_tokens_were_moved(&s).await;
    an_old_dead_letter_is_found_latest_failure_first(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_moves_webhook_tokens_out_of_checkpoints() {
    let Some(db) = support::postgres::database().await else {
        return;
    };
    {
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        client
            .batch_execute(concat!(
                "CREATE TABLE schema_migrations (
                     version    BIGINT PRIMARY KEY,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                 );",
                include_str!("../src/store/migrations/postgres/0001_init.sql"),
                include_str!("../src/store/migrations/postgres/0002_repeats_and_baselines.sql"),
                "INSERT INTO schema_migrations (version) VALUES (1), (2);",
            ))
            .await
            .unwrap();
        client.batch_execute(OLD_DEAD_LETTER).await.unwrap();
        for (tenant, name, value) in OLD_CHECKPOINTS {
            client
                .execute(
                    "INSERT INTO checkpoints (tenant, name, value) VALUES ($1, $2, $3)",
                    &[&tenant, &name, &value],
                )
                .await
                .unwrap();
        }
        drop(client);
        connection.await.unwrap().unwrap();
    }
    let s = PostgresStore::connect(&Secret::new(db.url.as_str()))
        .await
        .unwrap();
    assert_eq!(s.pending_migrations().await.unwrap(), 2);
    assert_eq!(s.migrate().await.unwrap(), 2);
    old_tokens_were_moved(&s).await;
    an_old_dead_letter_is_found_latest_failure_first(&s).await;
}

/// A record that fails the same way at every catch-up is one dead letter that counts, holding the
/// latest event; another reason is a letter of its own, and a replay requeues the latest event.
async fn a_repeated_failure_is_one_dead_letter_that_counts<S: Store>(s: &S) {
    let reason = "422/18000 customerNumber: Kundenummeret 50007 er i bruk";
    let mut events = Vec::new();
    for n in 1..=10 {
        let id = s
            .enqueue(event("t1", "P1", "product.updated", n))
            .await
            .unwrap();
        let claimed = s.claim(None, "w1", 1, n * 1000, LEASE_MS).await.unwrap();
        assert_eq!(claimed.iter().map(|e| e.id).collect::<Vec<_>>(), [id]);
        // Each answer has its own request id; the failure is the same.
        let said = format!("{reason} (request id tx-{n})");
        let letter = s
            .dead_letter(id, "w1", &said, Some("product.yaml"), None, n * 1000, None)
            .await
            .unwrap()
            .expect("w1 holds the lease");
        events.push((id, letter));
    }
    let first_letter = events[0].1;
    assert!(events.iter().all(|(_, l)| *l == first_letter), "{events:?}");
    let listed = s.list_dead_letters().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let d = &listed[0];
    assert_eq!(
        (d.failures, d.failed_at, d.last_failed_at),
        (10, 1000, 10_000)
    );
    assert_eq!(d.event.id, events[9].0, "the letter holds the latest event");
    assert_eq!(d.event.payload["n"], 10);
    assert_eq!(
        d.reason,
        format!("{reason} (request id tx-10)"),
        "the latest answer"
    );
    assert_eq!(s.queue_depth().await.unwrap(), 0);

    // Another reason for the same record, the same reason from another mapping (the initial
    // sync's), and the same reason for another record: letters of their own.
    for (key, why, mapping) in [
        ("P1", "403 forbidden", Some("product.yaml")),
        ("P1", reason, Some("tripletex-to-rackbeat/product.yaml")),
        ("P2", reason, Some("product.yaml")),
    ] {
        let id = s
            .enqueue(event("t1", key, "product.updated", 20))
            .await
            .unwrap();
        s.claim(None, "w1", 1, 20_000, LEASE_MS).await.unwrap();
        s.dead_letter(id, "w1", why, mapping, None, 20_000, None)
            .await
            .unwrap();
    }
    let counts: Vec<_> = s
        .list_dead_letters()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.event.key, d.reason, d.failures))
        .collect();
    assert_eq!(
        counts,
        [
            ("P1".to_string(), format!("{reason} (request id tx-10)"), 10),
            ("P1".to_string(), "403 forbidden".to_string(), 1),
            ("P1".to_string(), reason.to_string(), 1),
            ("P2".to_string(), reason.to_string(), 1),
        ]
    );

    // The initial sync files its failures the same way.
    let mut failed = event("t1", "C1", "initial_sync", 30);
    failed.entity = "customer".into();
    let a = s
        .put_dead_letter(failed.clone(), reason, None, None, None)
        .await
        .unwrap();
    let b = s
        .put_dead_letter(failed, reason, None, None, None)
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        s.get_dead_letter(a).await.unwrap().map(|d| d.failures),
        Some(2)
    );

    // Replaying the counted letter queues its latest event, once.
    assert!(s.replay(first_letter).await.unwrap());
    let again = s.claim(None, "w1", 10, 40_000, LEASE_MS).await.unwrap();
    let p1: Vec<_> = again
        .iter()
        .filter(|e| e.key == "P1")
        .map(|e| e.id)
        .collect();
    assert_eq!(p1, [events[9].0]);
}

fn activity(tenant: &str, entity: &str, key: &str, outcome: &str, n: i64) -> NewActivity {
    NewActivity {
        tenant: tenant.into(),
        event_id: n,
        entity: entity.into(),
        key: key.into(),
        event: format!("{entity}.updated"),
        outcome: outcome.into(),
        message: (outcome != "completed").then(|| format!("Why {key} was {outcome}")),
        target_id: (outcome == "completed").then(|| json!(1000 + n)),
        took_ms: n,
        at: 1_000 * n,
    }
}

/// The keys of the activity `filter` lists, in order.
async fn activity_keys<S: Store>(s: &S, filter: ActivityFilter) -> Vec<String> {
    s.list_activity(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.key)
        .collect()
}

/// The log lists newest first; each filter, alone or with others, narrows it; a page goes on
/// from the last id of the page before; the text is found in the key, event name or message,
/// whatever its case.
async fn activity_is_listed_newest_first_by_filter_and_page<S: Store>(s: &S) {
    s.record_activity(Vec::new()).await.unwrap();
    assert!(
        s.list_activity(&ActivityFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let rows = vec![
        activity("t1", "product", "P1", "completed", 1),
        activity("t1", "customer", "C1", "dead_lettered", 2),
        activity("t2", "product", "P2", "completed", 3),
        activity("t1", "product", "P3", "skipped", 4),
        activity("t1", "product", "P4", "retried", 5),
        activity("t2", "customer", "C2", "unchanged", 6),
    ];
    s.record_activity(rows.clone()).await.unwrap();

    let all = s.list_activity(&ActivityFilter::default()).await.unwrap();
    assert_eq!(all.len(), 6, "0 is no limit");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    // Each row as it was recorded.
    let p1 = all.iter().find(|a| a.key == "P1").unwrap();
    let recorded = &rows[0];
    assert_eq!(
        (
            &p1.tenant,
            p1.event_id,
            &p1.entity,
            &p1.event,
            &p1.outcome,
            &p1.message,
            &p1.target_id,
            p1.took_ms,
            p1.at
        ),
        (
            &recorded.tenant,
            recorded.event_id,
            &recorded.entity,
            &recorded.event,
            &recorded.outcome,
            &recorded.message,
            &recorded.target_id,
            recorded.took_ms,
            recorded.at
        )
    );
    assert_eq!(p1.target_id, Some(json!(1001)));
    let keys = |f| activity_keys(s, f);
    assert_eq!(
        keys(ActivityFilter::default()).await,
        ["C2", "P4", "P3", "P2", "C1", "P1"],
        "in the order handled, newest first"
    );

    let tenant = |t: &str| Some(t.to_string());
    assert_eq!(
        keys(ActivityFilter {
            tenant: tenant("t1"),
            ..Default::default()
        })
        .await,
        ["P4", "P3", "C1", "P1"]
    );
    assert_eq!(
        keys(ActivityFilter {
            entity: Some("customer".into()),
            ..Default::default()
        })
        .await,
        ["C2", "C1"]
    );
    assert_eq!(
        keys(ActivityFilter {
            outcome: Some("completed".into()),
            ..Default::default()
        })
        .await,
        ["P2", "P1"]
    );
    assert_eq!(
        keys(ActivityFilter {
            tenant: tenant("t1"),
            entity: Some("product".into()),
            outcome: Some("skipped".into()),
            ..Default::default()
        })
        .await,
        ["P3"]
    );
    // Text: a key, an event name, a message; any case; `%` and `_` are themselves.
    for (text, want) in [
        ("p3", vec!["P3"]),
        ("CUSTOMER.UPD", vec!["C2", "C1"]),
        ("why c1 was dead", vec!["C1"]),
        ("was", vec!["C2", "P4", "P3", "C1"]),
        ("%", vec![]),
        ("dead_lettered", vec!["C1"]),
        ("dead lettered", vec![]),
    ] {
        assert_eq!(
            keys(ActivityFilter {
                text: Some(text.into()),
                ..Default::default()
            })
            .await,
            want,
            "text {text:?}"
        );
    }

    // Paging: two at a time, each page after the last id of the one before.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .list_activity(&ActivityFilter {
                tenant: tenant("t1"),
                before_id: before,
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        pages.push(page.iter().map(|a| a.key.clone()).collect::<Vec<_>>());
    }
    assert_eq!(pages, [vec!["P4", "P3"], vec!["C1", "P1"]]);
}

/// Counts are of a tenant (or all) from a time on; failures are the retried and dead-lettered
/// rows. Pruning drops what is older than its time, and nothing else.
async fn activity_is_counted_since_and_pruned<S: Store>(s: &S) {
    assert_eq!(
        s.activity_counts(None, 0).await.unwrap(),
        ActivityCounts::default()
    );
    s.record_activity(vec![
        activity("t1", "product", "P1", "completed", 1),
        activity("t1", "customer", "C1", "dead_lettered", 2),
        activity("t2", "product", "P2", "retried", 3),
        activity("t1", "product", "P3", "skipped", 4),
    ])
    .await
    .unwrap();
    s.record_activity(vec![activity("t1", "product", "P4", "retried", 5)])
        .await
        .unwrap();
    let counts = |tenant: Option<&'static str>, since| async move {
        let c = s.activity_counts(tenant, since).await.unwrap();
        (c.handled, c.failed)
    };
    assert_eq!(counts(None, 0).await, (5, 3));
    assert_eq!(counts(Some("t1"), 0).await, (4, 2));
    assert_eq!(counts(Some("t2"), 0).await, (1, 1));
    assert_eq!(counts(Some("t1"), 2_000).await, (3, 2), "at or after");
    assert_eq!(counts(Some("t1"), 2_001).await, (2, 1));
    assert_eq!(counts(None, 6_000).await, (0, 0));
    assert_eq!(counts(Some("t3"), 0).await, (0, 0));

    assert_eq!(s.prune_activity(3_000).await.unwrap(), 2, "older than 3 s");
    assert_eq!(s.prune_activity(3_000).await.unwrap(), 0);
    assert_eq!(
        activity_keys(s, ActivityFilter::default()).await,
        ["P4", "P3", "P2"]
    );
    assert_eq!(counts(None, 0).await, (3, 2));
}

/// The queue's depth and its oldest open event, per tenant and in all: claimed events are open,
/// completed and dead-lettered ones are not.
async fn the_queue_is_summarized_per_tenant<S: Store>(s: &S) {
    assert_eq!(
        s.queue_summary(None).await.unwrap(),
        QueueSummary::default()
    );
    for (tenant, key, n) in [
        ("t1", "A", 5),
        ("t1", "B", 3),
        ("t2", "C", 9),
        ("t1", "D", 7),
    ] {
        s.enqueue(event(tenant, key, "product.updated", n))
            .await
            .unwrap();
    }
    let at = |n: i64| Some(1_700_000_000_000 + n);
    let summary = |tenant: Option<&'static str>| async move {
        let q = s.queue_summary(tenant).await.unwrap();
        (q.depth, q.oldest_received_at)
    };
    assert_eq!(summary(None).await, (4, at(3)));
    assert_eq!(summary(Some("t1")).await, (3, at(3)));
    assert_eq!(summary(Some("t2")).await, (1, at(9)));
    assert_eq!(summary(Some("t3")).await, (0, None));

    // Claimed is still open; done and dead are not.
    let claimed = s.claim(Some("t1"), "w1", 2, 0, LEASE_MS).await.unwrap();
    assert_eq!(
        claimed.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        ["A", "B"]
    );
    assert_eq!(summary(Some("t1")).await, (3, at(3)));
    let b = claimed.iter().find(|e| e.key == "B").unwrap();
    assert!(s.complete(b.id, "w1").await.unwrap());
    let a = claimed.iter().find(|e| e.key == "A").unwrap();
    s.dead_letter(a.id, "w1", "422", None, None, 0, None)
        .await
        .unwrap();
    assert_eq!(summary(Some("t1")).await, (1, at(7)));
    assert_eq!(summary(None).await, (2, at(7)));
    assert_eq!(s.queue_depth().await.unwrap(), 2);
}

/// Dead-letters `key` of `tenant` and `entity` at `at`, through the queue.
#[allow(clippy::too_many_arguments)]
async fn dead<S: Store>(
    s: &S,
    tenant: &str,
    entity: &str,
    key: &str,
    reason: &str,
    mapping: Option<&str>,
    field: Option<&str>,
    at: i64,
) -> i64 {
    let mut new = event(tenant, key, &format!("{entity}.updated"), at);
    new.entity = entity.into();
    s.enqueue(new).await.unwrap();
    let claimed = s.claim(Some(tenant), "w1", 1, at, LEASE_MS).await.unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    s.dead_letter(claimed[0].id, "w1", reason, mapping, field, at, None)
        .await
        .unwrap()
        .expect("w1 holds the lease")
}

/// The console's dead letters: latest failure first, filtered by tenant, entity and a text in
/// the key, reason, mapping or field; paged after a letter; counted in all; discarded for good.
async fn dead_letters_are_found_filtered_paged_counted_and_deleted<S: Store>(s: &S) {
    let none = s
        .find_dead_letters(&DeadLetterFilter::default())
        .await
        .unwrap();
    assert_eq!((none.0.len(), none.1), (0, 0));
    let p1 = dead(
        s,
        "t1",
        "product",
        "P1",
        "422 number taken",
        Some("product.yaml"),
        Some("number"),
        10,
    )
    .await;
    let c1 = dead(s, "t1", "customer", "C1", "403 forbidden", None, None, 20).await;
    let p2 = dead(
        s,
        "t2",
        "product",
        "P2",
        "422 vatType",
        Some("product.yaml"),
        Some("vatType.id"),
        30,
    )
    .await;
    let p3 = dead(
        s,
        "t1",
        "product",
        "P3",
        "422 Name is required",
        Some("other/PRODUCT.yaml"),
        None,
        30,
    )
    .await;
    // P1 fails again the same way: one letter, now the latest failure.
    assert_eq!(
        dead(
            s,
            "t1",
            "product",
            "P1",
            "422 number taken",
            Some("product.yaml"),
            Some("number"),
            40
        )
        .await,
        p1
    );
    let find = |f: DeadLetterFilter| async move {
        let (letters, total) = s.find_dead_letters(&f).await.unwrap();
        (letters.into_iter().map(|d| d.id).collect::<Vec<_>>(), total)
    };
    assert_eq!(
        find(DeadLetterFilter::default()).await,
        (vec![p1, p3, p2, c1], 4),
        "latest failure first, then the higher id"
    );
    let letters = s
        .find_dead_letters(&DeadLetterFilter::default())
        .await
        .unwrap()
        .0;
    assert_eq!(
        letters[0],
        s.get_dead_letter(p1).await.unwrap().unwrap(),
        "a letter as `get_dead_letter` reads it"
    );
    assert_eq!((letters[0].failures, letters[0].last_failed_at), (2, 40));

    let t1 = || Some("t1".to_string());
    assert_eq!(
        find(DeadLetterFilter {
            tenant: t1(),
            ..Default::default()
        })
        .await,
        (vec![p1, p3, c1], 3)
    );
    assert_eq!(
        find(DeadLetterFilter {
            entity: Some("product".into()),
            ..Default::default()
        })
        .await,
        (vec![p1, p3, p2], 3)
    );
    assert_eq!(
        find(DeadLetterFilter {
            tenant: t1(),
            entity: Some("customer".into()),
            ..Default::default()
        })
        .await,
        (vec![c1], 1)
    );
    for (text, want) in [
        ("c1", vec![c1]),                   // the key
        ("FORBIDDEN", vec![c1]),            // the reason
        ("product.yaml", vec![p1, p3, p2]), // the mapping, whatever its case
        ("vattype.ID", vec![p2]),           // the field (and the reason)
        ("number", vec![p1]),
        ("nothing like it", vec![]),
    ] {
        let total = want.len() as u64;
        assert_eq!(
            find(DeadLetterFilter {
                text: Some(text.into()),
                ..Default::default()
            })
            .await,
            (want, total),
            "text {text:?}"
        );
    }

    // Pages of two after a letter; the total is of every match, whatever the page.
    let page = |before_id| DeadLetterFilter {
        before_id,
        limit: 2,
        ..Default::default()
    };
    assert_eq!(find(page(None)).await, (vec![p1, p3], 4));
    assert_eq!(find(page(Some(p3))).await, (vec![p2, c1], 4));
    assert_eq!(find(page(Some(c1))).await, (vec![], 4));
    assert_eq!(
        find(DeadLetterFilter {
            tenant: t1(),
            before_id: Some(p1),
            limit: 1,
            ..Default::default()
        })
        .await,
        (vec![p3], 3)
    );

    // Discarded for good: not replayed, gone from every list.
    assert!(s.delete_dead_letter(p3).await.unwrap());
    assert!(!s.delete_dead_letter(p3).await.unwrap(), "already gone");
    assert!(!s.delete_dead_letter(p3 + 1000).await.unwrap());
    assert_eq!(
        find(DeadLetterFilter::default()).await,
        (vec![p1, p2, c1], 3)
    );
    assert_eq!(s.get_dead_letter(p3).await.unwrap(), None);
    assert_eq!(s.replay_all(None).await.unwrap(), 3);
    assert_eq!(
        s.queue_depth().await.unwrap(),
        3,
        "the discarded record is not queued"
    );
}

/// A letter keeps what the API was sent and answered; a repeat of the same reason holds the
/// latest, through the queue and from the initial sync alike.
async fn a_dead_letter_keeps_the_detail_of_its_latest_failure<S: Store>(s: &S) {
    let detail = |n: i64| {
        json!({
            "request": { "method": "POST", "path": "/product", "body": { "number": "P1", "n": n } },
            "response": {
                "status": 422, "code": 18000, "message": "Validering feilet.",
                "validationMessages": [{ "field": "number", "message": "Produktnummeret P1 er i bruk." }],
                "requestId": format!("r-{n}"),
            },
        })
    };
    let mut letters = Vec::new();
    for n in 1..=2 {
        s.enqueue(event("t1", "P1", "product.updated", n))
            .await
            .unwrap();
        let e = s.claim(None, "w1", 1, n, LEASE_MS).await.unwrap();
        let d = detail(n);
        letters.push(
            s.dead_letter(
                e[0].id,
                "w1",
                "422 number",
                Some("product.yaml"),
                None,
                n,
                Some(&d),
            )
            .await
            .unwrap()
            .expect("w1 holds the lease"),
        );
    }
    assert_eq!(letters[0], letters[1], "one letter for the repeat");
    let d = s.get_dead_letter(letters[0]).await.unwrap().unwrap();
    assert_eq!(
        (d.failures, d.detail),
        (2, Some(detail(2))),
        "the latest detail"
    );

    // Without a detail the letter has none; the initial sync's letters keep theirs the same way.
    s.enqueue(event("t1", "P2", "product.updated", 3))
        .await
        .unwrap();
    let e = s.claim(None, "w1", 1, 3, LEASE_MS).await.unwrap();
    let plain = s
        .dead_letter(e[0].id, "w1", "403", None, None, 3, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.get_dead_letter(plain).await.unwrap().unwrap().detail,
        None
    );
    let failed = event("t1", "C1", "initial_sync", 4);
    let first = s
        .put_dead_letter(failed.clone(), "422 name", None, None, Some(&detail(3)))
        .await
        .unwrap();
    let again = s
        .put_dead_letter(failed, "422 name", None, None, Some(&detail(4)))
        .await
        .unwrap();
    assert_eq!(first, again);
    let d = s.get_dead_letter(first).await.unwrap().unwrap();
    assert_eq!((d.failures, d.detail), (2, Some(detail(4))));
    let (found, _) = s
        .find_dead_letters(&DeadLetterFilter::default())
        .await
        .unwrap();
    assert!(
        found
            .iter()
            .any(|l| l.id == first && l.detail == Some(detail(4))),
        "{found:?}"
    );
}

/// Calls `$suite!` with every backend-agnostic test above.
macro_rules! store_tests {
    ($suite:ident) => {
        $suite!(
            migrations_are_idempotent,
            a_batch_is_enqueued_in_order,
            enqueue_claim_complete,
            claims_can_be_limited_to_one_tenant,
            ten_updates_to_one_key_coalesce_to_the_latest,
            two_keys_run_concurrently_but_one_key_never_twice,
            workers_racing_never_share_a_key,
            events_of_one_key_are_handed_out_in_order,
            an_expired_lease_makes_the_event_claimable_again,
            retry_waits_for_not_before,
            dead_letter_then_replay,
            a_released_event_is_claimable_at_once_with_its_attempts,
            a_key_can_be_claimed_for_inline_work_unless_held,
            failures_outside_the_queue_are_dead_lettered_once_per_record,
            a_repeated_failure_is_one_dead_letter_that_counts,
            bindings_upsert_and_move,
            checkpoints_are_kept_per_tenant,
            webhook_tokens_are_kept_per_tenant_and_event,
            activity_is_listed_newest_first_by_filter_and_page,
            activity_is_counted_since_and_pruned,
            the_queue_is_summarized_per_tenant,
            dead_letters_are_found_filtered_paged_counted_and_deleted,
            a_dead_letter_keeps_the_detail_of_its_latest_failure,
        );
    };
}

async fn fresh_sqlite() -> SqliteStore {
    let s = SqliteStore::in_memory().unwrap();
    let pending = s.pending_migrations().await.unwrap();
    assert!(pending > 0);
    assert_eq!(s.migrate().await.unwrap(), pending);
    s
}

macro_rules! sqlite_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::fresh_sqlite().await).await;
                }
            )*
        }
    };
}

store_tests!(sqlite_suite);

/// A migrated store on a fresh database, and the database (dropped after the store).
struct Pg {
    store: PostgresStore,
    _db: support::postgres::TestDb,
}

async fn fresh_postgres() -> Option<Pg> {
    let db = support::postgres::database().await?;
    let store = PostgresStore::connect(&Secret::new(db.url.as_str()))
        .await
        .unwrap();
    assert!(store.migrate().await.unwrap() > 0);
    Some(Pg { store, _db: db })
}

macro_rules! postgres_suite {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(pg) = super::fresh_postgres().await {
                        super::$name(&pg.store).await;
                    }
                }
            )*
        }
    };
}

store_tests!(postgres_suite);

/// Two processes on one database, as two stores with their own connections: both migrate at the
/// same moment (one applies the schema, the other waits and finds it), then their workers race
/// for the same keys. A key is never held by two workers at once, and each event is completed by
/// exactly one worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_stores_on_one_database_never_share_a_key() {
    let Some(db) = support::postgres::database().await else {
        return;
    };
    let url = Secret::new(db.url.as_str());
    let (a, b) = tokio::join!(PostgresStore::connect(&url), PostgresStore::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    let (ma, mb) = tokio::join!(a.migrate(), b.migrate());
    let mut applied = [ma.unwrap(), mb.unwrap()];
    applied.sort();
    assert_eq!(applied, [0, 4], "one process applies the migrations");

    const KEYS: i64 = 20;
    const EVENTS: i64 = 400;
    let batch: Vec<NewEvent> = (0..EVENTS)
        .map(|n| event("t1", &format!("P{}", n % KEYS), "product.updated", n))
        .collect();
    // Both enqueue half, concurrently, while the workers run.
    let (first, second) = batch.split_at(batch.len() / 2);
    let race = Race::default();
    let producer = async {
        for (x, y) in first.chunks(10).zip(second.chunks(10)) {
            let (ra, rb) = tokio::join!(a.enqueue_many(x.to_vec()), b.enqueue_many(y.to_vec()));
            ra.unwrap();
            rb.unwrap();
        }
        race.producing_done.store(true, Ordering::SeqCst);
    };
    tokio::join!(
        producer,
        race.worker("a1", &a),
        race.worker("a2", &a),
        race.worker("b1", &b),
        race.worker("b2", &b)
    );
    let completed = race.completed.into_inner().unwrap();
    let unique: HashSet<i64> = completed.iter().copied().collect();
    assert_eq!(unique.len(), completed.len(), "an event completed twice");
    assert!(unique.contains(&EVENTS), "the last event was applied");
    assert_eq!(a.queue_depth().await.unwrap(), 0);
}

/// What the racing workers share.
#[derive(Default)]
struct Race {
    producing_done: AtomicBool,
    in_flight: Mutex<HashSet<String>>,
    completed: Mutex<Vec<i64>>,
}

impl Race {
    async fn worker(&self, name: &str, store: &PostgresStore) {
        loop {
            let claimed = store.claim(None, name, 3, 0, LEASE_MS).await.unwrap();
            if claimed.is_empty() {
                if self.producing_done.load(Ordering::SeqCst)
                    && store.queue_depth().await.unwrap() == 0
                {
                    break;
                }
                tokio::task::yield_now().await;
                continue;
            }
            for e in &claimed {
                let fresh = self.in_flight.lock().unwrap().insert(e.key.clone());
                assert!(fresh, "{} held by two workers at once", e.key);
            }
            tokio::task::yield_now().await;
            for e in claimed {
                self.in_flight.lock().unwrap().remove(&e.key);
                assert!(store.complete(e.id, name).await.unwrap());
                self.completed.lock().unwrap().push(e.id);
            }
        }
    }
}

#[tokio::test]
async fn postgres_errors_and_debug_never_show_the_password() {
    // Nothing listens on port 1: connecting fails, and the failure must not carry the password.
    let url = "postgres://rbtx:hunter2-secret@127.0.0.1:1/rbtx";
    let location = Location::parse(url).unwrap();
    assert_eq!(location.to_string(), "postgres://rbtx@127.0.0.1:1/rbtx");
    assert!(!format!("{location:?}").contains("hunter2"));
    let err = PostgresStore::connect(&Secret::new(url)).await.unwrap_err();
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    let bad = "postgres://rbtx:hunter2-secret@127.0.0.1:notaport/rbtx";
    let err = PostgresStore::connect(&Secret::new(bad)).await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert_eq!(
        Location::parse(bad).unwrap().to_string(),
        "postgres://[redacted]"
    );
    // Other connection strings are refused, not taken as a file name holding the password.
    for other in [
        "POSTGRES://rbtx:hunter2@db/rbtx",
        "host=db user=rbtx password=hunter2",
        "mysql://rbtx:hunter2@db/rbtx",
    ] {
        match Location::parse(other) {
            Err(e) => assert!(!e.to_string().contains("hunter2"), "{e}"),
            Ok(Location::Postgres(_)) => assert!(other.starts_with("POSTGRES")),
            Ok(l) => panic!("{other} taken as {l:?}"),
        }
    }
}

/// A directory under the system temp dir, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("rbtx-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn sqlite_data_survives_reopening_the_file() {
    let dir = TempDir::new("store");
    let path = dir.0.join("rbtx.db");
    let (claimed, waiting, dead);
    {
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.migrate().await.unwrap(), 4);
        claimed = s
            .enqueue(event("t1", "P1", "product.updated", 1))
            .await
            .unwrap();
        waiting = s
            .enqueue(event("t1", "P2", "product.updated", 2))
            .await
            .unwrap();
        s.enqueue(event("t1", "P3", "product.updated", 3))
            .await
            .unwrap();
        assert_eq!(
            s.claim(None, "w1", 1, 0, 1_000).await.unwrap()[0].id,
            claimed
        );
        let p3 = s.claim(None, "w1", 2, 0, 1_000).await.unwrap();
        assert!(s.retry(waiting, "w1", "503", 0).await.unwrap());
        dead = s
            .dead_letter(p3[1].id, "w1", "422", None, None, 5, None)
            .await
            .unwrap()
            .unwrap();
        s.put_binding(binding("P1", 101, Some(3))).await.unwrap();
        s.set_checkpoint("t1", "rackbeat.products", "cursor")
            .await
            .unwrap();
        // Dropped with P1 still claimed, as if the process had been killed.
    }

    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.migrate().await.unwrap(), 0);
    assert_eq!(s.queue_depth().await.unwrap(), 2);
    let ready = s.claim(None, "w2", 10, 500, 1_000).await.unwrap();
    assert_eq!(
        ready.iter().map(|e| e.id).collect::<Vec<_>>(),
        [waiting],
        "P1 is still leased"
    );
    let recovered = s.claim(None, "w2", 10, 1_000, 1_000).await.unwrap();
    assert_eq!(
        recovered.iter().map(|e| e.id).collect::<Vec<_>>(),
        [claimed]
    );
    assert_eq!(
        s.get_dead_letter(dead).await.unwrap().unwrap().reason,
        "422"
    );
    assert_eq!(
        s.get_binding("t1", "rackbeat_to_tripletex", "product", "P1")
            .await
            .unwrap(),
        Some(binding("P1", 101, Some(3)))
    );
    assert_eq!(
        s.get_checkpoint("t1", "rackbeat.products")
            .await
            .unwrap()
            .as_deref(),
        Some("cursor")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tells_other_processes_of_queued_events() {
    let Some(db) = support::postgres::database().await else {
        return;
    };
    let url = Secret::new(db.url.as_str());
    let (a, b) = (
        PostgresStore::connect(&url).await.unwrap(),
        PostgresStore::connect(&url).await.unwrap(),
    );
    a.migrate().await.unwrap();
    let mut heard = a.watch_queue().expect("PostgreSQL is shared");
    // The listener connects in the background; enqueue until it has heard one.
    let mut n = 0;
    let tenant = loop {
        b.enqueue(event("t2", &format!("P{n}"), "product.updated", n))
            .await
            .unwrap();
        n += 1;
        match tokio::time::timeout(std::time::Duration::from_millis(200), heard.recv()).await {
            Ok(t) => break t,
            Err(_) => assert!(n < 50, "no notification within 10 s"),
        }
    };
    assert_eq!(tenant.as_deref(), Some("t2"));
    while heard.try_recv().is_ok() {}
    // Its own enqueues are not echoed back: the process woke its workers itself.
    a.enqueue_many(vec![event("t1", "Q1", "product.updated", 1)])
        .await
        .unwrap();
    b.enqueue_many(vec![
        event("t3", "Q2", "product.updated", 2),
        event("t3", "Q3", "product.updated", 3),
    ])
    .await
    .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), heard.recv())
        .await
        .expect("heard b");
    assert_eq!(
        next.as_deref(),
        Some("t3"),
        "a's own t1 is not heard; t3 once"
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), heard.recv())
            .await
            .is_err(),
        "one notification per tenant and commit"
    );
    assert!(SqliteStore::in_memory().unwrap().watch_queue().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sslmode_require_is_tls_with_the_certificate_verified() {
    let Some(db) = support::postgres::database().await else {
        return;
    };
    // The test server's certificate is Debian's self-signed one (or it has no TLS at all): a
    // verified TLS connection must be refused either way, saying why, without the password.
    let glue = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{glue}sslmode=require", db.url);
    let err = PostgresStore::connect(&Secret::new(url.as_str()))
        .await
        .expect_err("an unverifiable server is refused");
    let text = err.to_string();
    assert!(
        text.contains("certificate") || text.contains("TLS"),
        "the cause is named: {text}"
    );
    assert!(
        !text.contains("rbtx_ci:rbtx_ci"),
        "no password in the error: {text}"
    );
    // Without sslmode=require the same server is reached over plain TCP, as before.
    let plain = format!("{}{glue}sslmode=disable", db.url);
    PostgresStore::connect(&Secret::new(plain.as_str()))
        .await
        .expect("plain TCP");
}
