//! The demo town: a street (街道) of villages with grids and micro-grids, households with care
//! tags, enterprises in enterprise grids, departments, cadres in work groups, and a year of
//! visits and requests carried through plausible lifecycles. Seeded, so the same seed gives the
//! same town; any scale, so tests use a hamlet and benchmarks a city.
//!
//! Documents are built in memory through the same domain API the app uses (every lifecycle step
//! is checked by `RequestDocument::apply`) and stored as if they had arrived by sync: they do not
//! enter the outbox.

use chrono::{DateTime, Duration, Utc};
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
use serde::Serialize;

use crate::docs::{
    self, GeoPoint, Place, Reporter, RequestBody, RequestDocument, Source, Urgency, VisitBody, VisitDocument,
    VisitKind, VisitTarget,
};
use crate::error::Result;
use crate::lifecycle::{Action, Assignment, Rating, TriageDecision};
use crate::model::{Area, AreaKind, Department, Enterprise, Household, Level, Role, Walker, WorkGroup};
use crate::store::Store;
use crate::time::Timestamp;
use crate::ActionContext;

/// How big a town to make.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub seed: u64,
    pub villages: usize,
    pub households: usize,
    pub enterprises: usize,
    pub enterprise_grids: usize,
    pub requests: usize,
    pub visits: usize,
    /// The period of activity ends here (usually "now").
    pub until: DateTime<Utc>,
    /// Length of the period in days.
    pub days: i64,
}

