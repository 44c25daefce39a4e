//! `ieschain bench --cluster --quick` runs both federations and counts what reached every
//! relay in each (no figure is judged here: BENCHMARKS.md holds them).

use crate::harness::{heavy, ieschain};

#[test]
fn bench_cluster_measures_both_federations() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("cluster.json");
    let (code, output) = ieschain(&[
        "bench".as_ref(),
        "--cluster".as_ref(),
        "--quick".as_ref(),
        "--json".as_ref(),
        json.as_os_str(),
    ]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("processes on loopback"), "{output}");
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("JSON");
    for run in ["in_process", "cluster"] {
        let records = value[run]["records"].as_u64().unwrap_or(0);
        assert!(
            records > 0,
            "{run} counted nothing at every relay: {value:#}"
        );
        assert!(
            value[run]["latency_ms"]["urgent"]["count"].as_u64() > Some(0),
            "{run} timed no urgent record: {value:#}"
        );
    }
    assert_eq!(value["processes"], 18);
}
