//! The `borderlens` binary on PostgreSQL (`--database-url`): import twice (the second time
//! everything is unchanged), users and tokens, and an unreachable database named without its
//! password. Runs in a fresh schema of `BORDERLENS_TEST_DATABASE_URL`; without it the test
//! prints "SKIPPED" and passes, unless `BORDERLENS_REQUIRE_POSTGRES=1`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use borderlens_store::pg::testing::TestSchema;
use serde_json::Value;

const SAMPLE_VALID: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/sample/df_syn_valid_eng.csv"
);

fn borderlens(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_borderlens"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the borderlens binary");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_cli_runs_on_postgresql() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let url = schema.url();
    let first = ok_json(&borderlens(url, &["--json", "import", SAMPLE_VALID], None));
    let file = &first["files"][0];
    assert_eq!(file["inserted"], 8134, "{first:#}");
    let second = ok_json(&borderlens(url, &["--json", "import", SAMPLE_VALID], None));
    let file = &second["files"][0];
    assert_eq!(
        (&file["inserted"], &file["unchanged"]),
        (&0.into(), &8134.into())
    );

    let added = borderlens(
        url,
        &["user", "add", "olga", "--role", "officer"],
        Some("a long passphrase\n"),
    );
    assert!(added.status.success(), "{added:?}");
    let token = ok_json(&borderlens(
        url,
        &["--json", "token", "create", "olga"],
        None,
    ));
    assert_eq!(token["user"], "olga");
    assert_eq!(token["token"].as_str().unwrap().len(), 64);

    let refused = borderlens(
        "postgres://ana:s3cret@127.0.0.1:1/nowhere",
        &["models"],
        None,
    );
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("postgres://ana:***@127.0.0.1:1/nowhere"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
}