impl DemoConfig {
    /// The street the seed documents describe: ten villages, about 2,000 households, 86
    /// enterprises in 7 enterprise grids, and a year of work.
    pub fn street(seed: u64, until: DateTime<Utc>) -> Self {
        DemoConfig {
            seed,
            villages: 10,
            households: 2000,
            enterprises: 86,
            enterprise_grids: 7,
            requests: 1200,
            visits: 6000,
            until,
            days: 365,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub grids: usize,
    pub micro_grids: usize,
    pub households: usize,
    pub enterprises: usize,
    pub walkers: usize,
    pub departments: usize,
    pub visits: usize,
    pub requests: usize,
}

const VILLAGES: &[&str] = &[
    "马厩村",
    "百寿村",
    "新庙村",
    "曹兑村",
    "油车港村",
    "西庄村",
    "东湖村",
    "南塘社区",
    "北港村",
    "华光社区",
    "金桥村",
    "清溪村",
    "长安社区",
    "湖滨村",
    "永丰村",
];
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "沈", "钱", "陆", "顾",
    "蒋",
];
const GIVEN: &[&str] = &[
    "建国", "秀英", "伟", "芳", "德明", "桂英", "志强", "丽华", "海龙", "玉兰", "春生", "红梅", "国平", "美娟", "学军",
    "晓燕", "金宝", "阿三", "根林", "雪芬",
];
const CARE_TAGS: &[(&str, f64)] =
    &[("独居老人", 0.05), ("低保", 0.03), ("残疾", 0.03), ("退役军人", 0.02), ("留守儿童", 0.02)];
const FIRM_PREFIX: &[&str] = &["平湖", "嘉兴", "新华", "华东", "曹桥", "申浙", "浙北", "恒达"];
const FIRM_TRADE: &[&str] = &["纺织", "机械", "电子", "服装", "食品", "包装", "新材料", "光电", "五金", "箱包"];

/// (id, name, level, categories it handles)
const DEPARTMENTS: &[(&str, &str, Level, &[&str])] = &[
    ("dept-urban", "城建办", Level::Town, &["streetlight", "public_facility"]),
    ("dept-traffic", "交通运输所", Level::Town, &["road_traffic"]),
    ("dept-enforce", "综合行政执法队", Level::Town, &["parking", "illegal_building"]),
    ("dept-sanitation", "环卫所", Level::Village, &["environment"]),
    ("dept-power", "供电所", Level::Town, &["utilities"]),
    ("dept-social", "社会事务办", Level::Town, &["social_security"]),
    ("dept-farm", "农业农村办", Level::Town, &["agriculture"]),
    ("dept-economy", "经济发展办", Level::Town, &["enterprise_service"]),
    ("dept-safety", "应急管理办", Level::Town, &["safety"]),
    ("dept-mediation", "综治中心", Level::Village, &["dispute"]),
    ("dept-office", "党政办", Level::Town, &["other"]),
    ("dept-county-housing", "市住建局", Level::County, &[]),
];

/// (category, weight, description templates; {p} is the place)
const REQUEST_TEXTS: &[(&str, u32, &[&str])] = &[
    (
        "streetlight",
        14,
        &[
            "{p}一带路灯不亮已有一周，晚上出行不便，老人担心摔倒。",
            "{p}村道没有路灯，希望安装太阳能路灯。",
            "{p}路灯白天亮晚上不亮，请派人检修。",
        ],
    ),
    ("road_traffic", 10, &["{p}路面坑洼积水，电瓶车经过容易打滑。", "{p}村口道路狭窄，会车困难，建议拓宽。"]),
    ("parking", 8, &["{p}村道有车辆长期违规停放，堵住了消防通道。", "{p}外来货车夜间停在路边，影响通行。"]),
    ("illegal_building", 6, &["{p}有人搭建违章棚屋，堵住了通道。", "{p}邻居加盖的铁皮房占用公共通道。"]),
    ("environment", 12, &["{p}垃圾桶满了没人清运，气味很大。", "{p}河道漂浮垃圾较多，希望安排保洁。"]),
    ("utilities", 8, &["{p}临时用电一直没有接好，影响生活。", "{p}自来水水压低，二楼以上经常没水。"]),
    (
        "public_facility",
        8,
        &["{p}电瓶车库坡道没有雨棚，雨天老人推车容易滑倒。", "{p}文化礼堂的健身器材损坏，需要维修。"],
    ),
    ("social_security", 8, &["养老金银行网点太远，{p}的老人取钱不方便。", "想咨询城乡居民医保缴费和报销办法。"]),
    ("agriculture", 6, &["今年西瓜滞销，希望帮忙联系销路。", "{p}农田灌溉渠道堵塞，影响春耕。"]),
    ("enterprise_service", 5, &["企业消防审批卡在验收环节，希望协调。", "企业招工难，希望帮助对接用工信息。"]),
    ("safety", 6, &["{p}民房电线老化私拉乱接，存在火灾隐患。", "{p}厂房门口堆放易燃物，担心安全。"]),
    ("dispute", 6, &["与邻居因宅基地边界发生纠纷，希望调解。", "租户拖欠房租，希望村里协调。"]),
    ("other", 3, &["希望村里多组织一些老年人文体活动。"]),
];

const VISIT_NOTES: &[&str] = &[
    "了解家庭近况，身体健康，无特殊诉求。",
    "老人独居，叮嘱注意用电安全，留下联系电话。",
    "宣传反诈知识和垃圾分类。",
    "询问低保待遇发放情况，已按时到账。",
    "了解子女就业情况，宣传技能培训政策。",
    "晚上入户拉家常，听取对村里工作的意见。",
];
const ENTERPRISE_NOTES: &[&str] =
    &["走访企业，了解生产经营情况和用工需求。", "检查消防通道和安全生产台账。", "宣传惠企政策，收集企业意见。"];
const RESOLUTIONS: &[&str] =
    &["已派人现场处理完毕，并回访核实。", "已协调相关单位解决，群众认可。", "已按要求整改到位，现场拍照留档。"];
const COMPANIONS: &[&str] = &["村党支部书记", "村委会主任", "网格长", "小组长", "驻村干部"];

fn name(rng: &mut ChaCha8Rng) -> String {
    format!("{}{}", SURNAMES.choose(rng).unwrap(), GIVEN.choose(rng).unwrap())
}

fn device_of(walker: &str) -> String {
    format!("phone-{walker}")
}

struct Grid {
    id: String,
    micro: Vec<String>,
    enterprise: bool,
    households: Vec<(String, String, String)>,  // id, head, address
    enterprises: Vec<(String, String, String)>, // id, name, address
    walkers: Vec<String>,
    center: (f64, f64),
}

/// Fills `store` with a demo town. Runs in one transaction.
pub fn generate(store: &mut Store, cfg: &DemoConfig) -> Result<DemoReport> {
    store.bulk(|store| generate_inner(store, cfg))
}

fn generate_inner(store: &mut Store, cfg: &DemoConfig) -> Result<DemoReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let start = cfg.until - Duration::days(cfg.days.max(1));
    let span_ms = (cfg.until - start).num_milliseconds().max(1);

