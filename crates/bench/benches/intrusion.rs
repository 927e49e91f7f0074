//! `cargo bench -p bench --bench intrusion [-- --seconds N] [--quick]`: see the `bench` crate's documentation.

fn main() -> std::process::ExitCode {
    // Run again as the minimal controller's own process (see bench::minimal).
    if let Some(code) = bench::minimal::serve_if_asked() {
        return code;
    }
    // The panel in this process checks codes with Argon2, as its own binary does.
    device_runtime::process::return_large_blocks_to_the_os();
    bench::main(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
}
