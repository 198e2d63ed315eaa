//! The public API of docs/design.md §5.2, as the gateway routes it: which service answers each
//! method and path, and who may call it. A path missing here is not reachable from outside, which
//! is how internal endpoints (payment's `POST`, the refund, any `/internal` path) stay internal.

use axum::http::Method;

/// A service behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    User,
    BookManagement,
    Rental,
    Payment,
    View,
    Points,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::User,
        Service::BookManagement,
        Service::Rental,
        Service::Payment,
        Service::View,
        Service::Points,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::User => "user",
            Service::BookManagement => "book-management",
            Service::Rental => "rental",
            Service::Payment => "payment",
            Service::View => "view",
            Service::Points => "points",
        }
    }

    /// Whether the gateway refuses to start without the service's addresses. The services added
    /// after the first ones are optional, so that a deployment which does not run them yet still
    /// starts: their routes answer 404 until their addresses are set.
    pub fn required(self) -> bool {
        !matches!(self, Service::View | Service::Points)
    }

    /// The variable listing the service's addresses.
    pub fn upstream_variable(self) -> &'static str {
        match self {
            Service::User => "UPSTREAM_USER",
            Service::BookManagement => "UPSTREAM_BOOK_MANAGEMENT",
            Service::Rental => "UPSTREAM_RENTAL",
            Service::Payment => "UPSTREAM_PAYMENT",
            Service::View => "UPSTREAM_VIEW",
            Service::Points => "UPSTREAM_POINTS",
        }
    }
}

/// Who may call a route. The gateway checks the token and the role; the service checks them
/// again and checks ownership (a customer's own rentals and payments), which only it can know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    SignedIn,
    Customer,
    Manager,
}

impl Access {
    /// The role a caller needs, beyond a valid token.
    pub fn role(self) -> Option<&'static str> {
        match self {
            Access::Customer => Some("customer"),
            Access::Manager => Some("manager"),
            Access::Anyone | Access::SignedIn => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// An axum path template, as the services and their OpenAPI documents write it.
    pub path: &'static str,
    pub service: Service,
    pub access: Access,
    /// The service honours `Idempotency-Key`: the gateway gives a request without one a key of
    /// its own, which makes sending it again after a broken connection safe.
    pub keyed: bool,
}

const fn route(method: Method, path: &'static str, service: Service, access: Access) -> Route {
    Route {
        method,
        path,
        service,
        access,
        keyed: false,
    }
}

const fn keyed(method: Method, path: &'static str, service: Service, access: Access) -> Route {
    Route {
        method,
        path,
        service,
        access,
        keyed: true,
    }
}

impl Route {
    /// Whether the request may be sent again when the connection it went out on broke before
    /// an answer came: one that cannot change anything, or one the service recognises by its
    /// key. Anything else may have taken effect, and is answered 502.
    pub fn replayable(&self) -> bool {
        self.keyed || self.method == Method::GET || self.method == Method::HEAD
    }
}

use Access::*;
use Service::*;

pub static ROUTES: [Route; 20] = [
    route(Method::POST, "/api/v1/users", User, Anyone),
    route(Method::POST, "/api/v1/auth/token", User, Anyone),
    route(Method::GET, "/api/v1/users/me", User, SignedIn),
    route(Method::GET, "/api/v1/users/{id}", User, SignedIn),
    route(Method::GET, "/api/v1/books", BookManagement, SignedIn),
    route(Method::POST, "/api/v1/books", BookManagement, Manager),
    route(Method::GET, "/api/v1/books/{id}", BookManagement, SignedIn),
    route(Method::PATCH, "/api/v1/books/{id}", BookManagement, Manager),
    route(
        Method::DELETE,
        "/api/v1/books/{id}",
        BookManagement,
        Manager,
    ),
    keyed(Method::POST, "/api/v1/rentals", Rental, Customer),
    route(Method::GET, "/api/v1/rentals/{id}", Rental, SignedIn),
    route(
        Method::POST,
        "/api/v1/rentals/{id}/cancel",
        Rental,
        Customer,
    ),
    route(
        Method::POST,
        "/api/v1/rentals/{id}/return",
        Rental,
        Customer,
    ),
    route(Method::GET, "/api/v1/payments", Payment, SignedIn),
    route(Method::GET, "/api/v1/payments/{id}", Payment, SignedIn),
    route(Method::GET, "/api/v1/views/rentals", View, SignedIn),
    route(Method::GET, "/api/v1/views/rentals/{id}", View, SignedIn),
    route(Method::GET, "/api/v1/views/books", View, Manager),
    // A customer reads their own points, a manager anyone's: points checks whose they are.
    route(Method::GET, "/api/v1/points/me", Points, SignedIn),
    route(Method::GET, "/api/v1/points/{userId}", Points, SignedIn),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_endpoints_are_not_routed() {
        for route in &ROUTES {
            assert!(route.path.starts_with("/api/v1/"), "{route:?}");
            let payment_write = route.service == Payment && route.method != Method::GET;
            assert!(!payment_write, "payment's writes are internal: {route:?}");
        }
    }

    #[test]
    fn each_method_and_path_is_routed_once() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    (a.method.clone(), a.path) != (b.method.clone(), b.path),
                    "{a:?}"
                );
            }
        }
    }

    #[test]
    fn only_registration_and_sign_in_are_open_to_anyone() {
        let open: Vec<_> = ROUTES
            .iter()
            .filter(|r| r.access == Anyone)
            .map(|r| r.path)
            .collect();
        assert_eq!(open, ["/api/v1/users", "/api/v1/auth/token"]);
    }
}
