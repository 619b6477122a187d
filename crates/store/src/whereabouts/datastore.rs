//! Which store an `ipam` section names.
//!
//! In order: the plexus `store` object (whereabouts' datastore keys are then ignored; the
//! pool parser says so on stderr); whereabouts' `datastore` — `"etcd"`, or absent with an
//! `etcd_host` (whereabouts' default) — as the plexus etcd store on those endpoints;
//! `"kubernetes"`, or absent with a `kubernetes.kubeconfig`, refused; nothing at all, the
//! node-local SQLite default. Empty strings count as absent, as in the Go structs
//! whereabouts reads them into.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::reservations::range_keys;
use crate::Secret;
use crate::common;
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::etcd::EtcdConfig;

/// whereabouts' keys that name its datastore.
pub const DATASTORE_KEYS: &[&str] = &[
    "datastore",
    "kubernetes",
    "etcd_host",
    "etcd_username",
    "etcd_password",
    "etcd_key_file",
    "etcd_cert_file",
    "etcd_ca_cert_file",
];

/// Where the store of a section comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOrigin {
    /// The plexus `store` object.
    Explicit,
    /// whereabouts' etcd keys (`datastore: "etcd"`, `etcd_host`).
    WhereaboutsEtcd,
    /// Neither: the node-local SQLite default.
    Default,
}

/// The store an `ipam` section names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionStore {
    /// The store to open.
    pub config: StoreConfig,
    /// Where it came from.
    pub origin: StoreOrigin,
    /// Settings accepted but not used, one line each, for stderr.
    pub notes: Vec<String>,
}

/// The datastore whereabouts would use.
enum Datastore {
    /// None named.
    None,
    /// etcd at `etcd_host`.
    Etcd,
    /// The Kubernetes API; the field that said so.
    Kubernetes(&'static str),
}

/// The store `ipam` names (see the module docs). For whereabouts' etcd the configuration
/// requires every range's whereabouts key absent at each claim ([`range_keys`]).
pub fn store_of_section(ipam: &Map<String, Value>) -> Result<SectionStore, StoreError> {
    if let Some(store) = ipam.get("store").filter(|v| !v.is_null()) {
        return Ok(SectionStore {
            config: StoreConfig::from_json(Some(store))?,
            origin: StoreOrigin::Explicit,
            notes: Vec::new(),
        });
    }
    match datastore(ipam)? {
        Datastore::None => Ok(SectionStore {
            config: StoreConfig::default(),
            origin: StoreOrigin::Default,
            notes: Vec::new(),
        }),
        Datastore::Kubernetes(field) => Err(kubernetes_unsupported(field)),
        Datastore::Etcd => {
            let (mut config, notes) = etcd_config(ipam)?;
            config.require_absent = range_keys(ipam);
            Ok(SectionStore {
                config: StoreConfig::Etcd(config),
                origin: StoreOrigin::WhereaboutsEtcd,
                notes,
            })
        }
    }
}

/// The etcd whereabouts' keys of `ipam` name (whatever `store` says), without the
/// required-absent keys, and notes about settings it does not use; `None` when the section
/// names no etcd datastore.
pub fn etcd_of_section(
    ipam: &Map<String, Value>,
) -> Result<Option<(EtcdConfig, Vec<String>)>, StoreError> {
    match datastore(ipam)? {
        Datastore::Etcd => etcd_config(ipam).map(Some),
        Datastore::None | Datastore::Kubernetes(_) => Ok(None),
    }
}

/// Whether `ipam` names whereabouts' Kubernetes datastore and no plexus `store` (what
/// [`store_of_section`] refuses).
pub fn names_kubernetes(ipam: &Map<String, Value>) -> bool {
    ipam.get("store").is_none_or(Value::is_null)
        && matches!(datastore(ipam), Ok(Datastore::Kubernetes(_)))
}

fn datastore(ipam: &Map<String, Value>) -> Result<Datastore, StoreError> {
    match text(ipam, "datastore")?.as_deref() {
        Some("etcd") => Ok(Datastore::Etcd),
        Some("kubernetes") => Ok(Datastore::Kubernetes("ipam.datastore")),
        Some(other) => Err(StoreError::config(
            "ipam.datastore",
            format!("unknown datastore {other:?} (whereabouts knows \"etcd\" and \"kubernetes\")"),
        )),
        None if text(ipam, "etcd_host")?.is_some() => Ok(Datastore::Etcd),
        None if kubeconfig(ipam)?.is_some() => {
            Ok(Datastore::Kubernetes("ipam.kubernetes.kubeconfig"))
        }
        None => Ok(Datastore::None),
    }
}

/// `kubernetes.kubeconfig` when it is a non-empty string.
fn kubeconfig(ipam: &Map<String, Value>) -> Result<Option<String>, StoreError> {
    match ipam.get("kubernetes") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(k8s)) => text_at(k8s, "kubeconfig", "ipam.kubernetes.kubeconfig"),
        Some(_) => Err(StoreError::config(
            "ipam.kubernetes",
            "must be an object like {\"kubeconfig\": \"/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig\"}",
        )),
    }
}

