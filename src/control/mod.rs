//! (work in progress)
pub mod ids;
pub mod snapshot;
pub mod store;
pub use snapshot::Snapshot;
