//! Bounds on every input, so that no request can make the daemon store or send
//! unbounded data.

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest webhook body a CI may send to `POST /v1/hooks/…`: a GitLab pipeline
/// event lists every job.
pub const MAX_HOOK_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Longest project id.
pub const MAX_PROJECT_ID: usize = 128;
/// Longest short text field: names, versions, commits, refs, roles, handles.
pub const MAX_SHORT_TEXT: usize = 256;
/// Longest URL.
pub const MAX_URL: usize = 2048;
/// Longest failure summary kept with a build.
pub const MAX_SUMMARY: usize = 16 * 1024;
/// Most metadata entries on one report.
pub const MAX_METADATA_ENTRIES: usize = 32;
/// Longest metadata key.
pub const MAX_METADATA_KEY: usize = 64;
/// Longest metadata value.
pub const MAX_METADATA_VALUE: usize = 1024;
/// Most contacts on one project.
pub const MAX_CONTACTS: usize = 32;
/// Most direct upstreams of one project.
pub const MAX_DEPENDENCIES: usize = 256;
/// Longest secret (token or signing secret).
pub const MAX_SECRET: usize = 512;
/// Shortest report token a client may choose itself.
pub const MIN_CLIENT_TOKEN: usize = 16;
/// Largest body of `PUT /v1/projects`, which registers many projects at once.
pub const MAX_BULK_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Most projects in one `PUT /v1/projects`.
pub const MAX_BULK_PROJECTS: usize = 200_000;
/// Nodes in one page of `GET /v1/roots/{id}` when the request does not say.
pub const ROOT_PAGE_DEFAULT: usize = 1_000;
/// Most nodes in one page of `GET /v1/roots/{id}`.
pub const ROOT_PAGE_MAX: usize = 10_000;
