//! `cargo bench -p bench --bench adapter [-- --intrusions N]`: see `bench::adapter`.

fn main() -> std::process::ExitCode {
    // The panel in this process checks codes with Argon2, as its own binary does.
    device_runtime::process::return_large_blocks_to_the_os();
    bench::adapter::main()
}
