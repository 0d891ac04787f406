//! The relay over HTTP (axum). Handlers only translate between HTTP and [`Relay`]; every
//! decision is made there. Bodies are limited, errors are JSON `{code, message}` with a 4xx
//! status, and every request carries an id into the logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use gridwalk_protocol::{self as protocol, EnrollRequest, ErrorBody, PushRequest, BINARY_CONTENT_TYPE};
use serde::Deserialize;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::blobs::ByteRange;
use crate::relay::{Relay, RelayError, RelayResult};

/// The largest body the relay reads (a day's work for one walker is far below this).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub pushes: AtomicU64,
    pub pulls: AtomicU64,
    pub changes_stored: AtomicU64,
    pub client_errors: AtomicU64,
    pub server_errors: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub blob_bytes_in: AtomicU64,
    pub blob_bytes_out: AtomicU64,
}

pub struct AppState {
    pub relay: Relay,
    pub metrics: Metrics,
    /// Wrong enrolment codes, counted per source and in all, so that codes cannot be guessed.
    pub enrol_attempts: AttemptLimiter,
    /// Staff PIN checks (sign-in and staff changes), counted per person and per device.
    pub pin_attempts: PinAttempts,
}

/// Staff PIN checks are counted as they begin (and given back when the PIN was right), so that
/// many sent at once cannot all slip through before the first wrong one is counted; and at most
/// a few Argon2 checks (19 MiB each) run at once, so a flood of them cannot exhaust the relay's
/// memory. Per person, so one person's PIN cannot be guessed quickly from any number of hall
/// PCs; per device, so one PC's token cannot try many people; nothing counted hall-wide, so no
/// one PC can lock the whole hall out.
pub struct PinAttempts {
    pub per_person: AttemptLimiter,
    pub per_device: AttemptLimiter,
    pub checks: Arc<tokio::sync::Semaphore>,
}

impl Default for PinAttempts {
    fn default() -> Self {
        PinAttempts {
            per_person: AttemptLimiter::new(AttemptLimits::PINS),
            per_device: AttemptLimiter::new(AttemptLimits {
                per_source: 30,
                in_all: u32::MAX,
                window: std::time::Duration::from_secs(600),
            }),
            checks: Arc::new(tokio::sync::Semaphore::new(4)),
        }
    }
}

impl AppState {
    pub fn new(relay: Relay) -> AppState {
        AppState {
            relay,
            metrics: Metrics::default(),
            enrol_attempts: AttemptLimiter::new(AttemptLimits::default()),
            pin_attempts: PinAttempts::default(),
        }
    }
}

/// How many wrong enrolment codes are tolerated before further attempts get 429.
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimits {
    /// Wrong codes from one address within `window`.
    pub per_source: u32,
    /// Wrong codes from all addresses together within `window`: a guesser with many addresses.
    pub in_all: u32,
    pub window: std::time::Duration,
}

impl AttemptLimits {
    /// Five wrong PINs for one person per ten minutes (a four-digit PIN is 10,000 guesses: that
    /// pace needs about two weeks on average). A hall PC slows its own user down after five as
    /// well, and checks the hash it holds when the relay says wait.
    pub const PINS: AttemptLimits =
        AttemptLimits { per_source: 5, in_all: u32::MAX, window: std::time::Duration::from_secs(600) };
}

impl Default for AttemptLimits {
    /// Ten wrong codes per address and a hundred in all per ten minutes. A walker mistyping her
    /// code a few times is never stopped; guessing a 10-character code at that pace would take
    /// longer than the code lives (24 hours) by many orders of magnitude.
    fn default() -> Self {
        AttemptLimits { per_source: 10, in_all: 100, window: std::time::Duration::from_secs(600) }
    }
}

