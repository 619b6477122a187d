//! ADD: plan the pod's attachments, record the intent, set them up concurrently (bounded)
//! under one deadline, and either return one merged result or undo everything.

use futures::{StreamExt, TryStreamExt};
use plexus_cni::{Interface, IpConfig, Route, SuccessResult};
use plexus_model::{AddressRequest, AttachmentRequest};
use plexus_netlink::{Netns, Sysctl, temporary_link_name};

use crate::config::PlexusConf;
use crate::devices;
use crate::engine::{Attached, Engine, Journal, rollback};
use crate::error::PlexusError;
use crate::naming::{NameInput, interface_names};
use crate::networks::{Network, NetworkSource, resolve, resolve_default};
use crate::plan::{Driver, Planned, driver_of, plexus_allocates, pool_of};
use crate::records::{AttachmentRecord, EndpointRecord, RecordedRoute, Records};
use crate::userspace;

/// Turns the requests (or the default network) into planned attachments, names checked.
pub async fn plan(
    conf: &PlexusConf,
    cni_version: &str,
    networks: &dyn NetworkSource,
    requests: Option<Vec<AttachmentRequest>>,
    pod_namespace: &str,
    first_ifname: &str,
) -> Result<Vec<Planned>, PlexusError> {
    let resolved = resolve_requests(conf, networks, requests, pod_namespace).await?;
    plan_resolved(conf, cni_version, resolved, first_ifname)
}

/// Each request with the network serving it (or the default network), from `networks`.
pub async fn resolve_requests(
    conf: &PlexusConf,
    networks: &dyn NetworkSource,
    requests: Option<Vec<AttachmentRequest>>,
    pod_namespace: &str,
) -> Result<Vec<(AttachmentRequest, Network)>, PlexusError> {
    let mut resolved = Vec::new();
    match requests {
        Some(list) => {
            for request in list {
                let network = resolve(networks, &request.network, pod_namespace).await?;
                resolved.push((request, network));
            }
        }
        None => {
            let (reference, network) =
                resolve_default(networks, &conf.default_network, pod_namespace).await?;
            resolved.push((
                default_request(reference.kind, &reference.name, &network)?,
                network,
            ));
        }
    }
    Ok(resolved)
}

/// The request of DANM's default network: one interface with a dynamic IPv4 address when
/// the network has IPv4.
pub fn default_request(
    kind: plexus_model::NetworkRefKind,
    name: &str,
    network: &Network,
) -> Result<AttachmentRequest, PlexusError> {
    let text = serde_json::json!([{
        match kind {
            plexus_model::NetworkRefKind::DanmNet => "network",
            plexus_model::NetworkRefKind::TenantNetwork => "tenantNetwork",
            _ => "clusterNetwork",
        }: name,
        "ip": if network.valid.v4.is_some() { "dynamic" } else { "" },
    }]);
    let mut list = plexus_model::parse_danm_interfaces(&text.to_string())?;
    Ok(list.remove(0))
}

/// Plans attachments whose networks are already resolved (by [`resolve_requests`] or the
/// Kubernetes source), names checked.
pub fn plan_resolved(
    conf: &PlexusConf,
    cni_version: &str,
    resolved: Vec<(AttachmentRequest, Network)>,
    first_ifname: &str,
) -> Result<Vec<Planned>, PlexusError> {
    let inputs: Vec<NameInput> = resolved
        .iter()
        .enumerate()
        .map(|(index, (request, network))| NameInput {
            index,
            prefix: network.valid.container_prefix.clone(),
            requested: request.interface.clone(),
            network: network.qualified_name(),
        })
        .collect();
    let names = interface_names(first_ifname, &inputs, conf.naming)?;
    let mut planned = Vec::with_capacity(resolved.len());
    for (index, ((request, network), ifname)) in resolved.into_iter().zip(names).enumerate() {
        let driver = driver_of(&network, &conf.cni_dir, cni_version)?;
        let plexus_ipam = match driver {
            Driver::Delegate { .. } => plexus_allocates(&network, request.ipv4, request.ipv6),
            _ => true,
        };
        let resource = devices::resource_of(&network, &driver)?;
        let userspace = userspace::marked(&network)?;
        let p = Planned {
            index,
            ifname,
            pool: pool_of(&network)?,
            ipv4: request.ipv4,
            ipv6: request.ipv6,
            policy_routes: request.policy_routes.clone(),
            driver,
            plexus_ipam,
            network,
            resource,
            device_id: None,
            userspace,
        };
        p.claims()?; // every request checked against its network before anything happens
        planned.push(p);
    }
    Ok(planned)
}

