// Pages are built from many short-lived strings and JSON values; glibc's
// allocator showed up as a fifth of the CPU in `lyceum bench` profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lyceum::cli::main()
}