/// Counts failed attempts in a fixed window per source address and in all. Only failures
/// count, and only enrolment is limited: enrolled devices (the hall's PC among them) are
/// authenticated by their tokens and never meet this limit, and the admin enrols at the relay's
/// own command line, so nobody can lock the hall out.
pub struct AttemptLimiter {
    limits: AttemptLimits,
    state: std::sync::Mutex<AttemptWindows>,
    /// Makes a check and its count one step for `reserve`.
    reserving: std::sync::Mutex<()>,
}

#[derive(Default)]
struct AttemptWindows {
    per_source: std::collections::HashMap<String, (std::time::Instant, u32)>,
    in_all: Option<(std::time::Instant, u32)>,
}

impl AttemptLimiter {
    pub fn new(limits: AttemptLimits) -> Self {
        AttemptLimiter { limits, state: Default::default(), reserving: Default::default() }
    }

    /// `Err` with the seconds to wait when `source` (an address, or a person signing in), or
    /// everyone, has used up its attempts.
    fn check(&self, source: &str) -> Result<(), u64> {
        let now = std::time::Instant::now();
        // The counts stay usable after a panic elsewhere: a poisoned lock still holds valid numbers.
        let mut w = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = self.limits.window;
        let wait = |(start, n): (std::time::Instant, u32), limit: u32| {
            let left = window.saturating_sub(now.duration_since(start));
            (n >= limit && !left.is_zero()).then(|| left.as_secs().max(1))
        };
        if let Some(secs) = w.in_all.and_then(|c| wait(c, self.limits.in_all)) {
            return Err(secs);
        }
        if let Some(secs) = w.per_source.get(source).copied().and_then(|c| wait(c, self.limits.per_source)) {
            return Err(secs);
        }
        // Windows that ended are forgotten, so the map holds only recent sources.
        w.per_source.retain(|_, (start, _)| now.duration_since(*start) < window);
        Ok(())
    }

    /// Checks and counts one attempt at once (see [`PinAttempts`]); `forgive` gives it back.
    fn reserve(&self, source: &str) -> Result<(), u64> {
        let _turn = self.reserving.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.check(source)?;
        self.failed(source);
        Ok(())
    }

    /// Gives back an attempt `reserve` counted: the PIN was right.
    fn forgive(&self, source: &str) {
        let mut w = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = w.per_source.get_mut(source) {
            c.1 = c.1.saturating_sub(1);
        }
        if let Some(c) = w.in_all.as_mut() {
            c.1 = c.1.saturating_sub(1);
        }
    }

    fn failed(&self, source: &str) {
        let now = std::time::Instant::now();
        let window = self.limits.window;
        // The counts stay usable after a panic elsewhere: a poisoned lock still holds valid numbers.
        let mut w = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bump = |c: &mut (std::time::Instant, u32)| {
            if now.duration_since(c.0) >= window {
                *c = (now, 0);
            }
            c.1 += 1;
        };
        bump(w.in_all.get_or_insert((now, 0)));
        bump(w.per_source.entry(source.to_string()).or_insert((now, 0)));
    }
}

struct ApiError(RelayError);

impl From<RelayError> for ApiError {
    fn from(e: RelayError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(ErrorBody { code: self.0.code.to_string(), message: self.0.message })).into_response()
    }
}

fn binary(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(BINARY_CONTENT_TYPE))], bytes).into_response()
}

fn bearer(headers: &HeaderMap) -> Result<&str, RelayError> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).ok_or_else(
        || RelayError::new(401, "unauthorized", "this call needs the device token (Authorization: Bearer …)"),
    )
}

