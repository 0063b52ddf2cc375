//! The Kubernetes side: a server-side-apply engine with ordering, ownership labels, pruning,
//! readiness waits and ordered deletion.

pub mod apply;
pub mod plan;
pub mod readiness;
pub mod resources;
