//! What a process asks of the operating system for the daemons it runs: more open files, and
//! lower CPU priority for threads that must not compete with them.
//!
//! Called by binaries and by daemons for threads they make themselves; never on a thread the
//! caller does not own (a thread's priority can be lowered without privileges, not raised back).

/// Raises this process's soft limit of open files to its hard limit; the soft limit now (`None`
/// if it cannot be read).
#[cfg(unix)]
#[allow(unsafe_code)]
#[allow(clippy::unnecessary_cast)] // rlim_t is 32 bits on some targets
pub fn raise_open_files() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write this process's limit through a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let soft = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                limit.rlim_cur = soft;
            }
        }
    }
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
pub fn raise_open_files() -> Option<u64> {
    None
}

/// The calling thread's nice value set to `nice` (0 normal, 19 lowest). Linux schedules threads,
/// so the rest of the process keeps its priority. Elsewhere, nothing.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn lower_this_thread(nice: i32) {
    // SAFETY: gettid and setpriority take and return plain integers.
    let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) } != 0;
    if failed {
        tracing::debug!("cannot lower this thread's priority to nice {nice}: {}", std::io::Error::last_os_error());
    }
}

#[cfg(not(target_os = "linux"))]
pub fn lower_this_thread(_nice: i32) {}

/// The calling thread's nice value (Linux).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn this_thread_nice() -> i32 {
    // SAFETY: as above.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code, clippy::unnecessary_cast)]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let now = raise_open_files().expect("getrlimit works on this machine");
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as in `raise_open_files`.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        assert!(ok);
        assert_eq!((now, limit.rlim_cur), (limit.rlim_max as u64, limit.rlim_max));
    }

    #[test]
    fn a_lowered_thread_is_lowered_and_the_others_are_not() {
        let (mine, lowered) = (
            this_thread_nice(),
            std::thread::spawn(|| {
                lower_this_thread(15);
                this_thread_nice()
            }),
        );
        assert_eq!(lowered.join().unwrap(), 15);
        assert_eq!(this_thread_nice(), mine);
    }
}
