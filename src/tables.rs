//! Domain tables: where a tenant's loaded records live, in one embedded
//! SQLite database per tenant at `<data-dir>/tenants/<tenant>/tables.db`.
//!
//! This module owns the table side of SPEC §5 and promises:
//! - **Schema inference.** A feed's columns come from a sample file: without
//!   a saved query, every top-level key of the sample's records becomes a
//!   column in order of first appearance (SQLite's `json_each` walks keys in
//!   document order); with one, the query's result columns are the columns.
//!   Types are `INTEGER` (integers and booleans, as 0/1), `REAL` (numbers
//!   with a fraction or exponent; an integer column that also sees reals
//!   becomes `REAL`), and `TEXT` (strings, nested arrays and objects as their
//!   JSON text, and any column that sees both text and numbers). A column
//!   that is null in every sample record is `TEXT`. Two keys that differ only
//!   in case are refused: SQLite column names are case-insensitive.
//! - **Upsert, newest wins.** Rows are keyed by the feed's primary key. With a
//!   last-updated field, an incoming row replaces the stored one only when its
//!   value compares greater as SQLite compares values: numbers numerically,
//!   text bytewise (so ISO-8601 timestamps written in one format and zone
//!   order correctly); an incoming row without a value never replaces one
//!   with a value, and a stored row without a value is always replaced. With a
//!   generated `updated` column, the column holds the load time (RFC 3339,
//!   microseconds, UTC) and a row is replaced only when some other column
//!   differs, so a re-delivered record changes nothing. Within one file,
//!   later records count as newer.
//! - **Rejects, never silent drops.** A record that is not a JSON object,
//!   lacks a primary-key value, has a key the schema does not know, or holds
//!   a value its column cannot take (text in an `INTEGER` or `REAL` column,
//!   a fraction in an `INTEGER` column, a nested value in a number column)
//!   goes to the table `<table>:rejects` with the file, the record's 1-based
//!   index in the file (its line in NDJSON; with a saved query, the index of
//!   the query's result row), the reason and the record's text. Numbers and
//!   booleans in a `TEXT` column are kept as their JSON text.
//! - **Exactly once.** [`Tables::load_file`] loads one file into all its
//!   target tables and writes the ledger entry "courier C loaded file F" in
//!   the same transaction: either all of it is committed or none of it, so a
//!   process killed mid-file loads that file again from scratch next time,
//!   and a file in the ledger is never loaded again by that courier.
//! - **Saved queries** run over a TEMP staging table `raw(record TEXT)` that
//!   holds the file's records as JSON text (CBOR items rendered to JSON:
//!   byte strings as base64, tags dropped, map order kept).
//! - **Read-only looking.** [`Tables::select`] opens nothing writable and
//!   refuses any statement SQLite does not call read-only.
//!
//! The loader is the one hot loop here: it reuses one parse buffer and
//! prepared statements, binds values borrowed from the record, and commits
//! once per file (WAL, `synchronous = NORMAL`: a commit survives a process
//! crash; a power loss may lose the last commits, and with them their ledger
//! entries, so those files are loaded again — never twice).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Statement, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use simd_json::prelude::{TypedScalarValue, ValueAsScalar, Writable};

/// The database's file name inside a tenant's directory.
pub const TABLES_DB_FILE_NAME: &str = "tables.db";

/// The ledger of loaded files. The leading underscore keeps it apart from
/// domain tables, whose names always contain a `:`.
pub const LEDGER_TABLE: &str = "_sluice_ledger";

/// The suffix that turns a domain table's name into its rejects table's.
pub const REJECTS_SUFFIX: &str = ":rejects";

/// The column a feed with a generated last-updated field gets.
pub const GENERATED_UPDATED_COLUMN: &str = "updated";

/// How many records of a sample file schema inference reads. Ten thousand
/// records see every optional key of any realistic stream while keeping
/// `feed add` under a second.
pub const SAMPLE_RECORDS_MAX: usize = 10_000;

/// The most rows [`Tables::select`] returns; more are cut and reported as
/// truncated. The Data Explorer is for looking, not for exporting.
pub const SELECT_ROWS_MAX: usize = 10_000;

/// How long a statement waits for another process's write lock (a courier
/// run in the server beside one from the CLI) before failing. One file's
/// transaction holds the lock for at most a few seconds.
pub const BUSY_TIMEOUT_MS: u64 = 30_000;

/// The page cache of a writing connection, in KiB (memory per open
/// tables database, so per concurrent courier run).
pub const CACHE_KIB: i64 = 32 * 1024;

/// The JSON nesting simd-json accepts in a record; matches the ingest
/// converter, so every stored record parses.
const RECORD_DEPTH_MAX: usize = 1024;

/// The ledger's schema; `file` is the file's path relative to the tenant's
/// directory, so a moved data directory keeps its ledger.
const LEDGER_SQL: &str = "CREATE TABLE IF NOT EXISTS _sluice_ledger (
    courier   TEXT NOT NULL,
    file      TEXT NOT NULL,
    run_id    TEXT NOT NULL,
    records   INTEGER NOT NULL DEFAULT 0,
    rejected  INTEGER NOT NULL DEFAULT 0,
    loaded_at TEXT NOT NULL,
    PRIMARY KEY (courier, file)
)";

/// A column's SQLite type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ColumnType {
    Integer,
    Real,
    Text,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Integer => "INTEGER",
            ColumnType::Real => "REAL",
            ColumnType::Text => "TEXT",
        }
    }

    /// The type a column needs to hold values of both types.
    fn widen(self, other: ColumnType) -> ColumnType {
        match (self, other) {
            (a, b) if a == b => a,
            (ColumnType::Integer, ColumnType::Real) | (ColumnType::Real, ColumnType::Integer) => {
                ColumnType::Real
            }
            _ => ColumnType::Text,
        }
    }
}

/// One column of a domain table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
}

/// Which column says how new a row is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LastUpdated {
    /// A column of the data; the greatest value wins.
    Field(String),
    /// The generated `updated` column, set at load time.
    Generated,
}

/// Everything the loader needs to know about one domain table: its feed's
/// schema, key, last-updated rule and saved query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// `<source>:<feed>`.
    pub name: String,
    /// The data columns, in table order (the generated `updated` column is
    /// not among them).
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    pub last_updated: LastUpdated,
    /// SQL over `raw(record TEXT)` whose result columns are `columns`.
    pub query: Option<String>,
}

impl TableSpec {
    /// `<table>:rejects`.
    pub fn rejects_name(&self) -> String {
        format!("{}{REJECTS_SUFFIX}", self.name)
    }
}

/// Why a record went to the rejects table. Small and `Copy`: the loader
/// decides per record and formats only when it writes the reject row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misfit {
    /// The record is not valid JSON.
    InvalidJson,
    /// The record is JSON but not an object.
    NotObject,
    /// The record has a key that is not a column.
    UnknownColumn,
    /// A primary-key column is missing or null.
    MissingPrimaryKey,
    /// A value its column's type cannot hold.
    WrongType(ColumnType),
    /// A saved query produced a BLOB, which no column type holds.
    Blob,
}

impl Misfit {
    /// A machine-readable kind, kebab-case.
    pub fn kind(self) -> &'static str {
        match self {
            Misfit::InvalidJson => "invalid-json",
            Misfit::NotObject => "not-an-object",
            Misfit::UnknownColumn => "unknown-column",
            Misfit::MissingPrimaryKey => "missing-primary-key",
            Misfit::WrongType(_) => "wrong-type",
            Misfit::Blob => "blob-value",
        }
    }

    /// One human sentence.
    pub fn message(self) -> &'static str {
        match self {
            Misfit::InvalidJson => "the record is not valid JSON",
            Misfit::NotObject => "the record is not a JSON object",
            Misfit::UnknownColumn => "the record has a field the table has no column for",
            Misfit::MissingPrimaryKey => "a primary-key field is missing or null",
            Misfit::WrongType(ColumnType::Integer) => "an INTEGER column got a value that is not an integer",
            Misfit::WrongType(ColumnType::Real) => "a REAL column got a value that is not a number",
            Misfit::WrongType(ColumnType::Text) => "a TEXT column got a value it cannot hold",
            Misfit::Blob => "the saved query produced a binary value",
        }
    }
}

/// Why a table operation failed; each `Display` is one line.
#[derive(Debug)]
pub enum TablesError {
    /// A file could not be read or the tenant directory not created.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A sample file yields no usable schema.
    Sample {
        path: PathBuf,
        reason: String,
    },
    /// A saved query or `sql` statement was refused or failed.
    Query(String),
    /// No such table in this tenant's database.
    UnknownTable(String),
    /// A CBOR file holds bytes that are not a CBOR sequence.
    Cbor {
        path: PathBuf,
        index: u64,
    },
    Database(rusqlite::Error),
}

