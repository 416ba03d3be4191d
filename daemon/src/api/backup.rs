//! `POST /v1/backup`: a consistent copy of the database, made while the daemon serves
//! and sent as the answer's body (`conjunctiond backup --to FILE` saves it). The copy
//! is written to a file beside the database first, which is unlinked as soon as it is
//! open, so nothing is left behind if the client goes away.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncReadExt;

use super::error::ApiError;
use super::extract::must_operate;
use super::state::AppState;
use crate::auth::Caller;

/// The header saying the last event sequence number the backup holds.
pub const SEQ_HEADER: &str = "x-conjunction-backup-seq";

pub(super) async fn post(caller: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    must_operate(&caller, "taking a backup")?;
    let dir = s
        .database_path
        .parent()
        .map(std::path::Path::to_owned)
        .unwrap_or_default();
    let path = dir.join(format!(".backup-{}.redb", ulid::Ulid::new()));
    let target = path.clone();
    let started = std::time::Instant::now();
    let opened = match s.store.read(move |store| store.backup(&target)).await {
        Ok(backup) => tokio::fs::File::open(&path)
            .await
            .map(|file| (backup, file))
            .map_err(io_error),
        Err(e) => Err(e.into()),
    };
    // Unlinked now, whatever happened: an open file stays readable until the answer
    // is sent, and a failed copy leaves nothing behind.
    let _ = tokio::fs::remove_file(&path).await;
    let (backup, file) = opened?;
    let size = file.metadata().await.map_err(io_error)?.len();
    tracing::info!(
        seq = backup.seq,
        rows = backup.rows,
        bytes = size,
        took_ms = started.elapsed().as_millis() as u64,
        "backup made"
    );
    let body = Body::from_stream(read_chunks(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"conjunction.redb\"".to_owned(),
            ),
            (
                header::HeaderName::from_static(SEQ_HEADER),
                backup.seq.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

/// The file's bytes, 256 KiB at a time.
fn read_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

fn io_error(e: std::io::Error) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "backup_failed",
        format!("the backup could not be written beside the database: {e}"),
    )
}
