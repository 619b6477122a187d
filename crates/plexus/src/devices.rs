//! Device-plugin devices for delegated interfaces (SR-IOV VFs, DPDK devices): which
//! resource a network takes devices from, and which device each interface of the pod gets.
//!
//! A network names its resource with DANM's `device_pool` (mandatory for NetworkType
//! `sriov`) or, like a NetworkAttachmentDefinition for Multus, with the
//! [`RESOURCE_NAME_ANNOTATION`]. Before anything is set up, [`assign`] asks the kubelet
//! which devices of those resources the pod holds (`plexus_kubelet::pod_devices`: the
//! pod-resources API, else the checkpoint file) and gives each such interface its own
//! device, in the kubelet's order: two interfaces from one pool get two different devices,
//! and an interface that finds none left fails the ADD (code 115) naming the resource.
//! The device goes to the delegate as `deviceID` at the top of every plugin configuration
//! of its chain and in its `runtimeConfig` (as Multus and DANM do); since the chain as
//! sent is what the endpoint record keeps, DEL and CHECK pass the same device.

use std::collections::BTreeMap;

use plexus_kubelet::{PodDevices, PodKey, Sources};
use serde_json::Value;

use crate::error::{DeviceShortage, PlexusError};
use crate::networks::{Network, RESOURCE_NAME_ANNOTATION};
use crate::plan::{Driver, Planned};

/// The device-plugin resource of `network`, if it names one; refused for built-in
/// drivers, whose interfaces hang off `host_device`, not off a device.
pub fn resource_of(network: &Network, driver: &Driver) -> Result<Option<String>, PlexusError> {
    let resource = network.valid.device_pool.clone().or_else(|| {
        network
            .annotation(RESOURCE_NAME_ANNOTATION)
            .map(str::to_owned)
    });
    match (&resource, driver) {
        (Some(resource), Driver::Macvlan { .. } | Driver::Ipvlan { .. }) => {
            Err(PlexusError::Network {
                reference: network.qualified_name(),
                reason: format!(
                    "device-plugin resource {resource} (device_pool / {RESOURCE_NAME_ANNOTATION}) \
                     needs a delegated NetworkType (sriov, host-device, userspace, ...); \
                     {} is built in and uses host_device",
                    network.valid.network_type
                ),
            })
        }
        _ => Ok(resource),
    }
}

/// `deviceID` into every plugin of a chain and into its `runtimeConfig`.
pub fn inject(plugins: &mut [Value], device_id: &str) {
    for plugin in plugins.iter_mut() {
        let Some(object) = plugin.as_object_mut() else {
            continue;
        };
        object.insert("deviceID".into(), Value::String(device_id.to_owned()));
        let runtime = object
            .entry("runtimeConfig")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if !runtime.is_object() {
            *runtime = Value::Object(serde_json::Map::new());
        }
        runtime["deviceID"] = Value::String(device_id.to_owned());
    }
}

/// Gives each planned interface with a resource one device of the pod's, in pod order.
/// Touches nothing when no interface needs a device.
pub async fn assign(
    sources: &Sources,
    pod: &PodKey,
    planned: &mut [Planned],
) -> Result<(), PlexusError> {
    if planned.iter().all(|p| p.resource.is_none()) {
        return Ok(());
    }
    let devices = plexus_kubelet::pod_devices(sources, pod)
        .await
        .map_err(PlexusError::DevicesUnknown)?;
    pick(&devices, pod, planned)
}

