//! `window-sensor`: a simulated window sensor. See the `binary-sensor` library for what it does.

fn main() -> std::process::ExitCode {
    binary_sensor::cli::main::<binary_sensor::WindowConfig>(protocol::SensorKind::Window)
}
