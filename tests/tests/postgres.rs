//! PostgreSQL as a store, as far as it is built (issue 25): the daemon reaches a real
//! server (a throwaway cluster the test starts) over its unix socket or over TLS
//! checked against a CA file, creates its schema in numbered steps once, and
//! refuses a database whose schema is newer than it knows; `migrate-store` moves a
//! database of 100,000 builds into it and back with every answer the same.

use conjunction_daemon::postgres::{connect, migrate, Migrated, PgConfig, PgError, SCHEMA_STEP};
use conjunction_tests::postgres::Cluster;

fn config(url: String) -> PgConfig {
    PgConfig {
        url,
        password_file: None,
        ca_file: None,
    }
}

#[tokio::test]
async fn the_schema_is_made_once_by_whichever_daemon_comes_first_and_a_newer_one_is_refused() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.database("schema");
    // Two daemons starting at once: one makes the schema, the other finds it made.
    let (mut a, mut b) = (
        connect(&config(url.clone())).await.unwrap(),
        connect(&config(url.clone())).await.unwrap(),
    );
    let (first, second) = tokio::join!(migrate(&mut a), migrate(&mut b));
    let mut done = [first.unwrap(), second.unwrap()];
    done.sort_by_key(|m| m.from);
    assert_eq!(
        done,
        [
            Migrated {
                from: 0,
                to: SCHEMA_STEP
            },
            Migrated {
                from: SCHEMA_STEP,
                to: SCHEMA_STEP
            }
        ]
    );
    assert_eq!(
        pg.psql("schema", "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'"),
        "conjunction_schema,outbox_claims,store_rows,writer_lease"
    );
    assert_eq!(
        pg.psql("schema", "SELECT count(*) FROM conjunction_schema"),
        SCHEMA_STEP.to_string()
    );

    // A database an older daemon made is brought up from its step, keeping its rows.
    pg.psql(
        "schema",
        "INSERT INTO store_rows VALUES (1, 'k', 'v'); DROP TABLE outbox_claims; \
         DELETE FROM conjunction_schema WHERE step = 2",
    );
    assert_eq!(
        migrate(&mut a).await.unwrap(),
        Migrated {
            from: 1,
            to: SCHEMA_STEP
        }
    );
    assert_eq!(pg.psql("schema", "SELECT count(*) FROM store_rows"), "1");
    assert_eq!(pg.psql("schema", "SELECT count(*) FROM outbox_claims"), "0");

    // A newer daemon went further; this one must not write to what it does not know.
    pg.psql(
        "schema",
        "INSERT INTO conjunction_schema (step) VALUES (99)",
    );
    let refused = migrate(&mut a).await.unwrap_err();
    assert!(
        matches!(refused, PgError::NewerSchema { found: 99, .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("run the newer daemon"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_password_in_the_url_is_refused_for_the_password_file() {
    let refused = connect(&config(
        "postgres://conjunction:hunter2@db.example/conjunction".into(),
    ))
    .await
    .unwrap_err();
    assert!(matches!(refused, PgError::PasswordInUrl), "{refused}");
    assert!(
        !refused.to_string().contains("hunter2"),
        "the secret is not echoed"
    );
}

#[tokio::test]
async fn tls_to_postgresql_is_checked_against_the_ca_file() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = conjunction_tests::chat::certificate(certs.path());
    let Some(pg) = Cluster::start_tls(&cert, &key) else {
        return;
    };
    let port = pg.tls_port.unwrap();
    let url = format!("host=localhost port={port} user=postgres dbname=postgres");
    let trusted = PgConfig {
        ca_file: Some(certs.path().join("ca.pem")),
        ..config(url.clone())
    };
    let client = connect(&trusted).await.unwrap();
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the connection is encrypted");
    // Without the CA, the server's certificate is not trusted, and TLS is not given up.
    let untrusted = connect(&config(format!("{url} sslmode=require")))
        .await
        .unwrap_err();
    assert!(
        untrusted.to_string().to_lowercase().contains("certificate"),
        "{untrusted}"
    );
}

#[tokio::test]
async fn one_daemon_holds_the_writers_lease_and_a_writer_that_lost_it_commits_nothing() {
    use conjunction_daemon::postgres::lease;
    use std::time::Duration;
    let Some(pg) = Cluster::start() else { return };
    let url = pg.database("lease");
    let mut setup = connect(&config(url.clone())).await.unwrap();
    migrate(&mut setup).await.unwrap();
    setup
        .batch_execute("CREATE TABLE written (by text NOT NULL)")
        .await
        .unwrap();
    let length = Duration::from_millis(800);
    let mut a = connect(&config(url.clone())).await.unwrap();
    let b = connect(&config(url.clone())).await.unwrap();
    lease::writer_session(&a, length).await.unwrap();

    let fence_a = lease::acquire(&a, "a", "http://10.0.0.1:7431", length)
        .await
        .unwrap()
        .expect("the first daemon takes the role");
    assert_eq!(
        lease::acquire(&b, "b", "http://10.0.0.2:7431", length)
            .await
            .unwrap(),
        None,
        "not while a holds it"
    );
    assert!(lease::renew(&a, fence_a, length).await.unwrap());
    let seen = lease::holder(&b).await.unwrap().unwrap();
    assert_eq!(
        (
            seen.holder.as_str(),
            seen.address.as_str(),
            seen.fence,
            seen.live
        ),
        ("a", "http://10.0.0.1:7431", fence_a, true),
        "a follower finds where to forward writes"
    );

    // a writes while it holds the role.
    let tx = a.transaction().await.unwrap();
    lease::fence(&tx, fence_a).await.unwrap();
    tx.execute("INSERT INTO written VALUES ('a, holding')", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // a pauses inside a write transaction, the lease row locked: b waits, and takes
    // the role once the server has ended a's idle transaction and the lease ended.
    let paused = a.transaction().await.unwrap();
    lease::fence(&paused, fence_a).await.unwrap();
    let started = std::time::Instant::now();
    let fence_b = loop {
        if let Some(f) = lease::acquire(&b, "b", "http://10.0.0.2:7431", length)
            .await
            .unwrap()
        {
            break f;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "b never took over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(fence_b > fence_a, "{fence_b} follows {fence_a}");
    // a wakes and goes on: nothing it does now commits.
    let late = paused
        .execute("INSERT INTO written VALUES ('a, after losing it')", &[])
        .await;
    let committed = match late {
        Ok(_) => paused.commit().await.is_ok(),
        Err(_) => {
            drop(paused);
            false
        }
    };
    assert!(
        !committed,
        "a paused writer commits nothing after the takeover"
    );
    drop(a);
    // Back on a new connection, its old fence opens no write.
    let mut a = connect(&config(url.clone())).await.unwrap();
    let tx = a.transaction().await.unwrap();
    let lost = lease::fence(&tx, fence_a).await.unwrap_err();
    assert!(
        matches!(
            lost,
            conjunction_daemon::postgres::PgError::LeaseLost { .. }
        ),
        "{lost}"
    );
    drop(tx);
    assert!(
        !lease::renew(&a, fence_a, length).await.unwrap(),
        "an old fence renews nothing"
    );
    assert_eq!(
        pg.psql("lease", "SELECT string_agg(by, ';') FROM written"),
        "a, holding"
    );

    // A clean stop gives the role up at once.
    lease::resign(&b, fence_b).await.unwrap();
    let fence_c = lease::acquire(&a, "a", "http://10.0.0.1:7431", length)
        .await
        .unwrap()
        .expect("taken at once after a resignation");
    assert_eq!(fence_c, fence_b + 1);
}

#[tokio::test]
async fn a_range_of_keys_on_postgresql_is_the_range_redb_reads() {
    use conjunction_daemon::postgres::rows::{self, table, Order};
    use std::collections::BTreeMap;
    use std::ops::Bound;
    let Some(pg) = Cluster::start() else { return };
    let mut client = connect(&config(pg.database("rows"))).await.unwrap();
    migrate(&mut client).await.unwrap();
    let members = table("members").unwrap();
    // Keys as the members table has them, (root, position), written out of order:
    // big-endian roots whose low bytes would sort them wrongly as little-endian.
    let mut want = BTreeMap::new();
    for (i, root) in [1u128 << 100, 255, 256, 1, u128::MAX].iter().enumerate() {
        for position in [0u32, 1, 256, 65_536] {
            let value = format!("{root}/{position}/{i}").into_bytes();
            rows::put(&client, members, &(*root, position), &value)
                .await
                .unwrap();
            want.insert((*root, position), value);
        }
    }
    let all = rows::range::<(u128, u32)>(
        &client,
        members,
        Bound::Unbounded,
        Bound::Unbounded,
        Order::Ascending,
        1_000,
    )
    .await
    .unwrap();
    assert_eq!(all, want.clone().into_iter().collect::<Vec<_>>());
    // One root's members, as a report reads them; the newest first, as lists do.
    let one = rows::range(
        &client,
        members,
        Bound::Included(&(256u128, 0u32)),
        Bound::Included(&(256u128, u32::MAX)),
        Order::Descending,
        3,
    )
    .await
    .unwrap();
    let expected: Vec<_> = want
        .range((256u128, 0)..=(256u128, u32::MAX))
        .rev()
        .take(3)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(one, expected);
    // A write replaces, a removal says whether there was a row.
    rows::put(&client, members, &(1u128, 0u32), b"again")
        .await
        .unwrap();
    assert_eq!(
        rows::get(&client, members, &(1u128, 0u32)).await.unwrap(),
        Some(b"again".to_vec())
    );
    assert!(rows::remove(&client, members, &(1u128, 0u32))
        .await
        .unwrap());
    assert!(!rows::remove(&client, members, &(1u128, 0u32))
        .await
        .unwrap());
    assert_eq!(rows::count(&client, members).await.unwrap(), 19);
    // Strings with NULs and prefixes of each other, in the projects table.
    let projects = table("projects").unwrap();
    for name in ["acme/lib", "acme/lib-extra", "acme", "acme/lib\0x"] {
        rows::put(&client, projects, &name.to_owned(), name.as_bytes())
            .await
            .unwrap();
    }
    let names: Vec<String> = rows::range::<String>(
        &client,
        projects,
        Bound::Excluded(&"acme".to_owned()),
        Bound::Unbounded,
        Order::Ascending,
        10,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|(k, _)| k)
    .collect();
    assert_eq!(names, ["acme/lib", "acme/lib\0x", "acme/lib-extra"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_never_claim_one_outbox_entry_at_once() {
    use conjunction_daemon::postgres::claims;
    use conjunction_daemon::postgres::rows::{self, table};
    use std::collections::BTreeSet;
    use std::time::Duration;
    let Some(pg) = Cluster::start() else { return };
    let url = pg.database("claims");
    let mut setup = connect(&config(url.clone())).await.unwrap();
    migrate(&mut setup).await.unwrap();
    let outbox = table("outbox").unwrap();
    for id in 0..200u128 {
        rows::put(&setup, outbox, &id, format!("trigger {id}").as_bytes())
            .await
            .unwrap();
    }
    // Two daemons take entries, a few at a time, as fast as they can.
    let hold = Duration::from_secs(60);
    let take = |who: &'static str| {
        let url = url.clone();
        async move {
            let c = connect(&config(url)).await.unwrap();
            let mut mine = Vec::new();
            loop {
                let got = claims::claim::<u128>(&c, outbox, who, hold, 7)
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                for (id, value) in got {
                    assert_eq!(value, format!("trigger {id}").into_bytes());
                    mine.push(id);
                }
                // Sending takes a while; the other daemon claims meanwhile.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    let (a, b) = tokio::join!(take("a"), take("b"));
    let (a_set, b_set): (BTreeSet<u128>, BTreeSet<u128>) =
        (a.iter().copied().collect(), b.iter().copied().collect());
    assert_eq!(a.len(), a_set.len(), "a took nothing twice");
    assert!(a_set.is_disjoint(&b_set), "no entry went to both");
    assert_eq!(a_set.len() + b_set.len(), 200, "every entry was taken");
    assert!(!a_set.is_empty() && !b_set.is_empty(), "both daemons sent");

    // A delivered entry is removed by the writer, its claim with it; a failed one is
    // given back and taken again; a claim that ran out is anyone's.
    let c = connect(&config(url.clone())).await.unwrap();
    let first = *a_set.iter().next().unwrap();
    assert!(rows::remove(&c, outbox, &first).await.unwrap());
    assert_eq!(
        pg.psql("claims", "SELECT count(*) FROM outbox_claims"),
        "199"
    );
    let second = *b_set.iter().next().unwrap();
    assert!(
        !claims::release(&c, outbox, &second, "a").await.unwrap(),
        "not a's to give"
    );
    assert!(claims::release(&c, outbox, &second, "b").await.unwrap());
    let again = claims::claim::<u128>(&c, outbox, "c", Duration::from_millis(200), 10)
        .await
        .unwrap();
    assert_eq!(again.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [second]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expired = claims::claim::<u128>(&c, outbox, "d", hold, 10)
        .await
        .unwrap();
    assert_eq!(
        expired.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [second]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_about_to_be_sent_is_claimed_by_one_daemon_and_the_other_waits_for_its_claim() {
    use conjunction_daemon::postgres::claims::{claim_one, Claim};
    use conjunction_daemon::postgres::rows::{self, table, SortKey};
    use std::time::Duration;
    let Some(pg) = Cluster::start() else { return };
    let url = pg.database("claim_one");
    let mut setup = connect(&config(url.clone())).await.unwrap();
    migrate(&mut setup).await.unwrap();
    let outbox = table("outbox").unwrap();
    let (a, b) = (
        connect(&config(url.clone())).await.unwrap(),
        connect(&config(url.clone())).await.unwrap(),
    );
    let hold = Duration::from_secs(60);
    // Both at once, fifty times: each entry is one daemon's.
    for id in 0..50u128 {
        rows::put(&setup, outbox, &id, b"trigger").await.unwrap();
        let key = id.to_bytes();
        let (x, y) = tokio::join!(
            claim_one(&a, outbox, &key, "a", hold),
            claim_one(&b, outbox, &key, "b", hold)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(
            [x, y].iter().filter(|c| **c == Claim::Mine).count(),
            1,
            "{id}: {x:?} {y:?}"
        );
        let theirs = if x == Claim::Mine { y } else { x };
        assert!(
            matches!(theirs, Claim::Theirs { ms_left } if ms_left > 50_000),
            "{theirs:?}"
        );
    }
    // A daemon's own claim is renewed; an entry the writer removed is gone; a claim
    // that ran out is the next daemon's.
    let key = 100u128.to_bytes();
    rows::put(&setup, outbox, &100u128, b"trigger")
        .await
        .unwrap();
    let short = Duration::from_millis(200);
    assert_eq!(
        claim_one(&a, outbox, &key, "a", short).await.unwrap(),
        Claim::Mine
    );
    assert_eq!(
        claim_one(&a, outbox, &key, "a", short).await.unwrap(),
        Claim::Mine
    );
    assert!(matches!(
        claim_one(&b, outbox, &key, "b", hold).await.unwrap(),
        Claim::Theirs { .. }
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        claim_one(&b, outbox, &key, "b", hold).await.unwrap(),
        Claim::Mine
    );
    assert!(rows::remove(&setup, outbox, &100u128).await.unwrap());
    assert_eq!(
        claim_one(&a, outbox, &key, "a", hold).await.unwrap(),
        Claim::Gone
    );
    assert_eq!(
        pg.psql("claim_one", "SELECT count(*) FROM outbox_claims"),
        "50",
        "the removed entry's claim went with it"
    );
}

#[tokio::test]
async fn every_daemon_hears_of_committed_events_and_nothing_else() {
    use conjunction_daemon::postgres::feed;
    use conjunction_daemon::postgres::rows::{self, table};
    use std::time::Duration;
    let Some(pg) = Cluster::start() else { return };
    let url = pg.database("feed");
    let mut writer = connect(&config(url.clone())).await.unwrap();
    migrate(&mut writer).await.unwrap();
    let events = table("events").unwrap();
    // Written before anyone followed: a follower starts from it.
    rows::put(&writer, events, &41u64, b"{}").await.unwrap();
    let mut follower = feed::follow(config(url.clone()), Duration::from_millis(100));
    let wait = |rx: &mut tokio::sync::watch::Receiver<u64>, want: u64| {
        let mut rx = rx.clone();
        async move {
            let heard = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| *s >= want))
                .await
                .map(|s| s.map(|s| *s));
            match heard {
                Ok(Ok(seq)) => seq,
                _ => panic!(
                    "{want} not heard in time; the newest heard is {}",
                    *rx.borrow()
                ),
            }
        }
    };
    assert_eq!(wait(&mut follower, 41).await, 41);

    // A transaction that rolls back announces nothing; one that commits is heard.
    let tx = writer.transaction().await.unwrap();
    rows::put(&tx, events, &42u64, b"{}").await.unwrap();
    feed::announce(&tx, 42).await.unwrap();
    tx.rollback().await.unwrap();
    let tx = writer.transaction().await.unwrap();
    rows::put(&tx, events, &42u64, b"{}").await.unwrap();
    rows::put(&tx, events, &43u64, b"{}").await.unwrap();
    feed::announce(&tx, 43).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        wait(&mut follower, 42).await,
        43,
        "the rolled-back 42 was never the newest"
    );
    assert_eq!(feed::last_seq(&writer).await.unwrap(), 43);

    // Committed without a word: only a reconnection's catch-up can tell of it.
    rows::put(&writer, events, &44u64, b"{}").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*follower.borrow(), 43);
    // Cut off (its backend ended), the follower reconnects and reads where the
    // events are, which no notification will tell it again.
    let writer_pid: i32 = writer
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let cut = pg.psql(
        "feed",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = 'feed' AND pid NOT IN ({writer_pid}, pg_backend_pid())"
        ),
    );
    assert_eq!(cut, "1", "the follower's one connection");
    assert_eq!(wait(&mut follower, 44).await, 44);
}

#[tokio::test]
async fn a_daemons_redb_file_is_copied_into_postgresql_table_by_table_and_verified() {
    use conjunction_daemon::postgres::copy::{copy_into, CopyError};
    use conjunction_sim::webhook::WebhookCi;
    use conjunction_tests::daemon::TestDaemon;
    let Some(pg) = Cluster::start() else { return };
    // A database as a daemon writes it: projects, a cascade with triggers, the
    // audit trail, the feed's events.
    let d = TestDaemon::start().await;
    let ci = WebhookCi::start(None).await.unwrap();
    let lib = conjunction_protocol::ProjectId::parse("acme/lib").unwrap();
    let (_, created) = d
        .api
        .put_project(
            &lib,
            &conjunction_protocol::ProjectSpec {
                name: "Lib".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for name in ["acme/app", "acme/tool"] {
        let spec = conjunction_tests::postgres::dependent_spec(name, &lib, ci.url());
        d.api
            .put_project(
                &conjunction_protocol::ProjectId::parse(name).unwrap(),
                &spec,
            )
            .await
            .unwrap();
    }
    let token = created.report_token.unwrap();
    let ack = d
        .api
        .report(&token, &conjunction_tests::postgres::release(&lib, "1.0.0"))
        .await
        .unwrap();
    conjunction_tests::eventually(
        "the cascade to settle",
        std::time::Duration::from_secs(15),
        || async {
            let e = d.api.root(ack.root).await.ok()?;
            e.nodes
                .iter()
                .all(|n| n.state.kind().is_final())
                .then_some(())
        },
    )
    .await;
    let answers = |api: conjunction_tui::client::Client| async move {
        (
            api.projects().await.unwrap(),
            api.root(ack.root).await.unwrap(),
            api.roots(10).await.unwrap(),
            api.audit(None).await.unwrap(),
        )
    };
    let before = answers(d.api.clone()).await;
    let file = d.data_dir().join("conjunction.redb");
    let mut client = connect(&config(pg.database("copy"))).await.unwrap();
    migrate(&mut client).await.unwrap();
    let refused = copy_into(&file, &mut client).await.unwrap_err();
    assert!(
        refused.to_string().contains("open in a running daemon"),
        "{refused}"
    );
    let kept = d.stop().await.expect("the data directory");

    let copied = copy_into(&kept.path().join("conjunction.redb"), &mut client)
        .await
        .unwrap();
    let rows = |name: &str| copied.iter().find(|t| t.name == name).unwrap().rows;
    assert_eq!(copied.len(), 27, "every table");
    assert_eq!(rows("projects"), 3);
    assert_eq!(rows("nodes"), 3, "the root and its two dependents");
    assert_eq!(rows("roots"), 1);
    assert!(
        rows("events") > 6 && rows("audit") >= 4 && rows("meta") >= 2,
        "{copied:?}"
    );
    assert_eq!(
        pg.psql("copy", "SELECT count(*) FROM store_rows"),
        copied.iter().map(|t| t.rows).sum::<u64>().to_string()
    );
    // Into a database that holds rows already: refused, nothing added.
    let again = copy_into(&kept.path().join("conjunction.redb"), &mut client)
        .await
        .unwrap_err();
    assert!(matches!(again, CopyError::NotEmpty(_)), "{again}");
    assert_eq!(
        pg.psql("copy", "SELECT count(*) FROM store_rows"),
        copied.iter().map(|t| t.rows).sum::<u64>().to_string()
    );

    // A daemon on the copy answers as the daemon on the file did, and goes on from
    // there: the next release cascades, and a restart finds all of it.
    let url = pg.url("copy");
    let on_pg = TestDaemon::start_adjusted(|s| s.store.url = Some(url.clone())).await;
    assert_eq!(answers(on_pg.api.clone()).await, before);
    let next = on_pg
        .api
        .report(&token, &conjunction_tests::postgres::release(&lib, "1.1.0"))
        .await
        .unwrap();
    let settled = |api: conjunction_tui::client::Client| async move {
        conjunction_tests::eventually(
            "the cascade on PostgreSQL to settle",
            std::time::Duration::from_secs(15),
            || async {
                let e = api.root(next.root).await.ok()?;
                e.nodes
                    .iter()
                    .all(|n| n.state.kind() == conjunction_protocol::StateKind::Passed)
                    .then_some(e)
            },
        )
        .await
    };
    let event = settled(on_pg.api.clone()).await;
    assert_eq!(event.nodes.len(), 3);
    on_pg.stop().await;
    let again = TestDaemon::start_adjusted(|s| s.store.url = Some(url.clone())).await;
    assert_eq!(settled(again.api.clone()).await, event);
    assert_eq!(again.api.roots(10).await.unwrap().len(), 2);
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_daemon_is_the_writer_and_another_takes_over_when_it_dies() {
    use conjunction_daemon::postgres::role::{self, Candidate, Role};
    use std::time::{Duration, Instant};
    let Some(pg) = Cluster::start() else { return };
    let url = pg.database("role");
    migrate(&mut connect(&config(url.clone())).await.unwrap())
        .await
        .unwrap();
    let me = |name: &str| Candidate {
        name: name.into(),
        address: format!("http://{name}.example:7431"),
        length: Duration::from_millis(900),
    };
    let writer_of = |rx: &tokio::sync::watch::Receiver<Role>| match &*rx.borrow() {
        Role::Writer { fence } => Some(*fence),
        _ => None,
    };
    let settled = |a: tokio::sync::watch::Receiver<Role>, b: tokio::sync::watch::Receiver<Role>| async move {
        conjunction_tests::eventually(
            "one writer and one follower",
            Duration::from_secs(10),
            || {
                let (a, b) = (a.clone(), b.clone());
                async move {
                    let roles = (a.borrow().clone(), b.borrow().clone());
                    match roles {
                        (Role::Writer { .. }, Role::Follower { writer: Some(_) })
                        | (Role::Follower { writer: Some(_) }, Role::Writer { .. }) => Some(roles),
                        _ => None,
                    }
                }
            },
        )
        .await
    };
    let (a, a_task) = role::keep(config(url.clone()), me("a"));
    let (b, b_task) = role::keep(config(url.clone()), me("b"));
    let (ra, rb) = settled(a.clone(), b.clone()).await;
    // The follower knows where the writer is.
    let (writer, mut follower, follower_task, dead) = match (&ra, &rb) {
        (Role::Writer { .. }, Role::Follower { writer: Some(h) }) => {
            assert_eq!(h.address, "http://a.example:7431");
            (writer_of(&a).unwrap(), b, b_task, a_task)
        }
        (Role::Follower { writer: Some(h) }, Role::Writer { .. }) => {
            assert_eq!(h.address, "http://b.example:7431");
            (writer_of(&b).unwrap(), a, a_task, b_task)
        }
        other => panic!("{other:?}"),
    };
    // The writer dies without a word (its task is gone, its connection with it): the
    // other takes the role once the lease has run out, with a later fence.
    let died = Instant::now();
    dead.abort();
    let fence = tokio::time::timeout(
        Duration::from_secs(10),
        follower.wait_for(|r| matches!(r, Role::Writer { .. })),
    )
    .await
    .expect("a takeover")
    .map(|r| match &*r {
        Role::Writer { fence } => *fence,
        _ => unreachable!(),
    })
    .unwrap();
    println!(
        "takeover after the writer died: {:?} (lease 900 ms)",
        died.elapsed()
    );
    assert!(fence > writer, "{fence} after {writer}");

    // A clean stop gives the role up: a newcomer takes it without waiting it out.
    drop(follower);
    tokio::time::timeout(Duration::from_secs(5), follower_task)
        .await
        .expect("the task ends")
        .unwrap();
    let (mut c, _c_task) = role::keep(config(url.clone()), me("c"));
    let taken = tokio::time::timeout(
        Duration::from_secs(10),
        c.wait_for(|r| matches!(r, Role::Writer { .. })),
    )
    .await
    .expect("taken after the resignation")
    .map(|r| r.clone())
    .unwrap();
    assert_eq!(taken, Role::Writer { fence: fence + 1 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_follows_serves_reads_forwards_writes_to_the_writer_and_takes_over() {
    use conjunction_protocol::{ProjectId, ProjectSpec};
    use conjunction_tests::daemon::TestDaemon;
    let Some(pg) = Cluster::start() else { return };
    let url = pg.database("two");
    let on_pg = |s: &mut conjunction_daemon::Settings| {
        s.store.url = Some(url.clone());
        s.store.lease = std::time::Duration::from_millis(1_000);
    };
    let first = TestDaemon::start_adjusted(on_pg).await;
    let lib = ProjectId::parse("acme/lib").unwrap();
    let spec = ProjectSpec {
        name: "Lib".into(),
        ..Default::default()
    };
    assert_eq!(first.api.put_project(&lib, &spec).await.unwrap().0, 201);
    assert_eq!(first.api.health().await.unwrap()["writer"], "ok");

    let second = TestDaemon::start_adjusted(on_pg).await;
    // Healthy, and saying what it is, while the first writes.
    let health = conjunction_tests::eventually(
        "the second daemon to serve as a follower",
        std::time::Duration::from_secs(10),
        || async {
            second
                .api
                .health()
                .await
                .ok()
                .filter(|h| h["writer"] == "follower")
        },
    )
    .await;
    assert_eq!(health["status"], "ok");
    // It reads what the first wrote.
    let listed = second.api.projects().await.unwrap();
    let ids: Vec<&ProjectId> = listed.iter().map(|p| &p.id).collect();
    assert_eq!(ids, [&lib]);
    // Its feed clients hear what the writer commits, in order, from the snapshot on.
    use conjunction_protocol::ws::{Change, ServerMessage};
    use conjunction_tests::feed::Feed;
    let wait = std::time::Duration::from_secs(10);
    let mut feed = Feed::connect(
        &second.api.feed_url(None),
        conjunction_tests::daemon::OPERATOR_TOKEN,
    )
    .await
    .unwrap();
    let mut from = None;
    while from.is_none() {
        if let ServerMessage::Snapshot { seq, .. } = feed.next(wait).await {
            from = Some(seq);
        }
    }
    // A write that reaches it is the writer's: sent on, committed there, answered as
    // the writer answered.
    let app = ProjectId::parse("acme/app").unwrap();
    let (status, created) = second.api.put_project(&app, &spec).await.unwrap();
    assert_eq!(status, 201);
    match feed.next(wait).await {
        ServerMessage::Event(e) => {
            assert_eq!(
                Some(e.seq),
                from.map(|s| s + 1),
                "the next event, none missed"
            );
            assert!(
                matches!(&e.change, Change::ProjectUpserted { project } if project.id == app),
                "{e:?}"
            );
        }
        other => panic!("expected the writer's event, got {other:?}"),
    }
    assert!(created.report_token.is_some());
    assert_eq!(first.api.projects().await.unwrap().len(), 2);
    assert_eq!(second.api.projects().await.unwrap().len(), 2);
    // A writer it cannot reach: the write is refused as one to try again, and
    // nothing changes.
    let published = pg.psql("two", "SELECT address FROM writer_lease");
    pg.psql(
        "two",
        "UPDATE writer_lease SET address = 'http://127.0.0.1:9'",
    );
    // Until the follower reads the lease again (a third of its length), writes still
    // reach the writer; each try is a new project, so the refused one is known.
    let mut tries = 0;
    let (refused, tried) = loop {
        tries += 1;
        assert!(tries < 100, "the follower never read the new address");
        let id = format!("acme/t{tries}");
        let answer = second
            .api
            .raw(
                reqwest::Method::PUT,
                &format!("/v1/projects/acme%2Ft{tries}"),
                Some(conjunction_tests::daemon::OPERATOR_TOKEN),
                Some(serde_json::to_vec(&spec).unwrap()),
            )
            .await
            .unwrap();
        if answer.status != 201 {
            break (answer, ProjectId::parse(&id).unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(refused.status, 503, "{}", refused.json());
    assert_eq!(refused.json()["error"], "not_writer");
    assert!(first.api.project(&tried).await.is_err(), "nothing was made");
    let before_takeover = first.api.projects().await.unwrap().len();
    pg.psql(
        "two",
        &format!("UPDATE writer_lease SET address = '{published}'"),
    );
    // Backups are the database's own.
    let backup = first
        .api
        .raw(
            reqwest::Method::POST,
            "/v1/backup",
            Some(conjunction_tests::daemon::OPERATOR_TOKEN),
            None,
        )
        .await
        .unwrap();
    assert_eq!(backup.status, 409);
    assert_eq!(backup.json()["error"], "not_on_postgres");
    assert!(
        backup.json()["message"]
            .as_str()
            .unwrap()
            .contains("pg_dump"),
        "{}",
        backup.json()
    );

    // The first stops (and gives the role up): the second takes it and writes.
    first.stop().await;
    conjunction_tests::eventually(
        "the second daemon to take the writer's role",
        std::time::Duration::from_secs(10),
        || async {
            second
                .api
                .health()
                .await
                .ok()
                .filter(|h| h["writer"] == "ok")
        },
    )
    .await;
    let tool = ProjectId::parse("acme/tool").unwrap();
    assert_eq!(second.api.put_project(&tool, &spec).await.unwrap().0, 201);
    assert_eq!(
        second.api.projects().await.unwrap().len(),
        before_takeover + 1
    );
    second.stop().await;
}

#[tokio::test]
async fn a_daemon_refuses_a_database_whose_schema_is_newer_than_it_knows() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.database("newer");
    let mut client = connect(&config(url.clone())).await.unwrap();
    migrate(&mut client).await.unwrap();
    pg.psql("newer", "INSERT INTO conjunction_schema (step) VALUES (99)");
    let dir = tempfile::tempdir().unwrap();
    let mut settings = conjunction_daemon::Settings::new(dir.path());
    settings.store.url = Some(url);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = conjunction_daemon::serve(settings, listener, std::future::pending())
        .await
        .unwrap_err();
    // As the binary prints it: the error and its causes.
    let mut said = refused.to_string();
    let mut cause = std::error::Error::source(&refused);
    while let Some(c) = cause {
        said.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert!(
        said.contains("step 99") && said.contains("run the newer daemon"),
        "{said}"
    );
    assert_eq!(pg.psql("newer", "SELECT count(*) FROM store_rows"), "0");
}

/// Builds in the database the `migrate-store` round trip copies, unless
/// `CONJUNCTION_MIGRATE_BUILDS` says otherwise (at least one release).
fn migrated_builds() -> usize {
    std::env::var("CONJUNCTION_MIGRATE_BUILDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

/// The lines `migrate-store` prints for the tables it copied: name, rows, checksum.
fn table_lines(said: &str) -> Vec<String> {
    said.lines()
        .filter(|l| l.split_whitespace().count() == 3 && !l.starts_with("table "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_store_copies_a_database_into_postgresql_and_back_with_identical_answers() {
    use conjunction_protocol::access::{Scope, TokenRequest};
    use conjunction_protocol::{Dependency, ProjectEntry, ProjectId, ProjectSpec, StateKind};
    use conjunction_sim::webhook::WebhookCi;
    use conjunction_tests::daemon::{run_conjunctiond, TestDaemon};
    use std::time::Duration;
    let Some(pg) = Cluster::start() else { return };
    // A wide graph, released again and again: a tenth of the dependents take every
    // release and are triggered (outbox entries, deliveries, results), the rest
    // declare a range every release is beyond and so need a bump.
    const DEPENDENTS: usize = 1_000;
    let releases = migrated_builds().div_ceil(DEPENDENTS + 1).max(1);
    let d = TestDaemon::start().await;
    let ci = WebhookCi::start(None).await.unwrap();
    let lib = ProjectId::parse("acme/lib").unwrap();
    let mut projects = vec![ProjectEntry {
        id: lib.clone(),
        spec: ProjectSpec {
            name: "Lib".into(),
            ..Default::default()
        },
    }];
    for i in 0..DEPENDENTS {
        let name = format!("acme/app-{i:04}");
        let mut spec = conjunction_tests::postgres::dependent_spec(&name, &lib, ci.url());
        if i % 10 != 0 {
            spec.depends_on = vec![Dependency {
                range: Some("^0.1.0".into()),
                ..spec.depends_on[0].clone()
            }];
        }
        projects.push(ProjectEntry {
            id: ProjectId::parse(&name).unwrap(),
            spec,
        });
    }
    d.api.apply_projects(&projects).await.unwrap();
    let issued = d
        .api
        .create_token(&TokenRequest {
            name: "ana".into(),
            scope: Scope::Viewer,
            expires_at: None,
        })
        .await
        .unwrap();
    let report_token = d.api.rotate_report_token(&lib).await.unwrap();
    let started = std::time::Instant::now();
    let mut roots = Vec::with_capacity(releases);
    for r in 0..releases {
        let release = conjunction_tests::postgres::release(&lib, &format!("1.{r}.0"));
        roots.push(d.api.report(&report_token, &release).await.unwrap().root);
    }
    // Every cascade settled and every trigger sent before the file is copied.
    conjunction_tests::eventually(
        "every cascade to settle",
        Duration::from_secs(600),
        || async {
            let last = d.api.root(*roots.last()?).await.ok()?;
            let summaries = d.api.roots(releases + 10).await.ok()?;
            (last.nodes.iter().all(|n| n.state.kind().is_final())
                && summaries
                    .iter()
                    .all(|s| s.counts.keys().all(|k| k.is_final())))
            .then_some(())
        },
    )
    .await;
    eprintln!(
        "{} builds in {releases} releases made in {:.1} s",
        releases * (DEPENDENTS + 1),
        started.elapsed().as_secs_f64()
    );
    let answers = |api: conjunction_tui::client::Client, roots: Vec<_>| async move {
        let mut events = Vec::with_capacity(roots.len());
        for root in roots {
            events.push(api.root(root).await.unwrap());
        }
        (
            api.projects().await.unwrap(),
            api.roots(releases + 10).await.unwrap(),
            events,
            api.audit(None).await.unwrap(),
            api.tokens().await.unwrap(),
        )
    };
    let before = answers(d.api.clone(), roots.clone()).await;
    assert_eq!(
        before.2.iter().map(|e| e.nodes.len()).sum::<usize>(),
        releases * (DEPENDENTS + 1)
    );
    let kept = d.stop().await.expect("the data directory");
    let file = kept.path().join("conjunction.redb");

    let url = pg.database("migrated");
    let (ok, into) = run_conjunctiond(&[
        "migrate-store",
        "--from",
        file.to_str().unwrap(),
        "--to",
        &url,
    ])
    .await;
    assert!(ok, "{into}");
    assert!(
        into.contains("every table's count and checksum match"),
        "{into}"
    );
    let nodes_line = table_lines(&into)
        .into_iter()
        .find(|l| l.starts_with("nodes "))
        .unwrap();
    assert!(
        nodes_line.contains(&format!(" {} ", releases * (DEPENDENTS + 1))),
        "{nodes_line}"
    );
    // Again into the same database: refused, as it holds rows now.
    let (ok, again) = run_conjunctiond(&[
        "migrate-store",
        "--from",
        file.to_str().unwrap(),
        "--to",
        &url,
    ])
    .await;
    assert!(!ok && again.contains("copy into an empty one"), "{again}");

    // And back out into a new file: every table as it was, row for row.
    let back_dir = tempfile::tempdir().unwrap();
    let back = back_dir.path().join("conjunction.redb");
    let (ok, out) = run_conjunctiond(&[
        "migrate-store",
        "--from",
        &url,
        "--to",
        back.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{out}");
    assert_eq!(table_lines(&out), table_lines(&into), "{out}");
    let (ok, exists) = run_conjunctiond(&[
        "migrate-store",
        "--from",
        &url,
        "--to",
        back.to_str().unwrap(),
    ])
    .await;
    assert!(!ok && exists.contains("exists"), "{exists}");

    // A daemon on the database, and one on the file copied back, answer as the
    // first did, and go on from there with the same report token.
    let on_pg = TestDaemon::start_adjusted(|s| s.store.url = Some(url.clone())).await;
    assert_eq!(answers(on_pg.api.clone(), roots.clone()).await, before);
    on_pg.stop().await;
    let mut settings = conjunction_daemon::Settings::new(back_dir.path());
    settings.dispatch = conjunction_tests::daemon::fast_dispatch();
    let on_file = TestDaemon::start_with(settings).await;
    assert_eq!(answers(on_file.api.clone(), roots.clone()).await, before);
    let next = on_file
        .api
        .report(
            &report_token,
            &conjunction_tests::postgres::release(&lib, "2.0.0"),
        )
        .await
        .unwrap();
    let event =
        conjunction_tests::eventually("the next cascade", Duration::from_secs(60), || async {
            let e = on_file.api.root(next.root).await.ok()?;
            e.nodes
                .iter()
                .all(|n| n.state.kind().is_final())
                .then_some(e)
        })
        .await;
    let passed = event
        .nodes
        .iter()
        .filter(|n| n.state.kind() == StateKind::Passed)
        .count();
    assert_eq!(
        passed,
        1 + DEPENDENTS / 10,
        "the root and every dependent taking it"
    );
    assert!(on_file
        .api
        .tokens()
        .await
        .unwrap()
        .iter()
        .any(|t| t.id == issued.info.id));
    on_file.stop().await;
}
