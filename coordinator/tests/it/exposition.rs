//! The `/metrics` page of a real binary held to the README's tables of series and to the Grafana
//! dashboard. The worker's tests include this file too (`#[path]`), so both binaries are read by the
//! same rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// The Content-Type the Prometheus text format, version 0.0.4, asks for.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The README's heading of the coordinator's table, and of the worker's.
pub const COORDINATOR_TABLE: &str = "Coordinator series:";
pub const WORKER_TABLE: &str = "Worker series:";

/// One metric family on a page or in the README: its type and its label names (`le` aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub kind: String,
    pub labels: BTreeSet<String>,
}

/// A family as the page shows it, with its sample lines.
#[derive(Debug)]
pub struct Exported {
    pub family: Family,
    pub samples: Vec<String>,
}

/// The repository's root (this file's crate is one level below it).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the repository")
}

/// `GET /metrics` on `addr`, retried until something answers (a generous deadline: the binary is
/// starting): the Content-Type header and the body.
pub fn scrape(addr: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(answer) = get(addr) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "nothing answered on {addr}/metrics"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(addr: &str) -> Option<(String, String)> {
    let response = dualrig_testkit::http_get(addr, "/metrics")?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "metrics answered {head}");
    let reply = dualrig_testkit::HttpOk {
        head: head.to_owned(),
        body: body.to_owned(),
    };
    let content_type = reply.header("content-type").unwrap_or_default().to_owned();
    Some((content_type, reply.body))
}

/// Every family on a text-format page, by name. Panics on a sample of no declared family.
pub fn families(page: &str) -> BTreeMap<String, Exported> {
    let mut found: BTreeMap<String, Exported> = BTreeMap::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            found.insert(
                name.to_owned(),
                Exported {
                    family: Family {
                        kind: kind.to_owned(),
                        labels: BTreeSet::new(),
                    },
                    samples: Vec::new(),
                },
            );
        }
    }
    for line in page.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let end = line.find(['{', ' ']).expect("a sample line has a value");
        let sample = &line[..end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| sample.strip_suffix(suffix))
            .find(|base| {
                found
                    .get(*base)
                    .is_some_and(|e| e.family.kind == "histogram")
            })
            .unwrap_or(sample);
        let exported = found
            .get_mut(name)
            .unwrap_or_else(|| panic!("sample of no declared family: {line}"));
        if let Some(labels) = line[end..].strip_prefix('{') {
            let labels = &labels[..labels.find('}').expect("labels close")];
            for pair in labels.split(',') {
                let (label, _) = pair.split_once('=').expect("label=value");
                if label != "le" {
                    exported.family.labels.insert(label.to_owned());
                }
            }
        }
        exported.samples.push(line.to_owned());
    }
    found
}

/// The README's table under `heading`: each series with its type and label names.
pub fn readme_table(heading: &str) -> BTreeMap<String, Family> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let mut lines = readme.lines().skip_while(|l| l.trim() != heading);
    assert!(lines.next().is_some(), "README has no {heading:?} table");
    let rows: Vec<&str> = lines
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with('|'))
        .filter(|l| l.starts_with("| `"))
        .collect();
    assert!(!rows.is_empty(), "README's {heading:?} table is empty");
    rows.iter()
        .map(|row| {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells[0].trim_matches('`').to_owned();
            let labels = cells[2]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            let family = Family {
                kind: cells[1].to_owned(),
                labels,
            };
            (name, family)
        })
        .collect()
}

/// A series with one line per worker id, which appears once that worker is known.
pub fn per_worker(family: &Family) -> bool {
    family.labels.contains("worker")
}