    // Areas.
    let town = "street";
    store.put_area(&Area {
        id: town.into(),
        kind: AreaKind::Town,
        name: "曹桥街道".into(),
        parent: None,
        enterprise_grid: false,
    })?;
    let villages = cfg.villages.max(1);
    let per_grid = 50usize;
    let household_grids = cfg.households.div_ceil(per_grid).max(villages);
    let mut grids: Vec<Grid> = Vec::new();
    for v in 0..villages {
        let vid = format!("v{:02}", v + 1);
        let vname = VILLAGES.get(v).map(|s| s.to_string()).unwrap_or_else(|| format!("第{}村", v + 1));
        store.put_area(&Area {
            id: vid.clone(),
            kind: AreaKind::Village,
            name: vname.clone(),
            parent: Some(town.into()),
            enterprise_grid: false,
        })?;
        let count = household_grids / villages + usize::from(v < household_grids % villages);
        for g in 0..count {
            let gid = format!("{vid}-g{:02}", g + 1);
            store.put_area(&Area {
                id: gid.clone(),
                kind: AreaKind::Grid,
                name: format!("{vname}第{}网格", g + 1),
                parent: Some(vid.clone()),
                enterprise_grid: false,
            })?;
            let mut micro = Vec::new();
            for m in 0..3 {
                let mid = format!("{gid}-m{}", m + 1);
                store.put_area(&Area {
                    id: mid.clone(),
                    kind: AreaKind::MicroGrid,
                    name: format!("{vname}第{}网格{}号微网格", g + 1, m + 1),
                    parent: Some(gid.clone()),
                    enterprise_grid: false,
                })?;
                micro.push(mid);
            }
            let center = (30.70 + rng.random_range(0.0..0.1), 121.00 + rng.random_range(0.0..0.1));
            grids.push(Grid {
                id: gid,
                micro,
                enterprise: false,
                households: Vec::new(),
                enterprises: Vec::new(),
                walkers: Vec::new(),
                center,
            });
        }
    }
    for e in 0..cfg.enterprise_grids {
        let gid = format!("eg{:02}", e + 1);
        store.put_area(&Area {
            id: gid.clone(),
            kind: AreaKind::Grid,
            name: format!("企业网格{}", e + 1),
            parent: Some(town.into()),
            enterprise_grid: true,
        })?;
        let center = (30.70 + rng.random_range(0.0..0.1), 121.00 + rng.random_range(0.0..0.1));
        grids.push(Grid {
            id: gid,
            micro: Vec::new(),
            enterprise: true,
            households: Vec::new(),
            enterprises: Vec::new(),
            walkers: Vec::new(),
            center,
        });
    }
    let household_grid_count = grids.iter().filter(|g| !g.enterprise).count();

    // Households, spread evenly over the household grids.
    for i in 0..cfg.households {
        let gi = i % household_grid_count;
        let grid = &mut grids[gi];
        let id = format!("h{:05}", i + 1);
        let head = name(&mut rng);
        let village_name = VILLAGES.get(gi % villages).copied().unwrap_or("本村");
        let address = format!("{}第{}组{}号", village_name, gi % 12 + 1, i / household_grid_count + 1);
        let tags = CARE_TAGS.iter().filter(|(_, p)| rng.random_bool(*p)).map(|(t, _)| t.to_string()).collect();
        let micro = grid.micro.get(i % grid.micro.len().max(1)).cloned();
        store.put_household(&Household {
            id: id.clone(),
            grid: grid.id.clone(),
            micro_grid: micro,
            address: address.clone(),
            head_name: head.clone(),
            phone: Some(format!("13{:09}", rng.random_range(0..1_000_000_000u64))),
            members: rng.random_range(1..6),
            tags,
        })?;
        grid.households.push((id, head, address));
    }

