//! The axum example as it runs in production: started against a fresh database, it
//! serves the stream table as JSON (after a refresh through the runtime's handle in
//! its state), answers the readiness probe, and on SIGTERM (and, in a second run,
//! SIGINT, which is Ctrl-C) stops serving, shuts the runtime down and exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pgstream_tests::test_db;

/// The service, started with a free port; returns it with its address.
fn start(url: &str) -> (Child, BufReader<ChildStdout>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgstream-axum-service"))
        .env("DATABASE_URL", url)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the service");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (child, stdout, addr)
}

/// One HTTP/1.1 request; returns the status code and the body.
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the service");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}

/// Waits (bounded) for the readiness probe to answer 200: the scheduler's first pass
/// completes shortly after start.
fn wait_ready(addr: &str) {
    let mut last = (0, String::new());
    for _ in 0..300 {
        last = http(addr, "GET", "/health");
        if last.0 == 200 {
            assert_eq!(last.1.trim(), "ready");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never ready: {last:?}");
}

/// Sends `signal` and waits for the process to exit; returns the rest of its output.
fn stop(mut child: Child, mut stdout: BufReader<ChildStdout>, signal: &str) -> String {
    let sig = match signal {
        "TERM" => Signal::SIGTERM,
        "INT" => Signal::SIGINT,
        other => panic!("no signal {other}"),
    };
    kill(Pid::from_raw(child.id() as i32), sig).expect("send the signal");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "the service did not exit cleanly on SIG{signal}: {exit:?}"
    );
    rest
}

#[tokio::test]
async fn serves_the_stream_table_and_stops_gracefully_on_sigterm_and_ctrl_c() {
    let db = test_db().await;
    let url = db.url.clone();
    let (child, stdout, addr) = tokio::task::spawn_blocking(move || start(&url))
        .await
        .unwrap();
    // The service applied the migrations and created the stream table: write rows.
    db.exec(
        "INSERT INTO departments (id, name) VALUES (1, 'Engineering'), (2, 'Sales');
         INSERT INTO employees (name, department_id, salary)
         VALUES ('Heidi', 1, 105000), ('Ivan', 1, 95000.50), ('Judy', 2, 70000);",
    )
    .await;

    let a = addr.clone();
    let (refreshed, listed) = tokio::task::spawn_blocking(move || {
        wait_ready(&a);
        let refreshed = http(&a, "POST", "/departments/refresh");
        (refreshed, http(&a, "GET", "/departments"))
    })
    .await
    .unwrap();
    assert_eq!(refreshed.0, 200, "{refreshed:?}");
    let refreshed: serde_json::Value = serde_json::from_str(&refreshed.1).unwrap();
    assert!(refreshed["rows_changed"].is_i64(), "{refreshed}");
    assert_eq!(listed.0, 200, "{listed:?}");
    let rows: serde_json::Value = serde_json::from_str(&listed.1).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([
            {"department_id": 1, "department_name": "Engineering", "headcount": 2, "total_salary": "200000.50"},
            {"department_id": 2, "department_name": "Sales", "headcount": 1, "total_salary": "70000.00"},
        ])
    );

    // SIGTERM: the server stops, then the runtime; exit code 0.
    let rest = tokio::task::spawn_blocking(move || stop(child, stdout, "TERM"))
        .await
        .unwrap();
    assert!(rest.contains("shut down cleanly"), "{rest:?}");
    let url = db.url.clone();
    let refused = tokio::task::spawn_blocking(move || TcpStream::connect(&addr).is_err())
        .await
        .unwrap();
    assert!(refused, "the port still accepts connections after exit");

    // Started again on the same database (the stream table is there), then Ctrl-C.
    let rest = tokio::task::spawn_blocking(move || {
        let (child, stdout, addr) = start(&url);
        let (status, body) = http(&addr, "GET", "/departments");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Engineering"), "{body}");
        stop(child, stdout, "INT")
    })
    .await
    .unwrap();
    assert!(rest.contains("shut down cleanly"), "{rest:?}");
}
