//! A database file damaged on disk: the daemon refuses to start on it and says what to
//! do, or serves it and answers every request with JSON (a 500 for what it cannot
//! read), and never drops a connection or exits without saying why.

use std::path::Path;

use conjunction_tests::daemon::DaemonProcess;
use conjunction_tui::client::Client;
use reqwest::Method;

use crate::*;

/// How one damaged file went.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Refused at start, saying the file is damaged and what to do.
    Refused,
    /// Served; this many answers were 500 JSON errors.
    Served { failed: usize },
    /// A write met the damage: answered 500, then the daemon exited non-zero saying why.
    Stopped,
}

/// Every read the API offers over what `api` holds; each must be answered with JSON.
async fn read_everything(api: &Client) -> usize {
    let mut paths = vec!["/v1/projects".to_owned(), "/v1/roots?limit=1000".to_owned()];
    for id in 0..40 {
        paths.push(conjunction_tui::client::project_path(&pid(&format!(
            "acme/p{id}"
        ))));
    }
    let mut failed = 0;
    let mut roots = Vec::new();
    for path in &paths {
        let answer = api.raw(Method::GET, path, api.token(), None).await;
        failed += check_answer(path, answer, &mut roots);
    }
    for root in roots {
        let path = format!("/v1/roots/{root}");
        let answer = api.raw(Method::GET, &path, api.token(), None).await;
        failed += check_answer(&path, answer, &mut Vec::new());
    }
    failed
}

/// Asserts `answer` is JSON (a success, or an error with a code); 1 when it is a 500.
fn check_answer(
    path: &str,
    answer: Result<conjunction_tui::client::RawResponse, conjunction_tui::client::ClientError>,
    roots: &mut Vec<String>,
) -> usize {
    let answer = answer.unwrap_or_else(|e| panic!("GET {path} was not answered: {e}"));
    let json: serde_json::Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|_| panic!("GET {path} answered {} without JSON", answer.status));
    match answer.status {
        200 => {
            if path.starts_with("/v1/roots?") {
                for r in json.as_array().into_iter().flatten() {
                    roots.extend(r["id"].as_str().map(str::to_owned));
                }
            }
            0
        }
        404 => 0,
        500 => {
            assert!(json["error"].is_string(), "GET {path}: {json}");
            1
        }
        other => panic!("GET {path} answered {other}: {json}"),
    }
}

/// Damages the 4 KiB at `offset` of the file at `path` in place.
fn damage_file(path: &Path, offset: u64, damage: fn(&mut [u8])) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut page = vec![0; 4096];
    file.read_exact_at(&mut page, offset).unwrap();
    damage(&mut page);
    file.write_all_at(&page, offset).unwrap();
}

