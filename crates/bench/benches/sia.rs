//! `cargo bench -p bench --bench sia [-- --intrusions N]`: see `bench::sia`.

fn main() -> std::process::ExitCode {
    device_runtime::process::return_large_blocks_to_the_os();
    bench::sia::main()
}
