//! The operator surface (SPEC §7): the `sluice` command line.
//!
//! This module owns turning arguments into calls on the control store, the
//! server and the token signer, and promises the observable contract of
//! SPEC §7: a created id or token is printed alone on stdout, diagnostics go
//! to stderr, `--json` list output is a JSON array, and every failure is one
//! line `sluice: error: <reason>` with exit code 1 (2 for usage errors,
//! which clap reports itself). `sluice doctor` keeps 1 for "the host needs
//! changes" and exits 2 when it could not check the host at all.

mod group;

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::ServeFlags;
use crate::control::snapshot::PayloadFormat;
use crate::control::store::{self, KeyRecord, Store, StreamRecord, TenantRecord};
use crate::limits::{TOKEN_DAYS_MAX, TOKEN_DAYS_MIN};

mod courier;
mod ops;

/// The environment variable naming the data directory when `--data-dir` is
/// absent. It is read here rather than through clap's `env` feature, which
/// this build does not enable.
pub const DATA_DIR_ENV: &str = "SLUICE_DATA_DIR";

/// The data directory when neither the flag nor the environment names one.
pub const DATA_DIR_DEFAULT: &str = "./sluice-data";

/// Exit code of an operational failure (clap uses 2 for usage errors).
const EXIT_CODE_FAILURE: u8 = 1;

/// Exit code of `sluice doctor` when it could not check the host (a
/// configuration it cannot load, output it cannot write). Its 1 says the
/// host needs changes (SPEC §7), so its own failures need another code, or
/// a script would change a host because of a typo in a path. It is clap's
/// usage error code: in both cases nothing was checked.
const EXIT_CODE_DOCTOR_FAILED: u8 = 2;

/// Separator between columns of human-readable tables.
const COLUMN_GAP: &str = "  ";

/// Seconds since the Unix epoch, for token `iat`/`exp`.
fn now_unix() -> anyhow::Result<i64> {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    i64::try_from(elapsed.as_secs()).context("the system clock is beyond the year 292 billion")
}

/// A self-hosted Streaming Ingest appliance.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, propagate_version = true)]
pub struct Cli {
    /// Data directory [env: SLUICE_DATA_DIR] [default: ./sluice-data]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance in the foreground.
    Serve(ServeArgs),
    /// Add and list tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Add, list, delete and rotate API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Generate access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Add, list, show and delete streams.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Check this host for what sluice needs; exit 1 if something should
    /// change, 2 if the check could not run.
    Doctor(ops::DoctorArgs),
    /// Print a tenant's Postman v2.1 collection (one request per stream).
    Postman(ops::PostmanArgs),
    /// Add, list, show, edit, delete and run couriers; list their sample files.
    #[command(subcommand)]
    Courier(courier::CourierCommand),
    /// Add, activate, list, show, edit and delete feeds.
    #[command(subcommand)]
    Feed(courier::FeedCommand),
    /// List and show courier runs.
    #[command(subcommand)]
    Run(courier::RunCommand),
    /// List domain tables and show their rows.
    #[command(subcommand)]
    Table(courier::TableCommand),
    /// Run one read-only SELECT over a tenant's tables.
    Sql(courier::SqlArgs),
    /// Courier groups: scheduled, time-zone-aware runs of couriers.
    #[command(subcommand)]
    Group(group::GroupCommand),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Ingest listener address [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Admin and metrics listener address [default: 127.0.0.1:8081].
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Worker threads, one io_uring runtime each [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Add a tenant.
    Add {
        /// Tenant name: [a-z0-9][a-z0-9-]{0,62}.
        name: String,
    },
    /// List tenants.
    List(ListFormat),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Add a stream-write API key; prints its id.
    Add {
        #[arg(long)]
        tenant: String,
        /// A name to tell keys apart.
        #[arg(long)]
        name: String,
        /// Import the secret from this file (its bytes less one trailing
        /// newline, at least 32) instead of generating one.
        #[arg(long, value_name = "F")]
        secret_file: Option<PathBuf>,
    },
    /// List a tenant's keys (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        format: ListFormat,
    },
    /// Delete a key; its tokens stop working.
    Delete {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    /// Replace a key's secret; its old tokens stop working.
    Rotate {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Generate an access token; prints the JWT. It is not stored.
    Generate {
        #[arg(long)]
        tenant: String,
        /// The id of the key that signs the token.
        #[arg(long, value_name = "ID")]
        key: String,
        /// Lifetime in days (1–365).
        #[arg(
            long,
            value_name = "N",
            value_parser = clap::value_parser!(u32).range(i64::from(TOKEN_DAYS_MIN)..=i64::from(TOKEN_DAYS_MAX))
        )]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Add a stream; prints its id.
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// The payload type the stream accepts.
        #[arg(long, value_enum)]
        format: FormatArg,
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
    },
    /// List a tenant's streams.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        format: ListFormat,
    },
    /// Show one stream.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Delete a stream; it answers 404, its files stay on disk.
    Delete {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Debug, Args)]