/// Starts a daemon on a copy of `pristine` damaged at `offset` (before the start, or
/// while it serves), reads everything, reports a new version of every root project
/// and says how it went. Every request must be answered with JSON.
async fn damaged_run(
    pristine: &Path,
    tokens: &[String],
    offset: u64,
    damage: fn(&mut [u8]),
    while_serving: bool,
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("conjunction.redb");
    std::fs::copy(pristine, &db).unwrap();
    if !while_serving {
        damage_file(&db, offset, damage);
    }
    let log = dir.path().join("conjunctiond.log");
    let mut daemon = match DaemonProcess::try_start(dir.path(), &log).await {
        Ok(daemon) => daemon,
        Err(status) => {
            let text = std::fs::read_to_string(&log).unwrap();
            assert!(!status.success());
            assert!(
                text.contains("is damaged") && text.contains("Restore it from a backup"),
                "a refused start says what to do: {text}"
            );
            return Outcome::Refused;
        }
    };
    if while_serving {
        damage_file(&db, offset, damage);
    }
    let mut failed = read_everything(&daemon.api).await;
    for (n, token) in tokens.iter().enumerate() {
        let report = root_report(&format!("acme/p{n}"), "2.0.0");
        let body = serde_json::to_vec(&report).unwrap();
        let answer = daemon
            .api
            .raw(Method::POST, "/v1/reports", Some(token), Some(body))
            .await
            .expect("every report is answered");
        let json = answer.json();
        match answer.status {
            201 => {}
            500 => {
                assert!(json["error"].is_string(), "{json}");
                failed += 1;
                // Either the writer went on (a record it could not read: only that
                // batch failed) or it stopped, and then the process exits, saying why.
                let exited = loop {
                    if let Ok(Some(status)) = daemon.try_wait() {
                        break Some(status);
                    }
                    match daemon.api.raw(Method::GET, "/healthz", None, None).await {
                        Ok(h) if h.status == 200 => break None,
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                };
                if let Some(status) = exited {
                    assert!(!status.success());
                    let text = std::fs::read_to_string(&log).unwrap();
                    assert!(text.contains("the database writer stopped"), "{text}");
                    return Outcome::Stopped;
                }
            }
            // The writer stopped on a damaged page in work of its own (planning
            // left over from an earlier report) after that report was answered: the
            // process exits, saying why.
            503 if json["error"] == "shutting_down" => {
                let status = loop {
                    if let Ok(Some(status)) = daemon.try_wait() {
                        break status;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                };
                assert!(!status.success());
                let text = std::fs::read_to_string(&log).unwrap();
                assert!(text.contains("the database writer stopped"), "{text}");
                return Outcome::Stopped;
            }
            other => panic!("a report answered {other}: {json}"),
        }
    }
    daemon.kill().await;
    Outcome::Served { failed }
}

#[tokio::test]
async fn a_damaged_database_is_refused_or_answered_with_json_and_never_drops_a_request() {
    if conjunction_tests::redb_only("damaged pages of the file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = DaemonProcess::start(dir.path(), "").await;
    let mut tokens = Vec::new();
    for id in 0..40 {
        let deps: Vec<String> = (0..id)
            .rev()
            .take(2)
            .map(|d| format!("acme/p{d}"))
            .collect();
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        tokens.push(register(&daemon.api, &format!("acme/p{id}"), &deps, None).await);
    }
    tokens.truncate(30);
    for (n, token) in tokens.iter().enumerate() {
        report_root(&daemon.api, token, &format!("acme/p{n}"), "1.0.0").await;
    }
    assert!(daemon.terminate().await.success());
    let pristine = dir.path().join("conjunction.redb");
    let len = std::fs::metadata(&pristine).unwrap().len();

    // Pages spread over the file, zeroed or with every bit pattern changed, on disk
    // before the start or under the running daemon.
    let zero: fn(&mut [u8]) = |page| page.fill(0);
    let flip: fn(&mut [u8]) = |page| page.iter_mut().for_each(|b| *b ^= 0xa5);
    let mut outcomes = Vec::new();
    // The file's header (where redb finds everything else) first.
    // Where the pages fall moves with every change to what the daemon writes, so
    // besides pages spread evenly, the page holding the record of whom acme/p0's
    // report token speaks for (every report of acme/p0 reads it) is damaged too.
    let bytes = std::fs::read(&pristine).unwrap();
    let needle = br#"{"kind":"project","project":"acme/p0"}"#;
    let token_page = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the token record is in the file") as u64
        / 4096
        * 4096;
    let offsets = (0..8)
        .map(|step| (len * step / 8) / 4096 * 4096)
        .chain([token_page]);
    for offset in offsets {
        for (how, damage) in [("zeroed", zero), ("flipped", flip)] {
            for while_serving in [false, true] {
                let outcome =
                    damaged_run(&pristine, &tokens[..10], offset, damage, while_serving).await;
                outcomes.push((offset, how, while_serving, outcome));
            }
        }
    }
    eprintln!("file of {len} bytes: {outcomes:?}");
    // The runs went through each way a damaged page shows.
    let seen = |f: fn(&Outcome) -> bool| outcomes.iter().any(|(.., o)| f(o));
    assert_eq!(
        outcomes[0].3,
        Outcome::Refused,
        "a damaged header refuses the start"
    );
    assert!(
        seen(|o| matches!(o, Outcome::Served { failed } if *failed > 0)),
        "{outcomes:?}"
    );
}
