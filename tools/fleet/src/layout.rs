//! The fleet on one machine: which processes, on which ports, with which database role, and
//! which peers each one is told about.

use anyhow::bail;

/// One service of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub name: &'static str,
    /// Its API port; its operations port (probes, /metrics) is [`OPS_OFFSET`] above.
    pub port: u16,
    /// Its database role and schema; the gateway has none.
    pub database: Option<(&'static str, &'static str)>,
}

/// In start order. Those that fetch the user service's keys may start before it (they retry);
/// the gateway comes last, so that its upstreams are up when it first answers.
pub const SERVICES: &[Service] = &[
    service("book-management", 8083, Some(("book_svc", "book"))),
    service("rental", 8081, Some(("rental_svc", "rental"))),
    service("payment", 8082, Some(("payment_svc", "payment"))),
    service("user", 8084, Some(("user_svc", "users"))),
    service("view", 8085, Some(("view_svc", "view"))),
    service("points", 8086, Some(("points_svc", "points"))),
    service("gateway", 8080, None),
];

const fn service(
    name: &'static str,
    port: u16,
    database: Option<(&'static str, &'static str)>,
) -> Service {
    Service {
        name,
        port,
        database,
    }
}

/// A process's operations port is its API port plus this.
pub const OPS_OFFSET: u16 = 1000;

/// Replica N of a service listens this much above replica N - 1.
pub const REPLICA_STEP: u16 = 100;

/// How many replicas of each service `FLEET_REPLICAS` asks for ("rental=2 payment=3").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replicas(Vec<(String, u16)>);

impl Replicas {
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut replicas = Vec::new();
        for pair in spec.split_whitespace() {
            let Some((name, count)) = pair.split_once('=') else {
                bail!("FLEET_REPLICAS: '{pair}' must be <service>=1..9");
            };
            let count: u16 = match count.parse() {
                Ok(n @ 1..=9) => n,
                _ => bail!("FLEET_REPLICAS: '{pair}' must be <service>=1..9"),
            };
            if !SERVICES.iter().any(|s| s.name == name) {
                bail!("FLEET_REPLICAS: '{name}' is not one of the fleet's services");
            }
            replicas.push((name.to_owned(), count));
        }
        Ok(Self(replicas))
    }

    pub fn of(&self, service: &str) -> u16 {
        self.0
            .iter()
            .find(|(name, _)| name == service)
            .map_or(1, |(_, n)| *n)
    }

    /// Every replica's address of `service`, comma-separated.
    pub fn addresses(&self, service: &Service) -> String {
        (0..self.of(service.name))
            .map(|n| format!("http://127.0.0.1:{}", service.port + REPLICA_STEP * n))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One process of a service: replica 1 is named as the service, replica N `<service>-N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub service: Service,
    pub port: u16,
    pub ops_port: u16,
}

/// Every instance `replicas` asks for, of the services `built` says are built, in start order.
pub fn instances(replicas: &Replicas, built: impl Fn(&str) -> bool) -> Vec<Instance> {
    let mut all = Vec::new();
    for service in SERVICES.iter().filter(|s| built(s.name)) {
        for n in 1..=replicas.of(service.name) {
            let port = service.port + REPLICA_STEP * (n - 1);
            all.push(Instance {
                name: if n == 1 {
                    service.name.to_owned()
                } else {
                    format!("{}-{n}", service.name)
                },
                service: *service,
                port,
                ops_port: port + OPS_OFFSET,
            });
        }
    }
    all
}

fn by_name(name: &str) -> &'static Service {
    SERVICES
        .iter()
        .find(|s| s.name == name)
        .expect("a service of the fleet")
}

/// The peers `service` is told about (NAME=VALUE), given which services are built.
pub fn peers(service: &str, replicas: &Replicas, built: impl Fn(&str) -> bool) -> Vec<String> {
    let user = by_name("user").port;
    let jwks = format!("JWKS_URL=http://127.0.0.1:{user}/.well-known/jwks.json");
    let upstream = |name: &str| {
        format!(
            "UPSTREAM_{}={}",
            name.to_uppercase().replace('-', "_"),
            replicas.addresses(by_name(name))
        )
    };
    match service {
        // rental's own token for payment comes from the user service (client credentials).
        "rental" => vec![
            format!("PAYMENT_URL={}", replicas.addresses(by_name("payment"))),
            jwks,
            format!("TOKEN_URL=http://127.0.0.1:{user}/api/v1/auth/token"),
        ],
        "book-management" | "payment" | "view" | "points" => vec![jwks],
        // A signing key made at each start: tokens die with the process (local use only). The
        // gateway, on loopback, names each sign-in's client in X-Forwarded-For.
        "user" => vec![
            "JWT_EPHEMERAL_KEY=true".to_owned(),
            "TRUSTED_PROXIES=127.0.0.1".to_owned(),
        ],
        "gateway" => {
            let mut env = vec![jwks];
            env.extend(["user", "book-management", "rental", "payment"].map(upstream));
            env.extend(
                ["view", "points"]
                    .into_iter()
                    .filter(|name| built(name))
                    .map(upstream),
            );
            env
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_listen_a_hundred_ports_apart_and_the_gateway_balances_across_them() {
        let replicas = Replicas::parse("rental=2 payment=3").unwrap();
        let all = instances(&replicas, |_| true);
        let names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "book-management",
                "rental",
                "rental-2",
                "payment",
                "payment-2",
                "payment-3",
                "user",
                "view",
                "points",
                "gateway"
            ]
        );
        let rental_2 = &all[2];
        assert_eq!((rental_2.port, rental_2.ops_port), (8181, 9181));
        let gateway = peers("gateway", &replicas, |_| true);
        assert!(
            gateway.contains(
                &"UPSTREAM_RENTAL=http://127.0.0.1:8081,http://127.0.0.1:8181".to_owned()
            )
        );
        let rental = peers("rental", &replicas, |_| true);
        assert!(
            rental.contains(
                &"PAYMENT_URL=http://127.0.0.1:8082,http://127.0.0.1:8182,http://127.0.0.1:8282"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_service_that_is_not_built_is_neither_started_nor_routed_to() {
        let replicas = Replicas::default();
        let all = instances(&replicas, |name| name != "points");
        assert!(all.iter().all(|i| i.service.name != "points"));
        let gateway = peers("gateway", &replicas, |name| name != "points");
        assert!(gateway.iter().all(|v| !v.starts_with("UPSTREAM_POINTS=")));
        assert!(gateway.contains(&"UPSTREAM_VIEW=http://127.0.0.1:8085".to_owned()));
    }

    #[test]
    fn replica_counts_outside_one_to_nine_or_unknown_services_are_refused() {
        for bad in ["rental=0", "rental=10", "rental", "rental=two", "ledger=2"] {
            assert!(Replicas::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