/// Hands out `held` devices (per resource) to interfaces asking for `wanted` resources,
/// in order, each device once: the device of each interface, or the index of the first
/// interface that finds none left.
pub fn hand_out(
    wanted: &[Option<&str>],
    held: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<Option<String>>, usize> {
    let mut next: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::with_capacity(wanted.len());
    for (index, resource) in wanted.iter().enumerate() {
        let Some(resource) = resource else {
            out.push(None);
            continue;
        };
        let slot = next.entry(resource).or_insert(0);
        let device = held
            .get(*resource)
            .and_then(|ids| ids.get(*slot))
            .ok_or(index)?;
        *slot += 1;
        out.push(Some(device.clone()));
    }
    Ok(out)
}

/// The rest of [`assign`]: each interface's device from `devices`, into its chain.
pub fn pick(
    devices: &PodDevices,
    pod: &PodKey,
    planned: &mut [Planned],
) -> Result<(), PlexusError> {
    let wanted: Vec<Option<&str>> = planned.iter().map(|p| p.resource.as_deref()).collect();
    let handed = match hand_out(&wanted, &devices.resources) {
        Ok(handed) => handed,
        Err(index) => {
            let p = &planned[index];
            let resource = p.resource.clone().unwrap_or_default();
            return Err(PlexusError::NoDevice(Box::new(DeviceShortage {
                network: p.network_name(),
                ifname: p.ifname.clone(),
                needed: wanted
                    .iter()
                    .filter(|r| **r == Some(resource.as_str()))
                    .count(),
                held: devices
                    .resources
                    .get(&resource)
                    .cloned()
                    .unwrap_or_default(),
                resource,
                pod: pod.to_string(),
                origin: devices.origin.to_string(),
            })));
        }
    };
    for (p, device) in planned.iter_mut().zip(handed) {
        let Some(device) = device else {
            continue;
        };
        if let Driver::Delegate { plugins } = &mut p.driver {
            inject(plugins, &device);
        }
        tracing::info!(interface = %p.ifname, network = %p.network_name(), device = %device, "device assigned");
        p.device_id = Some(device);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    proptest! {
        /// Every interface gets a device of its own resource, none twice; it fails exactly
        /// when some resource has fewer devices than interfaces asking for it, at the first
        /// interface past the count.
        #[test]
        fn devices_are_handed_out_once_each(
            wanted in proptest::collection::vec(proptest::option::of(0..3usize), 0..8),
            counts in proptest::collection::vec(0..4usize, 3),
        ) {
            let names = ["r0", "r1", "r2"];
            let held: BTreeMap<String, Vec<String>> = names
                .iter()
                .zip(&counts)
                .map(|(r, n)| (r.to_string(), (0..*n).map(|i| format!("{r}-dev{i}")).collect()))
                .collect();
            let wanted: Vec<Option<&str>> = wanted.iter().map(|w| w.map(|i| names[i])).collect();
            let mut seen = BTreeMap::new();
            let first_short = wanted.iter().position(|w| {
                let Some(r) = w else { return false };
                let n = seen.entry(*r).or_insert(0usize);
                *n += 1;
                *n > held[*r].len()
            });
            match hand_out(&wanted, &held) {
                Ok(out) => {
                    prop_assert_eq!(first_short, None);
                    let mut used = BTreeSet::new();
                    for (w, d) in wanted.iter().zip(&out) {
                        prop_assert_eq!(w.is_some(), d.is_some());
                        if let (Some(r), Some(d)) = (w, d) {
                            prop_assert!(held[*r].contains(d));
                            prop_assert!(used.insert(d.clone()), "{} twice", d);
                        }
                    }
                }
                Err(index) => prop_assert_eq!(Some(index), first_short),
            }
        }
    }

    #[test]
    fn the_resource_comes_from_device_pool_then_the_annotation_never_for_built_ins() {
        use crate::userspace::tests::network;
        let delegate = Driver::Delegate { plugins: vec![] };
        let sriov = network(
            "sriov",
            json!({"device_pool": "intel.com/vf", "cidr": "10.0.0.0/24"}),
            json!({RESOURCE_NAME_ANNOTATION: "other.com/x"}),
        );
        assert_eq!(
            resource_of(&sriov, &delegate).unwrap().as_deref(),
            Some("intel.com/vf"),
            "device_pool wins"
        );
        let nad = network(
            "host-device",
            json!({"cidr": "10.0.0.0/24"}),
            json!({RESOURCE_NAME_ANNOTATION: " example.com/dpdk "}),
        );
        assert_eq!(
            resource_of(&nad, &delegate).unwrap().as_deref(),
            Some("example.com/dpdk")
        );
        let plain = network("host-device", json!({"cidr": "10.0.0.0/24"}), json!({}));
        assert_eq!(resource_of(&plain, &delegate).unwrap(), None);
        let macvlan = network(
            "macvlan",
            json!({"host_device": "eth1", "cidr": "10.0.0.0/24"}),
            json!({RESOURCE_NAME_ANNOTATION: "example.com/dpdk"}),
        );
        let builtin = Driver::Macvlan {
            parent: "eth1".into(),
            mode: Default::default(),
        };
        let err = resource_of(&macvlan, &builtin).unwrap_err().to_string();
        assert!(
            err.contains("example.com/dpdk") && err.contains("built in"),
            "{err}"
        );
    }

    #[test]
    fn device_id_goes_to_every_plugin_and_its_runtime_config() {
        let mut plugins = vec![
            json!({"type": "sriov", "runtimeConfig": {"mac": "02:00:00:00:00:01"}}),
            json!({"type": "tuning", "runtimeConfig": 5}),
            json!({"type": "sbr"}),
        ];
        inject(&mut plugins, "0000:03:02.1");
        for plugin in &plugins {
            assert_eq!(plugin["deviceID"], json!("0000:03:02.1"), "{plugin}");
            assert_eq!(plugin["runtimeConfig"]["deviceID"], json!("0000:03:02.1"));
        }
        assert_eq!(
            plugins[0]["runtimeConfig"]["mac"],
            json!("02:00:00:00:00:01")
        );
    }
}
