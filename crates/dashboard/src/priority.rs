//! Lower CPU priority for the dashboard's own threads.
//!
//! In `mqtt-home` the dashboard shares a process, and often a two-core machine, with the alarm
//! panel; what a web client makes it do (accepting connections, checking passwords) must never
//! delay the siren. Linux schedules threads, not processes, so a thread can run at a lower
//! priority (a higher nice value) than the rest of the process. Lowering needs no privileges;
//! raising it back does, so only threads made for the purpose are lowered.

/// This thread's nice value set to `nice` (0 normal, 19 lowest). Elsewhere than Linux, nothing.
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

/// This thread's nice value (Linux), for tests.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn this_thread() -> i32 {
    // SAFETY: as above.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}
