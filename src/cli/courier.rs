//! The loading side of the command line (SPEC §5, §7): `courier`, `feed`,
//! `run`, `table` and `sql`.
//!
//! It turns flags into calls on [`crate::control::couriers`],
//! [`crate::courier::run`] and [`crate::tables`], and keeps the contract of
//! the rest of the CLI: created ids alone on stdout, confirmations on
//! stderr, `--json` lists as JSON arrays, failures as one line. Choices an
//! operator sees:
//! - `--load-ops` and `--query` take the text itself or `@FILE`.
//! - `--day` takes `YYYY-MM-DD`, `today` or `yesterday` (UTC); `--from` and
//!   `--to` take RFC 3339 times, `--from` before `--to`.
//! - `feed add` without `--updated-field` generates `updated`, the seed's
//!   recommended option (`--generate-updated` says so explicitly).
//! - `courier run` prints one summary line on stdout; a failed run also
//!   prints its reason as the error line and exits 1.
//! - `table show` and `sql` print NULL as `NULL` and escape line breaks and
//!   tabs inside values, so every row stays one aligned line.
//! - `feed delete` drops the feed's domain and rejects tables; `courier
//!   delete` forgets which files the courier loaded (its runs stay).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use crate::control::couriers::{
    self, CourierChanges, CourierRecord, CourierSpec, FeedChanges, FeedDraft, FeedRecord, FileFormat,
    LoadOps, RunRecord,
};
use crate::control::store::{Store, require_tenant};
use crate::courier::run::{self, Window};
use crate::tables::{QueryResult, SELECT_ROWS_MAX, Tables};

/// Rows `table show` prints unless `--limit` says otherwise.
pub const SHOW_ROWS_DEFAULT: usize = 20;

/// The largest `--load-ops` or `--query` file read; both are a few hundred
/// bytes in practice.
const ARGUMENT_FILE_BYTES_MAX: u64 = 1 << 20;

#[derive(Debug, Subcommand)]
pub(super) enum CourierCommand {
    /// Add a courier that pulls one stream's sealed files.
    Add(CourierAddArgs),
    /// List a tenant's couriers.
    List {
        #[arg(long)]
        tenant: String,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show one courier.
    Show {
        #[arg(long)]
        tenant: String,
        name: String,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Change a courier; flags left out keep their values.
    Edit(CourierEditArgs),
    /// Delete a courier; its run history stays.
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Run a courier for a day, a time range or all data.
    Run(CourierRunArgs),
    /// List a courier's sample files, newest first.
    Samples {
        #[arg(long)]
        tenant: String,
        name: String,
        /// Print a JSON array of {path, run_id, added_at} objects instead.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(super) struct CourierAddArgs {
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    name: String,
    /// The stream id (is-…).
    #[arg(long, value_name = "ID")]
    stream: String,
    /// ndjson for JSON streams, cbor for XML streams.
    #[arg(long, value_enum)]
    format: FormatArg,
    /// Must equal the file of every load operation.
    #[arg(long, value_name = "TAG")]
    file_tag: String,
    /// Only this UTC hour's files (00-23).
    #[arg(long, value_name = "HH")]
    hour: Option<String>,
    /// Load operations as JSON or @FILE [default: {}].
    #[arg(long, value_name = "JSON|@FILE")]
    load_ops: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("courier").required(true).args(["name", "name_flag"])))]
pub(super) struct CourierEditArgs {
    #[arg(long)]
    tenant: String,
    /// The courier to change.
    name: Option<String>,
    /// The courier to change (same as the positional NAME).
    #[arg(long = "name", value_name = "NAME")]
    name_flag: Option<String>,
    #[arg(long, value_name = "ID")]
    stream: Option<String>,
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    #[arg(long, value_name = "TAG")]
    file_tag: Option<String>,
    #[arg(long, value_name = "HH", conflicts_with = "no_hour")]
    hour: Option<String>,
    /// Remove the hour limit.
    #[arg(long)]
    no_hour: bool,
    #[arg(long, value_name = "JSON|@FILE")]
    load_ops: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("window").required(true).args(["day", "from", "all"])))]
