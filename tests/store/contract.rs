//! What every store engine must do, written once over [`Backend`] and run
//! against each engine by `main.rs`. A backend opens handles on one
//! database: two handles are two hosts (their own connections, no shared
//! locks in process), which is how the multi-host tests get their hosts.
use spoke::config::Retention;
use spoke::flow::Settle;
use spoke::manifest::{Event, Window};
use spoke::rate_limit::ledger::{self, BucketSpec, LedgerRows, Taken};
use spoke::store::*;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier, Mutex};

pub struct Backend {
    open: Box<dyn Fn() -> Arc<dyn Store> + Send + Sync>,
    /// What the database lives in (a temporary directory, a cluster),
    /// dropped after the handles.
    _home: Box<dyn std::any::Any + Send + Sync>,
}

impl Backend {
    pub fn new(open: impl Fn() -> Arc<dyn Store> + Send + Sync + 'static, home: impl std::any::Any + Send + Sync) -> Backend {
        Backend { open: Box::new(open), _home: Box::new(home) }
    }

    /// A new handle on the backend's database: another host.
    pub fn host(&self) -> Arc<dyn Store> {
        (self.open)()
    }
}

fn ev(id: &str, topic: &str) -> Event {
    Event { id: id.into(), topic: topic.into(), occurred_at: None, subject: None, payload: serde_json::json!({"id": id}) }
}

fn incoming(events: Vec<Event>) -> Incoming {
    Incoming { delivery: DeliveryRecord { connector: "wics".into(), received_at: 1000, headers: vec![], body: b"{}".to_vec() }, events }
}

/// Route every waiting event to "sub", as the dispatcher would.
fn route_all(s: &dyn Store) {
    let waiting = s.unrouted(0, 10_000).unwrap();
    s.route(&waiting.into_iter().map(|u| (u, vec!["sub".to_string()])).collect::<Vec<_>>(), 1000).unwrap();
}

fn refused(connector: &str, body: usize) -> RefusedDelivery {
    RefusedDelivery { delivery: DeliveryRecord { connector: connector.into(), received_at: 1000, headers: vec![], body: vec![b'x'; body] }, http_status: 401, reason: "bad signature".into() }
}

fn claim(owner: &str, until: i64) -> Claim {
    Claim { owner: owner.into(), until }
}

fn ids(due: &[Due]) -> Vec<String> {
    due.iter().map(|d| d.event.id.clone()).collect()
}

/// Run `f` in one ledger transaction and hand back what it returned.
fn ledger_tx<T>(s: &dyn Store, mut f: impl FnMut(&mut dyn LedgerRows) -> anyhow::Result<T>) -> T {
    let mut out = None;
    s.ledger_tx(&mut |rows| {
        out = Some(f(rows)?);
        Ok(())
    })
    .unwrap();
    out.unwrap()
}

pub fn refusals_keep_only_the_newest(b: &Backend) {
    let s = b.host();
    for _ in 0..5 {
        s.record_refusals(&(0..10).map(|_| refused("wics", 10)).collect::<Vec<_>>(), 25).unwrap();
    }
    let kept = s.refusals(1000).unwrap();
    assert_eq!(kept.len(), 25);
    assert_eq!(kept[0].id, 50, "the newest stay");
    assert_eq!((kept[0].http_status, kept[0].reason.as_str(), kept[0].body.as_str()), (401, "bad signature", "xxxxxxxxxx"));
}

pub fn prune_keeps_pending_work_and_drops_what_retention_does_not_keep(b: &Backend) {
    let s = b.host();
    s.commit(&[incoming(vec![ev("a", "T"), ev("b", "U")])]).unwrap(); // received_at 1000
    route_all(&*s);
    let due = s.due(&claim("t", 2000 + 60_000), 2000, 10, &HashSet::new()).unwrap();
    s.mark_delivered(due[0].seq, "sub", 2000).unwrap(); // a settled, b pending
    let run = s.run_start("x", 1, "f", "manual", 1000).unwrap();
    s.step_put("x", "k", "1", run, 1000).unwrap();
    let running = s.run_start("x", 1, "f", "manual", 1000).unwrap();
    s.step_put("x", "k2", "1", running, 1000).unwrap();
    s.run_finish(run, 1500, None, &[], &Default::default()).unwrap();
    s.record_refusals(&[refused("wics", 10)], 100).unwrap();
    let day = Retention::ms(1.0);
    let r = Retention { deliveries_days: 1.0, refusals_days: 1.0, events_days: 1.0, runs_days: 1.0, steps_days: 3.0, ..Retention::default() };
    assert_eq!(s.prune(1000 + day / 2, &r).unwrap().total(), 0, "nothing is old yet");
    let p = s.prune(1000 + 4 * day, &r).unwrap();
    assert_eq!((p.deliveries, p.refusals, p.events, p.runs, p.steps), (1, 1, 1, 1, 1), "{p:?}");
    let left: Vec<_> = s.list_events(&EventFilter::default()).unwrap().into_iter().map(|e| e.dedupe_id).collect();
    assert_eq!(left, ["b"], "the pending event stays");
    assert!(s.step_get("x", "k2").unwrap().is_some(), "a running run's steps stay");
    assert!(s.run(running).unwrap().is_some(), "a running run stays");
}

