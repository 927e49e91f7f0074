//! `cargo bench -p bench --bench notify [-- --intrusions N]`: see `bench::notify`.

fn main() -> std::process::ExitCode {
    // The panel in this process checks codes with Argon2, as its own binary does.
    device_runtime::process::return_large_blocks_to_the_os();
    bench::notify::main()
}
