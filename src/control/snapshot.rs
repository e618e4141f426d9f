//! The immutable view of the control plane that ingest workers read.
//!
//! The control thread builds a new [`Snapshot`] whenever the store changes
//! and publishes it through [`SnapshotCell`]; a worker keeps its own `Arc`
//! and only compares a generation number per request, so the hot path takes
//! no lock and allocates nothing.

use std::collections::HashMap;

/// A map looked up on every request. foldhash instead of the standard
/// SipHash: the keys are names the operator created (a client only picks
/// which one to look up), so flooding them with collisions is not possible.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A stream's payload type (SPEC §3): it fixes the Content-Type a stream
/// accepts and the file suffix it is stored under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    Json,
    Xml,
}

impl PayloadFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Json => "json",
            PayloadFormat::Xml => "xml",
        }
    }

    pub fn parse(text: &str) -> Option<PayloadFormat> {
        match text {
            "json" => Some(PayloadFormat::Json),
            "xml" => Some(PayloadFormat::Xml),
            _ => None,
        }
    }

    /// The suffix of a sealed file of this format (SPEC §3).
    pub fn sealed_suffix(self) -> &'static str {
        match self {
            PayloadFormat::Json => "ndjson",
            PayloadFormat::Xml => "cbor",
        }
    }
}

/// A live API key as the verifier needs it: the HMAC key is prepared once
/// here, not per request.
pub struct KeyView {
    pub hmac: ring::hmac::Key,
    /// True when the key carries the `stream-write` permission.
    pub stream_write: bool,
}

/// A live stream.
#[derive(Clone, Debug)]
pub struct StreamView {
    pub id: String,
    pub tenant: String,
    pub format: PayloadFormat,
}

/// Everything of one tenant that ingest needs.
#[derive(Default)]
pub struct TenantView {
    /// Live keys by key id (`ak-…`).
    pub keys: FastMap<String, KeyView>,
    /// Live streams by stream id (`is-…`).
    pub streams: FastMap<String, StreamView>,
}

/// One consistent view of tenants, keys and streams.
#[derive(Default)]
pub struct Snapshot {
    /// The store generation this view was built from.
    pub generation: u64,
    pub tenants: FastMap<String, TenantView>,
}

impl Snapshot {
    pub fn tenant(&self, name: &str) -> Option<&TenantView> {
        self.tenants.get(name)
    }

    pub fn stream(&self, tenant: &str, stream_id: &str) -> Option<&StreamView> {
        self.tenants.get(tenant)?.streams.get(stream_id)
    }
}

/// A value that carries the generation it was published under.
pub trait Generational {
    fn generation(&self) -> u64;
}

impl Generational for Snapshot {
    fn generation(&self) -> u64 {
        self.generation
    }
}

/// Where the current value (a control snapshot, the configuration) is
/// published. Readers call [`Published::refresh`] with the `Arc` they hold;
/// only when the generation moved do they take the mutex.
pub struct Published<T> {
    generation: AtomicU64,
    current: Mutex<Arc<T>>,
}

/// The published control snapshot.
pub type SnapshotCell = Published<Snapshot>;

impl<T: Generational> Published<T> {
    pub fn new(value: T) -> Published<T> {
        Published {
            generation: AtomicU64::new(value.generation()),
            current: Mutex::new(Arc::new(value)),
        }
    }

    pub fn publish(&self, value: T) {
        let generation = value.generation();
        let mut current = self.current.lock().expect("published mutex is never poisoned");
        *current = Arc::new(value);
        self.generation.store(generation, Ordering::Release);
    }

    pub fn load(&self) -> Arc<T> {
        self.current
            .lock()
            .expect("published mutex is never poisoned")
            .clone()
    }

    /// Refreshes `held` if a newer value was published. One atomic load in
    /// the common case.
    pub fn refresh(&self, held: &mut Arc<T>) {
        if self.generation.load(Ordering::Acquire) != held.generation() {
            *held = self.load();
        }
    }
}
