//! One monoio (io_uring) runtime per core, each with its own SO_REUSEPORT
//! listener; startup, recovery and shutdown.

use std::path::Path;

use crate::config::ServeFlags;

/// Runs the appliance in the foreground until SIGTERM or SIGINT.
pub fn run(data_dir: &Path, flags: ServeFlags) -> anyhow::Result<()> {
    let _ = (data_dir, flags);
    anyhow::bail!("serve is not built yet")
}
