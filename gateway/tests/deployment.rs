//! The Kubernetes base and the README against the binaries: every Deployment sets only variables
//! its binary reads (`<binary> --print-env`), sets every one the binary requires, and probes only
//! paths every process serves, on its operations port; only Prometheus reaches that port, and no
//! Service but the headless ones Prometheus discovers replicas with exposes it. Renders
//! `kubernetes/base` with the kubectl that `scripts/check-deploy.sh` installs
//! (`FLEET_DEPLOY_TOOLS_VENV`, or its default beside the build directory). The README's
//! configuration tables list exactly what each binary reads, and say which variables it requires.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// What every process serves for its probes (fleet-http's health module).
const PROBE_PATHS: &[&str] = &["/livez", "/readyz"];

/// The operations port (fleet-http's `OPS_PORT`): probes and `/metrics`.
const OPS_PORT: u64 = 9464;

/// The fleet's services; with the gateway, every binary whose configuration the README documents.
const SERVICES: [&str; 6] = [
    "book-management",
    "payment",
    "rental",
    "user",
    "view",
    "points",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv of scripts/check-deploy.sh: scripts/lib/common.sh `deploy_tools_venv`.
fn tools_venv(target_dir: &Path) -> PathBuf {
    match std::env::var_os("FLEET_DEPLOY_TOOLS_VENV") {
        Some(venv) => PathBuf::from(venv),
        None => target_dir
            .parent()
            .expect("the build directory has a parent")
            .join("deploy-tools/venv"),
    }
}

/// `kubectl kustomize kubernetes/base`, as JSON objects.
fn render_base(venv: &Path) -> Vec<Value> {
    let kubectl = venv.join("bin/kubectl");
    assert!(
        kubectl.exists(),
        "{} is missing: run scripts/check-deploy.sh once to install the deployment tools",
        kubectl.display()
    );
    let rendered = Command::new(&kubectl)
        .arg("kustomize")
        .arg(workspace().join("kubernetes/base"))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        rendered.status.success(),
        "kubectl kustomize kubernetes/base failed:\n{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    // YAML to JSON with the venv's PyYAML (checkov's dependency): no YAML crate needed.
    let mut python = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the venv's python");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(&rendered.stdout)
        .unwrap();
    let json = python.wait_with_output().unwrap();
    assert!(json.status.success(), "YAML to JSON failed");
    serde_json::from_slice(&json.stdout).expect("rendered manifests as JSON")
}

/// The names `binary --print-env` lists, and which of them are required.
fn variables_read(binary: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(binary)
        .arg("--print-env")
        .env_clear()
        .output()
        .expect("run the binary");
    assert!(
        out.status.success(),
        "{} --print-env failed: does its main call fleet_config::print_env_if_asked?\n{}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut read, mut required) = (BTreeSet::new(), BTreeSet::new());
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut words = line.split_whitespace();
        let name = words.next().expect("a name per line").to_owned();
        if words.next() == Some("required") {
            required.insert(name.clone());
        }
        read.insert(name);
    }
    assert!(read.contains("HTTP_PORT"), "{}: {read:?}", binary.display());
    (read, required)
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered base"))
}

/// Every variable a container gets: `env` names and the keys of `envFrom` sources.
fn variables_set(objects: &[Value], container: &Value) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for var in container["env"].as_array().into_iter().flatten() {
        set.insert(var["name"].as_str().unwrap().to_owned());
    }
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let (kind, reference) = if source["configMapRef"].is_object() {
            ("ConfigMap", &source["configMapRef"])
        } else {
            ("Secret", &source["secretRef"])
        };
        let prefix = source["prefix"].as_str().unwrap_or("");
        let object = find(objects, kind, reference["name"].as_str().unwrap());
        for data in ["data", "stringData"] {
            if let Some(data) = object[data].as_object() {
                set.extend(data.keys().map(|k| format!("{prefix}{k}")));
            }
        }
    }
    set
}

/// The value a container gets for `variable` from its `envFrom` ConfigMaps (or its `env`).
fn variable_value(objects: &[Value], container: &Value, variable: &str) -> Option<String> {
    for var in container["env"].as_array().into_iter().flatten() {
        if var["name"] == variable {
            return var["value"].as_str().map(str::to_owned);
        }
    }
    let mut found = None;
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let Some(name) = source["configMapRef"]["name"].as_str() else {
            continue;
        };
        let prefix = source["prefix"].as_str().unwrap_or("");
        let Some(key) = variable.strip_prefix(prefix) else {
            continue;
        };
        // A later source wins, as in Kubernetes.
        if let Some(value) = find(objects, "ConfigMap", name)["data"][key].as_str() {
            found = Some(value.to_owned());
        }
    }
    found
}

