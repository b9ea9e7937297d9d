//! `amp-host devices`: this machine's agent and the adb devices amp can reach.

use anyhow::Result;

pub(crate) fn devices(json: bool) -> Result<()> {
    let mut rows = Vec::new();
    let agent = amp_host::amp::remote::find_agent();
    let local_backends = amp_device::agent::backends(None);
    rows.push(serde_json::json!({"device": "local", "transport": "stdio", "state": if agent.is_file() { "ready" } else { "agent binary missing" }, "agent": agent.display().to_string(), "backends": local_backends}));
    let mut adb =
        std::process::Command::new(std::env::var_os("AMP_ADB").unwrap_or_else(|| "adb".into()));
    if let Some(h) = std::env::var_os("AMP_ADB_SERVER_HOST") {
        adb.arg("-H").arg(h);
    }
    if let Some(p) = std::env::var_os("AMP_ADB_SERVER_PORT") {
        adb.arg("-P").arg(p);
    }
    match adb.args(["devices", "-l"]).output() {
        Ok(out) => {
            for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
                let mut parts = line.split_whitespace();
                let (Some(serial), Some(state)) = (parts.next(), parts.next()) else { continue };
                let model = parts.find_map(|p| p.strip_prefix("model:")).unwrap_or("");
                let mut row = serde_json::json!({"device": format!("adb:{serial}"), "transport": "adb", "state": state, "model": model});
                if state == "device" {
                    match amp_host::amp::remote::adb::describe(serial) {
                        Ok(f) => {
                            for (k, v) in [("soc", f.soc), ("abi", f.abi), ("android", f.android), ("agent", f.agent)] {
                                row[k] = v.into();
                            }
                        }
                        Err(e) => row["error"] = format!("{e:#}").into(),
                    }
                }
                rows.push(row);
            }
        }
        Err(e) => rows.push(serde_json::json!({"device": "adb", "transport": "adb", "state": format!("adb not available: {e}")})),
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for r in rows {
            println!(
                "{:<28} {:<6} {:<12} {}",
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
