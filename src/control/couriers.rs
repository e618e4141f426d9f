//! Couriers, feeds, courier runs and sample files: the loading side of the
//! control plane (SPEC §5), kept in `control.db` beside tenants and streams.
//!
//! What it owns and promises:
//! - **Couriers** are named per tenant and pull one stream. A courier is
//!   refused (one line saying why) when its stream is unknown or deleted,
//!   when its file format does not match the stream's payload type (`ndjson`
//!   for `json` streams, `cbor` for `xml` streams), when its hour is outside
//!   `00`–`23`, or when its load operations are not of the seed's shape
//!   `{"<feed-id>": [{"type": "load", "file": "<file tag>"}]}` (or `{}`).
//!   - The seed says the file pattern prefix ranges over `00`–`24`; sluice
//!     stores files under UTC hour folders `00`–`23`, so `24` would name no
//!     files at all: it is refused rather than silently matching nothing.
//!     One or two digits are accepted (`8` is `08`).
//!   - A load operation's `file` must equal the courier's file tag (the seed:
//!     "This must be identical to the file tag within the load operation").
//!   - Feed ids in load operations are checked for shape (`df-` and six
//!     lowercase letters or digits, which the seed's placeholder `df-xxxxxx`
//!     has) but not for existence: the seed saves a placeholder on purpose,
//!     and the run reports `Cannot find required feeds: "df-xxxxxx"`.
//! - **Feeds** get an id `df-` + 6 random lowercase letters or digits, a
//!   domain table `<source>:<feed>` unique per tenant (case-insensitively,
//!   as SQLite compares table names), and a schema inferred from their
//!   sample file when added or when the sample or query changes. Source and
//!   feed names may not contain `:`, so a table name splits one way only.
//!   Primary key, tags and last-updated field must name inferred columns;
//!   tags must be in [`SEMANTIC_TAGS`]. Once a feed is active its table
//!   exists, so only its tags and Stitch flag may change; anything that
//!   would change the table's shape is refused with a line saying so. A feed
//!   used by a courier's load operations cannot be deleted.
//! - **Runs** are recorded when they start (status `running`) and when they
//!   end (`succeeded` or `failed`). A run whose process died (kill -9, power
//!   loss) is marked `failed` with the message `Interrupted` by the next
//!   run of the same courier, which notices its process is gone and counts
//!   the files it had loaded (they stay loaded) from the ledger.
//! - **Sample files** are the files courier runs picked, newest first by
//!   hour folder and file name; the newest [`SAMPLES_PER_COURIER_MAX`] are
//!   kept per courier.
//!
//! Every write goes through [`Store::mutate`], so it bumps the generation a
//! running server watches.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::control::ids::RandomError;
use crate::control::snapshot::PayloadFormat;
use crate::control::store::{ID_ATTEMPTS_MAX, NAME_CHARS_MAX, Store, StoreError, require_tenant};
use crate::tables::{self, Column, GENERATED_UPDATED_COLUMN, LastUpdated, TableSpec, TablesError};

/// The semantic tags a feed column may carry: SPEC §5's list plus the few
/// further profile and transaction fields operators commonly tag.
pub const SEMANTIC_TAGS: &[&str] = &[
    "email",
    "phone",
    "given-name",
    "surname",
    "full-name",
    "address",
    "address2",
    "city",
    "state",
    "postal",
    "country",
    "birthdate",
    "gender",
    "company",
    "customer-id",
    "order-id",
    "order-datetime",
    "order-revenue",
    "order-quantity",
    "product-id",
];

/// Prefix of a feed id (SPEC §5).
pub const FEED_ID_PREFIX: &str = "df-";

/// Random characters after [`FEED_ID_PREFIX`] (SPEC §5: six).
pub const FEED_ID_RANDOM_CHARS: usize = 6;

/// Prefix of a run id.
pub const RUN_ID_PREFIX: &str = "run-";

/// Random characters after [`RUN_ID_PREFIX`]: 36^12 ≈ 5·10^18 ids.
pub const RUN_ID_RANDOM_CHARS: usize = 12;

/// How many sample files are kept per courier, newest first. Enough to
/// pick a sample from any hour of the last week.
pub const SAMPLES_PER_COURIER_MAX: usize = 200;

/// The longest saved query, in bytes.
pub const QUERY_BYTES_MAX: usize = 64 * 1024;

/// The alphabet of feed and run ids.
const ID_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// The tables of this module, created by the store's migration.
pub(crate) const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS couriers (
    tenant     TEXT NOT NULL REFERENCES tenants(name),
    name       TEXT NOT NULL,
    stream_id  TEXT NOT NULL,
    format     TEXT NOT NULL CHECK (format IN ('ndjson', 'cbor')),
    file_tag   TEXT NOT NULL,
    hour       INTEGER CHECK (hour BETWEEN 0 AND 23),
    load_ops   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
) STRICT;
CREATE TABLE IF NOT EXISTS feeds (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL REFERENCES tenants(name),
    source        TEXT NOT NULL,
    name          TEXT NOT NULL,
    table_name    TEXT NOT NULL COLLATE NOCASE,
    sample_file   TEXT NOT NULL,
    columns       TEXT NOT NULL,
    primary_key   TEXT NOT NULL,
    tags          TEXT NOT NULL,
    updated_field TEXT,
    stitch        INTEGER NOT NULL,
    query         TEXT,
    active        INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    activated_at  TEXT,
    UNIQUE (tenant, table_name)
) STRICT;
CREATE TABLE IF NOT EXISTS courier_runs (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    courier      TEXT NOT NULL,
    triggered_by TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    time_window  TEXT NOT NULL,
    files        INTEGER NOT NULL DEFAULT 0,
    records      INTEGER NOT NULL DEFAULT 0,
    rejected     INTEGER NOT NULL DEFAULT 0,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    duration_ms  INTEGER,
    message      TEXT NOT NULL DEFAULT '',
    pid          INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS courier_runs_by_courier ON courier_runs(tenant, courier, started_at);
CREATE TABLE IF NOT EXISTS courier_samples (
    tenant   TEXT NOT NULL,
    courier  TEXT NOT NULL,
    path     TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    run_id   TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (tenant, courier, path)
) STRICT;
";

/// Why a courier, feed or run operation failed; `Display` is one line.
#[derive(Debug)]
pub enum CourierError {
    Store(StoreError),
    Tables(TablesError),
    UnknownCourier {
        tenant: String,
        name: String,
    },
    CourierExists {
        tenant: String,
        name: String,
    },
    UnknownFeed {
        tenant: String,
        id: String,
    },
    /// Another feed of the tenant already has this domain table.
    FeedExists {
        tenant: String,
        table: String,
    },
    UnknownRun {
        tenant: String,
        id: String,
    },
    /// Input refused; `kind` is kebab-case, `reason` one sentence.
    Invalid {
        kind: &'static str,
        reason: String,
    },
}

impl CourierError {
    /// A machine-readable kind, kebab-case.
    pub fn kind(&self) -> &'static str {
        match self {
            CourierError::Store(error) => error.kind(),
            CourierError::Tables(error) => error.kind(),
            CourierError::UnknownCourier { .. } => "unknown-courier",
            CourierError::CourierExists { .. } => "courier-exists",
            CourierError::UnknownFeed { .. } => "unknown-feed",
            CourierError::FeedExists { .. } => "feed-exists",
            CourierError::UnknownRun { .. } => "unknown-run",
            CourierError::Invalid { kind, .. } => kind,
        }
    }

    fn invalid(kind: &'static str, reason: impl Into<String>) -> CourierError {
        CourierError::Invalid {
            kind,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for CourierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CourierError::Store(error) => write!(f, "{error}"),
            CourierError::Tables(error) => write!(f, "{error}"),
            CourierError::UnknownCourier { tenant, name } => {
                write!(f, "no courier {name:?} in tenant {tenant:?}")
            }
            CourierError::CourierExists { tenant, name } => {
                write!(f, "courier {name:?} already exists in tenant {tenant:?}")
            }
            CourierError::UnknownFeed { tenant, id } => write!(f, "no feed {id} in tenant {tenant:?}"),
            CourierError::FeedExists { tenant, table } => {
                write!(f, "a feed of tenant {tenant:?} already loads table {table:?}")
            }
            CourierError::UnknownRun { tenant, id } => write!(f, "no run {id} in tenant {tenant:?}"),
            CourierError::Invalid { reason, .. } => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for CourierError {}

impl From<StoreError> for CourierError {
    fn from(error: StoreError) -> CourierError {
        CourierError::Store(error)
    }
}

impl From<rusqlite::Error> for CourierError {
    fn from(error: rusqlite::Error) -> CourierError {
        CourierError::Store(StoreError::Database(error))
    }
}

impl From<TablesError> for CourierError {
    fn from(error: TablesError) -> CourierError {
        CourierError::Tables(error)
    }
}

/// The format of the files a courier pulls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Ndjson,
    Cbor,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Ndjson => "ndjson",
            FileFormat::Cbor => "cbor",
        }
    }

    pub fn parse(text: &str) -> Option<FileFormat> {
        match text {
            "ndjson" => Some(FileFormat::Ndjson),
            "cbor" => Some(FileFormat::Cbor),
            _ => None,
        }
    }

    /// The format a stream of this payload type is stored in (SPEC §3).
    pub fn of_payload(payload: PayloadFormat) -> FileFormat {
        match payload {
            PayloadFormat::Json => FileFormat::Ndjson,
            PayloadFormat::Xml => FileFormat::Cbor,
        }
    }

    /// The sealed files' suffix; equal to the name.
    pub fn suffix(self) -> &'static str {
        self.as_str()
    }
}

