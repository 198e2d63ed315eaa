//! The whole fleet as separate processes, as it runs in production: user, book-management,
//! payment, rental, view and points, each its own binary with its own role and schema in one test
//! database, a broker, and a gateway in front. Tests talk to the gateway only, unless they check a
//! service.

use fleet_testing::{
    ServiceProcess, TEST_RENTAL_CLIENT_SECRET, TestDatabase, TestIdentity, TestKafka, TestPostgres,
    WAIT, eventually, fleet_binary, init_logs, principal_of_role, sample, service_env,
};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

pub use fleet_testing::assert_problem as refused;

/// Requests book-management's replica answered on the catalogue, by its metrics (on its
/// operations port `ops_base_url`).
pub async fn answered(fleet: &Fleet, ops_base_url: &str) -> f64 {
    let metrics = fleet
        .get_at(ops_base_url, "/metrics", "")
        .await
        .text()
        .await
        .unwrap();
    sample(
        &metrics,
        r#"http_requests_total{method="GET",route="/api/v1/books",status="200""#,
    )
}

pub const PASSWORD: &str = "correct horse battery staple";
pub const MANAGER_EMAIL: &str = "manager@fleet.example";

pub struct Fleet {
    pub db: TestDatabase,
    pub kafka: TestKafka,
    /// Holds the key the user service signs with, so tests can forge tokens it would not issue.
    pub identity: TestIdentity,
    pub user: ServiceProcess,
    pub books: ServiceProcess,
    /// What book-management was started with, to start another replica.
    pub books_env: Vec<(String, String)>,
    pub payment: ServiceProcess,
    pub rental: ServiceProcess,
    /// What rental was started with, to start another replica.
    pub rental_env: Vec<(String, String)>,
    pub view: ServiceProcess,
    pub points: ServiceProcess,
    pub gateway: ServiceProcess,
    pub client: Client,
    /// The test's own Postgres, when it runs on one ([`Fleet::launch_on`]). Last, so that it
    /// stops after the services.
    pub postgres: Option<TestPostgres>,
}

/// A signed-up customer.
pub struct Customer {
    pub id: Uuid,
    pub token: String,
}

impl Fleet {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// The fleet, with `gateway_env` added to the gateway's settings.
    pub async fn start_with(gateway_env: &[(&str, &str)]) -> Self {
        Self::launch(TestKafka::start().await, gateway_env, &[]).await
    }

    /// The fleet on `kafka`, with extra settings for the gateway and for rental.
    pub async fn launch(
        kafka: TestKafka,
        gateway_env: &[(&str, &str)],
        rental_extra: &[(&str, &str)],
    ) -> Self {
        Self::launch_on(None, kafka, gateway_env, rental_extra).await
    }

    /// The same, on `postgres` (a cluster of the test's own, which it may restart or stop)
    /// instead of the shared one.
    pub async fn launch_on(
        postgres: Option<TestPostgres>,
        kafka: TestKafka,
        gateway_env: &[(&str, &str)],
        rental_extra: &[(&str, &str)],
    ) -> Self {
        Self::launch_with(postgres, kafka, gateway_env, rental_extra, &[], &[]).await
    }

    /// The fleet with `user_extra` added to the user service's settings (a token lifetime, say).
    pub async fn start_with_user(user_extra: &[(&str, &str)]) -> Self {
        Self::launch_with(None, TestKafka::start().await, &[], &[], &[], user_extra).await
    }

    /// The fleet with `everyone` added to every process's settings (an OTLP endpoint, say).
    pub async fn start_with_everyone(everyone: &[(String, String)]) -> Self {
        Self::launch_with(None, TestKafka::start().await, &[], &[], everyone, &[]).await
    }

