//! (work in progress)
pub mod body;
pub mod connection;
pub mod date;
pub mod request;
pub mod response;
