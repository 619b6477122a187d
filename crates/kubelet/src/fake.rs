//! A fake kubelet for tests (feature `fake`): serves `v1.PodResourcesLister` on a unix
//! socket from a thread of its own, with the pods and devices the test gives it, and
//! counts the `List` calls it answered.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

use crate::podresources::api::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use crate::podresources::api::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, ContainerDevices,
    ContainerResources, GetPodResourcesRequest, GetPodResourcesResponse, ListPodResourcesRequest,
    ListPodResourcesResponse, PodResources,
};

/// One pod the fake kubelet lists.
#[derive(Debug, Clone, Default)]
pub struct FakePod {
    namespace: String,
    name: String,
    containers: Vec<ContainerResources>,
}

impl FakePod {
    /// A pod without devices.
    pub fn new(namespace: &str, name: &str) -> Self {
        FakePod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            containers: Vec::new(),
        }
    }

    /// Adds `ids` of `resource` to container `container`.
    pub fn devices(mut self, container: &str, resource: &str, ids: &[&str]) -> Self {
        let devices = ContainerDevices {
            resource_name: resource.to_owned(),
            device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            topology: None,
        };
        match self.containers.iter_mut().find(|c| c.name == container) {
            Some(c) => c.devices.push(devices),
            None => self.containers.push(ContainerResources {
                name: container.to_owned(),
                devices: vec![devices],
                ..ContainerResources::default()
            }),
        }
        self
    }
}

#[derive(Clone)]
struct Service {
    pods: Arc<Mutex<Vec<FakePod>>>,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl PodResourcesLister for Service {
    async fn list(
        &self,
        _: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let pods = self
            .pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(Response::new(ListPodResourcesResponse {
            pod_resources: pods
                .iter()
                .map(|p| PodResources {
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                    containers: p.containers.clone(),
                    ..PodResources::default()
                })
                .collect(),
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("the fake kubelet serves List only"))
    }

    async fn get(
        &self,
        _: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        Err(Status::unimplemented("the fake kubelet serves List only"))
    }
}

/// A running fake kubelet; stops (and removes its socket) when dropped.
pub struct FakeKubelet {
    socket: PathBuf,
    calls: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeKubelet {
    /// Serves `pods` on a new socket at `socket` (bound before this returns).
    pub fn start(socket: &Path, pods: Vec<FakePod>) -> std::io::Result<FakeKubelet> {
        let listener = std::os::unix::net::UnixListener::bind(socket)?;
        listener.set_nonblocking(true)?;
        let calls = Arc::new(AtomicUsize::new(0));
        let service = Service {
            pods: Arc::new(Mutex::new(pods)),
            calls: calls.clone(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::UnixListener::from_std(listener) else {
                    return;
                };
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
                let server = tonic::transport::Server::builder()
                    .add_service(PodResourcesListerServer::new(service))
                    .serve_with_incoming(incoming);
                // Not a graceful shutdown: a client's idle connection must not keep the
                // test waiting (dropping the runtime closes every connection).
                tokio::select! {
                    _ = server => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(FakeKubelet {
            socket: socket.to_owned(),
            calls,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// How many `List` calls were answered.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}
