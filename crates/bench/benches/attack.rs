//! `cargo bench -p bench --bench attack [-- --intrusions N --sockets N --connects-per-s N --logins N]`:
//! see `bench::attack`.

fn main() -> std::process::ExitCode {
    // The panel in this process checks codes with Argon2, as its own binary does.
    device_runtime::process::return_large_blocks_to_the_os();
    bench::attack::main()
}
