//! Fault injection for the crash tests. Compiled only with the `fault-injection` feature, which
//! the test command enables; a normal build has nothing here.

/// Aborts the process at the point named by `RENTAL_FAULT`, like a `kill -9` at that instant.
#[cfg(feature = "fault-injection")]
pub fn crash_point(name: &str) {
    if std::env::var("RENTAL_FAULT").as_deref() == Ok(name) {
        eprintln!("fault injection: aborting at {name}");
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn crash_point(_name: &str) {}
