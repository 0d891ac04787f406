//! The `gridwalk` binary, run as a user or a script runs it: a real process on a real store file
//! in a temporary directory, checked by its exit code, its output and the file it leaves behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

/// The `gridwalk` binary of this build. `CARGO_BIN_EXE_*` only names binaries of the test's own
/// package, so it is found beside this test executable instead: tests run from
/// `target/<profile>/deps/`, binaries sit in `target/<profile>/`.
fn gridwalk_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.ancestors()
        .skip(1)
        .map(|dir| dir.join(format!("gridwalk{}", std::env::consts::EXE_SUFFIX)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no gridwalk binary found above {}; build it first with `cargo build -p gridwalk-cli` \
                 (`cargo test --workspace` builds it by itself)",
                exe.display()
            )
        })
}

const AREAS_CSV: &str = "\
id,kind,name,parent
T1,town,曹桥街道,
V1,village,马厩村,T1
G1,grid,马厩村第一网格,V1
G2,grid,马厩村第二网格,V1
";

const HOUSEHOLDS_CSV: &str = "\
编号,网格,地址,户主,电话,特殊人群
H1,G1,马厩村1组12号,王建国,13800000001,独居老人
H2,G1,马厩村1组15号,李秀英,,
H3,G2,马厩村2组3号,张德明,,
";

const DEPARTMENTS_CSV: &str = "\
id,name,level
D1,城建办,town
D2,市住建局,county
";

/// A store in a temporary directory, with the area, household and department lists imported.
struct Town {
    dir: TempDir,
}

impl Town {
    fn new() -> Town {
        let town = Town::empty();
        town.ok(&["init", "--device", "dev-hall", "--walker", "w1"]);
        for (kind, text) in [("areas", AREAS_CSV), ("households", HOUSEHOLDS_CSV), ("departments", DEPARTMENTS_CSV)] {
            let file = town.write(&format!("{kind}.csv"), text);
            town.ok(&["import", kind, file.to_str().unwrap()]);
        }
        town
    }

    /// A temporary directory with no store in it yet.
    fn empty() -> Town {
        Town { dir: tempfile::tempdir().expect("a temporary directory") }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("gridwalk.db")
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(gridwalk_bin())
            .arg("--store")
            .arg(self.store())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("GRIDWALK_STORE")
            .output()
            .expect("gridwalk runs")
    }

    /// Runs a command that must succeed; its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gridwalk {args:?} failed with {:?}:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output").trim().to_string()
    }

    /// Runs a command with `--json` that must succeed; the one JSON value it printed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("gridwalk {args:?} printed no JSON ({e}):\n{text}"))
    }

    /// Runs a command that must fail; its exit code and stderr.
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "gridwalk {args:?} should have failed");
        assert!(out.stdout.is_empty(), "a failed command printed to stdout: {}", String::from_utf8_lossy(&out.stdout));
        (out.status.code().expect("an exit code"), String::from_utf8(out.stderr).expect("UTF-8 errors"))
    }

    /// The bytes of the store file and of its write-ahead log (empty when there is none).
    fn files(&self) -> (Vec<u8>, Vec<u8>) {
        let db = std::fs::read(self.store()).expect("the store file");
        let wal = std::fs::read(wal_path(&self.store())).unwrap_or_default();
        (db, wal)
    }

    /// Raises a streetlight request in G1 and returns its id.
    fn raise(&self, description: &str, address: &str) -> String {
        self.ok(&[
            "--now",
            "2026-11-20 10:05",
            "request",
            "raise",
            "--grid",
            "G1",
            "--category",
            "streetlight",
            "--description",
            description,
            "--address",
            address,
            "--anonymous",
        ])
    }
}

