//! `cargo bench -p bench --bench recorder [-- --messages N]`: see `bench::ingest`.

fn main() -> std::process::ExitCode {
    bench::ingest::main(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
}
