//! The embedding example runs as a test: its `run` is the example's `main` with options.

#[allow(dead_code)]
#[path = "../examples/embed_in_tokio.rs"]
mod embed_in_tokio;

#[test]
fn embed_in_tokio_commits_every_record_and_sees_the_stream_end() {
    let summary = embed_in_tokio::run(embed_in_tokio::Options {
        records: 20,
        data: None,
    })
    .expect("the example runs");
    assert_eq!(summary.committed, 4 * 20, "{summary:?}");
    assert!(summary.elections >= 4, "the initial elections: {summary:?}");
    assert!(summary.busy_seen, "try_submit answered Busy: {summary:?}");
}
