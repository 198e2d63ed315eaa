//! fleet: the one program that supervises the fleet's local processes.
//!
//! `scripts/dev.sh` (through `fleet up`), the test command (through `fleet infra`) and the test
//! harness (`fleet-testing`, through this library) start the private PostgreSQL, the Kafka
//! broker and the services here, so that there is one way to start, watch and stop each, not a
//! shell copy and a Rust copy. What only installs things (Debian packages, the broker's jars,
//! Jaeger's build) stays in the scripts; what runs stays here.
//!
//! Every process is a child of the supervisor, in a process group of its own, and dies with it:
//! SIGINT, SIGTERM or SIGHUP stop the fleet in order (services, then tracing and the broker,
//! then the database), whatever the shell that started it did with those signals; a SIGKILL of
//! the supervisor leaves nothing behind either ([`process`]).

pub mod database;
pub mod infra;
pub mod kafka;
pub mod layout;
pub mod postgres;
pub mod process;
pub mod up;

use std::path::PathBuf;
use std::time::Duration;

/// The repository the supervisor belongs to: `FLEET_REPO` (the scripts export it), else the
/// clone this binary was built from.
pub fn repository() -> PathBuf {
    std::env::var_os("FLEET_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

/// A timestamped line on stderr, as the scripts log.
pub fn log(message: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (h, m, s) = ((now / 3600) % 24, (now / 60) % 60, now % 60);
    eprintln!("[{h:02}:{m:02}:{s:02}] {message}");
}

/// "1m 05s" or "12s", as the scripts print elapsed time.
pub fn format_elapsed(elapsed: Duration) -> String {
    let s = elapsed.as_secs();
    if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'~' | b'_' | b'-' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A setting from the environment, parsed, or `default` when unset.
pub fn setting<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={value:?} is not valid")),
        _ => Ok(default),
    }
}

/// The status of `GET path` on 127.0.0.1:`port`, if anything answered within `wait`.
pub fn http_status(port: u16, path: &str, wait: Duration) -> Option<u16> {
    use std::io::{Read, Write};
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, wait).ok()?;
    stream.set_read_timeout(Some(wait)).ok()?;
    stream.set_write_timeout(Some(wait)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
