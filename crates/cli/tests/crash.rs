//! Crash test of `borderlens serve`: the server is killed with SIGKILL while client threads
//! submit control results; after a restart on the same database every submission that was
//! acknowledged (201, or 200 duplicate) is stored, and retrying every submission that was sent
//! (acknowledged or not, as a client that lost its answer does) stores each exactly once.
//!
//! Black box: the real binary, its own HTTP, and the store read back through `borderlens-store`.
//! Runs on SQLite (`--db`) and on PostgreSQL (`--database-url`, a fresh schema of the database
//! `BORDERLENS_TEST_DATABASE_URL` names; skipped without it unless `BORDERLENS_REQUIRE_POSTGRES=1`).
//! It fails if the server acknowledged a result before committing it (the acknowledged result
//! would be missing after the kill), or if the idempotency by submission id did not hold across
//! the crash (a retry would store a second copy or answer 201 for a stored result).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use borderlens_store::open_any;
use borderlens_store::pg::testing::TestSchema;
use tempfile::TempDir;

const SAMPLE_TRAIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/sample/df_syn_train_eng.csv"
);
/// Client threads submitting at once.
const CLIENTS: usize = 4;
/// Declaration items imported (the first of the sample).
const DECLARATIONS: usize = 40;
/// How long submissions flow before the kill.
const FLOW: Duration = Duration::from_millis(1500);

/// The store the binary runs on: its command-line option, and what `open_any` opens.
struct Target {
    option: &'static str,
    value: String,
}

