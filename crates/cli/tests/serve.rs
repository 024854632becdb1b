//! Black-box tests of `borderlens user add`, `token create` and `serve`: the binary adds a user
//! and prints a token, serves on a free loopback port that it prints, answers HTTP with that
//! token, and stops cleanly on Ctrl-C (SIGINT).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use borderlens_store::{Accounts, Audit, Store};
use tempfile::TempDir;

fn borderlens(db: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_borderlens"))
        .arg("--db")
        .arg(db)
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
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One HTTP/1.1 request over a fresh connection; the whole answer (status line, headers, body).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut stream = TcpStream::connect(addr).expect("the server accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn users_and_tokens_are_added_and_the_server_answers_with_them_until_ctrl_c() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("t.db");

    // user add: password from stdin; refused twice, with an unknown role, or a short password.
    let out = borderlens(
        &db,
        &[
            "--actor", "admin-1", "user", "add", "olga", "--role", "officer",
        ],
        "a long passphrase\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "added user olga with role officer"
    );
    let again = borderlens(
        &db,
        &["user", "add", "olga", "--role", "admin"],
        "another one!\n",
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    let role = borderlens(
        &db,
        &["user", "add", "bob", "--role", "boss"],
        "long enough\n",
    );
    assert!(text(&role.stderr).contains("unknown role 'boss'"));
    let short = borderlens(&db, &["user", "add", "bob", "--role", "admin"], "short\n");
    assert!(
        text(&short.stderr).contains("at least 8"),
        "{}",
        text(&short.stderr)
    );
    let file = dir.path().join("pw");
    std::fs::write(&file, "from a file, first line\nignored\n").unwrap();
    let from_file = borderlens(
        &db,
        &[
            "user",
            "add",
            "ana",
            "--role",
            "analyst",
            "--password-file",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert!(from_file.status.success(), "{}", text(&from_file.stderr));

    // token create: printed once, stored as its digest only.
    let out = borderlens(&db, &["--json", "token", "create", "olga"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = report["token"].as_str().unwrap().to_string();
    assert_eq!((report["user"].as_str(), token.len()), (Some("olga"), 64));
    let ghost = borderlens(&db, &["token", "create", "ghost"], "");
    assert!(text(&ghost.stderr).contains("no user 'ghost'"));
    {
        let store = Store::open(&db).unwrap();
        let actions: Vec<(String, String, String)> = store
            .audit_entries(10)
            .unwrap()
            .into_iter()
            .rev()
            .map(|e| (e.actor, e.action, e.subject))
            .collect();
        assert_eq!(
            actions,
            [
                ("admin-1".into(), "user_add".into(), "olga".into()),
                ("cli".into(), "user_add".into(), "ana".into()),
                ("cli".into(), "token_create".into(), "olga".into()),
            ]
        );
        assert!(store.user("ana").unwrap().is_some());
    }

    // serve: prints the address bound, answers, stops on SIGINT with status 0.
    let mut server = Command::new(env!("CARGO_BIN_EXE_borderlens"))
        .arg("--db")
        .arg(&db)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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

    let health = http(&addr, "GET", "/healthz", &[]);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");
    let anonymous = http(&addr, "GET", "/api/v1/me", &[]);
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    let bearer = format!("Bearer {token}");
    let me = http(&addr, "GET", "/api/v1/me", &[("Authorization", &bearer)]);
    assert!(me.starts_with("HTTP/1.1 200"), "{me}");
    assert!(me.contains(r#"{"user":"olga","role":"officer"}"#), "{me}");

    // token list and revoke, while the server runs: the revoked token stops working at once.
    let id = report["id"].as_str().unwrap().to_string();
    let listed = borderlens(&db, &["--json", "token", "list", "olga"], "");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        (listed[0]["id"].as_str(), listed[0]["revoked"].as_bool()),
        (Some(id.as_str()), Some(false))
    );
    assert!(
        !listed.to_string().contains(&token),
        "the token itself is never shown"
    );
    let table = text(&borderlens(&db, &["token", "list"], "").stdout);
    assert!(table.contains(&id) && table.contains("active"), "{table}");
    let unknown = borderlens(&db, &["token", "revoke", "0123abcd0123"], "");
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("no API token with id"),
        "{}",
        text(&unknown.stderr)
    );
    let revoked = borderlens(&db, &["token", "revoke", &id[..8]], "");
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert!(
        text(&revoked.stdout).contains("revoked"),
        "{}",
        text(&revoked.stdout)
    );
    let after = http(&addr, "GET", "/api/v1/me", &[("Authorization", &bearer)]);
    assert!(after.starts_with("HTTP/1.1 401"), "{after}");
    let table = text(&borderlens(&db, &["token", "list", "olga"], "").stdout);
    assert!(table.contains("revoked"), "{table}");

    let interrupted = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = server.kill();
            panic!("the server did not stop within 20 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(TcpStream::connect(&addr).is_err(), "still listening");
}
