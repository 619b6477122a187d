//! whereabouts' flat file in the plugin: every verb starts from the `ipam` section merged
//! with `whereabouts.conf` (`plexus_store::whereabouts::with_flat_file` has the rules:
//! whereabouts-style sections only, `configuration_path` then the default directories or
//! `PLEXUS_WHEREABOUTS_FLATFILE_DIRS`, the network's own settings win, no file is fine).

use std::borrow::Cow;

use plexus_cni::Request;
use serde_json::Value;

use crate::IpamError;

/// `req` with the flat file merged into its `ipam` section, or `req` itself when the
/// section is not whereabouts-style, no file exists, or the file adds nothing. An
/// unreadable file is code 7 naming it.
pub fn with_flat_file(req: &Request) -> Result<Cow<'_, Request>, IpamError> {
    let Some(ipam) = req.conf.ipam.as_ref().and_then(Value::as_object) else {
        return Ok(Cow::Borrowed(req));
    };
    let Some(merged) = plexus_store::whereabouts::with_flat_file(ipam)? else {
        return Ok(Cow::Borrowed(req));
    };
    // Key names only: the file may hold a password.
    tracing::debug!(
        file = %merged.file.display(),
        keys = ?merged.keys,
        "merged whereabouts' flat file"
    );
    let mut req = req.clone();
    req.conf.ipam = Some(Value::Object(merged.ipam));
    Ok(Cow::Owned(req))
}