pub fn prune_drops_finished_flows_and_untaken_events_but_never_unfinished_flows(b: &Backend) {
    let s = b.host();
    let day = Retention::ms(1.0);
    let (done, _) = s.flow_start("x", "f", "done", &serde_json::json!(null), 1, 1000).unwrap();
    let (waiting, _) = s.flow_start("x", "f", "waiting", &serde_json::json!(null), 1, 1000).unwrap();
    let (doubt, _) = s.flow_start("x", "f", "doubt", &serde_json::json!(null), 1, 1000).unwrap();
    for id in [done, waiting, doubt] {
        s.flow_step_begin(id, 0, "step", "a", "started", None, 1000).unwrap();
    }
    let claimed = s.flow_claim("m:1", 1000, 2000, 10).unwrap();
    assert_eq!(claimed.len(), 3);
    s.flow_settle(done, "m:1", &Settle::Done(serde_json::json!(1)), 1000).unwrap();
    s.flow_settle(waiting, "m:1", &Settle::Wait { at: Some(100 * day), step: "a".into(), waiting_for: serde_json::json!({}) }, 1000).unwrap();
    s.flow_settle(doubt, "m:1", &Settle::InDoubt { step: "a".into(), waiting_for: serde_json::json!({}) }, 1000).unwrap();
    let taken = s.flow_inbox_put("x", "c", "T", "e1", &serde_json::json!({}), 1000).unwrap().unwrap();
    assert!(s.flow_inbox_claim(taken, done, 0, 1000).unwrap());
    s.flow_inbox_put("x", "c", "T", "e2", &serde_json::json!({}), 1000).unwrap().unwrap();
    let r = Retention { runs_days: 1.0, events_days: 2.0, ..Retention::default() };
    let p = s.prune(1000 + 3 * day / 2, &r).unwrap();
    assert_eq!((p.flows, p.flow_events), (1, 0), "{p:?}");
    assert!(s.flow(done).unwrap().is_none() && s.flow_steps(done).unwrap().is_empty() && s.flow_inbox_claimed(done, 0).unwrap().is_none());
    assert!(s.flow(waiting).unwrap().is_some() && s.flow(doubt).unwrap().is_some(), "unfinished flows stay");
    assert_eq!(s.flow_inbox_open("x", "c", "T", 10).unwrap().len(), 1, "an untaken event stays for its retention");
    let p = s.prune(1000 + 3 * day, &r).unwrap();
    assert_eq!(p.flow_events, 1, "{p:?}");
    assert!(s.flow(waiting).unwrap().is_some() && s.flow(doubt).unwrap().is_some(), "unfinished flows are never pruned");
}

pub fn kv_quota_counts_keys_and_bytes_per_connector(b: &Backend) {
    let s = b.host();
    let q = KvQuota { max_keys: 3, max_bytes: 100 };
    for k in ["a", "b", "c"] {
        s.kv_set("w", k, b"1234", q).unwrap();
    }
    let e = s.kv_set("w", "d", b"1", q).unwrap_err();
    assert!(e.downcast_ref::<KvQuotaExceeded>().is_some_and(|e| e.0.contains("3 keys")), "{e:#}");
    s.kv_set("w", "a", b"replaced", q).unwrap();
    s.kv_set("other", "d", b"1", q).unwrap();
    let e = s.kv_set("w", "b", &[0; 100], q).unwrap_err();
    assert!(e.to_string().contains("kv_max_bytes"), "{e}");
    s.kv_delete("w", "c").unwrap();
    s.kv_set("w", "d", b"1", q).unwrap();
    assert_eq!(s.kv_get("w", "b").unwrap().as_deref(), Some(&b"1234"[..]), "a refused write changes nothing");
    assert_eq!(s.kv_get("w", "c").unwrap(), None);
}

/// Hosts writing new keys of one connector at once: the quota holds
/// exactly, none is lost.
pub fn kv_quota_holds_across_hosts(b: &Backend) {
    let hosts = [b.host(), b.host()];
    let q = KvQuota { max_keys: 20, max_bytes: 1 << 20 };
    let stored = Mutex::new(0);
    std::thread::scope(|scope| {
        for (h, s) in hosts.iter().enumerate() {
            for t in 0..3 {
                let stored = &stored;
                scope.spawn(move || {
                    for i in 0..10 {
                        match s.kv_set("w", &format!("{h}-{t}-{i}"), b"v", q) {
                            Ok(()) => *stored.lock().unwrap() += 1,
                            Err(e) => assert!(e.downcast_ref::<KvQuotaExceeded>().is_some(), "{e:#}"),
                        }
                    }
                });
            }
        }
    });
    assert_eq!(*stored.lock().unwrap(), 20, "exactly the quota's keys were written");
    let present = (0..2).flat_map(|h| (0..3).flat_map(move |t| (0..10).map(move |i| format!("{h}-{t}-{i}")))).filter(|k| hosts[0].kv_get("w", k).unwrap().is_some()).count();
    assert_eq!(present, 20);
}

