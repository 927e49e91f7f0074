//! What a process asks of the operating system for the daemons it runs: more open files, lower
//! CPU priority for threads that must not compete with them, and an allocator that gives large
//! blocks back.
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

/// Argon2id works in a 19 MiB block per check. glibc serves the first from `mmap` and returns it,
/// but then raises its mmap threshold to that size, and every later block stays in the thread's
/// heap for good (panel RSS 64–103 MB after 300 checks, measured). A fixed threshold keeps blocks
/// of 1 MiB and more on `mmap`, so each is returned to the system when the check ends. It tunes
/// the whole process's allocator: binaries that check codes call it once, at start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn return_large_blocks_to_the_os() {
    // SAFETY: mallopt only sets a tuning parameter of glibc's allocator; it is thread-safe and
    // touches no memory the program holds.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
    if set != 1 {
        tracing::debug!("mallopt(M_MMAP_THRESHOLD) refused: Argon2's memory may stay allocated after a check");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_blocks_to_the_os() {}

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