    async fn launch_with(
        postgres: Option<TestPostgres>,
        kafka: TestKafka,
        gateway_env: &[(&str, &str)],
        rental_extra: &[(&str, &str)],
        everyone: &[(String, String)],
        user_extra: &[(&str, &str)],
    ) -> Self {
        init_logs();
        let db = match &postgres {
            Some(postgres) => TestDatabase::create_on(&postgres.admin_url).await,
            None => TestDatabase::create().await,
        };
        let identity = TestIdentity::start().await;
        let env = |role: &str, schema: &str, extra: Vec<(String, String)>| {
            let db = &db;
            let kafka = &kafka;
            let role = role.to_owned();
            let schema = schema.to_owned();
            async move {
                let mut env = service_env(
                    principal_of_role(&role),
                    &db.add_service(&role, &schema).await,
                    kafka,
                );
                env.extend(extra);
                env.extend_from_slice(everyone);
                env
            }
        };
        let pairs = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut user_env = env(
            "user_svc",
            "users",
            pairs(&[
                ("JWT_SIGNING_KEY", identity.private_key_pem()),
                ("MANAGER_EMAIL", MANAGER_EMAIL),
                ("MANAGER_PASSWORD", PASSWORD),
                ("RENTAL_CLIENT_SECRET", TEST_RENTAL_CLIENT_SECRET),
                // The gateway, at 127.0.0.1, names each sign-in's client.
                ("TRUSTED_PROXIES", "127.0.0.1"),
                // Tests sign customers up as fast as they like.
                ("REGISTRATIONS_PER_SECOND", "10000"),
            ]),
        )
        .await;
        user_env.retain(|(k, _)| !user_extra.iter().any(|(name, _)| name == k));
        user_env.extend(pairs(user_extra));
        let user = ServiceProcess::spawn(&fleet_binary("user"), &user_env).await;
        let jwks_url = format!("{}/.well-known/jwks.json", user.base_url);
        let jwks = pairs(&[("JWKS_URL", &jwks_url)]);
        let books_env = env("book_svc", "book", jwks.clone()).await;
        let books = ServiceProcess::spawn(&fleet_binary("book-management"), &books_env).await;
        let payment = ServiceProcess::spawn(
            &fleet_binary("payment"),
            &env("payment_svc", "payment", jwks.clone()).await,
        )
        .await;
        let mut rental_env = env("rental_svc", "rental", jwks.clone()).await;
        rental_env.push(("PAYMENT_URL".into(), payment.base_url.clone()));
        // rental's own token for payment, from the real user service.
        rental_env.extend(pairs(&[
            ("TOKEN_URL", &format!("{}/api/v1/auth/token", user.base_url)),
            ("RENTAL_CLIENT_SECRET", TEST_RENTAL_CLIENT_SECRET),
        ]));
        rental_env.extend(pairs(rental_extra));
        let rental = ServiceProcess::spawn(&fleet_binary("rental"), &rental_env).await;
        let view = ServiceProcess::spawn(
            &fleet_binary("view"),
            &env("view_svc", "view", jwks.clone()).await,
        )
        .await;
        let points = ServiceProcess::spawn(
            &fleet_binary("points"),
            &env("points_svc", "points", jwks.clone()).await,
        )
        .await;
        let upstreams = [
            ("UPSTREAM_USER", user.base_url.as_str()),
            ("UPSTREAM_BOOK_MANAGEMENT", books.base_url.as_str()),
            ("UPSTREAM_PAYMENT", payment.base_url.as_str()),
            ("UPSTREAM_RENTAL", rental.base_url.as_str()),
            ("UPSTREAM_VIEW", view.base_url.as_str()),
            ("UPSTREAM_POINTS", points.base_url.as_str()),
        ];
        let mut fleet_gateway_env = pairs(&upstreams);
        fleet_gateway_env.extend(jwks);
        fleet_gateway_env.extend_from_slice(everyone);
        let gateway = spawn_gateway(&fleet_gateway_env, gateway_env).await;
        Self {
            db,
            kafka,
            identity,
            user,
            books,
            books_env,
            payment,
            rental,
            rental_env,
            view,
            points,
            gateway,
            client: fleet_testing::http_client(),
            postgres,
        }
    }

    /// The gateway's settings in this fleet: every upstream and the JWKS.
    pub fn gateway_env(&self) -> Vec<(String, String)> {
        vec![
            ("UPSTREAM_USER".into(), self.user.base_url.clone()),
            (
                "UPSTREAM_BOOK_MANAGEMENT".into(),
                self.books.base_url.clone(),
            ),
            ("UPSTREAM_PAYMENT".into(), self.payment.base_url.clone()),
            ("UPSTREAM_RENTAL".into(), self.rental.base_url.clone()),
            ("UPSTREAM_VIEW".into(), self.view.base_url.clone()),
            ("UPSTREAM_POINTS".into(), self.points.base_url.clone()),
            (
                "JWKS_URL".into(),
                format!("{}/.well-known/jwks.json", self.user.base_url),
            ),
        ]
    }