/// The page a binary serves right after start, held to its README table: the versioned
/// Content-Type; every listed series present (per-worker ones aside) with the listed type and labels;
/// nothing exported that is not listed; buckets on every histogram; no summary anywhere.
pub fn check_page_at_start(
    binary: &str,
    (content_type, page): &(String, String),
    listed: &BTreeMap<String, Family>,
) -> BTreeMap<String, Exported> {
    assert_eq!(content_type, TEXT_FORMAT, "{binary}'s Content-Type");
    let exported = families(page);
    let unlisted: Vec<&String> = exported
        .keys()
        .filter(|n| !listed.contains_key(*n))
        .collect();
    assert!(
        unlisted.is_empty(),
        "{binary} exports series the README does not list: {unlisted:?}"
    );
    let missing: Vec<&String> = listed
        .iter()
        .filter(|(n, f)| !per_worker(f) && !exported.contains_key(*n))
        .map(|(n, _)| n)
        .collect();
    assert!(
        missing.is_empty(),
        "the README lists series {binary} does not export at start: {missing:?}"
    );
    for (name, e) in &exported {
        assert_eq!(&e.family, &listed[name], "{name}: README vs {binary}");
        assert!(!e.samples.is_empty(), "{name} has no samples");
        if e.family.kind == "histogram" {
            assert!(
                e.samples.iter().any(
                    |s| s.starts_with(&format!("{name}_bucket{{")) && s.contains("le=\"+Inf\"")
                ),
                "{name} has no buckets: {:?}",
                e.samples
            );
        }
    }
    assert!(
        !page.contains("quantile="),
        "{binary} exports a summary:\n{page}"
    );
    exported
}

/// One panel of the dashboard: its title and the metric names its queries read.
pub struct Panel {
    pub title: String,
    pub names: BTreeSet<String>,
}

/// The panels of `dashboards/dualrig.json`, checked for what an import needs: the datasource is
/// the `DS_PROMETHEUS` input everywhere, and every panel has a query.
pub fn dashboard_panels() -> Vec<Panel> {
    let path = repo_root().join("dashboards/dualrig.json");
    let text = std::fs::read_to_string(&path).expect("dashboards/dualrig.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "the dashboard asks for a Prometheus datasource as DS_PROMETHEUS: {inputs:?}"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty(), "the dashboard has no panels");
    panels
        .iter()
        .map(|panel| {
            let title = panel["title"].as_str().expect("title").to_owned();
            assert_eq!(
                panel["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel {title:?}'s datasource"
            );
            let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
            assert!(!targets.is_empty(), "panel {title:?} has no query");
            let mut names = BTreeSet::new();
            for target in targets {
                assert_eq!(
                    target["datasource"]["uid"], "${DS_PROMETHEUS}",
                    "panel {title:?}'s query datasource"
                );
                let expr = target["expr"].as_str().expect("expr");
                let found = metric_names(expr);
                assert!(!found.is_empty(), "panel {title:?}: {expr} reads no series");
                names.extend(found);
            }
            Panel { title, names }
        })
        .collect()
}

/// The `dualrig_…` names in a PromQL expression, as written (suffixes kept).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("dualrig_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    names
}

/// The family a queried name reads: itself, or the histogram whose `_bucket`, `_sum` or `_count`
/// it is, among `families`.
pub fn family_of<'a>(name: &'a str, families: &BTreeMap<String, Family>) -> &'a str {
    if families.contains_key(name) {
        return name;
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| families.get(*base).is_some_and(|f| f.kind == "histogram"))
        .unwrap_or(name)
}

/// Every name the dashboard queries is either exported by this binary at start (`exported`) or
/// listed in the other binary's table (whose own test holds it to what that binary exports).
pub fn check_dashboard(
    binary: &str,
    exported: &BTreeMap<String, Exported>,
    other_table: &BTreeMap<String, Family>,
) {
    let ours: BTreeMap<String, Family> = exported
        .iter()
        .map(|(n, e)| (n.clone(), e.family.clone()))
        .collect();
    let mut read_here = 0;
    for panel in dashboard_panels() {
        for name in &panel.names {
            let mine = family_of(name, &ours);
            let theirs = family_of(name, other_table);
            if ours.contains_key(mine) {
                read_here += 1;
            } else {
                assert!(
                    other_table.get(theirs).is_some_and(|f| !per_worker(f)),
                    "panel {:?} reads {name}, which no binary exports at start",
                    panel.title
                );
            }
        }
    }
    assert!(
        read_here > 0,
        "the dashboard reads nothing {binary} exports"
    );
}
