//! (work in progress)
pub mod json;
pub mod xml;