fn port_of(ports: &Value, name: &str) -> Option<Value> {
    ports
        .as_array()
        .into_iter()
        .flatten()
        .find(|port| port["name"] == name)
        .cloned()
}

#[test]
fn deployments_set_what_their_binaries_read_and_probe_what_they_serve() {
    let gateway = fleet_testing::fleet_binary("gateway");
    let bin_dir = gateway.parent().unwrap().to_owned();
    let target_dir = bin_dir.parent().unwrap();
    let objects = render_base(&tools_venv(target_dir));

    let deployments: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .collect();
    assert!(deployments.len() >= 5, "too few Deployments rendered");
    let mut problems = Vec::new();
    let mut checked = BTreeMap::new();
    for deployment in deployments {
        let name = deployment["metadata"]["name"].as_str().unwrap();
        let containers = deployment["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1, "{name}: one container expected");
        let container = &containers[0];

        for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
            let got = container[probe]["httpGet"]["path"].as_str();
            if got != Some(path) {
                problems.push(format!("{name}: {probe} must GET {path}, has {got:?}"));
            }
        }
        // Probes on the operations port, which the container declares as `ops` and the process
        // is told to listen on.
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let port = &container[probe]["httpGet"]["port"];
            if port != "ops" {
                problems.push(format!("{name}: {probe} must probe port ops, has {port}"));
            }
        }
        match port_of(&container["ports"], "ops") {
            Some(ops) if ops["containerPort"] == OPS_PORT => {}
            other => problems.push(format!(
                "{name}: the container must declare port ops {OPS_PORT}, has {other:?}"
            )),
        }
        let ops_port = variable_value(&objects, container, "OPS_PORT");
        if ops_port.as_deref() != Some(&OPS_PORT.to_string()) {
            problems.push(format!(
                "{name}: OPS_PORT must be {OPS_PORT} (its port ops), is {ops_port:?}"
            ));
        }
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            if let Some(path) = container[probe]["httpGet"]["path"].as_str()
                && !PROBE_PATHS.contains(&path)
            {
                problems.push(format!(
                    "{name}: {probe} GETs {path}, which no process serves"
                ));
            }
        }

        // The image names the binary: book-rental-fleet/<binary>:<tag>.
        let image = container["image"].as_str().unwrap();
        let binary = image
            .rsplit('/')
            .next()
            .and_then(|last| last.split(':').next())
            .unwrap();
        // A service still being written elsewhere is in the manifests before it is in this
        // workspace (the shared build directory may even hold a binary of it from another tree).
        let crate_dir = match binary {
            "gateway" => workspace().join("gateway"),
            _ => workspace().join("services").join(binary),
        };
        if !crate_dir.join("Cargo.toml").exists() {
            eprintln!("skipping {name}'s environment: {binary} is not in the workspace yet");
            continue;
        }
        let path = bin_dir.join(binary);
        let (read, required) = variables_read(&path);
        let set = variables_set(&objects, container);
        for unknown in set.difference(&read) {
            problems.push(format!(
                "{name} sets {unknown}, which {binary} does not read"
            ));
        }
        // A `NAME_FILE` the binary reads stands for `NAME` (a Secret mounted as a file).
        let as_file = |name: &String| {
            let file = format!("{name}_FILE");
            set.contains(&file) && read.contains(&file)
        };
        for missing in required.difference(&set).filter(|name| !as_file(name)) {
            problems.push(format!(
                "{name} does not set {missing}, which {binary} requires"
            ));
        }
        checked.insert(name.to_owned(), set.len());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for service in ["gateway", "rental", "payment", "book-management", "user"] {
        assert!(
            checked.contains_key(service),
            "{service}'s Deployment was not checked: {checked:?}"
        );
    }
}

