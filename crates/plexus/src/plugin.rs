//! The six CNI verbs of the meta-plugin (VERSION is answered by the runner).
//!
//! [`PlexusPlugin`] holds the seams: the dataplane (real rtnetlink unless a test injects
//! the fake), the network source (files in `networksDir` unless injected) and the request
//! source (pod annotations; none without Kubernetes). With `kubeconfig` in the netconf the
//! Kubernetes source ([`crate::kube`]) replaces both lookups and writes network-status. Each verb runs on a fresh
//! current-thread tokio runtime: one CNI call is one process.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use plexus_cni::{CniVersion, Error as CniError, Plugin, Request, SuccessResult};
use plexus_netlink::{Dataplane, Netns, RealDataplane, Rule};
use plexus_store::{AttachmentKey, ClaimContext, Owner, Store};

use crate::config::PlexusConf;
use crate::delegate::{DelegateEnv, Runner};
use crate::duplicate::DuplicateCheck;
use crate::engine::{Engine, Undo, release_all, undo_one};
use crate::error::PlexusError;
use crate::kube::KubeSource;
use crate::networks::{Chain, FileNetworkSource, NetworkSource, StoreNetworkSource};
use crate::records::{EndpointRecord, Records};
use crate::request::{PodIdentity, RequestSource, pod_request, runtime_request};
use crate::{add, check, devices, forward, logging};

/// How long STATUS may take (runtimes poll it).
pub const STATUS_DEADLINE: Duration = Duration::from_millis(1500);

/// The meta-plugin with its seams.
#[derive(Default, Clone)]
pub struct PlexusPlugin {
    /// The kernel; `None` means rtnetlink on this host.
    pub dataplane: Option<Arc<dyn Dataplane>>,
    /// Network definitions; `None` means the files of `networksDir`.
    pub networks: Option<Arc<dyn NetworkSource>>,
    /// Pod annotations; `None` without Kubernetes.
    pub requests: Option<Arc<dyn RequestSource>>,
}

impl std::fmt::Debug for PlexusPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlexusPlugin")
            .field("dataplane", &self.dataplane.is_some())
            .field("networks", &self.networks.is_some())
            .field("requests", &self.requests.is_some())
            .finish()
    }
}

fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output, PlexusError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PlexusError::Cni(CniError::internal(format!("cannot start runtime: {e}"))))?;
    Ok(runtime.block_on(fut))
}

/// What every verb derives from the request.
struct Call {
    conf: PlexusConf,
    env: DelegateEnv,
    pod: PodIdentity,
    owner: Owner,
    records: Records,
}

impl Call {
    fn new(req: &Request) -> Result<Call, PlexusError> {
        let conf = PlexusConf::parse(&req.conf.raw, |k| std::env::var(k).ok())?;
        logging::init(conf.log_level.as_deref());
        let args = &req.env.args;
        let owner = Owner::new(
            args.pod_namespace().map(str::to_owned),
            args.pod_name().map(str::to_owned),
            args.pod_uid().map(str::to_owned),
        );
        Ok(Call {
            env: DelegateEnv {
                cni_path: req.env.path.clone(),
                container_id: req.env.container_id.clone().unwrap_or_default(),
                netns: req.env.netns.clone(),
                args: args.to_string(),
            },
            pod: PodIdentity {
                namespace: owner
                    .pod_namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_owned()),
                name: owner.pod_name.clone(),
                uid: owner.pod_uid.clone(),
            },
            records: Records::new(&conf.state_dir),
            owner,
            conf,
        })
    }

    fn base_record(&self, req: &Request) -> EndpointRecord {
        EndpointRecord {
            container_id: self.env.container_id.clone(),
            ifname: req.env.ifname.clone().unwrap_or_default(),
            netns: self.env.netns.as_ref().map(|p| p.display().to_string()),
            node: self.conf.node(),
            pod: [
                self.owner.pod_namespace.clone(),
                self.owner.pod_name.clone(),
                self.owner.pod_uid.clone(),
            ],
            complete: false,
            attachments: Vec::new(),
        }
    }
}

impl PlexusPlugin {
    fn dataplane(&self) -> Result<Arc<dyn Dataplane>, PlexusError> {
        match &self.dataplane {
            Some(dp) => Ok(dp.clone()),
            None => RealDataplane::new()
                .map(|dp| Arc::new(dp) as Arc<dyn Dataplane>)
                .map_err(|source| PlexusError::Io {
                    what: "cannot open the host network namespace",
                    path: "/proc/self/ns/net".to_owned(),
                    source,
                }),
        }
    }

