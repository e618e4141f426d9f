//! The operator surface (SPEC §7).
pub fn main() -> std::process::ExitCode { std::process::ExitCode::FAILURE }