/// The intent record written before anything is created.
pub fn intent_record(
    base: &EndpointRecord,
    planned: &[Planned],
    temporaries: &[String],
) -> EndpointRecord {
    let mut record = base.clone();
    record.complete = false;
    record.attachments = planned
        .iter()
        .zip(temporaries)
        .map(|(p, tmp)| AttachmentRecord {
            network: p.network_name(),
            network_id: p.network.valid.network_id.clone(),
            ifname: p.ifname.clone(),
            temporary: matches!(p.driver, Driver::Macvlan { .. } | Driver::Ipvlan { .. })
                .then(|| tmp.clone()),
            driver: p.driver.label().to_owned(),
            delegate: match &p.driver {
                Driver::Delegate { plugins } => plugins.clone(),
                _ => Vec::new(),
            },
            claimed: p.plexus_ipam
                && !(matches!(p.ipv4, AddressRequest::Absent | AddressRequest::None)
                    && matches!(p.ipv6, AddressRequest::Absent | AddressRequest::None)),
            addresses: Vec::new(),
            mac: None,
            rt_table: p.network.valid.rt_table,
            result: None,
            routes: Vec::new(),
            link: None,
            userspace: p.userspace,
            device_id: p.device_id.clone(),
        })
        .collect();
    record
}

/// What a successful ADD set up.
#[derive(Debug, Clone)]
pub struct Added {
    /// The merged CNI result of the pod.
    pub result: SuccessResult,
    /// One result per planned attachment, in plan order (what network-status is built
    /// from).
    pub parts: Vec<SuccessResult>,
}

/// Sets up every planned attachment or none: the transaction of one ADD.
pub async fn run(
    engine: &Engine<'_>,
    conf: &PlexusConf,
    records: &Records,
    base: &EndpointRecord,
    planned: &[Planned],
) -> Result<Added, PlexusError> {
    if let Some(existing) = records.load(&base.container_id, &base.ifname)? {
        return Err(PlexusError::Request(format!(
            "container {} already has {} attachment(s) on {}; DEL it before adding again",
            existing.container_id,
            existing.attachments.len(),
            existing.ifname
        )));
    }
    check_free_names(engine, planned).await?;
    let temporaries: Vec<String> = planned.iter().map(|_| temporary_link_name()).collect();
    let mut record = intent_record(base, planned, &temporaries);
    records.save(&record)?;
    let journal = Journal::new();
    if let Err(e) = engine
        .dp
        .set_sysctls(&engine.pod, "all", &[Sysctl::DisableIpv6(false)])
        .await
    {
        tracing::debug!(error = %e, "cannot enable IPv6 in the pod (IPv6 attachments will fail)");
    }
    let setups = futures::stream::iter(planned.iter().zip(&temporaries))
        .map(|(p, tmp)| engine.attach(p, tmp, &journal))
        .buffered(conf.max_parallel);
    let outcome =
        tokio::time::timeout(conf.add_timeout, setups.try_collect::<Vec<Attached>>()).await;
    let error = match outcome {
        Ok(Ok(attached)) => {
            for (slot, a) in record.attachments.iter_mut().zip(&attached) {
                slot.addresses = a.addresses.iter().map(|(n, _)| *n).collect();
                slot.mac = a.mac.clone();
                slot.result = a.delegate.as_ref().map(|(_, raw)| raw.clone());
                slot.routes = a
                    .routes
                    .iter()
                    .map(|(dst, gw)| (*dst, *gw, plexus_netlink::MAIN_TABLE))
                    .chain(a.policy_routes.iter().copied())
                    .map(|(dst, gw, table)| RecordedRoute { dst, gw, table })
                    .collect();
                if !a.plugins.is_empty() {
                    slot.delegate = a.plugins.clone();
                }
                slot.link = (a.link != slot.ifname).then(|| a.link.clone());
                slot.userspace = a.userspace;
            }
            record.complete = true;
            records.save(&record)?;
            let parts = planned
                .iter()
                .zip(&attached)
                .map(|(p, a)| {
                    merge(
                        std::slice::from_ref(p),
                        std::slice::from_ref(a),
                        &engine.pod,
                    )
                })
                .collect();
            return Ok(Added {
                result: merge(planned, &attached, &engine.pod),
                parts,
            });
        }
        Ok(Err(e)) => e,
        Err(_) => PlexusError::Deadline {
            verb: "ADD",
            ms: conf.add_timeout.as_millis(),
        },
    };
    tracing::warn!(error = %error, "ADD failed; undoing everything set up so far");
    let undo = tokio::time::timeout(conf.del_timeout, rollback(engine, &journal)).await;
    match undo {
        Ok(failures) if failures.is_empty() => records.remove(&base.container_id, &base.ifname)?,
        Ok(failures) => {
            tracing::error!(
                ?failures,
                "rollback could not release every address; DEL will retry"
            );
        }
        Err(_) => tracing::error!("rollback did not finish in time; DEL will retry"),
    }
    Err(error)
}

