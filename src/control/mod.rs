//! (work in progress)
pub mod couriers;
pub mod groups;
pub mod ids;
pub mod snapshot;
pub mod store;
pub use snapshot::Snapshot;
