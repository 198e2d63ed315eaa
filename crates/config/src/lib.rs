//! Configuration comes only from the environment. Every variable is read through [`Env`], which
//! collects every missing or invalid value so that one start-up error lists them all.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything that is wrong with the configuration, one line per variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// A snapshot of environment variables and the problems found reading them. It also remembers
/// every name it was asked for, so that a binary can say which variables it reads
/// ([`print_env_if_asked`]).
pub struct Env {
    vars: HashMap<String, String>,
    problems: Vec<String>,
    read: Arc<Mutex<Vec<VariableRead>>>,
}

/// One variable a configuration asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableRead {
    pub name: String,
    /// Asked for with [`Env::required`].
    pub required: bool,
}

impl Env {
    /// The process environment.
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    /// Any set of variables, as tests and tools configure a service.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            problems: Vec::new(),
            read: Arc::default(),
        }
    }

    /// The names asked for so far, in order, each once. The list is shared: it stays readable
    /// after the `Env` is consumed by [`Env::finish`].
    pub fn names_read(&self) -> Arc<Mutex<Vec<VariableRead>>> {
        Arc::clone(&self.read)
    }

    fn remember(&mut self, name: &str, required: bool) {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        match read.iter_mut().find(|v| v.name == name) {
            Some(known) => known.required |= required,
            None => read.push(VariableRead {
                name: name.to_owned(),
                required,
            }),
        }
    }

    fn parse<T: FromStr>(&mut self, name: &str) -> Option<T>
    where
        T::Err: Display,
    {
        let raw = self.vars.get(name)?.trim();
        match raw.parse() {
            Ok(value) => Some(value),
            Err(e) => {
                self.problems
                    .push(format!("{name}={raw:?} is invalid: {e}"));
                None
            }
        }
    }

    /// A variable that must be set. A missing one is reported by [`Env::finish`].
    pub fn required<T: FromStr + Default>(&mut self, name: &str) -> T
    where
        T::Err: Display,
    {
        self.remember(name, true);
        if !self.vars.contains_key(name) {
            self.problems
                .push(format!("{name} is required but not set"));
            return T::default();
        }
        self.parse(name).unwrap_or_default()
    }

    pub fn or<T: FromStr>(&mut self, name: &str, default: T) -> T
    where
        T::Err: Display,
    {
        self.remember(name, false);
        self.parse(name).unwrap_or(default)
    }

    pub fn optional<T: FromStr>(&mut self, name: &str) -> Option<T>
    where
        T::Err: Display,
    {
        self.remember(name, false);
        self.parse(name)
    }

    /// A duration given in milliseconds, as `NAME_MS`.
    pub fn millis(&mut self, name: &str, default_ms: u64) -> Duration {
        Duration::from_millis(self.or(name, default_ms))
    }

    /// Records a rule broken by a value that parsed.
    pub fn invalid(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(self.problems))
        }
    }
}

/// Variables read outside [`Env`], by `fleet_telemetry::init`: the log filter, and the
/// OpenTelemetry SDK's own that a deployment sets.
const ALSO_READ: &[&str] = &[
    "RUST_LOG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY",
];

/// With `--print-env` among the process's arguments: print the names of the environment
/// variables the configuration reads, one per line (`NAME`, or `NAME required` for one that must
/// be set), and exit 0. Otherwise return at once. Call it first in `main`:
///
/// ```no_run
/// # struct Config;
/// # impl Config { fn from_env(env: fleet_config::Env) -> Result<Self, fleet_config::ConfigError> { env.finish().map(|()| Config) } }
/// fleet_config::print_env_if_asked(|env| Config::from_env(env).map(drop));
/// ```
///
/// The configuration is read from an empty environment and its complaints are ignored, except
/// that a variable it reports as `NAME is required` (a rule of its own, such as "one of two must
/// be set") counts as required.
pub fn print_env_if_asked(read: impl FnOnce(Env) -> Result<(), ConfigError>) {
    if std::env::args().skip(1).any(|arg| arg == "--print-env") {
        print!("{}", env_listing(read));
        std::process::exit(0);
    }
}

/// What `--print-env` prints.
pub fn env_listing(read: impl FnOnce(Env) -> Result<(), ConfigError>) -> String {
    let env = Env::from_pairs(std::iter::empty::<(String, String)>());
    let names = env.names_read();
    let problems = read(env).err().map(|e| e.0).unwrap_or_default();
    let names = names.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::new();
    for variable in names.iter() {
        let reported = format!("{} is required", variable.name);
        let required = variable.required || problems.iter().any(|p| p.starts_with(&reported));
        out.push_str(&variable.name);
        out.push_str(if required { " required\n" } else { "\n" });
    }
    for name in ALSO_READ {
        if !names.iter().any(|v| v.name == *name) {
            out.push_str(name);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_listing_names_every_variable_read_once_and_marks_the_required() {
        let listing = env_listing(|mut env| {
            let _: String = env.or("HTTP_HOST", String::new());
            let _: String = env.required("DATABASE_URL");
            let _: Option<String> = env.optional("KAFKA_BROKERS");
            let _: String = env.required("KAFKA_BROKERS");
            let _: Option<String> = env.optional("SIGNING_KEY");
            env.invalid("SIGNING_KEY is required but not set: one of two");
            env.finish()
        });
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines[0], "HTTP_HOST", "{listing}");
        assert!(lines.contains(&"DATABASE_URL required"), "{listing}");
        assert!(lines.contains(&"KAFKA_BROKERS required"), "{listing}");
        assert!(lines.contains(&"SIGNING_KEY required"), "{listing}");
        // What is read outside the configuration (logs, traces) comes last.
        assert_eq!(
            lines[lines.len() - ALSO_READ.len()..],
            *ALSO_READ,
            "{listing}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("KAFKA_BROKERS"))
                .count(),
            1,
            "{listing}"
        );
    }
}
