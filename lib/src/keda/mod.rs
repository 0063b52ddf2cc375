//! KEDA: installing its release manifest with the identity settings the Helm chart would carry
//! and the availability a production install wants, and the ScaledObject that scales a consumer
//! on queue depth.

pub mod availability;
pub mod install;
pub mod scaled_object;