    // Enterprises in the enterprise grids.
    let enterprise_grid_ids: Vec<usize> = (0..grids.len()).filter(|&i| grids[i].enterprise).collect();
    if !enterprise_grid_ids.is_empty() {
        for i in 0..cfg.enterprises {
            let gi = enterprise_grid_ids[i % enterprise_grid_ids.len()];
            let id = format!("e{:03}", i + 1);
            let firm = format!(
                "{}{}{}有限公司",
                FIRM_PREFIX.choose(&mut rng).unwrap(),
                ["市", "县", ""].choose(&mut rng).unwrap(),
                FIRM_TRADE.choose(&mut rng).unwrap()
            );
            let address =
                format!("曹桥工业园区{}路{}号", ["兴业", "新华", "创业", "开元"].choose(&mut rng).unwrap(), i + 1);
            store.put_enterprise(&Enterprise {
                id: id.clone(),
                grid: grids[gi].id.clone(),
                name: firm.clone(),
                address: address.clone(),
                contact: Some(name(&mut rng)),
                phone: Some(format!("0573-85{:06}", rng.random_range(0..1_000_000))),
                scale: Some(if rng.random_bool(0.4) { "规上" } else { "小微" }.into()),
                tags: Vec::new(),
            })?;
            grids[gi].enterprises.push((id, firm, address));
        }
    }

    for (id, dept_name, level, _) in DEPARTMENTS {
        store.put_department(&Department { id: id.to_string(), name: dept_name.to_string(), level: *level })?;
    }

    // Cadres: ten work groups; every grid gets two walkers, one of them enterprise stewards for
    // enterprise grids; plus hall staff, an admin and a leader.
    let groups = 10usize;
    for g in 0..groups {
        store.put_work_group(&WorkGroup {
            id: format!("wg{:02}", g + 1),
            name: format!("第{}工作组", g + 1),
            leader: None,
        })?;
    }
    let mut walker_count = 0;
    for (gi, grid) in grids.iter_mut().enumerate() {
        for k in 0..2 {
            walker_count += 1;
            let id = format!("w{:03}", walker_count);
            store.put_walker(&Walker {
                id: id.clone(),
                name: name(&mut rng),
                phone: None,
                role: Role::Walker,
                work_group: Some(format!("wg{:02}", (gi + k) % groups + 1)),
                grids: vec![grid.id.clone()],
            })?;
            grid.walkers.push(id);
        }
    }
    // The service hall's staff are people (who triaged, who assigned), not its windows.
    let hall_staff = [("hall-1", "陈国平"), ("hall-2", "王丽华"), ("hall-3", "张建军")];
    for (id, name) in hall_staff {
        store.put_walker(&Walker {
            id: id.to_string(),
            name: name.to_string(),
            phone: None,
            role: Role::Hall,
            work_group: None,
            grids: Vec::new(),
        })?;
    }
    store.put_walker(&Walker {
        id: "admin".into(),
        name: "系统管理员".into(),
        phone: None,
        role: Role::Admin,
        work_group: None,
        grids: Vec::new(),
    })?;
    store.put_walker(&Walker {
        id: "leader".into(),
        name: "街道分管领导".into(),
        phone: None,
        role: Role::Leader,
        work_group: None,
        grids: Vec::new(),
    })?;

    let ctx_for = |who: &str, device: String, at: DateTime<Utc>, rng: &mut ChaCha8Rng| {
        ActionContext::seeded(who.to_string(), device, at, rng.random())
    };
    let random_time = |rng: &mut ChaCha8Rng| start + Duration::milliseconds(rng.random_range(0..span_ms));

