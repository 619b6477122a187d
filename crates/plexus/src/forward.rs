//! STATUS and GC for delegates: plexus forwards them to every delegate plugin its endpoint
//! records use, once per plugin configuration (`name` + `type`), and only to plugins whose
//! VERSION lists 1.1.0. Older ones (Debian's plugins stop at 1.0.0) have no STATUS or GC
//! and are skipped.

use plexus_cni::Attachment;
use plexus_cni::netconf::KEY_VALID_ATTACHMENTS;
use serde_json::Value;

use crate::delegate::{self, DelegateEnv, Runner};
use crate::error::PlexusError;
use crate::records::EndpointRecord;

/// The distinct delegate configurations of `records`, each with the attachments
/// (`containerID`, interface) using it.
pub fn delegates_in(records: &[EndpointRecord]) -> Vec<(Value, Vec<Attachment>)> {
    let mut out: Vec<(Value, Vec<Attachment>)> = Vec::new();
    for record in records {
        for a in &record.attachments {
            for plugin in &a.delegate {
                let attachment = Attachment {
                    container_id: record.container_id.clone(),
                    ifname: a.ifname.clone(),
                };
                let same = |c: &Value| {
                    c.get("name") == plugin.get("name") && c.get("type") == plugin.get("type")
                };
                match out.iter_mut().find(|(c, _)| same(c)) {
                    Some((_, users)) => users.push(attachment),
                    None => out.push((plugin.clone(), vec![attachment])),
                }
            }
        }
    }
    out
}

/// `conf` ready for a 1.1.0 verb, or `None` when its plugin does not speak 1.1.0.
async fn for_1_1(runner: &Runner, env: &DelegateEnv, conf: &Value) -> Option<Value> {
    let binary = runner.find(env, delegate::plugin_type(conf)).ok()?;
    if !runner.has_status_gc(env, &binary).await {
        tracing::debug!(
            plugin = delegate::plugin_type(conf),
            "delegate has no STATUS/GC (CNI < 1.1.0): skipped"
        );
        return None;
    }
    let mut conf = conf.clone();
    conf["cniVersion"] = Value::String("1.1.0".to_owned());
    Some(conf)
}

/// STATUS of every delegate in use: the first one that is not ready makes plexus not ready.
pub async fn status(
    runner: &Runner,
    env: &DelegateEnv,
    records: &[EndpointRecord],
) -> Result<(), PlexusError> {
    for (conf, _) in delegates_in(records) {
        let Some(conf) = for_1_1(runner, env, &conf).await else {
            continue;
        };
        if let Err(e) = runner.call(env, "STATUS", None, &conf).await {
            return Err(PlexusError::NotAvailable(format!(
                "delegate {} is not ready: {e}",
                delegate::plugin_type(&conf)
            )));
        }
    }
    Ok(())
}

/// GC of every delegate in use, with the attachments that stay valid; returns one message
/// per delegate whose GC failed.
pub async fn gc(runner: &Runner, env: &DelegateEnv, valid: &[EndpointRecord]) -> Vec<String> {
    let mut failures = Vec::new();
    for (conf, users) in delegates_in(valid) {
        let Some(mut conf) = for_1_1(runner, env, &conf).await else {
            continue;
        };
        conf[KEY_VALID_ATTACHMENTS] = serde_json::to_value(&users).unwrap_or_default();
        if let Err(e) = runner.call(env, "GC", None, &conf).await {
            failures.push(format!("delegate {} GC: {e}", delegate::plugin_type(&conf)));
        }
    }
    failures
}
