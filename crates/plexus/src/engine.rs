//! Setting up and tearing down one attachment, and the undo journal that makes a pod's ADD
//! all-or-nothing.
//!
//! Every step that creates something is written to the [`Journal`] *before* it runs (an
//! undo of something that never happened is harmless: deletes of absent objects succeed),
//! so an ADD abandoned at its deadline, with futures dropped mid-request, is still undone
//! completely. [`rollback`] replays the journal in reverse: delegate DELs, policy rules and
//! links, then store releases.
//!
//! Store calls are made once: the store retries transient failures itself, with the shared
//! backoff, until its configured deadline (see "Retries" in docs/architecture.md).

use std::net::IpAddr;
use std::sync::Mutex;

use ipnet::IpNet;
use plexus_cni::SuccessResult;
use plexus_netlink::{Dad, Dataplane, LinkSpec, Netns, Route, Rule, Sysctl};
use plexus_store::{AttachmentKey, Claim, ClaimContext, Owner, Store};
use serde_json::Value;

use crate::delegate::{self, DelegateEnv, Runner};
use crate::duplicate::DuplicateCheck;
use crate::error::PlexusError;
use crate::plan::{Driver, Planned};
use crate::userspace;

/// Everything an attachment's set-up needs besides its plan.
pub struct Engine<'a> {
    /// The kernel.
    pub dp: &'a dyn Dataplane,
    /// The allocation store.
    pub store: &'a dyn Store,
    /// Delegate runner (with its version cache).
    pub runner: &'a Runner,
    /// The CNI environment passed to delegates.
    pub env: DelegateEnv,
    /// The pod's netns.
    pub pod: Netns,
    /// Pod metadata for claims.
    pub owner: Owner,
    /// Node, block policy and clock of claims.
    pub claim_ctx: ClaimContext,
    /// Settings of `duplicateAddressCheck` networks.
    pub duplicate: DuplicateCheck,
}

/// One thing to undo.
#[derive(Debug, Clone, PartialEq)]
pub enum Undo {
    /// Release the store's addresses of this key.
    Release(AttachmentKey),
    /// Delete the link named so in the pod. Journalled under its temporary name before it
    /// is created and under its final name once renamed, so a rollback never deletes a
    /// link of that name that plexus did not make.
    Link(String),
    /// Delete a policy rule in the pod.
    Rule(Rule),
    /// Run DEL of a delegate chain (in reverse).
    Delegate {
        /// The plugin configurations as sent.
        plugins: Vec<Value>,
        /// The interface.
        ifname: String,
    },
}

/// The write-ahead undo log of one ADD.
#[derive(Debug, Default)]
pub struct Journal {
    entries: Mutex<Vec<Undo>>,
}

impl Journal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an undo before the step it undoes.
    pub fn push(&self, undo: Undo) {
        self.lock().push(undo);
    }

    /// The entries so far, oldest first.
    pub fn entries(&self) -> Vec<Undo> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Undo>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What one attachment ended up with.
#[derive(Debug, Clone, Default)]
pub struct Attached {
    /// Addresses with their gateways.
    pub addresses: Vec<(IpNet, Option<IpAddr>)>,
    /// MAC of the interface, when known.
    pub mac: Option<String>,
    /// MTU of the interface, when known.
    pub mtu: Option<u32>,
    /// The delegate's result (delegates only), parsed and raw.
    pub delegate: Option<(SuccessResult, Value)>,
    /// Main-table routes added.
    pub routes: Vec<(IpNet, IpAddr)>,
    /// Policy routes added, with their table.
    pub policy_routes: Vec<(IpNet, IpAddr, u32)>,
    /// The delegate chain as sent (delegates only).
    pub plugins: Vec<Value>,
    /// The interface's name in the pod (a delegate's may differ from the one asked for).
    pub link: String,
    /// Not a kernel link ([`crate::userspace`]): nothing was configured on it.
    pub userspace: bool,
}

