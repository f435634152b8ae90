//! The store contract (`contract.rs`) against every engine: a SQLite file
//! in a temporary directory, and a fresh database on a private PostgreSQL
//! server (`spoke_tests::postgres::Cluster`). Then what only PostgreSQL
//! has: its password secret, machine-scoped runs, reconnecting, being
//! called from inside tokio.
mod contract;

use contract::Backend;
use spoke::config::{PostgresLocation, Secret};
use spoke::store::{PgStore, SqliteStore, Store};
use spoke_tests::postgres::{Cluster, PASSWORD};
use std::sync::Arc;

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spoke.db");
    Backend::new(move || Arc::new(SqliteStore::open(&path).unwrap()) as Arc<dyn Store>, dir)
}

fn location(url: String, password: Option<&str>) -> PostgresLocation {
    PostgresLocation { url, password: password.map(Secret::new), connections: 4, statement_timeout_secs: 30.0 }
}

fn postgres() -> Backend {
    let cluster = Cluster::start();
    let loc = location(cluster.database("spoke"), None);
    Backend::new(move || Arc::new(PgStore::open(&loc).unwrap()) as Arc<dyn Store>, cluster)
}

/// One test per engine for each contract function: `<name>::sqlite` and
/// `<name>::postgres`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::contract::$name(&super::sqlite());
            }
            #[test]
            fn postgres() {
                super::contract::$name(&super::postgres());
            }
        }
    )*};
}

both!(
    refusals_keep_only_the_newest,
    prune_keeps_pending_work_and_drops_what_retention_does_not_keep,
    prune_drops_finished_flows_and_untaken_events_but_never_unfinished_flows,
    kv_quota_counts_keys_and_bytes_per_connector,
    kv_quota_holds_across_hosts,
    incr_and_swap_from_two_hosts_count_exactly,
    swap_needs_the_expected_value_and_incr_an_integer,
    state_list_takes_exactly_the_keys_with_the_prefix,
    runs_filter_by_function_and_outcome,
    versions_survive_removal_and_orphan_runs_are_interrupted,
    hosts_loading_one_script_at_once_all_succeed,
    hosts_opening_a_new_store_at_once_all_start,
    kv_is_per_connector_and_survives_reopen,
    duplicates_are_recorded_but_not_dispatched,
    dedupe_keys_outlive_three_days_then_go,
    lanes_go_in_order_and_failures_hold_the_lane,
    lanes_this_host_is_busy_with_are_passed_over,
    lane_next_walks_one_lane_in_order,
    a_claim_holds_until_its_lease_ends,
    orphan_claims_of_dead_processes_are_released,
    two_hosts_never_claim_one_dispatch,
    two_hosts_committing_one_dedupe_id_make_one_event,
    routing_twice_adds_nothing,
    one_host_fires_each_schedule_tick,
    two_hosts_never_overspend_the_ledger,
    ledger_pauses_and_leases_are_shared,
    two_hosts_never_claim_one_flow,
    flows_wait_for_events_and_resolve,
);

/// `[postgres] password` reaches the server; without it, or with a wrong
/// one, opening fails naming the URL and never the password.
#[test]
fn postgres_password_comes_from_the_secret_and_never_shows() {
    let cluster = Cluster::start();
    let url = cluster.database_with_password("guarded");
    assert!(!url.contains(PASSWORD));
    let s = PgStore::open(&location(url.clone(), Some(PASSWORD))).unwrap();
    s.state_set("x", "k", "1", 1).unwrap();
    assert_eq!(s.state_get("x", "k").unwrap().as_deref(), Some("1"));

    let e = format!("{:#}", PgStore::open(&location(url.clone(), None)).err().expect("no password, no entry"));
    assert!(e.contains(&url), "the error names the store: {e}");
    let wrong = "not-the-Password-42";
    let e = PgStore::open(&location(url.clone(), Some(wrong))).err().expect("a wrong password is refused");
    let e = format!("{e:#} / {e:?}");
    assert!(e.contains(&url) && e.contains("password authentication failed"), "{e}");
    assert!(!e.contains(wrong) && !e.contains(PASSWORD), "the error shows a password: {e}");
}

