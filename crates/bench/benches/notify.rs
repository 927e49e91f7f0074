//! `cargo bench -p bench --bench notify [-- --intrusions N]`: see `bench::notify`.

fn main() -> std::process::ExitCode {
    bench::notify::main()
}
