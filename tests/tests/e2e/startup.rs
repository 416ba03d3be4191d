//! What the daemon refuses to start on, and what it says then.

use conjunction_tests::daemon::DaemonProcess;

use crate::*;

#[tokio::test]
async fn an_emptied_database_is_refused_at_start_with_what_to_do() {
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
