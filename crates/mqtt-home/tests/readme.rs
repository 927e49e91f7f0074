//! Every command line the README and the justfile show still works as written.
//!
//! A user's first custom run is a line copied from the README; when a flag is renamed, that line
//! must fail here, not on their machine. Each `sh` block of README.md and docs/*.md is read line by line (and
//! each justfile recipe line that runs `mqtt-home`), split as a shell would, and checked by what it
//! runs:
//! - `mqtt-home` (as `cargo run -p mqtt-home -- …` or bare): parsed by the binary's own parser,
//!   [`mqtt_home::cli::Args`], including what `main` does with a top-level `--config-dir`;
//! - a daemon (`cargo run -p light-bulb -- …`, `cargo run --bin door-sensor -- …`): the built binary
//!   run with the line's flags and `--print-config`, which parses and exits without connecting;
//! - `just RECIPE`: the recipe exists in the justfile; a repository script: the file exists;
//! - a handful of other programs (docker, cargo test…) are named in [`OTHER_PROGRAMS`]; anything else
//!   fails the test, so a new kind of line gets a check rather than a pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use mqtt_home::cli::Args;

/// Programs the README may show that this test does not run: another tool's command line.
const OTHER_PROGRAMS: &[&str] = &["docker", "podman-compose", "mosquitto_sub", "mosquitto_pub"];

/// The daemons' binaries, by name.
const DAEMONS: &[&str] = &[
    "alarm-actuator",
    "bridge",
    "circadian-sensor",
    "dashboard",
    "door-sensor",
    "light-bulb",
    "light-controller",
    "motion-sensor",
    "notifier",
    "recorder",
    "security-controller",
    "window-sensor",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// What one README line runs.
#[derive(Debug, PartialEq)]
enum Line {
    MqttHome(Vec<String>),
    Daemon { binary: String, args: Vec<String> },
    Recipe(String),
    Script(String),
    CargoTest,
    Other,
}

/// Splits a shell line into words: quotes, `\` escapes, a `#` comment; `$(…)` becomes one word
/// `1` (in the README it is a pid).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' if word.is_none() => break,
            ' ' | '\t' => words.extend(word.take()),
            '\'' | '"' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    w.push(q);
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '$' if chars.peek() == Some(&'(') => {
                let mut depth = 0;
                for q in chars.by_ref() {
                    match q {
                        '(' => depth += 1,
                        ')' if depth == 1 => break,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
                word.get_or_insert_with(String::new).push('1');
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// Reads what a split line runs, or why it cannot be read.
fn classify(words: &[String]) -> Result<Line, String> {
    // Leading `NAME=value` words set the environment.
    let is_variable = |w: &String| w.contains('=') && !w.starts_with('-');
    let start = words.iter().position(|w| !is_variable(w)).ok_or("only variables")?;
    let words = &words[start..];
    let (program, rest) = words.split_first().ok_or("empty")?;
    let rest: Vec<String> = rest.to_vec();
    match program.as_str() {
        "cargo" if rest.first().map(String::as_str) == Some("test") => Ok(Line::CargoTest),
        "cargo" if rest.first().map(String::as_str) == Some("run") => {
            let (flags, args) = match rest.iter().position(|w| w == "--") {
                Some(i) => (&rest[1..i], rest[i + 1..].to_vec()),
                None => (&rest[1..], Vec::new()),
            };
            let named = |flag: &str| flags.iter().position(|w| w == flag).and_then(|i| flags.get(i + 1)).cloned();
            let binary = named("--bin").or_else(|| named("-p")).ok_or("cargo run without -p or --bin")?;
            if binary == "mqtt-home" {
                Ok(Line::MqttHome(args))
            } else if DAEMONS.contains(&binary.as_str()) {
                Ok(Line::Daemon { binary, args })
            } else {
                Err(format!("cargo run of `{binary}`, which is neither mqtt-home nor a daemon"))
            }
        }
        "mqtt-home" => Ok(Line::MqttHome(rest)),
        "just" => Ok(Line::Recipe(rest.first().cloned().unwrap_or_default())),
        "bash" | "sh" => Ok(Line::Script(rest.first().cloned().ok_or("bash without a script")?)),
        p if p.contains('/') => Ok(Line::Script(p.to_string())),
        p if OTHER_PROGRAMS.contains(&p) => Ok(Line::Other),
        p => Err(format!("`{p}`: a program this test does not know; check it here (or list it in OTHER_PROGRAMS)")),
    }
}

/// The lines of the `sh` blocks of README.md and every page of docs/: (file, line number, line).
fn readme_lines() -> Vec<(String, usize, String)> {
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut lines = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(repo().join(&file)).unwrap();
        let mut in_sh = false;
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if let Some(lang) = trimmed.strip_prefix("```") {
                in_sh = !in_sh && matches!(lang, "sh" | "bash" | "shell" | "console");
                continue;
            }
            if in_sh && !trimmed.is_empty() && !trimmed.starts_with('#') {
                lines.push((file.clone(), n + 1, trimmed.to_string()));
            }
        }
    }
    lines
}

/// The justfile's recipes: name → its parameters' defaults (`*flags` → empty).
fn recipes() -> Vec<(String, Vec<(String, String)>)> {
    let text = std::fs::read_to_string(repo().join("justfile")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with([' ', '\t', '#', '[']) && l.trim_end().ends_with(':') && !l.contains(":="))
        .map(|l| {
            let mut parts = words(l.trim_end().trim_end_matches(':')).into_iter();
            let name = parts.next().unwrap_or_default();
            let params = parts
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (p.trim_start_matches(['*', '+']).to_string(), String::new()),
                })
                .collect();
            (name, params)
        })
        .collect()
}