/// Runs left running on another machine are that machine's to judge.
#[test]
fn postgres_interrupts_only_this_machines_runs() {
    let cluster = Cluster::start();
    let s = PgStore::open(&location(cluster.database("runs"), None)).unwrap();
    let mine = s.run_start("x", 1, "f", "manual", 1).unwrap();
    let theirs = s.run_start("x", 1, "f", "manual", 1).unwrap();
    assert_eq!(cluster.psql("runs", &format!("SELECT machine FROM runs WHERE id = {mine}")), spoke::store::machine());
    cluster.psql("runs", &format!("UPDATE runs SET machine = 'elsewhere' WHERE id = {theirs}"));
    assert_eq!(s.interrupt_orphan_runs(5, &|_| false).unwrap(), 1);
    assert_eq!(s.run(mine).unwrap().unwrap().outcome.as_deref(), Some("interrupted"));
    assert_eq!(s.run(theirs).unwrap().unwrap().outcome, None, "another machine's run is left alone");
}

/// A connection the server dropped is replaced on next use.
#[test]
fn postgres_reconnects_after_the_server_drops_a_connection() {
    let cluster = Cluster::start();
    let loc = PostgresLocation { connections: 2, ..location(cluster.database("reconnect"), None) };
    let s = PgStore::open(&loc).unwrap();
    s.state_set("x", "k", "1", 1).unwrap();
    let killed = cluster.psql("reconnect", "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'spoke'");
    assert_ne!(killed, "0", "the store's connections were found");
    // The connection task sees the end of its socket shortly after.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..4 {
        assert_eq!(s.state_get("x", "k").unwrap().as_deref(), Some("1"));
    }
}

/// The migrations are applied once and recorded.
#[test]
fn postgres_migrations_are_recorded_once() {
    let cluster = Cluster::start();
    let loc = location(cluster.database("migrated"), None);
    drop(PgStore::open(&loc).unwrap());
    drop(PgStore::open(&loc).unwrap());
    assert_eq!(cluster.psql("migrated", "SELECT string_agg(name, ',' ORDER BY name) FROM schema_migrations"), "0001_initial,0002_due_index");
}

/// Called straight from async code on a current-thread runtime (where a
/// blocking client would deadlock or panic), and dropped there.
#[tokio::test(flavor = "current_thread")]
async fn postgres_store_works_inside_a_current_thread_runtime() {
    let cluster = Cluster::start();
    let s: Arc<dyn Store> = Arc::new(PgStore::open(&location(cluster.database("rt1"), None)).unwrap());
    assert_eq!(s.state_incr("x", "n", 2, 1).unwrap(), 2);
    tokio::task::yield_now().await;
    assert_eq!(s.state_incr("x", "n", 3, 1).unwrap(), 5);
    drop(s);
}

/// From tasks and blocking threads of a multi-thread runtime at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_works_inside_a_multi_thread_runtime() {
    let cluster = Cluster::start();
    let s: Arc<dyn Store> = Arc::new(PgStore::open(&location(cluster.database("rt2"), None)).unwrap());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        if i % 2 == 0 {
            tasks.push(tokio::spawn(async move { s.state_incr("x", "n", 1, 1).unwrap() }));
        } else {
            tasks.push(tokio::task::spawn_blocking(move || s.state_incr("x", "n", 1, 1).unwrap()));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.state_get("x", "n").unwrap().as_deref(), Some("8"));
}

/// A cluster leaves no server process and no directory behind.
#[test]
fn postgres_cluster_stops_and_cleans_up() {
    let cluster = Cluster::start();
    let port = cluster.port();
    let data = cluster.psql("postgres", "SHOW data_directory");
    assert!(std::path::Path::new(&data).exists());
    drop(cluster);
    assert!(!std::path::Path::new(&data).exists(), "{data} is left behind");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "a server still listens on {port}");
    let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).lines().any(|l| l.contains(&data)), "a server of {data} still runs");
}
