//! The control plane's durable store: tenants, API keys and streams in an
//! embedded SQLite database at `<data-dir>/control.db`.
//!
//! What it promises:
//! - Every mutation is one SQLite transaction that also bumps a generation
//!   counter, so [`Store::generation`] changes exactly when something a
//!   [`Snapshot`] shows may have changed, and a reader that sees the new
//!   generation also sees the change.
//! - The CLI and a running server may use the database at once: it runs in
//!   WAL mode (readers never block the writer), every writer takes its lock
//!   up front (`BEGIN IMMEDIATE`), and a busy database is retried for
//!   [`BUSY_TIMEOUT_MS`] before an error is reported.
//! - Nothing crosses tenants: every key and stream operation names its
//!   tenant, and an id of another tenant is answered as unknown.
//! - Stream ids are never reused: a deleted stream stays as a tombstone
//!   (its `deleted_at` set), hidden from lists and snapshots, so a new
//!   stream can never inherit an old stream's files or tokens' reach.
//! - Key secrets leave the store only through [`Store::key_secret`] (for
//!   signing tokens) and [`Store::snapshot`] (as prepared HMAC keys); lists
//!   never carry them. A deleted key's secret is erased, not tombstoned.
//!
//! The store is not on the data path: it allocates freely and its errors
//! carry the names and ids an operator needs to see.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

use crate::control::ids;
use crate::control::snapshot::{FastMap, KeyView, PayloadFormat, Snapshot, StreamView, TenantView};
use crate::limits::{KEY_SECRET_BYTES_GENERATED, KEY_SECRET_BYTES_MIN};

/// The database's file name inside the data directory.
pub const CONTROL_DB_FILE_NAME: &str = "control.db";

/// The schema this code reads and writes. A database with a newer version
/// was written by a newer sluice; we refuse it rather than misread it.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another process's lock before failing.
/// Writers hold the lock for milliseconds, so 5 s only runs out when
/// something is wrong (a hung process holding a transaction open).
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// The longest key or stream name, in characters. Names are shown in
/// aligned columns; anything longer is a description.
pub const NAME_CHARS_MAX: usize = 200;

/// The longest stream description, in characters.
pub const DESCRIPTION_CHARS_MAX: usize = 2_000;

/// The largest secret file read. HMAC-SHA256 hashes keys longer than its
/// 64-byte block anyway; the bound stops a mistyped path (a log file, a
/// disk image) from being read whole into memory and stored as a key.
pub const SECRET_FILE_BYTES_MAX: usize = 4_096;

/// How many fresh ids are drawn before giving up on finding an unused one.
/// With 36^16 key ids and 52^8 stream ids a single collision is already
/// astronomically unlikely; eight in a row means the generator is broken.
pub const ID_ATTEMPTS_MAX: usize = 8;

/// The permission of a Streaming Ingest write key (SPEC §2), the only one
/// that exists so far.
pub const PERMISSION_STREAM_WRITE: &str = "stream-write";

/// The generation of a freshly created database. It is not 0 so that a
/// `Snapshot::default()` (generation 0) never looks current.
const GENERATION_INITIAL: i64 = 1;

