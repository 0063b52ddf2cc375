//! The planner's model of KEDA and the horizontal pod autoscaler: pure decisions over explicit
//! time, so that a scaling run can be predicted before it is deployed.

pub mod deploy;
pub mod hpa;
pub mod keda;
pub mod model;
pub mod plan;
pub mod svg;
