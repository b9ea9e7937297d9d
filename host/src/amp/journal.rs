//! The evaluation journal: one JSON line per evaluation, appended as soon as it completes, keyed by a hash
//! of everything the result depends on. A rerun with the same inputs evaluates nothing; changing an input
//! changes the keys of exactly the evaluations it affects. A line torn by a kill is detected and dropped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub phase: String,
    pub config: String,
    pub metric: String,
    /// None when the backend could not run the config.
    pub value: Option<f64>,
    /// Why the backend could not run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// Why the evaluation failed, when it failed for a reason of the config's own. Kept as a record; a later
    /// run tries the config again (the cause may have been fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    pub seconds: f64,
}

pub struct Journal {
    path: PathBuf,
    file: File,
    entries: HashMap<String, Entry>,
    /// Entries dropped on open because their line was incomplete.
    pub torn: usize,
}

impl Journal {
    /// Opens (or creates) the journal; with `fresh`, earlier entries are ignored (the file is kept and
    /// appended to, so nothing is lost).
    pub fn open(path: &Path, fresh: bool) -> Result<Journal> {
        let mut entries = HashMap::new();
        let mut torn = 0;
        let mut good_len = 0u64;
        if let Ok(f) = File::open(path) {
            let mut reader = BufReader::new(f);
            let mut line = String::new();
            loop {
                line.clear();
                let n = reader
                    .read_line(&mut line)
                    .with_context(|| format!("reading {}", path.display()))?;
                if n == 0 {
                    break;
                }
                match (
                    line.ends_with('\n'),
                    serde_json::from_str::<Entry>(line.trim_end()),
                ) {
                    (true, Ok(e)) => {
                        good_len += n as u64;
                        if !fresh && e.failed.is_none() {
                            entries.insert(e.key.clone(), e);
                        }
                    }
                    _ => {
                        torn += 1;
                        break;
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(false)
            .write(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        // drop a torn tail so the next line starts clean
        file.set_len(good_len)
            .with_context(|| format!("truncating {}", path.display()))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            entries,
            torn,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn append(&mut self, e: Entry) -> Result<()> {
        let mut line = serde_json::to_string(&e)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.file.flush()?;
        self.entries.insert(e.key.clone(), e);
        Ok(())
    }
}

/// The key of one evaluation.
pub fn key(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(&[0]);
    }
    h.finalize().to_hex()[..24].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(k: &str, v: f64) -> Entry {
        Entry {
            key: k.into(),
            phase: "1".into(),
            config: "c".into(),
            metric: "accuracy".into(),
            value: Some(v),
            unsupported: None,
            failed: None,
            seconds: 0.1,
        }
    }

    #[test]
    fn torn_last_line_is_dropped_and_the_journal_stays_appendable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        {
            let mut j = Journal::open(&p, false).unwrap();
            j.append(entry("a", 0.5)).unwrap();
            j.append(entry("b", 0.6)).unwrap();
        }
        // a kill in the middle of writing the third line
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"key\":\"c\",\"pha").unwrap();
        drop(f);
        let mut j = Journal::open(&p, false).unwrap();
        assert_eq!(j.torn, 1);
        assert_eq!(j.get("b").unwrap().value, Some(0.6));
        assert!(j.get("c").is_none());
        j.append(entry("c", 0.7)).unwrap();
        drop(j);
        let j = Journal::open(&p, false).unwrap();
        assert_eq!((j.torn, j.get("c").unwrap().value), (0, Some(0.7)));
        let fresh = Journal::open(&p, true).unwrap();
        assert!(fresh.get("a").is_none());
    }

    #[test]
    fn keys_depend_on_every_part() {
        assert_ne!(key(&["m", "d", "cfg"]), key(&["m", "d", "cfg2"]));
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_eq!(key(&["m", "d"]), key(&["m", "d"]));
    }
}
