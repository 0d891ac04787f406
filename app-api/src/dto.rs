//! The shapes that cross the boundary (see `docs/app-commands.md`). Only these types are
//! serialised to the UI; core types stay inside.

use gridwalk_transport::client::Progress;
use serde::{Deserialize, Serialize};

use crate::CommandError;

#[derive(Debug, Clone, Serialize)]
pub struct WalkerRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgressDto {
    #[serde(flatten)]
    pub progress: Progress,
    /// 0..1 for a progress bar; 1 once every phase is done.
    pub fraction: f64,
}

impl ProgressDto {
    pub fn of(progress: &Progress) -> Self {
        ProgressDto { progress: progress.clone(), fraction: fraction(progress) }
    }
}

/// How far a sync has come, for a progress bar: the session's own model (`Progress::fraction`),
/// the same the command line prints.
pub fn fraction(p: &Progress) -> f64 {
    p.fraction()
}

#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    pub enrolled: bool,
    /// The app lock: locked, a PIN to choose, wrong PINs waiting, a wipe (see `lock`).
    pub lock: crate::LockStatus,
    pub device_name: Option<String>,
    pub walker: Option<WalkerRef>,
    pub role: Option<String>,
    pub relay_url: Option<String>,
    pub grids: Vec<String>,
    pub online: bool,
    pub syncing: bool,
    pub progress: Option<ProgressDto>,
    pub last_sync_at: Option<i64>,
    pub last_error: Option<CommandError>,
    pub pending_documents: usize,
    pub pending_photos: usize,
    /// Photos saved with records that the background worker has still to process.
    pub processing_photos: usize,
    /// Photos whose processing failed, waiting for the walker to retry or discard them.
    pub failed_photos: usize,
    /// A hall PC whose staff sign in: nothing can be done until someone has.
    pub sign_in_required: bool,
    /// Who is signed in on this hall PC now.
    pub signed_in: Option<WalkerRef>,
    /// Stores set aside on this phone after a forgotten PIN, and how their hand-over stands.
    pub held_stores: Vec<crate::handover::HeldStoreDto>,
    pub now: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EnrollArgs {
    pub relay_url: String,
    pub code: String,
    pub device_name: String,
    /// The walker's PIN for this phone, if she chose it on the enrolment screen; otherwise
    /// the app asks for one right after (`lock.pin_needed`).
    #[serde(default)]
    pub pin: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryDto {
    pub code: String,
    pub zh: String,
    pub en: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DepartmentDto {
    pub id: String,
    pub name: String,
    pub level: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WalkerDto {
    pub id: String,
    pub name: String,
    pub grids: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReferenceDto {
    pub categories: Vec<CategoryDto>,
    pub departments: Vec<DepartmentDto>,
    pub walkers: Vec<WalkerDto>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GridSummary {
    pub id: String,
    pub name: String,
    pub village: Option<String>,
    pub enterprise_grid: bool,
    pub households: usize,
    pub enterprises: usize,
    pub stale_places: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlacesArgs {
    pub grid: String,
    #[serde(default)]
    pub query: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlaceDto {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub address: String,
    pub micro_grid: Option<String>,
    pub tags: Vec<String>,
    /// Masked (138****5678): the full number only through `reveal_phone`, which is logged.
    pub phone: Option<String>,
    pub last_visited_at: Option<i64>,
    pub stale: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct GpsArgs {
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub accuracy_m: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetArgs {
    Household { id: String },
    Enterprise { id: String },
    Place { address: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewVisitArgs {
    pub grid: String,
    pub target: TargetArgs,
    pub kind: String,
    #[serde(default)]
    pub companions: Vec<String>,
    #[serde(default)]
    pub other_walkers: Vec<String>,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub gps: Option<GpsArgs>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VisitsArgs {
    #[serde(default)]
    pub grid: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReporterArgs {
    Anonymous,
    Resident {
        name: String,
        #[serde(default)]
        phone: Option<String>,
        #[serde(default)]
        household: Option<String>,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewRequestArgs {
    pub grid: String,
    pub category: String,
    pub description: String,
    pub urgency: String,
    #[serde(default)]
    pub address: String,
    pub reporter: ReporterArgs,
    #[serde(default)]
    pub gps: Option<GpsArgs>,
    #[serde(default)]
    pub visit: Option<String>,
    /// Photos of the problem, saved with the request and processed in the background.
    #[serde(default)]
    pub photos: Vec<PhotoUpload>,
}

/// A photo file as the UI read it.
#[derive(Debug, Clone, Deserialize)]
pub struct PhotoUpload {
    #[serde(default)]
    pub file_name: String,
    /// The file's bytes in base64; a `data:` URL prefix is accepted.
    pub data_base64: String,
}

/// A photo saved with a record that is still being processed, or failed.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingPhotoDto {
    pub id: i64,
    pub role: String,
    pub file_name: String,
    pub bytes: u64,
    /// `processing` or `failed`.
    pub state: &'static str,
    /// Why it failed, with the code the UI words.
    pub error: Option<CommandError>,
}

impl WaitingPhotoDto {
    pub fn of(q: gridwalk_core::store::QueuedPhoto) -> Self {
        use gridwalk_core::store::QueuedPhotoState;
        let (state, error) = match q.state {
            QueuedPhotoState::Processing => ("processing", None),
            QueuedPhotoState::Failed { code, message } => ("failed", Some(CommandError { code, message })),
        };
        WaitingPhotoDto { id: q.id, role: q.role.as_str().into(), file_name: q.file_name, bytes: q.bytes, state, error }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SetPinArgs {
    pub person: String,
    /// The new PIN.
    pub pin: String,
    /// The PIN of whoever is signed in (her old one, when she changes her own): the relay
    /// checks it before it changes the staff list.
    pub my_pin: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WaitingPhotoArgs {
    pub id: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AddPhotoArgs {
    pub doc_id: String,
    pub role: String,
    #[serde(default)]
    pub file_name: String,
    pub data_base64: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhotoRefDto {
    pub hash: String,
    pub role: String,
    pub removed: bool,
    /// The photo's file is on this device (it may still be on its way from the relay).
    pub here: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RequestsArgs {
    #[serde(default)]
    pub grid: Option<String>,
    #[serde(default)]
    pub statuses: Vec<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub overdue_only: bool,
    /// Only those whose reporter is owed the outcome (待反馈), merged duplicates included.
    #[serde(default)]
    pub owed_feedback: bool,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub offset: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    pub id: String,
    pub grid: String,
    pub status: String,
    pub category: String,
    pub urgency: String,
    pub department: Option<String>,
    pub owner: String,
    pub deadline: Option<i64>,
    pub updated_at: i64,
    pub created_at: i64,
    pub address: String,
    pub description: String,
    pub overdue: bool,
    /// The number people read and search for (`261205-7-3`); `None` for requests raised
    /// before numbers existed.
    pub number: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestPage {
    pub items: Vec<RequestRow>,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryDto {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: i64,
    pub relay_received_at: Option<i64>,
    /// The actor's name when this device knows it, else their id.
    pub actor: String,
    pub device: String,
    pub applied: bool,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestDetail {
    #[serde(flatten)]
    pub row: RequestRow,
    pub reporter: serde_json::Value,
    pub source: String,
    pub visit: Option<String>,
    pub assignee: Option<String>,
    pub level: Option<String>,
    pub rating: Option<String>,
    pub created_by: String,
    pub photos: Vec<PhotoRefDto>,
    /// Photos saved with the request that are not attached yet: being processed, or failed.
    pub waiting_photos: Vec<WaitingPhotoDto>,
    pub history: Vec<HistoryDto>,
    /// The steps this person may take now: the lifecycle allows them and so does the
    /// permission table for this device's role.
    pub allowed: Vec<String>,
    /// Where the request was raised, when the walker's phone recorded it.
    pub gps: Option<GpsDto>,
    /// The request this one was merged into, as a duplicate.
    pub merged_into: Option<LinkedRequestDto>,
    /// The duplicates merged into this one, with their reporters (owed feedback too).
    pub duplicates: Vec<LinkedRequestDto>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GpsDto {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
}

/// Another request, named the way a person reads it.
#[derive(Debug, Clone, Serialize)]
pub struct LinkedRequestDto {
    pub id: String,
    pub number: Option<String>,
    pub description: String,
    pub address: String,
    pub status: String,
    /// The reporter's name, when a resident gave one.
    pub reporter: Option<String>,
    /// Its reporter has been told the outcome (反馈).
    pub told: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdArgs {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecisionArgs {
    Accept,
    MergeInto { target: String },
    Reject { reason: String },
    SolvedOnSpot { note: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActionArgs {
    FeedbackGiven {
        note: String,
    },
    Rated {
        rating: String,
        #[serde(default)]
        comment: String,
    },
    Progress {
        note: String,
    },
    Triaged {
        decision: DecisionArgs,
    },
    Assigned {
        department: String,
        #[serde(default)]
        person: Option<String>,
        deadline: i64,
        level: String,
    },
    Resolved {
        note: String,
    },
    Reopened {
        reason: String,
    },
    Closed {
        note: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActArgs {
    pub id: String,
    pub action: ActionArgs,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PhotoArgs {
    pub hash: String,
    #[serde(default)]
    pub thumbnail: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DraftKeyArgs {
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DraftPutArgs {
    pub key: String,
    pub value: serde_json::Value,
}

/// `issue_enrollment`: a new device's enrolment code, asked for by the admin signed in.
#[derive(Debug, Deserialize)]
pub struct IssueEnrollmentArgs {
    pub device_name: String,
    /// `walker` or `hall`.
    pub role: String,
    #[serde(default)]
    pub walker: Option<String>,
    #[serde(default)]
    pub grids: Vec<String>,
    /// The PIN of whoever is signed in: the relay issues codes to an admin only.
    pub my_pin: String,
}