struct ListFormat {
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Json,
    Xml,
}

impl From<FormatArg> for PayloadFormat {
    fn from(format: FormatArg) -> PayloadFormat {
        match format {
            FormatArg::Json => PayloadFormat::Json,
            FormatArg::Xml => PayloadFormat::Xml,
        }
    }
}

/// A clap usage error on one line: its first paragraph (the reason, with
/// any indented lines of it such as the missing arguments), without the
/// usage and tips that follow, and a pointer to `--help`.
fn usage_error_line(error: &clap::Error) -> String {
    if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // clap's "error" is then the whole help of the command.
        return "a subcommand is required (see --help)".to_string();
    }
    let text = error.render().to_string();
    let reason: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let reason = reason.join(" ");
    let reason = reason.strip_prefix("error: ").unwrap_or(&reason);
    format!("{reason} (see --help)")
}

/// Parses the process's arguments, runs the command, maps the outcome to an
/// exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with code 0. A usage error is
            // one line on stderr (SPEC §7: "an error exits non-zero with a
            // one-line reason") with code 2. Printing can only fail if both
            // are gone.
            if error.use_stderr() {
                let _ = writeln!(std::io::stderr(), "sluice: error: {}", usage_error_line(&error));
            } else {
                let _ = error.print();
            }
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let data_dir = resolve_data_dir(cli.data_dir.clone(), std::env::var_os(DATA_DIR_ENV));
    let doctor = matches!(cli.command, Command::Doctor(_));
    // Paths the appliance records (sample files, feed samples) and prints
    // must name the same file from any working directory.
    let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
    let outcome = match cli.command {
        // The server's threads log to stderr themselves: it must not run
        // while this thread holds the stdout and stderr locks.
        Command::Serve(args) => crate::server::run(&data_dir, serve_flags(args)),
        command => run(
            command,
            &data_dir,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` joins the context chain with ": "; a reason that
            // quotes several lines (a saved query) is folded onto one.
            let _ = writeln!(
                std::io::stderr(),
                "sluice: error: {}",
                one_line(&format!("{error:#}"))
            );
            ExitCode::from(failure_exit_code(doctor, &error))
        }
    }
}

/// The exit code of a command that failed with `error`: 1, except for a
/// doctor that failed for any other reason than its verdict on the host.
fn failure_exit_code(doctor: bool, error: &anyhow::Error) -> u8 {
    if doctor && error.downcast_ref::<ops::HostNeedsChanges>().is_none() {
        EXIT_CODE_DOCTOR_FAILED
    } else {
        EXIT_CODE_FAILURE
    }
}

/// `text` with its line breaks (and the indentation after them) folded
/// into single spaces: SPEC §7 promises a one-line reason.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The flag wins over the environment, the environment over the default.
/// An empty variable counts as unset, as it would with clap's `env`.
fn resolve_data_dir(flag: Option<PathBuf>, env: Option<OsString>) -> PathBuf {
    flag.or_else(|| env.filter(|value| !value.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT))
}

fn serve_flags(args: ServeArgs) -> ServeFlags {
    ServeFlags {
        config: args.config,
        listen: args.listen,
        admin_listen: args.admin_listen,
        workers: args.workers.map(usize::from),
    }
}

/// Runs one command. `out` gets only what SPEC §7 says a command prints;
/// `diagnostics` gets confirmations meant for a human.
fn run(
    command: Command,
    data_dir: &Path,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => crate::server::run(data_dir, serve_flags(args)),
        Command::Tenant(command) => run_tenant(command, &mut Store::open(data_dir)?, out, diagnostics),
        Command::Key(command) => run_key(command, &mut Store::open(data_dir)?, out, diagnostics),
        Command::Token(command) => run_token(command, &Store::open(data_dir)?, out),
        Command::Stream(command) => run_stream(command, &mut Store::open(data_dir)?, out, diagnostics),
        Command::Doctor(args) => ops::run_doctor(args, data_dir, out),
        Command::Postman(args) => ops::run_postman(args, &Store::open(data_dir)?, out),
        Command::Courier(command) => courier::run_courier(command, data_dir, out, diagnostics),
        Command::Feed(command) => courier::run_feed(command, data_dir, out, diagnostics),
        Command::Run(command) => courier::run_run(command, data_dir, out),
        Command::Table(command) => courier::run_table(command, data_dir, out),
        Command::Sql(args) => courier::run_sql(args, data_dir, out, diagnostics),
        Command::Group(command) => group::run(command, data_dir, out, diagnostics),
    }
}

fn run_tenant(
    command: TenantCommand,
    store: &mut Store,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        TenantCommand::Add { name } => {
            store.tenant_add(&name)?;
            writeln!(diagnostics, "sluice: added tenant {name}")?;
        }
        TenantCommand::List(format) => write_tenants(out, &store.tenant_list()?, format.json)?,
    }
    Ok(())
}

fn run_key(
    command: KeyCommand,
    store: &mut Store,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        KeyCommand::Add {
            tenant,
            name,
            secret_file,
        } => {
            let secret = secret_file.as_deref().map(store::read_secret_file).transpose()?;
            let shared_id = secret
                .as_deref()
                .map(|secret| crate::control::ids::imported_key_id(secret, &tenant));
            let id = store.key_add(&tenant, &name, secret)?;
            writeln!(out, "{id}")?;
            if shared_id.is_some_and(|shared| shared != id) {
                writeln!(
                    diagnostics,
                    "sluice: this secret was imported into tenant {tenant} before; the new key has a \
                     random id, so only this appliance accepts its tokens"
                )?;
            }
        }
        KeyCommand::List { tenant, format } => write_keys(out, &store.key_list(&tenant)?, format.json)?,
        KeyCommand::Delete { tenant, id } => {
            store.key_delete(&tenant, &id)?;
            writeln!(
                diagnostics,
                "sluice: deleted key {id} of tenant {tenant}; its tokens no longer verify"
            )?;
        }
        KeyCommand::Rotate { tenant, id } => {
            store.key_rotate(&tenant, &id)?;
            writeln!(
                diagnostics,
                "sluice: rotated key {id} of tenant {tenant}; tokens signed before now no longer verify"
            )?;
        }
    }
    Ok(())
}

fn run_token(command: TokenCommand, store: &Store, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        TokenCommand::Generate { tenant, key, days } => {
            let secret = store.key_secret(&tenant, &key)?;
            let token = crate::auth::sign_token(&secret, &key, &tenant, days, now_unix()?);
            writeln!(out, "{token}")?;
        }
    }
    Ok(())
}

fn run_stream(
    command: StreamCommand,
    store: &mut Store,
    out: &mut dyn Write,
    diagnostics: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        StreamCommand::Add {
            tenant,
            name,
            format,
            description,
        } => {
            let id = store.stream_add(&tenant, &name, format.into(), &description)?;
            writeln!(out, "{id}")?;
        }
        StreamCommand::List { tenant, format } => {
            write_streams(out, &store.stream_list(&tenant)?, format.json)?
        }
        StreamCommand::Show { tenant, id, json } => {
            write_stream(out, &store.stream_show(&tenant, &id)?, json)?
        }
        StreamCommand::Delete { tenant, id } => {
            store.stream_delete(&tenant, &id)?;
            writeln!(
                diagnostics,
                "sluice: deleted stream {id} of tenant {tenant}; its files stay on disk"
            )?;
        }
    }
    Ok(())
}

fn write_tenants(out: &mut dyn Write, tenants: &[TenantRecord], json: bool) -> anyhow::Result<()> {
    if json {
        return write_json(out, tenants);
    }
    let rows: Vec<Vec<&str>> = tenants
        .iter()
        .map(|tenant| vec![tenant.name.as_str(), tenant.created_at.as_str()])
        .collect();
    write_table(out, &["NAME", "CREATED"], &rows)
}

fn write_keys(out: &mut dyn Write, keys: &[KeyRecord], json: bool) -> anyhow::Result<()> {
    if json {
        return write_json(out, keys);
    }
    let rows: Vec<Vec<&str>> = keys
        .iter()
        .map(|key| {
            vec![
                key.id.as_str(),
                key.name.as_str(),
                key.permission.as_str(),
                key.created_at.as_str(),
                key.rotated_at.as_deref().unwrap_or("-"),
            ]
        })
        .collect();
    write_table(out, &["ID", "NAME", "PERMISSION", "CREATED", "ROTATED"], &rows)
}

fn write_streams(out: &mut dyn Write, streams: &[StreamRecord], json: bool) -> anyhow::Result<()> {
    if json {
        return write_json(out, streams);
    }
    let rows: Vec<Vec<&str>> = streams
        .iter()
        .map(|stream| {
            vec![
                stream.id.as_str(),
                stream.name.as_str(),
                stream.format.as_str(),
                stream.created_at.as_str(),
                stream.description.as_str(),
            ]
        })
        .collect();
    write_table(out, &["ID", "NAME", "FORMAT", "CREATED", "DESCRIPTION"], &rows)
}

/// One stream as `field: value` lines, or as one JSON object.
fn write_stream(out: &mut dyn Write, stream: &StreamRecord, json: bool) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, stream)?;
        writeln!(out)?;
        return Ok(());
    }
    let rows = vec![
        vec!["id:", stream.id.as_str()],
        vec!["tenant:", stream.tenant.as_str()],
        vec!["name:", stream.name.as_str()],
        vec!["format:", stream.format.as_str()],
        vec!["description:", stream.description.as_str()],
        vec!["created:", stream.created_at.as_str()],
    ];
    write_rows(out, &rows)
}

fn write_json<T: serde::Serialize>(out: &mut dyn Write, items: &[T]) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, items)?;
    writeln!(out)?;
    Ok(())
}

/// A header row and the rows below it, columns aligned.
fn write_table(out: &mut dyn Write, header: &[&str], rows: &[Vec<&str>]) -> anyhow::Result<()> {
    let mut all = Vec::with_capacity(rows.len() + 1);
    all.push(header.to_vec());
    all.extend(rows.iter().cloned());
    write_rows(out, &all)
}

/// Pads every column but the last to its widest cell, so a long last
/// column (a description) does not push trailing blanks onto every line.
fn write_rows(out: &mut dyn Write, rows: &[Vec<&str>]) -> anyhow::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            if index + 1 == row.len() {
                line.push_str(cell);
            } else {
                let padding = widths[index] - cell.chars().count();
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', padding));
                line.push_str(COLUMN_GAP);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A data directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let unique = NEXT.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("sluice-cli-test-{}-{label}-{unique}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Parses and runs `args` (without the program name) against `dir`,
    /// returning stdout on success and the one-line error on failure.
    fn sluice(dir: &TempDir, args: &[&str]) -> Result<String, String> {
        let cli = Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()))
            .map_err(|error| format!("usage: {}", error.kind()))?;
        let mut out = Vec::new();
        let mut diagnostics = Vec::new();
        run(cli.command, &dir.0, &mut out, &mut diagnostics).map_err(|error| format!("{error:#}"))?;
        Ok(String::from_utf8(out).expect("output is UTF-8"))
    }

    #[test]
    fn argument_table() {
        let good: &[&[&str]] = &[
            &["serve"],
            &[
                "serve",
                "--listen",
                "0.0.0.0:9000",
                "--admin-listen",
                "[::1]:9001",
                "--workers",
                "2",
            ],
            &["--data-dir", "/x", "tenant", "list"],
            &["tenant", "list", "--data-dir", "/x", "--json"],
            &["key", "add", "--tenant", "t", "--name", "n", "--secret-file", "f"],
            &["key", "rotate", "--tenant", "t", "ak-0123456789abcdef"],
            &["token", "generate", "--tenant", "t", "--key", "k", "--days", "1"],
            &[
                "token", "generate", "--tenant", "t", "--key", "k", "--days", "365",
            ],
            &["stream", "add", "--tenant", "t", "--name", "n", "--format", "xml"],
            &["stream", "show", "--tenant", "t", "is-AbCDefGH", "--json"],
        ];
        for args in good {
            let parsed = Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()));
            assert!(parsed.is_ok(), "{args:?}: {:?}", parsed.err());
        }
        let bad: &[&[&str]] = &[
            &[],
            &["serve", "--listen", "localhost"],
            &["serve", "--workers", "0"],
            &["tenant", "add"],
            &["key", "add", "--name", "n"],
            &["key", "delete", "--tenant", "t"],
            &["token", "generate", "--tenant", "t", "--key", "k", "--days", "0"],
            &[
                "token", "generate", "--tenant", "t", "--key", "k", "--days", "366",
            ],
            &["token", "generate", "--tenant", "t", "--key", "k"],
            &["stream", "add", "--tenant", "t", "--name", "n", "--format", "csv"],
            &["stream", "list", "--tenant", "t", "--yaml"],
        ];
        for args in bad {
            let parsed = Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()));
            let error = parsed.err().unwrap_or_else(|| panic!("{args:?} parsed"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
            if error.use_stderr() {
                let line = usage_error_line(&error);
                assert!(
                    !line.contains('\n') && !line.starts_with("error:"),
                    "{args:?}: {line}"
                );
                assert!(line.ends_with(" (see --help)"), "{args:?}: {line}");
            }
        }
        let bare = Cli::try_parse_from(["sluice", "tenant"]).expect_err("no subcommand");
        assert_eq!(usage_error_line(&bare), "a subcommand is required (see --help)");
        let missing = Cli::try_parse_from(["sluice", "key", "add", "--name", "n"]).expect_err("missing");
        assert_eq!(
            usage_error_line(&missing),
            "the following required arguments were not provided: --tenant <TENANT> (see --help)"
        );
    }

    #[test]
    fn serve_flags_are_passed_through() {
        let cli = Cli::try_parse_from([
            "sluice",
            "serve",
            "--config",
            "/etc/sluice.toml",
            "--listen",
            "0.0.0.0:9000",
            "--workers",
            "3",
        ])
        .expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.config, Some(PathBuf::from("/etc/sluice.toml")));
        assert_eq!(args.listen, Some("0.0.0.0:9000".parse().expect("addr")));
        assert_eq!(args.admin_listen, None);
        assert_eq!(args.workers, Some(3));
    }

    #[test]
    fn error_reasons_are_folded_onto_one_line() {
        assert_eq!(
            one_line(
                "the query does not compile: no such function: f in SELECT\n  f(record) AS x\nFROM raw at offset 9"
            ),
            "the query does not compile: no such function: f in SELECT f(record) AS x FROM raw at offset 9"
        );
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn doctor_exits_2_when_it_could_not_check_and_1_only_for_its_verdict() {
        let dir = TempDir::new("doctor");
        std::fs::create_dir_all(&dir.0).expect("mkdir");
        let bad = dir.0.join("bad.toml");
        std::fs::write(&bad, "workers = 0\n").expect("write");
        let missing = dir.0.join("missing.toml");
        for config in [&bad, &missing] {
            let config = config.to_str().expect("utf-8 path");
            let cli = Cli::try_parse_from(["sluice", "doctor", "--config", config]).expect("parses");
            let error = run(cli.command, &dir.0, &mut Vec::new(), &mut Vec::new()).expect_err("no config");
            assert_eq!(failure_exit_code(true, &error), 2, "{config}: {error:#}");
        }
        for (changes, reason) in [
            (1, "the host needs 1 change (the line starting with change:)"),
            (3, "the host needs 3 changes (the lines starting with change:)"),
        ] {
            let verdict = anyhow::Error::new(ops::HostNeedsChanges { changes });
            assert_eq!(failure_exit_code(true, &verdict), 1);
            assert_eq!(format!("{verdict:#}"), reason);
        }
        // Every other command keeps 1 for every failure.
        let other = anyhow::anyhow!("unknown tenant \"x\"");
        assert_eq!(failure_exit_code(false, &other), 1);
    }

    #[test]
    fn data_dir_resolution_table() {
        let cases: &[(Option<&str>, Option<&str>, &str)] = &[
            (Some("/flag"), Some("/env"), "/flag"),
            (None, Some("/env"), "/env"),
            (None, Some(""), "./sluice-data"),
            (None, None, "./sluice-data"),
            (Some("rel"), None, "rel"),
        ];
        for &(flag, env, expected) in cases {
            let resolved = resolve_data_dir(flag.map(PathBuf::from), env.map(OsString::from));
            assert_eq!(resolved, PathBuf::from(expected), "{flag:?} {env:?}");
        }
    }

    #[test]
    fn tables_are_aligned_with_a_header() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["is-AbCDefGH", "web", ""],
            vec!["is-x", "orders-long", "Ünïcode"],
        ];
        write_table(&mut out, &["ID", "NAME", "DESCRIPTION"], &rows).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "ID           NAME         DESCRIPTION\n\
             is-AbCDefGH  web\n\
             is-x         orders-long  Ünïcode\n"
        );
    }

    #[test]
    fn commands_print_ids_alone_and_lists_as_json() {
        let dir = TempDir::new("flow");
        assert_eq!(sluice(&dir, &["tenant", "add", "acme"]), Ok(String::new()));
        let key = sluice(&dir, &["key", "add", "--tenant", "acme", "--name", "ci"]).expect("key");
        let key = key.strip_suffix('\n').expect("one line");
        assert!(crate::control::ids::is_key_id(key), "{key:?}");

        let listed = sluice(&dir, &["key", "list", "--tenant", "acme", "--json"]).expect("list");
        let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
        assert_eq!(listed.as_array().map(Vec::len), Some(1));
        assert_eq!(listed[0]["id"], key);
        assert_eq!(listed[0]["permission"], "stream-write");
        assert!(listed[0].get("secret").is_none());

        let stream = sluice(
            &dir,
            &[
                "stream", "add", "--tenant", "acme", "--name", "web", "--format", "json",
            ],
        )
        .expect("stream");
        let stream = stream.strip_suffix('\n').expect("one line");
        assert!(crate::control::ids::is_stream_id(stream), "{stream:?}");
        let shown = sluice(&dir, &["stream", "show", "--tenant", "acme", stream, "--json"]).expect("show");
        let shown: serde_json::Value = serde_json::from_str(&shown).expect("json");
        assert_eq!(shown["format"], "json");
        assert_eq!(shown["name"], "web");

        let token = sluice(
            &dir,
            &[
                "token", "generate", "--tenant", "acme", "--key", key, "--days", "7",
            ],
        )
        .expect("token");
        assert_eq!(token.lines().count(), 1, "{token:?}");
        assert!(token.len() > 1);

        assert_eq!(
            sluice(&dir, &["stream", "delete", "--tenant", "acme", stream]),
            Ok(String::new())
        );
        assert_eq!(
            sluice(&dir, &["stream", "list", "--tenant", "acme", "--json"]),
            Ok("[]\n".to_string())
        );
        assert_eq!(
            sluice(&dir, &["stream", "list", "--tenant", "acme"]),
            Ok("ID  NAME  FORMAT  CREATED  DESCRIPTION\n".to_string())
        );
    }

    #[test]
    fn operational_errors_are_one_line() {
        let dir = TempDir::new("errors");
        let secret = dir.0.join("short-secret");
        std::fs::create_dir_all(&dir.0).expect("mkdir");
        std::fs::write(&secret, b"0123456789\n").expect("write");
        let secret = secret.to_str().expect("utf-8 path");
        sluice(&dir, &["tenant", "add", "acme"]).expect("tenant");
        let cases: Vec<(Vec<&str>, String)> = vec![
            (
                vec!["key", "list", "--tenant", "x"],
                "unknown tenant \"x\"".to_string(),
            ),
            (
                vec!["key", "delete", "--tenant", "acme", "ak-0123456789abcdef"],
                "no key ak-0123456789abcdef in tenant \"acme\"".to_string(),
            ),
            (
                vec![
                    "token", "generate", "--tenant", "acme", "--key", "ak-x", "--days", "1",
                ],
                "no key ak-x in tenant \"acme\"".to_string(),
            ),
            (
                vec![
                    "key",
                    "add",
                    "--tenant",
                    "acme",
                    "--name",
                    "n",
                    "--secret-file",
                    secret,
                ],
                format!(
                    "secret file {secret:?} is 10 bytes (less one trailing newline); at least 32 \
                     are required"
                ),
            ),
            (
                vec!["tenant", "add", "acme"],
                "tenant \"acme\" already exists".to_string(),
            ),
        ];
        for (args, expected) in cases {
            let outcome = sluice(&dir, &args);
            assert_eq!(outcome, Err(expected), "{args:?}");
        }
    }
}
