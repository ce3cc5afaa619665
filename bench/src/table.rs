//! The markdown table of a run: medians over repetitions, ratios tickerd/peer.

use std::collections::BTreeMap;

use serde_json::Value;

/// Which results to print.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A file of JSON lines, as printed by `gen`.
    file: std::path::PathBuf,
}

/// The order servers are printed in; any other name (e.g. `tickerd-base`)
/// follows them.
const SERVERS: [&str; 6] = [
    "tickerd",
    "tickerd-base",
    "tickerd-durable",
    "tickerd-cluster",
    "node-ws",
    "tutorial",
];

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

pub fn run(args: Args) {
    let text = std::fs::read_to_string(&args.file).expect("results file");
    let mut runs: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        // A phase of one run (the `scale` scenario) is a scenario of its own.
        let scenario = match (v["scenario"].as_str(), v["phase"].as_str()) {
            (Some(s), Some(p)) => format!("{s}: {p}"),
            (s, _) => s.unwrap_or("?").to_string(),
        };
        let key = (scenario, v["server"].as_str().unwrap_or("?").to_string());
        runs.entry(key).or_default().push(v);
    }
    let get = |scenario: &str, server: &str, field: &str| -> Option<f64> {
        let rs = runs.get(&(scenario.to_string(), server.to_string()))?;
        median(rs.iter().filter_map(|r| r[field].as_f64()).collect())
    };
    let reps = runs.values().map(Vec::len).max().unwrap_or(0);
    let f = |v: Option<f64>, digits: usize| v.map_or("–".into(), |x| format!("{x:.digits$}"));
    let mut servers: Vec<String> = SERVERS.iter().map(|s| s.to_string()).collect();
    for (_, sv) in runs.keys() {
        if !servers.contains(sv) {
            servers.push(sv.clone());
        }
    }
    let scenarios: Vec<String> = {
        let mut s: Vec<String> = runs.keys().map(|(s, _)| s.clone()).collect();
        s.dedup();
        s
    };
    println!("Medians of {reps} run(s) per cell. Server pinned to core 0, generator to core 1.\n");
    // A phase of a run is labelled "scenario: phase" (above).
    let phased = |sc: &str| sc.contains(": ");
    let plain = |sc: &&String| sc.as_str() != "idle" && !phased(sc);
    if scenarios.iter().any(|s| plain(&s)) {
        println!("| scenario | server | clients | msgs/s in | delivered/s | delivered % | p50 ms | p99 ms | max ms | CPU ms / 1k deliveries | server CPU % | RSS MiB | gen CPU % |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    for sc in scenarios.iter().filter(plain) {
        for sv in &servers {
            if !runs.contains_key(&(sc.clone(), sv.to_string())) {
                continue;
            }
            let g = |field| get(sc, sv, field);
            println!(
                "| {sc} | {sv} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f(g("subscribed"), 0),
                f(g("sent_per_s"), 0),
                f(g("delivered_per_s"), 0),
                f(g("delivered_pct"), 1),
                f(g("p50_ms"), 2),
                f(g("p99_ms"), 2),
                f(g("max_ms"), 1),
                f(g("cpu_ms_per_1k"), 2),
                f(g("server_cpu_pct"), 0),
                f(g("rss_kib").map(|k| k / 1024.0), 1),
                f(g("gen_cpu_pct"), 0),
            );
        }
    }
    if scenarios.iter().any(|s| s == "idle") {
        println!("\n| idle | server | subscribed connections | RSS before MiB | RSS after MiB | KiB per idle connection |");
        println!("|---|---|---:|---:|---:|---:|");
        for sv in &servers {
            let g = |field| get("idle", sv, field);
            if g("subscribed").is_none() {
                continue;
            }
            println!(
                "| idle | {sv} | {} | {} | {} | {} |",
                f(g("subscribed"), 0),
                f(g("rss_base_kib").map(|k| k / 1024.0), 1),
                f(g("rss_kib").map(|k| k / 1024.0), 1),
                f(g("rss_per_conn_kib"), 2),
            );
        }
    }
    if scenarios.iter().any(|s| phased(s)) {
        println!("\n| phase | server | connections | offered deliveries/s | delivered/s | delivered % | KiB per connection | server CPU % | p50 ms | p99 ms | gen CPU % | waiting for a CPU %, server / gen |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut sample_every = None;
        for sc in scenarios.iter().filter(|s| phased(s)) {
            for sv in &servers {
                let g = |field| get(sc, sv, field);
                if g("subscribed").is_none() {
                    continue;
                }
                sample_every = sample_every.or(g("sample_every"));
                println!(
                    "| {sc} | {sv} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                    f(g("subscribed"), 0),
                    f(g("offered_per_s"), 0),
                    f(g("delivered_per_s"), 0),
                    f(g("delivered_pct"), 1),
                    f(g("rss_per_conn_kib"), 2),
                    f(g("server_cpu_pct"), 0),
                    f(g("p50_ms"), 2),
                    f(g("p99_ms"), 2),
                    f(g("gen_cpu_pct"), 0),
                    f(g("server_wait_pct"), 0),
                    f(g("gen_wait_pct"), 0),
                );
            }
        }
        println!(
            "\nKiB per connection: RSS after connecting and subscribing, before any load, minus RSS before, \
             over the connections. Every connection counts deliveries; latency is timed on every {}th \
             connection. gen CPU % is the generator's whole process (its one core): near 100 would make it the bottleneck. \
             Waiting for a CPU: time the process was runnable but held off its core (schedstat, all threads) \
             over the window; far above 0, other work on the machine shaped the row.",
            f(sample_every, 0)
        );
    }
    let (one, two) = (
        get("saturation", "tickerd-1core", "delivered_per_s"),
        get("saturation", "tickerd-2cores", "delivered_per_s"),
    );
    if let (Some(one), Some(two)) = (one, two) {
        println!(
            "\nTwo cores / one core (bench/scale.sh), deliveries per second: {:.2}",
            two / one.max(1.0)
        );
        return;
    }
    println!("\nRatios tickerd / peer (CPU, latency and RSS: lower is better; delivered/s: higher is better):\n");
    println!("| scenario | figure | tickerd / node-ws | tickerd / tutorial |");
    println!("|---|---|---:|---:|");
    let ratio = |sc: &str, field: &str, peer: &str| -> String {
        match (get(sc, "tickerd", field), get(sc, peer, field)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "–".into(),
        }
    };
    for sc in &scenarios {
        let fields: &[(&str, &str)] = if sc == "idle" {
            &[("rss_per_conn_kib", "RSS per idle connection")]
        } else if phased(sc) {
            &[
                ("rss_per_conn_kib", "RSS per connection"),
                ("delivered_pct", "delivered %"),
                ("p99_ms", "p99 latency"),
            ]
        } else {
            &[
                ("delivered_per_s", "delivered/s"),
                ("cpu_ms_per_1k", "CPU per delivery"),
                ("p50_ms", "p50 latency"),
                ("p99_ms", "p99 latency"),
            ]
        };
        for (field, label) in fields {
            println!(
                "| {sc} | {label} | {} | {} |",
                ratio(sc, field, "node-ws"),
                ratio(sc, field, "tutorial")
            );
        }
    }
}
