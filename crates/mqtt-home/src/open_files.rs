//! The home's one table of open files.
//!
//! `mqtt-home` runs every daemon in one process, so the panel's state file, the recorder's
//! database, each daemon's broker connection and every web client of the dashboard share one
//! limit of open files. A flood of web clients once took them all and the panel could no longer
//! save its state (issue 19, finding 3). So, at start, the soft limit (often 1024) is raised to
//! the hard one, and the dashboard may hold only what is left after a reserve for the daemons:
//! [`dashboard_share`].

/// Files one daemon may need at once: its broker connection (two during a reconnect), a state or
/// health file being written, a TLS key being read, a notifier's outgoing requests.
pub const PER_DAEMON: u64 = 8;
/// Files the process needs whatever it runs: standard streams, the runtime's, the embedded
/// broker's listener, the recorder's database and its journal, the logs.
pub const BASE: u64 = 64;
/// The dashboard always gets at least this many (a page, its event stream, a few API calls).
pub const DASHBOARD_FLOOR: usize = 16;

/// How many connections the dashboard may hold, given what it asks for, the process's limit of
/// open files and the number of daemons beside it; lower than `wanted` only when the limit is too
/// small for both.
pub fn dashboard_share(wanted: usize, limit: u64, daemons: usize) -> usize {
    let reserve = BASE + PER_DAEMON * daemons as u64;
    let left = usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
    wanted.min(left).max(DASHBOARD_FLOOR)
}

/// Raises the soft limit of open files to the hard one; the soft limit now (`None` if unknown).
pub fn raise() -> Option<u64> {
    device_runtime::process::raise_open_files()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_gets_what_it_asks_for_when_there_is_room() {
        // (wanted, limit, daemons) -> share
        let table = [
            ((256, 20_000, 16), 256),
            ((256, 1024, 16), 256),
            ((10_000, 20_000, 16), 10_000),
            // 1024 - 64 - 16 × 8 = 832
            ((10_000, 1024, 16), 832),
            ((900, 1024, 16), 832),
            // A limit too small for anything: the floor, not zero.
            ((256, 100, 16), DASHBOARD_FLOOR),
            ((4, 20_000, 16), DASHBOARD_FLOOR),
        ];
        for ((wanted, limit, daemons), share) in table {
            assert_eq!(
                dashboard_share(wanted, limit, daemons),
                share,
                "{wanted} wanted, limit {limit}, {daemons} daemons"
            );
        }
    }
}
