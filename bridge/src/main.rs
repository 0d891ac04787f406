//! `gridwalk-bridge`: the app in a plain browser. It serves the built UI (`ui/dist`) and turns
//! `POST /api/<command>` with a JSON body into `App::call(command, body)`, the very function the
//! Tauri shell's one command calls. Nothing else: no command of its own, no logic. One bridge is
//! one device (one data directory).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use gridwalk_app_api::{App, CommandError, SyncSettings};
use gridwalk_core::SystemClock;
use serde_json::Value;
use tower_http::services::{ServeDir, ServeFile};

#[derive(Debug, Parser)]
#[command(name = "gridwalk-bridge", version, about = "Serve the Gridwalk app to a browser, as one device")]
struct Cli {
    /// The device's data directory (its store and photos).
    #[arg(long, env = "GRIDWALK_DATA_DIR")]
    data_dir: PathBuf,
    /// Where to listen; port 0 picks a free port (the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8471")]
    listen: SocketAddr,
    /// The built UI to serve.
    #[arg(long, default_value = "ui/dist")]
    ui: PathBuf,
    /// Seconds between looks at the relay by the background sync.
    #[arg(long, default_value_t = 3.0)]
    check_every_s: f64,
    /// Seconds a walker's phone stays unlocked without her at the screen.
    #[arg(long, default_value_t = 300.0)]
    lock_after_s: f64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    anyhow::ensure!(
        cli.ui.join("index.html").exists(),
        "no built UI at {} (run `npm run build` in ui/)",
        cli.ui.display()
    );
    let settings = SyncSettings {
        check_every: Duration::from_secs_f64(cli.check_every_s.max(0.2)),
        app_lock_idle: Duration::from_secs_f64(cli.lock_after_s.max(1.0)),
        ..SyncSettings::default()
    };
    let app = App::open(&cli.data_dir, Arc::new(SystemClock), settings).map_err(|e| anyhow::anyhow!(e.message))?;
    let app = Arc::new(app);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let index = ServeFile::new(cli.ui.join("index.html"));
        let router = Router::new()
            .route("/api/{command}", post(call))
            // Photos arrive base64 inside JSON; a 20 MB camera photo is about 27 MB encoded.
            .layer(DefaultBodyLimit::max(40 * 1024 * 1024))
            .with_state(app)
            .fallback_service(ServeDir::new(&cli.ui).fallback(index));
        let listener = tokio::net::TcpListener::bind(cli.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cli.listen))?;
        // Tests and scripts read this line to learn the port.
        println!("listening on http://{}", listener.local_addr()?);
        use std::io::Write;
        std::io::stdout().flush()?;
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}

async fn call(State(app): State<Arc<App>>, Path(command): Path<String>, body: axum::body::Bytes) -> Response {
    let args: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return error(CommandError::new("bad_arguments", format!("the body is not JSON: {e}"))),
        }
    };
    // The core is blocking (SQLite, photo decoding, the relay client): keep it off the reactor.
    match tokio::task::spawn_blocking(move || app.call(&command, args)).await {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err(e)) => error(e),
        Err(e) => error(CommandError::new("internal", format!("the command stopped: {e}"))),
    }
}

fn error(e: CommandError) -> Response {
    let status = if e.code == "unknown_command" {
        StatusCode::NOT_FOUND
    } else if e.is_callers_fault() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (status, Json(e)).into_response()
}
