//! The operator's host and client helpers: `sluice doctor` and
//! `sluice postman` (issue 5).
//!
//! This module owns their flags and the glue from flags to [`crate::doctor`]
//! and [`crate::postman`]. It promises the CLI contract of SPEC §7: the
//! findings or the collection on stdout; when the doctor found something to
//! change, one `sluice: error:` line on stderr (printed by the caller) and
//! exit code 1, said by returning [`HostNeedsChanges`]. Any other error of
//! the doctor (a configuration it cannot load, findings it cannot print)
//! means it judged nothing; the caller exits 2 for those, so a script can
//! tell "change the host" from "the check did not run".

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
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

/// The doctor's verdict that the host needs changes: the one error of
/// `sluice doctor` that is about the host rather than the doctor.
#[derive(Debug)]
pub(super) struct HostNeedsChanges {
    /// How many findings said `change:`; at least one.
    pub(super) changes: usize,
}

impl fmt::Display for HostNeedsChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.changes {
            1 => write!(f, "the host needs 1 change (the line starting with change:)"),
            n => write!(f, "the host needs {n} changes (the lines starting with change:)"),
        }
    }
}

impl std::error::Error for HostNeedsChanges {}

/// Checks the host: [`HostNeedsChanges`] when any finding asks for a
/// change, another error when the check could not be made or printed.
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
        changes => Err(HostNeedsChanges { changes }.into()),
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