/// Runs blocking relay work (SQLite, Automerge) off the async workers.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Relay) -> Result<T, RelayError> + Send + 'static,
) -> Result<T, RelayError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state.relay))
        .await
        .map_err(|_| RelayError::new(500, "internal", "the relay failed while handling this request"))?
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.metrics;
    let mut text = String::new();
    for (name, help, v) in [
        ("gridwalk_relay_requests_total", "HTTP requests handled", &m.requests),
        ("gridwalk_relay_pushes_total", "pushes stored", &m.pushes),
        ("gridwalk_relay_pulls_total", "pull pages served", &m.pulls),
        ("gridwalk_relay_changes_stored_total", "new changes stored", &m.changes_stored),
        ("gridwalk_relay_client_errors_total", "requests refused with a 4xx status", &m.client_errors),
        ("gridwalk_relay_server_errors_total", "requests failed with a 5xx status", &m.server_errors),
        ("gridwalk_relay_body_bytes_received_total", "request body bytes", &m.bytes_in),
        ("gridwalk_relay_body_bytes_sent_total", "response body bytes of pulls", &m.bytes_out),
        ("gridwalk_relay_blob_bytes_received_total", "blob (photo) bytes uploaded", &m.blob_bytes_in),
        ("gridwalk_relay_blob_bytes_sent_total", "blob (photo) bytes downloaded", &m.blob_bytes_out),
    ] {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n", v.load(Ordering::Relaxed)));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn enroll(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Result<Response, ApiError> {
    // The peer's address, where the server was started with it (`gridwalk-relay serve` is);
    // without it every caller shares one count.
    let source = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    if let Err(secs) = state.enrol_attempts.check(&source) {
        let minutes = secs.div_ceil(60);
        let mut response = ApiError(RelayError::new(
            429,
            "too_many_attempts",
            format!(
                "too many wrong enrolment codes were tried; wait {minutes} minute(s) and try again, \
                 or ask the service hall for a new code"
            ),
        ))
        .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Ok(response);
    }
    let req: EnrollRequest = serde_json::from_slice(&body)
        .map_err(|e| RelayError::new(400, "bad_body", format!("expected JSON {{code, device_name}}: {e}")))?;
    let result = blocking(&state, move |relay| relay.enroll(&req)).await;
    if matches!(&result, Err(e) if e.status == 401 || e.status == 403 || e.status == 404 || e.status == 410) {
        state.enrol_attempts.failed(&source);
    }
    Ok(Json(result?).into_response())
}

/// Answers 429 with the wait, in minutes, in the words of `what`.
fn too_many(secs: u64, what: String) -> Response {
    let mut response =
        ApiError(RelayError::new(429, "too_many_attempts", format!("{what}; wait {} minute(s)", secs.div_ceil(60))))
            .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// Runs a staff PIN check by `device` for `person` under [`PinAttempts`]: counted first, given
/// back when right, a few at a time.
async fn pin_check<T: serde::Serialize + Send + 'static>(
    state: &Arc<AppState>,
    token: String,
    person: String,
    check: impl FnOnce(&Relay, &crate::store::Device) -> RelayResult<T> + Send + 'static,
) -> Result<Response, ApiError> {
    let device = {
        let token = token.clone();
        blocking(state, move |relay| relay.authenticate(&token)).await?
    };
    let limits = &state.pin_attempts;
    if let Err(secs) = limits.per_device.reserve(&device.id) {
        return Ok(too_many(secs, "too many wrong PINs were typed on this device".into()));
    }
    if let Err(secs) = limits.per_person.reserve(&person) {
        limits.per_device.forgive(&device.id);
        return Ok(too_many(secs, format!("too many wrong PINs for {person}")));
    }
    // Given back unless the PIN was wrong, also when the caller gives up and this future is
    // dropped half-way: a right PIN must never count against anyone.
    let mut counted = Counted { limits, device: device.id.clone(), person, wrong: false };
    let permit = limits
        .checks
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| RelayError::new(503, "shutting_down", "the relay is stopping"))?;
    let result = blocking(state, move |relay| {
        let _permit = permit;
        check(relay, &device)
    })
    .await;
    counted.wrong = matches!(&result, Err(e) if e.code == "wrong_pin");
    drop(counted);
    Ok(Json(result?).into_response())
}