/// Two hosts, several threads each: every increment and every
/// compare-and-swap update counts, none is lost.
pub fn incr_and_swap_from_two_hosts_count_exactly(b: &Backend) {
    let hosts = [b.host(), b.host()];
    const THREADS: i64 = 3;
    const EACH: i64 = 100;
    std::thread::scope(|scope| {
        for s in &hosts {
            for _ in 0..THREADS {
                scope.spawn(move || {
                    for _ in 0..EACH {
                        s.state_incr("x", "hits", 1, 1).unwrap();
                        // What `state::update` does: read, compute, swap; again on a conflict.
                        loop {
                            let old = s.state_get("x", "list").unwrap();
                            let mut list: Vec<i64> = old.as_deref().map(|t| serde_json::from_str(t).unwrap()).unwrap_or_default();
                            list.push(list.len() as i64);
                            if s.state_swap("x", "list", old.as_deref(), &serde_json::to_string(&list).unwrap(), 1).unwrap() {
                                break;
                            }
                        }
                    }
                });
            }
        }
    });
    let total = 2 * THREADS * EACH;
    assert_eq!(hosts[0].state_get("x", "hits").unwrap().as_deref(), Some(&*total.to_string()));
    let list: Vec<i64> = serde_json::from_str(&hosts[1].state_get("x", "list").unwrap().unwrap()).unwrap();
    assert_eq!(list, (0..total).collect::<Vec<_>>(), "an update was lost or applied twice");
}

pub fn swap_needs_the_expected_value_and_incr_an_integer(b: &Backend) {
    let s = b.host();
    assert!(s.state_swap("x", "k", None, "1", 1).unwrap(), "absent as expected");
    assert!(!s.state_swap("x", "k", None, "2", 1).unwrap(), "no longer absent");
    assert!(!s.state_swap("x", "k", Some("3"), "2", 1).unwrap());
    assert!(s.state_swap("x", "k", Some("1"), "2", 1).unwrap());
    assert_eq!(s.state_incr("x", "k", 40, 1).unwrap(), 42);
    assert_eq!(s.state_incr("x", "new", -3, 1).unwrap(), -3, "absent counts as 0");
    let max = i64::MAX.to_string();
    for held in ["\"abc\"", "1.5", "[1]", "007", "-0", max.as_str()] {
        s.state_set("x", "odd", held, 1).unwrap();
        let e = s.state_incr("x", "odd", 1, 1).unwrap_err();
        assert!(e.to_string().contains("not an integer"), "{held}: {e}");
        assert_eq!(s.state_get("x", "odd").unwrap().as_deref(), Some(held), "a refused incr changes nothing");
    }
    s.state_set("x", "top", &(i64::MAX - 1).to_string(), 1).unwrap();
    assert_eq!(s.state_incr("x", "top", 1, 1).unwrap(), i64::MAX, "up to the last integer");
    s.state_delete("x", "k").unwrap();
    assert_eq!(s.state_get("x", "k").unwrap(), None);
}

pub fn state_list_takes_exactly_the_keys_with_the_prefix(b: &Backend) {
    let s = b.host();
    for k in ["lead:2", "lead:1", "lead;", "lead", "leae", "a", "lead:\u{10FFFF}z", "lead:B", "lead:a", "lead:é"] {
        s.state_set("x", k, "1", 1).unwrap();
    }
    s.state_set("y", "lead:3", "1", 1).unwrap();
    let keys = |prefix: &str, limit: usize| s.state_list("x", prefix, limit).unwrap().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    // Byte order: digits, capitals, small letters, then everything past ASCII.
    assert_eq!(keys("lead:", 100), ["lead:1", "lead:2", "lead:B", "lead:a", "lead:é", "lead:\u{10FFFF}z"]);
    assert_eq!(keys("lead:", 2), ["lead:1", "lead:2"]);
    assert_eq!(keys("", 100).len(), 10, "no prefix: every key of the script");
}

pub fn runs_filter_by_function_and_outcome(b: &Backend) {
    let s = b.host();
    let ok = s.run_start("x", 1, "f", "manual", 1).unwrap();
    s.run_finish(ok, 2, None, &["s1".to_string()], &Default::default()).unwrap();
    let failed = s.run_start("x", 1, "g", "manual", 1).unwrap();
    s.run_finish(failed, 2, Some(("boom", Some("x.rhai:3"))), &[], &Default::default()).unwrap();
    let running = s.run_start("x", 1, "f", "manual", 1).unwrap();
    let ids = |f: RunFilter| s.runs(&f).unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(RunFilter::default()), [running, failed, ok]);
    assert_eq!(ids(RunFilter { function: Some("f".into()), ..Default::default() }), [running, ok]);
    assert_eq!(ids(RunFilter { outcome: Some(RunOutcome::Running), ..Default::default() }), [running]);
    assert_eq!(ids(RunFilter { outcome: Some(RunOutcome::Failed), ..Default::default() }), [failed]);
    assert_eq!(ids(RunFilter { function: Some("g".into()), outcome: Some(RunOutcome::Ok), ..Default::default() }), Vec::<i64>::new());
    assert_eq!(ids(RunFilter { script: Some("y".into()), ..Default::default() }), Vec::<i64>::new());
    let f = s.run(failed).unwrap().unwrap();
    assert_eq!((f.outcome.as_deref(), f.error.as_deref(), f.location.as_deref(), f.ended_at), (Some("error"), Some("boom"), Some("x.rhai:3"), Some(2)));
    assert_eq!(s.run(ok).unwrap().unwrap().steps, serde_json::json!(["s1"]));
}