impl Engine<'_> {
    pub(crate) fn key(&self, planned: &Planned) -> AttachmentKey {
        AttachmentKey::new(
            planned.network_name(),
            &self.env.container_id,
            &planned.ifname,
        )
    }

    pub(crate) fn dataplane_error(
        planned: &Planned,
    ) -> impl Fn(plexus_netlink::Error) -> PlexusError + '_ {
        move |source| PlexusError::Dataplane {
            network: planned.network_name(),
            ifname: planned.ifname.clone(),
            source: Box::new(source),
        }
    }

    /// Claims the attachment's addresses (journalled).
    async fn claim(
        &self,
        planned: &Planned,
        journal: &Journal,
    ) -> Result<Vec<(IpNet, Option<IpAddr>)>, PlexusError> {
        let claims = planned.claims()?;
        self.claim_these(planned, &claims, journal).await
    }

    /// Claims `claims` for the attachment (journalled), with the endpoint details.
    pub(crate) async fn claim_these(
        &self,
        planned: &Planned,
        claims: &[Claim<'_>],
        journal: &Journal,
    ) -> Result<Vec<(IpNet, Option<IpAddr>)>, PlexusError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.key(planned);
        journal.push(Undo::Release(key.clone()));
        // The endpoint record, written in the claim's own transaction.
        let mut owner = self.owner.clone();
        owner.details = Some(serde_json::json!({
            "ifname": planned.ifname,
            "network": planned.network_name(),
            "network_id": planned.network.valid.network_id,
            "driver": planned.driver.label(),
            "netns": self.pod.to_string(),
            "container_id": self.env.container_id,
            "node": self.claim_ctx.node,
            "device_id": planned.device_id,
        }));
        let allocations = self
            .store
            .claim(&key, &owner, claims, &self.claim_ctx)
            .await?;
        Ok(allocations
            .iter()
            .filter_map(|a| planned.address_of(a.ip))
            .collect())
    }

    /// Sets up one attachment. On error, what it created is in `journal`.
    pub async fn attach(
        &self,
        planned: &Planned,
        temporary: &str,
        journal: &Journal,
    ) -> Result<Attached, PlexusError> {
        let mut attached = match &planned.driver {
            Driver::Macvlan { parent, mode } => {
                let spec = LinkSpec::macvlan(temporary, parent, *mode);
                self.attach_builtin(planned, spec, journal).await?
            }
            Driver::Ipvlan { parent, mode } => {
                let spec = LinkSpec::ipvlan(temporary, parent, *mode);
                self.attach_builtin(planned, spec, journal).await?
            }
            Driver::Delegate { plugins } => {
                self.attach_delegate(planned, plugins.clone(), journal)
                    .await?
            }
        };
        if !attached.userspace {
            self.post_process(planned, &mut attached, journal).await?;
        }
        Ok(attached)
    }

    async fn attach_builtin(
        &self,
        planned: &Planned,
        spec: LinkSpec,
        journal: &Journal,
    ) -> Result<Attached, PlexusError> {
        let parent = spec.kind.parent().unwrap_or_default().to_owned();
        let temporary = spec.name.clone();
        let temporary = temporary.as_str();
        let dp_err = Self::dataplane_error(planned);
        // Checked before anything is claimed: the clearest error, and nothing to undo.
        if self
            .dp
            .link(&Netns::Host, &parent)
            .await
            .map_err(&dp_err)?
            .is_none()
        {
            return Err(PlexusError::MissingParent {
                network: planned.network_name(),
                parent: parent.clone(),
            });
        }
        let check = planned.network.valid.duplicate_address_check;
        if check {
            self.free_expired_quarantines(planned).await?;
        }
        let addresses = self.claim(planned, journal).await?;
        let spec = spec.in_netns(self.pod.clone());
        journal.push(Undo::Link(temporary.to_owned()));
        let link = self
            .dp
            .create_link(&Netns::Host, &spec)
            .await
            .map_err(&dp_err)?;
        let has_v6 = addresses.iter().any(|(a, _)| a.addr().is_ipv6());
        let sysctls: &[Sysctl] = if has_v6 {
            &[
                Sysctl::DisableIpv6(false),
                Sysctl::Autoconf(false),
                Sysctl::AcceptRa(false),
                Sysctl::NdiscNotify(true),
            ]
        } else {
            &[Sysctl::DisableIpv6(true)]
        };
        self.dp
            .set_sysctls(&self.pod, temporary, sysctls)
            .await
            .map_err(&dp_err)?;
        for (address, _) in &addresses {
            // With the check, IPv6 runs the kernel's DAD and IPv4 waits for its probe.
            let dad = match (check, address.addr().is_ipv4()) {
                (false, _) => Dad::Skip,
                (true, false) => Dad::Run,
                (true, true) => continue,
            };
            self.dp
                .add_address(&self.pod, temporary, *address, dad)
                .await
                .map_err(&dp_err)?;
        }
        self.dp
            .rename_link(&self.pod, temporary, &planned.ifname)
            .await
            .map_err(&dp_err)?;
        journal.push(Undo::Link(planned.ifname.clone()));
        self.dp
            .set_up(&self.pod, &planned.ifname)
            .await
            .map_err(&dp_err)?;
        let addresses = if check {
            self.settle_addresses(planned, addresses, journal).await?
        } else {
            addresses
        };
        let ips: Vec<IpAddr> = addresses.iter().map(|(a, _)| a.addr()).collect();
        if !ips.is_empty()
            && let Err(e) = self.dp.announce(&self.pod, &planned.ifname, &ips).await
        {
            tracing::warn!(ifname = %planned.ifname, error = %e, "announcement failed (not fatal)");
        }
        Ok(Attached {
            addresses,
            mac: link.mac.map(|m| m.to_string()),
            mtu: Some(link.mtu),
            link: planned.ifname.clone(),
            ..Attached::default()
        })
    }

    async fn attach_delegate(
        &self,
        planned: &Planned,
        mut plugins: Vec<Value>,
        journal: &Journal,
    ) -> Result<Attached, PlexusError> {
        let addresses = self.claim(planned, journal).await?;
        if planned.plexus_ipam {
            if addresses.is_empty() {
                if let Some(first) = plugins.first_mut().and_then(Value::as_object_mut) {
                    first.remove("ipam");
                }
            } else {
                delegate::use_plexus_addresses(&mut plugins, &addresses);
            }
        }
        journal.push(Undo::Delegate {
            plugins: plugins.clone(),
            ifname: planned.ifname.clone(),
        });
        let mut prev: Option<Value> = None;
        for plugin in &plugins {
            let mut conf = plugin.clone();
            if let Some(prev) = &prev {
                conf["prevResult"] = prev.clone();
            }
            let reply = self
                .runner
                .call(&self.env, "ADD", Some(&planned.ifname), &conf)
                .await
                .map_err(|e| delegate_error(planned, plugin, "ADD", e))?;
            prev = Some(reply.unwrap_or_else(|| serde_json::json!({})));
        }
        let raw = prev.unwrap_or_else(|| serde_json::json!({}));
        let result = SuccessResult::from_json(&raw).unwrap_or_default();
        let own = userspace::own_interface(&result, &planned.ifname).map(|i| &result.interfaces[i]);
        let link = own.map_or_else(|| planned.ifname.clone(), |i| i.name.clone());
        let not_kernel =
            userspace::not_kernel_managed(self.dp, &self.pod, planned, own, &link).await?;
        if let Some(why) = &not_kernel {
            userspace::warn(planned, &link, why);
        }
        let addresses = if planned.plexus_ipam {
            addresses
        } else {
            result
                .ips
                .iter()
                .map(|ip| (ip.address, ip.gateway))
                .collect()
        };
        Ok(Attached {
            addresses,
            mac: own.and_then(|i| i.mac.clone()),
            mtu: own.and_then(|i| i.mtu),
            delegate: Some((result, raw)),
            plugins,
            link,
            userspace: not_kernel.is_some(),
            ..Attached::default()
        })
    }

    /// Routes (main table, families with an address) and policy routing (`rt_tables`).
    async fn post_process(
        &self,
        planned: &Planned,
        attached: &mut Attached,
        journal: &Journal,
    ) -> Result<(), PlexusError> {
        let dp_err = Self::dataplane_error(planned);
        let addresses: Vec<IpNet> = attached.addresses.iter().map(|(a, _)| *a).collect();
        for (dst, gw) in planned.routes_for(&addresses) {
            let route = Route::new(dst).via(gw).dev(&attached.link);
            match self.dp.add_route(&self.pod, &route).await {
                Err(e) if e.kind() == plexus_netlink::ErrorKind::Exists => {}
                other => other.map_err(&dp_err)?,
            }
            attached.routes.push((dst, gw));
        }
        let Some(table) = planned.network.valid.rt_table else {
            return Ok(());
        };
        let table = u32::from(table);
        for address in &addresses {
            let v4 = address.addr().is_ipv4();
            let routes: Vec<_> = planned
                .policy_routes
                .iter()
                .filter(|r| r.dst.addr().is_ipv4() == v4)
                .collect();
            if routes.is_empty() {
                continue;
            }
            let rule = Rule::from_source(*address, table);
            journal.push(Undo::Rule(rule.clone()));
            self.dp.add_rule(&self.pod, &rule).await.map_err(&dp_err)?;
            for r in routes {
                let route = Route::new(r.dst)
                    .via(r.gw)
                    .dev(&attached.link)
                    .in_table(table);
                self.dp
                    .add_route(&self.pod, &route)
                    .await
                    .map_err(&dp_err)?;
                attached.policy_routes.push((r.dst, r.gw, table));
            }
        }
        Ok(())
    }
}

