//! Shared by the sync tests: devices with the same reference data, and random offline work.
#![allow(dead_code)]

#[allow(unused_imports)] // Not every test file starts a PostgreSQL server.
pub use gridwalk_tests::pg;
mod transport;
#[allow(unused_imports)] // Not every test file drives sync in memory.
pub use transport::InMemoryTransport;

use chrono::{Duration, TimeZone, Utc};
use gridwalk_core::docs::{Reporter, Source, Urgency, VisitKind, VisitTarget};
use gridwalk_core::lifecycle::{self, Action, Assignment, Rating, TriageDecision};
use gridwalk_core::model::{Area, AreaKind, Department, Household, Level, Role};
use gridwalk_core::store::{Identity, NewRequest, NewVisit, RequestFilter, Store};
use gridwalk_core::Timestamp;
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub const GRIDS: [&str; 2] = ["g1", "g2"];

pub fn t(minutes: i64) -> Timestamp {
    Timestamp(Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap() + Duration::minutes(minutes))
}

/// A device's store with the town's reference data (which every device gets from the hall).
pub fn device_store(dir: &std::path::Path, device: &str, walker: &str) -> Store {
    let store =
        Store::create(dir.join(format!("{device}.db")), Identity { device: device.into(), walker: walker.into() })
            .unwrap();
    let area = |id: &str, kind, parent: Option<&str>| Area {
        id: id.into(),
        kind,
        name: id.into(),
        parent: parent.map(Into::into),
        enterprise_grid: false,
    };
    store.put_area(&area("street", AreaKind::Town, None)).unwrap();
    store.put_area(&area("v1", AreaKind::Village, Some("street"))).unwrap();
    for g in GRIDS {
        store.put_area(&area(g, AreaKind::Grid, Some("v1"))).unwrap();
        for h in 0..5 {
            store
                .put_household(&Household {
                    id: format!("{g}-h{h}"),
                    grid: g.into(),
                    micro_grid: None,
                    address: format!("{g} 第{h}户"),
                    head_name: "王芳".into(),
                    phone: None,
                    members: 2,
                    tags: vec![],
                })
                .unwrap();
        }
    }
    store.put_department(&Department { id: "dept-urban".into(), name: "城建办".into(), level: Level::Town }).unwrap();
    // The fixtures' people are hall staff when their id starts with "hall" and walkers
    // otherwise; the store acts in that role before it ever meets the relay, as a phone does.
    store.set_role(if walker.starts_with("hall") { Role::Hall } else { Role::Walker }).unwrap();
    store
}

fn candidates(p: u32, minutes: i64) -> Vec<Action> {
    vec![
        Action::Triaged { decision: TriageDecision::Accept },
        Action::Triaged { decision: TriageDecision::Reject { reason: "不属于受理范围".into() } },
        Action::Assigned {
            assignment: Assignment {
                department: "dept-urban".into(),
                person: None,
                deadline: t(minutes + 7 * 1440),
                level: Level::Town,
            },
        },
        Action::Progress { note: format!("进展{p}") },
        Action::Resolved { note: "已修好".into(), photos: vec![] },
        Action::FeedbackGiven { note: "已告知".into() },
        Action::Rated {
            rating: [Rating::Satisfied, Rating::Basically, Rating::NotSatisfied][p as usize % 3],
            comment: String::new(),
        },
        Action::Reopened { reason: "又坏了".into() },
        Action::Closed { note: "归档".into() },
    ]
}

/// One random piece of offline work in `grid`: a visit, a request, or a lifecycle step on a
/// request this device holds.
pub fn random_edit(store: &Store, rng: &mut ChaCha8Rng, grid: &str, minutes: i64) {
    let ctx = store.context(t(minutes));
    match rng.random_range(0..10) {
        0..=2 => {
            let h = rng.random_range(0..5);
            store
                .record_visit(
                    &ctx,
                    NewVisit {
                        id: None,
                        grid: grid.into(),
                        micro_grid: None,
                        target: VisitTarget::Household { id: format!("{grid}-h{h}") },
                        kind: *[VisitKind::Daily, VisitKind::Sweep, VisitKind::EveningTalk].choose(rng).unwrap(),
                        visited_at: None,
                        other_walkers: vec![],
                        companions: vec![],
                        notes: format!("走访记录 {minutes}"),
                        gps: None,
                    },
                )
                .unwrap();
        }
        3..=4 => {
            store
                .raise_request(
                    &ctx,
                    NewRequest {
                        id: None,
                        grid: grid.into(),
                        micro_grid: None,
                        reporter: Reporter::Anonymous,
                        address: format!("{grid} 村道"),
                        gps: None,
                        category: "streetlight".into(),
                        description: format!("路灯不亮 {minutes}"),
                        urgency: Urgency::Normal,
                        source: Source::Visit,
                        visit: None,
                    },
                )
                .unwrap();
        }
        _ => {
            let requests = store
                .list_requests(&RequestFilter { grids: vec![grid.into()], limit: 200, ..Default::default() })
                .unwrap();
            let Some(r) = requests.choose(rng) else { return };
            let state = store.request(&r.id).unwrap().state;
            let valid: Vec<Action> = candidates(rng.random(), minutes)
                .into_iter()
                // What this device's role may do: walkers report and rate, the hall runs the loop.
                .filter(|a| lifecycle::check(&state, a).is_ok() && store.allows(&ctx, &state, a).unwrap())
                .collect();
            if let Some(a) = valid.choose(rng) {
                store.act(&ctx, &r.id, a.clone()).unwrap();
            }
        }
    }
}

/// Everything a device derives, for comparing replicas: per document its heads, and the index.
pub fn fingerprint(store: &Store) -> (Vec<(String, Vec<automerge::ChangeHash>)>, Vec<String>) {
    let docs = store.document_ids().unwrap().into_iter().map(|id| {
        let heads = store.document_heads(&id).unwrap();
        (id, heads)
    });
    (docs.collect(), store.index_dump().unwrap())
}

/// A camera file of `w` × `h` pixels of noise: noise does not compress, so even a modest photo
/// needs several chunks.
pub fn noise_png(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let mut rng = <ChaCha8Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(seed);
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    rand::RngCore::fill_bytes(&mut rng, &mut pixels);
    let img = image::RgbImage::from_raw(w, h, pixels).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Attaches a new photo to `doc` and returns its id.
pub fn add_photo(
    store: &Store,
    doc: &str,
    w: u32,
    h: u32,
    seed: u64,
    role: gridwalk_core::photo::Role,
    minute: i64,
) -> String {
    let attachment = gridwalk_core::photo::Attachment { role, caption: Some("现场照片".into()), gps: None };
    let (photo, _) = store
        .add_photo_file(
            &store.context(t(minute)),
            doc,
            &noise_png(w, h, seed),
            &gridwalk_core::photo::IngestOptions::default(),
            &attachment,
        )
        .unwrap();
    photo.full.hash
}
