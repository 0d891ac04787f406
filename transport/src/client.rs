//! Sync over HTTP: [`HttpTransport`], enrolment ([`join`]), one whole sync ([`sync_over_http`])
//! and the short requests to the relay, with the session's types re-exported from
//! `gridwalk-sync` so that one path names everything a caller of sync needs.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use gridwalk_sync::{
    content_hash, run, run_session, Direction, Incoming, OutboxEntry, Outgoing, PhotoProblem, PhotoRefusal, Progress,
    Retry, SessionLimits, Stage, SyncFailure, SyncSession, SyncStore, Transport, DEFAULT_BLOB_CHUNK,
};

use gridwalk_core::error::{CoreError, Result};
use gridwalk_core::photo::blobs::validate_hash;
use gridwalk_core::store::{RelayLink, Store};
use gridwalk_core::sync::protocol::{self, BlobBytes, EnrollRequest, EnrollResponse, ErrorBody};
/// The real transport: HTTP to the relay.
///
/// While the session applies a pulled page that says more follow, the next page is already
/// being fetched (and decoded) on a helper thread: applying a page of a first pull and the
/// relay reading the next one then overlap instead of taking turns. A pull asked for with
/// another cursor or page size than the one fetched ahead is fetched afresh; the page fetched
/// ahead is only ever used as the answer to exactly the request it was fetched for.
pub struct HttpTransport {
    base: String,
    token: String,
    http: Http,
    next_page: Option<PageFetchedAhead>,
}

/// How long a connection may move no bytes before it is dropped and the request retried. A
/// hall's Wi-Fi can stall a connection without closing it; without this a sync waited for the
/// whole request timeout, again on every retry. Slow but moving transfers are never cut: the
/// clock restarts with every byte read.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The HTTP client and the small runtime that drives it. reqwest's asynchronous client is used
/// for its read timeout (per read, not per request), which its blocking client does not offer;
/// callers stay synchronous.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    runtime: std::sync::Arc<tokio::runtime::Runtime>,
}

impl Http {
    fn new() -> Result<Http> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(STALL_TIMEOUT)
            // A backstop for what a read timeout cannot see (a peer that stops taking an
            // upload): no one request may take longer than this.
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| CoreError::Network(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gridwalk-http")
            .enable_all()
            .build()
            .map_err(|e| CoreError::Network(format!("cannot start the network thread: {e}")))?;
        Ok(Http { client, runtime: std::sync::Arc::new(runtime) })
    }

    /// Runs one request to its end on the runtime.
    fn run<T>(&self, request: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.runtime.block_on(request)
    }
}

/// Drops its runtime on a thread of its own: a runtime may not be dropped inside another
/// runtime's context (the app's worker runs on one).
impl Drop for HttpTransport {
    fn drop(&mut self) {
        let http = self.http.clone();
        let next = self.next_page.take();
        let _ = std::thread::Builder::new().name("gridwalk-http-drop".into()).spawn(move || {
            drop(next);
            drop(http);
        });
    }
}

/// A pull sent ahead of the session's asking for it.
struct PageFetchedAhead {
    cursor: String,
    limit: usize,
    reply: std::thread::JoinHandle<Result<Incoming>>,
}

impl HttpTransport {
    pub fn new(link: &RelayLink) -> Result<Self> {
        Ok(HttpTransport {
            base: link.url.trim_end_matches('/').to_string(),
            token: link.token.clone(),
            http: Http::new()?,
            next_page: None,
        })
    }

    /// A pull's reply: the page fetched ahead when it was fetched for exactly this request,
    /// else a fresh fetch. Either way, the page after it is then fetched ahead if there is one.
    fn pull(&mut self, cursor: &str, limit: usize) -> Result<Incoming> {
        let reply = match self.next_page.take() {
            Some(ahead) if ahead.cursor == cursor && ahead.limit == limit => {
                ahead.reply.join().unwrap_or_else(|_| Err(CoreError::Network("fetching the next page stopped".into())))
            }
            // A page fetched for another request is left to finish on its own and dropped.
            _ => fetch_page(&self.http, &self.base, &self.token, cursor, limit),
        };
        if let Ok(Incoming::Pulled(page)) = &reply {
            if page.more {
                let (http, base, token, next) =
                    (self.http.clone(), self.base.clone(), self.token.clone(), page.cursor.clone());
                let ahead = std::thread::Builder::new()
                    .name("gridwalk-next-page".into())
                    .spawn(move || fetch_page(&http, &base, &token, &next, limit));
                // A thread that cannot be started only means the next page is fetched when asked.
                if let Ok(reply) = ahead {
                    self.next_page = Some(PageFetchedAhead { cursor: page.cursor.clone(), limit, reply });
                }
            }
        }
        reply
    }
}

