//! The `sluice` binary: parse the command line, run it, map the outcome to an
//! exit code. Everything else lives in the library.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sluice::cli::main()
}
