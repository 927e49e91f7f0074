//! The workspace's rules, checked mechanically (as rust-analyzer's tidy tests do). Each rule is a
//! pure function of the workspace's [`Workspace`] (read from `cargo metadata`) or of a file's text,
//! returning what breaks it; `tests/tidy.rs` runs them on this workspace, and the unit tests below
//! show each one failing on a deliberate violation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// One package of the workspace, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    /// The directory under `crates/`.
    pub dir: String,
    /// Its normal dependencies (not dev or build), by package name.
    pub dependencies: BTreeSet<String>,
    /// Whether it builds a binary.
    pub has_binary: bool,
}

/// The workspace's packages by name.
pub type Workspace = BTreeMap<String, Package>;

/// The one crate that may depend on daemons: it starts them all in one process.
pub const COMPOSITION_ROOT: &str = "mqtt-home";
/// Crates that exist to measure, load or test the daemons, so depend on them.
pub const HARNESSES: &[&str] = &["bench", "fleet", "testkit", "tidy"];
/// What `protocol` may depend on: nothing async, nothing MQTT-client specific.
pub const PROTOCOL_MAY_USE: &[&str] = &["serde", "serde_json", "thiserror", "jiff", "humantime"];

/// Reads the workspace at `root` with `cargo metadata --no-deps` (no network, no build).
pub fn read_workspace(root: &Path) -> Result<Workspace, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    parse_workspace(&metadata)
}

/// The packages of a `cargo metadata` document.
pub fn parse_workspace(metadata: &serde_json::Value) -> Result<Workspace, String> {
    let packages = metadata["packages"].as_array().ok_or("cargo metadata: no packages")?;
    let mut workspace = Workspace::new();
    for p in packages {
        let name = p["name"].as_str().ok_or("a package without a name")?.to_owned();
        let manifest = p["manifest_path"].as_str().unwrap_or_default();
        let dir = Path::new(manifest)
            .parent()
            .and_then(Path::file_name)
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dependencies = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect();
        let has_binary = p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")));
        workspace.insert(name.clone(), Package { name, dir, dependencies, has_binary });
    }
    Ok(workspace)
}

/// Daemon crates: a binary that runs on the shared device runtime (not the composition root).
pub fn daemons(workspace: &Workspace) -> BTreeSet<String> {
    workspace
        .values()
        .filter(|p| p.has_binary && p.dependencies.contains("device-runtime") && p.name != COMPOSITION_ROOT)
        .map(|p| p.name.clone())
        .collect()
}

/// "Daemons never depend on each other": a daemon, or a library crate, that depends on a daemon.
pub fn daemon_dependencies(workspace: &Workspace) -> Vec<String> {
    let daemons = daemons(workspace);
    let mut broken = Vec::new();
    for p in workspace.values() {
        if p.name == COMPOSITION_ROOT || HARNESSES.contains(&p.name.as_str()) {
            continue;
        }
        for d in p.dependencies.intersection(&daemons) {
            broken.push(format!("{} depends on the daemon {d} (share a library crate instead, as `store`)", p.name));
        }
    }
    broken
}

/// "`protocol` depends on nothing async": any dependency outside [`PROTOCOL_MAY_USE`].
pub fn protocol_dependencies(workspace: &Workspace) -> Vec<String> {
    let Some(protocol) = workspace.get("protocol") else { return vec!["no protocol crate".into()] };
    protocol
        .dependencies
        .iter()
        .filter(|d| !PROTOCOL_MAY_USE.contains(&d.as_str()))
        .map(|d| format!("protocol depends on {d}; it may use only {PROTOCOL_MAY_USE:?} (nothing async)"))
        .collect()
}

