//! (work in progress)
pub mod request;
pub mod body;
pub mod response;
pub mod connection;
