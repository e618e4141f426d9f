//! (work in progress)
pub struct Snapshot;
