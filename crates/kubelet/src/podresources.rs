//! The kubelet's pod-resources gRPC API (`v1.PodResourcesLister`) on its unix socket
//! (`/var/lib/kubelet/pod-resources/kubelet.sock`): [`list`] calls `List` once and returns
//! every pod's devices. This is how Multus learns the device IDs of SR-IOV networks; plexus
//! does the same and falls back to the checkpoint file ([`crate::checkpoint`]).

use std::path::Path;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Endpoint, Uri};

/// The generated messages, client and server of `proto/podresources_v1.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod api {
    tonic::include_proto!("v1");
}

/// Largest `List` reply accepted (a node with many pods and devices answers with a few
/// hundred KiB; Multus allows 16 MiB too).
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// Why `List` could not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodResourcesError {
    /// No socket at the path.
    #[error("no pod-resources socket at {0}")]
    NoSocket(String),
    /// Connecting or calling failed.
    #[error("pod-resources API at {path}: {reason}")]
    Call {
        /// The socket.
        path: String,
        /// What failed.
        reason: String,
    },
    /// No answer within the timeout.
    #[error("pod-resources API at {path} did not answer within {ms} ms")]
    Timeout {
        /// The socket.
        path: String,
        /// The timeout.
        ms: u128,
    },
}

/// Calls `List` on the socket at `socket`, within `timeout` (connect included).
pub async fn list(
    socket: &Path,
    timeout: Duration,
) -> Result<Vec<api::PodResources>, PodResourcesError> {
    let shown = socket.display().to_string();
    if !socket.exists() {
        return Err(PodResourcesError::NoSocket(shown));
    }
    let call_err = |reason: String| PodResourcesError::Call {
        path: shown.clone(),
        reason,
    };
    let path = socket.to_owned();
    let call = async {
        // The URI is required by the transport but unused: the connector dials the socket.
        let channel = Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { UnixStream::connect(path).await.map(TokioIo::new) }
            }))
            .await
            .map_err(|e| call_err(format!("cannot connect: {e}")))?;
        let mut client = api::pod_resources_lister_client::PodResourcesListerClient::new(channel)
            .max_decoding_message_size(MAX_REPLY_BYTES);
        let reply = client
            .list(api::ListPodResourcesRequest {})
            .await
            .map_err(|status| {
                call_err(format!(
                    "List failed: {:?}: {}",
                    status.code(),
                    status.message()
                ))
            })?;
        Ok(reply.into_inner().pod_resources)
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| PodResourcesError::Timeout {
            path: shown.clone(),
            ms: timeout.as_millis(),
        })?
}