fn borderlens(target: &Target, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_borderlens"))
        .args([target.option, &target.value])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the borderlens binary");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "borderlens {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A server process, killed when dropped (also when an assertion fails first).
struct Server(Child);

impl Server {
    /// SIGKILL (`Child::kill` on Unix): no graceful shutdown, no flush, no checkpoint.
    fn kill_9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `borderlens serve` on a free loopback port; returns the process and the address.
fn start_server(target: &Target) -> (Server, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_borderlens"))
        .args([target.option, &target.value])
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address printed: {line:?}"))
        .to_string();
    (Server(server), addr)
}

/// POSTs one submission over a fresh connection: the status code, or `None` when no complete
/// answer came (connection refused or cut: the server may or may not have stored it).
fn post(addr: &str, token: &str, body: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let request = format!(
        "POST /api/v1/control-results HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    // A complete answer: status line, headers and a JSON body.
    if !answer.trim_end().ends_with('}') {
        return None;
    }
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn submission(id: &str, declaration: &str) -> String {
    serde_json::json!({
        "submission_id": id,
        "declaration_id": declaration,
        "schema_version": "1.0.0",
        "values": {
            "outcome": "no_irregularity",
            "inspection_method": ["documentary"],
            "inspected_at": "2020-01-22T09:00:00+09:00",
            "place": "crash test",
            "officer_id": "CRASH-1",
            "remarks": format!("submission {id}")
        }
    })
    .to_string()
}

/// Submission id → how many times it is stored; and the number of `control_result` audit
/// entries.
fn stored(target: &Target) -> (BTreeMap<String, usize>, usize) {
    let store = open_any(&target.value).unwrap();
    let mut counts = BTreeMap::new();
    for r in store.control_results().unwrap() {
        *counts.entry(r.result.submission_id).or_insert(0) += 1;
    }
    let audited = store
        .audit_entries(1_000_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "control_result")
        .count();
    (counts, audited)
}

/// What a client thread sent: submission id, body, and the status when an answer came.
type Sent = Vec<(String, String, Option<u16>)>;

#[test]
fn every_acknowledged_submission_survives_kill_9_and_retries_double_nothing_on_sqlite() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("crash.db");
    crash_and_retry(
        &Target {
            option: "--db",
            value: db.display().to_string(),
        },
        &dir,
    );
}

#[test]
fn every_acknowledged_submission_survives_kill_9_and_retries_double_nothing_on_postgresql() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    crash_and_retry(
        &Target {
            option: "--database-url",
            value: schema.url().to_string(),
        },
        &dir,
    );
}

/// The test on the store `db`; `dir` takes the sample's head.
fn crash_and_retry(db: &Target, dir: &TempDir) {
    let started = Instant::now();
    let text = std::fs::read_to_string(SAMPLE_TRAIN).unwrap();
    let head: Vec<&str> = text.lines().take(DECLARATIONS + 1).collect();
    let csv = dir.path().join("head.csv");
    std::fs::write(&csv, head.join("\n") + "\n").unwrap();
    let declarations: Vec<String> = head[1..]
        .iter()
        .map(|line| line.split(',').next().unwrap().to_string())
        .collect();
    borderlens(db, &["import", csv.to_str().unwrap()], "");
    borderlens(
        db,
        &["user", "add", "olga", "--role", "officer"],
        "a long passphrase\n",
    );
    let out = borderlens(db, &["--json", "token", "create", "olga"], "");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = report["token"].as_str().unwrap().to_string();

    let (mut server, addr) = start_server(db);
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let sent: Arc<Mutex<Sent>> = Arc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (stop, acknowledged, sent) = (stop.clone(), acknowledged.clone(), sent.clone());
            let (addr, token, declarations) = (addr.clone(), token.clone(), declarations.clone());
            std::thread::spawn(move || {
                let mut seq = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("crash-{client}-{seq}");
                    let body = submission(&id, &declarations[seq % declarations.len()]);
                    seq += 1;
                    let status = post(&addr, &token, &body);
                    if matches!(status, Some(200 | 201)) {
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                    let failed = status.is_none();
                    sent.lock().unwrap().push((id, body, status));
                    if failed {
                        // The server is gone: this client stops, as a real one would back off.
                        break;
                    }
                }
            })
        })
        .collect();

    // Let submissions flow (at least 1.5 s and 200 acknowledged), then kill -9 amid them.
    let flowing = Instant::now();
    while (acknowledged.load(Ordering::SeqCst) < 200 || flowing.elapsed() < FLOW)
        && flowing.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill_9();
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let acked: BTreeSet<&str> = sent
        .iter()
        .filter(|(_, _, s)| matches!(s, Some(200 | 201)))
        .map(|(id, _, _)| id.as_str())
        .collect();
    let unanswered = sent.iter().filter(|(_, _, s)| s.is_none()).count();
    for (id, _, status) in &sent {
        assert!(
            matches!(status, None | Some(201)),
            "{id}: unexpected answer {status:?} before the crash"
        );
    }
    assert!(
        acked.len() >= 100,
        "too few submissions acknowledged before the kill ({}) for the test to mean anything",
        acked.len()
    );

    // Restart on the same file: every acknowledged submission is there, nothing unexpected.
    let (mut server, addr) = start_server(db);
    let (after_crash, audited) = stored(db);
    for id in &acked {
        assert_eq!(
            after_crash.get(*id),
            Some(&1),
            "{id} was acknowledged before the kill but is not stored once after the restart"
        );
    }
    let sent_ids: BTreeSet<&str> = sent.iter().map(|(id, _, _)| id.as_str()).collect();
    assert!(after_crash.keys().all(|id| sent_ids.contains(id.as_str())));
    assert!(
        after_crash.len() <= acked.len() + unanswered,
        "more stored than acknowledged or unanswered"
    );
    assert_eq!(
        audited,
        after_crash.len(),
        "each stored result has its audit entry"
    );

    // Retry every submission sent, as clients that lost answers do (several threads at once).
    let retried: Vec<(String, Option<u16>, Option<u16>)> = std::thread::scope(|scope| {
        let chunks: Vec<_> = sent
            .chunks(sent.len().div_ceil(CLIENTS))
            .map(|chunk| {
                let (addr, token) = (&addr, &token);
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(id, body, before)| (id.clone(), *before, post(addr, token, body)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        chunks.into_iter().flat_map(|c| c.join().unwrap()).collect()
    });
    let mut newly = 0;
    for (id, before, now) in &retried {
        match (before, now) {
            (Some(_), Some(200)) => {}
            (Some(_), other) => {
                panic!("{id} was acknowledged before the kill; its retry answered {other:?}, not 200 duplicate")
            }
            (None, Some(201)) => {
                assert!(!after_crash.contains_key(id), "{id} stored, yet 201 again");
                newly += 1;
            }
            (None, Some(200)) => {
                assert!(
                    after_crash.contains_key(id),
                    "{id} not stored, yet duplicate"
                );
            }
            (None, other) => panic!("{id}: retry answered {other:?}"),
        }
    }

    // Every submission stored exactly once, nothing else.
    let (finally, audited) = stored(db);
    assert_eq!(finally.len(), sent_ids.len());
    assert!(finally.keys().all(|id| sent_ids.contains(id.as_str())));
    let doubled: Vec<_> = finally.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "stored more than once: {doubled:?}");
    assert_eq!(finally.len(), after_crash.len() + newly);
    assert_eq!(audited, finally.len());

    server.kill_9();
    eprintln!(
        "crash test on {}: {} submissions sent, {} acknowledged before SIGKILL, {} unanswered ({} of them \
         stored anyway), {} stored after the retries; {:.1} s",
        if db.option == "--db" { "SQLite" } else { "PostgreSQL" },
        sent.len(),
        acked.len(),
        unanswered,
        after_crash.len() - acked.len(),
        finally.len(),
        started.elapsed().as_secs_f64()
    );
}
