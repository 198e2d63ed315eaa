//! Each service's credentials and ACLs on a real Kafka, as its admin: the SCRAM-SHA-512
//! credential of every principal of [`shared_events::access::SERVICES`] (stored in the cluster's
//! metadata) and every rule of [`shared_events::access::bindings`] for one prefix.
//!
//! rust-rdkafka wraps neither AlterUserScramCredentials nor CreateAcls, but the librdkafka it
//! bundles has both: they are called here through its C API, one request each, which takes
//! milliseconds where Kafka's own `kafka-acls.sh` and `kafka-configs.sh` start a JVM apiece
//! (seconds on a busy machine, for every test).

use std::ffi::{CStr, CString, c_char};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use fleet::kafka::Credentials;
use rdkafka::ClientConfig;
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use shared_events::access::{Binding, Operation, Resource, SERVICES, bindings};

/// How long the broker may take to answer one request.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How long the broker may take to apply new credentials and rules.
const APPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Kafka's least for SCRAM-SHA-512; the passwords are random in a deployment.
const SCRAM_ITERATIONS: i32 = 4096;

/// A client configuration for `brokers`, signed in as `admin` when given.
pub fn client_config(brokers: &str, admin: Option<&Credentials>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    if let Some(admin) = admin {
        for (key, value) in admin.client_properties() {
            config.set(key, value);
        }
    }
    config
}

/// Stores every service's credential (`password_of` its principal) and writes the rules for
/// names behind `prefix`. Both are idempotent: running it again changes nothing but the salts.
pub async fn ensure_access(
    brokers: &str,
    admin: &Credentials,
    prefix: &str,
    password_of: fn(&str) -> String,
) -> anyhow::Result<()> {
    let config = client_config(brokers, Some(admin));
    let rules = bindings(prefix);
    let credentials: Vec<(String, String)> = SERVICES
        .iter()
        .map(|s| (s.principal.to_owned(), password_of(s.principal)))
        .collect();
    let brokers = brokers.to_owned();
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = config.create().context("cannot create a Kafka client")?;
        store_credentials(&client, &credentials)
            .with_context(|| format!("cannot store the services' credentials on {brokers}"))?;
        create_acls(&client, &rules)
            .with_context(|| format!("cannot write the services' ACLs on {brokers}"))?;
        in_effect(&brokers, &rules, &credentials)
    })
    .await?
}