/// A courier's load operations: for each feed id, the file tags it loads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOps {
    /// Feed id → file tags, by feed id.
    pub feeds: BTreeMap<String, Vec<String>>,
}

impl LoadOps {
    /// Parses and checks the seed's shape; `{}` is no operations.
    pub fn parse(text: &str) -> Result<LoadOps, CourierError> {
        let shape = "load operations must look like {\"df-abc123\": [{\"type\": \"load\", \"file\": \"<file tag>\"}]} or {}";
        let refuse = |detail: String| CourierError::invalid("invalid-load-ops", format!("{shape}: {detail}"));
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|error| refuse(format!("not JSON ({error})")))?;
        let object = value
            .as_object()
            .ok_or_else(|| refuse("not a JSON object".to_string()))?;
        let mut feeds = BTreeMap::new();
        for (feed_id, operations) in object {
            if !is_feed_id(feed_id) {
                return Err(refuse(format!(
                    "{feed_id:?} is not a feed id (df- and 6 lowercase letters or digits)"
                )));
            }
            let operations = operations
                .as_array()
                .filter(|operations| !operations.is_empty())
                .ok_or_else(|| refuse(format!("the value of {feed_id:?} is not a non-empty array")))?;
            let mut files = Vec::with_capacity(operations.len());
            for operation in operations {
                let fields = operation.as_object();
                let kind = fields
                    .and_then(|fields| fields.get("type"))
                    .and_then(|kind| kind.as_str());
                let file = fields
                    .and_then(|fields| fields.get("file"))
                    .and_then(|file| file.as_str())
                    .filter(|file| !file.is_empty());
                match (fields.map(|fields| fields.len()), kind, file) {
                    (Some(2), Some("load"), Some(file)) => files.push(file.to_string()),
                    _ => {
                        return Err(refuse(format!(
                            "{operation} is not {{\"type\": \"load\", \"file\": \"<file tag>\"}}"
                        )));
                    }
                }
            }
            feeds.insert(feed_id.clone(), files);
        }
        Ok(LoadOps { feeds })
    }

    /// The canonical JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        let object: serde_json::Map<String, serde_json::Value> = self
            .feeds
            .iter()
            .map(|(feed_id, files)| {
                let operations = files
                    .iter()
                    .map(|file| serde_json::json!({"type": "load", "file": file}))
                    .collect();
                (feed_id.clone(), serde_json::Value::Array(operations))
            })
            .collect();
        serde_json::Value::Object(object)
    }

    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }

    /// Refuses operations whose file is not the courier's file tag.
    fn check_file_tag(&self, file_tag: &str) -> Result<(), CourierError> {
        for (feed_id, files) in &self.feeds {
            if let Some(file) = files.iter().find(|file| *file != file_tag) {
                return Err(CourierError::invalid(
                    "file-tag-mismatch",
                    format!(
                        "the load operation for {feed_id} loads file {file:?}, but the courier's file tag is {file_tag:?}; they must be identical"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Serialize for LoadOps {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// True when `text` has a feed id's shape.
pub fn is_feed_id(text: &str) -> bool {
    text.strip_prefix(FEED_ID_PREFIX).is_some_and(|rest| {
        rest.len() == FEED_ID_RANDOM_CHARS
            && rest
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
    })
}

/// Parses a file pattern prefix: one or two digits, `00`–`23`.
pub fn parse_hour(text: &str) -> Result<u8, CourierError> {
    let refuse = || {
        CourierError::invalid(
            "invalid-hour",
            format!(
                "hour {text:?} is outside 00-23: files are kept in UTC hour folders 00 (midnight to 1 AM) to 23 (11 PM to midnight)"
            ),
        )
    };
    if text.is_empty() || text.len() > 2 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(refuse());
    }
    let hour: u8 = text.parse().map_err(|_| refuse())?;
    if hour > 23 {
        return Err(refuse());
    }
    Ok(hour)
}

/// A courier as `courier list` and `courier show` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CourierRecord {
    pub tenant: String,
    pub name: String,
    pub stream_id: String,
    pub format: FileFormat,
    pub file_tag: String,
    /// The hour folder (`00`–`23`) this courier is limited to, if any.
    #[serde(serialize_with = "serialize_hour")]
    pub hour: Option<u8>,
    pub load_ops: LoadOps,
    pub created_at: String,
    pub updated_at: String,
}

fn serialize_hour<S: serde::Serializer>(hour: &Option<u8>, serializer: S) -> Result<S::Ok, S::Error> {
    match hour {
        Some(hour) => serializer.serialize_str(&format!("{hour:02}")),
        None => serializer.serialize_none(),
    }
}

/// What `courier add` asks for.
#[derive(Clone, Debug)]
pub struct CourierSpec {
    pub name: String,
    pub stream_id: String,
    pub format: FileFormat,
    pub file_tag: String,
    pub hour: Option<u8>,
    pub load_ops: LoadOps,
}

/// What `courier edit` may change; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct CourierChanges {
    pub stream_id: Option<String>,
    pub format: Option<FileFormat>,
    pub file_tag: Option<String>,
    /// `Some(None)` removes the hour limit.
    pub hour: Option<Option<u8>>,
    pub load_ops: Option<LoadOps>,
}

/// Adds a courier after checking it against its stream.
pub fn courier_add(store: &mut Store, tenant: &str, spec: CourierSpec) -> Result<(), CourierError> {
    check_text("courier name", &spec.name)?;
    require_tenant(store.connection(), tenant)?;
    check_courier(store, tenant, &spec)?;
    let now = now_rfc3339();
    let inserted = store.mutate(|tx, _| {
        Ok(tx.execute(
            "INSERT INTO couriers (tenant, name, stream_id, format, file_tag, hour, load_ops, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) ON CONFLICT DO NOTHING",
            params![
                tenant,
                spec.name,
                spec.stream_id,
                spec.format.as_str(),
                spec.file_tag,
                spec.hour,
                spec.load_ops.to_json().to_string(),
                now
            ],
        )?)
    })?;
    if inserted == 0 {
        return Err(CourierError::CourierExists {
            tenant: tenant.to_string(),
            name: spec.name,
        });
    }
    Ok(())
}

/// Checks a courier's stream, format, file tag and load operations.
fn check_courier(store: &Store, tenant: &str, spec: &CourierSpec) -> Result<(), CourierError> {
    let stream = store.stream_show(tenant, &spec.stream_id)?;
    let expected = FileFormat::of_payload(stream.format);
    if spec.format != expected {
        return Err(CourierError::invalid(
            "format-mismatch",
            format!(
                "stream {} carries {} records, stored as {}; a courier of it must use --format {}",
                stream.id,
                stream.format.as_str(),
                expected.as_str(),
                expected.as_str()
            ),
        ));
    }
    check_text("file tag", &spec.file_tag)?;
    spec.load_ops.check_file_tag(&spec.file_tag)
}

/// Applies changes to a courier, checking the result as `add` would.
pub fn courier_edit(
    store: &mut Store,
    tenant: &str,
    name: &str,
    changes: CourierChanges,
) -> Result<CourierRecord, CourierError> {
    let current = courier_show(store, tenant, name)?;
    let spec = CourierSpec {
        name: current.name.clone(),
        stream_id: changes.stream_id.unwrap_or(current.stream_id),
        format: changes.format.unwrap_or(current.format),
        file_tag: changes.file_tag.unwrap_or(current.file_tag),
        hour: changes.hour.unwrap_or(current.hour),
        load_ops: changes.load_ops.unwrap_or(current.load_ops),
    };
    check_courier(store, tenant, &spec)?;
    let updated = store.mutate(|tx, _| {
        Ok(tx.execute(
            "UPDATE couriers SET stream_id = ?3, format = ?4, file_tag = ?5, hour = ?6, load_ops = ?7, updated_at = ?8 \
             WHERE tenant = ?1 AND name = ?2",
            params![
                tenant,
                name,
                spec.stream_id,
                spec.format.as_str(),
                spec.file_tag,
                spec.hour,
                spec.load_ops.to_json().to_string(),
                now_rfc3339()
            ],
        )?)
    })?;
    if updated == 0 {
        return Err(unknown_courier(tenant, name));
    }
    courier_show(store, tenant, name)
}

/// Deletes a courier and its sample list, unless a courier group runs it
/// (the group would fail at its next run); its runs stay as history.
pub fn courier_delete(store: &mut Store, tenant: &str, name: &str) -> Result<(), CourierError> {
    require_tenant(store.connection(), tenant)?;
    let groups: Vec<String> = {
        let mut statement = store.connection().prepare(
            "SELECT grp FROM courier_group_couriers WHERE tenant = ?1 AND courier = ?2 ORDER BY grp",
        )?;
        let rows = statement.query_map(params![tenant, name], |row| row.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    if !groups.is_empty() {
        let names: Vec<String> = groups.iter().map(|group| format!("{group:?}")).collect();
        return Err(CourierError::invalid(
            "courier-in-use",
            format!(
                "courier {name:?} runs in courier group {}; remove it from the group first",
                names.join(", ")
            ),
        ));
    }
    let deleted = store.mutate(|tx, _| {
        let deleted = tx.execute(
            "DELETE FROM couriers WHERE tenant = ?1 AND name = ?2",
            params![tenant, name],
        )?;
        tx.execute(
            "DELETE FROM courier_samples WHERE tenant = ?1 AND courier = ?2",
            params![tenant, name],
        )?;
        Ok(deleted)
    })?;
    if deleted == 0 {
        return Err(unknown_courier(tenant, name));
    }
    Ok(())
}

const COURIER_COLUMNS: &str =
    "tenant, name, stream_id, format, file_tag, hour, load_ops, created_at, updated_at";

/// The couriers of a tenant, by name.
pub fn courier_list(store: &Store, tenant: &str) -> Result<Vec<CourierRecord>, CourierError> {
    require_tenant(store.connection(), tenant)?;
    let mut statement = store.connection().prepare(&format!(
        "SELECT {COURIER_COLUMNS} FROM couriers WHERE tenant = ?1 ORDER BY name"
    ))?;
    let rows = statement.query_map([tenant], courier_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One courier.
pub fn courier_show(store: &Store, tenant: &str, name: &str) -> Result<CourierRecord, CourierError> {
    require_tenant(store.connection(), tenant)?;
    store
        .connection()
        .query_row(
            &format!("SELECT {COURIER_COLUMNS} FROM couriers WHERE tenant = ?1 AND name = ?2"),
            params![tenant, name],
            courier_row,
        )
        .optional()?
        .ok_or_else(|| unknown_courier(tenant, name))
}

fn courier_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CourierRecord> {
    let format: String = row.get(3)?;
    let load_ops: String = row.get(6)?;
    let corrupt = |index: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, what.into())
    };
    Ok(CourierRecord {
        tenant: row.get(0)?,
        name: row.get(1)?,
        stream_id: row.get(2)?,
        format: FileFormat::parse(&format).ok_or_else(|| corrupt(3, format!("courier format {format:?}")))?,
        file_tag: row.get(4)?,
        hour: row.get(5)?,
        load_ops: LoadOps::parse(&load_ops).map_err(|error| corrupt(6, error.to_string()))?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
    })
}

fn unknown_courier(tenant: &str, name: &str) -> CourierError {
    CourierError::UnknownCourier {
        tenant: tenant.to_string(),
        name: name.to_string(),
    }
}

/// A feed as `feed list` and `feed show` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeedRecord {
    pub id: String,
    pub tenant: String,
    /// The data source name (`Streaming Ingest`).
    pub source: String,
    /// The feed name (`WebEvents`).
    pub name: String,
    /// `<source>:<name>`.
    pub table: String,
    /// The sample file the schema was inferred from.
    pub sample_file: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    /// Column → semantic tag.
    pub tags: BTreeMap<String, String>,
    /// The last-updated column; `None` means the generated `updated`.
    pub updated_field: Option<String>,
    /// "Make available to Stitch".
    pub stitch: bool,
    pub query: Option<String>,
    pub active: bool,
    pub created_at: String,
    pub activated_at: Option<String>,
}

impl FeedRecord {
    /// What the loader needs to load into this feed's table.
    pub fn table_spec(&self) -> TableSpec {
        TableSpec {
            name: self.table.clone(),
            columns: self.columns.clone(),
            primary_key: self.primary_key.clone(),
            last_updated: match &self.updated_field {
                Some(field) => LastUpdated::Field(field.clone()),
                None => LastUpdated::Generated,
            },
            query: self.query.clone(),
        }
    }
}

/// What `feed add` asks for.
#[derive(Clone, Debug)]
pub struct FeedDraft {
    pub source: String,
    pub name: String,
    pub sample_file: PathBuf,
    pub primary_key: Vec<String>,
    pub tags: BTreeMap<String, String>,
    /// `None` generates `updated`.
    pub updated_field: Option<String>,
    pub stitch: bool,
    pub query: Option<String>,
}

/// What `feed edit` may change; `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct FeedChanges {
    pub sample_file: Option<PathBuf>,
    pub primary_key: Option<Vec<String>>,
    /// Tags to set (column → tag).
    pub tags_set: BTreeMap<String, String>,
    /// Columns whose tag is removed.
    pub tags_unset: Vec<String>,
    /// `Some(None)` switches to the generated `updated`.
    pub updated_field: Option<Option<String>>,
    pub stitch: Option<bool>,
    /// `Some(None)` removes the saved query.
    pub query: Option<Option<String>>,
}

/// Infers a feed's schema from its sample, checks it and adds it
/// (inactive); returns its id.
pub fn feed_add(store: &mut Store, tenant: &str, draft: FeedDraft) -> Result<String, CourierError> {
    require_tenant(store.connection(), tenant)?;
    check_text("data source name", &draft.source)?;
    check_text("feed name", &draft.name)?;
    for (what, text) in [("data source name", &draft.source), ("feed name", &draft.name)] {
        if text.contains(':') {
            return Err(CourierError::invalid(
                "invalid-text",
                format!("{what} {text:?} contains ':', which separates source and feed in the table name"),
            ));
        }
    }
    let table = format!("{}:{}", draft.source, draft.name);
    let sample_file = absolute(&draft.sample_file)?;
    check_sample_owner(store.data_dir(), tenant, &sample_file)?;
    let columns = tables::infer_columns(&sample_file, draft.query.as_deref())?;
    let feed = FeedRecord {
        id: String::new(),
        tenant: tenant.to_string(),
        source: draft.source,
        name: draft.name,
        table,
        sample_file: sample_file.to_string_lossy().into_owned(),
        columns,
        primary_key: draft.primary_key,
        tags: draft.tags,
        updated_field: draft.updated_field,
        stitch: draft.stitch,
        query: draft.query,
        active: false,
        created_at: now_rfc3339(),
        activated_at: None,
    };
    check_feed(&feed)?;
    if table_taken(store, tenant, &feed.table, None)? {
        return Err(CourierError::FeedExists {
            tenant: tenant.to_string(),
            table: feed.table,
        });
    }
    let id = store.mutate(|tx, random| {
        let id = unused_feed_id(tx, random)?;
        tx.execute(
            "INSERT INTO feeds (id, tenant, source, name, table_name, sample_file, columns, primary_key, tags, \
             updated_field, stitch, query, active, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, ?13)",
            params![
                id,
                tenant,
                feed.source,
                feed.name,
                feed.table,
                feed.sample_file,
                json_text(&feed.columns),
                json_text(&feed.primary_key),
                json_text(&feed.tags),
                feed.updated_field,
                feed.stitch,
                feed.query,
                feed.created_at
            ],
        )?;
        Ok(id)
    })?;
    Ok(id)
}

/// Applies changes to a feed. An active feed's table exists, so only tags
/// and the Stitch flag may change on it.
pub fn feed_edit(
    store: &mut Store,
    tenant: &str,
    id: &str,
    changes: FeedChanges,
) -> Result<FeedRecord, CourierError> {
    let mut feed = feed_show(store, tenant, id)?;
    let reshapes = changes.sample_file.is_some()
        || changes.primary_key.is_some()
        || changes.updated_field.is_some()
        || changes.query.is_some();
    if feed.active && reshapes {
        return Err(CourierError::invalid(
            "feed-active",
            format!(
                "feed {id} is active and its table {:?} exists: only --tag, --untag and --stitch may change; delete and re-add the feed to change its sample, query, primary key or last-updated field",
                feed.table
            ),
        ));
    }
    if let Some(query) = changes.query {
        feed.query = query;
    }
    if let Some(sample) = changes.sample_file {
        let sample = absolute(&sample)?;
        check_sample_owner(store.data_dir(), tenant, &sample)?;
        feed.sample_file = sample.to_string_lossy().into_owned();
    }
    if reshapes {
        feed.columns = tables::infer_columns(Path::new(&feed.sample_file), feed.query.as_deref())?;
    }
    if let Some(primary_key) = changes.primary_key {
        feed.primary_key = primary_key;
    }
    if let Some(updated_field) = changes.updated_field {
        feed.updated_field = updated_field;
    }
    if let Some(stitch) = changes.stitch {
        feed.stitch = stitch;
    }
    for column in &changes.tags_unset {
        feed.tags.remove(column);
    }
    feed.tags.extend(changes.tags_set);
    check_feed(&feed)?;
    store.mutate(|tx, _| {
        tx.execute(
            "UPDATE feeds SET sample_file = ?3, columns = ?4, primary_key = ?5, tags = ?6, updated_field = ?7, \
             stitch = ?8, query = ?9 WHERE tenant = ?1 AND id = ?2",
            params![
                tenant,
                id,
                feed.sample_file,
                json_text(&feed.columns),
                json_text(&feed.primary_key),
                json_text(&feed.tags),
                feed.updated_field,
                feed.stitch,
                feed.query
            ],
        )?;
        Ok(())
    })?;
    Ok(feed)
}

/// Marks a feed active. The caller creates its table first.
pub fn feed_set_active(store: &mut Store, tenant: &str, id: &str) -> Result<FeedRecord, CourierError> {
    feed_show(store, tenant, id)?;
    store.mutate(|tx, _| {
        tx.execute(
            "UPDATE feeds SET active = 1, activated_at = coalesce(activated_at, ?3) WHERE tenant = ?1 AND id = ?2",
            params![tenant, id, now_rfc3339()],
        )?;
        Ok(())
    })?;
    feed_show(store, tenant, id)
}

/// Deletes a feed, unless a courier's load operations name it. Returns the
/// deleted feed so the caller can drop its table.
pub fn feed_delete(store: &mut Store, tenant: &str, id: &str) -> Result<FeedRecord, CourierError> {
    let feed = feed_show(store, tenant, id)?;
    if let Some(courier) = courier_list(store, tenant)?
        .into_iter()
        .find(|courier| courier.load_ops.feeds.contains_key(id))
    {
        return Err(CourierError::invalid(
            "feed-in-use",
            format!(
                "feed {id} is in the load operations of courier {:?}; edit them first",
                courier.name
            ),
        ));
    }
    store.mutate(|tx, _| {
        tx.execute(
            "DELETE FROM feeds WHERE tenant = ?1 AND id = ?2",
            params![tenant, id],
        )?;
        Ok(())
    })?;
    Ok(feed)
}

const FEED_COLUMNS: &str = "id, tenant, source, name, table_name, sample_file, columns, primary_key, tags, \
                            updated_field, stitch, query, active, created_at, activated_at";

/// The feeds of a tenant, by table name.
pub fn feed_list(store: &Store, tenant: &str) -> Result<Vec<FeedRecord>, CourierError> {
    require_tenant(store.connection(), tenant)?;
    let mut statement = store.connection().prepare(&format!(
        "SELECT {FEED_COLUMNS} FROM feeds WHERE tenant = ?1 ORDER BY table_name"
    ))?;
    let rows = statement.query_map([tenant], feed_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One feed.
pub fn feed_show(store: &Store, tenant: &str, id: &str) -> Result<FeedRecord, CourierError> {
    require_tenant(store.connection(), tenant)?;
    store
        .connection()
        .query_row(
            &format!("SELECT {FEED_COLUMNS} FROM feeds WHERE tenant = ?1 AND id = ?2"),
            params![tenant, id],
            feed_row,
        )
        .optional()?
        .ok_or_else(|| CourierError::UnknownFeed {
            tenant: tenant.to_string(),
            id: id.to_string(),
        })
}

fn feed_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<FeedRecord> {
    fn json<T: serde::de::DeserializeOwned>(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<T> {
        let text: String = row.get(index)?;
        serde_json::from_str(&text).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(error))
        })
    }
    Ok(FeedRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        source: row.get(2)?,
        name: row.get(3)?,
        table: row.get(4)?,
        sample_file: row.get(5)?,
        columns: json(row, 6)?,
        primary_key: json(row, 7)?,
        tags: json(row, 8)?,
        updated_field: row.get(9)?,
        stitch: row.get(10)?,
        query: row.get(11)?,
        active: row.get(12)?,
        created_at: row.get(13)?,
        activated_at: row.get(14)?,
    })
}

/// Checks a feed's key, tags and last-updated field against its columns.
fn check_feed(feed: &FeedRecord) -> Result<(), CourierError> {
    let known = |column: &str| feed.columns.iter().any(|known| known.name == column);
    let names = || {
        feed.columns
            .iter()
            .map(|column| column.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let unknown = |what: &str, column: &str| {
        CourierError::invalid(
            "unknown-column",
            format!(
                "{what} {column:?} is not a column of the sample (columns: {})",
                names()
            ),
        )
    };
    if feed.primary_key.is_empty() {
        return Err(CourierError::invalid(
            "invalid-primary-key",
            "a feed needs a primary key",
        ));
    }
    for column in &feed.primary_key {
        if !known(column) {
            return Err(unknown("primary key", column));
        }
    }
    for (column, tag) in &feed.tags {
        if !known(column) {
            return Err(unknown("tagged column", column));
        }
        if !SEMANTIC_TAGS.contains(&tag.as_str()) {
            return Err(CourierError::invalid(
                "unknown-tag",
                format!(
                    "{tag:?} is not a semantic tag (known: {})",
                    SEMANTIC_TAGS.join(", ")
                ),
            ));
        }
    }
    match &feed.updated_field {
        Some(field) if !known(field) => Err(unknown("last-updated field", field)),
        Some(_) => Ok(()),
        None if feed
            .columns
            .iter()
            .any(|column| column.name.eq_ignore_ascii_case(GENERATED_UPDATED_COLUMN)) =>
        {
            Err(CourierError::invalid(
                "updated-column-exists",
                "the sample already has a column \"updated\"; use --updated-field updated instead of --generate-updated",
            ))
        }
        None => Ok(()),
    }
}

/// True when another feed of the tenant has this table (case-insensitively).
fn table_taken(store: &Store, tenant: &str, table: &str, except: Option<&str>) -> Result<bool, CourierError> {
    let found: Option<String> = store
        .connection()
        .query_row(
            "SELECT id FROM feeds WHERE tenant = ?1 AND table_name = ?2",
            params![tenant, table],
            |row| row.get(0),
        )
        .optional()?;
    Ok(found.is_some_and(|id| Some(id.as_str()) != except))
}

fn unused_feed_id(tx: &rusqlite::Connection, random: &SystemRandom) -> Result<String, StoreError> {
    for _ in 0..ID_ATTEMPTS_MAX {
        let id = format!("{FEED_ID_PREFIX}{}", random_chars(random, FEED_ID_RANDOM_CHARS)?);
        let taken = tx
            .query_row("SELECT 1 FROM feeds WHERE id = ?1", [&id], |_| Ok(()))
            .optional()?
            .is_some();
        if !taken {
            return Ok(id);
        }
    }
    Err(StoreError::IdsExhausted)
}

/// A courier run as `run list` and `run show` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub tenant: String,
    pub courier: String,
    /// `manual`, or what the scheduler passes (`group:<name>`).
    pub trigger: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// The window as the operator gave it (`day 2026-01-31`, …).
    pub window: String,
    pub files: u64,
    pub records: u64,
    pub rejected: u64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// `Completed in …`, or why the run failed.
    pub message: String,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    pub succeeded: bool,
    pub files: u64,
    pub records: u64,
    pub rejected: u64,
    pub duration_ms: u64,
    pub message: String,
}

/// The message of a run whose process died before it finished.
pub const INTERRUPTED_MESSAGE: &str = "Interrupted: the process running it stopped before it finished";

/// Records a run's start and returns its id, and the ids of earlier runs
/// of the courier still marked `running` whose process is gone: those are
/// marked failed first (their files and records are the caller's to fill
/// in with [`run_set_loaded`], from the ledger the files were loaded with).
pub fn run_start(
    store: &mut Store,
    tenant: &str,
    courier: &str,
    trigger: &str,
    window: &str,
) -> Result<(String, Vec<String>), CourierError> {
    let running: Vec<(String, i64)> = {
        let mut statement = store.connection().prepare(
            "SELECT id, pid FROM courier_runs WHERE tenant = ?1 AND courier = ?2 AND status = 'running'",
        )?;
        let rows = statement.query_map(params![tenant, courier], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let dead: Vec<String> = running
        .into_iter()
        .filter(|(_, pid)| !process_alive(*pid))
        .map(|(id, _)| id)
        .collect();
    let pid = i64::from(std::process::id());
    let id = store.mutate(|tx, random| {
        let now = now_rfc3339();
        for id in &dead {
            tx.execute(
                "UPDATE courier_runs SET status = 'failed', finished_at = ?2, message = ?3 WHERE id = ?1",
                params![id, now, INTERRUPTED_MESSAGE],
            )?;
        }
        let id = format!("{RUN_ID_PREFIX}{}", random_chars(random, RUN_ID_RANDOM_CHARS)?);
        tx.execute(
            "INSERT INTO courier_runs (id, tenant, courier, triggered_by, status, time_window, started_at, pid) \
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7)",
            params![id, tenant, courier, trigger, window, now, pid],
        )?;
        Ok(id)
    })?;
    Ok((id, dead))
}

/// Sets what an interrupted run had loaded when its process died.
pub fn run_set_loaded(
    store: &mut Store,
    tenant: &str,
    id: &str,
    files: u64,
    records: u64,
    rejected: u64,
) -> Result<(), CourierError> {
    store.mutate(|tx, _| {
        tx.execute(
            "UPDATE courier_runs SET files = ?3, records = ?4, rejected = ?5 WHERE tenant = ?1 AND id = ?2",
            params![tenant, id, files as i64, records as i64, rejected as i64],
        )?;
        Ok(())
    })?;
    Ok(())
}

/// Records how a run ended.
pub fn run_finish(
    store: &mut Store,
    tenant: &str,
    id: &str,
    outcome: &RunOutcome,
) -> Result<(), CourierError> {
    store.mutate(|tx, _| {
        tx.execute(
            "UPDATE courier_runs SET status = ?3, files = ?4, records = ?5, rejected = ?6, finished_at = ?7, \
             duration_ms = ?8, message = ?9 WHERE tenant = ?1 AND id = ?2",
            params![
                tenant,
                id,
                if outcome.succeeded { "succeeded" } else { "failed" },
                outcome.files as i64,
                outcome.records as i64,
                outcome.rejected as i64,
                now_rfc3339(),
                outcome.duration_ms as i64,
                outcome.message
            ],
        )?;
        Ok(())
    })?;
    Ok(())
}

const RUN_COLUMNS: &str = "id, tenant, courier, triggered_by, status, time_window, files, records, rejected, \
                           started_at, finished_at, duration_ms, message";

/// A tenant's runs, newest first, optionally of one courier.
pub fn run_list(store: &Store, tenant: &str, courier: Option<&str>) -> Result<Vec<RunRecord>, CourierError> {
    require_tenant(store.connection(), tenant)?;
    let mut statement = store.connection().prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM courier_runs WHERE tenant = ?1 AND (?2 IS NULL OR courier = ?2) \
         ORDER BY started_at DESC, rowid DESC"
    ))?;
    let rows = statement.query_map(params![tenant, courier], run_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One run.
pub fn run_show(store: &Store, tenant: &str, id: &str) -> Result<RunRecord, CourierError> {
    require_tenant(store.connection(), tenant)?;
    store
        .connection()
        .query_row(
            &format!("SELECT {RUN_COLUMNS} FROM courier_runs WHERE tenant = ?1 AND id = ?2"),
            params![tenant, id],
            run_row,
        )
        .optional()?
        .ok_or_else(|| CourierError::UnknownRun {
            tenant: tenant.to_string(),
            id: id.to_string(),
        })
}

fn run_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let count = |index: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(index)?.max(0) as u64) };
    Ok(RunRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        courier: row.get(2)?,
        trigger: row.get(3)?,
        status: row.get(4)?,
        window: row.get(5)?,
        files: count(6)?,
        records: count(7)?,
        rejected: count(8)?,
        started_at: row.get(9)?,
        finished_at: row.get(10)?,
        duration_ms: row.get::<_, Option<i64>>(11)?.map(|ms| ms.max(0) as u64),
        message: row.get(12)?,
    })
}

/// A sample file of a courier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SampleRecord {
    pub path: String,
    /// The run that picked it.
    pub run_id: String,
    pub added_at: String,
}

/// Remembers files a run picked as the courier's sample files; `files` are
/// (absolute path, sort key) pairs, the key ordering files by age.
pub fn samples_add(
    store: &mut Store,
    tenant: &str,
    courier: &str,
    run_id: &str,
    files: &[(String, String)],
) -> Result<(), CourierError> {
    if files.is_empty() {
        return Ok(());
    }
    store.mutate(|tx, _| {
        let now = now_rfc3339();
        {
            let mut insert = tx.prepare(
                "INSERT INTO courier_samples (tenant, courier, path, sort_key, run_id, added_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )?;
            for (path, sort_key) in files {
                insert.execute(params![tenant, courier, path, sort_key, run_id, now])?;
            }
        }
        tx.execute(
            "DELETE FROM courier_samples WHERE tenant = ?1 AND courier = ?2 AND path NOT IN \
             (SELECT path FROM courier_samples WHERE tenant = ?1 AND courier = ?2 ORDER BY sort_key DESC LIMIT ?3)",
            params![tenant, courier, SAMPLES_PER_COURIER_MAX as i64],
        )?;
        Ok(())
    })?;
    Ok(())
}

/// A courier's sample files, newest first.
pub fn samples_list(store: &Store, tenant: &str, courier: &str) -> Result<Vec<SampleRecord>, CourierError> {
    courier_show(store, tenant, courier)?;
    let mut statement = store.connection().prepare(
        "SELECT path, run_id, added_at FROM courier_samples WHERE tenant = ?1 AND courier = ?2 \
         ORDER BY sort_key DESC, path DESC",
    )?;
    let rows = statement.query_map(params![tenant, courier], |row| {
        Ok(SampleRecord {
            path: row.get(0)?,
            run_id: row.get(1)?,
            added_at: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// True when a process with this id exists (signal 0 checks without
/// sending anything). A reused pid makes a dead run look alive until the
/// pid's new owner exits, which only delays marking it interrupted.
fn process_alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 performs only the permission and existence
    // check; it has no effect on the target process.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// `count` characters drawn uniformly from [`ID_ALPHABET`]: a byte is used
/// only below 252 (7 × 36), so no character is favoured.
fn random_chars(random: &dyn SecureRandom, count: usize) -> Result<String, RandomError> {
    let mut out = String::with_capacity(count);
    let mut bytes = [0u8; 32];
    while out.len() < count {
        random.fill(&mut bytes).map_err(|_| RandomError)?;
        for &byte in &bytes {
            if byte < 252 && out.len() < count {
                out.push(char::from(ID_ALPHABET[usize::from(byte) % ID_ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// Refuses empty, over-long and control-character names.
fn check_text(what: &str, text: &str) -> Result<(), CourierError> {
    let reason = if text.trim().is_empty() {
        format!("{what} is empty")
    } else if text.chars().count() > NAME_CHARS_MAX {
        format!("{what} is longer than {NAME_CHARS_MAX} characters")
    } else if text.chars().any(char::is_control) {
        format!("{what} contains a control character")
    } else {
        return Ok(());
    };
    Err(CourierError::invalid("invalid-text", reason))
}

/// A sample path made absolute, so the feed still finds it when the CLI
/// runs from another directory.
/// Refuses a sample file that lies in another tenant's part of the data
/// directory (SPEC §2: nothing crosses tenants): its schema and, at
/// activation, its records would reach this tenant's tables. Files of the
/// tenant itself and files outside the data directory (an operator's own
/// sample) are fine.
fn check_sample_owner(data_dir: &Path, tenant: &str, sample: &Path) -> Result<(), CourierError> {
    let (Ok(sample), Ok(tenants)) = (
        std::fs::canonicalize(sample),
        std::fs::canonicalize(data_dir.join("tenants")),
    ) else {
        // A sample that does not exist fails when it is read, with its
        // own message; without a tenants folder nobody owns anything yet.
        return Ok(());
    };
    let Ok(inside) = sample.strip_prefix(&tenants) else {
        return Ok(());
    };
    match inside.components().next() {
        Some(std::path::Component::Normal(owner)) if owner != tenant => Err(CourierError::invalid(
            "sample-of-another-tenant",
            format!(
                "sample file {} belongs to tenant {:?}; a feed of tenant {tenant:?} may only read that tenant's files",
                sample.display(),
                owner.to_string_lossy()
            ),
        )),
        _ => Ok(()),
    }
}

fn absolute(path: &Path) -> Result<PathBuf, CourierError> {
    std::path::absolute(path).map_err(|error| {
        CourierError::Tables(TablesError::Io {
            path: path.to_path_buf(),
            error,
        })
    })
}

fn json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serialising plain data cannot fail")
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let unique = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "sluice-couriers-test-{}-{label}-{unique}",
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

    fn store(label: &str) -> (TempDir, Store, String, String) {
        let dir = TempDir::new(label);
        let mut store = Store::open(&dir.0).expect("open");
        store.tenant_add("acme").expect("tenant");
        let json = store
            .stream_add("acme", "web", PayloadFormat::Json, "")
            .expect("stream");
        let xml = store
            .stream_add("acme", "profiles", PayloadFormat::Xml, "")
            .expect("stream");
        (dir, store, json, xml)
    }

    fn spec(stream: &str, format: FileFormat, load_ops: &str) -> CourierSpec {
        CourierSpec {
            name: "Streaming Ingest".to_string(),
            stream_id: stream.to_string(),
            format,
            file_tag: "web-events".to_string(),
            hour: None,
            load_ops: LoadOps::parse(load_ops).expect("load ops"),
        }
    }

    #[test]
    fn load_ops_shape_table() {
        /// (load ops text, feed id → file tags)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a [&'a str])]);
        let good: &[Case] = &[
            ("{}", &[]),
            (
                r#"{"df-xxxxxx": [{"type": "load", "file": "web-events"}]}"#,
                &[("df-xxxxxx", &["web-events"])],
            ),
            (
                r#"{"df-a1b2c3": [{"file": "t", "type": "load"}, {"type": "load", "file": "u"}], "df-000000": [{"type":"load","file":"t"}]}"#,
                &[("df-000000", &["t"]), ("df-a1b2c3", &["t", "u"])],
            ),
        ];
        for (text, expected) in good {
            let parsed = LoadOps::parse(text).expect(text);
            let expected: BTreeMap<String, Vec<String>> = expected
                .iter()
                .map(|(id, files)| (id.to_string(), files.iter().map(|f| f.to_string()).collect()))
                .collect();
            assert_eq!(parsed.feeds, expected, "{text}");
            assert_eq!(
                LoadOps::parse(&parsed.to_json().to_string()).expect("round trip"),
                parsed
            );
        }
        let bad: &[(&str, &str)] = &[
            ("df-xxxxxx", "not JSON"),
            ("[]", "not a JSON object"),
            (
                r#"{"feed": [{"type": "load", "file": "t"}]}"#,
                "\"feed\" is not a feed id",
            ),
            (
                r#"{"df-XXXXXX": [{"type": "load", "file": "t"}]}"#,
                "is not a feed id",
            ),
            (r#"{"df-xxxxxx": []}"#, "is not a non-empty array"),
            (r#"{"df-xxxxxx": {"type": "load"}}"#, "is not a non-empty array"),
            (
                r#"{"df-xxxxxx": [{"type": "copy", "file": "t"}]}"#,
                "is not {\"type\"",
            ),
            (r#"{"df-xxxxxx": [{"type": "load"}]}"#, "is not {\"type\""),
            (
                r#"{"df-xxxxxx": [{"type": "load", "file": ""}]}"#,
                "is not {\"type\"",
            ),
            (
                r#"{"df-xxxxxx": [{"type": "load", "file": "t", "x": 1}]}"#,
                "is not {\"type\"",
            ),
        ];
        for (text, fragment) in bad {
            let message = LoadOps::parse(text).expect_err(text).to_string();
            assert!(message.starts_with("load operations must look like"), "{message}");
            assert!(message.contains(fragment), "{text}: {message}");
        }
    }

    #[test]
    fn hour_table() {
        let cases: &[(&str, Option<u8>)] = &[
            ("00", Some(0)),
            ("0", Some(0)),
            ("8", Some(8)),
            ("08", Some(8)),
            ("23", Some(23)),
            ("24", None),
            ("99", None),
            ("", None),
            ("-1", None),
            ("008", None),
            ("1a", None),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_hour(text).ok(), expected, "{text:?}");
        }
        assert_eq!(
            parse_hour("24").expect_err("refused").to_string(),
            "hour \"24\" is outside 00-23: files are kept in UTC hour folders 00 (midnight to 1 AM) to 23 (11 PM to midnight)"
        );
    }

    #[test]
    fn couriers_are_checked_against_their_stream() {
        let (_dir, mut store, json, xml) = store("couriers");
        let placeholder = r#"{"df-xxxxxx": [{"type": "load", "file": "web-events"}]}"#;
        let cases: Vec<(CourierSpec, Result<(), String>)> = vec![
            (spec(&json, FileFormat::Ndjson, "{}"), Ok(())),
            (
                spec(&json, FileFormat::Ndjson, "{}"),
                Err("courier \"Streaming Ingest\" already exists in tenant \"acme\"".to_string()),
            ),
            (
                CourierSpec {
                    name: "xml".to_string(),
                    ..spec(&xml, FileFormat::Ndjson, "{}")
                },
                Err(format!(
                    "stream {xml} carries xml records, stored as cbor; a courier of it must use --format cbor"
                )),
            ),
            (
                CourierSpec {
                    name: "json-as-cbor".to_string(),
                    ..spec(&json, FileFormat::Cbor, "{}")
                },
                Err(format!(
                    "stream {json} carries json records, stored as ndjson; a courier of it must use --format ndjson"
                )),
            ),
            (
                CourierSpec {
                    name: "gone".to_string(),
                    ..spec("is-AAAAAAAA", FileFormat::Ndjson, "{}")
                },
                Err("no stream is-AAAAAAAA in tenant \"acme\"".to_string()),
            ),
            (
                CourierSpec {
                    name: "tag".to_string(),
                    ..spec(&json, FileFormat::Ndjson, r#"{"df-xxxxxx": [{"type": "load", "file": "other"}]}"#)
                },
                Err("the load operation for df-xxxxxx loads file \"other\", but the courier's file tag is \"web-events\"; they must be identical".to_string()),
            ),
            (
                CourierSpec {
                    name: "placeholder".to_string(),
                    hour: Some(8),
                    ..spec(&json, FileFormat::Ndjson, placeholder)
                },
                Ok(()),
            ),
            (
                CourierSpec {
                    name: "".to_string(),
                    ..spec(&json, FileFormat::Ndjson, "{}")
                },
                Err("courier name is empty".to_string()),
            ),
        ];
        for (spec, expected) in cases {
            let name = spec.name.clone();
            let outcome = courier_add(&mut store, "acme", spec).map_err(|error| error.to_string());
            assert_eq!(outcome, expected, "{name}");
        }
        let listed = courier_list(&store, "acme").expect("list");
        let names: Vec<&str> = listed.iter().map(|courier| courier.name.as_str()).collect();
        assert_eq!(names, ["Streaming Ingest", "placeholder"]);
        let json_text = serde_json::to_value(&listed[1]).expect("json");
        assert_eq!(json_text["hour"], "08");
        assert_eq!(json_text["format"], "ndjson");
        assert_eq!(
            json_text["load_ops"],
            serde_json::json!({"df-xxxxxx": [{"type": "load", "file": "web-events"}]})
        );

        let edited = courier_edit(
            &mut store,
            "acme",
            "placeholder",
            CourierChanges {
                hour: Some(None),
                load_ops: Some(LoadOps::default()),
                ..CourierChanges::default()
            },
        )
        .expect("edit");
        assert_eq!(edited.hour, None);
        assert!(edited.load_ops.is_empty());
        let refused = courier_edit(
            &mut store,
            "acme",
            "placeholder",
            CourierChanges {
                format: Some(FileFormat::Cbor),
                ..CourierChanges::default()
            },
        );
        assert_eq!(refused.expect_err("refused").kind(), "format-mismatch");
        courier_delete(&mut store, "acme", "placeholder").expect("delete");
        assert_eq!(
            courier_delete(&mut store, "acme", "placeholder")
                .expect_err("gone")
                .to_string(),
            "no courier \"placeholder\" in tenant \"acme\""
        );
    }

    #[test]
    fn feeds_are_checked_against_their_sample() {
        let (dir, mut store, json, _) = store("feeds");
        let sample = dir.0.join("sample.ndjson");
        std::fs::write(
            &sample,
            b"{\"id\":\"1\",\"email\":\"a@x\",\"ts\":\"2026\",\"updated\":1}\n",
        )
        .expect("write");
        let draft = |name: &str| FeedDraft {
            source: "Streaming Ingest".to_string(),
            name: name.to_string(),
            sample_file: sample.clone(),
            primary_key: vec!["id".to_string()],
            tags: BTreeMap::from([("email".to_string(), "email".to_string())]),
            updated_field: Some("ts".to_string()),
            stitch: true,
            query: None,
        };
        let cases: Vec<(FeedDraft, Result<(), &str>)> = vec![
            (
                FeedDraft {
                    primary_key: vec!["nope".to_string()],
                    ..draft("A")
                },
                Err("primary key \"nope\" is not a column of the sample (columns: id, email, ts, updated)"),
            ),
            (
                FeedDraft {
                    primary_key: vec![],
                    ..draft("A")
                },
                Err("a feed needs a primary key"),
            ),
            (
                FeedDraft {
                    tags: BTreeMap::from([("email".to_string(), "e-mail".to_string())]),
                    ..draft("A")
                },
                Err("\"e-mail\" is not a semantic tag"),
            ),
            (
                FeedDraft {
                    tags: BTreeMap::from([("mail".to_string(), "email".to_string())]),
                    ..draft("A")
                },
                Err("tagged column \"mail\" is not a column"),
            ),
            (
                FeedDraft {
                    updated_field: Some("when".to_string()),
                    ..draft("A")
                },
                Err("last-updated field \"when\" is not a column"),
            ),
            (
                FeedDraft {
                    updated_field: None,
                    ..draft("A")
                },
                Err("the sample already has a column \"updated\""),
            ),
            (draft("Web:Events"), Err("contains ':'")),
            (draft("WebEvents"), Ok(())),
            (
                draft("webevents"),
                Err("a feed of tenant \"acme\" already loads table \"Streaming Ingest:webevents\""),
            ),
        ];
        for (draft, expected) in cases {
            let outcome = feed_add(&mut store, "acme", draft.clone());
            match (outcome, expected) {
                (Ok(id), Ok(())) => {
                    assert!(is_feed_id(&id), "{id}");
                    let feed = feed_show(&store, "acme", &id).expect("show");
                    assert_eq!(feed.table, "Streaming Ingest:WebEvents");
                    assert_eq!(feed.columns.len(), 4);
                    assert!(!feed.active);
                    assert_eq!(
                        feed.table_spec().last_updated,
                        LastUpdated::Field("ts".to_string())
                    );
                }
                (Err(error), Err(fragment)) => {
                    assert!(error.to_string().contains(fragment), "{}: {error}", draft.name)
                }
                (outcome, expected) => panic!("{}: {outcome:?} vs {expected:?}", draft.name),
            }
        }
        // A sample in another tenant's part of the data directory is
        // refused (nothing crosses tenants); the tenant's own files are fine.
        let theirs = dir
            .0
            .join("tenants/globex/streams/is-AbCDefGH/2026-01-01/00/x.ndjson");
        let ours = dir
            .0
            .join("tenants/acme/streams/is-AbCDefGH/2026-01-01/00/x.ndjson");
        for path in [&theirs, &ours] {
            std::fs::create_dir_all(path.parent().expect("folder")).expect("mkdir");
            std::fs::copy(&sample, path).expect("copy");
        }
        let mut foreign = draft("Foreign");
        foreign.sample_file = dir
            .0
            .join("tenants/acme/../globex/streams/is-AbCDefGH/2026-01-01/00/x.ndjson");
        let error = feed_add(&mut store, "acme", foreign).expect_err("another tenant's file");
        assert!(
            error.to_string().contains("belongs to tenant \"globex\""),
            "{error}"
        );
        let mut own = draft("Own");
        own.sample_file = ours;
        feed_add(&mut store, "acme", own).expect("the tenant's own file");
        let feed = feed_list(&store, "acme").expect("list").remove(0);
        let courier = CourierSpec {
            load_ops: LoadOps::parse(&format!(
                r#"{{"{}": [{{"type": "load", "file": "web-events"}}]}}"#,
                feed.id
            ))
            .expect("ops"),
            ..spec(&json, FileFormat::Ndjson, "{}")
        };
        courier_add(&mut store, "acme", courier).expect("courier");
        feed_set_active(&mut store, "acme", &feed.id).expect("activate");
        let reshaped = feed_edit(
            &mut store,
            "acme",
            &feed.id,
            FeedChanges {
                primary_key: Some(vec!["email".to_string()]),
                ..FeedChanges::default()
            },
        );
        assert_eq!(reshaped.expect_err("active").kind(), "feed-active");
        let retagged = feed_edit(
            &mut store,
            "acme",
            &feed.id,
            FeedChanges {
                tags_unset: vec!["email".to_string()],
                tags_set: BTreeMap::from([("id".to_string(), "customer-id".to_string())]),
                stitch: Some(false),
                ..FeedChanges::default()
            },
        )
        .expect("retag");
        assert_eq!(
            retagged.tags,
            BTreeMap::from([("id".to_string(), "customer-id".to_string())])
        );
        assert!(!retagged.stitch);
        assert_eq!(
            feed_delete(&mut store, "acme", &feed.id)
                .expect_err("in use")
                .kind(),
            "feed-in-use"
        );
    }

    #[test]
    fn runs_are_recorded_and_dead_ones_marked_interrupted() {
        let (_dir, mut store, _, _) = store("runs");
        let (first, _) = run_start(&mut store, "acme", "c", "manual", "all").expect("start");
        assert!(first.starts_with("run-") && first.len() == 16, "{first}");
        // Pretend the first run's process died.
        store
            .connection()
            .execute("UPDATE courier_runs SET pid = 0 WHERE id = ?1", [&first])
            .expect("pid");
        let (second, dead) = run_start(&mut store, "acme", "c", "manual", "day 2026-01-01").expect("start");
        let outcome = RunOutcome {
            succeeded: true,
            files: 2,
            records: 10,
            rejected: 1,
            duration_ms: 1500,
            message: "Completed in 1 second".to_string(),
        };
        run_finish(&mut store, "acme", &second, &outcome).expect("finish");
        let runs = run_list(&store, "acme", Some("c")).expect("list");
        assert_eq!(runs.len(), 2);
        let shown = run_show(&store, "acme", &second).expect("show");
        assert_eq!(
            (
                shown.status.as_str(),
                shown.files,
                shown.records,
                shown.rejected,
                shown.duration_ms
            ),
            ("succeeded", 2, 10, 1, Some(1500))
        );
        assert_eq!(dead, std::slice::from_ref(&first));
        let interrupted = run_show(&store, "acme", &first).expect("show");
        assert_eq!(interrupted.status, "failed");
        assert_eq!(interrupted.message, INTERRUPTED_MESSAGE);
        // What it had loaded, as the caller found it in the ledger.
        run_set_loaded(&mut store, "acme", &first, 3, 30, 2).expect("set");
        let interrupted = run_show(&store, "acme", &first).expect("show");
        assert_eq!(
            (interrupted.files, interrupted.records, interrupted.rejected),
            (3, 30, 2)
        );
        assert!(run_list(&store, "acme", Some("other")).expect("list").is_empty());
        assert_eq!(
            run_show(&store, "acme", "run-x").expect_err("unknown").kind(),
            "unknown-run"
        );
    }

    #[test]
    fn samples_are_listed_newest_first_and_bounded() {
        let (_dir, mut store, json, _) = store("samples");
        courier_add(&mut store, "acme", spec(&json, FileFormat::Ndjson, "{}")).expect("courier");
        let files: Vec<(String, String)> = (0..SAMPLES_PER_COURIER_MAX + 5)
            .map(|index| {
                (
                    format!("/d/{index:04}.ndjson"),
                    format!("2026-01-01/00/{index:04}"),
                )
            })
            .collect();
        samples_add(&mut store, "acme", "Streaming Ingest", "run-1", &files).expect("add");
        let listed = samples_list(&store, "acme", "Streaming Ingest").expect("list");
        assert_eq!(listed.len(), SAMPLES_PER_COURIER_MAX);
        assert_eq!(
            listed[0].path,
            format!("/d/{:04}.ndjson", SAMPLES_PER_COURIER_MAX + 4)
        );
        assert_eq!(listed.last().expect("last").path, "/d/0005.ndjson");
    }

    #[test]
    fn random_ids_use_the_alphabet() {
        let random = SystemRandom::new();
        for _ in 0..50 {
            let id = format!(
                "df-{}",
                random_chars(&random, FEED_ID_RANDOM_CHARS).expect("random")
            );
            assert!(is_feed_id(&id), "{id}");
        }
    }
}
