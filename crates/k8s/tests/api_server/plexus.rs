//! plexus' own objects on the server: round trips, the status subresource and printer
//! columns, the schema's refusals, and the model's refusals of what the schema lets pass.

use std::collections::BTreeMap;

use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use plexus_k8s::network::{
    ClusterNetworkSpec, NetworkOptions, PlexusSettings, Pool, TenantNetworkSpec,
};
use plexus_k8s::tenant::{TenantConfigSpec, TenantDevice, VniType};
use plexus_k8s::{ClusterNetwork, NetworkResource, NetworkStatus, TenantConfig, TenantNetwork};
use plexus_model::{Operation, Rule};
use serde_json::{Value, json};

use crate::support::{apply_crds, client, delete_namespace, namespace, refusal, unique};

/// A dual-stack ClusterNetwork open to `tenant`.
fn blue(name: &str, tenant: &str) -> ClusterNetwork {
    ClusterNetwork::new(
        name,
        ClusterNetworkSpec {
            network_id: "blue".into(),
            network_type: "macvlan".into(),
            allowed_tenants: vec![tenant.into()],
            options: NetworkOptions {
                host_device: "ens4".into(),
                cidr: "10.30.0.0/24".into(),
                allocation_pool: Pool {
                    start: "10.30.0.10".into(),
                    end: "10.30.0.200".into(),
                },
                routes: BTreeMap::from([("10.99.0.0/16".into(), "10.30.0.1".into())]),
                net6: "fd00:30::/64".into(),
                vlan: Some(30),
                ..NetworkOptions::default()
            },
            plexus: PlexusSettings {
                exclude: vec!["10.30.0.64/28".into()],
                block_size: Some(28),
                ..PlexusSettings::default()
            },
        },
    )
}

/// The server's table view of one object (what `kubectl get` prints).
async fn table(client: &Client, path: &str) -> Value {
    let request = http::Request::get(path)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .expect("a valid request");
    client
        .request::<Value>(request)
        .await
        .unwrap_or_else(|e| panic!("table of {path}: {e}"))
}