/// The crates ARCHITECTURE.md's code map names (its `### \`crates/<dir>\`` headings).
pub fn code_map(architecture: &str) -> BTreeSet<String> {
    architecture
        .lines()
        .filter_map(|l| l.strip_prefix("### `crates/"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// "The code map names every crate, and only crates that exist."
pub fn code_map_mismatches(workspace: &Workspace, architecture: &str) -> Vec<String> {
    let named = code_map(architecture);
    let dirs: BTreeSet<String> = workspace.values().map(|p| p.dir.clone()).collect();
    let missing = dirs.difference(&named).map(|d| format!("ARCHITECTURE.md's code map misses crates/{d}"));
    let extra =
        named.difference(&dirs).map(|d| format!("ARCHITECTURE.md's code map names crates/{d}, which does not exist"));
    missing.chain(extra).collect()
}

/// Where a home topic may be written as a literal outside `protocol`: (file prefix, literal
/// prefix). The bridge speaks foreign topics (the original project's `iot/…`), not the home's.
pub const TOPIC_LITERALS_ALLOWED: &[(&str, &str)] = &[("crates/bridge/", "iot/")];

/// The string literals of one line of Rust (`"…"`, escapes kept as written; good enough for
/// the one-line literals topics are).
fn literals(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match (start, c) {
            (Some(_), '\\') if !escaped => escaped = true,
            (Some(s), '"') if !escaped => {
                out.push(&line[s..i]);
                start = None;
            }
            (None, '"') => start = Some(i + 1),
            _ => escaped = false,
        }
    }
    out
}

/// The lines of a source file that are not test code: up to its first `#[cfg(test)]` at the top
/// level (the test module; one inside a function marks a test-only line), and none
/// of a file that is a test module of its own (`tests.rs`), with line numbers from 1.
fn production_lines<'a>(path: &str, text: &'a str) -> impl Iterator<Item = (usize, &'a str)> {
    let is_test_file = path.ends_with("/tests.rs") || path.contains("/tests/");
    text.lines().enumerate().take_while(move |(_, l)| !is_test_file && *l != "#[cfg(test)]").map(|(i, l)| (i + 1, l))
}

/// "One topic string, defined once": a home topic written as a string literal outside
/// `protocol` (which builds them all with `Topics`), in the file `path` with contents `text`.
pub fn topic_literals(path: &str, text: &str) -> Vec<String> {
    let is_topic = |s: &str| {
        s.starts_with("home/")
            || (!s.starts_with('/')
                && ["/security/", "/lights/", "/devices/", "/control/"].iter().any(|level| s.contains(level)))
    };
    let allowed =
        |s: &str| TOPIC_LITERALS_ALLOWED.iter().any(|(file, lit)| path.starts_with(file) && s.starts_with(lit));
    production_lines(path, text)
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .flat_map(|(n, l)| literals(l).into_iter().map(move |s| (n, s)))
        .filter(|(_, s)| is_topic(s) && !allowed(s))
        .map(|(n, s)| format!("{path}:{n}: topic literal \"{s}\": build it with protocol::Topics"))
        .collect()
}

/// The longest a function may be, in lines from `fn` to its closing brace.
pub const MAX_FUNCTION_LINES: usize = 60;

/// Functions in `text` (the file `path`) longer than `max` lines, as `path: name (n lines)`.
/// A function is read as rustfmt lays it out: from its `fn` line to the first line that is its
/// indentation and `}`.
pub fn long_functions(path: &str, text: &str, max: usize) -> Vec<(String, usize)> {
    let lines: Vec<(usize, &str)> = production_lines(path, text).collect();
    let mut found = Vec::new();
    for (i, (_, line)) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let indent = &line[..line.len() - line.trim_start().len()];
        let Some(body) = lines[i..].iter().position(|(_, l)| l.ends_with('{') || l.ends_with(';')) else { continue };
        if lines[i + body].1.ends_with(';') {
            continue; // a declaration without a body
        }
        let closing = format!("{indent}}}");
        if let Some(end) = lines[i + body..].iter().position(|(_, l)| *l == closing) {
            let n = body + end + 1;
            if n > max {
                found.push((name.to_owned(), n));
            }
        }
    }
    found
}

/// Every `.rs` file under `crates/*/src` of the workspace at `root`: (path from the root, text).
pub fn rust_sources(root: &Path) -> Result<Vec<(String, String)>, String> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    let crates = root.join("crates");
    for krate in std::fs::read_dir(&crates).map_err(|e| format!("{}: {e}", crates.display()))? {
        let src = krate.map_err(|e| e.to_string())?.path().join("src");
        if src.is_dir() {
            walk(&src, &mut files).map_err(|e| format!("{}: {e}", src.display()))?;
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            Ok((relative, text))
        })
        .collect()
}

