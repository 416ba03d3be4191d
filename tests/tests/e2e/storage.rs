//! Faults of the disk under the database: the daemon stops with the reason rather
//! than staying up, looking healthy, while it refuses every write.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use conjunction_tests::daemon::DaemonProcess;
use reqwest::Method;

use crate::*;

/// A small tmpfs mounted for one test and unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (as `mount -o size=` spells it), or says why it cannot.
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self {
            path: dir.path().to_owned(),
            _dir: dir,
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes `path` until the disk has only `left` bytes free.
fn fill(path: &Path, left: u64) {
    let mut file = std::fs::File::create(path).expect("filler file");
    let block = vec![0x5a_u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let full = file.metadata().expect("filler size").len();
    file.set_len(full.saturating_sub(left))
        .expect("room is made");
}

#[tokio::test]
async fn a_full_disk_stops_the_daemon_with_the_reason_and_it_is_never_healthy_while_refusing() {
    if conjunction_tests::redb_only("the file on a full tmpfs") {
        return;
    }
    let disk = match SmallDisk::mount("16m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: this test mounts a small tmpfs, which needs root ({why})");
            return;
        }
    };
    let data = disk.path.join("data");
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("conjunctiond.log");
    let mut daemon = DaemonProcess::start_logging(&data, "", &log).await;
    register(&daemon.api, "acme/lib", &[], None).await;
    assert_eq!(daemon.api.health().await.unwrap()["writer"], "ok");

    // Room for some writes, which are acknowledged, and then none.
    fill(&disk.path.join("filler"), 512 * 1024);
    // Registrations until one is refused: each carries a large description, so the
    // file must grow.
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for i in 0..10_000 {
        let id = format!("acme/app-{i}");
        let mut s = spec(&id, &["acme/lib"], None);
        s.contacts[0].name = format!("{i} {}", "x".repeat(200));
        let body = serde_json::to_vec(&s).unwrap();
        let answer = daemon
            .api
            .raw(
                Method::PUT,
                &conjunction_tui::client::project_path(&pid(&id)),
                daemon.api.token(),
                Some(body),
            )
            .await
            .expect("every request is answered");
        match answer.status {
            201 => acknowledged.push(id),
            _ => {
                refusal = Some(answer);
                break;
            }
        }
    }
    let refusal = refusal.expect("the full disk refuses a write");
    assert!(
        !acknowledged.is_empty(),
        "writes before the disk filled were taken"
    );
    assert_eq!(refusal.status, 500, "{:?}", refusal.json());
    assert_eq!(refusal.json()["error"], "storage_error");

    // From now on /healthz never answers 200: it says the writer stopped, or the
    // process is gone. And the process does exit, non-zero, for systemd to restart it.
    let status = loop {
        if let Ok(Some(status)) = daemon.try_wait() {
            break status;
        }
        if let Ok(answer) = daemon.api.raw(Method::GET, "/healthz", None, None).await {
            assert_ne!(
                answer.status,
                200,
                "healthy while refusing: {:?}",
                answer.json()
            );
            assert_eq!(answer.status, 503);
            assert!(
                ["failing", "stopping"].contains(&answer.json()["status"].as_str().unwrap()),
                "{:?}",
                answer.json()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!status.success(), "it exits non-zero: {status}");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("the database could not be written")
            && log_text.contains("No space left on device"),
        "the log says why: {log_text}"
    );

    // Once there is room again, it starts on what it acknowledged.
    std::fs::remove_file(disk.path.join("filler")).unwrap();
    let daemon = DaemonProcess::start(&data, "").await;
    let projects = daemon.api.projects().await.unwrap();
    for id in &acknowledged {
        assert!(
            projects.iter().any(|p| p.id.as_str() == id),
            "{id} was acknowledged before the fault"
        );
    }
    daemon
        .api
        .put_project(&pid("acme/after"), &spec("acme/after", &[], None))
        .await
        .unwrap();
    assert!(daemon.terminate().await.success());
}