fn wal_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn ids(rows: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        rows.as_array().expect("a JSON array").iter().map(|r| r["id"].as_str().expect("an id").to_string()).collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[test]
fn a_request_goes_round_the_closed_loop_and_ends_rated_with_six_events() {
    let town = Town::new();
    let visit = town.ok(&[
        "--now",
        "2026-11-20 10:00",
        "visit",
        "record",
        "--grid",
        "G1",
        "--household",
        "H1",
        "--kind",
        "daily",
        "--companion",
        "村书记 王建国",
        "--notes",
        "户主反映村道没有路灯",
        "--gps",
        "30.70,121.01",
    ]);
    let request = town.ok(&[
        "--now",
        "2026-11-20 10:05",
        "request",
        "raise",
        "--grid",
        "G1",
        "--category",
        "streetlight",
        "--description",
        "村道没有路灯，晚上很黑，老人出行不便",
        "--reporter",
        "王建国",
        "--household",
        "H1",
        "--visit",
        &visit,
    ]);
    assert_ne!(request, visit);
    town.ok(&["--now", "2026-11-20 11:00", "request", "accept", &request]);
    town.ok(&[
        "--now",
        "2026-11-20 11:05",
        "request",
        "assign",
        &request,
        "--department",
        "D1",
        "--person",
        "张科长",
        "--deadline",
        "2026-11-30",
        "--level",
        "town",
    ]);
    town.ok(&["--now", "2026-11-25 16:00", "request", "resolve", &request, "--note", "安装太阳能路灯5盏"]);
    town.ok(&["--now", "2026-11-27 09:00", "request", "feedback", &request, "--note", "入户告知户主"]);
    let rated = town.json(&[
        "--now",
        "2026-11-27 09:05",
        "--as",
        "w2",
        "request",
        "rate",
        &request,
        "satisfied",
        "--comment",
        "晚上亮堂了",
    ]);
    assert_eq!(rated["status"], "rated");

    let view = town.json(&["request", "show", &request]);
    assert_eq!(view["state"]["status"], "rated");
    assert_eq!(view["state"]["rating"], "satisfied");
    assert_eq!(view["state"]["department"], "D1");
    assert_eq!(view["body"]["place"]["address"], "马厩村1组12号", "the household's address by default");
    let history = view["history"].as_array().expect("a history");
    assert_eq!(history.len(), 6, "{history:#?}");
    let types: Vec<&str> = history.iter().map(|e| e["action"]["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["collected", "triaged", "assigned", "resolved", "feedback_given", "rated"]);
    assert!(history.iter().all(|e| e["applied"] == true));
    assert_eq!(history[5]["by"], "w2", "--as acts as another person");
    assert_eq!(history[0]["by"], "w1");

    // The human view shows the same history, with the Chinese category label.
    let text = town.ok(&["request", "show", &request]);
    assert!(text.contains("路灯照明"), "{text}");
    assert!(text.contains("评价 rated satisfied"), "{text}");

    // The visit lists the request raised on it, and the household counts as visited.
    let visit_view = town.json(&["visit", "show", &visit]);
    assert_eq!(visit_view["body"]["requests_raised"][0], request.as_str());
    let places = town.json(&["--now", "2026-11-28", "households", "--grid", "G1"]);
    let due = |id: &str| {
        places.as_array().unwrap().iter().find(|p| p["id"] == id).unwrap_or_else(|| panic!("{id} is listed"))
            ["overdue_for_visit"]
            .clone()
    };
    assert_eq!(due("H1"), false);
    assert_eq!(due("H2"), true);
    let visits = town.json(&["visit", "list", "--household", "H1"]);
    assert_eq!(ids(&visits), vec![visit.clone()]);
    let none = town.json(&["visit", "list", "--grid", "G1", "--to", "2026-11-19"]);
    assert_eq!(none.as_array().unwrap().len(), 0);
    let that_day = town.json(&["visit", "list", "--grid", "G1", "--from", "2026-11-20", "--to", "2026-11-20"]);
    assert_eq!(ids(&that_day), vec![visit]);
}

#[test]
fn a_rating_before_resolution_is_refused_and_names_the_status() {
    let town = Town::new();
    let request = town.raise("路灯不亮", "马厩村1组");
    town.ok(&["request", "accept", &request]);
    let before = town.files();
    let (code, stderr) = town.fails(&["request", "rate", &request, "satisfied"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("'accepted'"), "the message names the status: {stderr}");
    assert_eq!(town.files(), before);
    let view = town.json(&["request", "show", &request]);
    assert_eq!(view["state"]["status"], "accepted");
    assert_eq!(view["history"].as_array().unwrap().len(), 2);
}

#[test]
fn json_errors_carry_the_core_code() {
    let town = Town::new();
    let cases: [(&[&str], &str); 4] = [
        (&["--json", "request", "show", "no-such-request"], "not_found"),
        (&["--json", "visit", "record", "--grid", "G9", "--place", "村口", "--kind", "daily"], "unknown_grid"),
        (
            &["--json", "visit", "record", "--grid", "G1", "--place", "村口", "--kind", "daily", "--at", "2026-13-45"],
            "invalid_input",
        ),
        (&["--json", "import", "areas", "missing.csv"], "import_file"),
    ];
    for (args, expected) in cases {
        let (code, stderr) = town.fails(args);
        assert_eq!(code, 1, "{args:?}");
        let error: Value =
            serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stderr}"));
        assert_eq!(error["code"], expected, "{args:?}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
}

#[test]
fn bad_input_fails_clearly_and_leaves_the_store_untouched() {
    let town = Town::new();
    let request = town.raise("路灯不亮", "马厩村1组");
    town.ok(&["request", "accept", &request]);
    let extra_field = town.write("extra_field.csv", "编号,网格,地址,户主\nH8,G1,一组,甲\nH9,G1,二组,乙,多余\n");
    let unknown_grid = town.write("unknown_grid.csv", "编号,网格,地址,户主\nH8,G1,一组,甲\nH9,G7,二组,乙\n");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["visit", "record", "--grid", "无此网格", "--household", "H1", "--kind", "daily"],
            "unknown grid '无此网格'",
        ),
        (
            vec!["request", "raise", "--grid", "G9", "--category", "parking", "--description", "乱停车", "--anonymous"],
            "unknown grid 'G9'",
        ),
        (
            vec!["request", "assign", &request, "--department", "D1", "--deadline", "2026-13-45", "--level", "town"],
            "'2026-13-45' is not a date",
        ),
        (
            vec!["visit", "record", "--grid", "G1", "--household", "H1", "--kind", "daily", "--at", "2026-13-45"],
            "'2026-13-45' is not a date",
        ),
        (vec!["import", "households", "missing.csv"], "no such file"),
        (vec!["import", "households", extra_field.to_str().unwrap()], "line 3"),
        // Row 2 is good and row 3 is not: the import is all or nothing, so row 2 is not kept.
        (vec!["import", "households", unknown_grid.to_str().unwrap()], "line 3"),
        (vec!["request", "accept", "no-such-request"], "unknown request 'no-such-request'"),
        (
            vec!["request", "assign", &request, "--department", "D9", "--deadline", "2026-12-01", "--level", "town"],
            "unknown department 'D9'",
        ),
        (vec!["request", "list", "--grid", "G9"], "unknown grid 'G9'"),
    ];
    for (args, expected) in cases {
        let (db_before, wal_before) = town.files();
        assert!(wal_before.is_empty(), "a finished command left a write-ahead log");
        let (code, stderr) = town.fails(&args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: expected '{expected}' in: {stderr}");
        let (db_after, wal_after) = town.files();
        assert!(db_after == db_before, "{args:?} changed the store file");
        assert!(wal_after.is_empty(), "{args:?} left {} bytes of write-ahead log", wal_after.len());
    }
    let households = town.json(&["households", "--grid", "G1"]);
    assert_eq!(ids(&households), ["H1", "H2"]);
}

#[test]
fn only_init_creates_a_store() {
    let town = Town::empty();
    let (code, stderr) = town.fails(&["request", "list"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("gridwalk init"), "{stderr}");
    let (_, stderr) = town.fails(&["import", "areas", "areas.csv"]);
    assert!(stderr.contains("not initialised"), "{stderr}");
    assert!(!town.store().exists(), "a command other than init created the store");

    town.ok(&["init", "--device", "d1", "--walker", "w1"]);
    assert!(town.store().is_file());
    let (code, stderr) = town.fails(&["init", "--device", "d2", "--walker", "w2"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn usage_errors_exit_with_two() {
    let town = Town::new();
    let request = town.raise("路灯不亮", "马厩村1组");
    let out = town.run(&["request", "rate", &request, "great"]);
    assert_eq!(out.status.code(), Some(2));
    let out = town.run(&["request", "raise", "--grid", "G1", "--category", "other", "--description", "x"]);
    assert_eq!(out.status.code(), Some(2), "a reporter or --anonymous is required");
    assert_eq!(town.json(&["request", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn households_import_from_an_xlsx_sheet_with_chinese_headers() {
    let town = Town::new();
    let path = town.dir.path().join("households.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let rows = [
        ["编号", "网格", "地址", "户主"],
        ["H21", "G2", "马厩村2组8号", "陈玉兰"],
        ["H22", "G2", "马厩村2组9号", "沈根林"],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, text) in row.iter().enumerate() {
            sheet.write_string(r as u32, c as u16, *text).unwrap();
        }
    }
    book.save(&path).unwrap();

    let report = town.json(&["import", "households", path.to_str().unwrap()]);
    assert_eq!(report["rows"], 2);
    let places = town.json(&["households", "--grid", "G2"]);
    assert_eq!(ids(&places), ["H21", "H22", "H3"]);
    let h21 = places.as_array().unwrap().iter().find(|p| p["id"] == "H21").unwrap();
    assert_eq!(h21["name"], "陈玉兰");
    assert_eq!(h21["address"], "马厩村2组8号");
    town.ok(&["visit", "record", "--grid", "G2", "--household", "H21", "--kind", "sweep"]);
}

#[test]
fn an_xlsx_export_reads_back_with_chinese_headers() {
    use calamine::{open_workbook_auto, Reader};

    let town = Town::new();
    let lamp = town.raise("村道没有路灯，晚上很黑", "马厩村1组路口");
    let other = town.raise("路灯白天亮晚上不亮", "马厩村1组桥头");
    town.ok(&["request", "accept", &other]);
    let out = town.dir.path().join("诉求清单.xlsx");
    let report = town.json(&["export", "requests", "--format", "xlsx", "--out", out.to_str().unwrap()]);
    assert_eq!(report["requests"], 2);

    let mut book = open_workbook_auto(&out).expect("the export opens");
    let sheet = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&sheet).unwrap();
    let rows: Vec<Vec<String>> = range.rows().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
    assert_eq!(rows[0], ["编号", "网格", "类别", "状态", "紧急程度", "责任科室", "责任人", "期限", "地址", "诉求内容"]);
    assert_eq!(rows.len(), 3);
    // The first column is the number people read, not the id.
    let lamp_row = rows.iter().find(|r| r[9] == "村道没有路灯，晚上很黑").expect("the request is exported");
    assert!(lamp_row[0].len() >= 10 && lamp_row[0] != lamp && lamp_row[0].contains('-'), "{}", lamp_row[0]);
    assert_eq!(lamp_row[1], "G1");
    assert_eq!(lamp_row[2], "路灯照明");
    assert_eq!(lamp_row[3], "new");
    assert_eq!(lamp_row[8], "马厩村1组路口");
    assert_eq!(lamp_row[9], "村道没有路灯，晚上很黑");

    // Filters apply to exports too, here as CSV.
    let csv = town.dir.path().join("accepted.csv");
    town.ok(&["export", "requests", "--out", csv.to_str().unwrap(), "--status", "accepted"]);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("路灯白天亮晚上不亮") && !text.contains("村道没有路灯"), "{text}");
}

#[test]
fn search_finds_chinese_words_of_two_and_of_more_characters() {
    let town = Town::new();
    let lamp = town.raise("村道没有路灯，晚上很黑", "马厩村1组");
    let ramp = town.raise("电瓶车库坡道没有雨棚，雨天容易滑倒", "马厩村2组");
    let bins = town.raise("垃圾桶满了没人清运", "马厩村3组");
    let search = |text: &str| ids(&town.json(&["request", "search", text]));

    assert_eq!(search("路灯"), vec![lamp.clone()]);
    assert_eq!(search("没有"), sorted(vec![lamp.clone(), ramp.clone()]));
    assert_eq!(search("车库坡道"), vec![ramp.clone()]);
    assert_eq!(search("垃圾桶满了"), vec![bins.clone()]);
    assert_eq!(search("马厩村2组"), vec![ramp.clone()], "the address is searched too");
    assert!(search("自来水").is_empty());
    assert_eq!(ids(&town.json(&["request", "list", "--search", "路灯"])), vec![lamp.clone()]);
    // Filters narrow a search.
    town.ok(&["request", "accept", &ramp]);
    let accepted = ids(&town.json(&["request", "search", "没有", "--status", "accepted"]));
    assert_eq!(accepted, vec![ramp]);
    let table = town.ok(&["request", "search", "路灯"]);
    assert!(table.contains(&lamp) && table.contains("路灯照明"), "{table}");
}

#[test]
fn overdue_is_judged_at_the_given_now() {
    let town = Town::new();
    let request = town.raise("路灯不亮", "马厩村1组");
    town.ok(&["request", "accept", &request]);
    town.ok(&["request", "assign", &request, "--department", "D1", "--deadline", "2026-11-25", "--level", "town"]);
    let overdue = |now: &str| ids(&town.json(&["--now", now, "request", "list", "--overdue"]));
    assert!(overdue("2026-11-25 23:00").is_empty(), "the deadline is the end of the day");
    assert_eq!(overdue("2026-11-26 08:00"), vec![request.clone()]);
    town.ok(&[
        "request",
        "escalate",
        &request,
        "--level",
        "county",
        "--department",
        "D2",
        "--reason",
        "需市住建局协调",
    ]);
    town.ok(&["request", "resolve", &request, "--note", "已修复", "--photo", "sha256-abc"]);
    assert!(overdue("2026-11-26 08:00").is_empty(), "a resolved request is not overdue");
}

#[test]
fn index_check_passes_and_catches_a_tampered_index() {
    let town = Town::new();
    let request = town.raise("路灯不亮", "马厩村1组");
    town.ok(&["request", "accept", &request]);
    town.ok(&["visit", "record", "--grid", "G1", "--place", "村口", "--kind", "evening_talk"]);
    let report = town.json(&["index", "check"]);
    assert_eq!(report["integrity"], "ok");
    assert_eq!(report["index_matches_documents"], true);
    assert_eq!(report["documents"], 2);

    let db = rusqlite::Connection::open(town.store()).unwrap();
    db.execute("UPDATE request_index SET status = 'closed' WHERE id = ?1", [&request]).unwrap();
    drop(db);
    // A failed check still prints its report, then fails.
    let out = town.run(&["--json", "index", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["index_matches_documents"], false);
    let error: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(error["code"], "check_failed");

    assert_eq!(town.json(&["index", "rebuild"])["documents"], 2);
    town.ok(&["index", "check"]);
    let view = town.json(&["request", "list", "--status", "accepted"]);
    assert_eq!(ids(&view), vec![request]);
}

#[test]
fn the_demo_town_fills_the_store() {
    let town = Town::empty();
    town.ok(&["init", "--device", "dev-demo", "--walker", "w1"]);
    let report = town.json(&[
        "--now",
        "2026-11-20",
        "demo",
        "--seed",
        "1",
        "--requests",
        "50",
        "--visits",
        "100",
        "--households",
        "100",
        "--villages",
        "2",
    ]);
    assert_eq!(report["requests"], 50);
    assert_eq!(report["households"], 100);
    let rows = town.json(&["request", "list", "--limit", "100"]);
    assert_eq!(rows.as_array().unwrap().len(), 50);
    assert!(!town.json(&["grids"]).as_array().unwrap().is_empty());
    town.ok(&["index", "check"]);
}

/// A store made for a walker (`init --role walker`) raises requests and reports on them, but
/// the command line refuses the hall's steps with `forbidden`, and `--as` cannot make it act
/// as someone else; the store is untouched by every refusal.
#[test]
fn a_walkers_store_refuses_the_halls_steps_and_acting_as_another_person() {
    let town = Town::empty();
    town.ok(&["init", "--device", "phone-1", "--walker", "w1", "--role", "walker"]);
    for (kind, text) in [("areas", AREAS_CSV), ("households", HOUSEHOLDS_CSV), ("departments", DEPARTMENTS_CSV)] {
        let file = town.write(&format!("{kind}.csv"), text);
        town.ok(&["import", kind, file.to_str().unwrap()]);
    }
    let raised: Value = serde_json::from_str(&town.ok(&[
        "--json",
        "request",
        "raise",
        "--grid",
        "G1",
        "--category",
        "streetlight",
        "--description",
        "路灯不亮",
        "--anonymous",
    ]))
    .unwrap();
    let id = raised["id"].as_str().expect("the new request's id").to_string();
    let files = town.files();
    for args in [
        vec!["--json", "request", "accept", &id],
        vec!["--json", "request", "close", &id],
        vec!["--json", "--as", "w2", "request", "progress", &id, "--note", "冒名"],
    ] {
        let (code, stderr) = town.fails(&args);
        assert_eq!(code, 1, "{args:?}");
        let error: Value = serde_json::from_str(stderr.trim()).unwrap();
        assert_eq!(error["code"], "forbidden", "{args:?}: {stderr}");
        assert_eq!(town.files(), files, "{args:?} left the store as it was");
    }
    // Her own steps go through: she settles on the spot what she received herself.
    town.ok(&["request", "solve-on-spot", &id, "--note", "当场帮忙联系了电工"]);
}