/// An attempt `pin_check` counted, given back when dropped unless it was a wrong PIN.
struct Counted<'a> {
    limits: &'a PinAttempts,
    device: String,
    person: String,
    wrong: bool,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if !self.wrong {
            self.limits.per_device.forgive(&self.device);
            self.limits.per_person.forgive(&self.person);
        }
    }
}

/// `POST /v1/staff/sign-in`: a staff member's PIN checked against the relay's staff list.
async fn staff_sign_in(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let req: gridwalk_protocol::StaffSignInRequest = serde_json::from_slice(&body)
        .map_err(|e| RelayError::new(400, "bad_body", format!("expected JSON {{person, pin}}: {e}")))?;
    let person: String = req.person.chars().take(100).collect();
    pin_check(&state, token, person, move |relay, device| relay.verify_staff_pin(device, &req.person, &req.pin)).await
}

/// `POST /v1/staff/change`: a change to the staff list, asked for with the asker's own PIN.
async fn staff_change(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let req: gridwalk_protocol::StaffChangeRequest = serde_json::from_slice(&body)
        .map_err(|e| RelayError::new(400, "bad_body", format!("expected JSON {{actor, actor_pin, person, …}}: {e}")))?;
    let actor: String = req.actor.chars().take(100).collect();
    pin_check(&state, token, actor, move |relay, device| relay.change_staff(device, &req)).await
}

/// `POST /v1/enrollments`: an enrolment code issued by an admin at a hall PC, with her own PIN.
async fn issue_enrollment(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let req: gridwalk_protocol::IssueEnrollmentRequest = serde_json::from_slice(&body).map_err(|e| {
        RelayError::new(
            400,
            "bad_body",
            format!("expected JSON {{actor, actor_pin, device_name, role, walker?, grids}}: {e}"),
        )
    })?;
    let actor: String = req.actor.chars().take(100).collect();
    pin_check(&state, token, actor, move |relay, device| relay.issue_enrollment(device, &req)).await
}

/// `GET /v1/device`: the grids and role the relay gives this device now.
async fn device_view(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let (device, escrow, relay_key) = blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        // A walker's phone wraps its store key to this (see `crate::handover`), signed.
        let escrow =
            if device.role == crate::store::Role::Walker { Some(relay.signed_escrow_recipient()?) } else { None };
        Ok((device, escrow, relay.relay_key()?))
    })
    .await?;
    let (escrow_recipient, escrow_signature) = escrow.unzip();
    Ok(Json(gridwalk_protocol::DeviceView {
        device_id: device.id,
        role: device.role.as_str().to_string(),
        grids: device.grids,
        leaving_grids: device.leaving.into_iter().map(|l| l.grid).collect(),
        escrow_recipient,
        escrow_signature,
        relay_key: Some(relay_key),
    })
    .into_response())
}

/// `POST /v1/access-log`: a device's access-log lines (see `crate::access`).
async fn send_access_log(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let push: gridwalk_protocol::AccessLogPush = serde_json::from_slice(&body)
        .map_err(|e| RelayError::new(400, "bad_body", format!("expected JSON {{lines: [...]}}: {e}")))?;
    let stored = blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        relay.store_access(&device, &push)
    })
    .await?;
    Ok(Json(serde_json::json!({ "stored": stored })).into_response())
}

#[derive(serde::Deserialize)]
struct AccessLogQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/access-log?limit=`: every device's lines, newest first, for a hall PC.
async fn read_access_log(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<AccessLogQuery>,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let lines = blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        relay.access_log(&device, q.limit.unwrap_or(200))
    })
    .await?;
    Ok(Json(lines).into_response())
}

/// `POST /v1/device/left`: a phone moved to other grids sent its work there and forgot them.
async fn device_left(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let req: gridwalk_protocol::DeviceLeft = serde_json::from_slice(&body)
        .map_err(|e| RelayError::new(400, "bad_body", format!("expected JSON {{holds: [grid, …]}}: {e}")))?;
    blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        relay.finish_leaving(&device, &req.holds)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/handovers`: a walker's new enrolment asks for the work of her store set aside