fn delegate_error(
    planned: &Planned,
    plugin: &Value,
    verb: &str,
    err: delegate::DelegateError,
) -> PlexusError {
    let code = match &err {
        delegate::DelegateError::Failed { code, .. } => *code,
        _ => None,
    };
    PlexusError::Delegate {
        network: planned.network_name(),
        plugin: delegate::plugin_type(plugin).to_owned(),
        verb: verb.to_owned(),
        message: err.to_string(),
        code,
    }
}

/// Undoes everything in `journal`, newest first; store releases go last. Keeps going past
/// errors; returns the release failures (the only ones that leak silently otherwise).
pub async fn rollback(engine: &Engine<'_>, journal: &Journal) -> Vec<String> {
    let entries = journal.entries();
    let mut releases = Vec::new();
    for undo in entries.iter().rev() {
        match undo {
            Undo::Release(key) => releases.push(key.clone()),
            other => undo_one(engine, other).await,
        }
    }
    release_all(engine.store, &releases).await
}

/// Undoes one non-store step, logging failures.
pub async fn undo_one(engine: &Engine<'_>, undo: &Undo) {
    let pod = &engine.pod;
    match undo {
        Undo::Release(_) => {}
        Undo::Link(name) => {
            if let Err(e) = engine.dp.delete_link(pod, name).await {
                tracing::warn!(link = %name, error = %e, "cannot delete link");
            }
        }
        Undo::Rule(rule) => {
            if let Err(e) = engine.dp.del_rule(pod, rule).await {
                tracing::warn!(rule = %rule, error = %e, "cannot delete rule");
            }
        }
        Undo::Delegate { plugins, ifname } => {
            for plugin in plugins.iter().rev() {
                if let Err(e) = engine
                    .runner
                    .call(&engine.env, "DEL", Some(ifname), plugin)
                    .await
                {
                    tracing::warn!(plugin = delegate::plugin_type(plugin), error = %e, "delegate DEL failed");
                }
            }
        }
    }
}

/// Releases every key; returns one message per key the store could not release.
pub async fn release_all(store: &dyn Store, keys: &[AttachmentKey]) -> Vec<String> {
    let mut failures = Vec::new();
    for key in keys {
        if let Err(e) = store.release(key).await {
            failures.push(format!(
                "{}/{}/{}: {e}",
                key.network, key.container_id, key.ifname
            ));
        }
    }
    failures
}
