//! What the command tests share: a real relay on loopback HTTP in this process, a hall store
//! with a small generated town joined to it, and waiting for an app's status.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use gridwalk_app_api::{App, SyncSettings};
use gridwalk_core::demo::{generate, DemoConfig};
use gridwalk_core::store::{Identity, Store};
use gridwalk_core::{SystemClock, Timestamp};
use gridwalk_relay::http::{router, AppState};
use gridwalk_relay::relay::Relay;
use gridwalk_relay::store::SqliteRelayStore;
use gridwalk_transport::client;
use serde_json::{json, Value};

pub struct RelayServer {
    pub addr: SocketAddr,
    dir: std::path::PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RelayServer {
    pub fn start(dir: &std::path::Path, addr: Option<SocketAddr>) -> RelayServer {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let store = SqliteRelayStore::open(&dir.join("relay.db")).unwrap();
        let relay = Relay::new(Box::new(store), Arc::new(SystemClock));
        let state = Arc::new(AppState::new(relay));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap())))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
        RelayServer { addr, dir: dir.to_path_buf(), runtime: Some(runtime) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn relay(&self) -> Relay {
        Relay::new(Box::new(SqliteRelayStore::open(&self.dir.join("relay.db")).unwrap()), Arc::new(SystemClock))
    }

    /// The SHA-256 of every row the relay holds (`gridwalk-relay digest`).
    pub fn digest(&self) -> String {
        SqliteRelayStore::open(&self.dir.join("relay.db")).unwrap().dump().unwrap().digest()
    }

    pub fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

pub fn now() -> Timestamp {
    Timestamp::from(chrono::Utc::now())
}

pub fn hall(dir: &std::path::Path, relay: &RelayServer) -> Store {
    hall_at(&dir.join("hall.db"), relay)
}

/// A hall store at `path` with a small generated town, its rosters published, joined to the
/// relay as a hall device and synced.
pub fn hall_at(path: &std::path::Path, relay: &RelayServer) -> Store {
    let mut hall = Store::create(path, Identity { device: "hall-pc".into(), walker: "staff".into() }).unwrap();
    let until = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let cfg = DemoConfig {
        villages: 2,
        households: 80,
        enterprises: 6,
        enterprise_grids: 1,
        requests: 60,
        visits: 40,
        days: 60,
        ..DemoConfig::street(11, until)
    };
    generate(&mut hall, &cfg).unwrap();
    hall.publish_rosters(&hall.context(now()), &[]).unwrap();
    let code = relay.relay().create_enrollment("hall", gridwalk_relay::store::Role::Hall, &[]).unwrap();
    client::join(&hall, &relay.url(), &code, "hall").unwrap();
    hall.requeue_all_documents(now()).unwrap();
    client::sync_over_http(&hall, &AtomicBool::new(false), &mut |_| {}).unwrap();
    hall
}

pub fn wait_for(app: &App, what: &str, mut ok: impl FnMut(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let status = app.call("status", json!({})).unwrap();
        if ok(&status) {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}; last status {status:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn tiny_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

pub fn tiny_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, 30, (y * 5) as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

pub fn settings() -> SyncSettings {
    SyncSettings { check_every: Duration::from_millis(100), ..SyncSettings::default() }
}
