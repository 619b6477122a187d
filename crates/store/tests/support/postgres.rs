//! PostgreSQL for the store's tests: the shared and private servers of
//! `plexus_test_support::servers::postgres`, with store configurations for their databases.
//!
//! Include with `#[path = "support/postgres.rs"] mod pg_support;` (from `src/`, with the
//! path relative to the including file).

#![allow(dead_code)]

use plexus_store::{PasswordSource, PostgresConfig, SslMode};
use plexus_test_support::servers::postgres::{PgServer, PrivatePg};

/// Store configurations for the databases of a [`PgServer`].
pub trait ServerConfig {
    /// A store configuration for database `dbname` as the store's role.
    fn config(&self, dbname: &str) -> PostgresConfig;

    /// A new empty database owned by the store's role, and a store configuration for it.
    fn fresh_database(&self, test: &str) -> PostgresConfig;
}

impl ServerConfig for PgServer {
    fn config(&self, dbname: &str) -> PostgresConfig {
        let mut cfg = PostgresConfig::new(&self.host);
        cfg.port = self.port;
        cfg.dbname = dbname.to_string();
        cfg.user = self.user.clone();
        cfg.password = Some(PasswordSource::File(self.password_file.clone()));
        cfg.sslmode = SslMode::Disable;
        cfg
    }

    fn fresh_database(&self, test: &str) -> PostgresConfig {
        self.config(&self.create_database(test))
    }
}

/// The store configuration of a [`PrivatePg`].
pub trait PrivateConfig {
    /// A store configuration for the private database `plexus`.
    fn config(&self) -> PostgresConfig;
}

impl PrivateConfig for PrivatePg {
    fn config(&self) -> PostgresConfig {
        self.server.config(PrivatePg::DATABASE)
    }
}
