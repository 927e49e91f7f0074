//! `motion-sensor`: a simulated motion sensor. See the `binary-sensor` library for what it does.

fn main() -> std::process::ExitCode {
    binary_sensor::cli::main::<binary_sensor::MotionConfig>(protocol::SensorKind::Motion)
}