/// One `GET /v1/pull`, decoded.
fn fetch_page(http: &Http, base: &str, token: &str, cursor: &str, limit: usize) -> Result<Incoming> {
    http.run(async {
        let resp = http
            .client
            .get(format!("{base}/v1/pull"))
            .bearer_auth(token)
            .query(&[("cursor", cursor), ("limit", &limit.to_string())])
            .send()
            .await
            .map_err(network)?;
        let body = success(resp).await?.bytes().await.map_err(network)?;
        Ok(Incoming::Pulled(protocol::decode(&body)?))
    })
}

fn network(e: reqwest::Error) -> CoreError {
    CoreError::Network(e.to_string())
}

/// Turns a non-success reply into the relay's `{code, message}`.
async fn refusal(resp: reqwest::Response) -> CoreError {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => CoreError::Relay { status, code: e.code, message: e.message },
        Err(_) => CoreError::Relay {
            status,
            code: "http_error".into(),
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
        },
    }
}

impl HttpTransport {
    /// The URL of a blob, for an id checked to be a photo id: nothing else ever reaches a path.
    fn blob_url(&self, hash: &str, suffix: &str) -> Result<String> {
        validate_hash(hash).map_err(|e| CoreError::invalid("photo", e.to_string()))?;
        Ok(format!("{}/v1/blobs/{hash}{suffix}", self.base))
    }
}

/// A reply's body when its status is a success, the relay's refusal otherwise.
async fn success(resp: reqwest::Response) -> Result<reqwest::Response> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(refusal(resp).await)
    }
}

/// `bytes a-b/total` → (a, total).
fn content_range(value: &str) -> Option<(u64, u64)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

impl Transport for HttpTransport {
    fn send(&mut self, message: &Outgoing) -> std::result::Result<Incoming, SyncFailure> {
        self.send_message(message).map_err(SyncFailure::from)
    }
}

impl HttpTransport {
    /// One message to the relay and its reply, the relay's refusal as `CoreError::Relay`.
    fn send_message(&mut self, message: &Outgoing) -> Result<Incoming> {
        let http = &self.http;
        let (base, token) = (&self.base, &self.token);
        match message {
            Outgoing::Push(req) => http.run(async {
                let resp = http
                    .client
                    .post(format!("{base}/v1/push"))
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, protocol::BINARY_CONTENT_TYPE)
                    .body(protocol::encode(req))
                    .send()
                    .await
                    .map_err(network)?;
                let body = success(resp).await?.bytes().await.map_err(network)?;
                Ok(Incoming::Pushed(protocol::decode(&body)?))
            }),
            Outgoing::Pull { cursor, limit } => self.pull(cursor, *limit),
            Outgoing::BlobStatus { hash } => {
                let url = self.blob_url(hash, "/status")?;
                http.run(async {
                    let resp = http.client.get(url).bearer_auth(token).send().await.map_err(network)?;
                    Ok(Incoming::BlobStatus(success(resp).await?.json().await.map_err(network)?))
                })
            }
            Outgoing::BlobUpload { hash, offset, total, bytes } => {
                let url = self.blob_url(hash, "")?;
                http.run(async {
                    let resp = http
                        .client
                        .put(url)
                        .bearer_auth(token)
                        .query(&[("offset", offset), ("total", total)])
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(bytes.clone())
                        .send()
                        .await
                        .map_err(network)?;
                    Ok(Incoming::BlobStatus(success(resp).await?.json().await.map_err(network)?))
                })
            }
            Outgoing::BlobDownload { hash, offset, max_len } => {
                let url = self.blob_url(hash, "")?;
                let last = offset + max_len.max(&1) - 1;
                http.run(async {
                    let resp = http
                        .client
                        .get(url)
                        .bearer_auth(token)
                        .header(reqwest::header::RANGE, format!("bytes={offset}-{last}"))
                        .send()
                        .await
                        .map_err(network)?;
                    let resp = success(resp).await?;
                    let partial = resp.status() == reqwest::StatusCode::PARTIAL_CONTENT;
                    let range = resp
                        .headers()
                        .get(reqwest::header::CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(content_range);
                    let bytes = resp.bytes().await.map_err(network)?.to_vec();
                    let (start, total) = match (partial, range) {
                        (true, Some(range)) => range,
                        // A whole blob (a relay that ignored the range): it starts at 0.
                        (false, _) => (0, bytes.len() as u64),
                        (true, None) => {
                            return Err(CoreError::Network("a partial reply without a Content-Range".into()))
                        }
                    };
                    Ok(Incoming::BlobBytes(BlobBytes { start, total, bytes }))
                })
            }
        }
    }
}

