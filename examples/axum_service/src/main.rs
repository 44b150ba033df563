//! An axum service over a stream table, as Rust services are usually built: the
//! runtime starts in `main`, its [`RuntimeHandle`] lives in the router's state, the
//! stream table is served as JSON, and Ctrl-C or SIGTERM stops the HTTP server (requests
//! in flight finish) and then the runtime (a refresh in progress finishes).
//!
//! ```sh
//! DATABASE_URL=postgres://localhost/app cargo run -p pgstream-axum-service
//! curl http://127.0.0.1:3000/departments          # the stream table, as JSON
//! curl -X POST http://127.0.0.1:3000/departments/refresh
//! curl http://127.0.0.1:3000/health               # 200 when ready, 503 otherwise
//! ```
//!
//! `LISTEN_ADDR` sets the address (default `127.0.0.1:3000`; port `0` picks a free
//! one). The address is printed on standard output once the server accepts
//! connections.

use std::io::Write;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pgstream::{Runtime, RuntimeHandle, StreamTable};
use rust_decimal::Decimal;
use serde::Serialize;

/// Head count and payroll per department, refreshed at each commit that changes
/// `departments` or `employees`.
#[pgstream::stream_table(
    query = "SELECT d.id AS department_id, d.name AS department_name,
                    COUNT(e.id) AS headcount,
                    COALESCE(SUM(e.salary), 0) AS total_salary
             FROM departments d LEFT JOIN employees e ON e.department_id = d.id
             GROUP BY d.id, d.name",
    schedule = "on commit"
)]
#[derive(Debug, Serialize)]
pub struct DepartmentStats {
    /// The department's id.
    pub department_id: i32,
    /// Its name.
    pub department_name: String,
    /// How many employees it has.
    pub headcount: i64,
    /// The sum of their salaries.
    pub total_salary: Decimal,
}

/// What every handler gets: the pool to read stream tables with, and the runtime's
/// handle (cheap to clone) for refreshes and health.
#[derive(Clone)]
struct AppState {
    pool: sqlx::PgPool,
    runtime: RuntimeHandle,
}

/// An error as a response: 500 with the error's text.
struct AppError(String);

impl<E: std::fmt::Display> From<E> for AppError {
    fn from(e: E) -> Self {
        AppError(e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}

/// `GET /departments`: every row of the stream table, its own columns only
/// (`DepartmentStats::SELECT` leaves out pgstream's bookkeeping columns).
async fn departments(State(app): State<AppState>) -> Result<Json<Vec<DepartmentStats>>, AppError> {
    let sql = format!("{} ORDER BY department_id", DepartmentStats::SELECT);
    let rows = sqlx::query_as(&sql).fetch_all(&app.pool).await?;
    Ok(Json(rows))
}

/// The body of `POST /departments/refresh`.
#[derive(Serialize)]
struct Refreshed {
    rows_changed: i64,
}

/// `POST /departments/refresh`: refresh now, through the runtime's handle.
async fn refresh(State(app): State<AppState>) -> Result<Json<Refreshed>, AppError> {
    let outcome = app.runtime.refresh(DepartmentStats::DEF.name).await?;
    Ok(Json(Refreshed {
        rows_changed: outcome.rows_changed,
    }))
}

/// `GET /health`: 200 `ready` when the runtime is running, its scheduler ticking and
/// the database reachable; 503 with the reason otherwise (a readiness probe).
async fn health(State(app): State<AppState>) -> (StatusCode, String) {
    let health = app.runtime.health().await;
    if health.is_ready() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{health:?}\n"))
    }
}

/// Resolves at the first Ctrl-C (SIGINT) or SIGTERM (what `docker stop` and
/// Kubernetes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.expect("Ctrl-C handler");
    };
    #[cfg(unix)]
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler")
            .recv()
            .await;
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    sqlx::migrate!().run(&pool).await?;
    let runtime = Runtime::builder(pool.clone())
        .register::<DepartmentStats>()
        .start()
        .await?;

    let app = Router::new()
        .route("/departments", get(departments))
        .route("/departments/refresh", post(refresh))
        .route("/health", get(health))
        .with_state(AppState {
            pool,
            runtime: runtime.handle(),
        });
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // The server has stopped: no handler uses the runtime any more.
    runtime.shutdown().await;
    println!("shut down cleanly");
    Ok(())
}
