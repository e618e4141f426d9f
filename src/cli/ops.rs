//! The operator's host and client helpers: `sluice doctor` and
//! `sluice postman` (issue 5).
//!
//! This module owns their flags and the glue from flags to [`crate::doctor`]
//! and [`crate::postman`]. It promises the CLI contract of SPEC §7: the
//! findings or the collection on stdout; when the doctor found something to
//! change, one `sluice: error:` line on stderr (printed by the caller) and
//! exit code 1.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::Args;

use crate::config::{Config, ServeFlags};
use crate::control::store::Store;

#[derive(Debug, Args)]
pub(super) struct DoctorArgs {
    /// The TOML configuration `sluice serve` will run with (workers and
    /// connection limits decide what the host must offer).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct PostmanArgs {
    #[arg(long)]
    tenant: String,
    /// Only this stream [default: every live stream of the tenant].
    #[arg(long, value_name = "ID")]
    stream: Option<String>,
    /// Default of the collection's `host` variable.
    #[arg(long, value_name = "URL", default_value = crate::postman::HOST_DEFAULT)]
    host: String,
}

/// Checks the host; an error (exit 1) when any finding asks for a change.
pub(super) fn run_doctor(args: DoctorArgs, data_dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let flags = ServeFlags {
        config: args.config,
        ..ServeFlags::default()
    };
    let config = Config::load(&flags).map_err(|error| anyhow!(error))?;
    let changes = crate::doctor::run(data_dir, &config, out)?;
    out.flush()?;
    match changes {
        0 => Ok(()),
        1 => bail!("the host needs 1 change (the line starting with change:)"),
        n => bail!("the host needs {n} changes (the lines starting with change:)"),
    }
}

/// Prints the tenant's Postman collection as pretty JSON.
pub(super) fn run_postman(args: PostmanArgs, store: &Store, out: &mut dyn Write) -> anyhow::Result<()> {
    let streams = match &args.stream {
        Some(id) => vec![store.stream_show(&args.tenant, id)?],
        None => store.stream_list(&args.tenant)?,
    };
    let host = args.host.trim_end_matches('/');
    let collection = crate::postman::collection(&args.tenant, host, &streams);
    serde_json::to_writer_pretty(&mut *out, &collection)?;
    writeln!(out)?;
    Ok(())
}
