//! Online backup: `conjunctiond backup` takes a consistent copy from the running
//! daemon while reports keep coming, `conjunctiond restore` puts it in place, and a
//! daemon started on it has every report acknowledged before the backup began.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use conjunction_protocol::BuildId;
use conjunction_tests::daemon::{run_conjunctiond, DaemonProcess};

use crate::*;

#[tokio::test]
async fn a_backup_taken_under_load_restores_every_report_acknowledged_before_it_began() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = DaemonProcess::start(&data, "").await;
    let token = register(&daemon.api, "acme/lib", &[], None).await;

    // Four clients report new versions without pause; each acknowledgement is noted
    // with the moment it came.
    let acks: Arc<Mutex<Vec<(BuildId, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for client in 0..4 {
        let (api, token, acks, stop) = (
            daemon.api.clone(),
            token.clone(),
            acks.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let version = format!("1.{client}.{n}");
                if let Ok(ack) = api.report(&token, &root_report("acme/lib", &version)).await {
                    acks.lock().unwrap().push((ack.root, Instant::now()));
                }
            }
        }));
    }
    eventually("load to build up", WAIT, || async {
        (acks.lock().unwrap().len() >= 300).then_some(())
    })
    .await;

    let backup = dir.path().join("backup.redb");
    let began = Instant::now();
    let url = format!("http://{}", daemon.addr);
    let (ok, said) =
        run_conjunctiond(&["backup", "--to", backup.to_str().unwrap(), "--url", &url]).await;
    let ended = Instant::now();
    assert!(ok, "{said}");
    assert!(said.contains("every page verified"), "{said}");
    // The daemon served on while it was made.
    eventually("reports after the backup", WAIT, || async {
        acks.lock()
            .unwrap()
            .iter()
            .any(|(_, at)| *at > ended)
            .then_some(())
    })
    .await;

    // Restoring over a database a daemon has open is refused.
    let (ok, said) = run_conjunctiond(&[
        "restore",
        "--from",
        backup.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ])
    .await;
    assert!(!ok);
    assert!(said.contains("is in use: stop the daemon"), "{said}");

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    let before: Vec<BuildId> = acks
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|(root, _)| *root)
        .collect();
    assert!(before.len() >= 300);
    assert!(daemon.terminate().await.success());

    let restored = dir.path().join("restored");
    let (ok, said) = run_conjunctiond(&[
        "restore",
        "--from",
        backup.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{said}");
    let daemon = DaemonProcess::start(&restored, "").await;
    for root in &before {
        let event = daemon.api.root(*root).await.unwrap_or_else(|e| {
            panic!("root {root}, acknowledged before the backup began, is missing: {e}")
        });
        assert_eq!(event.summary.project.as_str(), "acme/lib");
    }
    // The restored daemon takes reports where the backup left off.
    report_root(&daemon.api, &token, "acme/lib", "9.9.9").await;
    assert!(daemon.terminate().await.success());
}
