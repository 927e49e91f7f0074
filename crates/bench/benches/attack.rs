//! `cargo bench -p bench --bench attack [-- --intrusions N --sockets N --connects-per-s N --logins N]`:
//! see `bench::attack`.

fn main() -> std::process::ExitCode {
    bench::attack::main()
}
