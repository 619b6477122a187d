//! The three netlink exchanges the dataplane uses — a request answered by an ACK, a
//! single-object get, and a dump — with kernel errors turned into [`crate::Error`]s and
//! dumps retried when the kernel flags them inconsistent (`NLM_F_DUMP_INTR`, like Go's
//! `netlinksafe`).

use std::future::Future;
use std::num::NonZeroI32;

use futures::StreamExt;
use netlink_packet_route::RouteNetlinkMessage;
use nix::errno::Errno;
use rtnetlink::Handle;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};

use crate::error::{ErrorContext, ErrorKind, Result};

/// How often an interrupted dump is tried before giving up (Go's netlinksafe uses 5).
pub(crate) const MAX_DUMP_ATTEMPTS: usize = 5;

fn errno_of(code: NonZeroI32) -> Errno {
    // The kernel sends negative errnos.
    Errno::from_raw(code.get().saturating_abs())
}

fn closed(ctx: &ErrorContext) -> crate::Error {
    ctx.error(ErrorKind::Other, "the netlink connection is closed")
}

/// Sends `message` with `flags` (plus REQUEST|ACK) and waits for the kernel's answer.
pub(crate) async fn ack(
    handle: &Handle,
    ctx: &ErrorContext,
    message: RouteNetlinkMessage,
    flags: u16,
) -> Result<()> {
    let mut request = NetlinkMessage::from(message);
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    let mut responses = handle.clone().request(request).map_err(|_| closed(ctx))?;
    while let Some(response) = responses.next().await {
        if let NetlinkPayload::Error(err) = response.payload
            && let Some(code) = err.code
        {
            return Err(ctx.errno(errno_of(code)));
        }
    }
    Ok(())
}

/// Sends a non-dump get and returns the one object, or `None` when the kernel says it does
/// not exist.
pub(crate) async fn get_one(
    handle: &Handle,
    ctx: &ErrorContext,
    message: RouteNetlinkMessage,
) -> Result<Option<RouteNetlinkMessage>> {
    let mut request = NetlinkMessage::from(message);
    request.header.flags = NLM_F_REQUEST;
    let mut responses = handle.clone().request(request).map_err(|_| closed(ctx))?;
    let mut found = None;
    while let Some(response) = responses.next().await {
        match response.payload {
            NetlinkPayload::InnerMessage(inner) => found = Some(inner),
            NetlinkPayload::Error(err) => match err.code {
                Some(code) => {
                    let error = ctx.errno(errno_of(code));
                    return if error.kind() == ErrorKind::NotFound {
                        Ok(None)
                    } else {
                        Err(error)
                    };
                }
                None => break,
            },
            _ => {}
        }
    }
    Ok(found)
}

/// What one dump attempt produced.
#[derive(Debug, PartialEq)]
pub(crate) enum DumpOutcome {
    /// Every object, consistently.
    Complete(Vec<RouteNetlinkMessage>),
    /// The kernel's tables changed during the dump; the result may be inconsistent.
    Interrupted,
}

/// Reads the messages of one dump: objects, or an error, or a sign it was interrupted.
pub(crate) fn scan_dump(
    messages: Vec<NetlinkMessage<RouteNetlinkMessage>>,
) -> std::result::Result<DumpOutcome, Errno> {
    let mut objects = Vec::new();
    let mut interrupted = false;
    for message in messages {
        interrupted |= message.header.flags & NLM_F_DUMP_INTR != 0;
        match message.payload {
            NetlinkPayload::InnerMessage(inner) => objects.push(inner),
            NetlinkPayload::Error(err) => match err.code.map(errno_of) {
                Some(Errno::EINTR) => interrupted = true,
                Some(errno) => return Err(errno),
                None => {}
            },
            // Lost messages are as bad as an interrupted dump.
            NetlinkPayload::Overrun(_) => interrupted = true,
            _ => {}
        }
    }
    Ok(if interrupted {
        DumpOutcome::Interrupted
    } else {
        DumpOutcome::Complete(objects)
    })
}

/// Runs `attempt` until it completes, at most [`MAX_DUMP_ATTEMPTS`] times.
pub(crate) async fn retry_interrupted<F, Fut>(
    ctx: &ErrorContext,
    mut attempt: F,
) -> Result<Vec<RouteNetlinkMessage>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<DumpOutcome>>,
{
    for _ in 0..MAX_DUMP_ATTEMPTS {
        if let DumpOutcome::Complete(objects) = attempt().await? {
            return Ok(objects);
        }
        tracing::debug!(%ctx, "netlink dump interrupted by a concurrent change; retrying");
    }
    Err(ctx.error(
        ErrorKind::Other,
        format!(
            "the dump was interrupted by concurrent changes {MAX_DUMP_ATTEMPTS} times in a row \
             (NLM_F_DUMP_INTR)"
        ),
    ))
}

