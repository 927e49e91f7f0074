//! `cargo bench -p bench --bench scale [-- --sensors 10,1000,10000 --rounds 15]`: see `bench::scale`.

fn main() -> std::process::ExitCode {
    bench::scale::main()
}