/// Enrols this device with a relay using a one-time code from the hall, and remembers the relay.
pub fn join(store: &Store, relay_url: &str, code: &str, device_name: &str) -> Result<RelayLink> {
    let link = enroll(relay_url, code, device_name)?;
    store.set_relay_link(&link)?;
    Ok(link)
}

/// Presents an enrolment code to a relay and returns the link it grants, without a store: a new
/// app learns from it whose device it is before it creates its store.
///
/// A lost reply is retried with the same device key, which the relay answers for the same
/// device: the code is not used up by a reply that never arrived.
pub fn enroll(relay_url: &str, code: &str, device_name: &str) -> Result<RelayLink> {
    let base = relay_url.trim_end_matches('/');
    let mut key = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    let request = EnrollRequest {
        code: code.to_string(),
        device_name: device_name.to_string(),
        device_key: Some(hex::encode(key)),
    };
    let body: EnrollResponse = std::thread::scope(|scope| {
        // On a thread of its own, runtime and all: the caller may be inside another runtime.
        scope
            .spawn(|| {
                let http = Http::new()?;
                let mut delay = Duration::from_millis(300);
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let reply = http.run(async {
                        let resp = http
                            .client
                            .post(format!("{base}/v1/enroll"))
                            .json(&request)
                            .send()
                            .await
                            .map_err(network)?;
                        success(resp).await?.json::<EnrollResponse>().await.map_err(network)
                    });
                    match reply {
                        Err(CoreError::Network(_)) if attempt < ENROL_ATTEMPTS => {
                            std::thread::sleep(delay);
                            delay *= 2;
                        }
                        other => return other,
                    }
                }
            })
            .join()
            .unwrap_or_else(|_| Err(CoreError::Network("the enrolment request stopped".into())))
    })?;
    Ok(RelayLink {
        url: base.to_string(),
        device_id: body.device_id,
        token: body.token,
        role: body.role,
        grids: body.grids,
        walker: body.walker,
        device_number: body.device_number,
        staff_sign_in: body.staff_sign_in,
        relay_key: body.relay_key,
    })
}

/// Posts `request` as JSON to the relay's `path` with the device's token and a short timeout,
/// on a thread of its own (the caller may be inside an async runtime, where a blocking client
/// may not run). `Err(Network)` when the relay is out of reach; its `{code, message}` when it
/// refuses.
fn post_to_relay<Req, Resp>(link: &RelayLink, path: &str, request: &Req) -> Result<Resp>
where
    Req: serde::Serialize + Sync,
    Resp: serde::de::DeserializeOwned + Send,
{
    let url = format!("{}{path}", link.url.trim_end_matches('/'));
    short_request(
        |client| client.post(&url).bearer_auth(&link.token).json(request),
        |resp| resp.json().map_err(|e| CoreError::Network(e.to_string())),
    )
}

/// One short request to the relay (a few seconds at most), on a thread of its own: reqwest's
/// blocking client must not run on an async runtime's thread, which a caller may be on. `read`
/// takes a successful answer; any other is the relay's `{code, message}` refusal.
fn short_request<T: Send>(
    build: impl FnOnce(&reqwest::blocking::Client) -> reqwest::blocking::RequestBuilder + Send,
    read: impl FnOnce(reqwest::blocking::Response) -> Result<T> + Send,
) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let client = reqwest::blocking::Client::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(6))
                    .build()
                    .map_err(|e| CoreError::Network(e.to_string()))?;
                let resp = build(&client).send().map_err(|e| CoreError::Network(e.to_string()))?;
                let status = resp.status().as_u16();
                if resp.status().is_success() {
                    return read(resp);
                }
                let body: Option<ErrorBody> = resp.json().ok();
                let (code, message) = body.map(|b| (b.code, b.message)).unwrap_or_default();
                Err(CoreError::Relay { status, code, message })
            })
            .join()
            .unwrap_or_else(|_| Err(CoreError::Network("the request to the relay stopped".into())))
    })
}