fn kubernetes_unsupported(field: &str) -> StoreError {
    StoreError::config(
        field,
        "names whereabouts' Kubernetes datastore, and plexus has no Kubernetes store yet; it \
         will not fall back to a node-local file, where two nodes would hand out the same \
         address. Set ipam.store to a store every node shares, e.g. {\"type\": \"etcd\", \
         \"endpoints\": [\"https://10.0.0.1:2379\"], \"ca_file\": \"/etc/plexus/etcd-ca.pem\"} \
         or {\"type\": \"postgres\", ...} (docs/whereabouts.md)",
    )
}

/// The plexus etcd store on whereabouts' `etcd_*` keys, and notes about what it ignores.
fn etcd_config(ipam: &Map<String, Value>) -> Result<(EtcdConfig, Vec<String>), StoreError> {
    let host = text(ipam, "etcd_host")?.ok_or_else(|| {
        StoreError::config(
            "ipam.etcd_host",
            "is required with datastore \"etcd\": the etcd endpoints, comma-separated, e.g. \
             \"10.0.0.1:2379\" or \"https://10.0.0.1:2379,https://10.0.0.2:2379\"",
        )
    })?;
    let cert = path(ipam, "etcd_cert_file")?;
    let key = path(ipam, "etcd_key_file")?;
    let ca = path(ipam, "etcd_ca_cert_file")?;
    // whereabouts uses TLS exactly when it has a client certificate and its key.
    let bare_scheme = if cert.is_some() && key.is_some() {
        "https"
    } else {
        "http"
    };
    let endpoints: Vec<String> = host
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            if e.contains("://") {
                e.to_string()
            } else {
                format!("{bare_scheme}://{e}")
            }
        })
        .collect();
    if endpoints.is_empty() {
        return Err(StoreError::config(
            "ipam.etcd_host",
            "names no endpoint (comma-separated host:port or URLs)",
        ));
    }
    let mut cfg = EtcdConfig::new(endpoints);
    let mut notes = Vec::new();
    if cfg.uses_tls() && cfg.endpoints.iter().any(|e| !e.starts_with("https://")) {
        return Err(StoreError::config(
            "ipam.etcd_host",
            "mixes TLS and plain endpoints; use https:// for all of them or for none",
        ));
    }
    if cfg.uses_tls() {
        if ca.is_none() {
            return Err(StoreError::config(
                "ipam.etcd_ca_cert_file",
                "is required with TLS (https:// in etcd_host, or etcd_cert_file with \
                 etcd_key_file): plexus always verifies the etcd server certificate",
            ));
        }
        if cert.is_some() != key.is_some() {
            return Err(StoreError::config(
                "ipam.etcd_cert_file",
                "etcd_cert_file and etcd_key_file go together (a client certificate needs its key)",
            ));
        }
        (cfg.ca_file, cfg.cert_file, cfg.key_file) = (ca, cert, key);
    } else {
        let unused = [
            ("etcd_ca_cert_file", &ca),
            ("etcd_cert_file", &cert),
            ("etcd_key_file", &key),
        ];
        for (name, _) in unused.iter().filter(|(_, v)| v.is_some()) {
            notes.push(format!(
                "ipam.{name} is ignored: etcd_host names plain http:// endpoints (whereabouts \
                 uses TLS only with both etcd_cert_file and etcd_key_file; write https:// in \
                 etcd_host for TLS without a client certificate)"
            ));
        }
    }
    cfg.username = text(ipam, "etcd_username")?;
    // Never echo it: even a wrongly typed password is a secret.
    cfg.password = match ipam.get("etcd_password") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(Secret::new(s.clone())),
        Some(_) => return Err(StoreError::config("ipam.etcd_password", "must be a string")),
    };
    if cfg.username.is_some() != cfg.password.is_some() {
        return Err(StoreError::config(
            "ipam.etcd_username",
            "etcd_username and etcd_password go together",
        ));
    }
    cfg.validate().map_err(whereabouts_field)?;
    Ok((cfg, notes))
}

/// A validation error of the built configuration, named by the whereabouts key it came from.
fn whereabouts_field(err: StoreError) -> StoreError {
    match err {
        StoreError::Config { field, reason } => {
            let name = field
                .strip_prefix("ipam.store.")
                .and_then(|f| f.split('[').next())
                .unwrap_or_default();
            let key = match name {
                "endpoints" => "etcd_host",
                "ca_file" => "etcd_ca_cert_file",
                "cert_file" => "etcd_cert_file",
                "key_file" => "etcd_key_file",
                "username" => "etcd_username",
                "password" | "password_file" => "etcd_password",
                _ => return StoreError::Config { field, reason },
            };
            StoreError::Config {
                field: format!("ipam.{key}"),
                reason,
            }
        }
        other => other,
    }
}

/// A string key of `ipam`; empty means absent.
fn text(ipam: &Map<String, Value>, key: &str) -> Result<Option<String>, StoreError> {
    text_at(ipam, key, &format!("ipam.{key}"))
}

fn text_at(
    object: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<String>, StoreError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(StoreError::config(
            field,
            format!("must be a string, found {other}"),
        )),
    }
}

/// An absolute file path of `ipam`; empty means absent.
fn path(ipam: &Map<String, Value>, key: &str) -> Result<Option<PathBuf>, StoreError> {
    let Some(text) = text(ipam, key)? else {
        return Ok(None);
    };
    common::absolute(format!("ipam.{key}"), PathBuf::from(text)).map(Some)
}

#[cfg(test)]
mod tests;
