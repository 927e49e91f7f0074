//! The binary's flags as people type them: durations read `1s`, `500ms`, `2m`.

use std::process::Command;

fn print_config(args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_circadian-sensor"))
        .current_dir(dir.path())
        .args(args)
        .arg("--print-config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn a_phase_interval_reads_as_a_duration() {
    for (flag, printed) in [
        ("1s", "phase_interval_s = 1.0"),
        ("500ms", "phase_interval_s = 0.5"),
        ("2m", "phase_interval_s = 120.0"),
        ("3", "phase_interval_s = 3.0"),
    ] {
        let (ok, text) = print_config(&["--phase-interval", flag]);
        assert!(ok && text.contains(printed), "--phase-interval {flag}:\n{text}");
    }
    let (ok, text) = print_config(&["--phase-interval", "soon"]);
    assert!(!ok && text.contains("500ms"), "{text}");
}

#[test]
fn home_assistant_discovery_flags_are_read_and_checked() {
    let (ok, text) = print_config(&[]);
    assert!(
        ok && text.contains("ha_discovery = true") && text.contains(r#"ha_discovery_prefix = "homeassistant""#),
        "{text}"
    );
    let (ok, text) = print_config(&["--ha-discovery", "false", "--ha-discovery-prefix", "ha/home"]);
    assert!(
        ok && text.contains("ha_discovery = false") && text.contains(r#"ha_discovery_prefix = "ha/home""#),
        "{text}"
    );
    for bad in ["ha/#", "+", "", "/ha"] {
        let (ok, text) = print_config(&["--ha-discovery-prefix", bad]);
        assert!(!ok && text.contains("mqtt.ha_discovery_prefix") && text.contains("homeassistant"), "{bad}:\n{text}");
        assert_eq!(text.lines().filter(|l| !l.trim().is_empty()).count(), 1, "one clear line:\n{text}");
    }
}