pub fn versions_survive_removal_and_orphan_runs_are_interrupted(b: &Backend) {
    let s = b.host();
    s.script_loaded("x", 4, "h4", &serde_json::json!([]), None, 1).unwrap();
    s.script_removed("x", 2).unwrap();
    assert_eq!(s.script_version("x").unwrap(), 4);
    assert_eq!(s.script_hash("x").unwrap().as_deref(), Some("h4"), "a removed script keeps its hash");
    assert!(s.scripts().unwrap()[0].removed_at.is_some());
    let run = s.run_start("x", 4, "f", "manual", 1).unwrap();
    let me = i64::from(std::process::id());
    assert_eq!(s.interrupt_orphan_runs(5, &|pid| pid == me).unwrap(), 0, "its process is alive");
    assert_eq!(s.scripts().unwrap()[0].last_run.as_ref().map(|r| r.id), Some(run));
    assert_eq!(s.interrupt_orphan_runs(5, &|pid| pid != me).unwrap(), 1, "its process is gone");
    let r = s.run(run).unwrap().unwrap();
    assert_eq!((r.outcome.as_deref(), r.ended_at), (Some("interrupted"), Some(5)));
    s.script_error("x", "syntax error", 6).unwrap();
    let st = &s.scripts().unwrap()[0];
    assert_eq!((st.version, st.error.as_deref()), (4, Some("syntax error")), "an error keeps the version");
}

/// Hosts loading the same file at the same moment each succeed.
pub fn hosts_loading_one_script_at_once_all_succeed(b: &Backend) {
    let hosts: Vec<_> = (0..4).map(|_| b.host()).collect();
    let barrier = Barrier::new(hosts.len());
    std::thread::scope(|scope| {
        for s in &hosts {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                s.script_loaded("x", 1, "h", &serde_json::json!(["every 1m"]), Some(&serde_json::json!({"added": ["every 1m"]})), 1).unwrap();
            });
        }
    });
    let scripts = hosts[0].scripts().unwrap();
    assert_eq!(scripts.len(), 1);
    assert_eq!(scripts[0].triggers, serde_json::json!(["every 1m"]));
    assert!(scripts[0].trigger_change.is_some());
}

/// Hosts starting on a new store at the same moment each apply the
/// migrations once, and none fails on another's work.
pub fn hosts_opening_a_new_store_at_once_all_start(b: &Backend) {
    let barrier = Barrier::new(4);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                b.host().kv_get("x", "k").unwrap();
            });
        }
    });
}

