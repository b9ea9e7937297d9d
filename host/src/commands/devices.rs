//! `amp-host devices`: this machine's agent and the adb devices amp can reach.

use anyhow::Result;

pub(crate) fn devices(json: bool) -> Result<()> {
    let mut rows = Vec::new();
    let agent = amp_host::amp::remote::find_agent();
    let local_backends = amp_device::agent::backends(None);
    rows.push(serde_json::json!({"device": "local", "transport": "stdio", "state": if agent.is_file() { "ready" } else { "agent binary missing" }, "agent": agent.display().to_string(), "backends": local_backends}));
    for d in amp_host::amp::remote::adb::farm() {
        let d = match d {
            Ok(d) => d,
            Err(e) => {
                rows.push(serde_json::json!({"device": "adb", "transport": "adb", "state": e}));
                continue;
            }
        };
        let mut row = serde_json::json!({"device": format!("adb:{}", d.target), "transport": "adb", "server": d.server, "state": d.state, "model": d.model});
        match d.facts {
            Some(Ok(f)) => {
                for (k, v) in [
                    ("soc", f.soc),
                    ("abi", f.abi),
                    ("android", f.android),
                    ("agent", f.agent),
                ] {
                    row[k] = v.into();
                }
            }
            Some(Err(e)) => row["error"] = e.into(),
            None => {}
        }
        rows.push(row);
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for r in rows {
            println!(
                "{:<40} {:<6} {:<12} {}",
                r["device"].as_str().unwrap_or(""),
                r["transport"].as_str().unwrap_or(""),
                r["state"].as_str().unwrap_or(""),
                r.get("model")
                    .and_then(|m| m.as_str())
                    .map(|m| {
                        let mut s = format!("model {m}");
                        for k in ["soc", "abi", "android", "agent"] {
                            match r.get(k).and_then(|v| v.as_str()) {
                                Some(v) if !v.is_empty() => s += &format!(", {k} {v}"),
                                _ => {}
                            }
                        }
                        s
                    })
                    .or_else(|| r.get("backends").map(|b| format!("backends {b}")))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