/// Dumps every object `message` asks for, retrying interrupted dumps.
pub(crate) async fn dump(
    handle: &Handle,
    ctx: &ErrorContext,
    message: RouteNetlinkMessage,
) -> Result<Vec<RouteNetlinkMessage>> {
    retry_interrupted(ctx, || async {
        let mut request = NetlinkMessage::from(message.clone());
        request.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let responses = handle.clone().request(request).map_err(|_| closed(ctx))?;
        let messages = responses.collect::<Vec<_>>().await;
        scan_dump(messages).map_err(|errno| ctx.errno(errno))
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use netlink_packet_route::link::LinkMessage;
    use rtnetlink::packet_core::{DoneMessage, ErrorMessage, NLM_F_MULTIPART};

    use super::*;
    use crate::error::Op;
    use crate::types::Netns;

    fn link_message(flags: u16) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut m = NetlinkMessage::from(RouteNetlinkMessage::NewLink(LinkMessage::default()));
        m.header.flags = flags;
        m
    }

    fn done(flags: u16) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut m = NetlinkMessage::from(RouteNetlinkMessage::NewLink(LinkMessage::default()));
        m.payload = NetlinkPayload::Done(DoneMessage::default());
        m.header.flags = flags;
        m
    }

    fn error(code: i32) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut m = NetlinkMessage::from(RouteNetlinkMessage::NewLink(LinkMessage::default()));
        let mut err = ErrorMessage::default();
        err.code = NonZeroI32::new(code);
        m.payload = NetlinkPayload::Error(err);
        m
    }

    fn ctx() -> ErrorContext {
        ErrorContext::new(Op::ListLinks, None, &Netns::Host)
    }

    #[test]
    fn a_clean_dump_returns_its_objects() {
        let msgs = vec![
            link_message(NLM_F_MULTIPART),
            link_message(NLM_F_MULTIPART),
            done(0),
        ];
        match scan_dump(msgs) {
            Ok(DumpOutcome::Complete(objects)) => assert_eq!(objects.len(), 2),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn dump_intr_on_any_message_marks_the_dump_interrupted() {
        let on_object = vec![link_message(NLM_F_MULTIPART | NLM_F_DUMP_INTR), done(0)];
        assert_eq!(scan_dump(on_object), Ok(DumpOutcome::Interrupted));
        // The flag may only show on NLMSG_DONE when the change came after the last object.
        let on_done = vec![link_message(NLM_F_MULTIPART), done(NLM_F_DUMP_INTR)];
        assert_eq!(scan_dump(on_done), Ok(DumpOutcome::Interrupted));
        assert_eq!(scan_dump(vec![error(-4)]), Ok(DumpOutcome::Interrupted));
    }

    #[test]
    fn other_kernel_errors_end_the_dump() {
        assert_eq!(scan_dump(vec![error(-1)]), Err(Errno::EPERM));
        assert_eq!(scan_dump(vec![error(-19)]), Err(Errno::ENODEV));
    }

    #[tokio::test]
    async fn interrupted_dumps_are_retried_a_bounded_number_of_times() {
        for failures in 0..=MAX_DUMP_ATTEMPTS {
            let tries = AtomicUsize::new(0);
            let result = retry_interrupted(&ctx(), || {
                let n = tries.fetch_add(1, Ordering::SeqCst);
                async move {
                    Ok(if n < failures {
                        DumpOutcome::Interrupted
                    } else {
                        DumpOutcome::Complete(Vec::new())
                    })
                }
            })
            .await;
            if failures < MAX_DUMP_ATTEMPTS {
                assert!(result.is_ok(), "{failures} interruptions");
                assert_eq!(tries.load(Ordering::SeqCst), failures + 1);
            } else {
                let err = result.expect_err("gives up");
                assert_eq!(err.kind(), ErrorKind::Other);
                assert!(err.detail().contains("NLM_F_DUMP_INTR"), "{err}");
                assert_eq!(tries.load(Ordering::SeqCst), MAX_DUMP_ATTEMPTS);
            }
        }
    }

    #[tokio::test]
    async fn a_failing_attempt_is_not_retried() {
        let tries = AtomicUsize::new(0);
        let result = retry_interrupted(&ctx(), || {
            tries.fetch_add(1, Ordering::SeqCst);
            async { Err(ctx().errno(Errno::EPERM)) }
        })
        .await;
        assert_eq!(result.expect_err("fails").kind(), ErrorKind::Permission);
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }
}
