//! What the daemon refuses to start on, and what it says then.

use conjunction_tests::daemon::DaemonProcess;

use crate::*;

#[tokio::test]
async fn an_emptied_database_is_refused_at_start_with_what_to_do() {
    if conjunction_tests::redb_only("an emptied file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = DaemonProcess::start(dir.path(), "").await;
    register(&daemon.api, "acme/lib", &[], None).await;
    assert!(daemon.terminate().await.success());

    // Someone empties the file (`: > conjunction.redb`, a full disk, a bad restore).
    let db = dir.path().join("conjunction.redb");
    std::fs::File::create(&db).unwrap();
    let (status, stderr) = DaemonProcess::refused_start(dir.path()).await;
    assert!(!status.success(), "it exits non-zero: {status}");
    for words in ["conjunction.redb", "is empty", "from a backup", "remove it"] {
        assert!(stderr.contains(words), "{words:?} in: {stderr}");
    }
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        0,
        "the file is left alone"
    );

    // Removing the file, as the message says, starts a new, empty database.
    std::fs::remove_file(&db).unwrap();
    let daemon = DaemonProcess::start(dir.path(), "").await;
    assert!(daemon.api.projects().await.unwrap().is_empty());
    assert!(daemon.terminate().await.success());
}

/// Runs `conjunctiond --check-database` on `data_dir`: how it exited and what it said.
async fn check_database(data_dir: &std::path::Path) -> (bool, String) {
    let data_dir = data_dir.as_os_str();
    conjunction_tests::daemon::run_conjunctiond(&[
        "--check-database".as_ref(),
        "--data-dir".as_ref(),
        data_dir,
    ])
    .await
}

#[tokio::test]
async fn check_database_verifies_every_page_of_a_stopped_daemons_file() {
    if conjunction_tests::redb_only("--check-database reads the file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = DaemonProcess::start(dir.path(), "").await;
    for i in 0..30 {
        let token = register(&daemon.api, &format!("acme/p{i}"), &[], None).await;
        report_root(&daemon.api, &token, &format!("acme/p{i}"), "1.0.0").await;
    }
    assert!(daemon.terminate().await.success());
    let (ok, said) = check_database(dir.path()).await;
    assert!(ok && said.contains("is intact"), "{said}");

    // 64 KiB zeroed in the first part of the file, where the data is.
    let db = dir.path().join("conjunction.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    let at = (bytes.len() / 8) / 4096 * 4096;
    bytes[at..at + 64 * 1024].fill(0);
    std::fs::write(&db, bytes).unwrap();
    let (ok, said) = check_database(dir.path()).await;
    assert!(!ok, "{said}");
    assert!(
        said.contains("is damaged") && said.contains("from a backup"),
        "{said}"
    );
}
