//! What every command gets: resolved settings, the network catalog, and the store.
//!
//! Commands that only read open the store with [`Context::open_store`], which refuses a
//! store that does not exist and creates nothing; only commands that write (network
//! create/apply, import) use [`Context::open_store_for_writing`], which may create it.

use plexus_store::{OpenMode, Store};

use crate::cli::OutputFormat;
use crate::error::{CtlError, CtlResult};
use crate::netdef::Catalog;
use crate::settings::Settings;

/// The environment of one plexusctl run.
#[derive(Debug)]
pub struct Context {
    /// Resolved settings.
    pub settings: Settings,
}

impl Context {
    /// A context over resolved settings.
    pub fn new(settings: Settings) -> Context {
        Context { settings }
    }

    /// The output format.
    pub fn output(&self) -> OutputFormat {
        self.settings.output
    }

    /// Where the store is (path or endpoints, never a credential), for messages.
    pub fn store_location(&self) -> String {
        self.settings.store.location()
    }

    /// Whether the configured store exists (a SQLite file is there; PostgreSQL and etcd
    /// are taken to exist, they create nothing on this machine).
    pub fn store_exists(&self) -> bool {
        match &self.settings.store {
            plexus_store::StoreConfig::Sqlite(sqlite) => sqlite.path.exists(),
            _ => true,
        }
    }

    /// Opens the configured store, which must exist: nothing is created.
    pub async fn open_store(&self) -> CtlResult<Box<dyn Store>> {
        self.open(OpenMode::MustExist).await
    }

    /// Opens the configured store for a command that writes, creating it when missing.
    pub async fn open_store_for_writing(&self) -> CtlResult<Box<dyn Store>> {
        self.open(OpenMode::CreateIfMissing).await
    }

    async fn open(&self, mode: OpenMode) -> CtlResult<Box<dyn Store>> {
        tracing::debug!(store = %self.store_location(), ?mode, "opening store");
        Ok(plexus_store::open_as(&self.settings.store, mode).await?)
    }

    /// Loads every network definition: files, the store's networks, the CNI configuration
    /// directory (warnings about unusable ones go to the log). A store that cannot be
    /// opened is an error (every command that needs the catalog needs the store too); one
    /// that keeps no networks (the ips-table layout) only costs its networks, with a
    /// warning.
    pub async fn catalog(&self) -> CtlResult<Catalog> {
        let store = self.open_store().await?;
        self.catalog_of(store.as_ref()).await
    }

    /// [`Context::catalog`] over an open store.
    pub async fn catalog_of(&self, store: &dyn Store) -> CtlResult<Catalog> {
        let stored = store.networks().await.map_err(CtlError::from);
        let stored = stored.unwrap_or_else(|e| {
            tracing::warn!("stored networks not read: {e}");
            Vec::new()
        });
        let mut catalog = Catalog::load_with_stored(&self.settings, &stored)?;
        catalog.store = self.store_location();
        for warning in &catalog.warnings {
            tracing::warn!("{warning}");
        }
        Ok(catalog)
    }
}
