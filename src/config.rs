//! Raw settings (embedded defaults, TOML file, `SLUICE_*` environment,
//! flags) turned into one validated [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

/// What `sluice serve` was given on its command line.
#[derive(Debug, Default, Clone)]
pub struct ServeFlags {
    pub config: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub workers: Option<usize>,
}
