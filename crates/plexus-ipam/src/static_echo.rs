//! Echo mode (DANM's `fakeipam`): `"ipam": {"type": "plexus-ipam", "static": [{"address":
//! "10.0.0.5/24", "gateway": "10.0.0.1"}, …]}` returns exactly those addresses and touches
//! no store.
//!
//! The `plexus` meta-plugin writes this section into a delegate's configuration when it
//! has already claimed the attachment's addresses itself, so the delegate (Debian's
//! `bridge`, `macvlan`, …) configures them without a second allocation. DEL, CHECK,
//! STATUS and GC have nothing to do: the meta-plugin owns the claims.

use ipnet::IpNet;
use plexus_cni::{Error as CniError, IpConfig, NetConf, SuccessResult};
use serde_json::Value;

/// The `static` list of the `ipam` section, when the section is in echo mode.
pub fn section(conf: &NetConf) -> Option<&Value> {
    conf.ipam.as_ref()?.get("static")
}

/// The result echoing the `static` list (code 7 when it is malformed or empty).
pub fn result(list: &Value) -> Result<SuccessResult, CniError> {
    let bad = |why: String| CniError::invalid_config(format!("invalid ipam.static: {why}"));
    let items = list
        .as_array()
        .ok_or_else(|| bad("must be a list of {\"address\", \"gateway\"} objects".into()))?;
    if items.is_empty() {
        return Err(bad(
            "the list is empty (echo mode returns exactly the given addresses)".into(),
        ));
    }
    let mut ips = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let address: IpNet = item
            .get("address")
            .and_then(Value::as_str)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| {
                bad(format!(
                    "[{i}].address must be an address with prefix, e.g. 10.0.0.5/24"
                ))
            })?;
        let gateway = match item.get("gateway") {
            None | Some(Value::Null) => None,
            Some(gw) => Some(
                gw.as_str()
                    .and_then(|g| g.parse().ok())
                    .ok_or_else(|| bad(format!("[{i}].gateway must be an IP address")))?,
            ),
        };
        ips.push(IpConfig {
            address,
            gateway,
            interface: None,
        });
    }
    Ok(SuccessResult {
        ips,
        ..SuccessResult::default()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn echoes_exactly_the_given_addresses() {
        let r = result(&json!([{"address": "10.0.0.5/24", "gateway": "10.0.0.1"},
                                {"address": "fd00::5/64"}]))
        .unwrap();
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.5/24");
        assert_eq!(r.ips[0].gateway, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(r.ips[1].gateway, None);
    }

    #[test]
    fn malformed_lists_are_code_7() {
        for bad in [
            json!([]),
            json!("10.0.0.5/24"),
            json!([{"address": "10.0.0.5"}]),
            json!([{"address": "10.0.0.5/24", "gateway": "x"}]),
        ] {
            assert_eq!(result(&bad).unwrap_err().code, 7, "{bad}");
        }
    }
}