    // Visits. Visits that raise a request are made alongside it below; these are the rest.
    // First the grid walked as the seeds ask, every household and enterprise once a fortnight:
    // the last two fortnights, as far as the visit budget reaches, with one place in ten
    // slipping a few days past its fortnight. What is left of the budget is spread over the
    // year, so older months have visits too.
    let requests_from_visits = cfg.requests * 6 / 10;
    let plain_visits = cfg.visits.saturating_sub(requests_from_visits);
    // At most seven in ten of them for the fortnights, so that the year before has visits too.
    let mut budget = plain_visits * 7 / 10;
    let mut visits_made = 0usize;
    let places: Vec<(usize, VisitTarget)> = grids
        .iter()
        .enumerate()
        .flat_map(|(gi, g)| {
            let households = g.households.iter().map(move |(id, _, _)| (gi, VisitTarget::Household { id: id.clone() }));
            let enterprises =
                g.enterprises.iter().map(move |(id, _, _)| (gi, VisitTarget::Enterprise { id: id.clone() }));
            households.chain(enterprises)
        })
        .collect();
    'rounds: for round in 0..2i64 {
        for (gi, target) in &places {
            if budget == 0 {
                break 'rounds;
            }
            let days_ago =
                if rng.random_bool(0.9) { rng.random_range(0.0..14.0) } else { rng.random_range(14.0..20.0) };
            let at = cfg.until - Duration::minutes(((days_ago + 14.0 * round as f64) * 24.0 * 60.0) as i64 + 30);
            if at <= start {
                continue;
            }
            make_visit_to(store, &mut rng, &grids[*gi], at, &ctx_for, None, Some(target.clone()))?;
            visits_made += 1;
            budget -= 1;
        }
    }
    for i in 0..plain_visits - visits_made {
        let grid = &grids[i % grids.len()];
        let at = random_time(&mut rng);
        make_visit(store, &mut rng, grid, at, &ctx_for, None)?;
        visits_made += 1;
    }

    // Requests with their lifecycles.
    let total_weight: u32 = REQUEST_TEXTS.iter().map(|(_, w, _)| w).sum();
    // id, grid, category
    let mut earlier: Vec<(String, String, String)> = Vec::new();
    // Request numbers as the town's devices would give them: the hall PC is device 1, walker
    // wNNN's phone device NNN + 1, each counting its own requests day by day.
    let mut numbered: std::collections::HashMap<(String, chrono::NaiveDate), u32> = Default::default();
    let mut next_number = |device: &str, at: DateTime<Utc>| {
        let device_number = match device.strip_prefix("phone-w").and_then(|n| n.parse::<u32>().ok()) {
            Some(n) => Some(n + 1),
            None if device == "hall-pc" => Some(1),
            None => None,
        };
        let code = crate::numbers::device_code(device_number, device);
        let day = crate::numbers::number_day(Timestamp(at));
        let seq = numbered.entry((code.clone(), day)).or_insert(0);
        *seq += 1;
        crate::numbers::request_number(day, &code, *seq)
    };
    for i in 0..cfg.requests {
        let gi = rng.random_range(0..grids.len());
        let grid = &grids[gi];
        let created = random_time(&mut rng);
        let mut pick = rng.random_range(0..total_weight);
        let (category, _, texts) = REQUEST_TEXTS
            .iter()
            .find(|(_, w, _)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .copied()
            .unwrap_or(REQUEST_TEXTS[0]);
        let category = if grid.enterprise && rng.random_bool(0.6) { "enterprise_service" } else { category };
        let texts = REQUEST_TEXTS.iter().find(|(c, _, _)| *c == category).map(|t| t.2).unwrap_or(texts);
        let (address, reporter) = if grid.enterprise {
            match grid.enterprises.choose(&mut rng) {
                Some((id, _, address)) => (address.clone(), Reporter::Enterprise { id: id.clone(), contact: None }),
                None => ("曹桥工业园区".to_string(), Reporter::Anonymous),
            }
        } else {
            match grid.households.choose(&mut rng) {
                Some((id, head, address)) if rng.random_bool(0.8) => (
                    address.clone(),
                    Reporter::Resident { name: head.clone(), phone: None, household: Some(id.clone()) },
                ),
                Some((_, _, address)) => (address.clone(), Reporter::Anonymous),
                None => ("村委会".to_string(), Reporter::Anonymous),
            }
        };
        let description = texts.choose(&mut rng).unwrap().replace("{p}", &address);
        let source_roll = i % 20;
        let walker = grid.walkers.choose(&mut rng).cloned().unwrap_or_else(|| "hall-1".into());
        let request_id = ActionContext::seeded("", "", created, rng.random()).new_id();
        let (source, visit, collector, device) = if source_roll < 12 {
            let vid = make_visit(store, &mut rng, grid, created, &ctx_for, Some(request_id.clone()))?;
            visits_made += 1;
            (Source::Visit, Some(vid), walker.clone(), device_of(&walker))
        } else if source_roll < 17 {
            (Source::WalkIn, None, "hall-1".to_string(), "hall-pc".to_string())
        } else {
            (Source::Phone, None, "hall-2".to_string(), "hall-pc".to_string())
        };
        let body = RequestBody {
            reporter,
            place: Place {
                address,
                gps: Some(GeoPoint {
                    lat: grid.center.0 + rng.random_range(-0.005..0.005),
                    lon: grid.center.1 + rng.random_range(-0.005..0.005),
                    accuracy_m: Some(15.0),
                }),
            },
            micro_grid: grid.micro.choose(&mut rng).cloned(),
            category: category.to_string(),
            description,
            urgency: *[Urgency::Normal, Urgency::Normal, Urgency::Normal, Urgency::High, Urgency::Low, Urgency::Urgent]
                .choose(&mut rng)
                .unwrap(),
            source,
            visit,
            number: Some(next_number(&device, created)),
        };
        let ctx = ctx_for(&collector, device, created, &mut rng);
        let mut doc = RequestDocument::create(&ctx, &request_id, &grid.id, &body)?;
        docs::commit(doc.automerge(), ctx.at, "raise request");
        let same =
            earlier.iter().rev().take(50).find(|(_, g, c)| *g == grid.id && c == category).map(|(id, _, _)| id.clone());
        run_lifecycle(&mut doc, &mut rng, created, cfg.until, category, same, &walker, &ctx_for)?;
        store.import_document(doc.automerge())?;
        earlier.push((request_id, grid.id.clone(), category.to_string()));
    }

    Ok(DemoReport {
        grids: grids.len(),
        micro_grids: grids.iter().map(|g| g.micro.len()).sum(),
        households: cfg.households,
        enterprises: grids.iter().map(|g| g.enterprises.len()).sum(),
        walkers: walker_count,
        departments: DEPARTMENTS.len(),
        visits: visits_made,
        requests: cfg.requests,
    })
}

