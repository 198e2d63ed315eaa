"""What the fleet runs against PostgreSQL for a rent → return cycle, taken from the run itself, and
that work as pgbench scripts: the statements the report's ceilings replay.

Two captures, both made by the database while the fleet runs:
- **counts** (`Counter`): pg_stat_statements (preloaded by the private PostgreSQL the fleet's
  supervisor starts, tools/fleet) over the gateway's cycles, each statement's calls and rows by
  role: how often the fleet ran each statement a cycle, what its outbox relays published a pass.
  pg_stat_statements normalises constants to $n, so it cannot be replayed by itself;
- **one cycle traced** (`trace_cycle`): `log_statement = all` while one rent and its return go
  through the gateway and every consumer applies their events, read back from the server's log:
  every statement with its parameters, in order, by role (and so by service).

From the traced cycle, `Replay` writes the pgbench scripts: the cycle's transactions in the order
they began, a consumer's transaction one event each (`by_event`); each statement qualified to a
copy of its schema's tables (`pgbench_fair_<schema>`); the values the cycle made for itself
(rentals', payments', events' and keys' UUIDs) made afresh each cycle, and the book and the
customer each pgbench client's own; every other value as it was bound. An outbox relay pass is
replayed as it ran, except that pgbench cannot carry the ids a pass read into the statement that
marks them sent: the pass marks what is pending up to the last id it read (the same rows).
"""

import json
import re
import subprocess
import time
import urllib.parse
import uuid

# The fleet's schemas and the services that own them (tools/fleet/src/layout.rs).
SERVICES = {"rental": "rental", "payment": "payment", "book": "book-management", "users": "user",
            "points": "points", "view": "view"}
# Every pgbench client rents its own book as its own customer: these ids, made from its number.
CLIENT_IDS = {
    "book_id": "('00000000-0000-4000-8000-' || lpad(:client_id::text, 12, '0'))::uuid",
    "user_id": "('00000000-0000-4000-9000-' || lpad(:client_id::text, 12, '0'))::uuid",
}
# The same for a client numbered by generate_series's n, for the rows set up before the run.
CLIENT_ROWS = {name: expression.replace(":client_id", "n") for name, expression in CLIENT_IDS.items()}
# How the server's log lines start while a cycle is traced: epoch seconds, pid, role@database.
LOG_PREFIX = "%n [%p] %u@%d "
LOG_LINE = re.compile(r"^(\d+\.\d+) \[(\d+)\] (\S*)@(\S*) ([A-Z]+):  (.*)$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-([0-9a-f])[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A relay pass that published (kit: crates/messaging/src/outbox.rs): its transaction marks what
# it published sent.
RELAY_MARK = re.compile(r"^update outbox set sent_at\b")
# A consumer's transaction (kit: crates/messaging/src/inbox.rs): an inbox row for every event.
INBOX_ROW = re.compile(r"^insert into inbox\b")


# --- the database --------------------------------------------------------------------------------


def psql(url, sql, *extra):
    """psql's output for `sql` at `url`, stopping at the first error."""
    return subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", *extra, "-c", sql],
                          check=True, capture_output=True, text=True).stdout


def rows(url, sql):
    """The rows of a query, each a list of its columns' values as JSON has them (None for NULL)."""
    # Each row as a JSON array of its columns in order (json keeps columns of the same name).
    out = psql(url, "SELECT json_agg((SELECT json_agg(c.value) FROM json_each(row_to_json(q)) AS c)) "
                    f"FROM ({sql}) AS q", "-A", "-t")
    return json.loads(out.strip() or "null") or []


def pg_url(fleet):
    """The admin's URL of the fleet's database, as dev.sh wrote it into fleet.env."""
    admin = urllib.parse.urlsplit(fleet.settings["DATABASE_ADMIN_URL"])
    return urllib.parse.urlunsplit(admin._replace(path="/" + fleet.settings["FLEET_DB_NAME"]))


def schemas_of_roles(url):
    """{role: schema} of the roles that own one of the fleet's schemas."""
    return {role: schema for role, schema in rows(
        url, "SELECT r.rolname, n.nspname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner "
             f"WHERE n.nspname IN ({', '.join(quote(s) for s in SERVICES)})")}


