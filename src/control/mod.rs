//! (work in progress)
pub mod store;
pub mod snapshot;
pub use snapshot::Snapshot;