impl TablesError {
    /// A machine-readable kind, kebab-case.
    pub fn kind(&self) -> &'static str {
        match self {
            TablesError::Io { .. } => "io",
            TablesError::Sample { .. } => "bad-sample",
            TablesError::Query(_) => "bad-query",
            TablesError::UnknownTable(_) => "unknown-table",
            TablesError::Cbor { .. } => "bad-cbor",
            TablesError::Database(_) => "database",
        }
    }
}

impl fmt::Display for TablesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TablesError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            TablesError::Sample { path, reason } => write!(f, "sample file {}: {reason}", path.display()),
            TablesError::Query(reason) => write!(f, "{reason}"),
            TablesError::UnknownTable(name) => write!(f, "no table {name:?}"),
            TablesError::Cbor { path, index } => {
                write!(
                    f,
                    "{}: record {index} is not a complete CBOR item",
                    path.display()
                )
            }
            TablesError::Database(error) => write!(f, "tables database: {error}"),
        }
    }
}

impl std::error::Error for TablesError {}

impl From<rusqlite::Error> for TablesError {
    fn from(error: rusqlite::Error) -> TablesError {
        TablesError::Database(error)
    }
}

/// What loading one file into its tables did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadCounts {
    /// Records in the file, each counted once however many tables it
    /// was loaded into.
    pub records: u64,
    /// Rows written to rejects tables, summed over the tables.
    pub rejected: u64,
}

impl std::ops::AddAssign for LoadCounts {
    fn add_assign(&mut self, other: LoadCounts) {
        self.records += other.records;
        self.rejected += other.rejected;
    }
}

/// Names the ledger entry a load writes: "courier loaded file".
#[derive(Clone, Copy, Debug)]
pub struct LedgerEntry<'a> {
    pub courier: &'a str,
    /// The file's key (its path relative to the tenant directory).
    pub file: &'a str,
    pub run_id: &'a str,
}

/// A table as `table list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableInfo {
    pub name: String,
    pub rows: i64,
    pub columns: Vec<Column>,
}

/// Rows of a `SELECT`, values as JSON (blobs as base64 text).
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// True when more rows existed than were returned.
    pub truncated: bool,
}

/// A file's records as JSON text, in file order.
pub enum FileRecords {
    /// An NDJSON file's bytes: one record per non-empty line.
    Ndjson(Vec<u8>),
    /// A CBOR sequence's items, rendered to JSON.
    Cbor(Vec<String>),
}

impl FileRecords {
    /// Reads a file: `.cbor` as a CBOR sequence, anything else as NDJSON.
    pub fn read(path: &Path) -> Result<FileRecords, TablesError> {
        let bytes = std::fs::read(path).map_err(|error| TablesError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        if path.extension().is_some_and(|ext| ext == "cbor") {
            return cbor_to_json_texts(path, &bytes).map(FileRecords::Cbor);
        }
        Ok(FileRecords::Ndjson(bytes))
    }

    /// How many records the file holds.
    pub fn count(&self) -> u64 {
        let mut count = 0;
        let _ = self.for_each(|_, _| {
            count += 1;
            Ok::<(), ()>(())
        });
        count
    }

    /// Calls `each` with every record's 1-based index and text. Blank lines
    /// are not records but still count for NDJSON line numbers.
    pub fn for_each<E>(&self, mut each: impl FnMut(u64, &[u8]) -> Result<(), E>) -> Result<(), E> {
        match self {
            FileRecords::Ndjson(bytes) => {
                for (index, line) in bytes.split(|&byte| byte == b'\n').enumerate() {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        each(index as u64 + 1, line)?;
                    }
                }
            }
            FileRecords::Cbor(texts) => {
                for (index, text) in texts.iter().enumerate() {
                    each(index as u64 + 1, text.as_bytes())?;
                }
            }
        }
        Ok(())
    }
}

/// Renders each item of a CBOR sequence as JSON text.
fn cbor_to_json_texts(path: &Path, bytes: &[u8]) -> Result<Vec<String>, TablesError> {
    let mut texts = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let index = texts.len() as u64 + 1;
        let value: ciborium::Value = ciborium::from_reader(&mut rest).map_err(|_| TablesError::Cbor {
            path: path.to_path_buf(),
            index,
        })?;
        let mut text = String::new();
        write_cbor_as_json(&value, &mut text);
        texts.push(text);
    }
    Ok(texts)
}

/// Writes a CBOR value as JSON, keeping map order: text keys as they are,
/// other keys as their JSON text; byte strings as standard base64; tags
/// dropped (their content kept); NaN and infinities as null, which JSON
/// cannot spell otherwise; integers beyond 64 bits as their decimal digits.
pub fn write_cbor_as_json(value: &ciborium::Value, out: &mut String) {
    use ciborium::Value;
    let push_string = |text: &str, out: &mut String| {
        out.push_str(&serde_json::to_string(text).expect("serialising a str cannot fail"));
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Integer(integer) => out.push_str(&i128::from(*integer).to_string()),
        Value::Float(float) if float.is_finite() => match serde_json::Number::from_f64(*float) {
            Some(number) => out.push_str(&number.to_string()),
            None => out.push_str("null"),
        },
        Value::Float(_) => out.push_str("null"),
        Value::Text(text) => push_string(text, out),
        Value::Bytes(bytes) => push_string(&base64::engine::general_purpose::STANDARD.encode(bytes), out),
        Value::Tag(_, inner) => write_cbor_as_json(inner, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_cbor_as_json(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (index, (key, item)) in entries.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                match key {
                    Value::Text(text) => push_string(text, out),
                    other => {
                        let mut key_text = String::new();
                        write_cbor_as_json(other, &mut key_text);
                        push_string(&key_text, out);
                    }
                }
                out.push(':');
                write_cbor_as_json(item, out);
            }
            out.push('}');
        }
        // ciborium's Value is non-exhaustive; anything new is rendered as null
        // rather than guessed at.
        _ => out.push_str("null"),
    }
}

/// Quotes an SQL identifier: wrapped in double quotes, inner ones doubled.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Infers a feed's columns from a sample file: the first
/// [`SAMPLE_RECORDS_MAX`] records, through the saved query if there is one.
pub fn infer_columns(sample: &Path, query: Option<&str>) -> Result<Vec<Column>, TablesError> {
    let records = FileRecords::read(sample)?;
    let connection = Connection::open_in_memory()?;
    stage_raw(&connection, &records, SAMPLE_RECORDS_MAX)?;
    let sample_error = |reason: String| TablesError::Sample {
        path: sample.to_path_buf(),
        reason,
    };
    let mut columns: Vec<(String, Option<ColumnType>)> = Vec::new();
    let mut observe =
        |name: &str, observed: Option<ColumnType>| match columns.iter_mut().find(|(n, _)| n == name) {
            Some((_, known)) => {
                *known = match (*known, observed) {
                    (Some(a), Some(b)) => Some(a.widen(b)),
                    (a, b) => a.or(b),
                }
            }
            None => columns.push((name.to_string(), observed)),
        };
    match query {
        None => {
            let non_objects: i64 = connection.query_row(
                "SELECT count(*) FROM temp.raw WHERE json_valid(record) = 0 OR json_type(record) <> 'object'",
                [],
                |row| row.get(0),
            )?;
            if non_objects > 0 {
                return Err(sample_error(format!(
                    "{non_objects} of its records are not JSON objects"
                )));
            }
            let mut statement = connection.prepare(
                // An integer past 64 bits is read as a REAL: the column
                // must hold it (an INTEGER column would reject its own
                // sample's record).
                "SELECT j.key, CASE WHEN j.type = 'integer' AND typeof(j.atom) <> 'integer' THEN 'real' ELSE j.type END \
                 FROM temp.raw AS r, json_each(r.record) AS j ORDER BY r.rowid, j.id",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let name: String = row.get(0)?;
                let json_type: String = row.get(1)?;
                observe(&name, json_column_type(&json_type));
            }
        }
        Some(query) => {
            let mut statement = prepare_read_only(&connection, query)?;
            let names: Vec<String> = statement.column_names().map(str::to_string).collect();
            for name in &names {
                observe(name, None);
            }
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                for (index, name) in names.iter().enumerate() {
                    let observed = match row.get_ref(index)? {
                        ValueRef::Null => None,
                        ValueRef::Integer(_) => Some(ColumnType::Integer),
                        ValueRef::Real(_) => Some(ColumnType::Real),
                        ValueRef::Text(_) | ValueRef::Blob(_) => Some(ColumnType::Text),
                    };
                    observe(name, observed);
                }
            }
        }
    }
    if columns.is_empty() {
        return Err(sample_error("it has no records with fields".to_string()));
    }
    let mut seen: HashSet<String> = HashSet::new();
    for (name, _) in &columns {
        if name.is_empty() {
            return Err(sample_error(
                "a field has an empty name; rename it with a saved query".to_string(),
            ));
        }
        if !seen.insert(name.to_lowercase()) {
            return Err(sample_error(format!(
                "two fields are named {name:?} up to case, which SQLite cannot tell apart; rename one with a saved query"
            )));
        }
    }
    Ok(columns
        .into_iter()
        .map(|(name, column_type)| Column {
            name,
            column_type: column_type.unwrap_or(ColumnType::Text),
        })
        .collect())
}