pub fn kv_is_per_connector_and_survives_reopen(b: &Backend) {
    {
        let s = b.host();
        let q = KvQuota { max_keys: 10, max_bytes: 100 };
        s.kv_set("a", "k", b"1", q).unwrap();
        s.kv_set("a", "k", b"2", q).unwrap();
        s.kv_set("b", "k", &[0, 255, 3], q).unwrap();
    }
    let s = b.host();
    assert_eq!(s.kv_get("a", "k").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(s.kv_get("b", "k").unwrap().as_deref(), Some(&[0, 255, 3][..]), "bytes, not text");
    s.kv_delete("a", "k").unwrap();
    assert_eq!(s.kv_get("a", "k").unwrap(), None);
}

pub fn duplicates_are_recorded_but_not_dispatched(b: &Backend) {
    let s = b.host();
    let c = s.commit(&[incoming(vec![ev("a", "T"), ev("b", "T")]), incoming(vec![ev("a", "T")])]).unwrap();
    assert_eq!((c[0].new_events, c[0].duplicates), (2, 0));
    assert_eq!((c[1].new_events, c[1].duplicates), (0, 1));
    assert_ne!(c[0].delivery_id, c[1].delivery_id);
    assert_eq!(s.list_events(&EventFilter::default()).unwrap().len(), 2);
    assert!(s.due(&claim("t", 2000 + 60_000), 2000, 10, &HashSet::new()).unwrap().is_empty(), "nothing is due before routing");
    assert_eq!(s.backlog().unwrap().counts.iter().find(|(k, _)| k == "unrouted").map(|c| c.1), Some(2));
    route_all(&*s);
    let due = s.due(&claim("t", 2000 + 60_000), 2000, 10, &HashSet::new()).unwrap();
    assert_eq!(ids(&due), ["a"], "one lane, so only its head is due");
    assert_eq!(due[0].event.payload, serde_json::json!({"id": "a"}));
    let detail = s.event(due[0].seq).unwrap().unwrap();
    assert_eq!((detail.summary.status.as_str(), detail.delivery_id), ("pending", Some(c[0].delivery_id)));
}

pub fn dedupe_keys_outlive_three_days_then_go(b: &Backend) {
    let s = b.host();
    s.commit(&[incoming(vec![ev("a", "T")])]).unwrap(); // received_at = 1000
    assert_eq!(s.prune_dedupe(1000 + DEDUPE_RETENTION_MS - 1).unwrap(), 0, "kept for the whole retention");
    let again = s.commit(&[incoming(vec![ev("a", "T")])]).unwrap();
    assert_eq!(again[0].duplicates, 1);
    assert_eq!(s.prune_dedupe(1000 + DEDUPE_RETENTION_MS + 1).unwrap(), 1);
    assert_eq!(s.commit(&[incoming(vec![ev("a", "T")])]).unwrap()[0].new_events, 1, "a forgotten key is new again");
}

pub fn lanes_this_host_is_busy_with_are_passed_over(b: &Backend) {
    let s = b.host();
    s.commit(&[incoming(vec![ev("a", "T"), ev("b", "U"), ev("c", "V"), ev("d", "W")])]).unwrap();
    route_all(&*s);
    let c = claim("t", 2000 + 60_000);
    let first = s.due(&c, 2000, 2, &HashSet::new()).unwrap();
    assert_eq!(ids(&first), ["a", "b"], "at most the limit, oldest heads first");
    // a and b are in flight here: the next look claims the others, not them again.
    let busy: HashSet<Lane> = first.iter().map(Due::lane).collect();
    assert_eq!(ids(&s.due(&c, 2000, 2, &busy).unwrap()), ["c", "d"]);
    assert!(s.due(&c, 2000, 0, &HashSet::new()).unwrap().is_empty(), "no free slot, nothing claimed");
}

pub fn lanes_go_in_order_and_failures_hold_the_lane(b: &Backend) {
    let s = b.host();
    s.commit(&[incoming(vec![ev("a", "T"), ev("b", "T"), ev("c", "U")])]).unwrap();
    route_all(&*s);
    let due = s.due(&claim("t", 2000 + 60_000), 2000, 10, &HashSet::new()).unwrap();
    assert_eq!(ids(&due), ["a", "c"], "the heads of lanes T and U");
    s.mark_failed(due[0].seq, "sub", 2000, "boom", Some(5000)).unwrap();
    assert_eq!(ids(&s.due(&claim("t", 3000 + 60_000), 3000, 10, &HashSet::new()).unwrap()), ["c"], "b waits behind a's retry");
    assert_eq!(s.next_due_at().unwrap(), Some(1000));
    s.mark_failed(due[0].seq, "sub", 5000, "boom again", None).unwrap();
    assert_eq!(ids(&s.due(&claim("t", 5000 + 60_000), 5000, 10, &HashSet::new()).unwrap()), ["b", "c"], "a is dead-lettered, b moves up");
    assert_eq!(s.list_events(&EventFilter { status: Some("dead".into()), ..Default::default() }).unwrap().len(), 1);
    assert_eq!(s.replay_dead(6000).unwrap(), 1);
    let detail = s.event(due[0].seq).unwrap().unwrap();
    assert_eq!(detail.attempts.len(), 2);
    assert_eq!(detail.dispatches[0].status, "pending");
    assert_eq!(detail.attempts[1].error.as_deref(), Some("boom again"));
}

/// Events about different subjects are different lanes; `lane_next`
/// walks one lane.
pub fn lane_next_walks_one_lane_in_order(b: &Backend) {
    let s = b.host();
    let mut events = vec![ev("a1", "T"), ev("b1", "T"), ev("a2", "T"), ev("a3", "T")];
    for e in &mut events {
        e.subject = Some(e.id[..1].to_string());
    }
    s.commit(&[incoming(events)]).unwrap();
    route_all(&*s);
    let c = claim("w", 100_000);
    let due = s.due(&c, 2000, 10, &HashSet::new()).unwrap();
    assert_eq!(ids(&due), ["a1", "b1"], "one head per subject");
    let lane = due[0].lane();
    assert_eq!(lane.subject, "a");
    s.mark_delivered(due[0].seq, "sub", 2000).unwrap();
    let next = s.lane_next(&lane, due[0].seq, &c, 2000).unwrap().unwrap();
    assert_eq!(next.event.id, "a2");
    assert!(s.lane_next(&lane, due[0].seq, &claim("other", 100_000), 2000).unwrap().is_none(), "a2 is w's: another host's lane_next finds it held");
    s.mark_failed(next.seq, "sub", 2000, "later", Some(9000)).unwrap();
    assert!(s.lane_next(&lane, due[0].seq, &c, 2000).unwrap().is_none(), "a2 waits on its retry and holds the lane");
    assert_eq!(s.lane_next(&lane, due[0].seq, &c, 9000).unwrap().map(|d| d.event.id), Some("a2".into()));
}

/// A claim holds a dispatch for its owner until the lease ends; another
/// host gets it then, and finishing it ends the claim.
pub fn a_claim_holds_until_its_lease_ends(b: &Backend) {
    let (a, bh) = (b.host(), b.host());
    a.commit(&[incoming(vec![ev("x", "T"), ev("y", "T")])]).unwrap();
    route_all(&*a);
    let got = a.due(&claim("A", 5000), 1000, 10, &HashSet::new()).unwrap();
    assert_eq!(ids(&got), ["x"]);
    assert!(bh.due(&claim("B", 9000), 2000, 10, &HashSet::new()).unwrap().is_empty(), "x is A's until 5000, and its lane waits behind it");
    assert!(bh.lane_next(&got[0].lane(), 0, &claim("B", 9000), 4999).unwrap().is_none(), "lane_next respects the claim too");
    assert_eq!(ids(&a.due(&claim("A", 6000), 3000, 10, &HashSet::new()).unwrap()), ["x"], "its owner may claim it again (and extend)");
    assert!(bh.due(&claim("B", 9000), 5999, 10, &HashSet::new()).unwrap().is_empty());
    let taken = bh.due(&claim("B", 9000), 6000, 10, &HashSet::new()).unwrap();
    assert_eq!(ids(&taken), ["x"], "the lease ended: B takes over");
    assert!(a.due(&claim("A", 20_000), 7000, 10, &HashSet::new()).unwrap().is_empty(), "now B holds it");
    bh.mark_delivered(taken[0].seq, "sub", 7000).unwrap();
    assert_eq!(ids(&a.due(&claim("A", 20_000), 7000, 10, &HashSet::new()).unwrap()), ["y"], "delivered: the claim ended with it, y is the head");
}

/// A restarted host frees the claims of its dead predecessor on this
/// machine, not those of live processes or other machines.
pub fn orphan_claims_of_dead_processes_are_released(b: &Backend) {
    let s = b.host();
    s.commit(&[incoming(vec![ev("a", "A"), ev("b", "B"), ev("c", "C")])]).unwrap();
    route_all(&*s);
    let lanes: Vec<Lane> = s.due(&claim("nobody", 0), 1000, 10, &HashSet::new()).unwrap().iter().map(Due::lane).collect();
    assert_eq!(lanes.len(), 3);
    s.lane_next(&lanes[0], 0, &claim("here:100:1", 50_000), 1000).unwrap().unwrap();
    s.lane_next(&lanes[1], 0, &claim("here:200:1", 50_000), 1000).unwrap().unwrap();
    s.lane_next(&lanes[2], 0, &claim("there:100:1", 50_000), 1000).unwrap().unwrap();
    assert_eq!(s.release_orphan_claims("here", &|pid| pid == 200).unwrap(), 1, "only here:100 is gone");
    assert_eq!(ids(&s.due(&claim("new", 50_000), 2000, 10, &HashSet::new()).unwrap()), ["a"], "its dispatch is free at once");
}

/// Two hosts, two threads each, call `take` (which claims and returns ids)
/// until it has come back empty `idle_rounds` times in a row; panics when
/// one id is returned to two owners. Who claimed each id.
fn race_to_claim(b: &Backend, idle_rounds: u32, take: impl Fn(&dyn Store, &str) -> Vec<i64> + Sync) -> HashMap<i64, String> {
    let claimed = Mutex::new(HashMap::<i64, String>::new());
    let hosts = [b.host(), b.host()];
    std::thread::scope(|scope| {
        for (h, s) in hosts.iter().enumerate() {
            for t in 0..2 {
                let (claimed, take) = (&claimed, &take);
                scope.spawn(move || {
                    let owner = format!("m{h}:{t}:1");
                    let mut idle = 0;
                    while idle < idle_rounds {
                        let got = take(&**s, &owner);
                        if got.is_empty() {
                            idle += 1;
                            std::thread::sleep(std::time::Duration::from_millis(2));
                            continue;
                        }
                        idle = 0;
                        for id in got {
                            if let Some(other) = claimed.lock().unwrap().insert(id, owner.clone()) {
                                panic!("{id} claimed by {other} and by {owner}");
                            }
                        }
                    }
                });
            }
        }
    });
    claimed.into_inner().unwrap()
}

/// (a) Two hosts claim due work at once, over and over: no dispatch is
/// claimed by both, and each is delivered exactly once.
pub fn two_hosts_never_claim_one_dispatch(b: &Backend) {
    let seed = b.host();
    for batch in 0..4 {
        let events: Vec<Event> = (0..50).map(|i| ev(&format!("{batch}-{i}"), &format!("T{}", i % 25))).collect();
        seed.commit(&[incoming(events)]).unwrap();
    }
    route_all(&*seed);
    let claimed = race_to_claim(b, 20, |s, owner| {
        let due = s.due(&claim(owner, i64::MAX / 2), 2000, 7, &HashSet::new()).unwrap();
        for d in &due {
            s.mark_delivered(d.seq, "sub", 2000).unwrap();
        }
        due.iter().map(|d| d.seq).collect()
    });
    assert_eq!(claimed.len(), 200, "every dispatch was claimed once");
    let counts = seed.backlog().unwrap().counts;
    assert_eq!(counts.iter().find(|(k, _)| k == "delivered").map(|c| c.1), Some(200), "{counts:?}");
}

/// (c) Two hosts commit the same dedupe ids at once: one event each.
pub fn two_hosts_committing_one_dedupe_id_make_one_event(b: &Backend) {
    let hosts = [b.host(), b.host()];
    let barrier = Barrier::new(4);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for s in &hosts {
            for _ in 0..2 {
                let (barrier, results) = (&barrier, &results);
                scope.spawn(move || {
                    barrier.wait();
                    for i in 0..30 {
                        let c = s.commit(&[incoming(vec![ev(&format!("e{i}"), "T"), ev(&format!("f{i}"), "T")])]).unwrap();
                        results.lock().unwrap().push(c[0]);
                    }
                });
            }
        }
    });
    let results = results.into_inner().unwrap();
    assert_eq!(results.iter().map(|c| c.new_events).sum::<usize>(), 60, "each id became one event");
    assert_eq!(results.iter().map(|c| c.duplicates).sum::<usize>(), 3 * 60, "every other commit of it was a duplicate");
    let events = hosts[0].list_events(&EventFilter { limit: 1000, ..Default::default() }).unwrap();
    assert_eq!(events.len(), 60);
    assert_eq!(events.iter().map(|e| &e.dedupe_id).collect::<HashSet<_>>().len(), 60);
}