#[tokio::test]
async fn plexus_objects_round_trip_with_status_and_columns() {
    let Some(client) = client("plexus_objects_round_trip_with_status_and_columns").await else {
        return;
    };
    apply_crds(&client).await;
    let ns = namespace(&client, "plexus-objects").await;

    // ClusterNetwork: created, read back unchanged, valid by the model's rules.
    let name = unique("blue");
    let networks: Api<ClusterNetwork> = Api::all(client.clone());
    let sent = blue(&name, &ns);
    networks
        .create(&PostParams::default(), &sent)
        .await
        .expect("create");
    let read = networks.get(&name).await.expect("get");
    assert_eq!(read.spec, sent.spec);
    assert_eq!(read.status, None);
    let valid = read.validate(Operation::Create).expect("valid");
    assert_eq!(valid.allowed_tenants, vec![ns.clone()]);

    // The status subresource carries the columns' numbers; the spec is untouched by it.
    let status = NetworkStatus {
        allocated: Some(3),
        free: Some("172".into()),
        observed_generation: read.metadata.generation,
    };
    networks
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .expect("patch status");
    let read = networks.get(&name).await.expect("get");
    assert_eq!(read.status.as_ref(), Some(&status));
    assert_eq!(read.spec, sent.spec);
    let view = table(
        &client,
        &format!("/apis/plexus.io/v1/clusternetworks/{name}"),
    )
    .await;
    let columns: Vec<&str> = view["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["Name", "CIDR", "V6", "Allocated", "Free", "Age"]);
    let cells = &view["rows"][0]["cells"];
    assert_eq!(cells[0], json!(name));
    assert_eq!(cells[1], json!("10.30.0.0/24"));
    assert_eq!(cells[2], json!("fd00:30::/64"));
    assert_eq!(cells[3], json!(3));
    assert_eq!(cells[4], json!("172"));

    // TenantNetwork: namespaced.
    let tenants: Api<TenantNetwork> = Api::namespaced(client.clone(), &ns);
    let red = TenantNetwork::new(
        "red",
        TenantNetworkSpec {
            network_id: "red".into(),
            options: NetworkOptions {
                cidr: "10.31.0.0/24".into(),
                container_prefix: "red".into(),
                ..NetworkOptions::default()
            },
            ..TenantNetworkSpec::default()
        },
    );
    tenants
        .create(&PostParams::default(), &red)
        .await
        .expect("create tenant network");
    let read = tenants.get("red").await.expect("get tenant network");
    assert_eq!(read.spec, red.spec);
    let valid = read.validate(Operation::Create).expect("valid");
    assert_eq!(valid.qualified_name(), format!("{ns}/red"));
    assert_eq!(
        tenants
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );

    // TenantConfig: cluster-scoped.
    let configs: Api<TenantConfig> = Api::all(client.clone());
    let tc_name = unique("tenants");
    let tc = TenantConfig::new(
        &tc_name,
        TenantConfigSpec {
            host_devices: vec![TenantDevice {
                name: "ens4".into(),
                vni_type: Some(VniType::Vxlan),
                vni_range: "100000-100100,200000".into(),
            }],
            network_ids: BTreeMap::from([("ipvlan".into(), "internal".into())]),
        },
    );
    configs
        .create(&PostParams::default(), &tc)
        .await
        .expect("create tenant config");
    let read = configs.get(&tc_name).await.expect("get tenant config");
    assert_eq!(read.spec, tc.spec);
    let valid = read.validate(Operation::Create).expect("valid");
    assert_eq!(
        valid.host_devices[0].vni.as_ref().map(|p| p.len()),
        Some(102)
    );

    networks
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    configs
        .delete(&tc_name, &DeleteParams::default())
        .await
        .expect("delete");
    delete_namespace(&client, &ns).await;
}

/// Create an object of `ar` from raw JSON (what a user's YAML would be).
async fn create_raw(
    client: &Client,
    ar: &ApiResource,
    body: Value,
) -> Result<DynamicObject, kube::Error> {
    let name = unique("raw");
    let object = DynamicObject::new(&name, ar).data(body);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    api.create(&PostParams::default(), &object).await
}

#[tokio::test]
async fn the_server_refuses_what_the_schema_forbids() {
    let Some(client) = client("the_server_refuses_what_the_schema_forbids").await else {
        return;
    };
    apply_crds(&client).await;
    let network = ApiResource::erase::<ClusterNetwork>(&());
    let cases = [
        (
            json!({"Options": {"cidr": "10.0.0.0/24"}}),
            "spec.NetworkID: Required value",
        ),
        (json!({"NetworkID": ""}), "spec.NetworkID"),
        (
            json!({"NetworkID": "x", "Options": {"vlan": 5000}}),
            "spec.Options.vlan",
        ),
        (
            json!({"NetworkID": "x", "Options": {"vlan": "7"}}),
            "spec.Options.vlan",
        ),
        (
            json!({"NetworkID": "x", "Options": {"vxlan": 16_777_215}}),
            "spec.Options.vxlan",
        ),
        (
            json!({"NetworkID": "x", "Options": {"rt_tables": 256}}),
            "spec.Options.rt_tables",
        ),
        (
            json!({"NetworkID": "x", "Options": {"cidr": "banana"}}),
            "spec.Options.cidr",
        ),
        (
            json!({"NetworkID": "x", "Options": {"net6": "10.0.0.0/8"}}),
            "spec.Options.net6",
        ),
        (
            json!({"NetworkID": "x", "Options": {"allocation_pool": {"start": "10.0.0"}}}),
            "spec.Options.allocation_pool.start",
        ),
        (
            json!({"NetworkID": "x", "plexus": {"block_size": 8}}),
            "spec.plexus.block_size",
        ),
        (
            json!({"NetworkID": "x", "plexus": {"block_size6": 64}}),
            "spec.plexus.block_size6",
        ),
    ];
    for (spec, path) in cases {
        let (code, message) =
            refusal(create_raw(&client, &network, json!({"spec": spec.clone()})).await);
        assert_eq!(code, 422, "{spec}: {message}");
        assert!(message.contains(path), "{spec}: {path} not in {message}");
    }
    let config = ApiResource::erase::<TenantConfig>(&());
    let cases = [
        (
            json!({"hostDevices": [{"name": "ens4", "vniType": "qinq", "vniRange": "1-5"}]}),
            "vniType",
        ),
        (
            json!({"hostDevices": [{"name": "ens4", "vniType": "vlan", "vniRange": "one"}]}),
            "vniRange",
        ),
        (
            json!({"hostDevices": [{"vniType": "vlan", "vniRange": "5"}]}),
            "name: Required value",
        ),
    ];
    for (spec, field) in cases {
        let (code, message) =
            refusal(create_raw(&client, &config, json!({"spec": spec.clone()})).await);
        assert_eq!(code, 422, "{spec}: {message}");
        assert!(message.contains(field), "{spec}: {field} not in {message}");
    }
}

#[tokio::test]
async fn the_model_refuses_what_the_schema_lets_through() {
    let Some(client) = client("the_model_refuses_what_the_schema_lets_through").await else {
        return;
    };
    apply_crds(&client).await;
    // Well-formed to the schema, wrong by the rules: a gateway outside the network, a
    // range running backwards, a tenant that is no namespace name, vlan and vxlan both.
    let name = unique("wrong");
    let mut net = blue(&name, "Team_A");
    net.spec.options.routes = BTreeMap::from([("10.99.0.0/16".into(), "10.31.0.1".into())]);
    net.spec.options.allocation_pool = Pool {
        start: "10.30.0.200".into(),
        end: "10.30.0.10".into(),
    };
    net.spec.options.vxlan = Some(9);
    let networks: Api<ClusterNetwork> = Api::all(client.clone());
    networks
        .create(&PostParams::default(), &net)
        .await
        .expect("the schema lets it in");
    let read = networks.get(&name).await.expect("get");
    let errors = read.validate(Operation::Create).unwrap_err();
    for rule in [
        Rule::RouteGatewayOutside,
        Rule::PoolOrder,
        Rule::AllowedTenantInvalid,
        Rule::VlanAndVxlan,
    ] {
        assert!(errors.has(rule), "{rule:?} missing from {errors}");
    }
    networks
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete");

    // Unknown keys never reach the model: the server prunes them (apiextensions v1).
    let ar = ApiResource::erase::<ClusterNetwork>(&());
    let created = create_raw(
        &client,
        &ar,
        json!({"spec": {"NetworkID": "typo", "Options": {"cdir": "10.0.0.0/24"}, "extra": 1}}),
    )
    .await
    .expect("created with unknown keys");
    assert_eq!(
        created.data["spec"],
        json!({"NetworkID": "typo", "Options": {}})
    );
}
