//! `cargo bench -p bench --bench intrusion [-- --seconds N] [--quick]`: see the `bench` crate's documentation.

fn main() -> std::process::ExitCode {
    bench::main(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
}