type CtxFor<'a> = dyn Fn(&str, String, DateTime<Utc>, &mut ChaCha8Rng) -> ActionContext + 'a;

fn make_visit(
    store: &Store,
    rng: &mut ChaCha8Rng,
    grid: &Grid,
    at: DateTime<Utc>,
    ctx_for: &CtxFor<'_>,
    raised: Option<String>,
) -> Result<String> {
    make_visit_to(store, rng, grid, at, ctx_for, raised, None)
}

/// A visit to `target` (a household or enterprise of `grid`), or to one picked at random.
fn make_visit_to(
    store: &Store,
    rng: &mut ChaCha8Rng,
    grid: &Grid,
    at: DateTime<Utc>,
    ctx_for: &CtxFor<'_>,
    raised: Option<String>,
    target: Option<VisitTarget>,
) -> Result<String> {
    let walker = grid.walkers.choose(rng).cloned().unwrap_or_else(|| "hall-1".into());
    let (target, notes) = if let Some(target) = target {
        let notes = if grid.enterprise { ENTERPRISE_NOTES } else { VISIT_NOTES };
        (target, notes.choose(rng).unwrap())
    } else if grid.enterprise {
        match grid.enterprises.choose(rng) {
            Some((id, _, _)) => (VisitTarget::Enterprise { id: id.clone() }, ENTERPRISE_NOTES.choose(rng).unwrap()),
            None => (VisitTarget::Place { address: "曹桥工业园区".into() }, ENTERPRISE_NOTES.choose(rng).unwrap()),
        }
    } else {
        match grid.households.choose(rng) {
            Some((id, _, _)) => (VisitTarget::Household { id: id.clone() }, VISIT_NOTES.choose(rng).unwrap()),
            None => (VisitTarget::Place { address: "村委会".into() }, VISIT_NOTES.choose(rng).unwrap()),
        }
    };
    let kind = match rng.random_range(0..10) {
        0..=6 => VisitKind::Daily,
        7 | 8 => VisitKind::Sweep,
        _ => VisitKind::EveningTalk,
    };
    let mut walkers = vec![walker.clone()];
    if rng.random_bool(0.3) {
        if let Some(other) = grid.walkers.iter().find(|w| **w != walker) {
            walkers.push(other.clone());
        }
    }
    let companions = if rng.random_bool(0.25) { vec![COMPANIONS.choose(rng).unwrap().to_string()] } else { Vec::new() };
    let ctx = ctx_for(&walker, device_of(&walker), at, rng);
    let id = ctx.new_id();
    let body = VisitBody {
        target,
        micro_grid: grid.micro.choose(rng).cloned(),
        kind,
        visited_at: Timestamp(at),
        walkers,
        companions,
        notes: notes.to_string(),
        requests_raised: raised.into_iter().collect(),
        gps: Some(GeoPoint { lat: grid.center.0, lon: grid.center.1, accuracy_m: Some(20.0) }),
    };
    let mut doc = VisitDocument::create(&ctx, &id, &grid.id, &body)?;
    docs::commit(doc.automerge(), ctx.at, "record visit");
    store.import_document(doc.automerge())?;
    Ok(id)
}

