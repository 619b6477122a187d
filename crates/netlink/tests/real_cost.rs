//! Measures (reports, never asserts) what one built-in interface costs on the real kernel:
//! create macvlan on the node + move into the pod + add an IPv4 address + rename + up.
//! Run with `cargo test -p plexus-netlink --release --test real_cost -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::{TestNetns, privileged, unique};
use plexus_netlink::{Dad, Dataplane, LinkSpec, MacvlanMode, RealDataplane, temporary_link_name};

const PODS: usize = 20;
const INTERFACES_PER_POD: usize = 5;

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| micros(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    eprintln!(
        "{label}: n={} median={:.0} µs p10={:.0} µs p90={:.0} µs",
        samples.len(),
        pick(0.5),
        pick(0.1),
        pick(0.9)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --ignored --nocapture"]
async fn per_interface_cost() {
    if !privileged("per_interface_cost") {
        return;
    }
    let dp = RealDataplane::new().expect("dataplane");
    let node = TestNetns::new("nlh");
    let (nic, peer) = (unique("nic"), unique("sw"));
    dp.create_link(&node.netns(), &LinkSpec::veth(&nic, &peer))
        .await
        .expect("veth");
    dp.set_up(&node.netns(), &nic).await.expect("up");
    // Warm the node's connection: it is opened once per process, not per interface.
    dp.list_links(&node.netns()).await.expect("warm");

    let mut steps: [Vec<Duration>; 5] = Default::default();
    let mut first_of_pod = Vec::new();
    let mut steady = Vec::new();
    let mut pods = Vec::new();
    for p in 0..PODS {
        let pod = TestNetns::new("nlp");
        for i in 0..INTERFACES_PER_POD {
            let tmp = temporary_link_name();
            let name = format!("net{i}");
            let addr = format!("10.{}.{}.5/24", 100 + p, i).parse().expect("addr");
            let started = Instant::now();
            dp.create_link(
                &node.netns(),
                &LinkSpec::macvlan(&tmp, &nic, MacvlanMode::Bridge),
            )
            .await
            .expect("create");
            let created = Instant::now();
            dp.move_link(&node.netns(), &tmp, &pod.netns())
                .await
                .expect("move");
            let moved = Instant::now();
            dp.add_address(&pod.netns(), &tmp, addr, Dad::Skip)
                .await
                .expect("addr");
            let addressed = Instant::now();
            dp.rename_link(&pod.netns(), &tmp, &name)
                .await
                .expect("rename");
            let renamed = Instant::now();
            dp.set_up(&pod.netns(), &name).await.expect("up");
            let up = Instant::now();
            steps[0].push(created - started);
            steps[1].push(moved - created);
            steps[2].push(addressed - moved);
            steps[3].push(renamed - addressed);
            steps[4].push(up - renamed);
            let took = started.elapsed();
            if i == 0 {
                first_of_pod.push(took);
            } else {
                steady.push(took);
            }
            let link = dp
                .link(&pod.netns(), &name)
                .await
                .expect("ok")
                .expect("link");
            assert!(link.up, "each measured interface really is up");
        }
        pods.push(pod);
    }
    // The same interface created straight into the pod: no separate move.
    let mut direct = Vec::new();
    for (p, pod) in pods.iter().enumerate() {
        let tmp = temporary_link_name();
        let addr = format!("10.{}.99.5/24", 100 + p).parse().expect("addr");
        let started = Instant::now();
        let spec = LinkSpec::macvlan(&tmp, &nic, MacvlanMode::Bridge).in_netns(pod.netns());
        dp.create_link(&node.netns(), &spec).await.expect("create");
        dp.add_address(&pod.netns(), &tmp, addr, Dad::Skip)
            .await
            .expect("addr");
        dp.rename_link(&pod.netns(), &tmp, "direct0")
            .await
            .expect("rename");
        dp.set_up(&pod.netns(), "direct0").await.expect("up");
        direct.push(started.elapsed());
    }
    let mut all = first_of_pod.clone();
    all.extend(steady.iter().copied());
    eprintln!(
        "create macvlan + move + add IPv4 + rename + up, {PODS} pods x {INTERFACES_PER_POD}:"
    );
    summary(
        "  first interface of a pod (opens its netlink socket)",
        first_of_pod,
    );
    summary("  further interfaces of a pod", steady);
    summary("  all", all);
    for (label, samples) in ["create", "move", "add address", "rename", "up"]
        .iter()
        .zip(steps)
    {
        summary(&format!("    step {label}"), samples);
    }
    summary(
        "created straight into the pod (+ address + rename + up)",
        direct,
    );
}