/// Refuses names that already exist in the pod (another plugin's interface must never be
/// renamed over or deleted by a rollback).
async fn check_free_names(engine: &Engine<'_>, planned: &[Planned]) -> Result<(), PlexusError> {
    let builtin: Vec<&Planned> = planned
        .iter()
        .filter(|p| !matches!(p.driver, Driver::Delegate { .. }))
        .collect();
    if builtin.is_empty() {
        return Ok(());
    }
    let links =
        engine
            .dp
            .list_links(&engine.pod)
            .await
            .map_err(|source| PlexusError::Dataplane {
                network: builtin[0].network_name(),
                ifname: builtin[0].ifname.clone(),
                source: Box::new(source),
            })?;
    match builtin
        .iter()
        .find(|p| links.iter().any(|l| l.name == p.ifname))
    {
        Some(taken) => Err(PlexusError::Request(format!(
            "interface {} (network {}) already exists in the pod",
            taken.ifname,
            taken.network_name()
        ))),
        None => Ok(()),
    }
}

/// One CNI result: every interface, address (with its interface index) and route, in pod
/// order, so eth0's entries come first.
pub fn merge(planned: &[Planned], attached: &[Attached], pod: &Netns) -> SuccessResult {
    let sandbox = match pod {
        Netns::Path(p) => Some(p.display().to_string()),
        Netns::Host => None,
    };
    let mut out = SuccessResult::default();
    for (p, a) in planned.iter().zip(attached) {
        let own_index;
        if let Some((result, _)) = &a.delegate {
            let offset = out.interfaces.len();
            out.interfaces.extend(result.interfaces.iter().cloned());
            let mut own = userspace::own_interface(result, &p.ifname).map(|i| i + offset);
            if own.is_none() && a.userspace {
                // A user-space interface the delegate did not list: plexus' addresses
                // still need an interface to belong to.
                own = Some(out.interfaces.len());
                out.interfaces.push(Interface {
                    name: a.link.clone(),
                    sandbox: sandbox.clone(),
                    ..Interface::default()
                });
            }
            own_index = own;
            if !p.plexus_ipam {
                out.ips.extend(result.ips.iter().map(|ip| IpConfig {
                    interface: ip.interface.map(|i| i + offset),
                    ..ip.clone()
                }));
            }
            out.routes.extend(result.routes.iter().cloned());
            if out.dns.is_none() {
                out.dns = result.dns.clone();
            }
        } else {
            own_index = Some(out.interfaces.len());
            out.interfaces.push(Interface {
                name: p.ifname.clone(),
                mac: a.mac.clone(),
                mtu: a.mtu,
                sandbox: sandbox.clone(),
                ..Interface::default()
            });
        }
        if a.delegate.is_none() || p.plexus_ipam {
            out.ips
                .extend(a.addresses.iter().map(|(address, gateway)| IpConfig {
                    address: *address,
                    gateway: *gateway,
                    interface: own_index,
                }));
        }
        for (dst, gw) in &a.routes {
            let route = Route::new(*dst, Some(*gw));
            if !out.routes.contains(&route) {
                out.routes.push(route);
            }
        }
        for (dst, gw, table) in &a.policy_routes {
            let mut route = Route::new(*dst, Some(*gw));
            route.table = Some(*table);
            out.routes.push(route);
        }
    }
    out
}
