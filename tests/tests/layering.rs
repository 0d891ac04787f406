//! Tidy check: which crate may depend on which (ARCHITECTURE.md, "Architecture invariants").
//!
//! The relay reads documents and speaks the protocol; it must not link the phone's store, photo
//! codecs, spreadsheets or HTTP client, or a change there would silently change what the relay
//! accepts. The document crate must stay free of storage and network so both sides can share it.
//! The rules are checked on the real dependency graph `cargo metadata` reports (normal
//! dependencies, followed transitively; dev- and build-dependencies are not shipped).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// One rule: the crates `krate` may not reach through its normal dependencies.
struct Rule {
    krate: &'static str,
    forbidden: &'static [&'static str],
    why: &'static str,
}

/// The phone's leaves: photo codecs, spreadsheets, pinyin, the HTTP client, the device store.
const DEVICE_ONLY: &[&str] = &[
    "gridwalk-core",
    "gridwalk-photo",
    "gridwalk-sync",
    "gridwalk-transport",
    "gridwalk-app-api",
    "image",
    "zune-jpeg",
    "fast_image_resize",
    "jpeg-encoder",
    "calamine",
    "rust_xlsxwriter",
    "pinyin",
    "reqwest",
];

const RULES: &[Rule] = &[
    Rule {
        krate: "gridwalk-doc",
        forbidden: &[
            "rusqlite",
            "libsqlite3-sys",
            "reqwest",
            "hyper",
            "tokio",
            "axum",
            "image",
            "calamine",
            "rust_xlsxwriter",
            "pinyin",
            "gridwalk-core",
            "gridwalk-relay",
        ],
        why: "documents own no storage and no network, so the device and the relay can share them",
    },
    Rule {
        krate: "gridwalk-protocol",
        forbidden: &[
            "rusqlite",
            "libsqlite3-sys",
            "reqwest",
            "hyper",
            "tokio",
            "axum",
            "automerge",
            "gridwalk-doc",
            "gridwalk-core",
            "gridwalk-relay",
        ],
        why: "the wire types are plain data both sides encode the same way",
    },
    Rule {
        krate: "gridwalk-sync",
        forbidden: &[
            "rusqlite",
            "libsqlite3-sys",
            "reqwest",
            "hyper",
            "tokio",
            "axum",
            "image",
            "calamine",
            "rust_xlsxwriter",
            "pinyin",
            "gridwalk-core",
            "gridwalk-relay",
        ],
        why: "the sync session is a state machine over a store trait: no SQLite, no network, no clock",
    },
    Rule {
        krate: "gridwalk-photo",
        forbidden: &[
            "rusqlite",
            "libsqlite3-sys",
            "reqwest",
            "hyper",
            "tokio",
            "axum",
            "automerge",
            "calamine",
            "rust_xlsxwriter",
            "gridwalk-doc",
            "gridwalk-core",
            "gridwalk-relay",
        ],
        why: "turning a camera file into a JPEG needs only the codecs: no store, no documents, no network",
    },
    Rule {
        krate: "gridwalk-relay",
        forbidden: DEVICE_ONLY,
        why: "the relay depends on the document and protocol crates only",
    },
    Rule {
        krate: "gridwalk-core",
        forbidden: &[
            "gridwalk-relay",
            "gridwalk-app-api",
            "gridwalk-transport",
            "axum",
            "tauri",
            "reqwest",
            "hyper",
            "tokio",
        ],
        why: "the device's core knows no server, no window and no network (its HTTP client is gridwalk-transport)",
    },
    Rule {
        krate: "gridwalk-app-api",
        forbidden: &["gridwalk-relay", "tauri"],
        why: "the app's commands run the same in the window and the browser bridge",
    },
];

/// Package name by id, and each package's normal dependencies (by id).
struct Graph {
    names: BTreeMap<String, String>,
    normal: BTreeMap<String, Vec<String>>,
}