    async fn add_async(&self, req: &Request, call: &Call) -> Result<SuccessResult, PlexusError> {
        req.env.args.reject_unknown()?;
        let store = plexus_store::open_with_agent(&call.conf.store, &call.conf.agent).await?;
        let first = req.env.ifname.clone().unwrap_or_else(|| "eth0".to_owned());
        let version = req.conf.cni_version.to_string();
        let kube = match &call.conf.kubeconfig {
            Some(path) => {
                Some(KubeSource::connect(path, &call.pod, &call.conf.default_network).await?)
            }
            None => None,
        };
        let (kube_pod, resolved) = match &kube {
            Some(kube) => {
                let runtime = runtime_request(&req.conf)?.map(|(_, list)| list);
                let pod = kube.pod(runtime).await?;
                let resolved = pod.requests()?;
                (Some(pod), resolved)
            }
            None => {
                let files = FileNetworkSource::new(&call.conf.networks_dir);
                let stored = StoreNetworkSource::new(store.as_ref());
                let networks: Chain<'_> = match &self.networks {
                    Some(injected) => Chain(vec![injected.as_ref()]),
                    None => Chain(vec![&files, &stored]),
                };
                let (origin, requests) =
                    pod_request(&req.conf, self.requests.as_deref(), &call.pod).await?;
                tracing::debug!(?origin, "request");
                let resolved =
                    add::resolve_requests(&call.conf, &networks, requests, &call.pod.namespace)
                        .await?;
                (None, resolved)
            }
        };
        let mut planned = add::plan_resolved(&call.conf, &version, resolved, &first)?;
        let pod = plexus_kubelet::PodKey {
            namespace: call.pod.namespace.clone(),
            name: call.pod.name.clone(),
            uid: call.pod.uid.clone(),
        };
        devices::assign(&call.conf.kubelet, &pod, &mut planned).await?;
        let dp = self.dataplane()?;
        let runner = Runner::new();
        let engine = Engine {
            dp: dp.as_ref(),
            store: store.as_ref(),
            runner: &runner,
            env: call.env.clone(),
            pod: pod_netns(&call.env),
            owner: call.owner.clone(),
            claim_ctx: ClaimContext::new(call.conf.node(), plexus_store::BlockPolicy::default()),
            duplicate: DuplicateCheck {
                attempts: call.conf.duplicate_attempts,
                quarantine: call.conf.quarantine,
                ..DuplicateCheck::default()
            },
        };
        let base = call.base_record(req);
        let added = add::run(&engine, &call.conf, &call.records, &base, &planned).await?;
        if let (Some(kube), Some(pod)) = (&kube, &kube_pod)
            && let Err(error) = kube.write_status(pod, &added.parts).await
        {
            tracing::warn!(%error, "network-status not written; undoing the ADD");
            if let Some(record) = call.records.load(&base.container_id, &base.ifname)? {
                teardown(dp.as_ref(), store.as_ref(), call, &record).await?;
                call.records.remove(&record.container_id, &record.ifname)?;
            }
            return Err(error);
        }
        Ok(added.result)
    }

    async fn del_async(&self, req: &Request, call: &Call) -> Result<(), PlexusError> {
        let ifname = req.env.ifname.clone().unwrap_or_default();
        let record = call.records.load(&call.env.container_id, &ifname)?;
        match &record {
            Some(record) => {
                let dp = self.dataplane()?;
                let store =
                    plexus_store::open_with_agent(&call.conf.store, &call.conf.agent).await?;
                teardown(dp.as_ref(), store.as_ref(), call, record).await?;
                call.records.remove(&record.container_id, &record.ifname)?;
            }
            None => tracing::info!(container = %call.env.container_id, "DEL: nothing recorded"),
        }
        // After the teardown, and also when nothing was recorded: a DEL retried after a
        // failed status removal still removes it.
        if let Some(path) = &call.conf.kubeconfig
            && call.pod.name.as_deref().is_some_and(|n| !n.is_empty())
        {
            let kube = KubeSource::connect(path, &call.pod, &call.conf.default_network).await?;
            let recorded = record.as_ref().and_then(|r| r.pod[2].as_deref());
            kube.remove_status(recorded).await?;
        }
        Ok(())
    }

    async fn check_async(&self, req: &Request, call: &Call) -> Result<(), PlexusError> {
        let ifname = req.env.ifname.clone().unwrap_or_default();
        let record = call
            .records
            .load(&call.env.container_id, &ifname)?
            .filter(|r| r.complete)
            .ok_or_else(|| {
                PlexusError::CheckFailed(format!(
                    "no complete attachment recorded for {}/{ifname}",
                    call.env.container_id
                ))
            })?;
        let prev = req
            .conf
            .parsed_prev_result()?
            .ok_or_else(|| PlexusError::Cni(CniError::invalid_config("CHECK needs prevResult")))?;
        let recorded: HashSet<IpAddr> = record
            .attachments
            .iter()
            .flat_map(|a| a.addresses.iter().map(|n| n.addr()))
            .collect();
        if let Some(ip) = prev
            .ips
            .iter()
            .find(|ip| !recorded.contains(&ip.address.addr()))
        {
            return Err(PlexusError::CheckFailed(format!(
                "prevResult address {} is not one plexus set up",
                ip.address
            )));
        }
        let dp = self.dataplane()?;
        let store = plexus_store::open_with_agent(&call.conf.store, &call.conf.agent).await?;
        let runner = Runner::new();
        let pod = pod_netns(&call.env);
        for a in &record.attachments {
            if a.claimed {
                let key = AttachmentKey::new(&a.network, &record.container_id, &a.ifname);
                let held: HashSet<IpAddr> =
                    store.attachment(&key).await?.iter().map(|x| x.ip).collect();
                if let Some(missing) = a.addresses.iter().find(|n| !held.contains(&n.addr())) {
                    return Err(PlexusError::CheckFailed(format!(
                        "{missing} of {} is no longer held in the store",
                        a.ifname
                    )));
                }
            }
            if a.driver == "delegate" {
                for plugin in &a.delegate {
                    let mut conf = plugin.clone();
                    if let Some(result) = &a.result {
                        conf["prevResult"] = result.clone();
                    }
                    let version: Option<CniVersion> =
                        conf["cniVersion"].as_str().and_then(|v| v.parse().ok());
                    if version.is_some_and(|v| !v.supports_check()) {
                        continue;
                    }
                    runner
                        .call(&call.env, "CHECK", Some(&a.ifname), &conf)
                        .await
                        .map_err(|e| PlexusError::CheckFailed(format!("{}: {e}", a.ifname)))?;
                }
                continue;
            }
            let link = dp
                .link(&pod, &a.ifname)
                .await
                .map_err(|source| PlexusError::Dataplane {
                    network: a.network.clone(),
                    ifname: a.ifname.clone(),
                    source: Box::new(source),
                })?;
            if !link.is_some_and(|l| l.up) {
                return Err(PlexusError::CheckFailed(format!(
                    "interface {} is missing or down",
                    a.ifname
                )));
            }
            let present = dp.list_addresses(&pod, &a.ifname).await.map_err(|source| {
                PlexusError::Dataplane {
                    network: a.network.clone(),
                    ifname: a.ifname.clone(),
                    source: Box::new(source),
                }
            })?;
            if let Some(missing) = a
                .addresses
                .iter()
                .find(|n| !present.iter().any(|p| p.address == **n))
            {
                return Err(PlexusError::CheckFailed(format!(
                    "interface {} lacks address {missing}",
                    a.ifname
                )));
            }
        }
        check::routes_and_rules(dp.as_ref(), &pod, &record.attachments, &prev).await
    }

    async fn status_async(&self, call: &Call) -> Result<(), PlexusError> {
        let config = call.conf.store.clone().with_timeout(STATUS_DEADLINE);
        let unavailable =
            |e: &dyn std::fmt::Display| PlexusError::NotAvailable(format!("store not usable: {e}"));
        let store = plexus_store::open_with_agent(&config, &call.conf.agent)
            .await
            .map_err(|e| unavailable(&e))?;
        tokio::time::timeout(STATUS_DEADLINE, store.probe())
            .await
            .map_err(|_| unavailable(&"probe timed out"))?
            .map_err(|e| unavailable(&e))?;
        let records = call.records.list()?;
        let runner = Runner::new();
        tokio::time::timeout(
            STATUS_DEADLINE,
            forward::status(&runner, &call.env, &records),
        )
        .await
        .map_err(|_| PlexusError::NotAvailable("delegate STATUS timed out".to_owned()))?
    }

    async fn gc_async(&self, req: &Request, call: &Call) -> Result<(), PlexusError> {
        let Some(valid) = &req.conf.valid_attachments else {
            tracing::warn!("GC without cni.dev/valid-attachments: nothing released");
            return Ok(());
        };
        let valid: HashSet<(String, String)> = valid
            .iter()
            .map(|a| (a.container_id.clone(), a.ifname.clone()))
            .collect();
        let dp = self.dataplane()?;
        let store = plexus_store::open_with_agent(&call.conf.store, &call.conf.agent).await?;
        let mut failures = Vec::new();
        let mut kept = Vec::new();
        for record in call.records.list()? {
            if valid.contains(&(record.container_id.clone(), record.ifname.clone())) {
                kept.push(record);
                continue;
            }
            tracing::info!(container = %record.container_id, "GC: tearing down a stale attachment");
            match teardown(dp.as_ref(), store.as_ref(), call, &record).await {
                Ok(()) => call.records.remove(&record.container_id, &record.ifname)?,
                Err(PlexusError::ReleaseFailed { details, .. }) => failures.extend(details),
                Err(other) => failures.push(other.to_string()),
            }
        }
        failures.extend(forward::gc(&Runner::new(), &call.env, &kept).await);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(PlexusError::ReleaseFailed {
                count: failures.len(),
                details: failures,
            })
        }
    }
}