/// The column type of a `json_each` type name; `None` for null.
fn json_column_type(json_type: &str) -> Option<ColumnType> {
    match json_type {
        "null" => None,
        "integer" | "true" | "false" => Some(ColumnType::Integer),
        "real" => Some(ColumnType::Real),
        _ => Some(ColumnType::Text),
    }
}

/// Prepares `sql` and refuses it unless SQLite calls it read-only and it is
/// one statement.
fn prepare_read_only<'c>(connection: &'c Connection, sql: &str) -> Result<Statement<'c>, TablesError> {
    let trimmed = sql.trim().trim_end_matches(';').trim_end();
    if trimmed.is_empty() {
        return Err(TablesError::Query("the query is empty".to_string()));
    }
    // rusqlite compiles what follows the first statement and refuses it
    // when it is another statement, without running either.
    let statement = connection.prepare(trimmed).map_err(|error| match error {
        rusqlite::Error::MultipleStatement => {
            TablesError::Query("only one statement may be run at a time".to_string())
        }
        error => TablesError::Query(format!("the query does not compile: {error}")),
    })?;
    if !statement.readonly() || statement.column_count() == 0 {
        return Err(TablesError::Query(
            "only read-only SELECT statements may be run here".to_string(),
        ));
    }
    Ok(statement)
}

/// Fills the TEMP staging table `raw(record TEXT)` with up to `records_max`
/// records of a file, replacing what it held.
fn stage_raw(connection: &Connection, records: &FileRecords, records_max: usize) -> Result<(), TablesError> {
    connection.execute_batch("CREATE TEMP TABLE IF NOT EXISTS raw (record TEXT); DELETE FROM temp.raw;")?;
    let mut insert = connection.prepare_cached("INSERT INTO temp.raw (record) VALUES (?1)")?;
    let mut staged = 0usize;
    records.for_each(|_, text| {
        if staged >= records_max {
            return Ok(());
        }
        staged += 1;
        // The text is bound as TEXT even if it is not UTF-8, so that the
        // query sees it and can decide; SQLite does not check encodings.
        insert.execute([String::from_utf8_lossy(text)])?;
        Ok::<(), TablesError>(())
    })
}

/// One tenant's tables database.
pub struct Tables {
    connection: Connection,
    /// Where it lives, for messages.
    path: PathBuf,
    /// simd-json's scratch space, reused across records.
    json_buffers: simd_json::Buffers,
    /// The current record's copy, parsed in place by simd-json (which
    /// rewrites escapes), so the file's bytes stay intact for rejects.
    scratch: Vec<u8>,
}

impl Tables {
    /// `<data-dir>/tenants/<tenant>/tables.db`.
    pub fn path_of(data_dir: &Path, tenant: &str) -> PathBuf {
        data_dir.join("tenants").join(tenant).join(TABLES_DB_FILE_NAME)
    }

    /// Opens (creating if needed) a tenant's tables database for writing.
    /// The caller has checked that the tenant exists.
    pub fn open(data_dir: &Path, tenant: &str) -> Result<Tables, TablesError> {
        let path = Tables::path_of(data_dir, tenant);
        let parent = path.parent().expect("the path has a tenant directory");
        std::fs::create_dir_all(parent).map_err(|error| TablesError::Io {
            path: parent.to_path_buf(),
            error,
        })?;
        create_private_file(&path).map_err(|error| TablesError::Io {
            path: path.clone(),
            error,
        })?;
        let connection = Connection::open(&path)?;
        connection.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        // A bigger page cache keeps a loading table's index pages in memory
        // across a whole file; SQLite's default is 2 MiB.
        connection.pragma_update(None, "cache_size", -CACHE_KIB)?;
        connection.execute_batch(LEDGER_SQL)?;
        Ok(Tables::with_connection(connection, path))
    }

    /// Opens a tenant's tables database read-only (creating an empty one
    /// first if the tenant has none yet). Nothing run on it can write.
    pub fn open_read_only(data_dir: &Path, tenant: &str) -> Result<Tables, TablesError> {
        let path = Tables::path_of(data_dir, tenant);
        if !path.exists() {
            drop(Tables::open(data_dir, tenant)?);
        }
        let connection = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        connection.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
        connection.pragma_update(None, "query_only", true)?;
        Ok(Tables::with_connection(connection, path))
    }