/// Routing the same events twice (two hosts) makes one dispatch each.
pub fn routing_twice_adds_nothing(b: &Backend) {
    let (a, bh) = (b.host(), b.host());
    a.commit(&[incoming(vec![ev("a", "T")])]).unwrap();
    let waiting = a.unrouted(0, 10).unwrap();
    assert_eq!(waiting.len(), 1);
    let routes: Vec<_> = waiting.into_iter().map(|u| (u, vec!["s1".to_string(), "s2".to_string()])).collect();
    a.route(&routes, 1000).unwrap();
    bh.route(&routes, 1000).unwrap();
    assert!(a.unrouted(0, 10).unwrap().is_empty());
    let detail = a.event(routes[0].0.seq).unwrap().unwrap();
    assert_eq!(detail.dispatches.iter().map(|d| d.subscriber.as_str()).collect::<Vec<_>>(), ["s1", "s2"]);
    assert_eq!(a.replay(routes[0].0.seq, 2000).unwrap(), 0, "nothing settled to replay");
}

/// (d) Two hosts claim each schedule tick: exactly one fires it.
pub fn one_host_fires_each_schedule_tick(b: &Backend) {
    let hosts = [b.host(), b.host()];
    let wins = Mutex::new(HashMap::<i64, usize>::new());
    let barrier = Barrier::new(4);
    std::thread::scope(|scope| {
        for (h, s) in hosts.iter().enumerate() {
            for t in 0..2 {
                let (wins, barrier) = (&wins, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    for tick in 0..100 {
                        if s.schedule_claim("x", "f", tick * 60_000, &format!("h{h}t{t}")).unwrap() {
                            *wins.lock().unwrap().entry(tick).or_default() += 1;
                        }
                    }
                });
            }
        }
    });
    let wins = wins.into_inner().unwrap();
    assert_eq!(wins.len(), 100, "every tick fired");
    assert!(wins.values().all(|n| *n == 1), "a tick fired twice: {wins:?}");
    assert!(hosts[0].schedule_claim("x", "g", 0, "h").unwrap(), "ticks are per function");
}

