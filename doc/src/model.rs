//! The people, places and offices the work is about: the area hierarchy (street → village →
//! grid → micro-grid, and enterprise grids), households and enterprises, departments, walkers,
//! their work groups and devices. These are reference data kept in plain SQLite tables: they are
//! maintained at the hall and imported from lists, not edited concurrently on the doorstep.

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

/// A level of the area hierarchy. 县/市 is above the street and is not modelled: one relay serves
/// one street or town.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum AreaKind {
    /// 镇 / 街道
    Town,
    /// 村 / 社区
    Village,
    /// 网格, including an enterprise grid (企业网格) when `enterprise_grid` is set.
    Grid,
    /// 微网格
    MicroGrid,
}

impl AreaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AreaKind::Town => "town",
            AreaKind::Village => "village",
            AreaKind::Grid => "grid",
            AreaKind::MicroGrid => "micro_grid",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "town" | "street" | "镇" | "街道" => AreaKind::Town,
            "village" | "community" | "村" | "社区" => AreaKind::Village,
            "grid" | "网格" => AreaKind::Grid,
            "micro_grid" | "micro-grid" | "微网格" => AreaKind::MicroGrid,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct Area {
    #[key]
    pub id: String,
    pub kind: AreaKind,
    pub name: String,
    pub parent: Option<String>,
    /// A grid of enterprises (企业网格) rather than of households.
    pub enterprise_grid: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct Household {
    #[key]
    pub id: String,
    pub grid: String,
    pub micro_grid: Option<String>,
    pub address: String,
    pub head_name: String,
    pub phone: Option<String>,
    pub members: u32,
    /// Care tags such as 独居老人, 低保, 残疾.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct Enterprise {
    #[key]
    pub id: String,
    pub grid: String,
    pub name: String,
    pub address: String,
    pub contact: Option<String>,
    pub phone: Option<String>,
    /// 企业规模: 规上 (above designated size), 小微 (small and micro), and so on.
    pub scale: Option<String>,
    pub tags: Vec<String>,
}

/// Which tier of government handles an assignment (三级联动).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    autosurgeon::Reconcile,
    autosurgeon::Hydrate,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Village,
    Town,
    County,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Village => "village",
            Level::Town => "town",
            Level::County => "county",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "village" | "村" | "村级" => Level::Village,
            "town" | "镇" | "镇级" | "街道" => Level::Town,
            "county" | "县" | "县级" | "市" => Level::County,
            _ => return None,
        })
    }
}

/// 责任科室: an office or department that requests are assigned to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct Department {
    #[key]
    pub id: String,
    pub name: String,
    pub level: Level,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 网格员 / 驻网干部 on foot.
    Walker,
    /// Service hall staff or a work-group lead.
    Hall,
    /// Manages devices and reference data.
    Admin,
    /// Reads dashboards.
    Leader,
    /// Staff of a 责任科室 (office), working the requests assigned to it.
    Office,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Walker => "walker",
            Role::Hall => "hall",
            Role::Admin => "admin",
            Role::Leader => "leader",
            Role::Office => "office",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "walker" => Role::Walker,
            "hall" => Role::Hall,
            "admin" => Role::Admin,
            "leader" => Role::Leader,
            "office" => Role::Office,
            _ => return None,
        })
    }
}

/// A cadre: 网格员, 驻网干部, hall staff or leader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct Walker {
    #[key]
    pub id: String,
    pub name: String,
    pub phone: Option<String>,
    pub role: Role,
    pub work_group: Option<String>,
    pub grids: Vec<String>,
}

/// A cadres' work group (工作组) that walks a set of grids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkGroup {
    pub id: String,
    pub name: String,
    pub leader: Option<String>,
}

/// A request category with its labels in both UI languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Category {
    pub code: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
}

/// The categories the seeds' requests fall into. Codes are stored in documents; labels are for
/// people.
pub const CATEGORIES: &[Category] = &[
    Category { code: "streetlight", zh: "路灯照明", en: "Street lighting" },
    Category { code: "road_traffic", zh: "道路交通", en: "Roads and traffic" },
    Category { code: "parking", zh: "违规停车", en: "Illegal parking" },
    Category { code: "illegal_building", zh: "违章建筑", en: "Illegal building" },
    Category { code: "environment", zh: "环境卫生", en: "Environment and sanitation" },
    Category { code: "utilities", zh: "水电供应", en: "Water and power" },
    Category { code: "public_facility", zh: "公共设施", en: "Public facilities" },
    Category { code: "social_security", zh: "社会保障", en: "Social security and pensions" },
    Category { code: "agriculture", zh: "农业生产", en: "Farming and produce sales" },
    Category { code: "enterprise_service", zh: "企业服务", en: "Enterprise services" },
    Category { code: "safety", zh: "安全生产", en: "Safety and fire" },
    Category { code: "dispute", zh: "矛盾纠纷", en: "Disputes" },
    Category { code: "other", zh: "其他", en: "Other" },
];

pub fn category(code: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.code == code)
}
