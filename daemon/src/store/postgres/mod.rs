//! PostgreSQL, the store several daemons may share (issue 25, being built): how a
//! daemon reaches it (a connection URL, the password from a file, TLS through
//! rustls with a CA file) and the schema, created and migrated by the daemon itself
//! in numbered steps, a database newer than the daemon refused; and the writer's
//! role among daemons ([`lease`]), which daemon sends which outbox entry
//! ([`claims`]), and how every daemon hears of committed events ([`feed`]). The store's tables come to it through the same
//! seam the redb file's use; until they do, the daemon does not accept
//! `[store] url`, and only the tests reach this module.

pub mod claims;
pub mod copy;
pub mod feed;
pub mod lease;
pub mod pool;
pub mod role;
pub mod rows;
pub(crate) mod tables;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_postgres::config::SslMode;
use tokio_postgres::Client;
use tokio_rustls::rustls;

/// Connections the store's readers share at most.
const READERS: usize = 16;

/// The store on PostgreSQL: connections for readers, the writer's own session, and
/// this daemon's role among those sharing the database.
pub struct PgEngine {
    readers: Arc<pool::Pool>,
    writer: Arc<pool::Pool>,
    role: watch::Receiver<role::Role>,
    /// This daemon's name among those sharing the database.
    name: String,
}

impl PgEngine {
    pub(crate) fn readers(&self) -> &Arc<pool::Pool> {
        &self.readers
    }

    pub(crate) fn writer(&self) -> &Arc<pool::Pool> {
        &self.writer
    }

    /// This daemon's name among those sharing the database, as its lease and its
    /// claims say it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This daemon's role, as its keeper last knew it.
    pub fn role(&self) -> &watch::Receiver<role::Role> {
        &self.role
    }
}

/// Opens the store on PostgreSQL for a daemon: brings the schema to this daemon's
/// step, starts keeping its role (`me`), and waits until it knows the role. From a
/// thread that may block; the connections are driven on `runtime`.
pub fn open(config: &PgConfig, me: role::Candidate, runtime: Handle) -> Result<PgEngine, PgError> {
    let length = me.length;
    let name = me.name.clone();
    let mut role = runtime.block_on(async {
        let mut client = connect(config).await?;
        let done = migrate(&mut client).await?;
        if done.from != done.to {
            tracing::info!(
                from = done.from,
                to = done.to,
                "migrated the PostgreSQL schema"
            );
        }
        Ok::<_, PgError>(role::keep(config.clone(), me).0)
    })?;
    let known = runtime.block_on(async {
        // The first answer comes after one round of the lease's statements.
        tokio::time::timeout(length * 2, role.wait_for(|r| *r != role::Role::Starting))
            .await
            .map(|r| r.map(|r| r.clone()))
    });
    match known {
        Ok(Ok(role::Role::Unreachable { why })) => return Err(PgError::Db(why)),
        Ok(Ok(_)) => {}
        Ok(Err(_)) | Err(_) => {
            return Err(PgError::Db(format!(
                "this daemon's role was not known within {length:?} of connecting"
            )))
        }
    }
    let readers = pool::Pool::new(config.clone(), runtime.clone(), READERS, None);
    let session = lease::writer_session_sql(length);
    let writer = pool::Pool::new(config.clone(), runtime, 1, Some(session));
    Ok(PgEngine {
        readers: Arc::new(readers),
        writer: Arc::new(writer),
        role,
        name,
    })
}

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// `postgres://user@host:port/database?sslmode=require`, or the key=value form
    /// libpq takes (`host=/run/postgresql dbname=conjunction`). Without a password.
    pub url: String,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Certificates to trust beside the web's, for a server whose certificate a
    /// private CA signed; TLS is then required.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("[store] url is not a PostgreSQL connection string: {0}")]
    Url(String),
    #[error("[store] url must not hold the password: put it in [store] password_file")]
    PasswordInUrl,
    #[error("cannot read [store] {key} {}: {reason}", path.display())]
    File {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("[store] ca_file {}: {why}", path.display())]
    Ca { path: PathBuf, why: String },
    #[error("PostgreSQL: {0}")]
    Db(String),
    #[error(
        "the database's schema is at step {found}, newer than this daemon knows (step {known}); \
         run the newer daemon"
    )]
    NewerSchema { found: i32, known: i32 },
    #[error(
        "this daemon's writer lease (fence {fence}) ended or another daemon took the role: \
         its transaction was not committed"
    )]
    LeaseLost { fence: i64 },
}