pub(super) struct CourierRunArgs {
    #[arg(long)]
    tenant: String,
    name: String,
    /// One UTC day: YYYY-MM-DD, today or yesterday.
    #[arg(long, value_name = "DAY")]
    day: Option<String>,
    /// Start of a time range (RFC 3339).
    #[arg(long, value_name = "TIME", requires = "to")]
    from: Option<String>,
    /// End of the time range (RFC 3339, exclusive).
    #[arg(long, value_name = "TIME", requires = "from")]
    to: Option<String>,
    /// All available data.
    #[arg(long)]
    all: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Ndjson,
    Cbor,
}

impl From<FormatArg> for FileFormat {
    fn from(format: FormatArg) -> FileFormat {
        match format {
            FormatArg::Ndjson => FileFormat::Ndjson,
            FormatArg::Cbor => FileFormat::Cbor,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum FeedCommand {
    /// Add a feed from a sample file; prints its id.
    Add(FeedAddArgs),
    /// Create the feed's domain table and activate it.
    Activate {
        #[arg(long)]
        tenant: String,
        id: String,
        /// Load the sample file into the table.
        #[arg(long)]
        load_sample: bool,
    },
    /// List a tenant's feeds.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one feed with its columns.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a feed; an active feed only its tags and Stitch flag.
    Edit(FeedEditArgs),
    /// Delete a feed and its domain table.
    Delete {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct FeedAddArgs {
    #[arg(long)]
    tenant: String,
    /// The data source name, e.g. "Streaming Ingest".
    #[arg(long)]
    source: String,
    /// The feed name, e.g. WebEvents.
    #[arg(long)]
    name: String,
    /// The sample file the schema is inferred from.
    #[arg(long, value_name = "FILE")]
    sample: PathBuf,
    #[arg(long, value_name = "COL[,COL]", value_delimiter = ',', required = true)]
    primary_key: Vec<String>,
    /// A semantic tag for a column; repeatable.
    #[arg(long = "tag", value_name = "COL=TAG")]
    tags: Vec<String>,
    /// The column that says how new a record is.
    #[arg(long, value_name = "COL", conflicts_with = "generate_updated")]
    updated_field: Option<String>,
    /// Generate an "updated" column at load time (the default).
    #[arg(long)]
    generate_updated: bool,
    /// Make available to Stitch.
    #[arg(long)]
    stitch: bool,
    /// A saved query over raw(record TEXT), as SQL or @FILE.
    #[arg(long, value_name = "SQL|@FILE")]
    query: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct FeedEditArgs {
    #[arg(long)]
    tenant: String,
    id: String,
    #[arg(long, value_name = "FILE")]
    sample: Option<PathBuf>,
    #[arg(long, value_name = "COL[,COL]", value_delimiter = ',')]
    primary_key: Option<Vec<String>>,
    #[arg(long = "tag", value_name = "COL=TAG")]
    tags: Vec<String>,
    /// Remove a column's tag; repeatable.
    #[arg(long = "untag", value_name = "COL")]
    untag: Vec<String>,
    #[arg(long, value_name = "COL", conflicts_with = "generate_updated")]
    updated_field: Option<String>,
    #[arg(long)]
    generate_updated: bool,
    #[arg(long, conflicts_with = "no_stitch")]
    stitch: bool,
    #[arg(long)]
    no_stitch: bool,
    #[arg(long, value_name = "SQL|@FILE", conflicts_with = "no_query")]
    query: Option<String>,
    /// Remove the saved query.
    #[arg(long)]
    no_query: bool,
}

#[derive(Debug, Subcommand)]
pub(super) enum RunCommand {
    /// List runs, newest first.
    List {
        #[arg(long)]
        tenant: String,
        /// Only this courier's runs.
        #[arg(long, value_name = "NAME")]
        courier: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one run.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum TableCommand {
    /// List domain and rejects tables with their row counts.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Show a table's first rows.
    Show {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long, value_name = "N", default_value_t = SHOW_ROWS_DEFAULT)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(super) struct SqlArgs {
    #[arg(long)]
    tenant: String,
    /// One read-only SELECT statement.
    sql: String,
    /// The most rows printed.
    #[arg(long, value_name = "N", default_value_t = SELECT_ROWS_MAX)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

/// Runs a `courier` subcommand.
pub(super) fn run_courier(
    command: CourierCommand,
    data_dir: &Path,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut store = Store::open(data_dir)?;
    match command {
        CourierCommand::Add(args) => {
            let hour = args.hour.as_deref().map(couriers::parse_hour).transpose()?;
            let load_ops = match &args.load_ops {
                Some(text) => LoadOps::parse(&argument_text(text)?)?,
                None => LoadOps::default(),
            };
            let spec = CourierSpec {
                name: args.name.clone(),
                stream_id: args.stream,
                format: args.format.into(),
                file_tag: args.file_tag,
                hour,
                load_ops,
            };
            couriers::courier_add(&mut store, &args.tenant, spec)?;
            writeln!(
                diagnostics,
                "sluice: added courier {:?} of tenant {}",
                args.name, args.tenant
            )?;
        }
        CourierCommand::List { tenant, json } => {
            write_couriers(out, &couriers::courier_list(&store, &tenant)?, json)?
        }
        CourierCommand::Show { tenant, name, json } => {
            write_courier(out, &couriers::courier_show(&store, &tenant, &name)?, json)?
        }
        CourierCommand::Edit(args) => {
            let name = args
                .name
                .or(args.name_flag)
                .expect("clap requires NAME or --name");
            let hour = match (args.no_hour, args.hour.as_deref()) {
                (true, _) => Some(None),
                (false, Some(text)) => Some(Some(couriers::parse_hour(text)?)),
                (false, None) => None,
            };
            let load_ops = match &args.load_ops {
                Some(text) => Some(LoadOps::parse(&argument_text(text)?)?),
                None => None,
            };
            let changes = CourierChanges {
                stream_id: args.stream,
                format: args.format.map(FileFormat::from),
                file_tag: args.file_tag,
                hour,
                load_ops,
            };
            couriers::courier_edit(&mut store, &args.tenant, &name, changes)?;
            writeln!(
                diagnostics,
                "sluice: changed courier {name:?} of tenant {}",
                args.tenant
            )?;
        }
        CourierCommand::Delete { tenant, name } => {
            couriers::courier_delete(&mut store, &tenant, &name)?;
            Tables::open(data_dir, &tenant)?.forget_courier(&name)?;
            writeln!(diagnostics, "sluice: deleted courier {name:?} of tenant {tenant}")?;
        }
        CourierCommand::Run(args) => {
            let window = parse_window(&args)?;
            drop(store);
            let summary = run::run_courier(data_dir, &args.tenant, &args.name, &window, "manual")?;
            writeln!(
                out,
                "{} {}: {}, {}, {} rejected. {}",
                summary.run_id,
                if summary.succeeded { "succeeded" } else { "failed" },
                run::counted(summary.files, "file"),
                run::counted(summary.records, "record"),
                summary.rejected,
                summary.message
            )?;
            if !summary.succeeded {
                bail!("{}", summary.message);
            }
        }
        CourierCommand::Samples { tenant, name, json } => {
            let samples = couriers::samples_list(&store, &tenant, &name)?;
            if json {
                return super::write_json(out, &samples);
            }
            for sample in samples {
                writeln!(out, "{}\t{}", sample.path, sample.run_id)?;
            }
        }
    }
    Ok(())
}

/// The window of a `courier run`; clap has checked that exactly one of
/// `--day`, `--from`/`--to` and `--all` is present.
fn parse_window(args: &CourierRunArgs) -> anyhow::Result<Window> {
    if args.all {
        return Ok(Window::All);
    }
    if let Some(day) = &args.day {
        return Ok(Window::Day(parse_day(day, Utc::now().date_naive())?));
    }
    let time = |flag: &str, text: &str| -> anyhow::Result<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .with_context(|| format!("--{flag} {text:?} is not an RFC 3339 time like 2026-01-31T08:00:00Z"))
    };
    let (Some(from), Some(to)) = (&args.from, &args.to) else {
        bail!("give --day, --from and --to, or --all");
    };
    let (from, to) = (time("from", from)?, time("to", to)?);
    if from >= to {
        bail!("--from must be before --to");
    }
    Ok(Window::Range { from, to })
}

/// A `--day`: `YYYY-MM-DD`, `today` or `yesterday`, relative to `today`
/// (UTC for a courier run; a group run's own date, see `cli::group`).
pub(super) fn parse_day(text: &str, today: NaiveDate) -> anyhow::Result<NaiveDate> {
    match text {
        "today" => Ok(today),
        "yesterday" => Ok(today - chrono::Duration::days(1)),
        _ => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .filter(|_| text.len() == 10)
            .with_context(|| format!("--day {text:?} is not YYYY-MM-DD, today or yesterday")),
    }
}

/// Runs a `feed` subcommand.
pub(super) fn run_feed(
    command: FeedCommand,
    data_dir: &Path,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut store = Store::open(data_dir)?;
    match command {
        FeedCommand::Add(args) => {
            let draft = FeedDraft {
                source: args.source,
                name: args.name,
                sample_file: args.sample,
                primary_key: args.primary_key,
                tags: parse_tags(&args.tags)?,
                updated_field: args.updated_field,
                stitch: args.stitch,
                query: args.query.as_deref().map(argument_text).transpose()?,
            };
            let id = couriers::feed_add(&mut store, &args.tenant, draft)?;
            writeln!(out, "{id}")?;
        }
        FeedCommand::Activate {
            tenant,
            id,
            load_sample,
        } => {
            let feed = couriers::feed_show(&store, &tenant, &id)?;
            let spec = feed.table_spec();
            let mut tables = Tables::open(data_dir, &tenant)?;
            tables.create(&spec)?;
            let feed = couriers::feed_set_active(&mut store, &tenant, &id)?;
            writeln!(diagnostics, "sluice: activated feed {id}: table {:?}", feed.table)?;
            if load_sample {
                let counts = tables
                    .load_file(&[&spec], Path::new(&feed.sample_file), None)?
                    .expect("a load without a ledger entry always loads");
                writeln!(
                    diagnostics,
                    "sluice: loaded {} records ({} rejected) from {}",
                    counts.records, counts.rejected, feed.sample_file
                )?;
            }
        }
        FeedCommand::List { tenant, json } => write_feeds(out, &couriers::feed_list(&store, &tenant)?, json)?,
        FeedCommand::Show { tenant, id, json } => {
            write_feed(out, &couriers::feed_show(&store, &tenant, &id)?, json)?
        }
        FeedCommand::Edit(args) => {
            let changes = FeedChanges {
                sample_file: args.sample,
                primary_key: args.primary_key,
                tags_set: parse_tags(&args.tags)?,
                tags_unset: args.untag,
                updated_field: match (args.updated_field, args.generate_updated) {
                    (Some(field), _) => Some(Some(field)),
                    (None, true) => Some(None),
                    (None, false) => None,
                },
                stitch: match (args.stitch, args.no_stitch) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                query: match (args.query, args.no_query) {
                    (Some(query), _) => Some(Some(argument_text(&query)?)),
                    (None, true) => Some(None),
                    (None, false) => None,
                },
            };
            couriers::feed_edit(&mut store, &args.tenant, &args.id, changes)?;
            writeln!(
                diagnostics,
                "sluice: changed feed {} of tenant {}",
                args.id, args.tenant
            )?;
        }
        FeedCommand::Delete { tenant, id } => {
            let feed = couriers::feed_delete(&mut store, &tenant, &id)?;
            Tables::open(data_dir, &tenant)?.drop_table(&feed.table)?;
            writeln!(
                diagnostics,
                "sluice: deleted feed {id} and table {:?} of tenant {tenant}",
                feed.table
            )?;
        }
    }
    Ok(())
}

/// `COL=TAG` pairs.
fn parse_tags(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((column, tag)) if !column.is_empty() && !tag.is_empty() => {
                Ok((column.to_string(), tag.to_string()))
            }
            _ => bail!("--tag {pair:?} is not COL=TAG"),
        })
        .collect()
}

/// Runs a `run` subcommand.
pub(super) fn run_run(command: RunCommand, data_dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = Store::open(data_dir)?;
    match command {
        RunCommand::List {
            tenant,
            courier,
            json,
        } => write_runs(
            out,
            &couriers::run_list(&store, &tenant, courier.as_deref())?,
            json,
        ),
        RunCommand::Show { tenant, id, json } => {
            write_run(out, &couriers::run_show(&store, &tenant, &id)?, json)
        }
    }
}

/// Runs a `table` subcommand.
pub(super) fn run_table(command: TableCommand, data_dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        TableCommand::List { tenant, json } => {
            let tables = open_tables(data_dir, &tenant)?.list()?;
            if json {
                return super::write_json(out, &tables);
            }
            let columns: Vec<String> = tables
                .iter()
                .map(|table| {
                    table
                        .columns
                        .iter()
                        .map(|column| format!("{} {}", column.name, column.column_type.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect();
            let counts: Vec<String> = tables.iter().map(|table| table.rows.to_string()).collect();
            let rows: Vec<Vec<&str>> = tables
                .iter()
                .zip(&counts)
                .zip(&columns)
                .map(|((table, count), columns)| vec![table.name.as_str(), count.as_str(), columns.as_str()])
                .collect();
            super::write_table(out, &["NAME", "ROWS", "COLUMNS"], &rows)
        }
        TableCommand::Show {
            tenant,
            name,
            limit,
            json,
        } => {
            let result = open_tables(data_dir, &tenant)?.show(&name, limit)?;
            write_result(out, &result, json)
        }
    }
}

/// Runs `sql`: one read-only statement on a read-only connection.
pub(super) fn run_sql(
    args: SqlArgs,
    data_dir: &Path,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
) -> anyhow::Result<()> {
    let result = open_tables(data_dir, &args.tenant)?.select(&args.sql, args.limit)?;
    write_result(out, &result, args.json)?;
    if result.truncated {
        writeln!(
            diagnostics,
            "sluice: showing the first {} rows",
            result.rows.len()
        )?;
    }
    Ok(())
}

/// Opens a tenant's tables read-only, after checking the tenant exists (a
/// name must never create a directory on its own).
fn open_tables(data_dir: &Path, tenant: &str) -> anyhow::Result<Tables> {
    let store = Store::open(data_dir)?;
    require_tenant(store.connection(), tenant)?;
    Ok(Tables::open_read_only(data_dir, tenant)?)
}

/// The text of an argument, or of the file it names after `@`.
fn argument_text(argument: &str) -> anyhow::Result<String> {
    let Some(path) = argument.strip_prefix('@') else {
        return Ok(argument.to_string());
    };
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {path}"))?
        .len();
    if size > ARGUMENT_FILE_BYTES_MAX {
        bail!("{path} is over {ARGUMENT_FILE_BYTES_MAX} bytes; is it the right file?");
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
}

fn hour_text(hour: Option<u8>) -> String {
    hour.map_or_else(|| "-".to_string(), |hour| format!("{hour:02}"))
}

fn write_couriers(out: &mut dyn Write, list: &[CourierRecord], json: bool) -> anyhow::Result<()> {
    if json {
        return super::write_json(out, list);
    }
    let cells: Vec<[String; 6]> = list
        .iter()
        .map(|courier| {
            [
                courier.name.clone(),
                courier.stream_id.clone(),
                courier.format.as_str().to_string(),
                courier.file_tag.clone(),
                hour_text(courier.hour),
                courier.load_ops.to_json().to_string(),
            ]
        })
        .collect();
    let rows: Vec<Vec<&str>> = cells
        .iter()
        .map(|row| row.iter().map(String::as_str).collect())
        .collect();
    super::write_table(
        out,
        &["NAME", "STREAM", "FORMAT", "FILE TAG", "HOUR", "LOAD OPS"],
        &rows,
    )
}

fn write_courier(out: &mut dyn Write, courier: &CourierRecord, json: bool) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, courier)?;
        writeln!(out)?;
        return Ok(());
    }
    let hour = hour_text(courier.hour);
    let load_ops = courier.load_ops.to_json().to_string();
    let rows = vec![
        vec!["name:", courier.name.as_str()],
        vec!["tenant:", courier.tenant.as_str()],
        vec!["stream:", courier.stream_id.as_str()],
        vec!["format:", courier.format.as_str()],
        vec!["file tag:", courier.file_tag.as_str()],
        vec!["hour:", hour.as_str()],
        vec!["load ops:", load_ops.as_str()],
        vec!["created:", courier.created_at.as_str()],
        vec!["updated:", courier.updated_at.as_str()],
    ];
    super::write_rows(out, &rows)
}

fn updated_text(feed: &FeedRecord) -> String {
    feed.updated_field
        .clone()
        .unwrap_or_else(|| "updated (generated)".to_string())
}

fn write_feeds(out: &mut dyn Write, list: &[FeedRecord], json: bool) -> anyhow::Result<()> {
    if json {
        return super::write_json(out, list);
    }
    let cells: Vec<[String; 6]> = list
        .iter()
        .map(|feed| {
            [
                feed.id.clone(),
                feed.table.clone(),
                if feed.active { "active" } else { "inactive" }.to_string(),
                feed.primary_key.join(","),
                updated_text(feed),
                feed.columns.len().to_string(),
            ]
        })
        .collect();
    let rows: Vec<Vec<&str>> = cells
        .iter()
        .map(|row| row.iter().map(String::as_str).collect())
        .collect();
    super::write_table(
        out,
        &["ID", "TABLE", "STATE", "PRIMARY KEY", "LAST UPDATED", "COLUMNS"],
        &rows,
    )
}

fn write_feed(out: &mut dyn Write, feed: &FeedRecord, json: bool) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, feed)?;
        writeln!(out)?;
        return Ok(());
    }
    let primary_key = feed.primary_key.join(",");
    let updated = updated_text(feed);
    let query = feed.query.as_deref().map_or_else(|| "-".to_string(), escape_cell);
    let rows = vec![
        vec!["id:", feed.id.as_str()],
        vec!["table:", feed.table.as_str()],
        vec!["source:", feed.source.as_str()],
        vec!["feed:", feed.name.as_str()],
        vec!["state:", if feed.active { "active" } else { "inactive" }],
        vec!["sample:", feed.sample_file.as_str()],
        vec!["primary key:", primary_key.as_str()],
        vec!["last updated:", updated.as_str()],
        vec!["stitch:", if feed.stitch { "yes" } else { "no" }],
        vec!["query:", query.as_str()],
        vec!["created:", feed.created_at.as_str()],
        vec!["activated:", feed.activated_at.as_deref().unwrap_or("-")],
    ];
    super::write_rows(out, &rows)?;
    writeln!(out)?;
    let columns: Vec<Vec<&str>> = feed
        .columns
        .iter()
        .map(|column| {
            vec![
                column.name.as_str(),
                column.column_type.as_str(),
                feed.tags.get(&column.name).map_or("-", String::as_str),
            ]
        })
        .collect();
    super::write_table(out, &["COLUMN", "TYPE", "TAG"], &columns)
}

fn write_runs(out: &mut dyn Write, list: &[RunRecord], json: bool) -> anyhow::Result<()> {
    if json {
        return super::write_json(out, list);
    }
    let cells: Vec<[String; 8]> = list
        .iter()
        .map(|run| {
            [
                run.id.clone(),
                run.courier.clone(),
                run.status.clone(),
                run.started_at.clone(),
                run.files.to_string(),
                run.records.to_string(),
                run.rejected.to_string(),
                run.message.clone(),
            ]
        })
        .collect();
    let rows: Vec<Vec<&str>> = cells
        .iter()
        .map(|row| row.iter().map(String::as_str).collect())
        .collect();
    super::write_table(
        out,
        &[
            "ID", "COURIER", "STATUS", "STARTED", "FILES", "RECORDS", "REJECTED", "MESSAGE",
        ],
        &rows,
    )
}

fn write_run(out: &mut dyn Write, run: &RunRecord, json: bool) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, run)?;
        writeln!(out)?;
        return Ok(());
    }
    let numbers = [
        run.files.to_string(),
        run.records.to_string(),
        run.rejected.to_string(),
    ];
    let duration = run
        .duration_ms
        .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms"));
    let rows = vec![
        vec!["id:", run.id.as_str()],
        vec!["courier:", run.courier.as_str()],
        vec!["trigger:", run.trigger.as_str()],
        vec!["status:", run.status.as_str()],
        vec!["window:", run.window.as_str()],
        vec!["files:", numbers[0].as_str()],
        vec!["records:", numbers[1].as_str()],
        vec!["rejected:", numbers[2].as_str()],
        vec!["started:", run.started_at.as_str()],
        vec!["finished:", run.finished_at.as_deref().unwrap_or("-")],
        vec!["duration:", duration.as_str()],
        vec!["message:", run.message.as_str()],
    ];
    super::write_rows(out, &rows)
}

/// Query rows as an aligned table, or as a JSON array of objects whose keys
/// keep the columns' order.
fn write_result(out: &mut dyn Write, result: &QueryResult, json: bool) -> anyhow::Result<()> {
    if json {
        if result.rows.is_empty() {
            writeln!(out, "[]")?;
            return Ok(());
        }
        writeln!(out, "[")?;
        for (index, row) in result.rows.iter().enumerate() {
            let fields: Vec<String> = result
                .columns
                .iter()
                .zip(row)
                .map(|(column, value)| format!("{}: {value}", serde_json::Value::from(column.as_str())))
                .collect();
            let comma = if index + 1 < result.rows.len() { "," } else { "" };
            writeln!(out, "  {{{}}}{comma}", fields.join(", "))?;
        }
        writeln!(out, "]")?;
        return Ok(());
    }
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|value| match value {
                    serde_json::Value::Null => "NULL".to_string(),
                    serde_json::Value::String(text) => escape_cell(text),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let header: Vec<&str> = result.columns.iter().map(String::as_str).collect();
    let rows: Vec<Vec<&str>> = cells
        .iter()
        .map(|row| row.iter().map(String::as_str).collect())
        .collect();
    super::write_table(out, &header, &rows)
}

/// Keeps a value on one line: line breaks and tabs become `\n`, `\r`, `\t`.
fn escape_cell(text: &str) -> String {
    text.replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T05:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn day_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("2026-01-31", Some("2026-01-31")),
            ("today", Some("2026-03-01")),
            ("yesterday", Some("2026-02-28")),
            ("2026-1-31", None),
            ("2026-02-30", None),
            ("31/01/2026", None),
            ("", None),
        ];
        for &(text, expected) in cases {
            let parsed = parse_day(text, now().date_naive())
                .ok()
                .map(|day| day.to_string());
            assert_eq!(parsed.as_deref(), expected, "{text:?}");
        }
    }

    #[test]
    fn tag_table() {
        let good = parse_tags(&["email=email".to_string(), "id=customer-id".to_string()]).expect("tags");
        assert_eq!(good.get("id").map(String::as_str), Some("customer-id"));
        for bad in ["email", "=email", "email=", ""] {
            let message = parse_tags(&[bad.to_string()]).expect_err(bad).to_string();
            assert_eq!(message, format!("--tag {bad:?} is not COL=TAG"));
        }
    }

    #[test]
    fn results_print_aligned_or_as_ordered_json() {
        let result = QueryResult {
            columns: vec!["z".to_string(), "a".to_string()],
            rows: vec![
                vec![serde_json::json!("line\nbreak"), serde_json::Value::Null],
                vec![serde_json::json!(12), serde_json::json!(1.5)],
            ],
            truncated: false,
        };
        let mut text = Vec::new();
        write_result(&mut text, &result, false).expect("write");
        assert_eq!(
            String::from_utf8(text).expect("utf-8"),
            "z            a\nline\\nbreak  NULL\n12           1.5\n"
        );
        let mut json = Vec::new();
        write_result(&mut json, &result, true).expect("write");
        let json = String::from_utf8(json).expect("utf-8");
        assert_eq!(
            json,
            "[\n  {\"z\": \"line\\nbreak\", \"a\": null},\n  {\"z\": 12, \"a\": 1.5}\n]\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(parsed[1]["a"], 1.5);
    }
}
