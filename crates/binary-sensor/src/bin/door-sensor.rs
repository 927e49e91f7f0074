//! `door-sensor`: a simulated door sensor. See the `binary-sensor` library for what it does.

fn main() -> std::process::ExitCode {
    binary_sensor::cli::main::<binary_sensor::DoorConfig>(protocol::SensorKind::Door)
}