/// The justfile's lines that run `mqtt-home` (`{{home}} …`), with their parameters filled in by
/// their defaults (or a plausible value), as `mqtt-home` arguments.
fn just_lines() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(repo().join("justfile")).unwrap();
    let recipes = recipes();
    let mut current: Option<&(String, Vec<(String, String)>)> = None;
    let mut lines = Vec::new();
    for line in text.lines() {
        if let Some(recipe) = recipes
            .iter()
            .find(|(name, _)| line.starts_with(&format!("{name}:")) || line.starts_with(&format!("{name} ")))
        {
            current = Some(recipe);
            continue;
        }
        let Some(rest) = line.trim().strip_prefix("{{home}}") else { continue };
        let (name, params) = current.expect("a recipe line outside a recipe");
        let mut filled = rest.replace("{{broker_url}}", "mqtt://127.0.0.1:1883");
        for (param, default) in params {
            let value = if default.is_empty() && param == "file" { "scenarios/intrusion.toml" } else { default };
            filled = filled.replace(&format!("{{{{{param}}}}}"), value);
        }
        assert!(!filled.contains("{{"), "justfile recipe `{name}`: a variable this test cannot fill: {line}");
        lines.push((name.clone(), words(&filled)));
    }
    lines
}

fn parse_mqtt_home(args: &[String]) -> Result<(), String> {
    let argv = std::iter::once("mqtt-home".to_string()).chain(args.iter().cloned());
    let mut parsed = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
    parsed.command().map(|_| ()).map_err(|e| e.to_string())
}

fn binaries() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(repo())
        .args(["build", "--workspace", "--bins"])
        .args(DAEMONS.iter().flat_map(|d| ["--bin", d]))
        .status()
        .expect("cannot run cargo");
    assert!(status.success(), "cargo build of the daemons failed");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"));
    target.join("debug")
}

/// Runs the daemon with the line's flags and `--print-config`: Ok unless clap refused them.
fn parse_daemon(dir: &Path, binary: &str, args: &[String]) -> Result<(), String> {
    let output = Command::new(dir.join(binary))
        .current_dir(repo())
        .args(args)
        .arg("--print-config")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .map_err(|e| format!("cannot run {binary}: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    // clap's refusals end with a usage line; a configuration refused (e.g. the README's
    // `--config my-bridge.toml`, a file of the reader's) is the daemon's own one-line error.
    if stderr.contains("Usage:") || stderr.contains("try '--help'") {
        return Err(stderr.trim().to_string());
    }
    if !output.status.success() {
        eprintln!("  (parsed; {binary} then said: {})", stderr.trim());
    }
    Ok(())
}

#[test]
fn every_command_line_in_the_readme_runs_as_written() {
    let lines = readme_lines();
    assert!(
        lines.len() > 20,
        "README.md and docs/ have only {} shell lines: did the block markers change?",
        lines.len()
    );
    let recipes = recipes();
    let dir = binaries();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, n, line) in &lines {
        let outcome = classify(&words(line)).and_then(|what| match what {
            Line::MqttHome(args) => parse_mqtt_home(&args),
            Line::Daemon { binary, args } => parse_daemon(&dir, &binary, &args),
            Line::Recipe(name) => match recipes.iter().any(|(r, _)| *r == name) {
                true => Ok(()),
                false => Err(format!("the justfile has no recipe `{name}`")),
            },
            Line::Script(path) => match repo().join(&path).is_file() {
                true => Ok(()),
                false => Err(format!("no file {path} in the repository")),
            },
            Line::CargoTest | Line::Other => Ok(()),
        });
        checked += 1;
        if let Err(e) = outcome {
            failures.push(format!("{file}:{n}: {line}\n    {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} README lines do not run as written:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_mqtt_home_line_of_the_justfile_parses() {
    let lines = just_lines();
    assert!(lines.len() > 15, "only {} justfile lines run {{{{home}}}}: did the variable change?", lines.len());
    let failures: Vec<String> = lines
        .iter()
        .filter_map(|(recipe, args)| {
            parse_mqtt_home(args).err().map(|e| format!("just {recipe}: mqtt-home {}\n    {e}", args.join(" ")))
        })
        .collect();
    assert!(failures.is_empty(), "justfile recipes that no longer parse:\n{}", failures.join("\n"));
}

#[test]
fn the_checker_refuses_what_no_longer_parses() {
    // The test above must be able to fail: a renamed flag, an unknown subcommand, a top-level
    // --config-dir on a command that reads none, an unknown daemon flag.
    for bad in ["--config-directory config", "arm sideways", "--config-dir config status", "history --since"] {
        let args = words(bad);
        assert!(parse_mqtt_home(&args).is_err(), "`mqtt-home {bad}` parsed");
    }
    assert!(parse_mqtt_home(&words("--config-dir config")).is_ok());
    assert_eq!(
        classify(&words("MQTT_HOME_PIN=1234 cargo run --release -p mqtt-home -- disarm    # just disarm")),
        Ok(Line::MqttHome(vec!["disarm".into()]))
    );
    assert_eq!(
        classify(&words("cargo run -q --bin door-sensor -- --id 'front door' --once open")),
        Ok(Line::Daemon {
            binary: "door-sensor".into(),
            args: vec!["--id".into(), "front door".into(), "--once".into(), "open".into()]
        })
    );
    assert!(classify(&words("frobnicate --now")).is_err());
    let dir = binaries();
    assert!(parse_daemon(&dir, "light-bulb", &words("--id kitchen --no-such-flag")).is_err());
    assert!(parse_daemon(&dir, "light-bulb", &words("--id kitchen")).is_ok());
}