/// The schema. Tenants are referenced by name because the name is their
/// identity everywhere else (headers, tokens, directories).
const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS tenants (
    name       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL REFERENCES tenants(name),
    name       TEXT NOT NULL,
    permission TEXT NOT NULL,
    secret     BLOB NOT NULL,
    created_at TEXT NOT NULL,
    rotated_at TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys(tenant);
CREATE TABLE IF NOT EXISTS streams (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants(name),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    format      TEXT NOT NULL CHECK (format IN ('json', 'xml')),
    created_at  TEXT NOT NULL,
    deleted_at  TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS streams_by_tenant ON streams(tenant);
";

/// Bumps the generation; run inside every mutating transaction.
const BUMP_GENERATION_SQL: &str = "UPDATE meta SET value = value + 1 WHERE key = 'generation'";

/// Reads the generation.
const READ_GENERATION_SQL: &str = "SELECT value FROM meta WHERE key = 'generation'";

/// What is wrong with a name or description an operator typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextProblem {
    Empty,
    TooLong { chars_max: usize },
    ControlCharacter,
}

/// Why a store operation failed. Each variant's `Display` is one line that
/// names the tenant, id, file or field at fault.
#[derive(Debug)]
pub enum StoreError {
    /// The data directory could not be created.
    DataDir {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A tenant name does not match `[a-z0-9][a-z0-9-]{0,62}`.
    InvalidTenantName(String),
    TenantExists(String),
    UnknownTenant(String),
    UnknownKey {
        tenant: String,
        id: String,
    },
    UnknownStream {
        tenant: String,
        id: String,
    },
    /// A key name, stream name or description was refused.
    InvalidText {
        what: &'static str,
        problem: TextProblem,
    },
    /// A secret handed to [`Store::key_add`] is shorter than SPEC §2 allows.
    SecretTooShort {
        bytes: usize,
    },
    SecretFileTooShort {
        path: PathBuf,
        bytes: usize,
    },
    SecretFileTooLarge {
        path: PathBuf,
    },
    SecretFileUnreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The database was written by a newer sluice.
    SchemaTooNew {
        found: i64,
    },
    /// The database holds something this code never writes.
    Corrupt(&'static str),
    /// [`ID_ATTEMPTS_MAX`] fresh ids in a row were taken.
    IdsExhausted,
    Random(ids::RandomError),
    Database(rusqlite::Error),
}

impl StoreError {
    /// A machine-readable kind, kebab-case.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::DataDir { .. } => "data-dir",
            StoreError::InvalidTenantName(_) => "invalid-tenant-name",
            StoreError::TenantExists(_) => "tenant-exists",
            StoreError::UnknownTenant(_) => "unknown-tenant",
            StoreError::UnknownKey { .. } => "unknown-key",
            StoreError::UnknownStream { .. } => "unknown-stream",
            StoreError::InvalidText { .. } => "invalid-text",
            StoreError::SecretTooShort { .. } => "secret-too-short",
            StoreError::SecretFileTooShort { .. } => "secret-too-short",
            StoreError::SecretFileTooLarge { .. } => "secret-file-too-large",
            StoreError::SecretFileUnreadable { .. } => "secret-file-unreadable",
            StoreError::SchemaTooNew { .. } => "schema-too-new",
            StoreError::Corrupt(_) => "corrupt-store",
            StoreError::IdsExhausted => "ids-exhausted",
            StoreError::Random(error) => error.kind(),
            StoreError::Database(_) => "database",
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::DataDir { path, error } => {
                write!(f, "cannot create data directory {:?}: {error}", path)
            }
            StoreError::InvalidTenantName(name) => write!(
                f,
                "invalid tenant name {name:?}: use 1 to {} lowercase letters, digits or \
                 hyphens, starting with a letter or digit",
                ids::TENANT_NAME_BYTES_MAX
            ),
            StoreError::TenantExists(name) => write!(f, "tenant {name:?} already exists"),
            StoreError::UnknownTenant(name) => write!(f, "unknown tenant {name:?}"),
            StoreError::UnknownKey { tenant, id } => {
                write!(f, "no key {id} in tenant {tenant:?}")
            }
            StoreError::UnknownStream { tenant, id } => {
                write!(f, "no stream {id} in tenant {tenant:?}")
            }
            StoreError::InvalidText { what, problem } => match problem {
                TextProblem::Empty => write!(f, "{what} is empty"),
                TextProblem::TooLong { chars_max } => {
                    write!(f, "{what} is longer than {chars_max} characters")
                }
                TextProblem::ControlCharacter => write!(f, "{what} contains a control character"),
            },
            StoreError::SecretTooShort { bytes } => write!(
                f,
                "secret is {bytes} bytes; at least {KEY_SECRET_BYTES_MIN} are required"
            ),
            StoreError::SecretFileTooShort { path, bytes } => write!(
                f,
                "secret file {:?} is {bytes} bytes (less one trailing newline); at least \
                 {KEY_SECRET_BYTES_MIN} are required",
                path
            ),
            StoreError::SecretFileTooLarge { path } => write!(
                f,
                "secret file {:?} is over {SECRET_FILE_BYTES_MAX} bytes; is it the right file?",
                path
            ),
            StoreError::SecretFileUnreadable { path, error } => {
                write!(f, "cannot read secret file {:?}: {error}", path)
            }
            StoreError::SchemaTooNew { found } => write!(
                f,
                "control database has schema version {found}; this sluice understands up \
                 to {SCHEMA_VERSION} (was it written by a newer sluice?)"
            ),
            StoreError::Corrupt(what) => write!(f, "control database is corrupt: {what}"),
            StoreError::IdsExhausted => write!(
                f,
                "{ID_ATTEMPTS_MAX} freshly drawn ids were all taken; the random source is broken"
            ),
            StoreError::Random(error) => write!(f, "{error}"),
            StoreError::Database(error) => write!(f, "control database: {error}"),
        }
    }
}

/// `Display` already includes each cause's text, so `source` stays `None`:
/// reporting both would print every cause twice in an error chain.
impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        StoreError::Database(error)
    }
}

impl From<ids::RandomError> for StoreError {
    fn from(error: ids::RandomError) -> StoreError {
        StoreError::Random(error)
    }
}

/// A tenant as `tenant list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantRecord {
    pub name: String,
    /// RFC 3339, UTC, whole seconds.
    pub created_at: String,
}

/// An API key as `key list` shows it: everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    pub id: String,
    pub tenant: String,
    pub name: String,
    /// `stream-write` (SPEC §2).
    pub permission: String,
    pub created_at: String,
    /// When the secret was last replaced; `None` if never. Tokens signed
    /// before this moment no longer verify.
    pub rotated_at: Option<String>,
}

/// A live stream as `stream list` and `stream show` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamRecord {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub description: String,
    #[serde(serialize_with = "serialize_format")]
    pub format: PayloadFormat,
    pub created_at: String,
}

fn serialize_format<S: serde::Serializer>(format: &PayloadFormat, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(format.as_str())
}

/// The control database of one data directory.
#[derive(Debug)]
pub struct Store {
    /// One connection, used from one thread; SQLite serialises it against
    /// other processes (the CLI beside a running server).
    connection: Connection,
    /// Draws secrets and ids; ring's `SystemRandom` reads `getrandom`.
    random: SystemRandom,
    /// Where the database lives, for messages.
    path: PathBuf,
}