impl From<tokio_postgres::Error> for PgError {
    /// The server's own message when it sent one: "db error" says nothing.
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => PgError::Db(format!("{} ({})", db.message(), db.code().code())),
            None => {
                // The driver's own words ("error performing TLS handshake") leave out
                // why; the causes under them say it.
                let mut said = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    said.push_str(": ");
                    said.push_str(&c.to_string());
                    cause = c.source();
                }
                PgError::Db(said)
            }
        }
    }
}

/// The server's connection, as [`connection`] opens it: driven by whoever holds it.
pub type Connection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
        tokio_postgres::Socket,
    >>::Stream,
>;

/// Connects as `config` says. The connection runs on its own task until the client
/// is dropped or the server goes away.
pub async fn connect(config: &PgConfig) -> Result<Client, PgError> {
    let (client, connection) = connection(config).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %PgError::from(e), "the PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Opens a connection as `config` says and hands it over undriven, for a caller
/// that reads the server's notifications from it.
pub async fn connection(config: &PgConfig) -> Result<(Client, Connection), PgError> {
    let mut pg =
        tokio_postgres::Config::from_str(&config.url).map_err(|e| PgError::Url(e.to_string()))?;
    if pg.get_password().is_some() {
        return Err(PgError::PasswordInUrl);
    }
    let read = |key: &'static str, path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|e| PgError::File {
            key,
            path: path.clone(),
            reason: e.to_string(),
        })
    };
    if let Some(path) = &config.password_file {
        let text = read("password_file", path)?;
        pg.password(text.lines().next().unwrap_or_default().trim_end());
    }
    let ca_pem = match &config.ca_file {
        Some(path) => {
            // A private CA is named to be checked against: never fall back to plain.
            pg.ssl_mode(SslMode::Require);
            Some(read("ca_file", path)?)
        }
        None => None,
    };
    let roots = crate::channels::trusted_roots(ca_pem.as_deref()).map_err(|why| PgError::Ca {
        path: config.ca_file.clone().unwrap_or_default(),
        why,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Db(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(pg
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
        .await?)
}

/// The schema's steps, in order; step `n` is `STEPS[n - 1]`. A step once released
/// is never edited: a change is a new step.
const STEPS: &[&str] = &[
    // 1: the store's tables as the seam sees them (each redb table is `tbl`, its keys
    // encoded so that bytes sort as the keys do), and the writer's lease: one row,
    // renewed by the daemon that writes, whose `fence` every write it commits checks.
    "CREATE TABLE store_rows (
         tbl smallint NOT NULL,
         key bytea NOT NULL,
         value bytea NOT NULL,
         PRIMARY KEY (tbl, key)
     );
     CREATE TABLE writer_lease (
         id smallint PRIMARY KEY CHECK (id = 1),
         holder text NOT NULL,
         address text NOT NULL,
         fence bigint NOT NULL,
         expires_at timestamptz NOT NULL
     );",
    // 2: which daemon is sending which outbox entry, and until when: a claim of an
    // entry (a row of an outbox table) that is gone goes with it.
    "CREATE TABLE outbox_claims (
         tbl smallint NOT NULL,
         key bytea NOT NULL,
         claimed_by text NOT NULL,
         claimed_until timestamptz NOT NULL,
         PRIMARY KEY (tbl, key),
         FOREIGN KEY (tbl, key) REFERENCES store_rows (tbl, key) ON DELETE CASCADE
     );",
];

/// The step this daemon brings a database to.
pub const SCHEMA_STEP: i32 = STEPS.len() as i32;

/// Any number that other users of the database do not take for their own advisory
/// locks: held for the migration's transaction, so that two daemons starting at
/// once do not both run a step.
const MIGRATION_LOCK: i64 = 0x636f_6e6a_756e_6374; // "conjunct"

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: i32,
    pub to: i32,
}

/// Brings the database's schema to [`SCHEMA_STEP`] in one transaction, or refuses
/// one that is already further than this daemon knows.
pub async fn migrate(client: &mut Client) -> Result<Migrated, PgError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS conjunction_schema (
             step integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found: i32 = tx
        .query_one("SELECT coalesce(max(step), 0) FROM conjunction_schema", &[])
        .await?
        .get(0);
    if found > SCHEMA_STEP {
        return Err(PgError::NewerSchema {
            found,
            known: SCHEMA_STEP,
        });
    }
    for step in found + 1..=SCHEMA_STEP {
        let sql = STEPS[(step - 1) as usize];
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO conjunction_schema (step) VALUES ($1)",
            &[&step],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Migrated {
        from: found,
        to: SCHEMA_STEP,
    })
}