/// Asks the relay whether `pin` is `person`'s PIN, by its newest staff list: `Ok(Some)` with
/// who she is when it is, `Ok(None)` when it is not. `Err(Network)` when the relay is out of
/// reach within a few seconds (the hall PC then checks the hash it holds), and the relay's own
/// refusal otherwise (429 after too many wrong PINs; 404 before the hall has a staff list).
pub fn sign_in_with_relay(
    link: &RelayLink,
    person: &str,
    pin: &str,
) -> Result<Option<gridwalk_protocol::StaffSignInResponse>> {
    let request = gridwalk_protocol::StaffSignInRequest { person: person.to_string(), pin: pin.to_string() };
    match post_to_relay(link, "/v1/staff/sign-in", &request) {
        Ok(who) => Ok(Some(who)),
        Err(CoreError::Relay { code, .. }) if code == "wrong_pin" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Asks the relay to change the hall's staff list (see `gridwalk_relay::staff`): it checks the
/// asker's own PIN and whether she may, and writes the change; this device receives it by its
/// next pull. Needs the relay in reach: nobody's word alone changes who signs in.
pub fn change_staff(
    link: &RelayLink,
    request: &gridwalk_protocol::StaffChangeRequest,
) -> Result<gridwalk_protocol::StaffChangeResponse> {
    post_to_relay(link, "/v1/staff/change", request)
}

/// Asks the relay for a one-time enrolment code for a new device, as an admin with her own PIN
/// (`POST /v1/enrollments`): the relay checks both. Needs the relay in reach.
pub fn issue_enrollment(
    link: &RelayLink,
    request: &gridwalk_protocol::IssueEnrollmentRequest,
) -> Result<gridwalk_protocol::IssueEnrollmentResponse> {
    post_to_relay(link, "/v1/enrollments", request)
}

/// Tells the relay that this device, which it revoked, destroyed its key and its records
/// (`POST /v1/wiped` with the revoked device's own token).
pub fn confirm_wipe(relay_url: &str, token: &str) -> Result<()> {
    let url = format!("{}/v1/wiped", relay_url.trim_end_matches('/'));
    short_request(|client| client.post(&url).bearer_auth(token), |_| Ok(()))
}

/// A walker's new enrolment asks the relay for the work of her store set aside after a
/// forgotten PIN (`POST /v1/handovers`, see the relay's `handover` module).
pub fn request_handover(
    link: &RelayLink,
    request: &gridwalk_protocol::HandoverRequest,
) -> Result<gridwalk_protocol::HandoverView> {
    post_to_relay(link, "/v1/handovers", request)
}

/// The hand-overs this device may see (`GET /v1/handovers`): all of them for a hall PC, its own
/// (with the released key once the hall confirmed) for a walker's phone.
pub fn handovers(link: &RelayLink) -> Result<Vec<gridwalk_protocol::HandoverView>> {
    let url = format!("{}/v1/handovers", link.url.trim_end_matches('/'));
    short_request(
        |client| client.get(&url).bearer_auth(&link.token),
        |resp| resp.json().map_err(|e| CoreError::Network(e.to_string())),
    )
}

/// An admin at a hall PC confirms a hand-over with her own PIN (`POST /v1/handovers/confirm`).
pub fn confirm_handover(
    link: &RelayLink,
    request: &gridwalk_protocol::ConfirmHandoverRequest,
) -> Result<gridwalk_protocol::HandoverView> {
    post_to_relay(link, "/v1/handovers/confirm", request)
}

/// The new enrolment took the work over and destroyed the old store (`POST /v1/handovers/done`).
pub fn finish_handover(
    link: &RelayLink,
    request: &gridwalk_protocol::HandoverDone,
) -> Result<gridwalk_protocol::HandoverView> {
    post_to_relay(link, "/v1/handovers/done", request)
}

/// Sends this device's access-log lines to the relay (`POST /v1/access-log`); each is kept
/// once however often it is sent.
pub fn push_access_log(link: &RelayLink, lines: Vec<gridwalk_protocol::AccessLine>) -> Result<()> {
    let _: serde_json::Value = post_to_relay(link, "/v1/access-log", &gridwalk_protocol::AccessLogPush { lines })?;
    Ok(())
}

/// Every device's access-log lines the relay holds, newest first (`GET /v1/access-log`; a hall
/// PC only).
pub fn fetch_access_log(link: &RelayLink, limit: usize) -> Result<Vec<gridwalk_protocol::AccessLogEntry>> {
    let url = format!("{}/v1/access-log?limit={limit}", link.url.trim_end_matches('/'));
    short_request(
        |client| client.get(&url).bearer_auth(&link.token),
        |resp| resp.json().map_err(|e| CoreError::Network(e.to_string())),
    )
}

/// Whether the relay's `device_revoked` is its own word: the signed proof (`GET
/// /v1/revocation`) checked against the key the relay gave this device at enrolment. A device
/// enrolled with a relay older than signing has no key and takes the word as it comes. `Err`
/// when the proof cannot be had now (the next sync asks again).
pub fn revocation_is_genuine(link: &RelayLink) -> Result<bool> {
    let Some(key) = &link.relay_key else { return Ok(true) };
    let url = format!("{}/v1/revocation", link.url.trim_end_matches('/'));
    let proof: gridwalk_protocol::RevocationProof = match short_request(
        |client| client.get(&url).bearer_auth(&link.token),
        |resp| resp.json().map_err(|e| CoreError::Network(e.to_string())),
    ) {
        Ok(proof) => proof,
        // Whoever answered could not prove a revocation.
        Err(CoreError::Relay { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(proof.device_id == link.device_id
        && verify_signed(key, &gridwalk_protocol::revocation_message(&link.device_id), &proof.signature))
}

/// Whether `signature` (hex) is the relay's (its public key `key`, hex) over `message`.
fn verify_signed(key: &str, message: &[u8], signature: &str) -> bool {
    use ed25519_dalek::{Signature, VerifyingKey};
    let key = hex::decode(key).ok().and_then(|k| <[u8; 32]>::try_from(k).ok());
    let signature = hex::decode(signature).ok().and_then(|s| <[u8; 64]>::try_from(s).ok());
    let (Some(key), Some(signature)) = (key, signature) else { return false };
    let Ok(key) = VerifyingKey::from_bytes(&key) else { return false };
    key.verify_strict(message, &Signature::from_bytes(&signature)).is_ok()
}

/// How often an enrolment is tried when the network fails it.
const ENROL_ATTEMPTS: u32 = 4;

/// The device as its relay knows it now (`GET /v1/device`): its role and grids.
pub fn fetch_device(link: &RelayLink) -> Result<gridwalk_protocol::DeviceView> {
    let url = format!("{}/v1/device", link.url.trim_end_matches('/'));
    short_request(
        |client| client.get(&url).bearer_auth(&link.token),
        |resp| resp.json().map_err(|e| CoreError::Network(e.to_string())),
    )
}

/// A walker's phone asks its relay which grids it serves now, before it syncs, and forgets the
/// records of a grid the hall moved it off (`Store::move_to_grids`). It also escrows its store
/// key with the relay's escrow key, once per relay (`Store::escrow_key`). A relay that cannot say
/// (an older one) changes nothing; one that refuses the device ends the sync with its answer.
fn follow_grid_move(
    store: &Store,
    link: &RelayLink,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<()> {
    if link.role != "walker" {
        // A hall PC enrolled before relays signed learns the relay's key too, once (trusted on
        // first use), so that from then on it wipes itself only on a signed revocation.
        if link.relay_key.is_none() {
            if let Some(key) = fetch_device(link).ok().and_then(|v| v.relay_key) {
                store.set_relay_key(&key)?;
            }
        }
        return Ok(());
    }
    let view = match fetch_device(link) {
        Ok(view) => view,
        Err(e @ CoreError::Relay { status: 401, .. }) => return Err(e),
        Err(e) => {
            tracing::warn!("cannot ask the relay for this device's grids: {e}");
            return Ok(());
        }
    };
    // The relay's key, kept from the enrolment. A phone enrolled before relays signed takes the
    // first it is offered (trust on first use: whoever answered then was believed).
    let relay_key = match (&link.relay_key, &view.relay_key) {
        (Some(key), _) => Some(key.clone()),
        (None, Some(offered)) => {
            store.set_relay_key(offered)?;
            Some(offered.clone())
        }
        (None, None) => None,
    };
    // Escrowed before anything else, and only to a recipient the relay signed: a PIN forgotten
    // after today's work then loses none of it, and nobody answering in the relay's place can
    // have the key wrapped to a key of their own.
    if let (Some(recipient), Some(signature), Some(key)) = (&view.escrow_recipient, &view.escrow_signature, &relay_key)
    {
        if verify_signed(key, &gridwalk_protocol::escrow_recipient_message(recipient), signature) {
            if let Err(e) = store.escrow_key(recipient) {
                tracing::warn!("cannot escrow this phone's store key with the relay: {e}");
            }
        } else {
            tracing::error!("an escrow key the relay did not sign was offered; the store key is not escrowed to it");
        }
    }
    let mut now = view.grids;
    now.sort();
    let mut had = link.grids.clone();
    had.sort();
    if now != had && !now.is_empty() {
        // What she recorded before the phone heard of the move goes up first: the relay keeps
        // taking her pushes to the grids she left until the phone says it forgot them. Anything
        // but a refusal of a document (a cut connection, a relay restarting, too many requests)
        // ends this sync with nothing forgotten, and the next one tries again. A document the
        // relay refuses (403, 422) is its last word: that document, and whatever of the grids
        // left had not gone up before it, is dropped with the grid, counted and logged.
        let waiting = store.outbox_len()? > 0 || !store.unacknowledged_photos().map(|p| p.is_empty()).unwrap_or(true);
        if waiting && !view.leaving_grids.is_empty() {
            let mut transport = HttpTransport::new(link)?;
            match run(store, &mut transport, SessionLimits::default(), Retry::default(), cancel, on_progress) {
                Ok(_) => {}
                Err(CoreError::Relay { status: 403 | 422, code, message }) => {
                    tracing::error!(code, message, "a document of the grids left was refused; it is dropped with them");
                }
                Err(e) => return Err(e),
            }
        }
        let moved = store.move_to_grids(&now)?;
        tracing::info!(?moved, "the hall moved this phone to other grids");
        if let Err(e) = store.collect_garbage() {
            tracing::warn!("photo files of the grids left stay until the next collection: {e}");
        }
    }
    // Forgotten here: the grids left take nothing more from this phone. Asked again at the next
    // sync if the relay does not hear it now.
    if !view.leaving_grids.is_empty() && !now.is_empty() {
        let mut holds = store.relay_link()?.map(|l| l.grids).unwrap_or_default();
        holds.sort();
        if holds == now {
            if let Err(e) = finish_leaving(link, &holds) {
                tracing::warn!("the relay has not heard that this phone forgot the grids it left: {e}");
            }
        }
    }
    Ok(())
}

/// Tells the relay this phone forgot the grids it was moved off (`POST /v1/device/left`).
fn finish_leaving(link: &RelayLink, holds: &[String]) -> Result<()> {
    let url = format!("{}/v1/device/left", link.url.trim_end_matches('/'));
    let body = gridwalk_protocol::DeviceLeft { holds: holds.to_vec() };
    short_request(|client| client.post(&url).bearer_auth(&link.token).json(&body), |_| Ok(()))
}

/// Syncs with the joined relay over HTTP.
pub fn sync_over_http(store: &Store, cancel: &AtomicBool, on_progress: &mut dyn FnMut(&Progress)) -> Result<Progress> {
    let link = store.relay_link()?.ok_or(CoreError::NotJoined)?;
    follow_grid_move(store, &link, cancel, on_progress)?;
    let mut transport = HttpTransport::new(&link)?;
    run(store, &mut transport, SessionLimits::default(), Retry::default(), cancel, on_progress)
}

/// Documents waiting in the outbox (distinct), for "still waiting to go up".
pub fn pending_documents(store: &Store) -> Result<BTreeSet<String>> {
    Ok(store.outbox(usize::MAX >> 1)?.into_iter().map(|e| e.doc_id).collect())
}

/// Whether the relay answers its `/health` within a couple of seconds: the app's online mark
/// and its cue to start syncing by itself.
pub fn relay_reachable(relay_url: &str) -> bool {
    let Ok(client) = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3))
        .build()
    else {
        return false;
    };
    client
        .get(format!("{}/health", relay_url.trim_end_matches('/')))
        .send()
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}
