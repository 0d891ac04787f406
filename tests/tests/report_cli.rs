//! `gridwalk report ...` (issue 6) as a user runs it: the dashboard, a drill-down and the monthly
//! list with its XLSX export, on a small generated town, through the real binary.

use std::path::PathBuf;
use std::process::Command;

use calamine::{open_workbook, Reader, Xlsx};
use serde_json::Value;

/// The `gridwalk` binary of this build, beside this test's executable (see `cli.rs`).
fn gridwalk_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.ancestors()
        .skip(1)
        .map(|dir| dir.join(format!("gridwalk{}", std::env::consts::EXE_SUFFIX)))
        .find(|candidate| candidate.is_file())
        .expect("the gridwalk binary; build it first with `cargo build -p gridwalk-cli`")
}

fn run(dir: &tempfile::TempDir, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(gridwalk_bin())
        .arg("--store")
        .arg(dir.path().join("town.db"))
        .args(["--now", "2026-11-20 16:00"])
        .args(args)
        .current_dir(dir.path())
        .env_remove("GRIDWALK_STORE")
        .output()
        .expect("gridwalk runs");
    (out.status.success(), String::from_utf8(out.stdout).expect("UTF-8"), String::from_utf8(out.stderr).expect("UTF-8"))
}

fn json(dir: &tempfile::TempDir, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = run(dir, &all);
    assert!(ok, "gridwalk {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("gridwalk {args:?} printed no JSON ({e}):\n{out}"))
}

#[test]
fn dashboard_drill_and_monthly_list_with_xlsx_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    json(&dir, &["init", "--device", "hall-pc", "--walker", "hall-1"]);
    json(
        &dir,
        &[
            "demo",
            "--villages",
            "2",
            "--households",
            "200",
            "--enterprises",
            "6",
            "--enterprise-grids",
            "1",
            "--requests",
            "150",
            "--visits",
            "200",
            "--days",
            "120",
        ],
    );

    let d = json(&dir, &["report", "dashboard"]);
    assert_eq!(d["figures"]["total"], 150);
    let resolved = d["figures"]["resolved"].as_i64().unwrap();
    let handled = d["figures"]["handled"].as_i64().unwrap();
    let rate = d["figures"]["resolution_rate"].as_f64().unwrap();
    assert!((rate - resolved as f64 / handled as f64).abs() < 1e-12);
    let by_grid: i64 = d["by_grid"].as_array().unwrap().iter().map(|b| b["total"].as_i64().unwrap()).sum();
    assert_eq!(by_grid, 150);

    // The figure and the list behind it agree.
    let list = json(&dir, &["report", "drill", "resolved"]);
    assert_eq!(list["count"].as_i64().unwrap(), resolved);
    assert_eq!(list["ids"].as_array().unwrap().len() as i64, resolved);
    let overdue = json(&dir, &["report", "drill", "overdue", "--village", "v01"]);
    let village = json(&dir, &["report", "dashboard", "--village", "v01"]);
    assert_eq!(overdue["count"], village["figures"]["overdue"]);

    // A period: only requests raised within it.
    let october = json(&dir, &["report", "dashboard", "--from", "2026-10-01", "--to", "2026-10-31"]);
    let months: Vec<&str> = october["by_month"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["total"].as_i64().unwrap() > 0)
        .map(|p| p["month"].as_str().unwrap())
        .collect();
    assert_eq!(months, ["2026-10"]);

    // The monthly list, on screen and as XLSX.
    let m = json(&dir, &["report", "monthly", "--month", "2026-10", "--xlsx", "清单.xlsx"]);
    // October's own requests (the summary's total), and the earlier ones still open, carried over.
    let rows = m["list"]["rows"].as_array().unwrap();
    let own = rows.iter().filter(|r| r["carried_over"] == false).count() as i64;
    let carried = rows.iter().filter(|r| r["carried_over"] == true).count() as i64;
    assert_eq!(own, october["figures"]["total"].as_i64().unwrap());
    assert_eq!(m["list"]["total"]["total"].as_i64().unwrap(), own);
    assert_eq!(m["list"]["total"]["carried_over"].as_i64().unwrap(), carried);
    let sheets: Vec<String> =
        m["xlsx"]["sheets"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    assert_eq!(sheets[0], "汇总");
    let book: Xlsx<_> = open_workbook(dir.path().join("清单.xlsx")).unwrap();
    assert_eq!(book.sheet_names(), sheets);

    let (ok, text, _) = run(&dir, &["report", "monthly", "--month", "2026-10", "--grid", "v01-g01"]);
    assert!(ok && text.contains("驻网办事清单") && text.contains("完成情况"), "{text}");

    // Mistakes are input errors with the core's code.
    for args in [
        &["report", "monthly", "--month", "2026-13"][..],
        &["report", "dashboard", "--grid", "nowhere"][..],
        &["report", "drill", "happiness"][..],
    ] {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (ok, _, err) = run(&dir, &all);
        assert!(!ok, "{args:?} should fail");
        let e: Value = serde_json::from_str(err.trim()).unwrap();
        assert!(e["code"].as_str().is_some(), "{err}");
    }
}
