//! `cargo bench -p bench --bench home_assistant [-- --openings N]`: see `bench::home_assistant`.

fn main() -> std::process::ExitCode {
    bench::home_assistant::main()
}