fn pod_netns(env: &DelegateEnv) -> Netns {
    env.netns.clone().map_or(Netns::Host, Netns::Path)
}

/// Tears down everything `record` lists, newest first, past errors; fails only when the
/// store could not release.
async fn teardown(
    dp: &dyn Dataplane,
    store: &dyn Store,
    call: &Call,
    record: &EndpointRecord,
) -> Result<(), PlexusError> {
    let runner = Runner::new();
    let netns_path = call
        .env
        .netns
        .clone()
        .or_else(|| record.netns.clone().map(Into::into));
    let engine = Engine {
        dp,
        store,
        runner: &runner,
        env: DelegateEnv {
            netns: netns_path.clone(),
            container_id: record.container_id.clone(),
            ..call.env.clone()
        },
        pod: netns_path.map_or(Netns::Host, Netns::Path),
        owner: call.owner.clone(),
        claim_ctx: ClaimContext::new(record.node.clone(), plexus_store::BlockPolicy::default()),
        duplicate: DuplicateCheck::default(),
    };
    let mut keys = Vec::new();
    for a in record.attachments.iter().rev() {
        if a.claimed {
            keys.push(AttachmentKey::new(
                &a.network,
                &record.container_id,
                &a.ifname,
            ));
        }
        if a.driver == "delegate" {
            let undo = Undo::Delegate {
                plugins: a.delegate.clone(),
                ifname: a.ifname.clone(),
            };
            undo_one(&engine, &undo).await;
        }
        // A user-space interface got no policy rule (nor anything else in the kernel).
        if let Some(table) = a.rt_table.filter(|_| !a.userspace) {
            for address in &a.addresses {
                let rule = Rule::from_source(*address, u32::from(table));
                undo_one(&engine, &Undo::Rule(rule)).await;
            }
        }
        if let Some(temporary) = &a.temporary {
            for name in [&a.ifname, temporary] {
                undo_one(&engine, &Undo::Link(name.clone())).await;
            }
        }
    }
    let failures = release_all(store, &keys).await;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(PlexusError::ReleaseFailed {
            count: failures.len(),
            details: failures,
        })
    }
}

fn verb<T>(
    req: &Request,
    f: impl AsyncFnOnce(&Call) -> Result<T, PlexusError>,
) -> Result<T, CniError> {
    let call = Call::new(req)?;
    Ok(block_on(f(&call))??)
}

impl Plugin for PlexusPlugin {
    fn add(&self, req: &Request) -> Result<SuccessResult, CniError> {
        verb(req, async |call| self.add_async(req, call).await)
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let deadline = |call: &Call| call.conf.del_timeout;
        verb(req, async |call| {
            tokio::time::timeout(deadline(call), self.del_async(req, call))
                .await
                .map_err(|_| PlexusError::Deadline {
                    verb: "DEL",
                    ms: deadline(call).as_millis(),
                })?
        })
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        verb(req, async |call| self.check_async(req, call).await)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        verb(req, async |call| self.status_async(call).await)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        verb(req, async |call| self.gc_async(req, call).await)
    }
}