/// Waits until the broker applies what was just written: the controller has it at once, the
/// broker's authorizer a moment later, and a client in that moment would be refused. One
/// request wrote every rule, so when a principal is let in by the last topic rule, all are in.
fn in_effect(
    brokers: &str,
    rules: &[Binding],
    credentials: &[(String, String)],
) -> anyhow::Result<()> {
    let Some(rule) = rules.iter().rev().find(|r| r.resource == Resource::Topic) else {
        return Ok(());
    };
    let Some((_, password)) = credentials.iter().find(|(name, _)| name == rule.principal) else {
        return Ok(());
    };
    let principal = Credentials {
        username: rule.principal.to_owned(),
        password: password.clone(),
        mechanism: "SCRAM-SHA-512",
    };
    let client: BaseConsumer = client_config(brokers, Some(&principal))
        .set("log_level", "0")
        .create()
        .context("cannot create a Kafka client")?;
    let deadline = std::time::Instant::now() + APPLY_TIMEOUT;
    loop {
        let outcome = client.fetch_metadata(Some(&rule.name), Duration::from_secs(2));
        let refused = match &outcome {
            Ok(metadata) => metadata.topics().iter().any(|t| {
                t.error()
                    == Some(rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
            }),
            Err(_) => true,
        };
        if !refused {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the broker did not apply the rules within {APPLY_TIMEOUT:?}: {} is still refused {} ({outcome:?})",
                rule.principal,
                rule.name
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cstring(s: &str) -> anyhow::Result<CString> {
    CString::new(s).map_err(|_| anyhow!("{s:?} holds a NUL byte"))
}

/// # Safety
/// `p` is null or a NUL-terminated string that outlives the call.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: per the function's contract.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// An error object of librdkafka (borrowed from its result), as text; `None` when there is none.
fn error_of(error: *const rd::rd_kafka_error_t) -> Option<String> {
    if error.is_null() {
        return None;
    }
    // SAFETY: a valid error object, owned by the result it came from, which outlives this.
    let (code, message) = unsafe {
        (
            rd::rd_kafka_error_code(error),
            text(rd::rd_kafka_error_string(error)),
        )
    };
    // Some results carry an error object that says "no error".
    (code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
        .then(|| format!("{message} ({code:?})"))
}

/// Runs one admin request that `send` issues on a queue of its own, waits for its result and
/// hands the result event to `read`. Every librdkafka object made here is destroyed here.
fn request<T>(
    client: &BaseConsumer,
    api: rd::rd_kafka_admin_op_t,
    send: impl FnOnce(
        *mut rd::rd_kafka_t,
        *const rd::rd_kafka_AdminOptions_t,
        *mut rd::rd_kafka_queue_t,
    ),
    read: impl FnOnce(*mut rd::rd_kafka_event_t) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let rk = client.client().native_ptr();
    let timeout_ms = TIMEOUT.as_millis() as i32;
    // SAFETY: `rk` is the live client's handle; each object is destroyed once, below, after
    // its last use, and the event is read before it is destroyed.
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let options = rd::rd_kafka_AdminOptions_new(rk, api);
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        send(rk, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, timeout_ms + 5_000);
        let outcome = if event.is_null() {
            Err(anyhow!("Kafka did not answer within {TIMEOUT:?}"))
        } else if rd::rd_kafka_event_error(event)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            Err(anyhow!(
                "{} ({:?})",
                text(rd::rd_kafka_event_error_string(event)),
                rd::rd_kafka_event_error(event)
            ))
        } else {
            read(event)
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_queue_destroy(queue);
        outcome
    }
}

fn store_credentials(client: &BaseConsumer, users: &[(String, String)]) -> anyhow::Result<()> {
    let names: Vec<CString> = users
        .iter()
        .map(|(user, _)| cstring(user))
        .collect::<anyhow::Result<_>>()?;
    // SAFETY: the names and passwords outlive the upsertions, which copy them.
    let mut upsertions: Vec<*mut rd::rd_kafka_UserScramCredentialAlteration_t> = names
        .iter()
        .zip(users)
        .map(|(name, (_, password))| unsafe {
            rd::rd_kafka_UserScramCredentialUpsertion_new(
                name.as_ptr(),
                rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_512,
                SCRAM_ITERATIONS,
                password.as_ptr(),
                password.len(),
                // librdkafka draws a random salt.
                std::ptr::null(),
                0,
            )
        })
        .collect();
    if upsertions.iter().any(|u| u.is_null()) {
        // SAFETY: the non-null ones were made above and are destroyed once.
        unsafe {
            for u in upsertions.iter().filter(|u| !u.is_null()) {
                rd::rd_kafka_UserScramCredentialAlteration_destroy(*u);
            }
        }
        bail!("librdkafka refused a SCRAM credential (built without TLS?)");
    }
    let count = upsertions.len();
    let outcome = request(
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERUSERSCRAMCREDENTIALS,
        |rk, options, queue| unsafe {
            rd::rd_kafka_AlterUserScramCredentials(
                rk,
                upsertions.as_mut_ptr(),
                count,
                options,
                queue,
            )
        },
        |event| {
            // SAFETY: the result and its responses belong to `event`, alive during this call.
            unsafe {
                let result = rd::rd_kafka_event_AlterUserScramCredentials_result(event);
                if result.is_null() {
                    bail!("Kafka answered AlterUserScramCredentials with another result");
                }
                let mut n = 0;
                let responses =
                    rd::rd_kafka_AlterUserScramCredentials_result_responses(result, &mut n);
                let mut failures = Vec::new();
                for i in 0..n {
                    let response = *responses.add(i);
                    let user = text(rd::rd_kafka_AlterUserScramCredentials_result_response_user(
                        response,
                    ));
                    if let Some(error) = error_of(
                        rd::rd_kafka_AlterUserScramCredentials_result_response_error(response),
                    ) {
                        failures.push(format!("{user}: {error}"));
                    }
                }
                if failures.is_empty() {
                    Ok(())
                } else {
                    Err(anyhow!("{}", failures.join("; ")))
                }
            }
        },
    );
    // SAFETY: made above; the request copied what it needed.
    unsafe {
        rd::rd_kafka_UserScramCredentialAlteration_destroy_array(upsertions.as_mut_ptr(), count)
    };
    outcome
}

fn create_acls(client: &BaseConsumer, rules: &[Binding]) -> anyhow::Result<()> {
    let any_host = cstring("*")?;
    let mut acls = Vec::with_capacity(rules.len());
    let mut made = Ok(());
    for rule in rules {
        let name = cstring(&rule.name)?;
        let principal = cstring(&format!("User:{}", rule.principal))?;
        let resource = match rule.resource {
            Resource::Topic => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            Resource::Group => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP,
        };
        let operation = match rule.operation {
            Operation::Read => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_READ,
            Operation::Write => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_WRITE,
        };
        let mut errstr = [0 as c_char; 256];
        // SAFETY: the strings outlive the call, which copies them.
        let acl = unsafe {
            rd::rd_kafka_AclBinding_new(
                resource,
                name.as_ptr(),
                rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
                principal.as_ptr(),
                any_host.as_ptr(),
                operation,
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if acl.is_null() {
            // SAFETY: librdkafka wrote a NUL-terminated message into errstr.
            made = Err(anyhow!("{rule}: {}", unsafe { text(errstr.as_ptr()) }));
            break;
        }
        acls.push(acl);
    }
    let count = acls.len();
    let outcome = made.and_then(|()| {
        request(
            client,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
            |rk, options, queue| unsafe {
                rd::rd_kafka_CreateAcls(rk, acls.as_mut_ptr(), count, options, queue)
            },
            |event| {
                // SAFETY: the result and its entries belong to `event`, alive during this call.
                unsafe {
                    let result = rd::rd_kafka_event_CreateAcls_result(event);
                    if result.is_null() {
                        bail!("Kafka answered CreateAcls with another result");
                    }
                    let mut n = 0;
                    let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut n);
                    // In the order of the request.
                    let failures: Vec<String> = (0..n)
                        .filter_map(|i| {
                            let error = error_of(rd::rd_kafka_acl_result_error(*results.add(i)))?;
                            Some(format!("{}: {error}", rules[i]))
                        })
                        .collect();
                    if failures.is_empty() {
                        Ok(())
                    } else {
                        Err(anyhow!("{}", failures.join("; ")))
                    }
                }
            },
        )
    });
    // SAFETY: made above; the request copied them.
    unsafe { rd::rd_kafka_AclBinding_destroy_array(acls.as_mut_ptr(), count) };
    outcome
}