/// after a forgotten PIN (see `crate::handover`).
async fn request_handover(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let req: gridwalk_protocol::HandoverRequest = serde_json::from_slice(&body)
        .map_err(|e| RelayError::new(400, "bad_body", format!("expected JSON {{escrowed, reply_recipient}}: {e}")))?;
    let view = blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        relay.request_handover(&device, &req)
    })
    .await?;
    Ok(Json(view).into_response())
}

/// `GET /v1/handovers`: every hand-over for a hall PC, a phone's own for a phone.
async fn list_handovers(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let views = blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        relay.handovers(&device)
    })
    .await?;
    Ok(Json(views).into_response())
}

/// `POST /v1/handovers/confirm`: an admin at a hall PC confirms a hand-over with her own PIN.
async fn confirm_handover(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let req: gridwalk_protocol::ConfirmHandoverRequest = serde_json::from_slice(&body).map_err(|e| {
        RelayError::new(400, "bad_body", format!("expected JSON {{actor, actor_pin, from_device}}: {e}"))
    })?;
    let actor: String = req.actor.chars().take(100).collect();
    pin_check(&state, token, actor, move |relay, device| relay.confirm_handover(device, &req)).await
}

/// `POST /v1/handovers/done`: the new enrolment took the work over and destroyed the old store.
async fn finish_handover(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let req: gridwalk_protocol::HandoverDone = serde_json::from_slice(&body).map_err(|e| {
        RelayError::new(400, "bad_body", format!("expected JSON {{from_device, taken_documents, taken_photos}}: {e}"))
    })?;
    let view = blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        relay.finish_handover(&device, &req)
    })
    .await?;
    Ok(Json(view).into_response())
}

/// `GET /v1/revocation`: the relay's signed word that the asking (revoked) device is revoked.
async fn revocation(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let proof = blocking(&state, move |relay| relay.revocation_proof(&token)).await?;
    Ok(Json(proof).into_response())
}

/// `POST /v1/wiped`: a revoked device confirms it destroyed its key and its records.
async fn confirm_wipe(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    blocking(&state, move |relay| relay.confirm_wipe(&token)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn push(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    state.metrics.bytes_in.fetch_add(body.len() as u64, Ordering::Relaxed);
    let resp = blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        let req: PushRequest = protocol::decode(&body).map_err(|e| RelayError::new(400, "bad_body", e.to_string()))?;
        relay.push(&device, &req)
    })
    .await?;
    state.metrics.pushes.fetch_add(1, Ordering::Relaxed);
    state.metrics.changes_stored.fetch_add(u64::from(resp.stored), Ordering::Relaxed);
    Ok(binary(protocol::encode(&resp)))
}

#[derive(Deserialize)]
struct PullQuery {
    #[serde(default)]
    cursor: String,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    500
}

async fn pull(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<PullQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let Query(q) = query.map_err(|e| RelayError::new(400, "bad_query", e.body_text()))?;
    let resp = blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        relay.pull(&device, &q.cursor, q.limit)
    })
    .await?;
    let bytes = protocol::encode(&resp);
    state.metrics.pulls.fetch_add(1, Ordering::Relaxed);
    state.metrics.bytes_out.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(binary(bytes))
}

/// `GET /v1/blobs/{hash}/status`
async fn blob_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let status = blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        relay.blob_status(&device, &hash)
    })
    .await?;
    Ok(Json(status).into_response())
}

#[derive(Deserialize)]
struct UploadQuery {
    offset: u64,
    total: u64,
}

