//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The journal's keys, in order.
pub fn journal_keys(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["key"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the journal holds `n` phase-1 entries.
pub fn wait_for_phase1(journal: &Path, n: usize) {
    let start = std::time::Instant::now();
    while std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(r#""phase":"1""#))
        .count()
        < n
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(180),
            "phase 1 never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A pool run that lost a device must match an uninterrupted single-device run: same choice, same curve,
/// same number of evaluations, no evaluation repeated.
pub fn assert_same_as_single(
    pool: &serde_json::Value,
    pool_dir: &Path,
    single: &serde_json::Value,
    single_dir: &Path,
) {
    assert_eq!(pool["chosen"], single["chosen"]);
    assert_eq!(
        pool["evaluations"], single["evaluations"],
        "an evaluation was lost or repeated: {pool}"
    );
    let keys = journal_keys(&pool_dir.join("journal.jsonl"));
    assert_eq!(keys.len() as u64, pool["evaluations"].as_u64().unwrap());
    assert_eq!(
        keys.iter().collect::<std::collections::HashSet<_>>().len(),
        keys.len(),
        "an evaluation was repeated"
    );
    let curve = |d: &Path| std::fs::read_to_string(d.join("pareto.csv")).unwrap();
    assert_eq!(curve(pool_dir), curve(single_dir));
}