#[test]
fn only_prometheus_reaches_the_operations_port_and_no_client_facing_service_exposes_it() {
    let gateway = fleet_testing::fleet_binary("gateway");
    let target_dir = gateway.parent().unwrap().parent().unwrap();
    let objects = render_base(&tools_venv(target_dir));
    let mut problems = Vec::new();

    // Prometheus' policy: pods labelled prometheus in the fleet's namespace, port 9464 alone.
    let policy = find(&objects, "NetworkPolicy", "fleet-from-prometheus");
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    for rule in rules {
        let ports: Vec<&Value> = rule["ports"].as_array().into_iter().flatten().collect();
        if ports.is_empty() || ports.iter().any(|p| p["port"] != OPS_PORT) {
            problems.push(format!(
                "fleet-from-prometheus must open port {OPS_PORT} alone: {}",
                rule["ports"]
            ));
        }
        let peers = rule["from"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if peers.is_empty() {
            problems.push("fleet-from-prometheus admits every source".to_owned());
        }
        for peer in peers {
            if peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] != "prometheus" {
                problems.push(format!(
                    "fleet-from-prometheus admits more than Prometheus: {peer}"
                ));
            }
            let namespaces = &peer["namespaceSelector"];
            let own_namespace = namespaces.is_null()
                || namespaces["matchLabels"]["kubernetes.io/metadata.name"]
                    == policy["metadata"]["namespace"];
            if !own_namespace {
                problems.push(format!(
                    "fleet-from-prometheus admits Prometheus pods of other namespaces: {peer}"
                ));
            }
        }
    }
    if rules.is_empty() {
        problems.push("fleet-from-prometheus has no rule".to_owned());
    }
    // No other policy opens the operations port (or every port) to anyone.
    for other in objects.iter().filter(|o| {
        o["kind"] == "NetworkPolicy" && o["metadata"]["name"] != "fleet-from-prometheus"
    }) {
        for rule in other["spec"]["ingress"].as_array().into_iter().flatten() {
            let ports = rule["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            if ports.is_empty()
                || ports
                    .iter()
                    .any(|p| p["port"] == OPS_PORT || p["port"] == "ops")
            {
                problems.push(format!(
                    "{} opens the operations port: {rule}",
                    other["metadata"]["name"]
                ));
            }
        }
    }

    // Services: only the headless ones Prometheus discovers replicas with expose ops, and each of
    // those does; the public gateway Service does not.
    for service in objects.iter().filter(|o| o["kind"] == "Service") {
        let name = service["metadata"]["name"].as_str().unwrap();
        let exposes_ops = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "ops" || p["targetPort"] == "ops" || p["targetPort"] == OPS_PORT);
        let headless = service["spec"]["clusterIP"] == "None";
        let for_prometheus = headless && name.ends_with("-pods");
        if exposes_ops && !for_prometheus {
            problems.push(format!("Service {name} exposes the operations port"));
        }
        if for_prometheus {
            match port_of(&service["spec"]["ports"], "ops") {
                Some(ops) if ops["port"] == OPS_PORT && ops["targetPort"] == "ops" => {}
                other => problems.push(format!(
                    "Service {name} must expose port ops {OPS_PORT}, has {other:?}"
                )),
            }
        }
    }
    let public = find(&objects, "Service", "gateway");
    assert!(
        port_of(&public["spec"]["ports"], "http").is_some(),
        "the gateway Service serves the API: {public}"
    );

    // Prometheus scrapes the operations port.
    let config = find(&objects, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"]
        .as_str()
        .unwrap();
    let ports: Vec<&str> = config
        .lines()
        .filter_map(|line| line.trim().strip_prefix("port:"))
        .map(str::trim)
        .collect();
    if ports.is_empty() || ports.iter().any(|p| *p != OPS_PORT.to_string()) {
        problems.push(format!(
            "prometheus.yml must scrape port {OPS_PORT} alone, has {ports:?}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn data_lives_below_each_volumes_root_where_lost_and_found_may_be() {
    let gateway = fleet_testing::fleet_binary("gateway");
    let target_dir = gateway.parent().unwrap().parent().unwrap();
    let objects = render_base(&tools_venv(target_dir));
    // Where each data directory is set: PGDATA, or log.dirs in a mounted properties file.
    let log_dirs: Vec<String> = objects
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .flat_map(|o| o["data"].as_object().into_iter().flatten())
        .filter_map(|(_, text)| text.as_str())
        .flat_map(str::lines)
        .filter_map(|line| line.strip_prefix("log.dirs="))
        .flat_map(|dirs| dirs.split(','))
        .map(str::to_owned)
        .collect();
    assert!(!log_dirs.is_empty(), "no log.dirs in the rendered base");
    let mut checked = 0;
    for set in objects.iter().filter(|o| o["kind"] == "StatefulSet") {
        let claims: Vec<&Value> = set["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| &c["metadata"]["name"])
            .collect();
        for container in set["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            let mut dirs: Vec<String> = log_dirs.clone();
            dirs.extend(variable_value(&objects, container, "PGDATA"));
            for mount in container["volumeMounts"].as_array().into_iter().flatten() {
                if !claims.contains(&&mount["name"]) {
                    continue;
                }
                let root = mount["mountPath"].as_str().unwrap();
                let used: Vec<&String> = dirs
                    .iter()
                    .filter(|d| d.as_str() == root || d.starts_with(&format!("{root}/")))
                    .collect();
                assert!(
                    !used.is_empty(),
                    "{}: nothing says where in {root} the data goes",
                    set["metadata"]["name"]
                );
                for dir in used {
                    assert_ne!(
                        dir.trim_end_matches('/'),
                        root.trim_end_matches('/'),
                        "{}: data in the volume's root {root}, where lost+found may be",
                        set["metadata"]["name"]
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked >= 2,
        "Kafka's and PostgreSQL's data directories checked: {checked}"
    );
}

#[test]
fn every_stateful_set_is_governed_by_a_headless_service() {
    let gateway = fleet_testing::fleet_binary("gateway");
    let target_dir = gateway.parent().unwrap().parent().unwrap();
    let objects = render_base(&tools_venv(target_dir));
    let sets: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "StatefulSet")
        .collect();
    assert!(!sets.is_empty(), "no StatefulSet in the rendered base");
    for set in sets {
        let name = set["spec"]["serviceName"].as_str().unwrap_or_default();
        let service = find(&objects, "Service", name);
        assert_eq!(
            service["spec"]["clusterIP"], "None",
            "{}: serviceName {name} is not headless",
            set["metadata"]["name"]
        );
    }
}

/// One table of the README's "Service configuration": the binaries its lead-in names, and each
/// row's variables with whether the row says `required`.
struct ConfigTable {
    lead_in: String,
    binaries: BTreeSet<&'static str>,
    rows: Vec<(Vec<String>, bool)>,
}

/// The binaries a table's lead-in names: the words before its first "read" ("every process",
/// "every service", or binaries by name), so that a lead-in such as "rental also reads:" or
/// "book-management, rental and the gateway also read these" says whose table it is.
fn binaries_named(lead_in: &str) -> BTreeSet<&'static str> {
    let lead_in = lead_in.to_lowercase();
    let subject = lead_in.split(" read").next().unwrap_or_default();
    let mut named = BTreeSet::new();
    if subject.contains("every process") {
        named.insert("gateway");
        named.extend(SERVICES);
    }
    if subject.contains("every service") {
        named.extend(SERVICES);
    }
    let words: BTreeSet<&str> = subject
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .collect();
    for binary in SERVICES.into_iter().chain(["gateway"]) {
        if words.contains(binary) {
            named.insert(binary);
        }
    }
    named
}

fn config_tables(readme: &str) -> Vec<ConfigTable> {
    let start = readme
        .find("\n## Service configuration\n")
        .expect("README.md has a section \"Service configuration\"");
    let section = &readme[start + 1..];
    let end = section[1..].find("\n## ").map_or(section.len(), |i| i + 1);
    let lines: Vec<&str> = section[..end].lines().collect();
    let mut tables = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut lead_in = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("| variable |") {
            let mut rows = Vec::new();
            i += 2; // the header and its rule
            while i < lines.len() && lines[i].starts_with('|') {
                let cells: Vec<&str> = lines[i].split('|').map(str::trim).collect();
                let names = cells[1]
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .filter(|name| {
                        name.chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    })
                    .map(str::to_owned)
                    .collect();
                rows.push((names, cells[2].starts_with("required")));
                i += 1;
            }
            tables.push(ConfigTable {
                binaries: binaries_named(&lead_in),
                lead_in: std::mem::take(&mut lead_in),
                rows,
            });
            continue;
        }
        if line.trim().is_empty() {
            if !paragraph.is_empty() {
                lead_in = paragraph.join(" ");
                paragraph.clear();
            }
        } else {
            paragraph.push(line);
        }
        i += 1;
    }
    tables
}

#[test]
fn the_readme_lists_exactly_what_each_binary_reads() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("read README.md");
    let tables = config_tables(&readme);
    assert!(
        tables.len() >= 5,
        "too few configuration tables in README.md"
    );
    let mut problems = Vec::new();
    for table in &tables {
        if table.binaries.is_empty() {
            problems.push(format!(
                "README.md: the lead-in {:?} names no binary (every process, every service, or \
                 binaries by name, before \"read\")",
                table.lead_in
            ));
        }
    }
    for binary in SERVICES.into_iter().chain(["gateway"]) {
        let (read, required) = variables_read(&fleet_testing::fleet_binary(binary));
        let mut documented = BTreeMap::new();
        for table in tables.iter().filter(|t| t.binaries.contains(binary)) {
            for (names, says_required) in &table.rows {
                for name in names {
                    if documented.insert(name.clone(), *says_required).is_some() {
                        problems.push(format!("README.md lists {name} twice for {binary}"));
                    }
                }
            }
        }
        for name in read.iter().filter(|name| !documented.contains_key(*name)) {
            problems.push(format!(
                "{binary} reads {name}, which no README table for {binary} lists"
            ));
        }
        for (name, says_required) in &documented {
            if !read.contains(name) {
                problems.push(format!(
                    "README.md lists {name} for {binary}, which {binary} does not read"
                ));
            } else if *says_required != required.contains(name) {
                let (listed, actual) = if *says_required {
                    ("required", "optional")
                } else {
                    ("optional", "required")
                };
                problems.push(format!(
                    "README.md has {name} {listed} for {binary}, which has it {actual}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
