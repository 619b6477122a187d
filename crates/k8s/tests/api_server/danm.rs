//! DANM's objects on the server: created as DANM writes them (bitmaps and `lastIp`
//! included), read back unchanged, valid as existing networks; DANM's bounds enforced.

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use plexus_k8s::{DanmClusterNetwork, DanmNet, DanmTenantNetwork, NetworkResource};
use plexus_model::{NetworkKind, NetworkSpec, Operation};
use serde_json::json;

use crate::support::{apply_crds, client, delete_namespace, namespace, refusal, unique};

/// A spec as DANM's webhook leaves it.
fn filled_in() -> NetworkSpec {
    serde_json::from_value(json!({
        "NetworkID": "internal", "NetworkType": "ipvlan",
        "Options": {
            "host_device": "ens4", "cidr": "10.100.100.0/24",
            "allocation_pool": {"start": "10.100.100.1", "end": "10.100.100.254",
                                "lastIp": "10.100.100.1/24"},
            "routes": {"10.20.0.0/16": "10.100.100.1"},
            "alloc": "wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=",
            "container_prefix": "int", "rt_tables": 200, "vlan": 500
        }
    }))
    .expect("a DANM spec")
}

#[tokio::test]
async fn danm_objects_round_trip_as_danm_writes_them() {
    let Some(client) = client("danm_objects_round_trip_as_danm_writes_them").await else {
        return;
    };
    apply_crds(&client).await;
    let ns = namespace(&client, "danm-objects").await;

    let nets: Api<DanmNet> = Api::namespaced(client.clone(), &ns);
    let sent = DanmNet::new("internal", filled_in());
    nets.create(&PostParams::default(), &sent)
        .await
        .expect("create DanmNet");
    let read = nets.get("internal").await.expect("get DanmNet");
    assert_eq!(read.spec, sent.spec, "DANM's keys survive the server");
    let valid = read
        .validate(Operation::Update)
        .expect("valid as an existing network");
    assert_eq!(valid.kind, NetworkKind::DanmNet);
    assert_eq!(valid.qualified_name(), format!("{ns}/internal"));

    let cluster_name = unique("shared");
    let clusters: Api<DanmClusterNetwork> = Api::all(client.clone());
    let mut spec = filled_in();
    spec.allowed_tenants = Some(vec![ns.clone()]);
    spec.options.alloc = String::new();
    spec.options.allocation_pool.last_ip = String::new();
    clusters
        .create(
            &PostParams::default(),
            &DanmClusterNetwork::new(&cluster_name, spec.clone()),
        )
        .await
        .expect("create ClusterNetwork");
    let read = clusters
        .get(&cluster_name)
        .await
        .expect("get ClusterNetwork");
    assert_eq!(read.spec, spec);
    let valid = read.validate(Operation::Create).expect("valid");
    assert_eq!(valid.allowed_tenants, vec![ns.clone()]);

    let tenants: Api<DanmTenantNetwork> = Api::namespaced(client.clone(), &ns);
    let mut spec = filled_in();
    spec.options.vlan = None;
    spec.options.alloc = String::new();
    tenants
        .create(
            &PostParams::default(),
            &DanmTenantNetwork::new("tn", spec.clone()),
        )
        .await
        .expect("create TenantNetwork");
    let read = tenants.get("tn").await.expect("get TenantNetwork");
    assert_eq!(read.spec, spec);
    assert_eq!(
        read.validate(Operation::Create).expect("valid").kind,
        NetworkKind::TenantNetwork
    );
    assert_eq!(
        nets.list(&Default::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );

    // DANM's schema bounds: vlan from 1 (DANM omits an unset one), tables to 255.
    let ar = ApiResource::erase::<DanmNet>(&());
    let raw: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    for (options, field) in [
        (json!({"vlan": 0}), "spec.Options.vlan"),
        (json!({"vxlan": 16_777_215}), "spec.Options.vxlan"),
        (json!({"rt_tables": 256}), "spec.Options.rt_tables"),
        (json!({"cidr": 10}), "spec.Options.cidr"),
    ] {
        let object = DynamicObject::new(&unique("bad"), &ar)
            .data(json!({"spec": {"NetworkID": "x", "Options": options.clone()}}));
        let (code, message) = refusal(raw.create(&PostParams::default(), &object).await);
        assert_eq!(code, 422, "{options}: {message}");
        assert!(
            message.contains(field),
            "{options}: {field} not in {message}"
        );
    }
    delete_namespace(&client, &ns).await;
}