def tables_of(url, schema):
    return sorted(t for (t,) in rows(url, "SELECT table_name FROM information_schema.tables "
                                           f"WHERE table_schema = {quote(schema)}"))


def quote(value):
    """`value` as an SQL literal (NULL for None)."""
    return "NULL" if value is None else "'" + str(value).replace("'", "''") + "'"


# --- counts: pg_stat_statements ------------------------------------------------------------------


class Counter:
    """pg_stat_statements of the fleet's database: reset, then read what ran since."""

    def __init__(self, url):
        self.url = url

    @classmethod
    def start(cls, url):
        """A Counter, or None (with why) where pg_stat_statements is not loaded."""
        try:
            psql(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            psql(url, "SELECT count(*) FROM pg_stat_statements")
        except subprocess.CalledProcessError as error:
            return None, (error.stderr or "").strip().splitlines()[-1:] or ["psql failed"]
        return cls(url), None

    def reset(self):
        psql(self.url, "SELECT pg_stat_statements_reset()")

    def read(self):
        """[(schema, normalised query, calls, rows)] of the fleet's roles since the reset."""
        owners = schemas_of_roles(self.url)
        found = rows(self.url,
                     "SELECT r.rolname, s.query, s.calls, s.rows FROM pg_stat_statements s "
                     "JOIN pg_roles r ON r.oid = s.userid "
                     "WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())")
        return [(owners[role], query, int(calls), int(n)) for role, query, calls, n in found
                if role in owners]


def per_cycle(counts, cycles):
    """{(service, shape): calls a cycle} of Counter.read()'s counts over `cycles` cycles."""
    out = {}
    for schema, query, calls, _ in counts:
        key = (SERVICES[schema], shape(query))
        out[key] = out.get(key, 0) + calls / cycles
    return out


def not_replayed(replay, ran, at_least=0.5):
    """What the fleet ran at least `at_least` times a cycle (per_cycle()'s) that the replay does
    not hold: [{"service", "statement", "per_cycle"}], the most frequent first. Transaction
    control and the outbox relays' statements are left aside: a relay of a service whose outbox
    the cycle does not write only looks, by the clock, and finds nothing."""
    held = replay.shapes()
    relaying = {what for (_, what) in replay.relay_shapes()}
    return sorted(({"service": who, "statement": what, "per_cycle": round(n, 2)}
                   for (who, what), n in ran.items()
                   if n >= at_least and (who, what) not in held and what not in relaying
                   and what not in ("begin", "commit", "rollback")),
                  key=lambda missing: -missing["per_cycle"])


def relay_events_per_pass(counts):
    """{service: events an outbox relay pass published}: the rows its marking statement updated,
    per call."""
    out = {}
    for schema, query, calls, updated in counts:
        if RELAY_MARK.match(shape(query)) and calls:
            out[SERVICES[schema]] = round(updated / calls, 1)
    return out


# --- one cycle traced: log_statement = all -------------------------------------------------------


def trace(url, during):
    """Every statement the fleet's roles ran while `during()` ran, from the server's log:
    [{"pid", "role", "sql", "params"}] in the log's order, and what `during()` returned."""
    log = rows(url, "SELECT coalesce(pg_current_logfile(), 'server.log')")[0][0]
    marker = f"fleet-trace-{uuid.uuid4().hex}"
    start = int(rows(url, f"SELECT (pg_stat_file({quote(log)})).size")[0][0])
    # ALTER SYSTEM runs by itself, outside any transaction.
    psql(url, "ALTER SYSTEM SET log_statement = 'all'")
    psql(url, f"ALTER SYSTEM SET log_line_prefix = {quote(LOG_PREFIX)}")
    try:
        psql(url, "SELECT pg_reload_conf()")
        # Every backend takes the new settings before its next command.
        time.sleep(0.5)
        psql(url, f"SELECT '{marker}-begin'")
        result = during()
        psql(url, f"SELECT '{marker}-end'")
    finally:
        psql(url, "ALTER SYSTEM RESET log_statement")
        psql(url, "ALTER SYSTEM RESET log_line_prefix")
        psql(url, "SELECT pg_reload_conf()")
    end = int(rows(url, f"SELECT (pg_stat_file({quote(log)})).size")[0][0])
    text = bytes.fromhex(rows(url, f"SELECT encode(pg_read_binary_file({quote(log)}, {start}, "
                                   f"{end - start}), 'hex')")[0][0]).decode(errors="replace")
    logged = parse_log(text)
    begin = next(i for i, s in enumerate(logged) if f"{marker}-begin" in s["sql"])
    finish = next(i for i, s in enumerate(logged) if f"{marker}-end" in s["sql"])
    return logged[begin + 1:finish], result


def parse_log(text):
    """The statements of a server log written with LOG_PREFIX and log_statement = all:
    [{"pid", "role", "sql", "params"}], a simple query's params [] and an extended one's as
    its DETAIL line gives them ($1 first; None for NULL)."""
    messages = []
    for line in text.splitlines():
        found = LOG_LINE.match(line)
        if found:
            messages.append([int(found[2]), found[3], found[5], found[6]])
        elif line.startswith("\t") and messages:
            messages[-1][3] += "\n" + line[1:]
    statements, by_pid = [], {}
    for pid, role, level, message in messages:
        if level == "LOG":
            found = re.match(r"(?:statement|execute [^:]*): (.*)", message, re.S)
            if found:
                statement = {"pid": pid, "role": role, "sql": found[1], "params": []}
                statements.append(statement)
                by_pid[pid] = statement
        elif level == "DETAIL" and message.startswith("parameters: ") and pid in by_pid:
            by_pid[pid]["params"] = parse_parameters(message[len("parameters: "):])
    return statements


def parse_parameters(text):
    """`$1 = 'a', $2 = NULL, $3 = 'it''s'` as ['a', None, "it's"]."""
    values, at = {}, 0
    pattern = re.compile(r"\$(\d+) = (?:NULL|'((?:[^']|'')*)')(?:, |$)", re.S)
    while at < len(text):
        found = pattern.match(text, at)
        if not found:
            raise ValueError(f"unreadable parameters at {text[at:at + 60]!r}")
        values[int(found[1])] = None if found[2] is None else found[2].replace("''", "'")
        at = found.end()
    return [values.get(n) for n in range(1, max(values, default=0) + 1)]


def transactions(statements, schemas):
    """The statements grouped into transactions, each {"service", "schema", "statements"} in
    the order they began: BEGIN … COMMIT or ROLLBACK on one connection, or one statement by
    itself. Only the fleet's roles ({role: schema}) count."""
    done, open_by_pid = [], {}
    for statement in statements:
        schema = schemas.get(statement["role"])
        if schema is None:
            continue
        word = first_word(statement["sql"])
        current = open_by_pid.get(statement["pid"])
        if current is None:
            current = {"service": SERVICES[schema], "schema": schema, "statements": []}
            done.append(current)
            if word in ("BEGIN", "START"):
                open_by_pid[statement["pid"]] = current
        current["statements"].append({"sql": statement["sql"], "params": statement["params"]})
        if word in ("COMMIT", "ROLLBACK", "END"):
            open_by_pid.pop(statement["pid"], None)
    return done


def first_word(sql):
    found = re.match(r"\s*(\w+)", sql)
    return found[1].upper() if found else ""


def by_event(units):
    """Each consumer's transaction split into one for each event it applied (a consumer applies
    what it has received in one transaction: one event or several): the statements from one
    inbox row to the next, in BEGIN … COMMIT of their own. Other transactions as they are."""
    out = []
    for unit in units:
        body = unit["statements"]
        inbox = [i for i, s in enumerate(body) if INBOX_ROW.match(shape(s["sql"]))]
        if len(inbox) < 2:
            out.append(unit)
            continue
        begin, commit = body[0], body[-1]
        cuts = [1] + inbox[1:] + [len(body) - 1]
        for a, b in zip(cuts, cuts[1:]):
            out.append(unit | {"statements": [begin] + body[a:b] + [commit]})
    return out


def of_the_cycle(units, seeds):
    """The units (transactions) that concern the cycle: any that binds one of `seeds` (the book,
    the rental) or a UUID another such unit bound (the payment, the events, the key), until no
    more join. Relay passes, which bind only outbox row numbers, and the work the services do by
    the clock are left out."""
    known, chosen = set(seeds), set()
    while True:
        grown = False
        for i, unit in enumerate(units):
            values = {v for s in unit["statements"] for v in s["params"] if v}
            if i not in chosen and values & known:
                chosen.add(i)
                known |= {v for v in values if UUID.match(v)}
                grown = True
        if not grown:
            return [unit for i, unit in enumerate(units) if i in chosen]


def relay_passes(units):
    """{schema: the statements of the first outbox relay pass that published something}."""
    passes = {}
    for unit in units:
        if any(RELAY_MARK.match(shape(s["sql"])) for s in unit["statements"]):
            passes.setdefault(unit["schema"], unit["statements"])
    return passes


def capture(traced, schemas, ids, tables):
    """What the replay needs of a traced window: the cycle's transactions (a consumer's one event
    each), a publishing relay pass of each service, the cycle's own ids, and each schema's
    tables."""
    units = transactions(traced, schemas)
    cycle = of_the_cycle(by_event(units), {ids["book_id"], ids["rental_id"]})
    return {
        "about": "One rent → return cycle through the gateway, traced from PostgreSQL's log by "
                 "siege.statements: the cycle's transactions (a consumer's one event each) and a "
                 "publishing pass of each outbox relay, every statement with its parameters.",
        "ids": ids,
        "tables": tables,
        "cycle": [{"service": u["service"], "schema": u["schema"], "statements": u["statements"]}
                  for u in cycle],
        "relays": relay_passes(units),
    }


def trace_cycle(fleet, load, url=None):
    """One rent → return cycle through the gateway with a book of its own, traced until every
    event it made is published and every consumer's inbox holds what it will: capture()'s
    dictionary."""
    url = url or pg_url(fleet)
    schemas = schemas_of_roles(url)
    [book] = load.books(1, fleet)
    # The book's registration applied everywhere first: its events are not the cycle's.
    settle(url, schemas.values())

    def cycle():
        rental = load.api.expect(201, "POST", "/api/v1/rentals", token=load.token,
                                 body={"bookId": book}, what="the traced rent")
        load.api.expect(200, "POST", f"/api/v1/rentals/{rental['id']}/return", token=load.token,
                        what="the traced return")
        settle(url, schemas.values())
        return rental

    traced, rental = trace(url, cycle)
    ids = {"book_id": book, "user_id": load.customer_id, "rental_id": rental["id"],
           "payment_id": rental.get("paymentId")}
    tables = {schema: tables_of(url, schema) for schema in schemas.values()}
    return capture(traced, schemas, ids, tables)


def settle(url, schemas, quiet=1.5, timeout=60):
    """Until every outbox row of the last minute is sent and no inbox has gained a row for
    `quiet` seconds: the events of a cycle published and applied."""
    outboxes = [s for s in schemas if "outbox" in tables_of(url, s)]
    inboxes = [s for s in schemas if "inbox" in tables_of(url, s)]
    unsent = " + ".join(f"(SELECT count(*) FROM {s}.outbox WHERE sent_at IS NULL "
                        "AND created_at > now() - interval '1 minute')" for s in outboxes) or "0"
    applied = " + ".join(f"(SELECT count(*) FROM {s}.inbox)" for s in inboxes) or "0"
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        pending, count = rows(url, f"SELECT {unsent}, {applied}")[0]
        if count != last:
            last, since = count, time.monotonic()
        elif not pending and time.monotonic() - since >= quiet:
            return
        time.sleep(0.25)
    raise RuntimeError(f"the traced cycle's events were not all applied within {timeout} s")


# --- shapes ---------------------------------------------------------------------------------------


def shape(sql):
    """A statement's shape, to compare statements written by hand, logged, or normalised by
    pg_stat_statements: lower case, one space, no comments, no schema of a copy, every value
    (literal, NULL, $n, :variable) a `?`, no casts, no pgbench meta-command."""
    text = re.sub(r"--[^\n]*", " ", sql)
    text = re.sub(r"\\[ag]set\b.*", " ", text)
    text = re.sub(r"'(?:[^']|'')*'", "?", text)
    text = re.sub(r"\$\d+|(?<!:):[a-z_][a-z0-9_]*", "?", text, flags=re.I)
    text = re.sub(r"::\s*[a-z_][a-z0-9_ ]*?(\[\])?(?=[\s,;:)=<>+|-]|$)", "", text, flags=re.I)
    text = re.sub(r"\bpgbench_fair_\w+\.", "", text)
    text = re.sub(r"(?<![\w.])-?\d+(\.\d+)?\b", "?", text)
    text = re.sub(r"\s+", " ", text).strip().rstrip(";").strip().lower()
    # NULL as a value (bound, or written in) is a value; `IS [NOT] NULL` is not.
    text = re.sub(r"(?<!is )(?<!not )\bnull\b", "?", text)
    text = re.sub(r"\s*([(),=<>+|*/-])\s*", r"\1", text)
    return re.sub(r"\binterval\?", "interval ?", text)


# --- the replay -----------------------------------------------------------------------------------


def copy_of(schema):
    """The schema of the copies of `schema`'s tables that pgbench works on."""
    return f"pgbench_fair_{schema}"


class Replay:
    """The pgbench scripts of a capture() (see the module's documentation)."""

    def __init__(self, captured):
        self.captured = captured
        self.ids = captured["ids"]
        self.tables = captured["tables"]
        # The values the cycle made for itself, each a variable made afresh every cycle.
        self.names = {}
        for value, name in names_of_made_values(captured["cycle"], self.ids).items():
            self.names[value] = name if name not in self.names.values() else f"{name}_{len(self.names) + 1}"
        # Values pgbench would read as variables where they stand (":00" of a time, in JSON),
        # bound as variables of their own instead (pgbench -D, variables()).
        self.constants = {}
        for statements in [u["statements"] for u in captured["cycle"]] + list(captured["relays"].values()):
            for statement in statements:
                for value in statement["params"]:
                    if value and value not in self.names and value not in self.constants \
                            and re.search(r":[A-Za-z0-9_]", value):
                        self.constants[value] = f"value_{len(self.constants) + 1}"
        self.touched = {}
        for unit in captured["cycle"]:
            for statement in unit["statements"]:
                self.touched.setdefault(unit["schema"], set()).update(
                    self.tables_in(statement["sql"], unit["schema"]))
        for schema, statements in captured["relays"].items():
            if self.writes_outbox(schema):
                for statement in statements:
                    self.touched.setdefault(schema, set()).update(self.tables_in(statement["sql"], schema))

    def tables_in(self, sql, schema):
        names = re.findall(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+([a-z_][a-z0-9_]*)\b", sql, re.I)
        return {name for name in names if name in self.tables[schema]}

    def qualified(self, sql, schema):
        """`sql` on the copies of its schema's tables."""
        sql = re.sub(r"\b(FROM|JOIN|INTO|UPDATE)(\s+)([a-z_][a-z0-9_]*)\b",
                     lambda m: m[1] + m[2] + (f"{copy_of(schema)}.{m[3]}"
                                              if m[3] in self.tables[schema] else m[3]),
                     sql, flags=re.I)
        return re.sub(r"\bcurrent_schema\(\)", quote(copy_of(schema)), sql)

    def value(self, value):
        """A bound value as the replay binds it: the cycle's ids as variables, else a literal."""
        if value == self.ids["book_id"]:
            return ":book_id"
        if value == self.ids["user_id"]:
            return ":user_id"
        if value in self.names:
            return ":" + self.names[value]
        if value in self.constants:
            return ":" + self.constants[value]
        return quote(value)

    def variables(self):
        """{name: value} of the values bound as variables of their own (pgbench -D)."""
        return {name: value for value, name in self.constants.items()}

    def statement(self, statement, schema):
        sql = re.sub(r"\$(\d+)", lambda m: self.value(statement["params"][int(m[1]) - 1]),
                     statement["sql"])
        return self.qualified(sql, schema).rstrip().rstrip(";") + ";"

    def head(self, cycles=1):
        """The statement that makes each cycle's ids (pgbench's own, not the fleet's)."""
        made = []
        for value, name in self.names.items():
            version = UUID.match(value)[1]
            if version == "7":
                expression = ("(substr(ms, 1, 8) || '-' || substr(ms, 9, 4) || '-7' "
                              "|| substr(gen_random_uuid()::text, 16))::uuid")
            else:
                expression = "gen_random_uuid()"
            made += [f"{expression} AS {name}{suffix(k, cycles)}" for k in range(cycles)]
        made += [f"{expression} AS {name}" for name, expression in CLIENT_IDS.items()]
        return ("-- pgbench: the cycle's own ids (rentals' and payments' UUIDv7, events' and keys' "
                "UUIDv4, as the services make them), the client's book and customer; not a "
                "statement of the fleet's\n"
                "SELECT " + ",\n    ".join(made) + "\n    FROM (SELECT lpad(to_hex((extract(epoch FROM "
                "clock_timestamp()) * 1000)::bigint), 12, '0') AS ms) AS t \\gset\n")

    def units(self, services=None, consumers=True):
        """The cycle's transactions as [(service, label, [statement])], of `services` only
        when given, without the consumers' when not `consumers`."""
        out = []
        for unit in self.captured["cycle"]:
            if services and unit["service"] not in services:
                continue
            consumer = any(INBOX_ROW.match(shape(s["sql"])) for s in unit["statements"])
            if consumer and not consumers:
                continue
            body = [self.statement(s, unit["schema"]) for s in unit["statements"]]
            out.append((unit["service"], label(unit, consumer), body, consumer))
        return out

    def cycle_script(self, cycles=1, services=None, consumers=True):
        """The cycle as one pgbench transaction; with `cycles` > 1, as many cycles whose
        consumers apply their events together (one transaction of each consumer for every cycle's
        events, in the order they came), as the fleet's consumers batch what they have
        received."""
        units = self.units(services, consumers)
        out = [self.head(cycles).rstrip("\n")]
        if cycles == 1:
            for who, what, body, _ in units:
                out += [f"-- {who}: {what}", *body]
            return "\n".join(out) + "\n"
        for k in range(cycles):
            for who, what, body, consumer in units:
                if not consumer:
                    out += [f"-- {who}: {what}", *[of_cycle(s, k, self.names) for s in body]]
        consumers_in_order = []
        for who, _, _, consumer in units:
            if consumer and who not in consumers_in_order:
                consumers_in_order.append(who)
        for who in consumers_in_order:
            out += [f"-- {who}: {cycles} cycles' events in one transaction", "BEGIN;"]
            for k in range(cycles):
                for unit_who, _, body, consumer in units:
                    if consumer and unit_who == who:
                        out += [of_cycle(s, k, self.names) for s in body
                                if first_word(s) not in ("BEGIN", "COMMIT")]
            out.append("COMMIT;")
        return "\n".join(out) + "\n"

    def shapes(self):
        """{(service, shape)} of every statement the replay runs, as the fleet wrote it."""
        held = {(u["service"], shape(s["sql"])) for u in self.captured["cycle"] for s in u["statements"]}
        return held | {(who, what) for who, what in self.relay_shapes()
                       if who in {SERVICES[schema] for schema in self.outbox_events()}}

    def relay_shapes(self):
        """{(service, shape)} of the captured relay passes' statements."""
        return {(SERVICES[schema], shape(s["sql"])) for schema, body in self.captured["relays"].items()
                for s in body} | {(SERVICES[schema], "rollback") for schema in self.captured["relays"]}

    def writes_outbox(self, schema):
        return any(unit["schema"] == schema and any(
            re.match(r"^insert into outbox\b", shape(s["sql"])) for s in unit["statements"])
            for unit in self.captured["cycle"])

    def outbox_events(self):
        """{schema: events a cycle writes to its outbox}."""
        out = {}
        for unit in self.captured["cycle"]:
            for statement in unit["statements"]:
                if re.match(r"^insert into outbox\b", shape(statement["sql"])):
                    out[unit["schema"]] = out.get(unit["schema"], 0) + 1
        return out

    def relay_script(self, schema):
        """One pass of `schema`'s outbox relay, as the captured one ran: its turn, the pending
        events, those marked sent and the backlog left, in one transaction; a pass that does not
        get its turn or finds nothing rolls back. pgbench cannot carry the ids the pass read into
        the statement that marks them, so that one marks what is pending up to the last id read."""
        body = self.captured["relays"][schema]
        turn = next(i for i, s in enumerate(body) if "advisory" in s["sql"])
        pending = next(i for i, s in enumerate(body) if i > turn and shape(s["sql"]).startswith("select"))
        mark = next(i for i, s in enumerate(body) if RELAY_MARK.match(shape(s["sql"])))
        end = next(i for i, s in enumerate(body) if first_word(s["sql"]) in ("COMMIT", "END"))
        if not 0 < turn < pending < mark < end or not re.search(r"\bid\s*=\s*ANY\s*\(\s*\$1\s*\)",
                                                             body[mark]["sql"], re.I):
            raise RuntimeError(f"{schema}'s relay pass is not turn, pending, mark by id, … as "
                               f"siege.statements knows it: {[s['sql'] for s in body]}")
        sql = [self.statement(s, schema) for s in body]
        marked = re.sub(r"\bid\s*=\s*ANY\s*\(\s*'[^']*'\s*\)", "sent_at IS NULL AND id <= :pending_id",
                        sql[mark], flags=re.I)
        return "\n".join([
            f"-- outbox relay: {SERVICES[schema]}",
            "\\set pending_id 0",
            sql[0],
            sql[turn].rstrip(";") + " AS turn \\gset",
            "\\if :turn",
            sql[pending].rstrip(";") + " \\aset pending_",
            "\\endif",
            "\\if :pending_id > 0",
            *sql[turn + 1:pending],
            marked,
            *sql[mark + 1:end],
            sql[end],
            "\\else",
            "ROLLBACK;",
            "\\endif",
        ]) + "\n"

    def setup(self, url, clients):
        """SQL to run in the fleet's database before a replay: empty copies of every table the
        replay touches (pgbench_fair_<schema>), with the foreign keys among them; and, for each
        of `clients` + 1 clients, copies of the rows the cycle found already there: those whose
        primary key is the traced book or customer, with the client's own ids in their place
        (and the client's number appended to a text column of a unique index)."""
        copies = {(s, t) for s, tables in self.touched.items() for t in tables}
        sql = [f"DROP SCHEMA IF EXISTS {copy_of(s)} CASCADE; CREATE SCHEMA {copy_of(s)};"
               for s in sorted(self.touched)]
        sql += [f"CREATE TABLE {copy_of(s)}.{t} (LIKE {s}.{t} INCLUDING ALL);" for s, t in sorted(copies)]
        # LIKE copies no foreign key: the copies get the originals' among themselves (rental's
        # rentals → catalogue), whose checks are part of the work.
        for schema, table, definition in rows(
                url, "SELECT n.nspname, c.relname, pg_get_constraintdef(k.oid) FROM pg_constraint k "
                     "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE k.contype = 'f'"):
            target = re.search(r"REFERENCES (?:(\w+)\.)?(\w+)", definition)
            target_schema = target and (target[1] or schema)
            if (schema, table) in copies and target and (target_schema, target[2]) in copies:
                definition = definition.replace(target[0], f"REFERENCES {copy_of(target_schema)}.{target[2]}")
                sql.append(f"ALTER TABLE {copy_of(schema)}.{table} ADD {definition};")
        for schema, table in sorted(copies):
            sql += self.seeds(url, schema, table, clients)
        sql += [f"ANALYZE {copy_of(s)}.{t};" for s, t in sorted(copies)]
        return "\n".join(sql)

    def seeds(self, url, schema, table, clients):
        """The INSERT that copies, for every client, the row of `table` keyed by the traced book
        or customer, if there is one."""
        relation = f"{schema}.{table}"
        keys = [k for (k,) in rows(url, "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                                        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                                        f"WHERE i.indrelid = {quote(relation)}::regclass AND i.indisprimary")]
        if len(keys) != 1:
            return []
        [key] = keys
        columns = rows(url, "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
                            "a.attidentity <> '' OR a.attgenerated <> '' "
                            "OR coalesce(pg_get_expr(d.adbin, d.adrelid), '') LIKE 'nextval(%' "
                            "FROM pg_attribute a LEFT JOIN pg_attrdef d "
                            "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                            f"WHERE a.attrelid = {quote(relation)}::regclass AND a.attnum > 0 "
                            "AND NOT a.attisdropped ORDER BY a.attnum")
        unique = " ".join(d for (d,) in rows(
            url, "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                 f"WHERE indrelid = {quote(relation)}::regclass AND indisunique AND NOT indisprimary"))
        out = []
        for who in ("book_id", "user_id"):
            if not rows(url, f"SELECT 1 FROM {relation} WHERE {key}::text = {quote(self.ids[who])}"):
                continue
            names, values = [], []
            for name, kind, made_by_the_database in columns:
                if made_by_the_database:
                    continue
                names.append(name)
                if name == key:
                    values.append(CLIENT_ROWS[who])
                elif kind == "uuid":
                    values.append(
                        f"CASE src.{name} WHEN {quote(self.ids['book_id'])} THEN {CLIENT_ROWS['book_id']} "
                        f"WHEN {quote(self.ids['user_id'])} THEN {CLIENT_ROWS['user_id']} ELSE src.{name} END")
                elif kind in ("text", "character varying") and re.search(rf"\b{name}\b", unique):
                    values.append(f"src.{name} || '-' || n")
                else:
                    values.append(f"src.{name}")
            out.append(f"INSERT INTO {copy_of(schema)}.{table} ({', '.join(names)}) "
                       f"SELECT {', '.join(values)} FROM {relation} AS src, "
                       f"generate_series(0, {clients}) AS n WHERE src.{key} = {quote(self.ids[who])};")
        return out

    def drop(self):
        return "\n".join(f"DROP SCHEMA IF EXISTS {copy_of(s)} CASCADE;" for s in self.touched)


def names_of_made_values(cycle, ids):
    """{value: name} of the UUIDs the cycle made for itself (not the book's or the customer's),
    in the order they were first bound: the rental and the payment by name, an event by the type
    a consumer's inbox row gives it (`book_rented_event`), any other by the column it was first
    inserted into (`idempotency_key`), else `made_<n>`."""
    names = {ids["rental_id"]: "rental_id"}
    if ids.get("payment_id"):
        names[ids["payment_id"]] = "payment_id"
    statements = [s for unit in cycle for s in unit["statements"]]
    for statement in statements:
        if INBOX_ROW.match(shape(statement["sql"])) and len(statement["params"]) > 2:
            event, kind = statement["params"][0], statement["params"][2]
            names.setdefault(event, re.sub(r"(?<!^)(?=[A-Z])", "_", kind or "").lower() + "_event")
    made = {}
    for statement in statements:
        columns = inserted_columns(statement["sql"])
        for n, value in enumerate(statement["params"], 1):
            if not value or not UUID.match(value) or value in made \
                    or value in (ids["book_id"], ids["user_id"]):
                continue
            made[value] = names.get(value) or columns.get(n) or f"made_{len(made) + 1}"
    return made


def inserted_columns(sql):
    """{n: column} of an INSERT whose values ($n) stand in the order of its columns."""
    found = re.match(r"\s*INSERT INTO \w+\s*\(([^)]*)\)\s*(VALUES\s*\(|SELECT\s)", sql, re.I)
    if not found:
        return {}
    values, depth, item = [], 0, ""
    for char in sql[found.end():]:
        # The list ends at the parenthesis that closes VALUES, or at the clause after SELECT's.
        if depth == 0 and (char == ")" or re.search(r"\s(WHERE|FROM|ON)$", item, re.I)):
            break
        if char == "," and depth == 0:
            values.append(item.strip())
            item = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        item += char
    values.append(re.sub(r"\s(WHERE|FROM|ON)$", "", item, flags=re.I).strip())
    columns = [c.strip() for c in found[1].split(",")]
    return {int(v[1:]): c for c, v in zip(columns, values) if re.fullmatch(r"\$\d+", v)}


def suffix(k, cycles):
    return f"_{k}" if cycles > 1 else ""


def of_cycle(sql, k, names):
    """A statement of cycle `k` of several: its per-cycle variables suffixed with `_k`."""
    made = set(names.values())
    return re.sub(r":([a-z_][a-z0-9_]*)\b", lambda m: f":{m[1]}_{k}" if m[1] in made else m[0], sql)


def label(unit, consumer):
    """What a transaction is, for the script's comment: the event a consumer's applies, else
    each statement's verb and table (or function)."""
    if consumer:
        event = next((s["params"][2] for s in unit["statements"]
                      if INBOX_ROW.match(shape(s["sql"])) and len(s["params"]) > 2), None)
        return f"applies {event or 'an event'}"
    parts = []
    for statement in unit["statements"]:
        verb = first_word(statement["sql"])
        if verb in ("BEGIN", "COMMIT"):
            continue
        target = re.search(r"\b(?:FROM|INTO|UPDATE)\s+([a-z_][a-z0-9_]*)|^\s*SELECT\s+([a-z_]+)\(",
                           statement["sql"], re.I)
        parts.append(f"{verb.lower()} {(target[1] or target[2]) if target else ''}".strip())
    return ", ".join(parts)
