//! sluice: a self-hosted Streaming Ingest appliance.
//!
//! The modules below are listed in the order a record travels through them:
//!
//! | stage     | module        | owns                                                        |
//! |-----------|---------------|-------------------------------------------------------------|
//! | accept    | [`server`]    | one monoio (io_uring) runtime per core, SO_REUSEPORT listeners, shutdown |
//! | HTTP      | [`http`]      | the connection loop, request heads (httparse), bodies, responses |
//! | route     | [`ingest`]    | one request's decisions: status order of SPEC §1, auth, convert, append |
//! | auth      | [`auth`]      | HS256 JWT verification (ring) against the control snapshot  |
//! | convert   | [`convert`]   | JSON → one NDJSON line (simd-json), XML → one CBOR item (quick-xml, ciborium) |
//! | ring      | [`ring`]      | the per-stream lock-free handoff from workers to the segment |
//! | segment   | [`segment`]   | memory-mapped hourly segment files, recovery of torn tails   |
//! | courier   | [`courier`]   | the courier thread (sealing, control refresh); [`courier::run`] loads sealed files; [`courier::schedule`] fires courier groups |
//! | tables    | [`tables`]    | domain tables in a per-tenant SQLite database: schema, upsert, rejects, saved queries |
//!
//! Beside the data path: [`control`] keeps tenants, keys, streams, couriers,
//! feeds, groups and runs in an embedded database and publishes an
//! immutable [`control::Snapshot`] that workers read; [`config`] turns raw
//! settings into a validated [`config::Config`]; [`limits`] names every
//! bound; [`admin`] serves health and metrics; [`telemetry`] turns named
//! events into log lines and counters; [`doctor`] checks a host;
//! [`postman`] writes a tenant's Postman collection; [`cli`] is the
//! operator's surface.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod convert;
pub mod courier;
pub mod doctor;
pub mod http;
pub mod ingest;
pub mod limits;
pub mod postman;
pub mod rate;
pub mod ring;
pub mod sched;
pub mod segment;
pub mod server;
pub mod tables;
pub mod telemetry;