/// (f) Two hosts, several threads each, draw from one budget: exactly the
/// limit is granted, never more.
pub fn two_hosts_never_overspend_the_ledger(b: &Backend) {
    let hosts = [b.host(), b.host()];
    let spec = BucketSpec { key: "cred/p".into(), windows: vec![Window { limit: 40, seconds: 60 }] };
    let granted = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for s in &hosts {
            for _ in 0..3 {
                let (granted, spec) = (&granted, &spec);
                scope.spawn(move || {
                    for i in 0..25 {
                        // In flight half the time, done at once the other half.
                        let taken = ledger_tx(&**s, |rows| ledger::take(rows, &["cred"], std::slice::from_ref(spec), 1, 1_000_000, 1_030_000, i % 2 == 0));
                        if let Taken::Granted { ticket } = taken {
                            granted.lock().unwrap().push(ticket);
                        }
                    }
                });
            }
        }
    });
    let granted = granted.into_inner().unwrap();
    assert_eq!(granted.len(), 40, "the window's limit, exactly");
    assert_eq!(granted.iter().collect::<HashSet<_>>().len(), 40, "tickets are never reused");
    let (left, wait) = ledger_tx(&*hosts[0], |rows| ledger::status(rows, &["cred"], &spec, 1_000_001));
    assert_eq!(left, 0);
    assert!(wait > 0);
}

/// The ledger's pauses and in-flight leases are kept in the store.
pub fn ledger_pauses_and_leases_are_shared(b: &Backend) {
    let (a, bh) = (b.host(), b.host());
    let spec = BucketSpec { key: "cred/p".into(), windows: vec![Window { limit: 1, seconds: 1 }] };
    let ladder = [60_000, 300_000];
    let p = ledger_tx(&*a, |rows| ledger::refuse(rows, "cred", 0, None, &ladder, "429"));
    assert_eq!((p.level, p.until_ms), (0, 60_000));
    assert!(matches!(ledger_tx(&*bh, |rows| ledger::take(rows, &["cred"], &[], 1, 1000, 2000, false)), Taken::Wait { .. }), "the other host sees the pause");
    let Taken::Granted { ticket } = ledger_tx(&*bh, |rows| ledger::take(rows, &["other"], std::slice::from_ref(&spec), 1, 0, 5_000, false)) else { panic!("free") };
    assert!(ticket > 0);
    // Never finished: in flight until the lease ends, then done at its end.
    assert!(matches!(ledger_tx(&*a, |rows| ledger::take(rows, &["other"], std::slice::from_ref(&spec), 1, 4_000, 9_000, false)), Taken::Wait { .. }));
    assert!(matches!(ledger_tx(&*a, |rows| ledger::take(rows, &["other"], std::slice::from_ref(&spec), 1, 6_100, 9_000, false)), Taken::Granted { .. }));
}

