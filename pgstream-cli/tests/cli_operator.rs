//! The command line as operators use it (issue 16): distinct exit codes, `status
//! --json`, `explain --query-file`, `replace`; and a database that is down fails
//! within seconds, saying why, both from the command line and from `Runtime::start`.

use pgstream_tests::{test_db, TestDb};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgstream"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run pgstream")
}

async fn pgstream(db: &TestDb, args: &[&str]) -> Output {
    let url = db.url.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&url, &args)
    })
    .await
    .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn assert_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: stdout {} stderr {}",
        stdout(out),
        stderr(out)
    );
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

#[tokio::test]
async fn exit_codes_status_json_replace_and_explain_query_file() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount int NOT NULL);
         INSERT INTO orders SELECT i, 'c' || (i % 3), i FROM generate_series(1, 30) i;",
    )
    .await;
    let q = "SELECT customer, sum(amount) AS total FROM orders GROUP BY customer";
    let out = pgstream(&db, &["create", "per_customer", "--query", q]).await;
    assert_code(&out, 0, "create");

    // Not found: 3.
    let out = pgstream(&db, &["refresh", "nothing_here"]).await;
    assert_code(&out, 3, "refresh of a missing stream table");
    let out = pgstream(&db, &["drop", "nothing_here"]).await;
    assert_code(&out, 3, "drop of a missing stream table");
    let out = pgstream(&db, &["replace", "nothing_here", "--query", q]).await;
    assert_code(&out, 3, "replace of a missing stream table");
    // Invalid query: 4.
    let out = pgstream(
        &db,
        &["create", "bad", "--query", "SELECT nope FROM orders"],
    )
    .await;
    assert_code(&out, 4, "create with a query that does not compile");
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    // Conflict: 6.
    let out = pgstream(&db, &["create", "per_customer", "--query", q]).await;
    assert_code(&out, 6, "create of an existing name");
    db.exec("CREATE TABLE plain (x int)").await;
    let out = pgstream(&db, &["create", "plain", "--query", q]).await;
    assert_code(&out, 6, "create over a plain table");
    let out = pgstream(
        &db,
        &[
            "create",
            "reader",
            "--query",
            "SELECT customer FROM per_customer",
        ],
    )
    .await;
    assert_code(&out, 0, "create of a reader");
    let out = pgstream(&db, &["drop", "per_customer"]).await;
    assert_code(&out, 6, "drop of a stream table others read");
    let out = pgstream(
        &db,
        &[
            "replace",
            "per_customer",
            "--query",
            "SELECT customer FROM orders",
        ],
    )
    .await;
    assert_code(&out, 6, "replace of a stream table others read");
    assert!(stderr(&out).contains("reader"), "{}", stderr(&out));
    let out = pgstream(&db, &["drop", "reader"]).await;
    assert_code(&out, 0, "drop reader");

    // The codes are documented.
    let out = pgstream(&db, &["--help"]).await;
    let help = stdout(&out);
    for line in [
        "3  not found",
        "4  invalid query",
        "5  connection failure",
        "6  conflict",
    ] {
        assert!(help.contains(line), "--help lacks `{line}`:\n{help}");
    }

    // status --json.
    let out = pgstream(&db, &["status", "--json"]).await;
    assert_code(&out, 0, "status --json");
    let json = stdout(&out);
    let json = json.trim();
    assert!(json.starts_with("[{") && json.ends_with("}]"), "{json}");
    assert!(json.contains(r#""name":"per_customer""#), "{json}");
    assert!(json.contains(r#""refresh_mode":"DIFFERENTIAL""#), "{json}");
    assert!(json.contains(r#""status":"ACTIVE""#), "{json}");

    // replace from a file; the schedule is kept.
    let dir = std::env::temp_dir().join(format!("pgstream_cli_operator_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("per_customer.sql");
    let q2 = "SELECT customer, count(*) AS n FROM orders GROUP BY customer";
    std::fs::write(&file, q2).unwrap();
    let out = pgstream(
        &db,
        &[
            "replace",
            "per_customer",
            "--query-file",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert_code(&out, 0, "replace");
    assert!(stdout(&out).contains("replaced"), "{}", stdout(&out));
    assert_eq!(db.difference(q2, "customer, n", "per_customer").await, 0);
    let (query, schedule): (String, String) = sqlx::query_as(
        "SELECT query, schedule FROM pgstream.pgs_stream_tables WHERE table_name = 'per_customer'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((query.as_str(), schedule.as_str()), (q2, "1m"));

    // explain --query-file, with a schema directory.
    let schema = dir.join("migrations");
    std::fs::create_dir_all(&schema).unwrap();
    std::fs::write(
        schema.join("0001_init.sql"),
        "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount int NOT NULL);",
    )
    .unwrap();
    let out = pgstream(
        &db,
        &[
            "explain",
            "--query-file",
            file.to_str().unwrap(),
            "--schema",
            schema.to_str().unwrap(),
        ],
    )
    .await;
    assert_code(&out, 0, "explain --query-file");
    assert!(stdout(&out).contains("orders"), "{}", stdout(&out));
    std::fs::write(&file, "SELECT nope FROM orders").unwrap();
    let out = pgstream(
        &db,
        &[
            "explain",
            "--query-file",
            file.to_str().unwrap(),
            "--schema",
            schema.to_str().unwrap(),
        ],
    )
    .await;
    assert_code(&out, 4, "explain of a query that does not compile");
    let out = pgstream(&db, &["explain", "--query", q, "--query-file", "x.sql"]).await;
    assert_code(&out, 2, "--query and --query-file together");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_database_that_is_down_fails_fast_with_the_cause() {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", closed_port());

    // The command line: exit code 5, "connection refused", within seconds.
    let started = Instant::now();
    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || run(&u, &["status"]))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_code(&out, 5, "status against a closed port");
    assert!(
        stderr(&out).to_lowercase().contains("refused"),
        "{}",
        stderr(&out)
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    eprintln!("pgstream status against a closed port failed in {took:?}");

    // The library: Runtime::start over a pool with the default 30 s acquire timeout.
    let pool = pgstream::sqlx::postgres::PgPoolOptions::new()
        .connect_lazy(&url)
        .unwrap();
    let started = Instant::now();
    let err = pgstream::Runtime::builder(pool).start().await.unwrap_err();
    let took = started.elapsed();
    let msg = err.to_string();
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(msg.contains("connecting to the database"), "{msg}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    eprintln!("Runtime::start against a closed port failed in {took:?}: {msg}");
}

/// Logs piped to a file or a collector carry no terminal escapes; `--log-format
/// json` (or `PGSTREAM_LOG_FORMAT=json`) writes one JSON object per line.
#[tokio::test]
async fn logs_are_plain_when_piped_and_json_on_request() {
    let db = test_db().await;
    db.exec("CREATE TABLE lg (id int PRIMARY KEY, v int)").await;
    let url = db.url.clone();
    let (text, json) = tokio::task::spawn_blocking(move || {
        let go = |format: &str, name: &str| {
            Command::new(env!("CARGO_BIN_EXE_pgstream"))
                .args([
                    "create",
                    name,
                    "--query",
                    "SELECT id, v FROM lg",
                    "--schedule",
                    "1h",
                ])
                .env("DATABASE_URL", &url)
                .env("RUST_LOG", "info")
                .env("PGSTREAM_LOG_FORMAT", format)
                .env_remove("NO_COLOR")
                .output()
                .expect("run pgstream")
        };
        (go("text", "lg_text"), go("json", "lg_json"))
    })
    .await
    .unwrap();
    assert_code(&text, 0, "create with text logs");
    assert_code(&json, 0, "create with json logs");
    let text_log = stderr(&text);
    assert!(text_log.contains("created stream table"), "{text_log}");
    assert!(
        !text_log.contains('\u{1b}'),
        "escape codes in piped logs: {text_log:?}"
    );
    let json_log = stderr(&json);
    // The second command installs over an existing catalog: PostgreSQL's "already
    // exists, skipping" notices are not logged.
    for log in [&text_log, &json_log] {
        assert!(!log.contains("skipping"), "install notices logged: {log}");
    }
    let lines: Vec<&str> = json_log.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty(), "no json log lines");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not json ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"stream_table\":\"lg_json\"")),
        "{json_log}"
    );
}

/// `status` fits an 80-column terminal by default (the error cut to what fits, the
/// last refresh as an age); `--wide` shows every column, timestamps with their zone.
#[tokio::test]
async fn status_fits_80_columns_unless_wide() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE w (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         INSERT INTO w SELECT i, i % 3, i FROM generate_series(1, 9) i;",
    )
    .await;
    for (name, query) in [
        ("w_sums", "SELECT g, sum(v) AS s FROM w GROUP BY g"),
        ("w_rows", "SELECT id, v FROM w"),
    ] {
        let out = pgstream(
            &db,
            &["create", name, "--query", query, "--schedule", "30s"],
        )
        .await;
        assert_code(&out, 0, "create");
    }
    // A drift error with a long message on one of them.
    db.exec("ALTER TABLE w RENAME COLUMN v TO value_of_the_row_with_a_long_name")
        .await;
    let out = pgstream(&db, &["refresh", "w_rows"]).await;
    assert_code(&out, 1, "refresh after drift");

    let out = pgstream(&db, &["status"]).await;
    assert_code(&out, 0, "status");
    let text = stdout(&out);
    for line in text.lines() {
        assert!(
            line.trim_end().chars().count() <= 80,
            "too wide: {line:?}\n{text}"
        );
    }
    assert!(
        text.contains("refreshed") && text.contains(" ago"),
        "{text}"
    );
    assert!(text.contains("ERROR"), "{text}");
    let out = pgstream(&db, &["status", "--wide"]).await;
    assert_code(&out, 0, "status --wide");
    let wide = stdout(&out);
    assert!(wide.contains("strategy") && wide.contains(" UTC"), "{wide}");
    assert!(wide.contains("value_of_the_row_with_a_long_name"), "{wide}");
}

/// `pgstream` run in directory `dir`.
fn run_in(dir: &std::path::Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgstream"))
        .args(args)
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run pgstream")
}

/// The lines of the section of `explain`'s output that starts with `title`.
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    text.split_once(title)
        .unwrap_or_else(|| panic!("no `{title}` in:\n{text}"))
        .1
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

/// `explain` of an existing stream table (its stored query, from the database), in a
/// directory without `migrations/` for a query that reads no table, the SQL laid out
/// one clause per line, advice in the command line's words, and its exit codes.
#[tokio::test]
async fn explain_a_stream_table_from_the_database_or_a_query_without_migrations() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount int NOT NULL);
         INSERT INTO orders SELECT i, 'c' || (i % 3), i FROM generate_series(1, 30) i;",
    )
    .await;
    let empty = std::env::temp_dir().join(format!("pgstream_cli_explain_{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let url = db.url.clone();
    let dir = empty.clone();
    let go = move |args: &[&str]| run_in(&dir, &url, args);

    // Nothing installed yet: not found.
    let (go, out) = tokio::task::spawn_blocking(move || {
        let out = go(&["explain", "per_customer"]);
        (go, out)
    })
    .await
    .unwrap();
    assert_code(&out, 3, "explain before anything was created");

    let q = "SELECT customer, sum(amount) AS total FROM orders GROUP BY customer";
    let out = pgstream(&db, &["create", "per_customer", "--query", q]).await;
    assert_code(&out, 0, "create");

    let (go, out) = tokio::task::spawn_blocking(move || {
        let out = go(&["explain", "per_customer"]);
        (go, out)
    })
    .await
    .unwrap();
    assert_code(&out, 0, "explain of a stream table in the database");
    let text = stdout(&out);
    assert!(text.contains("per_customer"), "{text}");
    assert!(text.contains("per-group counters"), "{text}");
    // Laid out: the full refresh spans several lines, clauses at the start of a line.
    let full = section(&text, "full refresh:");
    assert!(full.len() > 3, "one-line SQL:\n{text}");
    assert!(
        full.iter().any(|l| l.trim_start().starts_with("FROM")),
        "{text}"
    );
    assert!(text.contains("differential refresh:"), "{text}");

    let empty_dir = empty.clone();
    let (go, outs) = tokio::task::spawn_blocking(move || {
        let outs = vec![
            // No such stream table: 3.
            go(&["explain", "nothing_here"]),
            // No migrations/ here: checked against the database's schema.
            go(&[
                "explain",
                "--query",
                "SELECT customer, count(*) AS n FROM orders GROUP BY customer",
            ]),
            // Nor a database: an unknown table, and how to give a schema: 4.
            Command::new(env!("CARGO_BIN_EXE_pgstream"))
                .args(["explain", "--query", "SELECT id FROM orders"])
                .current_dir(&empty_dir)
                .env_remove("DATABASE_URL")
                .env("RUST_LOG", "warn")
                .output()
                .expect("run pgstream"),
            // Advice in the command line's words.
            go(&["explain", "--query", "SELECT id, random() AS r FROM orders"]),
            // Nothing to explain: 4.
            go(&["explain"]),
            // --schema with a name alone: 4.
            go(&["explain", "per_customer", "--schema", "migrations"]),
        ];
        (go, outs)
    })
    .await
    .unwrap();
    drop(go);
    assert_code(&outs[0], 3, "explain of a missing stream table");
    assert_code(&outs[1], 0, "explain without migrations/, with a database");
    assert!(
        stdout(&outs[1]).contains("differential refresh:"),
        "{}",
        stdout(&outs[1])
    );
    assert_code(&outs[2], 4, "explain without migrations/ or a database");
    let err = stderr(&outs[2]);
    assert!(
        err.contains("unknown table `orders`") && err.contains("--schema"),
        "{err}"
    );
    assert_code(&outs[3], 4, "explain of a volatile function");
    let err = stderr(&outs[3]);
    assert!(err.contains("--mode full"), "{err}");
    assert!(!err.contains("mode = \"full\""), "{err}");
    assert_code(&outs[4], 4, "explain without a query or a name");
    assert_code(&outs[5], 4, "explain of a name with --schema");

    // The same advice from `create`.
    let out = pgstream(
        &db,
        &[
            "create",
            "rnd",
            "--query",
            "SELECT id, random() AS r FROM orders",
        ],
    )
    .await;
    assert_code(&out, 4, "create with a volatile function");
    assert!(stderr(&out).contains("--mode full"), "{}", stderr(&out));
    std::fs::remove_dir_all(&empty).ok();
}

/// At the default log level, a refresh that fails says so: a WARN line naming the
/// stream table and the cause (issue 16, item 4), from `pgstream run --once`.
#[tokio::test]
async fn a_failed_scheduled_refresh_is_a_warning_at_the_default_level() {
    let db = test_db().await;
    db.exec("CREATE TABLE wf (id int PRIMARY KEY, v int NOT NULL); INSERT INTO wf VALUES (1, 5);")
        .await;
    let out = pgstream(
        &db,
        &[
            "create",
            "wf_ratio",
            "--query",
            "SELECT id, 10 / v AS q FROM wf",
            "--schedule",
            "1s",
        ],
    )
    .await;
    assert_code(&out, 0, "create");
    db.exec("INSERT INTO wf VALUES (2, 0)").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pgstream"))
            .args(["run", "--once"])
            .env("DATABASE_URL", &url)
            .env_remove("RUST_LOG")
            .env_remove("PGSTREAM_LOG_FORMAT")
            .output()
            .expect("run pgstream")
    })
    .await
    .unwrap();
    let log = stderr(&out);
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("wf_ratio"))
        .unwrap_or_else(|| panic!("no WARN naming the stream table: {log}"));
    assert!(warning.contains("division by zero"), "{warning}");
}