/// `PUT /v1/blobs/{hash}?offset=N&total=T`. The whole chunk is read before anything is written,
/// so a request cut off mid-body changes nothing.
async fn upload_blob(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let Query(q) = query
        .map_err(|e| RelayError::new(400, "bad_query", format!("{}; expected ?offset=N&total=T", e.body_text())))?;
    let len = body.len() as u64;
    let status = blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        relay.put_blob(&device, &hash, q.offset, q.total, &body)
    })
    .await?;
    state.metrics.blob_bytes_in.fetch_add(len, Ordering::Relaxed);
    Ok(Json(status).into_response())
}

/// `GET /v1/blobs/{hash}`, whole (200) or one `Range` of it (206).
async fn download_blob(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?.to_string();
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(ByteRange::parse).ok_or_else(|| {
            RelayError::new(400, "bad_range", "the Range header must be one range: bytes=a-b, bytes=a- or bytes=-n")
        })?),
    };
    let slice = blocking(&state, move |relay| {
        let device = relay.authenticate(&token)?;
        relay.read_blob(&device, &hash, range)
    })
    .await?;
    state.metrics.blob_bytes_out.fetch_add(slice.bytes.len() as u64, Ordering::Relaxed);
    let mut resp = slice_response(range.is_some(), slice.start, slice.total, slice.bytes);
    resp.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(resp)
}

fn slice_response(ranged: bool, start: u64, total: u64, bytes: Vec<u8>) -> Response {
    let content_type = (header::CONTENT_TYPE, "application/octet-stream".to_string());
    if !ranged || bytes.is_empty() {
        return ([content_type], bytes).into_response();
    }
    let end = start + bytes.len() as u64 - 1;
    // Headers given as text: axum answers 500 rather than panicking should one ever be invalid.
    let content_range = (header::CONTENT_RANGE, format!("bytes {start}-{end}/{total}"));
    (StatusCode::PARTIAL_CONTENT, [content_type, content_range], bytes).into_response()
}

async fn count_outcomes(
    State(state): State<Arc<AppState>>,
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    state.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let resp = next.run(req).await;
    if resp.status().is_client_error() {
        state.metrics.client_errors.fetch_add(1, Ordering::Relaxed);
    } else if resp.status().is_server_error() {
        state.metrics.server_errors.fetch_add(1, Ordering::Relaxed);
    }
    resp
}

/// Turns axum's own refusals (body too large, wrong method, unknown path) into the relay's JSON
/// error shape.
async fn json_errors(req: Request<axum::body::Body>, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let is_json =
        resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if resp.status().is_success() || is_json {
        return resp;
    }
    let status = resp.status();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("body_too_large", format!("the body is larger than {MAX_BODY_BYTES} bytes; sync in smaller batches"))
        }
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this endpoint does not take that method".to_string()),
        s => {
            // axum's own refusals (a path that is not UTF-8, a body cut off) say what was wrong
            // in a line of text; that line is the message.
            let text = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&text).trim().to_string();
            let reason = s.canonical_reason().unwrap_or("bad request");
            ("bad_request", if text.is_empty() { reason.to_string() } else { text })
        }
    };
    (status, Json(ErrorBody { code: code.into(), message })).into_response()
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/enroll", post(enroll))
        .route("/v1/push", post(push))
        .route("/v1/wiped", post(confirm_wipe))
        .route("/v1/revocation", get(revocation))
        .route("/v1/device", get(device_view))
        .route("/v1/device/left", post(device_left))
        .route("/v1/access-log", get(read_access_log).post(send_access_log))
        .route("/v1/staff/sign-in", post(staff_sign_in))
        .route("/v1/staff/change", post(staff_change))
        .route("/v1/enrollments", post(issue_enrollment))
        .route("/v1/handovers", get(list_handovers).post(request_handover))
        .route("/v1/handovers/confirm", post(confirm_handover))
        .route("/v1/handovers/done", post(finish_handover))
        .route("/v1/pull", get(pull))
        .route("/v1/blobs/{hash}", put(upload_blob).get(download_blob))
        .route("/v1/blobs/{hash}/status", get(blob_status))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_outcomes))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<axum::body::Body>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}
