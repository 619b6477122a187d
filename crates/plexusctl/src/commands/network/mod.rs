//! `plexusctl network`: network definitions kept in the store, which `plexus-ipam` (and
//! the meta-plugin) use when a configuration says `"network": "<name>"`.
//!
//! One file per subcommand: `create`/`apply` ([`write`]), `list`, `show`, `validate`,
//! `delete`. Definitions are plexus or DANM network objects (YAML or JSON, several per
//! file), validated with `plexus-model` before anything is written; a network is stored
//! under its qualified name (`name`, or `namespace/name` for the namespaced kinds).

pub mod change;
pub mod delete;
pub mod list;
pub mod show;
pub mod validate;
pub mod write;

use std::path::Path;

use clap::{Args, Subcommand};
use plexus_model::{NetworkObject, Operation, validate as validate_object};
use plexus_store::Store;
use serde_json::Value;

use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::netfile::{documents, is_network_object};

/// Arguments of `network`.
#[derive(Debug, Args)]
pub struct Network {
    /// What to do with network definitions.
    #[command(subcommand)]
    pub action: Action,
}

/// The `network` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Store new networks from a file; refuses names that exist already.
    Create(write::Write),
    /// Store networks from a file, creating or replacing them; an unchanged network is
    /// left alone, a change that strands held addresses is refused unless --force.
    Apply(write::Apply),
    /// Every stored network with its pools, revision and allocation count.
    List(list::List),
    /// One stored network: its record and definition.
    Show(show::Show),
    /// Check network files against every validation rule; store nothing.
    Validate(validate::Validate),
    /// Delete a stored network (refused while it holds addresses, unless --force).
    Delete(delete::Delete),
}

impl Network {
    /// Runs the command.
    pub async fn exec(&self, ctx: &Context) -> CtlResult<()> {
        match &self.action {
            Action::Create(w) => w.exec(ctx, write::Mode::Create, false).await,
            Action::Apply(a) => a.write.exec(ctx, write::Mode::Apply, a.force).await,
            Action::List(l) => l.exec(ctx).await,
            Action::Show(s) => s.exec(ctx).await,
            Action::Validate(v) => v.exec(ctx),
            Action::Delete(d) => d.exec(ctx).await,
        }
    }
}

/// One network object of a file, parsed, with the problems validation found.
#[derive(Debug)]
pub struct Parsed {
    /// `file: document N`, for messages.
    pub source: String,
    /// The qualified name it is stored under.
    pub name: String,
    /// The object as JSON (what the store keeps).
    pub definition: Value,
    /// One line per broken rule; empty when valid.
    pub problems: Vec<String>,
}

/// Reads every network object of `path` (`-` is stdin) and validates each as `op`.
/// Documents that are not network objects are an error.
pub fn read_file(path: &Path, op: Operation) -> CtlResult<Vec<Parsed>> {
    let source = path.display().to_string();
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| CtlError::io("stdin", e))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| CtlError::io(path, e))?
    };
    let mut parsed = Vec::new();
    for (index, doc) in documents(&source, &text)?.into_iter().enumerate() {
        let at = format!("{source}: document {}", index + 1);
        if !is_network_object(&doc) {
            let kind = doc
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("(no kind)");
            return Err(CtlError::invalid(
                at,
                format!("{kind} is not a network object (DanmNet, ClusterNetwork, TenantNetwork)"),
            ));
        }
        let object: NetworkObject = serde_json::from_value(doc.clone())
            .map_err(|e| CtlError::invalid(&at, format!("not a network object: {e}")))?;
        let problems = match validate_object(&object, op) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.violations.iter().map(ToString::to_string).collect(),
        };
        // Store the object as plexus-model writes it: one canonical JSON form.
        let definition = serde_json::to_value(&object)
            .map_err(|e| CtlError::invalid(&at, format!("cannot encode: {e}")))?;
        parsed.push(Parsed {
            source: at,
            name: object.qualified_name(),
            definition,
            problems,
        });
    }
    if parsed.is_empty() {
        return Err(CtlError::invalid(source, "holds no network object"));
    }
    Ok(parsed)
}

/// The error for `name` not being a stored network: what the store holds of it without a
/// definition, or the nearest stored name.
pub async fn not_stored(ctx: &Context, store: &dyn Store, name: &str) -> CtlError {
    let held = store.allocated_networks().await.unwrap_or_default();
    if held.iter().any(|n| n == name) {
        return CtlError::invalid(
            format!("network {name}"),
            "is not stored, but the store holds addresses of it without a definition (check \
             lists them, gc --orphaned releases them)",
        );
    }
    let stored: Vec<String> = match store.networks().await {
        Ok(records) => records.into_iter().map(|r| r.name).collect(),
        Err(_) => Vec::new(),
    };
    CtlError::UnknownNetwork {
        network: name.to_string(),
        nearest: crate::known::nearest(name, stored.iter().map(String::as_str)).map(str::to_string),
        searched: format!(
            "it is not stored in {} (plexusctl network list shows the stored networks)",
            ctx.store_location()
        ),
    }
}
