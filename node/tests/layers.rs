//! The node crate's modules in layers (ARCHITECTURE.md): a module may use modules of its own
//! layer or below, never above, and no modules may use each other in a circle. Read from the
//! sources (`crate::<module>` paths outside test modules), so a change that breaks either
//! rule fails here, naming the arrow.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top; every top-level module of `node/src` is in exactly one layer.
const LAYERS: &[(&str, &[&str])] = &[
    ("foundation", &["error", "net", "ring", "units"]),
    (
        "data",
        &[
            "discovery",
            "entry",
            "keyspace",
            "limits",
            "source",
            "spec",
            "telemetry",
            "wire",
        ],
    ),
    (
        "parts",
        &[
            "catalog",
            "config",
            "fence",
            "flight",
            "otel",
            "protection",
            "registry",
            "sources",
            "stats",
            "store",
            "tls",
            "transport",
            "warmup",
        ],
    ),
    ("runtime", &["cluster", "space"]),
    ("engine", &["engine"]),
    (
        "edges",
        &["client", "fuzzing", "memnet", "node", "resp", "server"],
    ),
];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` without `#[cfg(test)] mod … { … }` blocks and line comments.
fn without_tests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        if !after.starts_with("mod ") {
            // A single test-only item: small, and kept.
            out.push_str("#[cfg(test)]");
            rest = &rest[at + "#[cfg(test)]".len()..];
            continue;
        }
        let Some(open) = after.find('{') else {
            rest = "";
            break;
        };
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level module → the top-level modules it uses.
fn graph() -> Graph {
    let dir = source_dir();
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let module_of = |path: &Path| -> Option<String> {
        let relative = path.strip_prefix(&dir).ok()?;
        let first = relative.components().next()?.as_os_str().to_str()?;
        let name = first.trim_end_matches(".rs");
        (name != "lib").then(|| name.to_owned())
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|p| module_of(p)).collect();
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for file in &files {
        let Some(from) = module_of(file) else {
            continue;
        };
        let text = without_tests(&std::fs::read_to_string(file).unwrap());
        for (at, _) in text.match_indices("crate::") {
            let used: String = text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if used != from && modules.contains(&used) {
                graph.get_mut(&from).unwrap().insert(used);
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// Modules that use each other in a circle (strongly connected components of more than one).
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    let reaches = |from: &str, to: &str| -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m.clone()) {
                stack.extend(graph[&m].iter().cloned());
            }
        }
        false
    };
    let mut found: Vec<Vec<String>> = Vec::new();
    for module in graph.keys() {
        if found.iter().any(|c| c.contains(module)) {
            continue;
        }
        let circle: Vec<String> = graph
            .keys()
            .filter(|other| {
                *other == module
                    || (reaches(module, other.as_str()) && reaches(other.as_str(), module))
            })
            .cloned()
            .collect();
        if circle.len() > 1 {
            found.push(circle);
        }
    }
    found
}

#[test]
fn every_module_has_a_layer() {
    let unplaced: Vec<String> = graph()
        .into_keys()
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "put these modules in a layer (tests/layers.rs and ARCHITECTURE.md): {unplaced:?}"
    );
}

#[test]
fn arrows_point_down_or_across() {
    let graph = graph();
    let mut upward = Vec::new();
    for (from, used) in &graph {
        for to in used {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to))
                && b > a
            {
                upward.push(format!(
                    "{from} ({}) uses {to} ({})",
                    LAYERS[a].0, LAYERS[b].0
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "arrows pointing up:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_modules_use_each_other_in_a_circle() {
    let circles = circles(&graph());
    assert!(circles.is_empty(), "import cycles: {circles:?}");
}

/// The checks themselves: a circle and a test module are seen for what they are.
#[test]
fn the_checks_see_circles_and_skip_tests() {
    let mut graph = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph.entry(from.into()).or_default().insert(to.into());
        graph.entry(to.into()).or_default();
    }
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
    let text = "use crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::b;\n    fn f() { {} }\n}\nuse crate::c; // crate::d\n";
    let kept = without_tests(text);
    assert!(
        kept.contains("crate::a") && kept.contains("crate::c"),
        "{kept}"
    );
    assert!(
        !kept.contains("crate::b") && !kept.contains("crate::d"),
        "{kept}"
    );
}
