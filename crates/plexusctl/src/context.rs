//! What every command gets: resolved settings, the network catalog, and the store.

use plexus_store::Store;

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

    /// Opens the configured store.
    pub async fn open_store(&self) -> CtlResult<Box<dyn Store>> {
        // Where, never the whole config object (it may hold an inline password).
        let location = match &self.settings.store {
            plexus_store::StoreConfig::Sqlite(sqlite) => sqlite.path.display().to_string(),
            plexus_store::StoreConfig::Postgres(pg) => pg.endpoint(),
            plexus_store::StoreConfig::Etcd(etcd) => etcd.endpoints.join(","),
        };
        tracing::debug!(store = %location, "opening store");
        Ok(plexus_store::open(&self.settings.store).await?)
    }

    /// Loads every network definition: files, the store's networks, the CNI configuration
    /// directory (warnings about unusable ones go to the log). A store that keeps no
    /// networks (or cannot be read now) only costs its networks, with a warning.
    pub async fn catalog(&self) -> CtlResult<Catalog> {
        let stored = match self.open_store().await {
            Ok(store) => store.networks().await.map_err(CtlError::from),
            Err(e) => Err(e),
        };
        let stored = stored.unwrap_or_else(|e| {
            tracing::warn!("stored networks not read: {e}");
            Vec::new()
        });
        let catalog = Catalog::load_with_stored(&self.settings, &stored)?;
        for warning in &catalog.warnings {
            tracing::warn!("{warning}");
        }
        Ok(catalog)
    }
}
