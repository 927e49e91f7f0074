//! `cargo bench -p bench --bench adapter [-- --intrusions N]`: see `bench::adapter`.

fn main() -> std::process::ExitCode {
    bench::adapter::main()
}
