//! The evaluation journal: one JSON line per evaluation, appended as soon as it completes, keyed by a hash
//! of everything the result depends on. A rerun with the same inputs evaluates nothing; changing an input
//! changes the keys of exactly the evaluations it affects. Each record carries a checksum of its content:
//! a record that is not valid UTF-8, not JSON or whose checksum does not match (edited by hand) is skipped
//! and reported by line number, and every good record before and after it is kept. Only a last line torn
//! by a kill is cut from the file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
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
    /// blake3 of the record without this field (records of earlier versions have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
}

impl Entry {
    fn checksum(&self) -> String {
        let bare = Entry {
            sum: None,
            ..self.clone()
        };
        let text = serde_json::to_string(&bare).unwrap_or_default();
        blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
    }
}

pub struct Journal {
    path: PathBuf,
    file: File,
    entries: HashMap<String, Entry>,
    /// Entries dropped on open because their line was incomplete.
    pub torn: usize,
    /// Records skipped on open: (line number from 1, why).
    pub skipped: Vec<(usize, String)>,
    /// Keys of the records read on open (an earlier run's), as against those this run appended.
    earlier: std::collections::HashSet<String>,
}

/// A complete line of the journal as a record, or why it is not one.
fn parse_line(bytes: &[u8]) -> std::result::Result<Entry, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let e: Entry =
        serde_json::from_str(text.trim_end()).map_err(|err| format!("not a record ({err})"))?;
    match &e.sum {
        Some(sum) if *sum != e.checksum() => Err("checksum mismatch (edited?)".into()),
        _ => Ok(e),
    }
}

impl Journal {
    /// Opens (or creates) the journal; with `fresh`, earlier entries are ignored (the file is kept and
    /// appended to, so nothing is lost).
    pub fn open(path: &Path, fresh: bool) -> Result<Journal> {
        let mut entries = HashMap::new();
        let mut skipped = Vec::new();
        let mut torn = 0;
        let bytes = if fresh {
            Vec::new()
        } else {
            match std::fs::read(path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
        };
        let mut start = 0;
        for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
            start += line.len();
            let Some(body) = line.strip_suffix(b"\n") else {
                // a last line without its newline: torn by a kill
                torn += 1;
                start -= line.len();
                break;
            };
            if body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_line(body) {
                Ok(e) if e.failed.is_none() => {
                    entries.insert(e.key.clone(), e);
                }
                Ok(_) => {}
                Err(why) => skipped.push((i + 1, why)),
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if torn > 0 {
            // cut the torn tail so the next record starts on a line of its own
            file.set_len(start as u64)
                .with_context(|| format!("truncating {}", path.display()))?;
        } else if fresh {
            // not read: make sure whatever is there ends with a newline
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len > 0 {
                use std::io::{Read, Seek, SeekFrom};
                let mut last = [0u8];
                let mut r = File::open(path)?;
                r.seek(SeekFrom::End(-1))?;
                r.read_exact(&mut last)?;
                if last[0] != b'\n' {
                    file.write_all(b"\n")?;
                }
            }
        }
        let earlier = entries.keys().cloned().collect();
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            entries,
            torn,
            skipped,
            earlier,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Whether `key`'s record came from an earlier run (read on open), not from this one.
    pub fn from_earlier_run(&self, key: &str) -> bool {
        self.earlier.contains(key)
    }

    pub fn append(&mut self, mut e: Entry) -> Result<()> {
        e.sum = Some(e.checksum());
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
            sum: None,
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
    fn a_bad_record_in_the_middle_is_skipped_and_reported_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        {
            let mut j = Journal::open(&p, false).unwrap();
            for (k, v) in [("a", 0.5), ("b", 0.923), ("c", 0.7), ("d", 0.8)] {
                j.append(entry(k, v)).unwrap();
            }
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
        // line 2 edited by hand, line 3 broken JSON, and a line of invalid UTF-8 after them
        lines[1] = String::from_utf8(lines[1].clone())
            .unwrap()
            .replace("0.923", "0.123")
            .into_bytes();
        lines[2].truncate(10);
        lines.insert(3, vec![b'{', 0xff, 0xfe, b'}']);
        let mut bytes = lines.join(&b'\n');
        bytes.push(b'\n');
        std::fs::write(&p, &bytes).unwrap();
        let mut j = Journal::open(&p, false).unwrap();
        assert_eq!(j.get("a").unwrap().value, Some(0.5));
        assert_eq!(j.get("d").unwrap().value, Some(0.8));
        assert!(j.get("b").is_none() && j.get("c").is_none());
        let lines: Vec<usize> = j.skipped.iter().map(|s| s.0).collect();
        assert_eq!(lines, [2, 3, 4], "{:?}", j.skipped);
        assert!(j.skipped[0].1.contains("checksum"), "{:?}", j.skipped);
        assert!(j.skipped[2].1.contains("UTF-8"), "{:?}", j.skipped);
        assert_eq!(j.torn, 0);
        // nothing was cut from the file, and it stays appendable
        j.append(entry("e", 0.9)).unwrap();
        drop(j);
        assert!(std::fs::read(&p).unwrap().starts_with(&bytes));
        let j = Journal::open(&p, false).unwrap();
        assert_eq!(j.get("e").unwrap().value, Some(0.9));
        // --fresh reads nothing, so a bad file never stops it
        let fresh = Journal::open(&p, true).unwrap();
        assert!(fresh.get("a").is_none() && fresh.skipped.is_empty());
    }

    #[test]
    fn keys_depend_on_every_part() {
        assert_ne!(key(&["m", "d", "cfg"]), key(&["m", "d", "cfg2"]));
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_eq!(key(&["m", "d"]), key(&["m", "d"]));
    }
}