impl Store {
    /// The data directory this store's database lives in.
    pub fn data_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Opens (creating if needed) `<data_dir>/control.db`, creating the data
    /// directory too. A new database file is made readable by its owner
    /// only, because it holds key secrets.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|error| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            error,
        })?;
        let path = data_dir.join(CONTROL_DB_FILE_NAME);
        create_private_file(&path).map_err(|error| StoreError::DataDir {
            path: path.clone(),
            error,
        })?;
        let mut connection = Connection::open(&path)?;
        connection.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
        // WAL lets a running server read while the CLI writes; the mode is
        // stored in the file, so this is a no-op after the first open.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // Control changes are rare and must survive power loss once the CLI
        // said they were made; FULL costs one extra sync per change.
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", true)?;
        migrate(&mut connection)?;
        Ok(Store {
            connection,
            random: SystemRandom::new(),
            path,
        })
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for the control-plane modules that keep tables of
    /// their own in this database (couriers, feeds, groups, runs). They
    /// write through [`Store::mutate`] so every change bumps the generation.
    #[allow(dead_code)] // Until the courier and group tables land.
    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Adds a tenant. The name must match `[a-z0-9][a-z0-9-]{0,62}`.
    pub fn tenant_add(&mut self, name: &str) -> Result<(), StoreError> {
        if !ids::is_tenant_name(name) {
            return Err(StoreError::InvalidTenantName(name.to_string()));
        }
        self.mutate(|tx, _| {
            let inserted = tx.execute(
                "INSERT INTO tenants (name, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![name, now_rfc3339()],
            )?;
            if inserted == 0 {
                return Err(StoreError::TenantExists(name.to_string()));
            }
            Ok(())
        })
    }

    /// All tenants, by name.
    pub fn tenant_list(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT name, created_at FROM tenants ORDER BY name")?;
        let rows = statement.query_map([], |row| {
            Ok(TenantRecord {
                name: row.get(0)?,
                created_at: row.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Adds a `stream-write` key to `tenant` and returns its id. With no
    /// `secret`, 32 random bytes are drawn and the id is random; an
    /// imported secret must be at least [`KEY_SECRET_BYTES_MIN`] bytes and
    /// gives the key the id [`ids::imported_key_id`] derives from it, the
    /// same on every appliance that imports it; imported again into the
    /// same tenant, it makes a second key with a random id.
    pub fn key_add(
        &mut self,
        tenant: &str,
        name: &str,
        secret: Option<Vec<u8>>,
    ) -> Result<String, StoreError> {
        check_text("key name", name, NAME_CHARS_MAX, false)?;
        let (secret, imported_id) = match secret {
            Some(secret) if secret.len() < KEY_SECRET_BYTES_MIN => {
                return Err(StoreError::SecretTooShort { bytes: secret.len() });
            }
            Some(secret) => {
                let id = ids::imported_key_id(&secret, tenant);
                (secret, Some(id))
            }
            None => (new_secret(&self.random)?, None),
        };
        self.mutate(|tx, random| {
            require_tenant(tx, tenant)?;
            let id = match &imported_id {
                Some(id) if !id_taken(tx, "api_keys", id)? => id.clone(),
                // The same file imported again into this tenant: a second
                // key, with a random id (its tokens are this appliance's).
                _ => unused_id(tx, random, ids::new_key_id, "api_keys")?,
            };
            tx.execute(
                "INSERT INTO api_keys (id, tenant, name, permission, secret, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, tenant, name, PERMISSION_STREAM_WRITE, secret, now_rfc3339()],
            )?;
            Ok(id)
        })
    }

    /// The keys of `tenant`, oldest first. Secrets are not read.
    pub fn key_list(&self, tenant: &str) -> Result<Vec<KeyRecord>, StoreError> {
        require_tenant(&self.connection, tenant)?;
        let mut statement = self.connection.prepare(
            "SELECT id, tenant, name, permission, created_at, rotated_at FROM api_keys \
             WHERE tenant = ?1 ORDER BY created_at, rowid",
        )?;
        let rows = statement.query_map([tenant], |row| {
            Ok(KeyRecord {
                id: row.get(0)?,
                tenant: row.get(1)?,
                name: row.get(2)?,
                permission: row.get(3)?,
                created_at: row.get(4)?,
                rotated_at: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes a key and its secret; every token it signed stops verifying
    /// once a running server picks up the new generation.
    pub fn key_delete(&mut self, tenant: &str, id: &str) -> Result<(), StoreError> {
        self.mutate(|tx, _| {
            require_tenant(tx, tenant)?;
            let deleted = tx.execute(
                "DELETE FROM api_keys WHERE tenant = ?1 AND id = ?2",
                params![tenant, id],
            )?;
            if deleted == 0 {
                return Err(unknown_key(tenant, id));
            }
            Ok(())
        })
    }

    /// Replaces a key's secret with 32 fresh random bytes; tokens signed
    /// with the old secret stop verifying.
    pub fn key_rotate(&mut self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let secret = new_secret(&self.random)?;
        self.mutate(|tx, _| {
            require_tenant(tx, tenant)?;
            let updated = tx.execute(
                "UPDATE api_keys SET secret = ?3, rotated_at = ?4 WHERE tenant = ?1 AND id = ?2",
                params![tenant, id, secret, now_rfc3339()],
            )?;
            if updated == 0 {
                return Err(unknown_key(tenant, id));
            }
            Ok(())
        })
    }

    /// A key's secret, for signing a token. Nothing else should call this.
    pub fn key_secret(&self, tenant: &str, id: &str) -> Result<Vec<u8>, StoreError> {
        require_tenant(&self.connection, tenant)?;
        self.connection
            .query_row(
                "SELECT secret FROM api_keys WHERE tenant = ?1 AND id = ?2",
                params![tenant, id],
                |row| row.get(0),
            )
            .optional()?
            .ok_or_else(|| unknown_key(tenant, id))
    }

    /// Adds a stream to `tenant` and returns its id (`is-` + 8 letters),
    /// never one any stream of any tenant has had before.
    pub fn stream_add(
        &mut self,
        tenant: &str,
        name: &str,
        format: PayloadFormat,
        description: &str,
    ) -> Result<String, StoreError> {
        check_text("stream name", name, NAME_CHARS_MAX, false)?;
        check_text("stream description", description, DESCRIPTION_CHARS_MAX, true)?;
        self.mutate(|tx, random| {
            require_tenant(tx, tenant)?;
            let id = unused_id(tx, random, ids::new_stream_id, "streams")?;
            tx.execute(
                "INSERT INTO streams (id, tenant, name, description, format, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, tenant, name, description, format.as_str(), now_rfc3339()],
            )?;
            Ok(id)
        })
    }

    /// The live streams of `tenant`, oldest first.
    pub fn stream_list(&self, tenant: &str) -> Result<Vec<StreamRecord>, StoreError> {
        require_tenant(&self.connection, tenant)?;
        let mut statement = self.connection.prepare(
            "SELECT id, tenant, name, description, format, created_at FROM streams \
             WHERE tenant = ?1 AND deleted_at IS NULL ORDER BY created_at, rowid",
        )?;
        let rows = statement.query_map([tenant], stream_record)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// One live stream of `tenant`; a deleted stream is unknown.
    pub fn stream_show(&self, tenant: &str, id: &str) -> Result<StreamRecord, StoreError> {
        require_tenant(&self.connection, tenant)?;
        self.connection
            .query_row(
                "SELECT id, tenant, name, description, format, created_at FROM streams \
                 WHERE tenant = ?1 AND id = ?2 AND deleted_at IS NULL",
                params![tenant, id],
                stream_record,
            )
            .optional()?
            .ok_or_else(|| unknown_stream(tenant, id))
    }

    /// Marks a stream deleted. Its row stays (so its id is never reused)
    /// and its files stay on disk (SPEC §3).
    pub fn stream_delete(&mut self, tenant: &str, id: &str) -> Result<(), StoreError> {
        self.mutate(|tx, _| {
            require_tenant(tx, tenant)?;
            let updated = tx.execute(
                "UPDATE streams SET deleted_at = ?3 \
                 WHERE tenant = ?1 AND id = ?2 AND deleted_at IS NULL",
                params![tenant, id, now_rfc3339()],
            )?;
            if updated == 0 {
                return Err(unknown_stream(tenant, id));
            }
            Ok(())
        })
    }

    /// The current generation: one indexed read, cheap enough to poll every
    /// few hundred milliseconds. It grows by one with every committed
    /// mutation, from this process or any other.
    pub fn generation(&self) -> Result<u64, StoreError> {
        read_generation(&self.connection)
    }

    /// Builds the view ingest workers read: every tenant, its live keys as
    /// prepared HMAC keys, its live streams. All reads run in one read
    /// transaction, so the view and its generation are consistent even while
    /// another process writes.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        // Write transactions need `&mut self`, so none can be open while
        // this `&self` method runs: the unchecked transaction cannot nest.
        let tx = self.connection.unchecked_transaction()?;
        let generation = read_generation(&tx)?;
        let mut tenants: FastMap<String, TenantView> = FastMap::default();
        {
            let mut statement = tx.prepare("SELECT name FROM tenants")?;
            for name in statement.query_map([], |row| row.get::<_, String>(0))? {
                tenants.insert(name?, TenantView::default());
            }
            let mut statement = tx.prepare("SELECT tenant, id, permission, secret FROM api_keys")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let tenant: String = row.get(0)?;
                let permission: String = row.get(2)?;
                let secret: Vec<u8> = row.get(3)?;
                let key = KeyView {
                    hmac: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
                    stream_write: permission == PERMISSION_STREAM_WRITE,
                };
                tenants.entry(tenant).or_default().keys.insert(row.get(1)?, key);
            }
            let mut statement =
                tx.prepare("SELECT tenant, id, format FROM streams WHERE deleted_at IS NULL")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let tenant: String = row.get(0)?;
                let id: String = row.get(1)?;
                let format = format_column(row, 2)?;
                let view = StreamView {
                    id: id.clone(),
                    tenant: tenant.clone(),
                    format,
                };
                tenants.entry(tenant).or_default().streams.insert(id, view);
            }
        }
        tx.finish()?;
        Ok(Snapshot { generation, tenants })
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction and bumps the
    /// generation in the same transaction. Taking the write lock up front
    /// means a busy database is waited for at `BEGIN`, where the busy
    /// timeout applies, instead of failing mid-transaction.
    pub(crate) fn mutate<T>(
        &mut self,
        work: impl FnOnce(&Transaction<'_>, &SystemRandom) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = work(&tx, &self.random)?;
        let bumped = tx.execute(BUMP_GENERATION_SQL, [])?;
        if bumped != 1 {
            return Err(StoreError::Corrupt("the generation counter is missing"));
        }
        tx.commit()?;
        Ok(value)
    }
}

/// The bytes of a secret file that are the key: all of them, less one
/// trailing newline (`\n`), exactly as SPEC §2 says. Nothing else is
/// trimmed: a CR before that newline, spaces and further newlines are part
/// of the key, so every appliance that imports the same file (and any JWT
/// library given the same bytes) uses the same key.
pub fn secret_from_file_bytes(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\n").unwrap_or(bytes)
}

/// Reads an operator-supplied secret file (SPEC §2) and checks its length,
/// naming the file in every error.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, StoreError> {
    let unreadable = |error| StoreError::SecretFileUnreadable {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    // Reading one byte past the bound tells "exactly at the bound" from
    // "over it" without reading a huge file whole.
    file.take(SECRET_FILE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() > SECRET_FILE_BYTES_MAX {
        return Err(StoreError::SecretFileTooLarge {
            path: path.to_path_buf(),
        });
    }
    let secret = secret_from_file_bytes(&bytes);
    if secret.len() < KEY_SECRET_BYTES_MIN {
        return Err(StoreError::SecretFileTooShort {
            path: path.to_path_buf(),
            bytes: secret.len(),
        });
    }
    Ok(secret.to_vec())
}

/// Creates an empty database file readable and writable by its owner only,
/// unless the file already exists. SQLite gives its `-wal` and `-shm` files
/// the same permissions as the database.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// Creates the schema in a new database, or checks an existing one's
/// version. Runs under the write lock so two processes opening a new data
/// directory at once do not both initialise it.
/// The `CREATE TABLE IF NOT EXISTS …` scripts of modules that keep their
/// own tables in the control database.
const EXTENSION_SCHEMAS: &[&str] = &[
    crate::control::couriers::SCHEMA_SQL,
    crate::control::groups::SCHEMA_SQL,
];

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA_SQL)?;
    // Tables of the other control-plane modules, each created if missing.
    for schema in EXTENSION_SCHEMAS {
        tx.execute_batch(schema)?;
    }
    let found: Option<i64> = tx
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| {
            row.get(0)
        })
        .optional()?;
    match found {
        None => {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('generation', ?2)",
                params![SCHEMA_VERSION, GENERATION_INITIAL],
            )?;
        }
        Some(found) if found > SCHEMA_VERSION => return Err(StoreError::SchemaTooNew { found }),
        Some(_) => {}
    }
    tx.commit()?;
    Ok(())
}

fn read_generation(connection: &Connection) -> Result<u64, StoreError> {
    let value: i64 = connection
        .prepare_cached(READ_GENERATION_SQL)?
        .query_row([], |row| row.get(0))?;
    u64::try_from(value).map_err(|_| StoreError::Corrupt("the generation counter is negative"))
}

pub(crate) fn require_tenant(connection: &Connection, tenant: &str) -> Result<(), StoreError> {
    let found = connection
        .prepare_cached("SELECT 1 FROM tenants WHERE name = ?1")?
        .query_row([tenant], |_| Ok(()))
        .optional()?;
    found.ok_or_else(|| StoreError::UnknownTenant(tenant.to_string()))
}

/// Draws ids until one is not in `table` (deleted streams included, since
/// their rows stay). `table` is one of this module's constants, never input.
fn unused_id(
    connection: &Connection,
    random: &SystemRandom,
    new_id: fn(&dyn SecureRandom) -> Result<String, ids::RandomError>,
    table: &'static str,
) -> Result<String, StoreError> {
    for _ in 0..ID_ATTEMPTS_MAX {
        let id = new_id(random)?;
        if !id_taken(connection, table, &id)? {
            return Ok(id);
        }
    }
    Err(StoreError::IdsExhausted)
}

/// Whether `table` already holds a row with this `id`.
fn id_taken(connection: &Connection, table: &'static str, id: &str) -> rusqlite::Result<bool> {
    Ok(connection
        .query_row(&format!("SELECT 1 FROM {table} WHERE id = ?1"), [id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn new_secret(random: &SystemRandom) -> Result<Vec<u8>, StoreError> {
    let mut secret = vec![0u8; KEY_SECRET_BYTES_GENERATED];
    random
        .fill(&mut secret)
        .map_err(|_| StoreError::Random(ids::RandomError))?;
    Ok(secret)
}

/// Refuses empty (unless allowed), over-long and control-character text.
/// Control characters would break aligned listings and terminals.
fn check_text(
    what: &'static str,
    text: &str,
    chars_max: usize,
    empty_allowed: bool,
) -> Result<(), StoreError> {
    let problem = if text.is_empty() && !empty_allowed {
        Some(TextProblem::Empty)
    } else if text.chars().count() > chars_max {
        Some(TextProblem::TooLong { chars_max })
    } else if text.chars().any(char::is_control) {
        Some(TextProblem::ControlCharacter)
    } else {
        None
    };
    match problem {
        Some(problem) => Err(StoreError::InvalidText { what, problem }),
        None => Ok(()),
    }
}

/// Maps a `streams` row selected as `id, tenant, name, description,
/// format, created_at`.
fn stream_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<StreamRecord> {
    Ok(StreamRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        name: row.get(2)?,
        description: row.get(3)?,
        format: format_column(row, 4)?,
        created_at: row.get(5)?,
    })
}

/// Reads a stream's format. The schema's CHECK constraint admits only
/// `json` and `xml`, so anything else means the file was edited by hand.
fn format_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<PayloadFormat> {
    let text: String = row.get(index)?;
    PayloadFormat::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("stream format {text:?} is neither json nor xml").into(),
        )
    })
}

fn unknown_key(tenant: &str, id: &str) -> StoreError {
    StoreError::UnknownKey {
        tenant: tenant.to_string(),
        id: id.to_string(),
    }
}

fn unknown_stream(tenant: &str, id: &str) -> StoreError {
    StoreError::UnknownStream {
        tenant: tenant.to_string(),
        id: id.to_string(),
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A data directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let unique = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "sluice-store-test-{}-{label}-{unique}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn store_with_tenants(label: &str, tenants: &[&str]) -> (TempDir, Store) {
        let dir = TempDir::new(label);
        let mut store = Store::open(&dir.0).expect("open");
        for tenant in tenants {
            store.tenant_add(tenant).expect("tenant_add");
        }
        (dir, store)
    }

    fn sign(key: &ring::hmac::Key) -> ring::hmac::Tag {
        ring::hmac::sign(key, b"header.claims")
    }

    #[test]
    fn open_creates_the_data_dir_and_a_private_database() {
        let dir = TempDir::new("open");
        let data_dir = dir.0.join("nested").join("data");
        let store = Store::open(&data_dir).expect("open");
        assert_eq!(store.path(), data_dir.join("control.db"));
        let mode = std::fs::metadata(store.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(store.generation().expect("generation"), 1);
        let journal: String = store
            .connection
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .expect("pragma");
        assert_eq!(journal, "wal");
    }

    #[test]
    fn reopening_keeps_data_and_generation() {
        let (dir, mut store) = store_with_tenants("reopen", &["acme"]);
        let id = store
            .stream_add("acme", "web", PayloadFormat::Json, "")
            .expect("add");
        let generation = store.generation().expect("generation");
        drop(store);
        let store = Store::open(&dir.0).expect("reopen");
        assert_eq!(store.generation().expect("generation"), generation);
        assert_eq!(store.stream_show("acme", &id).expect("show").name, "web");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (dir, store) = store_with_tenants("schema", &[]);
        store
            .connection
            .execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'", [])
            .expect("update");
        drop(store);
        let error = Store::open(&dir.0).expect_err("refused");
        assert_eq!(error.kind(), "schema-too-new");
    }

    #[test]
    fn tenant_names_are_validated() {
        let (_dir, mut store) = store_with_tenants("tenant-names", &[]);
        let cases: &[(&str, Option<&str>)] = &[
            ("acme", None),
            ("a", None),
            ("acme-prod-2", None),
            ("0day", None),
            ("", Some("invalid-tenant-name")),
            ("-acme", Some("invalid-tenant-name")),
            ("Acme", Some("invalid-tenant-name")),
            ("acme_prod", Some("invalid-tenant-name")),
            ("acme/..", Some("invalid-tenant-name")),
            ("acme", Some("tenant-exists")),
        ];
        for &(name, expected) in cases {
            let outcome = store.tenant_add(name).err().map(|error| error.kind());
            assert_eq!(outcome, expected, "{name:?}");
        }
        let names: Vec<String> = store
            .tenant_list()
            .expect("list")
            .into_iter()
            .map(|tenant| tenant.name)
            .collect();
        assert_eq!(names, ["0day", "a", "acme", "acme-prod-2"]);
    }

    #[test]
    fn created_ids_have_their_shapes() {
        let (_dir, mut store) = store_with_tenants("ids", &["acme"]);
        for _ in 0..20 {
            let key = store.key_add("acme", "k", None).expect("key_add");
            assert!(ids::is_key_id(&key), "{key}");
            assert_eq!(key.len(), 19);
            let stream = store
                .stream_add("acme", "s", PayloadFormat::Xml, "")
                .expect("add");
            assert!(ids::is_stream_id(&stream), "{stream}");
            assert_eq!(stream.len(), 11);
        }
    }

    #[test]
    fn imported_secrets_must_be_at_least_32_bytes() {
        let (_dir, mut store) = store_with_tenants("import", &["acme"]);
        let error = store
            .key_add("acme", "k", Some(vec![7; 31]))
            .expect_err("refused");
        assert_eq!(error.to_string(), "secret is 31 bytes; at least 32 are required");
        let id = store.key_add("acme", "k", Some(vec![7; 32])).expect("accepted");
        assert_eq!(store.key_secret("acme", &id).expect("secret"), vec![7; 32]);
    }

    #[test]
    fn an_imported_secret_gets_the_same_key_id_on_every_appliance() {
        let secret = b"0123456789abcdef0123456789abcdef-shared".to_vec();
        let (_a_dir, mut a) = store_with_tenants("import-a", &["acme", "beta"]);
        let (_b_dir, mut b) = store_with_tenants("import-b", &["acme"]);
        let on_a = a.key_add("acme", "k", Some(secret.clone())).expect("a");
        let on_b = b.key_add("acme", "other name", Some(secret.clone())).expect("b");
        assert_eq!(on_a, on_b, "one file, one id on both appliances");
        assert!(ids::is_key_id(&on_a), "{on_a}");
        // Another tenant importing the same file gets its own key.
        let beta = a.key_add("beta", "k", Some(secret.clone())).expect("beta");
        assert_ne!(beta, on_a);
        // The same file twice into one tenant: a second key, random id.
        let again = a.key_add("acme", "k2", Some(secret.clone())).expect("twice");
        assert_ne!(again, on_a);
        assert!(ids::is_key_id(&again), "{again}");
        assert_eq!(a.key_secret("acme", &again).expect("secret"), secret);
        // Another secret, another id; generated keys stay random.
        let other = a.key_add("acme", "k3", Some(vec![9; 32])).expect("other");
        assert_ne!(other, on_a);
        let random = a.key_add("acme", "k4", None).expect("random");
        let random2 = b.key_add("acme", "k4", None).expect("random");
        assert_ne!(random, random2);
    }

    #[test]
    fn generated_secrets_are_32_random_bytes() {
        let (_dir, mut store) = store_with_tenants("generated", &["acme"]);
        let first = store.key_add("acme", "k", None).expect("key_add");
        let second = store.key_add("acme", "k", None).expect("key_add");
        let first = store.key_secret("acme", &first).expect("secret");
        let second = store.key_secret("acme", &second).expect("secret");
        assert_eq!(first.len(), 32);
        assert_eq!(second.len(), 32);
        assert_ne!(first, second);
    }

    #[test]
    fn secret_file_line_ending_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"abc", b"abc"),
            (b"abc\n", b"abc"),
            (b"abc\r\n", b"abc\r"),
            (b"abc\n\n", b"abc\n"),
            (b"abc\r", b"abc\r"),
            (b"abc \n", b"abc "),
            (b"\n", b""),
            (b"", b""),
        ];
        for &(bytes, expected) in cases {
            assert_eq!(secret_from_file_bytes(bytes), expected, "{bytes:?}");
        }
    }

    #[test]
    fn secret_files_are_read_less_one_newline() {
        let dir = TempDir::new("secret-files");
        std::fs::create_dir_all(&dir.0).expect("mkdir");
        let path = dir.0.join("secret");
        let thirty_two = [b'x'; 32];
        // (file content, the secret read or the error kind)
        type Case = (Vec<u8>, Result<Vec<u8>, &'static str>);
        let cases: Vec<Case> = vec![
            ([&thirty_two[..], b"\n"].concat(), Ok(thirty_two.to_vec())),
            (
                [&thirty_two[..], b"\r\n"].concat(),
                Ok([&thirty_two[..], b"\r"].concat()),
            ),
            (
                [&thirty_two[..31], b"\r\n"].concat(),
                Ok([&thirty_two[..31], b"\r"].concat()),
            ),
            (thirty_two.to_vec(), Ok(thirty_two.to_vec())),
            ([&thirty_two[..31], b"\n"].concat(), Err("secret-too-short")),
            (
                [&thirty_two[..31], b"\n\n"].concat(),
                Ok([&thirty_two[..31], b"\n"].concat()),
            ),
            (
                vec![b'x'; SECRET_FILE_BYTES_MAX],
                Ok(vec![b'x'; SECRET_FILE_BYTES_MAX]),
            ),
            (
                vec![b'x'; SECRET_FILE_BYTES_MAX + 1],
                Err("secret-file-too-large"),
            ),
        ];
        for (content, expected) in cases {
            std::fs::write(&path, &content).expect("write");
            let outcome = read_secret_file(&path).map_err(|error| error.kind());
            assert_eq!(outcome, expected, "{} bytes", content.len());
        }
        std::fs::write(&path, b"short\n").expect("write");
        let message = read_secret_file(&path).expect_err("refused").to_string();
        assert_eq!(
            message,
            format!(
                "secret file {:?} is 5 bytes (less one trailing newline); at least 32 are required",
                path
            )
        );
        let missing = read_secret_file(&dir.0.join("missing")).expect_err("refused");
        assert_eq!(missing.kind(), "secret-file-unreadable");
    }

    #[test]
    fn rotate_and_delete_bump_the_generation_and_change_the_snapshot() {
        let (_dir, mut store) = store_with_tenants("rotate", &["acme"]);
        let id = store.key_add("acme", "k", None).expect("key_add");
        let before = store.snapshot().expect("snapshot");
        let generation = store.generation().expect("generation");
        assert_eq!(before.generation, generation);
        let old_tag = sign(&before.tenant("acme").expect("tenant").keys[&id].hmac);
        assert!(before.tenant("acme").expect("tenant").keys[&id].stream_write);

        store.key_rotate("acme", &id).expect("rotate");
        assert_eq!(store.generation().expect("generation"), generation + 1);
        let rotated = store.snapshot().expect("snapshot");
        assert_eq!(rotated.generation, generation + 1);
        let key = &rotated.tenant("acme").expect("tenant").keys[&id].hmac;
        assert!(ring::hmac::verify(key, b"header.claims", old_tag.as_ref()).is_err());
        let listed = store.key_list("acme").expect("list");
        assert!(listed[0].rotated_at.is_some());

        store.key_delete("acme", &id).expect("delete");
        assert_eq!(store.generation().expect("generation"), generation + 2);
        let deleted = store.snapshot().expect("snapshot");
        assert_eq!(deleted.generation, generation + 2);
        assert!(deleted.tenant("acme").expect("tenant").keys.is_empty());
        assert!(store.key_list("acme").expect("list").is_empty());
    }

    #[test]
    fn failed_mutations_do_not_bump_the_generation() {
        let (_dir, mut store) = store_with_tenants("failed", &["acme"]);
        let generation = store.generation().expect("generation");
        let attempts: Vec<StoreError> = vec![
            store.tenant_add("acme").expect_err("duplicate"),
            store
                .key_delete("acme", "ak-0000000000000000")
                .expect_err("unknown"),
            store
                .key_rotate("nobody", "ak-0000000000000000")
                .expect_err("unknown"),
            store.stream_delete("acme", "is-AAAAAAAA").expect_err("unknown"),
            store.key_add("acme", "", None).expect_err("empty name"),
        ];
        let kinds: Vec<&str> = attempts.iter().map(StoreError::kind).collect();
        assert_eq!(
            kinds,
            [
                "tenant-exists",
                "unknown-key",
                "unknown-tenant",
                "unknown-stream",
                "invalid-text"
            ]
        );
        assert_eq!(store.generation().expect("generation"), generation);
    }

    #[test]
    fn another_connection_sees_the_new_generation() {
        let (dir, mut writer) = store_with_tenants("two", &["acme"]);
        let reader = Store::open(&dir.0).expect("second open");
        let generation = reader.generation().expect("generation");
        let id = writer
            .stream_add("acme", "web", PayloadFormat::Json, "")
            .expect("add");
        assert_eq!(reader.generation().expect("generation"), generation + 1);
        let snapshot = reader.snapshot().expect("snapshot");
        assert_eq!(
            snapshot.stream("acme", &id).expect("stream").format,
            PayloadFormat::Json
        );
    }

    #[test]
    fn deleted_streams_are_tombstones() {
        let (_dir, mut store) = store_with_tenants("tombstones", &["acme"]);
        let kept = store
            .stream_add("acme", "kept", PayloadFormat::Json, "stays")
            .expect("add");
        let gone = store
            .stream_add("acme", "gone", PayloadFormat::Xml, "")
            .expect("add");
        assert_eq!(store.stream_list("acme").expect("list").len(), 2);

        store.stream_delete("acme", &gone).expect("delete");
        let listed = store.stream_list("acme").expect("list");
        assert_eq!(
            listed,
            [StreamRecord {
                id: kept.clone(),
                tenant: "acme".to_string(),
                name: "kept".to_string(),
                description: "stays".to_string(),
                format: PayloadFormat::Json,
                created_at: listed[0].created_at.clone(),
            }]
        );
        let snapshot = store.snapshot().expect("snapshot");
        assert!(snapshot.stream("acme", &gone).is_none());
        assert!(snapshot.stream("acme", &kept).is_some());
        assert_eq!(
            store.stream_show("acme", &gone).expect_err("gone").to_string(),
            format!("no stream {gone} in tenant \"acme\"")
        );
        assert_eq!(
            store.stream_delete("acme", &gone).expect_err("gone").kind(),
            "unknown-stream"
        );
        // The row stays, so `unused_id` will never hand the id out again.
        let rows: i64 = store
            .connection
            .query_row("SELECT count(*) FROM streams WHERE id = ?1", [&gone], |row| {
                row.get(0)
            })
            .expect("count");
        assert_eq!(rows, 1);
    }

    #[test]
    fn tenants_are_isolated() {
        let (_dir, mut store) = store_with_tenants("isolation", &["a", "b"]);
        let key = store.key_add("a", "k", None).expect("key_add");
        let stream = store.stream_add("a", "s", PayloadFormat::Json, "").expect("add");

        let snapshot = store.snapshot().expect("snapshot");
        let b = snapshot.tenant("b").expect("tenant b is in the snapshot");
        assert!(b.keys.is_empty() && b.streams.is_empty());
        assert!(snapshot.stream("b", &stream).is_none());
        assert!(snapshot.tenant("a").expect("tenant a").keys.contains_key(&key));

        assert!(store.key_list("b").expect("list").is_empty());
        assert!(store.stream_list("b").expect("list").is_empty());
        let refused = [
            store.key_secret("b", &key).expect_err("not b's").to_string(),
            store.key_rotate("b", &key).expect_err("not b's").to_string(),
            store.key_delete("b", &key).expect_err("not b's").to_string(),
            store.stream_show("b", &stream).expect_err("not b's").to_string(),
            store
                .stream_delete("b", &stream)
                .expect_err("not b's")
                .to_string(),
        ];
        assert_eq!(
            refused,
            [
                format!("no key {key} in tenant \"b\""),
                format!("no key {key} in tenant \"b\""),
                format!("no key {key} in tenant \"b\""),
                format!("no stream {stream} in tenant \"b\""),
                format!("no stream {stream} in tenant \"b\""),
            ]
        );
        // Tenant a still has both.
        assert_eq!(store.key_list("a").expect("list").len(), 1);
        assert!(store.stream_show("a", &stream).is_ok());
    }

    #[test]
    fn unknown_tenants_are_named() {
        let (_dir, mut store) = store_with_tenants("unknown", &[]);
        let messages = [
            store.key_list("x").expect_err("unknown").to_string(),
            store.key_add("x", "k", None).expect_err("unknown").to_string(),
            store.stream_list("x").expect_err("unknown").to_string(),
            store
                .stream_add("x", "s", PayloadFormat::Json, "")
                .expect_err("unknown")
                .to_string(),
        ];
        for message in messages {
            assert_eq!(message, "unknown tenant \"x\"");
        }
    }

    #[test]
    fn names_and_descriptions_are_checked() {
        let (_dir, mut store) = store_with_tenants("text", &["acme"]);
        let long_name = "n".repeat(NAME_CHARS_MAX + 1);
        let longest_name = "é".repeat(NAME_CHARS_MAX);
        let long_description = "d".repeat(DESCRIPTION_CHARS_MAX + 1);
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("web", "", None),
            ("Web events (prod)", "All clicks, ünïcode ok", None),
            (&longest_name, "", None),
            ("", "", Some("stream name is empty")),
            (&long_name, "", Some("stream name is longer than 200 characters")),
            ("a\tb", "", Some("stream name contains a control character")),
            (
                "web",
                "line\nbreak",
                Some("stream description contains a control character"),
            ),
            (
                "web",
                &long_description,
                Some("stream description is longer than 2000 characters"),
            ),
        ];
        for &(name, description, expected) in cases {
            let outcome = store
                .stream_add("acme", name, PayloadFormat::Json, description)
                .err()
                .map(|error| error.to_string());
            assert_eq!(outcome.as_deref(), expected, "{name:?} {description:?}");
        }
    }

    #[test]
    fn key_list_never_carries_secrets() {
        let (_dir, mut store) = store_with_tenants("list", &["acme"]);
        let id = store
            .key_add("acme", "ci", Some(vec![b's'; 40]))
            .expect("key_add");
        let listed = store.key_list("acme").expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
        assert_eq!(listed[0].name, "ci");
        assert_eq!(listed[0].permission, "stream-write");
        assert_eq!(listed[0].rotated_at, None);
        let json = serde_json::to_string(&listed).expect("json");
        assert!(!json.contains("ssss"), "{json}");
        assert!(!json.contains("secret"), "{json}");
    }
}
