//! Resources whose shape others defined (DANM's networks, NPWG's
//! NetworkAttachmentDefinition): plain structs with a hand-written [`kube::Resource`]
//! implementation, so the spec can be a type that reads those objects exactly as their
//! owners write them (for DANM, `plexus_model::NetworkSpec` itself) and an object without a
//! `spec` still reads (NPWG allows a NAD without one). Their CRDs are written from the
//! owners' documented schemas, in [`crate::danm`] and [`crate::nad`].

/// Defines a resource type `$name` with `metadata` and `spec`, its `kube::Resource`
/// implementation, and a `Serialize` that writes `apiVersion` and `kind`.
macro_rules! foreign_resource {
    (
        $(#[$attr:meta])*
        $name:ident {
            group: $group:literal,
            version: $version:literal,
            kind: $kind:literal,
            plural: $plural:literal,
            scope: $scope:ty,
            spec: $spec:ty $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
        pub struct $name {
            /// Standard object metadata.
            #[serde(default)]
            pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            /// The spec; an object without one reads as the empty spec.
            #[serde(default)]
            pub spec: $spec,
        }

        impl $name {
            /// `apiVersion` of these objects.
            pub const API_VERSION: &'static str = concat!($group, "/", $version);

            /// An object named `name` with `spec`.
            pub fn new(name: &str, spec: $spec) -> Self {
                Self {
                    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(name.to_owned()),
                        ..Default::default()
                    },
                    spec,
                }
            }
        }

        impl kube::Resource for $name {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }

            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                $group.into()
            }

            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                $version.into()
            }

            fn api_version(_: &()) -> std::borrow::Cow<'_, str> {
                Self::API_VERSION.into()
            }

            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }

            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }

            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct;
                let mut obj = ser.serialize_struct(stringify!($name), 4)?;
                obj.serialize_field("apiVersion", Self::API_VERSION)?;
                obj.serialize_field("kind", $kind)?;
                obj.serialize_field("metadata", &self.metadata)?;
                obj.serialize_field("spec", &self.spec)?;
                obj.end()
            }
        }
    };
}

pub(crate) use foreign_resource;
