//! Online backup: `conjunctiond backup` takes a consistent copy from the running
//! daemon while reports keep coming, `conjunctiond restore` puts it in place, and a
//! daemon started on it has every report acknowledged before the backup began.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use conjunction_protocol::BuildId;
use conjunction_tests::daemon::{run_conjunctiond, DaemonProcess};

use crate::*;

/// Runs `conjunctiond restore --from backup --data-dir data`.
async fn restore(backup: &std::path::Path, data: &std::path::Path) -> (bool, String) {
    run_conjunctiond(&[
        "restore".as_ref(),
        "--from".as_ref(),
        backup.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ])
    .await
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_every_report_acknowledged_before_it_began() {
    if conjunction_tests::redb_only(
        "online backup copies the file; on PostgreSQL backups are pg_dump's",
    ) {
        return;
    }
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
    let (ok, said) = restore(&backup, &data).await;
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
    let (ok, said) = restore(&backup, &restored).await;
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

#[tokio::test]
async fn checking_and_restoring_only_read_the_file_and_a_backup_on_read_only_media_restores() {
    if conjunction_tests::redb_only("checking and restoring a backup file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = DaemonProcess::start(&data, "").await;
    let token = register(&daemon.api, "acme/lib", &[], None).await;
    report_root(&daemon.api, &token, "acme/lib", "1.0.0").await;
    let backup = dir.path().join("backup.redb");
    let url = format!("http://{}", daemon.addr);
    let (ok, said) =
        run_conjunctiond(&["backup", "--to", backup.to_str().unwrap(), "--url", &url]).await;
    assert!(ok, "{said}");
    // A check of a file a daemon has open is refused, and changes nothing.
    let db = data.join("conjunction.redb");
    let (ok, said) =
        run_conjunctiond(&["--check-database", "--data-dir", data.to_str().unwrap()]).await;
    assert!(!ok && said.contains("open in a running daemon"), "{said}");
    assert!(daemon.terminate().await.success());

    let before = std::fs::read(&db).unwrap();
    let (ok, said) =
        run_conjunctiond(&["--check-database", "--data-dir", data.to_str().unwrap()]).await;
    assert!(ok && said.contains("is intact"), "{said}");
    assert!(
        std::fs::read(&db).unwrap() == before,
        "--check-database changed the file it read"
    );

    let backup_bytes = std::fs::read(&backup).unwrap();
    let restored = dir.path().join("restored");
    let (ok, said) = restore(&backup, &restored).await;
    assert!(ok, "{said}");
    assert!(
        std::fs::read(&backup).unwrap() == backup_bytes,
        "restore changed the backup it read"
    );

    // The backup on a read-only file system (a tmpfs mounted read-only in a mount
    // namespace of the restore's own), restored by the real binary.
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let from_media = dir.path().join("from-media");
    let script = format!(
        "mount -t tmpfs none '{m}' && cp '{b}' '{m}/backup.redb' && chmod 0444 '{m}/backup.redb' \
         && mount -o remount,ro '{m}' && exec \"$0\" restore --from '{m}/backup.redb' --data-dir '{d}'",
        m = media.display(),
        b = backup.display(),
        d = from_media.display(),
    );
    let out = tokio::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .arg(conjunction_tests::daemon::binaries().join("conjunctiond"))
        .env_remove("STATE_DIRECTORY")
        .env_remove("CONFIGURATION_DIRECTORY")
        .output()
        .await
        .expect("unshare runs (util-linux)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("every page verified"), "{said}");
    let daemon = DaemonProcess::start(&from_media, "").await;
    let event = daemon.api.roots(10).await.unwrap();
    assert_eq!(event.len(), 1, "the restored database has the release");
    report_root(&daemon.api, &token, "acme/lib", "1.0.1").await;
    assert!(daemon.terminate().await.success());
}