/// (g) Two hosts claim flows at once: no flow is leased to both.
pub fn two_hosts_never_claim_one_flow(b: &Backend) {
    let seed = b.host();
    for i in 0..120 {
        let (_, new) = seed.flow_start("x", "f", &format!("k{i}"), &serde_json::json!({"i": i}), 1, 1000).unwrap();
        assert!(new);
    }
    assert!(!seed.flow_start("x", "f", "k0", &serde_json::json!(null), 1, 1000).unwrap().1, "one flow per key");
    let claimed = race_to_claim(b, 10, |s, owner| {
        let got = s.flow_claim(owner, 2000, 1_000_000, 4).unwrap();
        for f in &got {
            assert_eq!(f.lease_owner.as_deref(), Some(owner));
        }
        got.iter().map(|f| f.id).collect()
    });
    assert_eq!(claimed.len(), 120);
    assert!(seed.flow_claim("late", 2000, 1_000_000, 100).unwrap().is_empty(), "all are leased");
    assert_eq!(seed.flow_claim("late", 1_000_001, 2_000_000, 200).unwrap().len(), 120, "expired leases are taken over");
}

/// A flow's life: steps, waits, an inbox event claimed once, settling,
/// resolving an in-doubt step.
pub fn flows_wait_for_events_and_resolve(b: &Backend) {
    use spoke::flow::Resolution;
    let s = b.host();
    let (id, _) = s.flow_start("x", "f", "order-1", &serde_json::json!({"n": 1}), 3, 1000).unwrap();
    let f = s.flow_claim("m:1", 1000, 5000, 10).unwrap();
    assert_eq!((f.len(), f[0].wakes, f[0].input.clone()), (1, 1, serde_json::json!({"n": 1})));
    s.flow_step_begin(id, 0, "step", "charge", "started", None, 1000).unwrap();
    s.flow_step_update(id, 0, "done", Some(&serde_json::json!({"ok": true})), None, 1100).unwrap();
    let detail = serde_json::json!({"connector": "wics", "topic": "paid", "match": {"order": 1}});
    s.flow_step_begin(id, 1, "wait", "paid", "waiting", Some(&detail), 1200).unwrap();
    s.flow_settle(id, "m:1", &Settle::Wait { at: Some(90_000), step: "paid".into(), waiting_for: serde_json::json!({"event": "paid"}) }, 1200).unwrap();
    assert_eq!(s.flow(id).unwrap().unwrap().status, "waiting");
    let waits = s.flow_event_waits("x", "wics", "paid").unwrap();
    assert_eq!(waits.len(), 1);
    assert_eq!((waits[0].flow_id, waits[0].ordinal, waits[0].pattern.clone()), (id, 1, serde_json::json!({"order": 1})));
    assert!(s.flow_event_waits("x", "wics", "other").unwrap().is_empty());
    let inbox = s.flow_inbox_put("x", "wics", "paid", "ev1", &serde_json::json!({"order": 1}), 1300).unwrap().unwrap();
    assert_eq!(s.flow_inbox_put("x", "wics", "paid", "ev1", &serde_json::json!({"order": 1}), 1300).unwrap(), Some(inbox), "kept once");
    assert!(s.flow_inbox_claim(inbox, id, 1, 1300).unwrap());
    assert!(!s.flow_inbox_claim(inbox, id, 1, 1300).unwrap(), "claimed once");
    assert_eq!(s.flow_inbox_put("x", "wics", "paid", "ev1", &serde_json::json!({}), 1300).unwrap(), None, "claimed: not open");
    assert_eq!(s.flow_inbox_claimed(id, 1).unwrap(), Some(serde_json::json!({"order": 1})));
    assert_eq!(s.flow(id).unwrap().unwrap().status, "ready", "the event woke it");
    assert_eq!(s.flow_next_wake().unwrap(), Some(0));
    s.flow_claim("m:1", 1400, 5000, 10).unwrap();
    s.flow_step_begin(id, 2, "step", "ship", "started", None, 1400).unwrap();
    s.flow_settle(id, "m:2", &Settle::Done(serde_json::json!(null)), 1400).unwrap();
    assert_eq!(s.flow(id).unwrap().unwrap().status, "ready", "a settle by who lost the lease is ignored");
    s.flow_settle(id, "m:1", &Settle::InDoubt { step: "ship".into(), waiting_for: serde_json::json!({}) }, 1500).unwrap();
    assert!(s.flow_retry(id, 1600).unwrap_err().to_string().contains("in_doubt"));
    assert_eq!(s.flow_resolve(id, &Resolution::Value(serde_json::json!("shipped")), 1600).unwrap(), "ship");
    let steps = s.flow_steps(id).unwrap();
    assert_eq!(steps.iter().map(|s| s.status.as_str()).collect::<Vec<_>>(), ["done", "waiting", "done"]);
    assert_eq!(steps[2].result, Some(serde_json::json!("shipped")));
    assert_eq!(s.flow_step(id, 0).unwrap().unwrap().result, Some(serde_json::json!({"ok": true})));
    assert!(s.flow_resolve(id, &Resolution::Rerun, 1700).is_err(), "it is ready now, not in doubt");
    let f = s.flow_claim("m:3", 1700, 5000, 10).unwrap();
    s.flow_settle(f[0].id, "m:3", &Settle::Failed("gave up".into()), 1800).unwrap();
    assert_eq!(s.flow_counts().unwrap(), [("failed".to_string(), 1)]);
    s.flow_retry(id, 1900).unwrap();
    let listed = s.flows(&spoke::flow::FlowFilter { key: Some("order-1".into()), ..Default::default() }).unwrap();
    assert_eq!((listed.len(), listed[0].status.as_str(), listed[0].attempts), (1, "ready", 0));
}
