//! KEDA: installing its release manifest with the IRSA settings the Helm chart would carry,
//! and the ScaledObject that scales a consumer on queue depth.

pub mod install;
pub mod scaled_object;
