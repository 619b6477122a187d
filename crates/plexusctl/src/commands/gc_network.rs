//! The network side of `gc`, kept apart from its attachment logic: the network must be
//! known (an unknown name is an error suggesting the nearest one, never "released 0"), and
//! `gc NETWORK --orphaned` releases every address of a network that has no definition any
//! more (`network delete --force` leaves them; `check` reports them).

use std::collections::BTreeSet;
use std::io::Write;

use plexus_store::{Allocation, AttachmentKey, Store};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::context::Context;
use crate::error::{CtlError, CtlResult};
use crate::known::{self, Found};
use crate::output::{Table, out_err, stdout, write_structured};

/// Refuses `network` unless it is defined or the store holds addresses of it.
pub async fn check_network(ctx: &Context, store: &dyn Store, network: &str) -> CtlResult<()> {
    let catalog = ctx.catalog_of(store).await?;
    known::require(&catalog, store, network).await
}

/// What `gc --orphaned` did or would do.
#[derive(Debug, Serialize)]
struct Outcome<'a> {
    network: &'a str,
    orphaned: bool,
    dry_run: bool,
    released: Vec<Allocation>,
}

/// `gc NETWORK --orphaned [--dry-run]`: releases every allocation of `network`, which must
/// have no definition (a defined network is collected against its valid attachments).
pub async fn release_orphaned(ctx: &Context, network: &str, dry_run: bool) -> CtlResult<()> {
    let store = ctx.open_store().await?;
    let catalog = ctx.catalog_of(store.as_ref()).await?;
    if let Found::Defined(def) = known::find(&catalog, store.as_ref(), network).await? {
        return Err(CtlError::invalid(
            format!("network {network}"),
            format!(
                "is defined ({}): --orphaned releases only networks without a definition; \
                 collect it with --valid or --from-runtime",
                def.source
            ),
        ));
    }
    let held = store.list(network).await?;
    let released = if dry_run {
        held
    } else {
        let keys: BTreeSet<AttachmentKey> = held.iter().map(Allocation::key).collect();
        let mut released = Vec::new();
        for key in keys {
            released.extend(store.release(&key).await?);
        }
        released
    };
    let outcome = Outcome {
        network,
        orphaned: true,
        dry_run,
        released,
    };
    let mut out = stdout();
    match ctx.output() {
        OutputFormat::Table => write_table(&mut out, &outcome).map_err(out_err)?,
        format => write_structured(&mut out, format, &outcome)?,
    }
    out.flush().map_err(out_err)
}

fn write_table(out: &mut impl Write, outcome: &Outcome<'_>) -> std::io::Result<()> {
    if !outcome.released.is_empty() {
        let mut table = Table::new(&["IP", "CONTAINER", "IFNAME", "POD"]);
        for a in &outcome.released {
            table.row(vec![
                a.ip.to_string(),
                a.container_id.clone(),
                a.ifname.clone(),
                crate::commands::showalloc::pod_of(a).unwrap_or_default(),
            ]);
        }
        table.write(out)?;
    }
    let verb = if outcome.dry_run {
        "would release"
    } else {
        "released"
    };
    writeln!(
        out,
        "{} (no definition): {verb} {} address(es)",
        outcome.network,
        outcome.released.len()
    )
}