    /// Another gateway in front of this fleet, with `extra` settings.
    pub async fn another_gateway(&self, extra: &[(&str, &str)]) -> ServiceProcess {
        spawn_gateway(&self.gateway_env(), extra).await
    }

    /// Another gateway in front of this fleet that is not given `variable` (an optional
    /// upstream, as a deployment that does not run that service yet).
    pub async fn gateway_without(&self, variable: &str) -> ServiceProcess {
        let mut env = self.gateway_env();
        env.retain(|(name, _)| name != variable);
        spawn_gateway(&env, &[]).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.base_url)
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.get_at(&self.gateway.base_url, path, token).await
    }

    /// Every process of the fleet, by name.
    pub fn processes(&self) -> [(&'static str, &ServiceProcess); 7] {
        [
            ("gateway", &self.gateway),
            ("user", &self.user),
            ("book-management", &self.books),
            ("payment", &self.payment),
            ("rental", &self.rental),
            ("view", &self.view),
            ("points", &self.points),
        ]
    }

    /// A GET to another process than the fleet's gateway (a second gateway, a service).
    pub async fn get_at(&self, base_url: &str, path: &str, token: &str) -> Response {
        self.client
            .get(format!("{base_url}{path}"))
            .bearer_auth(token)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Signs in through the gateway (RFC 6749 password grant).
    pub async fn sign_in(&self, email: &str) -> String {
        let response = self
            .client
            .post(self.url("/api/v1/auth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", email),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A new customer, registered and signed in through the gateway.
    pub async fn sign_up(&self) -> Customer {
        let email = format!("reader-{}@fleet.example", Uuid::new_v4().simple());
        let response = self
            .client
            .post(self.url("/api/v1/users"))
            .json(&json!({"name": "Ada Reader", "email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let user: Value = response.json().await.unwrap();
        Customer {
            id: user["id"].as_str().unwrap().parse().unwrap(),
            token: self.sign_in(&email).await,
        }
    }

    pub async fn manager(&self) -> String {
        self.sign_in(MANAGER_EMAIL).await
    }

    /// A book the manager registered through the gateway, once rental's catalogue has it.
    pub async fn book(&self, manager: &str, fee: u32) -> String {
        let response = self
            .post(
                "/api/v1/books",
                manager,
                json!({"title": "Dune", "author": "Frank Herbert", "rentalFee": fee}),
            )
            .await;
        assert_eq!(response.status(), 201);
        let book: Value = response.json().await.unwrap();
        let id = book["id"].as_str().unwrap().to_owned();
        let sql = format!("SELECT count(*) FROM rental.catalogue WHERE book_id = '{id}'");
        eventually("the book in rental's catalogue", WAIT, || async {
            let n: i64 = sqlx::query_scalar(&sql)
                .fetch_one(&self.db.admin)
                .await
                .unwrap();
            (n == 1).then_some(())
        })
        .await;
        id
    }

    /// Rents `book` as `customer` through the gateway: the rental.
    pub async fn rent(&self, customer: &Customer, book: &str) -> Value {
        let response = self
            .post("/api/v1/rentals", &customer.token, json!({"bookId": book}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.db.admin)
            .await
            .unwrap()
    }
}

async fn spawn_gateway(base: &[(String, String)], extra: &[(&str, &str)]) -> ServiceProcess {
    let mut env: Vec<(String, String)> = vec![
        ("HTTP_HOST".into(), "127.0.0.1".into()),
        ("LOG_FORMAT".into(), "text".into()),
        // Tests share one client address: a budget no test reaches by accident.
        ("RATE_LIMIT_PER_SECOND".into(), "10000".into()),
        ("RATE_LIMIT_BURST".into(), "10000".into()),
        ("SIGN_IN_RATE_LIMIT_PER_MINUTE".into(), "100000".into()),
        ("SIGN_IN_RATE_LIMIT_BURST".into(), "10000".into()),
        ("REGISTRATION_RATE_LIMIT_PER_MINUTE".into(), "100000".into()),
        ("REGISTRATION_RATE_LIMIT_BURST".into(), "10000".into()),
    ];
    env.extend(base.iter().cloned());
    env.retain(|(k, _)| !extra.iter().any(|(name, _)| name == k));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ServiceProcess::spawn(&fleet_binary("gateway"), &env).await
}
