//! The command line as clap sees it. Choices with a fixed set of values (urgency, level, status...)
//! are parsed here with the core's own `parse` functions, so a typo is a usage error and the
//! Chinese spellings the core accepts (紧急, 满意, 村级...) work too. Dates, GPS positions and
//! anything that needs the store are checked later, by the commands, so they fail as input errors
//! with a stable code.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use gridwalk_core::docs::{Source, Urgency, VisitKind};
use gridwalk_core::export::ExportFormat;
use gridwalk_core::import::ImportKind;
use gridwalk_core::lifecycle::{Rating, Status};
use gridwalk_core::model::Level;

#[derive(Debug, Parser)]
#[command(
    name = "gridwalk",
    version,
    about = "Grid walking from the command line: visits (走访), requests (诉求) and their closed loop."
)]
pub struct Cli {
    /// The store file.
    #[arg(long, global = true, env = "GRIDWALK_STORE", default_value = "gridwalk.db")]
    pub store: PathBuf,
    /// Print exactly one JSON value to stdout (and errors as JSON to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Act as if it were this moment, e.g. "2026-11-20 14:30" (Asia/Shanghai) or RFC 3339.
    #[arg(long, global = true, value_name = "TIME")]
    pub now: Option<String>,
    /// Act as this walker or staff member instead of the store's own person.
    #[arg(long = "as", global = true, value_name = "WALKER")]
    pub acting_as: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new store for this device and person.
    Init {
        #[arg(long)]
        device: String,
        #[arg(long)]
        walker: String,
        /// The role this store acts in until it joins a relay (which then says): hall (the
        /// default: a store made at the command line is a hall workstation's), walker, office,
        /// admin or leader. It decides which steps of the loop `request` may take.
        #[arg(long, value_parser = choice(gridwalk_core::model::Role::parse, "hall, walker, office, admin or leader"))]
        role: Option<gridwalk_core::model::Role>,
        /// For office staff: the office (责任科室) id they act for.
        #[arg(long)]
        office: Option<String>,
    },
    /// Import a reference list from a .csv or .xlsx file, whole or not at all.
    Import {
        /// areas, households, enterprises, departments or walkers.
        #[arg(value_parser = choice(ImportKind::parse, "areas, households, enterprises, departments or walkers"))]
        kind: ImportKind,
        file: PathBuf,
    },
    /// Fill the store with a generated demo town.
    Demo(DemoArgs),
    /// Visits (走访).
    #[command(subcommand)]
    Visit(VisitCommand),
    /// Requests (诉求) and their closed loop.
    #[command(subcommand)]
    Request(RequestCommand),
    /// The list indexes beside the documents.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Write requests to a file.
    #[command(subcommand)]
    Export(ExportCommand),
    /// List the grids, with the last visit to each.
    Grids,
    /// List a grid's households and enterprises by their last visit.
    Households {
        #[arg(long)]
        grid: String,
    },
    /// List the departments (责任科室) requests can be assigned to.
    Departments,
    /// Publish grid rosters (网格名册): each grid's reference lists as a document that the next
    /// sync carries to the devices of that grid.
    #[command(subcommand)]
    Roster(RosterCommand),
    /// Hall staff who sign in on a hall PC with their PIN.
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Check a request's evidence file (from `gridwalk-relay audit export`), offline.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// List the request categories and their codes.
    Categories,
    /// Enrol this device with the hall's relay using a one-time code.
    Join {
        /// The relay's address, e.g. http://192.168.1.10:8470
        #[arg(long)]
        relay: String,
        #[arg(long)]
        code: String,
        /// How the hall will see this device; the store's device id when left out.
        #[arg(long)]
        name: Option<String>,
    },
    /// Send what is waiting and receive what is new, with a progress line.
    Sync {
        /// First queue every document whole, e.g. to fill a new relay from this store.
        #[arg(long)]
        resend_all: bool,
    },
    /// The joined relay, what is still waiting to go up, and the last sync.
    SyncStatus,
    /// Photos of visits and requests (before / after), and their export.
    #[command(subcommand)]
    Photo(crate::photo_cmd::PhotoCommand),
    /// Reports: the dashboard, the list behind a figure, the monthly list (驻网办事清单).
    #[command(subcommand)]
    Report(crate::report_cmd::ReportCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that every receipt in the file follows from the one before it, that every change
    /// is the one its receipt names and that the request they make reads whole; print its steps.
    Verify { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// List the people who may work at the hall, and whether each has a PIN.
    List,
    /// Give a staff member a PIN (4 to 8 digits), or a new one. The relay keeps the staff list:
    /// it checks the PIN of whoever asks (`--as` her, `--my-pin`) and changes the list, which
    /// this store then pulls. An admin gives anyone a PIN (adding her to the list); anyone else
    /// changes only her own (`--my-pin` is then her old one). The first admin is named at the
    /// relay: `gridwalk-relay staff add-admin`.
    SetPin {
        #[arg(long)]
        person: String,
        #[arg(long)]
        pin: String,
        /// The PIN of whoever asks.
        #[arg(long)]
        my_pin: String,
    },
    /// Record the office (责任科室) a member of office staff resolves requests for (an admin's
    /// change, asked of the relay like `set-pin`).
    SetOffice {
        #[arg(long)]
        person: String,
        #[arg(long)]
        office: String,
        #[arg(long)]
        my_pin: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// Publish the rosters of the given grids, or of every grid.
    Publish {
        /// Grids to publish (comma-separated); every grid when left out.
        #[arg(long, value_delimiter = ',')]
        grid: Vec<String>,
    },
}

/// The demo town's size; each number left out is that of the street the seeds describe
/// (`DemoConfig::street`).
#[derive(Debug, Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long)]
    pub villages: Option<usize>,
    #[arg(long)]
    pub households: Option<usize>,
    #[arg(long)]
    pub enterprises: Option<usize>,
    #[arg(long)]
    pub enterprise_grids: Option<usize>,
    #[arg(long)]
    pub requests: Option<usize>,
    #[arg(long)]
    pub visits: Option<usize>,
    /// How many days of activity, ending now.
    #[arg(long)]
    pub days: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum VisitCommand {
    /// Record a visit; prints its id.
    Record(RecordVisitArgs),
    /// List visits, newest first.
    List(VisitListArgs),
    /// Show one visit.
    Show { id: String },
}

#[derive(Debug, Args)]
pub struct RecordVisitArgs {
    #[arg(long)]
    pub grid: String,
    #[arg(long = "micro-grid")]
    pub micro_grid: Option<String>,
    #[command(flatten)]
    pub target: VisitTargetArgs,
    /// daily (日常走访), sweep (地毯式走访) or evening_talk (昼访夜谈).
    #[arg(long, value_parser = choice(VisitKind::parse, "daily, sweep or evening_talk"))]
    pub kind: VisitKind,
    /// When the visit happened; now when not given.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Another cadre who went along (walker id); repeat for more.
    #[arg(long = "with", value_name = "WALKER_ID")]
    pub with: Vec<String>,
    /// Someone else who came, e.g. "村书记 王建国"; repeat for more.
    #[arg(long = "companion", value_name = "TEXT")]
    pub companions: Vec<String>,
    #[arg(long, default_value = "")]
    pub notes: String,
    /// Position as LAT,LON.
    #[arg(long, value_name = "LAT,LON", allow_hyphen_values = true)]
    pub gps: Option<String>,
}

/// Whom the visit was to: exactly one of these.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct VisitTargetArgs {
    #[arg(long, value_name = "ID")]
    pub household: Option<String>,
    #[arg(long, value_name = "ID")]
    pub enterprise: Option<String>,
    /// A place with no registered household, e.g. a lane or a market.
    #[arg(long, value_name = "ADDRESS")]
    pub place: Option<String>,
}

#[derive(Debug, Args)]
pub struct VisitListArgs {
    #[arg(long)]
    pub grid: Option<String>,
    /// Visits to this household or enterprise.
    #[arg(long, visible_alias = "target", value_name = "ID")]
    pub household: Option<String>,
    /// Visits this walker went on.
    #[arg(long)]
    pub walker: Option<String>,
    /// From this date or time on.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Up to and including this date or time.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Args)]
pub struct PageArgs {
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Raise a request; prints its id.
    Raise(RaiseArgs),
    /// 研判: accept for handling.
    Accept { id: String },
    /// 研判: a duplicate of another request, which carries on.
    Merge {
        id: String,
        #[arg(long, value_name = "OTHER")]
        into: String,
    },
    /// 研判: not a matter for the hall; the reason is told to the resident.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// 研判: settled on the spot (当场解决).
    SolveOnSpot {
        id: String,
        #[arg(long)]
        note: String,
    },
    /// 交办: give it to a department with a deadline.
    Assign {
        id: String,
        #[command(flatten)]
        assignment: AssignmentArgs,
    },
    /// Hand an assigned request to another office or person, or give it a new deadline.
    Reassign {
        id: String,
        #[command(flatten)]
        assignment: AssignmentArgs,
        #[arg(long)]
        reason: String,
    },
    /// Raise it to a higher tier (三级联动).
    Escalate {
        id: String,
        /// village, town or county (三级联动).
        #[arg(long, value_parser = choice(Level::parse, "village, town or county"))]
        level: Level,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// 办理: report progress.
    Progress {
        id: String,
        #[arg(long)]
        note: String,
    },
    /// 办结: say what was done.
    Resolve {
        id: String,
        #[arg(long)]
        note: String,
        /// Hash of an "after" photo; repeat for more.
        #[arg(long = "photo", value_name = "HASH")]
        photos: Vec<String>,
    },
    /// 反馈: the resident was told.
    Feedback {
        id: String,
        #[arg(long)]
        note: String,
    },
    /// 评价: the resident's verdict; not_satisfied reopens the request.
    Rate {
        id: String,
        /// satisfied (满意), basically (基本满意) or not_satisfied (不满意).
        #[arg(value_parser = choice(Rating::parse, "satisfied, basically or not_satisfied"))]
        rating: Rating,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Open a finished request again.
    Reopen {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Close it for good.
    Close {
        id: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Record a decision of a grid deliberation meeting (议事) about the request.
    MeetingDecision {
        id: String,
        /// The meeting, e.g. "马社村网格议事会 2026-11-05".
        #[arg(long)]
        meeting: String,
        #[arg(long)]
        decision: String,
    },
    /// List requests.
    List(RequestListArgs),
    /// Search requests by address or description (Chinese works, two characters and up).
    Search(RequestSearchArgs),
    /// Show a request with its whole history.
    Show { id: String },
}

#[derive(Debug, Args)]
pub struct RaiseArgs {
    #[arg(long)]
    pub grid: String,
    #[arg(long = "micro-grid")]
    pub micro_grid: Option<String>,
    /// A category code; see `gridwalk categories`.
    #[arg(long)]
    pub category: String,
    #[arg(long)]
    pub description: String,
    /// low, normal, high or urgent.
    #[arg(long, default_value = "normal", value_parser = choice(Urgency::parse, "low, normal, high or urgent"))]
    pub urgency: Urgency,
    /// Where the problem is; the reporter's household address when not given.
    #[arg(long)]
    pub address: Option<String>,
    /// Position as LAT,LON.
    #[arg(long, value_name = "LAT,LON", allow_hyphen_values = true)]
    pub gps: Option<String>,
    #[command(flatten)]
    pub reporter: ReporterArgs,
    /// The resident's phone.
    #[arg(long, requires = "reporter")]
    pub phone: Option<String>,
    /// The resident's household id.
    #[arg(long, requires = "reporter")]
    pub household: Option<String>,
    /// The enterprise's contact person.
    #[arg(long, requires = "enterprise")]
    pub contact: Option<String>,
    /// visit, walk_in or phone; visit when --visit is given, else walk_in.
    #[arg(long, value_parser = choice(Source::parse, "visit, walk_in or phone"))]
    pub source: Option<Source>,
    /// The visit it was raised on.
    #[arg(long, value_name = "VISIT_ID")]
    pub visit: Option<String>,
}

/// Who raised the request: exactly one of these.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ReporterArgs {
    /// The resident's name.
    #[arg(long, value_name = "NAME")]
    pub reporter: Option<String>,
    /// An enterprise (its id) raised it.
    #[arg(long, value_name = "ID")]
    pub enterprise: Option<String>,
    /// The resident stays anonymous.
    #[arg(long)]
    pub anonymous: bool,
}

#[derive(Debug, Args)]
pub struct AssignmentArgs {
    #[arg(long)]
    pub department: String,
    /// The responsible person, when one is named.
    #[arg(long)]
    pub person: Option<String>,
    /// A date means the end of that day.
    #[arg(long, value_name = "DATE")]
    pub deadline: String,
    /// village, town or county (三级联动).
    #[arg(long, value_parser = choice(Level::parse, "village, town or county"))]
    pub level: Level,
}

/// Filters shared by request lists, searches and exports.
#[derive(Debug, Args)]
pub struct RequestFilterArgs {
    /// Requests of this grid; repeat for more.
    #[arg(long = "grid", value_name = "GRID")]
    pub grids: Vec<String>,
    /// Requests in this status (new, accepted, assigned, resolved, feedback_given, rated, closed,
    /// rejected, merged, reopened); repeat or separate with commas.
    #[arg(
        long = "status",
        value_name = "STATUS",
        value_delimiter = ',',
        value_parser = choice(Status::parse, "new, accepted, assigned, resolved, feedback_given, rated, closed, rejected, merged or reopened")
    )]
    pub statuses: Vec<Status>,
    /// A category code.
    #[arg(long)]
    pub category: Option<String>,
    #[arg(long)]
    pub department: Option<String>,
    /// Only open requests whose deadline has passed.
    #[arg(long)]
    pub overdue: bool,
    /// Only those whose reporter is owed the outcome (待反馈): resolved, or merged into a
    /// resolved request and not yet told.
    #[arg(long)]
    pub owed_feedback: bool,
    /// Raised on or after this date or time.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Raised up to and including this date or time.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    #[arg(long, value_enum, default_value_t = SortOrder::Updated)]
    pub sort: SortOrder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortOrder {
    /// Most recently changed first.
    Updated,
    /// Earliest deadline first.
    Deadline,
    /// Most recently raised first.
    Created,
}

#[derive(Debug, Args)]
pub struct RequestListArgs {
    #[command(flatten)]
    pub filter: RequestFilterArgs,
    /// Text in the address or description.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Args)]
pub struct RequestSearchArgs {
    /// Text in the address or description.
    pub text: String,
    #[command(flatten)]
    pub filter: RequestFilterArgs,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Throw the list indexes away and rebuild them from the documents.
    Rebuild,
    /// Check the database's integrity and that the index matches the documents.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Export the requests matching the filters.
    Requests(ExportRequestsArgs),
    /// Write the reference lists (areas, households, enterprises, departments, walkers) as CSV
    /// files that `gridwalk import` reads: what a walker's phone is given at the hall.
    Reference {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Only these grids (and the areas above them); every grid when left out.
        #[arg(long = "grid")]
        grids: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct ExportRequestsArgs {
    /// csv, xlsx or json; taken from the file's extension when not given.
    #[arg(long, value_parser = choice(ExportFormat::parse, "csv, xlsx or json"))]
    pub format: Option<ExportFormat>,
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub filter: RequestFilterArgs,
    /// Text in the address or description.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
}

/// A clap value parser from one of the core's `parse` functions; `expected` lists the values
/// the error message offers.
fn choice<T: 'static>(
    parse: fn(&str) -> Option<T>,
    expected: &'static str,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |text| parse(text).ok_or_else(|| format!("use {expected}"))
}