fn department_for(category: &str) -> &'static str {
    DEPARTMENTS
        .iter()
        .find(|(_, _, _, cats)| cats.contains(&category))
        .map(|(id, _, _, _)| *id)
        .unwrap_or("dept-office")
}

/// Carries a request through a plausible closed loop, as far as time allows before `until`.
fn run_lifecycle(
    doc: &mut RequestDocument,
    rng: &mut ChaCha8Rng,
    created: DateTime<Utc>,
    until: DateTime<Utc>,
    category: &str,
    duplicate_of: Option<String>,
    walker: &str,
    ctx_for: &CtxFor<'_>,
) -> Result<()> {
    let mut t = created;
    // Advances time by a random amount; false when that would pass `until` (the loop stops there).
    let step = |t: &mut DateTime<Utc>, rng: &mut ChaCha8Rng, min_h: i64, max_h: i64| {
        let next = *t + Duration::minutes(rng.random_range(min_h * 60..=max_h * 60));
        if next >= until {
            false
        } else {
            *t = next;
            true
        }
    };
    let act = |doc: &mut RequestDocument,
               rng: &mut ChaCha8Rng,
               who: &str,
               device: &str,
               at: DateTime<Utc>,
               action: Action|
     -> Result<()> {
        let ctx = ctx_for(who, device.to_string(), at, rng);
        doc.apply(&ctx, action)?;
        docs::commit(doc.automerge(), ctx.at, "demo");
        Ok(())
    };
    let staff = *["hall-1", "hall-2", "hall-3"].choose(rng).unwrap();
    if !step(&mut t, rng, 2, 48) {
        return Ok(());
    }
    let roll = rng.random_range(0..100);
    let decision = match (roll, duplicate_of) {
        (0..=4, _) => TriageDecision::Reject {
            reason: "不属于本级受理范围，已告知群众向相关部门反映。".into()
        },
        (5..=8, Some(target)) => TriageDecision::MergeInto { target },
        (9..=16, _) => TriageDecision::SolvedOnSpot { note: "网格员当场协调解决。".into() },
        _ => TriageDecision::Accept,
    };
    let accepted = decision == TriageDecision::Accept;
    let solved = matches!(decision, TriageDecision::SolvedOnSpot { .. });
    act(doc, rng, staff, "hall-pc", t, Action::Triaged { decision })?;
    if !accepted && !solved {
        return Ok(());
    }
    let mut reopens = 0;
    loop {
        if accepted || reopens > 0 {
            if !step(&mut t, rng, 1, 24) {
                return Ok(());
            }
            let department = department_for(category).to_string();
            let level = if rng.random_bool(0.1) {
                Level::County
            } else if rng.random_bool(0.2) {
                Level::Village
            } else {
                Level::Town
            };
            let mut deadline = t + Duration::days(rng.random_range(5..30));
            let assignment = Assignment { department, person: None, deadline: Timestamp(deadline), level };
            act(doc, rng, staff, "hall-pc", t, Action::Assigned { assignment })?;
            if rng.random_bool(0.05) && step(&mut t, rng, 2, 48) {
                deadline = t + Duration::days(10);
                let assignment = Assignment {
                    department: "dept-office".into(),
                    person: None,
                    deadline: Timestamp(deadline),
                    level: Level::Town,
                };
                act(
                    doc,
                    rng,
                    staff,
                    "hall-pc",
                    t,
                    Action::Reassigned { assignment, reason: "职责调整，改由党政办牵头。".into() },
                )?;
            }
            for _ in 0..rng.random_range(0..3) {
                if !step(&mut t, rng, 12, 24 * 5) {
                    return Ok(());
                }
                act(doc, rng, staff, "hall-pc", t, Action::Progress { note: "已联系责任科室，正在办理。".into() })?;
            }
            // As a street that works looks: most are resolved before their deadline, some days
            // to two weeks late, some weeks late, and two in a hundred drag on for months (they
            // may still be open at the end). What is open now is mostly what is recent.
            let left = (deadline - t).num_hours().max(12);
            let (lo, hi) = match rng.random_range(0..100) {
                0..=79 => (4, left),
                80..=92 => (left, left + 24 * 14),
                93..=97 => (left + 24 * 14, left + 24 * 42),
                _ => (left + 24 * 60, left + 24 * 120),
            };
            if !step(&mut t, rng, lo, hi) {
                return Ok(());
            }
            let note = RESOLUTIONS.choose(rng).unwrap().to_string();
            act(doc, rng, staff, "hall-pc", t, Action::Resolved { note, photos: Vec::new() })?;
        }
        // Feedback on the next visit, by a walker, offline.
        if !step(&mut t, rng, 24, 24 * 14) {
            return Ok(());
        }
        if rng.random_bool(0.85) {
            act(
                doc,
                rng,
                walker,
                &device_of(walker),
                t,
                Action::FeedbackGiven { note: "已上门告知处理结果。".into() },
            )?;
        }
        if !step(&mut t, rng, 0, 2) || rng.random_bool(0.1) {
            return Ok(());
        }
        let rating = match rng.random_range(0..100) {
            0..=84 => Rating::Satisfied,
            85..=94 => Rating::Basically,
            // Reopened twice, the third resolution is accepted: nothing is left reopened for a
            // year with a deadline long past.
            _ if reopens >= 2 => Rating::Basically,
            _ => Rating::NotSatisfied,
        };
        let comment = match rating {
            Rating::Satisfied => "处理很及时，感谢！",
            Rating::Basically => "基本满意。",
            Rating::NotSatisfied => "问题没有彻底解决。",
        };
        act(doc, rng, walker, &device_of(walker), t, Action::Rated { rating, comment: comment.into() })?;
        if rating != Rating::NotSatisfied {
            if rng.random_bool(0.5) && step(&mut t, rng, 24, 24 * 7) {
                act(doc, rng, staff, "hall-pc", t, Action::Closed { note: "闭环归档。".into() })?;
            }
            return Ok(());
        }
        reopens += 1;
    }
}