    fn with_connection(connection: Connection, path: PathBuf) -> Tables {
        Tables {
            connection,
            path,
            json_buffers: simd_json::Buffers::with_max_depth(1024, RECORD_DEPTH_MAX),
            scratch: Vec::new(),
        }
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a domain table and its rejects table if they do not exist.
    pub fn create(&mut self, spec: &TableSpec) -> Result<(), TablesError> {
        let mut definitions: Vec<String> = spec
            .columns
            .iter()
            .map(|column| {
                format!(
                    "{} {}",
                    quote_identifier(&column.name),
                    column.column_type.as_str()
                )
            })
            .collect();
        if spec.last_updated == LastUpdated::Generated {
            definitions.push(format!("{} TEXT", quote_identifier(GENERATED_UPDATED_COLUMN)));
        }
        let key: Vec<String> = spec
            .primary_key
            .iter()
            .map(|name| quote_identifier(name))
            .collect();
        definitions.push(format!("PRIMARY KEY ({})", key.join(", ")));
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} ({});
             CREATE TABLE IF NOT EXISTS {} (file TEXT NOT NULL, line INTEGER NOT NULL, reason TEXT NOT NULL, record TEXT, rejected_at TEXT NOT NULL, UNIQUE (file, line));",
            quote_identifier(&spec.name),
            definitions.join(", "),
            quote_identifier(&spec.rejects_name()),
        ))?;
        tx.commit()?;
        Ok(())
    }

    /// Drops a domain table and its rejects table, if they exist.
    pub fn drop_table(&mut self, name: &str) -> Result<(), TablesError> {
        self.connection.execute_batch(&format!(
            "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
            quote_identifier(name),
            quote_identifier(&format!("{name}{REJECTS_SUFFIX}"))
        ))?;
        Ok(())
    }

    /// The files a courier has loaded, by file key.
    pub fn loaded_files(&self, courier: &str) -> Result<HashSet<String>, TablesError> {
        let mut statement = self
            .connection
            .prepare("SELECT file FROM _sluice_ledger WHERE courier = ?1")?;
        let files = statement.query_map([courier], |row| row.get(0))?;
        Ok(files.collect::<Result<HashSet<String>, _>>()?)
    }

    /// The files a run loaded, and their records and rejected rows, as the
    /// ledger holds them.
    pub fn loaded_by_run(&self, run_id: &str) -> Result<(u64, LoadCounts), TablesError> {
        let (files, records, rejected): (i64, i64, i64) = self.connection.query_row(
            "SELECT COUNT(*), COALESCE(SUM(records), 0), COALESCE(SUM(rejected), 0) FROM _sluice_ledger \
             WHERE run_id = ?1",
            [run_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        Ok((
            count(files),
            LoadCounts {
                records: count(records),
                rejected: count(rejected),
            },
        ))
    }

    /// Forgets which files a courier loaded (the courier was deleted; a new
    /// courier of the same name starts afresh).
    pub fn forget_courier(&mut self, courier: &str) -> Result<(), TablesError> {
        self.connection
            .execute("DELETE FROM _sluice_ledger WHERE courier = ?1", [courier])?;
        Ok(())
    }

    /// Loads one file into every target table and, with a ledger entry,
    /// records it, all in one transaction. Returns `None` without loading
    /// anything when the ledger already holds the entry.
    pub fn load_file(
        &mut self,
        targets: &[&TableSpec],
        file: &Path,
        ledger: Option<LedgerEntry<'_>>,
    ) -> Result<Option<LoadCounts>, TablesError> {
        let records = FileRecords::read(file)?;
        // Rejects name the file by its canonical path: the activation sample
        // (a path as the operator typed it) and the same file found by a
        // courier run (under the data directory) are one file.
        let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let file_text = canonical.to_string_lossy();
        let loaded_at = now_micros();
        let Tables {
            connection,
            json_buffers,
            scratch,
            ..
        } = self;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(entry) = ledger {
            let inserted = tx.execute(
                "INSERT INTO _sluice_ledger (courier, file, run_id, loaded_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT DO NOTHING",
                params![entry.courier, entry.file, entry.run_id, loaded_at],
            )?;
            if inserted == 0 {
                // Another run loaded it since the caller looked; dropping the
                // transaction rolls back.
                return Ok(None);
            }
        }
        let mut counts = LoadCounts {
            records: records.count(),
            rejected: 0,
        };
        for spec in targets {
            let mut loader = Loader::new(&tx, spec, &file_text, &loaded_at)?;
            counts.rejected += match &spec.query {
                None => loader.load_json(&records, json_buffers, scratch)?,
                Some(query) => loader.load_query(&tx, query, &records)?,
            }
            .rejected;
        }
        if let Some(entry) = ledger {
            tx.execute(
                "UPDATE _sluice_ledger SET records = ?3, rejected = ?4 WHERE courier = ?1 AND file = ?2",
                params![
                    entry.courier,
                    entry.file,
                    counts.records as i64,
                    counts.rejected as i64
                ],
            )?;
        }
        tx.commit()?;
        Ok(Some(counts))
    }

    /// Domain and rejects tables, by name, with their row counts.
    pub fn list(&self) -> Result<Vec<TableInfo>, TablesError> {
        let names: Vec<String> = {
            let mut statement = self.connection.prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 AND name NOT LIKE '\\_sluice\\_%' ESCAPE '\\' ORDER BY name",
            )?;
            let rows = statement.query_map([], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut tables = Vec::with_capacity(names.len());
        for name in names {
            let rows: i64 = self.connection.query_row(
                &format!("SELECT count(*) FROM {}", quote_identifier(&name)),
                [],
                |row| row.get(0),
            )?;
            let columns = self.columns_of(&name)?;
            tables.push(TableInfo { name, rows, columns });
        }
        Ok(tables)
    }

    /// A table's columns as declared.
    fn columns_of(&self, name: &str) -> Result<Vec<Column>, TablesError> {
        let mut statement = self
            .connection
            .prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")?;
        let rows = statement.query_map([name], |row| {
            let declared: String = row.get(1)?;
            Ok(Column {
                name: row.get(0)?,
                column_type: match declared.to_ascii_uppercase().as_str() {
                    "INTEGER" => ColumnType::Integer,
                    "REAL" => ColumnType::Real,
                    _ => ColumnType::Text,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The first `limit` rows of a table, in load order.
    pub fn show(&self, name: &str, limit: usize) -> Result<QueryResult, TablesError> {
        let exists = self
            .connection
            .query_row(
                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1 AND name NOT LIKE '\\_sluice\\_%' ESCAPE '\\'",
                [name],
                |_| Ok(()),
            )
            .optional()?;
        if exists.is_none() {
            return Err(TablesError::UnknownTable(name.to_string()));
        }
        let sql = format!("SELECT * FROM {} LIMIT {limit}", quote_identifier(name));
        self.select(&sql, limit)
    }

    /// Runs one read-only statement and returns up to `rows_max` rows (at
    /// most [`SELECT_ROWS_MAX`]).
    pub fn select(&self, sql: &str, rows_max: usize) -> Result<QueryResult, TablesError> {
        let rows_max = rows_max.min(SELECT_ROWS_MAX);
        let mut statement = prepare_read_only(&self.connection, sql)?;
        let columns: Vec<String> = statement.column_names().map(str::to_string).collect();
        let mut rows = statement
            .query([])
            .map_err(|error| TablesError::Query(error.to_string()))?;
        let mut result = QueryResult {
            columns,
            rows: Vec::new(),
            truncated: false,
        };
        while let Some(row) = rows
            .next()
            .map_err(|error| TablesError::Query(error.to_string()))?
        {
            if result.rows.len() == rows_max {
                result.truncated = true;
                break;
            }
            let mut values = Vec::with_capacity(result.columns.len());
            for index in 0..result.columns.len() {
                values.push(json_of(row.get_ref(index)?));
            }
            result.rows.push(values);
        }
        Ok(result)
    }
}

/// An SQLite value as JSON: blobs as base64 text.
fn json_of(value: ValueRef<'_>) -> serde_json::Value {
    match value {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(integer) => integer.into(),
        ValueRef::Real(real) => {
            serde_json::Number::from_f64(real).map_or(serde_json::Value::Null, Into::into)
        }
        ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned().into(),
        ValueRef::Blob(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes).into(),
    }
}

/// The upsert of one table: one prepared statement per file, one parameter
/// per column (plus the generated `updated`).
fn upsert_sql(spec: &TableSpec) -> String {
    let table = quote_identifier(&spec.name);
    let mut names: Vec<String> = spec
        .columns
        .iter()
        .map(|column| quote_identifier(&column.name))
        .collect();
    if spec.last_updated == LastUpdated::Generated {
        names.push(quote_identifier(GENERATED_UPDATED_COLUMN));
    }
    let placeholders: Vec<String> = (1..=names.len()).map(|index| format!("?{index}")).collect();
    let key: Vec<String> = spec
        .primary_key
        .iter()
        .map(|name| quote_identifier(name))
        .collect();
    let others: Vec<&String> = names
        .iter()
        .zip(
            spec.columns
                .iter()
                .map(|column| Some(&column.name))
                .chain(std::iter::once(None)),
        )
        .filter(|(_, name)| !name.is_some_and(|name| spec.primary_key.contains(name)))
        .map(|(quoted, _)| quoted)
        .collect();
    let insert = format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({})",
        names.join(", "),
        placeholders.join(", "),
        key.join(", ")
    );
    if others.is_empty() {
        return format!("{insert} DO NOTHING");
    }
    let set: Vec<String> = others
        .iter()
        .map(|name| format!("{name} = excluded.{name}"))
        .collect();
    let condition = match &spec.last_updated {
        LastUpdated::Field(field) => {
            // Two values SQLite reads as times (ISO 8601 with or without
            // fractions and offsets: `…00Z`, `…00.500Z`, `…+02:00`) compare
            // as instants, to the millisecond; anything else as SQLite
            // compares values (numbers as numbers, text byte-wise).
            let field = quote_identifier(field);
            let (new, old) = (format!("excluded.{field}"), format!("{table}.{field}"));
            format!(
                "{old} IS NULL OR CASE WHEN julianday({new}) IS NOT NULL AND julianday({old}) IS NOT NULL THEN julianday({new}) > julianday({old}) ELSE {new} > {old} END"
            )
        }
        LastUpdated::Generated => {
            let generated = quote_identifier(GENERATED_UPDATED_COLUMN);
            let compared: Vec<String> = others
                .iter()
                .filter(|name| **name != &generated)
                .map(|name| format!("{table}.{name} IS NOT excluded.{name}"))
                .collect();
            if compared.is_empty() {
                return format!("{insert} DO NOTHING");
            }
            compared.join(" OR ")
        }
    };
    format!("{insert} DO UPDATE SET {} WHERE {condition}", set.join(", "))
}

/// Loads one file's records into one table inside the caller's transaction.
struct Loader<'t> {
    upsert: rusqlite::CachedStatement<'t>,
    reject: rusqlite::CachedStatement<'t>,
    spec: &'t TableSpec,
    /// Column index by name, for records whose keys come in any order.
    index: HashMap<&'t str, usize>,
    /// Whether each column got a value from the current record.
    bound: Vec<bool>,
    /// Indexes of the primary-key columns.
    key: Vec<usize>,
    file: &'t str,
    loaded_at: &'t str,
}

impl<'t> Loader<'t> {
    fn new(
        tx: &'t Connection,
        spec: &'t TableSpec,
        file: &'t str,
        loaded_at: &'t str,
    ) -> Result<Loader<'t>, TablesError> {
        let upsert = tx.prepare_cached(&upsert_sql(spec))?;
        let reject = tx.prepare_cached(&format!(
            // A file loaded again (the activation sample, later picked up
            // by a courier run) rejects the same records again: they are
            // already listed, so nothing changes, as in the domain table.
            "INSERT OR IGNORE INTO {} (file, line, reason, record, rejected_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            quote_identifier(&spec.rejects_name())
        ))?;
        let index: HashMap<&str, usize> = spec
            .columns
            .iter()
            .enumerate()
            .map(|(position, column)| (column.name.as_str(), position))
            .collect();
        let key = spec
            .primary_key
            .iter()
            .map(|name| {
                index.get(name.as_str()).copied().ok_or_else(|| {
                    TablesError::Query(format!("primary key {name:?} is not a column of {:?}", spec.name))
                })
            })
            .collect::<Result<Vec<usize>, TablesError>>()?;
        Ok(Loader {
            upsert,
            reject,
            spec,
            index,
            bound: vec![false; spec.columns.len()],
            key,
            file,
            loaded_at,
        })
    }

    /// Writes a reject row: the reason names the column when there is one.
    fn reject(
        &mut self,
        line: u64,
        misfit: Misfit,
        column: Option<&str>,
        record: &str,
    ) -> Result<(), TablesError> {
        let reason = match column {
            Some(column) => format!("{}: {} (column {column:?})", misfit.kind(), misfit.message()),
            None => format!("{}: {}", misfit.kind(), misfit.message()),
        };
        self.reject
            .execute(params![self.file, line as i64, reason, record, self.loaded_at])?;
        Ok(())
    }

    /// Binds the generated `updated` value if the table has one, then runs
    /// the upsert.
    fn finish_row(&mut self) -> Result<(), TablesError> {
        if self.spec.last_updated == LastUpdated::Generated {
            self.upsert
                .raw_bind_parameter(self.spec.columns.len() + 1, self.loaded_at)?;
        }
        self.upsert.raw_execute()?;
        Ok(())
    }

    /// The first primary-key column that got no value, if any.
    fn missing_key(&self) -> Option<usize> {
        self.key.iter().copied().find(|&position| !self.bound[position])
    }

    /// The path without a saved query: top-level keys are columns.
    fn load_json(
        &mut self,
        records: &FileRecords,
        buffers: &mut simd_json::Buffers,
        scratch: &mut Vec<u8>,
    ) -> Result<LoadCounts, TablesError> {
        let mut counts = LoadCounts::default();
        records.for_each(|line, text| {
            scratch.clear();
            scratch.extend_from_slice(text);
            let misfit = match simd_json::to_borrowed_value_with_buffers(scratch, buffers) {
                Err(_) => Some((Misfit::InvalidJson, None)),
                Ok(simd_json::BorrowedValue::Object(object)) => {
                    self.bound.iter_mut().for_each(|bound| *bound = false);
                    let mut misfit = None;
                    // Records of one stream almost always list their keys in
                    // the sample's order, so the column after the previous
                    // one is tried before the hash lookup.
                    let mut predicted = 0usize;
                    for (key, value) in object.iter() {
                        let position = match self.spec.columns.get(predicted) {
                            Some(column) if column.name == key.as_ref() => predicted,
                            _ => match self.index.get(key.as_ref()) {
                                Some(&position) => position,
                                None => {
                                    misfit = Some((Misfit::UnknownColumn, Some(key.to_string())));
                                    break;
                                }
                            },
                        };
                        predicted = position + 1;
                        let column_type = self.spec.columns[position].column_type;
                        match bind_json(&mut self.upsert, position + 1, column_type, value)? {
                            Ok(is_value) => self.bound[position] = is_value,
                            Err(error) => {
                                misfit = Some((error, Some(key.to_string())));
                                break;
                            }
                        }
                    }
                    if misfit.is_none() {
                        misfit = self.missing_key().map(|position| {
                            (
                                Misfit::MissingPrimaryKey,
                                Some(self.spec.columns[position].name.clone()),
                            )
                        });
                    }
                    if misfit.is_none() {
                        for position in 0..self.bound.len() {
                            if !self.bound[position] {
                                self.upsert
                                    .raw_bind_parameter(position + 1, rusqlite::types::Null)?;
                            }
                        }
                    }
                    misfit
                }
                Ok(_) => Some((Misfit::NotObject, None)),
            };
            match misfit {
                None => {
                    self.finish_row()?;
                    counts.records += 1;
                }
                Some((misfit, column)) => {
                    self.reject(line, misfit, column.as_deref(), &String::from_utf8_lossy(text))?;
                    counts.rejected += 1;
                }
            }
            Ok::<(), TablesError>(())
        })?;
        Ok(counts)
    }

    /// The path with a saved query: stage the records, run the query, load
    /// its rows by position.
    fn load_query(
        &mut self,
        tx: &Connection,
        query: &str,
        records: &FileRecords,
    ) -> Result<LoadCounts, TablesError> {
        stage_raw(tx, records, usize::MAX)?;
        let mut statement = prepare_read_only(tx, query)?;
        let names: Vec<String> = statement.column_names().map(str::to_string).collect();
        let expected: Vec<&str> = self
            .spec
            .columns
            .iter()
            .map(|column| column.name.as_str())
            .collect();
        if names != expected {
            return Err(TablesError::Query(format!(
                "the saved query of {:?} now returns columns {names:?}, not {expected:?}",
                self.spec.name
            )));
        }
        let mut counts = LoadCounts::default();
        let mut rows = statement.query([])?;
        let mut line = 0u64;
        while let Some(row) = rows.next()? {
            line += 1;
            let mut misfit = None;
            for (position, column) in self.spec.columns.iter().enumerate() {
                match bind_sql(
                    &mut self.upsert,
                    position + 1,
                    column.column_type,
                    row.get_ref(position)?,
                )? {
                    Ok(is_value) => self.bound[position] = is_value,
                    Err(error) => {
                        misfit = Some((error, Some(column.name.clone())));
                        break;
                    }
                }
            }
            if misfit.is_none() {
                misfit = self.missing_key().map(|position| {
                    (
                        Misfit::MissingPrimaryKey,
                        Some(self.spec.columns[position].name.clone()),
                    )
                });
            }
            match misfit {
                None => {
                    self.finish_row()?;
                    counts.records += 1;
                }
                Some((misfit, column)) => {
                    let mut text = String::from("{");
                    for (index, name) in names.iter().enumerate() {
                        if index > 0 {
                            text.push(',');
                        }
                        text.push_str(&serde_json::Value::from(name.as_str()).to_string());
                        text.push(':');
                        text.push_str(&json_of(row.get_ref(index)?).to_string());
                    }
                    text.push('}');
                    self.reject(line, misfit, column.as_deref(), &text)?;
                    counts.rejected += 1;
                }
            }
        }
        Ok(counts)
    }
}

/// Binds one JSON value to parameter `index` as its column's type. The
/// outer `Result` is a database failure; the inner says whether the value
/// was non-null, or why it does not fit.
fn bind_json(
    statement: &mut Statement<'_>,
    index: usize,
    column_type: ColumnType,
    value: &simd_json::BorrowedValue<'_>,
) -> Result<Result<bool, Misfit>, TablesError> {
    use simd_json::BorrowedValue as V;
    let misfit = Misfit::WrongType(column_type);
    let fitted: Result<Cow<'_, str>, Misfit> = match (value, column_type) {
        (V::Static(_), _) if value.is_null() => {
            statement.raw_bind_parameter(index, rusqlite::types::Null)?;
            return Ok(Ok(false));
        }
        (V::String(text), ColumnType::Text) => Ok(Cow::Borrowed(text.as_ref())),
        (V::String(_), _) => Err(misfit),
        (V::Array(_) | V::Object(_), ColumnType::Text) => Ok(Cow::Owned(value.encode())),
        (V::Array(_) | V::Object(_), _) => Err(misfit),
        (V::Static(_), ColumnType::Text) => Ok(Cow::Owned(value.encode())),
        (V::Static(_), ColumnType::Integer) => {
            let integer = match (value.as_bool(), value.as_i64(), value.as_f64()) {
                (Some(flag), _, _) => Some(i64::from(flag)),
                (_, Some(integer), _) => Some(integer),
                // An integral float (`3.0`) fits; SQLite would store it as 3.
                (_, None, Some(real)) if real.fract() == 0.0 && real.abs() < 9.0e15 => Some(real as i64),
                _ => None,
            };
            match integer {
                Some(integer) => {
                    statement.raw_bind_parameter(index, integer)?;
                    return Ok(Ok(true));
                }
                None => Err(misfit),
            }
        }
        (V::Static(_), ColumnType::Real) => match (value.as_bool(), value.cast_f64()) {
            (None, Some(real)) => {
                statement.raw_bind_parameter(index, real)?;
                return Ok(Ok(true));
            }
            _ => Err(misfit),
        },
    };
    match fitted {
        Ok(text) => {
            statement.raw_bind_parameter(index, text.as_ref())?;
            Ok(Ok(true))
        }
        Err(misfit) => Ok(Err(misfit)),
    }
}

/// Binds one value of a saved query's row as its column's type.
fn bind_sql(
    statement: &mut Statement<'_>,
    index: usize,
    column_type: ColumnType,
    value: ValueRef<'_>,
) -> Result<Result<bool, Misfit>, TablesError> {
    let misfit = Misfit::WrongType(column_type);
    match (value, column_type) {
        (ValueRef::Null, _) => statement.raw_bind_parameter(index, rusqlite::types::Null)?,
        (ValueRef::Blob(_), _) => return Ok(Err(Misfit::Blob)),
        (ValueRef::Integer(integer), ColumnType::Integer) => statement.raw_bind_parameter(index, integer)?,
        (ValueRef::Real(real), ColumnType::Integer) if real.fract() == 0.0 && real.abs() < 9.0e15 => {
            statement.raw_bind_parameter(index, real as i64)?
        }
        (ValueRef::Integer(integer), ColumnType::Real) => {
            statement.raw_bind_parameter(index, integer as f64)?
        }
        (ValueRef::Real(real), ColumnType::Real) => statement.raw_bind_parameter(index, real)?,
        (ValueRef::Text(text), ColumnType::Text) => {
            statement.raw_bind_parameter(index, String::from_utf8_lossy(text).as_ref())?
        }
        (ValueRef::Integer(integer), ColumnType::Text) => {
            statement.raw_bind_parameter(index, integer.to_string())?
        }
        (ValueRef::Real(real), ColumnType::Text) => {
            statement.raw_bind_parameter(index, json_of(ValueRef::Real(real)).to_string())?
        }
        _ => return Ok(Err(misfit)),
    }
    Ok(Ok(!matches!(value, ValueRef::Null)))
}

/// Now, RFC 3339 with microseconds in UTC: the generated `updated` value.
/// Fixed width, so later loads compare greater as text.
fn now_micros() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Creates an empty file readable and writable by its owner only, unless it
/// exists: loaded data is as private as the stream files.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let unique = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "sluice-tables-test-{}-{label}-{unique}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("mkdir");
            TempDir(path)
        }

        fn write(&self, name: &str, content: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, content).expect("write");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn column(name: &str, column_type: ColumnType) -> Column {
        Column {
            name: name.to_string(),
            column_type,
        }
    }

    fn spec(columns: Vec<Column>, key: &[&str], last_updated: LastUpdated) -> TableSpec {
        TableSpec {
            name: "Streaming Ingest:WebEvents".to_string(),
            columns,
            primary_key: key.iter().map(|name| name.to_string()).collect(),
            last_updated,
            query: None,
        }
    }

    /// A JSON array of arrays as rows.
    fn json_rows(value: serde_json::Value) -> Vec<Vec<serde_json::Value>> {
        serde_json::from_value(value).expect("array of arrays")
    }

    fn rows(tables: &Tables, sql: &str) -> Vec<Vec<serde_json::Value>> {
        tables.select(sql, 1000).expect("select").rows
    }

    #[test]
    fn schema_inference_table() {
        let dir = TempDir::new("infer");
        use ColumnType::*;
        /// (sample content, the inferred columns or a fragment of the error)
        type Case<'a> = (&'a str, Result<Vec<(&'a str, ColumnType)>, &'a str>);
        let cases: &[Case] = &[
            (
                "{\"id\":1,\"name\":\"a\",\"score\":1.5,\"ok\":true,\"tags\":[1],\"nested\":{\"x\":1},\"none\":null}\n",
                Ok(vec![
                    ("id", Integer),
                    ("name", Text),
                    ("score", Real),
                    ("ok", Integer),
                    ("tags", Text),
                    ("nested", Text),
                    ("none", Text),
                ]),
            ),
            // Widening: integer then real → REAL; number then text → TEXT;
            // a key first seen in a later record comes last.
            (
                "{\"a\":1,\"b\":2}\n{\"a\":2.5,\"b\":\"x\",\"c\":null}\n{\"c\":3}\n",
                Ok(vec![("a", Real), ("b", Text), ("c", Integer)]),
            ),
            ("{\"z\":1,\"a\":2}\n\n", Ok(vec![("z", Integer), ("a", Integer)])),
            // An integer past 64 bits needs a REAL column, whatever follows.
            (
                "{\"big\":12345678901234567890}\n{\"big\":1}\n",
                Ok(vec![("big", Real)]),
            ),
            ("[1,2]\n", Err("1 of its records are not JSON objects")),
            ("not json\n", Err("1 of its records are not JSON objects")),
            ("", Err("it has no records with fields")),
            ("{}\n", Err("it has no records with fields")),
            ("{\"Id\":1,\"id\":2}\n", Err("up to case")),
        ];
        for (index, (content, expected)) in cases.iter().enumerate() {
            let path = dir.write(&format!("sample-{index}.ndjson"), content.as_bytes());
            let outcome = infer_columns(&path, None);
            match expected {
                Ok(columns) => {
                    let expected: Vec<Column> = columns.iter().map(|(n, t)| column(n, *t)).collect();
                    assert_eq!(outcome.expect("inferred"), expected, "{content:?}");
                }
                Err(fragment) => {
                    let message = outcome.expect_err("refused").to_string();
                    assert!(message.contains(fragment), "{content:?}: {message}");
                }
            }
        }
    }

    #[test]
    fn schema_inference_through_a_saved_query() {
        let dir = TempDir::new("infer-query");
        let path = dir.write(
            "nested.ndjson",
            b"{\"customer\":{\"id\":\"c1\",\"age\":30},\"amount\":1.5}\n{\"customer\":{\"id\":\"c2\"}}\n",
        );
        let query = "SELECT json_extract(record, '$.customer.id') AS customer_id, \
                     json_extract(record, '$.customer.age') AS age, json_extract(record, '$.amount') AS amount FROM raw";
        let columns = infer_columns(&path, Some(query)).expect("inferred");
        assert_eq!(
            columns,
            vec![
                column("customer_id", ColumnType::Text),
                column("age", ColumnType::Integer),
                column("amount", ColumnType::Real),
            ]
        );
        let refused = infer_columns(&path, Some("DELETE FROM raw")).expect_err("refused");
        assert_eq!(
            refused.to_string(),
            "only read-only SELECT statements may be run here"
        );
    }

    #[test]
    fn cbor_items_render_as_json_in_map_order() {
        use ciborium::Value;
        let value = Value::Map(vec![
            ("z".into(), Value::Integer(5.into())),
            (
                "a".into(),
                Value::Array(vec![Value::Bool(true), Value::Null, Value::Float(1.5)]),
            ),
            ("b".into(), Value::Bytes(vec![1, 2, 3])),
            (
                Value::Integer(7.into()),
                Value::Tag(1, Box::new(Value::Text("q\"".into()))),
            ),
            ("f".into(), Value::Float(f64::NAN)),
        ]);
        let mut text = String::new();
        write_cbor_as_json(&value, &mut text);
        assert_eq!(
            text,
            r#"{"z":5,"a":[true,null,1.5],"b":"AQID","7":"q\"","f":null}"#
        );
    }

    #[test]
    fn upsert_sql_table() {
        let columns = vec![
            column("id", ColumnType::Text),
            column("ts", ColumnType::Text),
            column("v", ColumnType::Integer),
        ];
        let field = spec(columns.clone(), &["id"], LastUpdated::Field("ts".to_string()));
        assert_eq!(
            upsert_sql(&field),
            "INSERT INTO \"Streaming Ingest:WebEvents\" (\"id\", \"ts\", \"v\") VALUES (?1, ?2, ?3) \
             ON CONFLICT (\"id\") DO UPDATE SET \"ts\" = excluded.\"ts\", \"v\" = excluded.\"v\" \
             WHERE \"Streaming Ingest:WebEvents\".\"ts\" IS NULL OR CASE WHEN julianday(excluded.\"ts\") IS NOT NULL \
             AND julianday(\"Streaming Ingest:WebEvents\".\"ts\") IS NOT NULL THEN julianday(excluded.\"ts\") > \
             julianday(\"Streaming Ingest:WebEvents\".\"ts\") ELSE excluded.\"ts\" > \"Streaming Ingest:WebEvents\".\"ts\" END"
        );
        let generated = spec(columns, &["id", "v"], LastUpdated::Generated);
        assert_eq!(
            upsert_sql(&generated),
            "INSERT INTO \"Streaming Ingest:WebEvents\" (\"id\", \"ts\", \"v\", \"updated\") VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (\"id\", \"v\") DO UPDATE SET \"ts\" = excluded.\"ts\", \"updated\" = excluded.\"updated\" \
             WHERE \"Streaming Ingest:WebEvents\".\"ts\" IS NOT excluded.\"ts\""
        );
        let key_only = spec(
            vec![column("id", ColumnType::Text)],
            &["id"],
            LastUpdated::Generated,
        );
        assert!(upsert_sql(&key_only).ends_with("ON CONFLICT (\"id\") DO NOTHING"));
    }

    #[test]
    fn upsert_keeps_the_newest_by_the_last_updated_field() {
        let dir = TempDir::new("newest");
        let mut tables = Tables::open(&dir.0, "acme").expect("open");
        let spec = spec(
            vec![
                column("id", ColumnType::Text),
                column("ts", ColumnType::Text),
                column("v", ColumnType::Integer),
            ],
            &["id"],
            LastUpdated::Field("ts".to_string()),
        );
        tables.create(&spec).expect("create");
        // (file content, rows after loading it, ordered by id)
        type Step<'a> = (&'a str, &'a [(&'a str, &'a str, i64)]);
        let steps: &[Step] = &[
            (
                "{\"id\":\"a\",\"ts\":\"2026-01-01T00:00:00Z\",\"v\":1}\n{\"id\":\"b\",\"ts\":\"2026-01-01T00:00:00Z\",\"v\":1}\n",
                &[("a", "2026-01-01T00:00:00Z", 1), ("b", "2026-01-01T00:00:00Z", 1)],
            ),
            // Older for a, newer for b: only b changes.
            (
                "{\"id\":\"a\",\"ts\":\"2025-12-31T00:00:00Z\",\"v\":2}\n{\"id\":\"b\",\"ts\":\"2026-01-02T00:00:00Z\",\"v\":2}\n",
                &[("a", "2026-01-01T00:00:00Z", 1), ("b", "2026-01-02T00:00:00Z", 2)],
            ),
            // Equal timestamp: a re-delivery changes nothing; a missing
            // timestamp never replaces one.
            (
                "{\"id\":\"b\",\"ts\":\"2026-01-02T00:00:00Z\",\"v\":3}\n{\"id\":\"a\",\"v\":4}\n",
                &[("a", "2026-01-01T00:00:00Z", 1), ("b", "2026-01-02T00:00:00Z", 2)],
            ),
            // Times compare as instants, not as text: half a second later
            // with a fraction is newer ('.' sorts before 'Z'); 01:00+02:00
            // on the 2nd is 23:00Z on the 1st, older than 00:00Z on the 2nd
            // ('1' sorts after '0').
            (
                "{\"id\":\"a\",\"ts\":\"2026-01-01T00:00:00.500Z\",\"v\":5}\n{\"id\":\"b\",\"ts\":\"2026-01-02T01:00:00+02:00\",\"v\":5}\n",
                &[
                    ("a", "2026-01-01T00:00:00.500Z", 5),
                    ("b", "2026-01-02T00:00:00Z", 2),
                ],
            ),
            // The same instant written another way is not newer.
            (
                "{\"id\":\"a\",\"ts\":\"2026-01-01T01:00:00.500+01:00\",\"v\":6}\n{\"id\":\"b\",\"ts\":\"2026-01-02T00:00:00.000Z\",\"v\":6}\n",
                &[
                    ("a", "2026-01-01T00:00:00.500Z", 5),
                    ("b", "2026-01-02T00:00:00Z", 2),
                ],
            ),
        ];
        for (index, (content, expected)) in steps.iter().enumerate() {
            let file = dir.write(&format!("f{index}.ndjson"), content.as_bytes());
            let counts = tables
                .load_file(&[&spec], &file, None)
                .expect("load")
                .expect("loaded");
            assert_eq!(
                counts,
                LoadCounts {
                    records: 2,
                    rejected: 0
                }
            );
            let expected: Vec<Vec<serde_json::Value>> = expected
                .iter()
                .map(|(id, ts, v)| vec![(*id).into(), (*ts).into(), (*v).into()])
                .collect();
            assert_eq!(
                rows(
                    &tables,
                    "SELECT id, ts, v FROM \"Streaming Ingest:WebEvents\" ORDER BY id"
                ),
                expected
            );
        }
    }

    #[test]
    fn generated_updated_ignores_redelivery_and_takes_changes() {
        let dir = TempDir::new("generated");
        let mut tables = Tables::open(&dir.0, "acme").expect("open");
        let spec = spec(
            vec![
                column("id", ColumnType::Integer),
                column("email", ColumnType::Text),
            ],
            &["id"],
            LastUpdated::Generated,
        );
        tables.create(&spec).expect("create");
        let first = dir.write(
            "a.ndjson",
            b"{\"id\":1,\"email\":\"a@x\"}\n{\"id\":2,\"email\":\"b@x\"}\n",
        );
        tables.load_file(&[&spec], &first, None).expect("load");
        let before = rows(
            &tables,
            "SELECT id, email, updated FROM \"Streaming Ingest:WebEvents\" ORDER BY id",
        );
        std::thread::sleep(Duration::from_millis(2));
        // The same file again: nothing changes, not even `updated`.
        tables.load_file(&[&spec], &first, None).expect("load");
        assert_eq!(
            rows(
                &tables,
                "SELECT id, email, updated FROM \"Streaming Ingest:WebEvents\" ORDER BY id"
            ),
            before
        );
        let second = dir.write("b.ndjson", b"{\"id\":2,\"email\":\"new@x\"}\n");
        tables.load_file(&[&spec], &second, None).expect("load");
        let after = rows(
            &tables,
            "SELECT id, email, updated FROM \"Streaming Ingest:WebEvents\" ORDER BY id",
        );
        assert_eq!(after.len(), 2);
        assert_eq!(after[0], before[0]);
        assert_eq!(after[1][1], "new@x");
        assert!(
            after[1][2].as_str() > before[1][2].as_str(),
            "{after:?} {before:?}"
        );
    }

    #[test]
    fn misfits_go_to_the_rejects_table() {
        let dir = TempDir::new("rejects");
        let mut tables = Tables::open(&dir.0, "acme").expect("open");
        let spec = spec(
            vec![
                column("id", ColumnType::Text),
                column("n", ColumnType::Integer),
                column("r", ColumnType::Real),
                column("t", ColumnType::Text),
            ],
            &["id"],
            LastUpdated::Generated,
        );
        tables.create(&spec).expect("create");
        let content = concat!(
            "{\"id\":\"ok\",\"n\":1,\"r\":2,\"t\":{\"deep\":[1,2]}}\n",
            "{\"id\":\"num-as-text\",\"t\":12.5,\"n\":3.0,\"r\":true}\n",
            "{\"n\":1}\n",
            "{\"id\":null}\n",
            "{\"id\":\"x\",\"extra\":1}\n",
            "{\"id\":\"x\",\"n\":\"7\"}\n",
            "{\"id\":\"x\",\"n\":1.5}\n",
            "[1]\n",
            "{broken\n",
            "\n",
            "{\"id\":\"last\",\"t\":\"caf\\u00e9\"}\n",
        );
        let file = dir.write("mixed.ndjson", content.as_bytes());
        let counts = tables
            .load_file(&[&spec], &file, None)
            .expect("load")
            .expect("loaded");
        // Ten records (the blank line is none), eight of them rejected.
        assert_eq!(
            counts,
            LoadCounts {
                records: 10,
                rejected: 8
            }
        );
        // Loaded into two tables, a record still counts once; each table
        // rejects its own misfits.
        let other = TableSpec {
            name: "Streaming Ingest:Other".to_string(),
            ..spec.clone()
        };
        tables.create(&other).expect("create");
        let counts = tables
            .load_file(&[&spec, &other], &file, None)
            .expect("load")
            .expect("loaded");
        assert_eq!(
            counts,
            LoadCounts {
                records: 10,
                rejected: 16
            }
        );
        assert_eq!(
            rows(
                &tables,
                "SELECT id, n, r, t FROM \"Streaming Ingest:WebEvents\" ORDER BY id"
            ),
            vec![
                vec![
                    "last".into(),
                    serde_json::Value::Null,
                    serde_json::Value::Null,
                    "café".into()
                ],
                vec!["ok".into(), 1.into(), 2.0.into(), "{\"deep\":[1,2]}".into()],
            ]
        );
        let rejects = rows(
            &tables,
            "SELECT line, reason FROM \"Streaming Ingest:WebEvents:rejects\" ORDER BY line",
        );
        let expected: Vec<(i64, &str)> = vec![
            (
                2,
                "wrong-type: a REAL column got a value that is not a number (column \"r\")",
            ),
            (
                3,
                "missing-primary-key: a primary-key field is missing or null (column \"id\")",
            ),
            (
                4,
                "missing-primary-key: a primary-key field is missing or null (column \"id\")",
            ),
            (
                5,
                "unknown-column: the record has a field the table has no column for (column \"extra\")",
            ),
            (
                6,
                "wrong-type: an INTEGER column got a value that is not an integer (column \"n\")",
            ),
            (
                7,
                "wrong-type: an INTEGER column got a value that is not an integer (column \"n\")",
            ),
            (8, "not-an-object: the record is not a JSON object"),
            (9, "invalid-json: the record is not valid JSON"),
        ];
        let expected: Vec<Vec<serde_json::Value>> = expected
            .into_iter()
            .map(|(line, reason)| vec![line.into(), reason.into()])
            .collect();
        assert_eq!(rejects, expected);
        let record = rows(
            &tables,
            "SELECT record FROM \"Streaming Ingest:WebEvents:rejects\" WHERE line = 9",
        );
        assert_eq!(record, vec![vec![serde_json::Value::from("{broken")]]);
        // The same file loaded again (an activation sample a courier later
        // picks up) changes nothing: not the rows, not the rejects.
        tables
            .load_file(&[&spec], &file, None)
            .expect("load")
            .expect("loaded");
        // Also when named by another path (as an operator may type it).
        let parent = file.parent().expect("a folder");
        let alias = parent
            .join("..")
            .join(parent.file_name().expect("a name"))
            .join("mixed.ndjson");
        tables
            .load_file(&[&spec], &alias, None)
            .expect("load")
            .expect("loaded");
        let rejects_again = rows(
            &tables,
            "SELECT line, reason FROM \"Streaming Ingest:WebEvents:rejects\" ORDER BY line",
        );
        assert_eq!(rejects_again, expected);
    }

    #[test]
    fn ledger_loads_each_file_once_even_after_a_crash() {
        let dir = TempDir::new("ledger");
        let mut tables = Tables::open(&dir.0, "acme").expect("open");
        let spec = spec(
            vec![column("id", ColumnType::Integer)],
            &["id"],
            LastUpdated::Generated,
        );
        tables.create(&spec).expect("create");
        let file = dir.write("f.ndjson", b"{\"id\":1}\n{\"id\":2}\n");
        let entry = LedgerEntry {
            courier: "web",
            file: "streams/is-X/f.ndjson",
            run_id: "run-1",
        };
        // A crash mid-file: the rows and the ledger entry were written in a
        // transaction that never committed.
        {
            let tx = tables.connection.unchecked_transaction().expect("begin");
            tx.execute(
                "INSERT INTO _sluice_ledger (courier, file, run_id, loaded_at) VALUES ('web', 'streams/is-X/f.ndjson', 'run-0', 'x')",
                [],
            )
            .expect("ledger");
            tx.execute(
                "INSERT INTO \"Streaming Ingest:WebEvents\" (id, updated) VALUES (1, 'x')",
                [],
            )
            .expect("row");
            drop(tx);
        }
        assert!(tables.loaded_files("web").expect("ledger").is_empty());
        assert_eq!(
            rows(&tables, "SELECT count(*) FROM \"Streaming Ingest:WebEvents\""),
            json_rows(serde_json::json!([[0]]))
        );

        let first = tables.load_file(&[&spec], &file, Some(entry)).expect("load");
        assert_eq!(
            first,
            Some(LoadCounts {
                records: 2,
                rejected: 0
            })
        );
        let again = tables.load_file(&[&spec], &file, Some(entry)).expect("load");
        assert_eq!(again, None);
        let other = LedgerEntry {
            courier: "other",
            ..entry
        };
        assert!(
            tables
                .load_file(&[&spec], &file, Some(other))
                .expect("load")
                .is_some()
        );
        let loaded = tables.loaded_files("web").expect("ledger");
        assert_eq!(loaded, HashSet::from(["streams/is-X/f.ndjson".to_string()]));
        assert_eq!(
            rows(
                &tables,
                "SELECT run_id, records, rejected FROM _sluice_ledger WHERE courier = 'web'"
            ),
            json_rows(serde_json::json!([["run-1", 2, 0]]))
        );
        tables.forget_courier("web").expect("forget");
        assert!(tables.loaded_files("web").expect("ledger").is_empty());
    }

    #[test]
    fn saved_query_flattens_cbor_records() {
        let dir = TempDir::new("cbor");
        let mut bytes = Vec::new();
        for (id, city) in [("1", "Oslo"), ("2", "Lima")] {
            let value = ciborium::Value::Map(vec![(
                "profile".into(),
                ciborium::Value::Map(vec![
                    ("@id".into(), id.into()),
                    (
                        "address".into(),
                        ciborium::Value::Map(vec![("city".into(), city.into())]),
                    ),
                ]),
            )]);
            ciborium::into_writer(&value, &mut bytes).expect("cbor");
        }
        let file = dir.write("p.cbor", &bytes);
        let query = "SELECT json_extract(record, '$.profile.@id') AS id, \
                     json_extract(record, '$.profile.address.city') AS city FROM raw";
        let columns = infer_columns(&file, Some(query)).expect("infer");
        assert_eq!(
            columns,
            vec![column("id", ColumnType::Text), column("city", ColumnType::Text)]
        );
        let mut tables = Tables::open(&dir.0, "acme").expect("open");
        let spec = TableSpec {
            query: Some(query.to_string()),
            ..spec(columns, &["id"], LastUpdated::Generated)
        };
        tables.create(&spec).expect("create");
        let counts = tables
            .load_file(&[&spec], &file, None)
            .expect("load")
            .expect("loaded");
        assert_eq!(
            counts,
            LoadCounts {
                records: 2,
                rejected: 0
            }
        );
        assert_eq!(
            rows(
                &tables,
                "SELECT id, city FROM \"Streaming Ingest:WebEvents\" ORDER BY id"
            ),
            json_rows(serde_json::json!([["1", "Oslo"], ["2", "Lima"]]))
        );
    }

    #[test]
    fn select_is_read_only_and_bounded() {
        let dir = TempDir::new("select");
        let mut tables = Tables::open(&dir.0, "acme").expect("open");
        let spec = spec(
            vec![column("id", ColumnType::Integer)],
            &["id"],
            LastUpdated::Generated,
        );
        tables.create(&spec).expect("create");
        let file = dir.write("f.ndjson", b"{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
        tables.load_file(&[&spec], &file, None).expect("load");
        drop(tables);
        let tables = Tables::open_read_only(&dir.0, "acme").expect("open");
        let cases: &[(&str, Result<usize, &str>)] = &[
            ("SELECT id FROM \"Streaming Ingest:WebEvents\"", Ok(3)),
            ("  select id from \"Streaming Ingest:WebEvents\" ; ", Ok(3)),
            ("WITH x AS (SELECT 1) SELECT * FROM x", Ok(1)),
            ("SELECT 'a;b' FROM \"Streaming Ingest:WebEvents\"", Ok(3)),
            (
                "ATTACH DATABASE ':memory:' AS other",
                Err("only read-only SELECT statements may be run here"),
            ),
            (
                "DELETE FROM \"Streaming Ingest:WebEvents\"",
                Err("only read-only SELECT statements may be run here"),
            ),
            (
                "DROP TABLE \"Streaming Ingest:WebEvents\"",
                Err("only read-only SELECT statements may be run here"),
            ),
            (
                "SELECT 1; DELETE FROM \"Streaming Ingest:WebEvents\"",
                Err("only one statement may be run at a time"),
            ),
            ("", Err("the query is empty")),
            ("SELEC 1", Err("the query does not compile")),
        ];
        for (sql, expected) in cases {
            match (tables.select(sql, 100), expected) {
                (Ok(result), Ok(count)) => assert_eq!(result.rows.len(), *count, "{sql}"),
                (Err(error), Err(fragment)) => {
                    assert!(error.to_string().starts_with(fragment), "{sql}: {error}")
                }
                (outcome, _) => panic!("{sql}: {outcome:?}"),
            }
        }
        let limited = tables
            .select("SELECT id FROM \"Streaming Ingest:WebEvents\" ORDER BY id", 2)
            .expect("select");
        assert_eq!(limited.rows, json_rows(serde_json::json!([[1], [2]])));
        assert!(limited.truncated);
        let listed = tables.list().expect("list");
        let names: Vec<(&str, i64)> = listed
            .iter()
            .map(|table| (table.name.as_str(), table.rows))
            .collect();
        assert_eq!(
            names,
            vec![
                ("Streaming Ingest:WebEvents", 3),
                ("Streaming Ingest:WebEvents:rejects", 0)
            ]
        );
        assert_eq!(
            tables.show("nope", 5).expect_err("unknown").kind(),
            "unknown-table"
        );
        assert_eq!(
            tables.show("_sluice_ledger", 5).expect_err("hidden").kind(),
            "unknown-table"
        );
        assert_eq!(
            tables
                .show("Streaming Ingest:WebEvents", 1)
                .expect("show")
                .rows
                .len(),
            1
        );
    }
}
