//! What every command gets: resolved settings, the network catalog, and the store.

use plexus_store::Store;

use crate::cli::OutputFormat;
use crate::error::CtlResult;
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
        tracing::debug!(store = ?self.settings.store, "opening store");
        Ok(plexus_store::open(&self.settings.store).await?)
    }

    /// Loads every network definition (warnings about unusable files go to the log).
    pub fn catalog(&self) -> CtlResult<Catalog> {
        let catalog = Catalog::load(&self.settings)?;
        for warning in &catalog.warnings {
            tracing::warn!("{warning}");
        }
        Ok(catalog)
    }
}