/// The name of the function a line declares, if it does.
fn fn_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for prefix in ["pub(crate) ", "pub(super) ", "pub ", "const ", "async ", "unsafe ", "extern \"C\" "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, dependencies: &[&str], has_binary: bool) -> Package {
        Package {
            name: name.into(),
            dir: name.into(),
            dependencies: dependencies.iter().map(|d| d.to_string()).collect(),
            has_binary,
        }
    }

    fn workspace() -> Workspace {
        [
            package("protocol", &["serde", "jiff"], false),
            package("device-runtime", &["protocol", "tokio", "rumqttc"], false),
            package("store", &["protocol", "rusqlite"], false),
            package("recorder", &["protocol", "device-runtime", "store"], true),
            package("dashboard", &["protocol", "device-runtime", "store"], true),
            package("mqtt-home", &["device-runtime", "recorder", "dashboard"], true),
            package("bench", &["device-runtime", "recorder"], false),
        ]
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect()
    }

    #[test]
    fn a_well_kept_workspace_breaks_no_rule() {
        let w = workspace();
        assert_eq!(daemons(&w), BTreeSet::from(["dashboard".to_string(), "recorder".to_string()]));
        assert!(daemon_dependencies(&w).is_empty());
        assert!(protocol_dependencies(&w).is_empty());
        let map = "### `crates/protocol`\n### `crates/device-runtime`\n### `crates/store`\n### `crates/recorder`\n\
                   ### `crates/dashboard`\n### `crates/mqtt-home`\n### `crates/bench`\n";
        assert!(code_map_mismatches(&w, map).is_empty());
    }

    #[test]
    fn each_rule_fails_on_a_deliberate_violation() {
        // The dashboard reading the recorder's store through the recorder crate (as it once did).
        let mut w = workspace();
        w.get_mut("dashboard").unwrap().dependencies.insert("recorder".into());
        assert_eq!(daemon_dependencies(&w).len(), 1, "{:?}", daemon_dependencies(&w));
        // A library crate depending on a daemon.
        let mut w = workspace();
        w.get_mut("store").unwrap().dependencies.insert("dashboard".into());
        assert_eq!(daemon_dependencies(&w).len(), 1);
        // protocol growing an async dependency.
        let mut w = workspace();
        w.get_mut("protocol").unwrap().dependencies.insert("tokio".into());
        assert_eq!(
            protocol_dependencies(&w),
            [
                "protocol depends on tokio; it may use only [\"serde\", \"serde_json\", \"thiserror\", \"jiff\", \"humantime\"] (nothing async)"
            ]
        );
        // The code map missing a crate, and naming one that is gone.
        let w = workspace();
        let map = "### `crates/protocol`\n### `crates/device-runtime`\n### `crates/recorder`\n### `crates/dashboard`\n\
                   ### `crates/mqtt-home`\n### `crates/bench`\n### `crates/gone`\n";
        let mismatches = code_map_mismatches(&w, map);
        assert_eq!(mismatches.len(), 2, "{mismatches:?}");
        assert!(mismatches[0].contains("misses crates/store") && mismatches[1].contains("crates/gone"));
    }

    #[test]
    fn a_topic_written_by_hand_is_found_outside_tests_and_comments() {
        let code = "const STATUS: &str = \"home/security/status\";\n\
                    // \"home/in/a/comment\"\n\
                    let t = format!(\"{root}/lights/{id}/set\");\n\
                    let route = \"/api/lights/{id}\";\n\
                    let foreign = \"zigbee2mqtt/window\";\n\
                    #[cfg(test)]\n\
                    const T: &str = \"home/x\";\n";
        let found = topic_literals("crates/bench/src/x.rs", code);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("crates/bench/src/x.rs:1: topic literal \"home/security/status\""));
        assert!(found[1].contains(":3:"));
        assert!(topic_literals("crates/bench/src/tests.rs", code).is_empty(), "a test module");
        assert!(topic_literals("crates/bridge/src/lib.rs", "let t = \"iot/lights/motion\";").is_empty());
        assert_eq!(topic_literals("crates/dashboard/src/lib.rs", "let t = \"iot/lights/motion\";").len(), 1);
        assert_eq!(literals(r#"a("x\"y", "z")"#), [r#"x\"y"#, "z"]);
    }

    #[test]
    fn a_long_function_is_found_and_a_short_one_or_a_declaration_is_not() {
        let body = |n: usize| "    let x = 1;\n".repeat(n);
        let code = format!(
            "pub async fn long(\n    a: u8,\n) -> u8 {{\n{}}}\n\nfn short() {{\n{}}}\ntrait T {{\n    fn declared(&self);\n    fn provided(&self) {{\n{}    }}\n}}\n",
            body(60),
            body(10),
            body(3)
        );
        assert_eq!(long_functions("x.rs", &code, 60), [("long".to_owned(), 64)]);
        assert_eq!(long_functions("x.rs", &code, 64), []);
        assert_eq!(
            long_functions("x.rs", &code, 4),
            [("long".to_owned(), 64), ("short".to_owned(), 12), ("provided".to_owned(), 5)]
        );
        assert_eq!(fn_name("    pub(crate) const fn f<T>()"), Some("f"));
    }
}
