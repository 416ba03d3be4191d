//! Connections for the store's transactions: opened when one is wanted, kept for the
//! next, at most so many at once. The store's readers and its writer run on threads
//! that may block (the blocking pool, the writer's own thread), so a connection is
//! taken, and its queries awaited, by blocking on the runtime that drives it.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::Client;

use super::{connect, PgConfig, PgError};

/// Connections to one database.
pub struct Pool {
    config: PgConfig,
    runtime: Handle,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
    /// Run on each new connection (a writer's session settings).
    session: Option<String>,
}

/// A connection taken from the pool, given back when dropped unless it broke.
pub struct Pooled {
    client: Option<Client>,
    pool: Arc<Pool>,
    /// A statement failed in a way that leaves the session unknown (a transaction
    /// that could not be ended): the connection is closed, not given back.
    pub(crate) broken: bool,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    /// At most `size` connections to `config`'s database, driven on `runtime`.
    pub fn new(config: PgConfig, runtime: Handle, size: usize, session: Option<String>) -> Self {
        Self {
            config,
            runtime,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
            session,
        }
    }

    /// Waits for `future` on the pool's runtime. Never from async code: the threads
    /// that read and write the store are threads that may block.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// A connection, once one is free: an idle one that is still open, or a new one.
    pub fn get(self: &Arc<Self>) -> Result<Pooled, PgError> {
        self.block_on(async {
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| PgError::Db("the connection pool is closed".into()))?;
            let idle = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.retain(|c| !c.is_closed());
                idle.pop()
            };
            let client = match idle {
                Some(client) => client,
                None => {
                    let client = connect(&self.config).await?;
                    if let Some(sql) = &self.session {
                        client.batch_execute(sql).await?;
                    }
                    client
                }
            };
            Ok(Pooled {
                client: Some(client),
                pool: self.clone(),
                broken: false,
                _permit: permit,
            })
        })
    }
}

impl Pooled {
    pub fn client(&self) -> &Client {
        // Taken only by `drop`.
        self.client.as_ref().unwrap_or_else(|| unreachable!())
    }

    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.pool.block_on(future)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !self.broken && !client.is_closed() {
                let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.push(client);
            }
        }
    }
}