impl Graph {
    fn from_metadata(meta: &Value) -> Graph {
        let mut names = BTreeMap::new();
        for p in meta["packages"].as_array().expect("packages") {
            names.insert(p["id"].as_str().unwrap().to_string(), p["name"].as_str().unwrap().to_string());
        }
        let mut normal = BTreeMap::new();
        for node in meta["resolve"]["nodes"].as_array().expect("resolve.nodes") {
            let id = node["id"].as_str().unwrap().to_string();
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()))
                .map(|d| d["pkg"].as_str().unwrap().to_string())
                .collect();
            normal.insert(id, deps);
        }
        Graph { names, normal }
    }

    /// Every package `name` reaches through normal dependencies, with one path to each.
    fn reachable(&self, name: &str) -> BTreeMap<String, Vec<String>> {
        let start = self.names.iter().find(|(_, n)| *n == name).map(|(id, _)| id.clone());
        let Some(start) = start else { panic!("no package named {name} in the workspace") };
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut queue = vec![(start.clone(), vec![name.to_string()])];
        let mut visited = BTreeSet::from([start]);
        while let Some((id, path)) = queue.pop() {
            for dep in self.normal.get(&id).into_iter().flatten() {
                if visited.insert(dep.clone()) {
                    let dep_name = self.names[dep].clone();
                    let mut p = path.clone();
                    p.push(dep_name.clone());
                    seen.entry(dep_name).or_insert_with(|| p.clone());
                    queue.push((dep.clone(), p));
                }
            }
        }
        seen
    }
}

/// Every broken rule, as a sentence naming the path that breaks it.
fn violations(graph: &Graph, rules: &[Rule]) -> Vec<String> {
    let mut out = Vec::new();
    for rule in rules {
        let reach = graph.reachable(rule.krate);
        for f in rule.forbidden {
            if let Some(path) = reach.get(*f) {
                out.push(format!("{} may not depend on {f} ({}), but: {}", rule.krate, rule.why, path.join(" → ")));
            }
        }
    }
    out
}

fn workspace_metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Filtered to the machine's own platform: the packages only other platforms use (Android's,
    // Windows') may not have been downloaded, and reading their manifests would need them. The
    // rules name no platform-specific crate.
    let host = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "host-tuple"])
        .output()
        .expect("rustc runs");
    let host = String::from_utf8(host.stdout).expect("a target name").trim().to_string();
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked", "--filter-platform", &host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn every_crate_depends_only_on_what_the_layering_allows() {
    let graph = Graph::from_metadata(&workspace_metadata());
    let broken = violations(&graph, RULES);
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
    // The relay's own workspace dependencies are exactly the two shared crates.
    let relay_ws: BTreeSet<String> =
        graph.reachable("gridwalk-relay").into_keys().filter(|n| n.starts_with("gridwalk-")).collect();
    assert_eq!(relay_ws, BTreeSet::from(["gridwalk-doc".to_string(), "gridwalk-protocol".to_string()]));
}

#[test]
fn the_layering_check_names_a_forbidden_dependency_when_one_is_added() {
    // The real graph with one edge added, as if someone gave the relay the device's core.
    let mut graph = Graph::from_metadata(&workspace_metadata());
    let id_of = |g: &Graph, name: &str| g.names.iter().find(|(_, n)| *n == name).unwrap().0.clone();
    let (relay, core) = (id_of(&graph, "gridwalk-relay"), id_of(&graph, "gridwalk-core"));
    graph.normal.get_mut(&relay).unwrap().push(core);
    let broken = violations(&graph, RULES);
    assert!(
        broken.iter().any(|v| v.starts_with("gridwalk-relay may not depend on gridwalk-core")),
        "the added edge is reported: {broken:?}"
    );
    // The sync session given the device's store would be named too.
    let mut graph = Graph::from_metadata(&workspace_metadata());
    let sync = id_of(&graph, "gridwalk-sync");
    let core = id_of(&graph, "gridwalk-core");
    graph.normal.get_mut(&sync).unwrap().push(core);
    let sync_broken = violations(&graph, RULES);
    assert!(
        sync_broken
            .iter()
            .any(|v| v.starts_with("gridwalk-sync may not depend on rusqlite") && v.contains("gridwalk-core")),
        "the sync crate reaching SQLite through the core is reported: {sync_broken:?}"
    );
    // And a transitive one: the photo codecs reached through the core are named with the path.
    assert!(
        broken.iter().any(|v| v.starts_with("gridwalk-relay may not depend on image") && v.contains("gridwalk-core")),
        "the path through the core is named: {broken:?}"
    );
    // The core given the HTTP client: reqwest is named, through the transport crate.
    let mut graph = Graph::from_metadata(&workspace_metadata());
    let core = id_of(&graph, "gridwalk-core");
    let transport = id_of(&graph, "gridwalk-transport");
    graph.normal.get_mut(&core).unwrap().push(transport);
    let core_broken = violations(&graph, RULES);
    assert!(
        core_broken
            .iter()
            .any(|v| v.starts_with("gridwalk-core may not depend on reqwest") && v.contains("gridwalk-transport")),
        "the core reaching the network through the transport is reported: {core_broken:?}"
    );
}
