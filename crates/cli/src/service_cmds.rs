//! Subcommands of the service: `serve`, `user add`, `token create`. Glue only: the server is
//! `borderlens-server`, users and tokens are `borderlens-app` jobs.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use borderlens_app as app;
use borderlens_store::Backend;
use clap::{Args, Subcommand};

use crate::output::outln;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the address bound is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Leave `Secure` off the session cookie. Browsers accept Secure cookies over plain HTTP
    /// on localhost/127.0.0.1, and a TLS proxy in front needs them: only for other plain-HTTP
    /// clients.
    #[arg(long)]
    pub insecure_cookies: bool,
    /// Session lifetime in minutes.
    #[arg(long, default_value_t = borderlens_server::DEFAULT_SESSION_SECONDS / 60)]
    pub session_minutes: u32,
    /// A reverse proxy or load balancer in front (its IP address; repeat for several) whose
    /// `X-Forwarded-For` names the client for the login rate limit. Without it, every client
    /// behind a proxy counts as the proxy.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// An X-ray library to serve at the annotation desk (`/nii`): the active model's
    /// proposals, reviews with their recorded actions, model versions and retraining.
    #[arg(long, value_name = "LIB")]
    pub nii_library: Option<PathBuf>,
    /// The held-out library every retrained model is evaluated on before it may replace the
    /// active one (without it the desk does not retrain).
    #[arg(long, value_name = "LIB", requires = "nii_library")]
    pub nii_held_out: Option<PathBuf>,
    /// Share of scans reviewed without the model's proposals, to measure automation bias and
    /// the speed-up (0 to 1).
    #[arg(long, default_value_t = 0.2, requires = "nii_library")]
    pub nii_hidden_share: f64,
    /// Passes over the corrected set when the desk retrains.
    #[arg(long, default_value_t = borderlens_nii::detector::train::TrainOptions::default().epochs,
          requires = "nii_library")]
    pub nii_epochs: usize,
}

impl ServeArgs {
    /// The desk's settings, when a library is served.
    fn desk(&self) -> Option<app::DeskConfig> {
        self.nii_library.as_ref().map(|library| {
            let mut desk = app::DeskConfig::new(library.clone());
            desk.held_out = self.nii_held_out.clone();
            desk.hidden_share = self.nii_hidden_share;
            desk.train.epochs = self.nii_epochs;
            desk
        })
    }
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user with a role; the password is the first line of standard input, or of
    /// --password-file.
    Add {
        /// User name (letters, digits, '.', '_', '-', '@').
        name: String,
        /// officer, analyst, annotator, manager or admin.
        #[arg(long)]
        role: String,
        /// Read the password from the first line of this file instead of standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Set a new password (first line of standard input, or of --password-file); the user's
    /// sessions end.
    Password {
        /// User name.
        name: String,
        /// Read the password from the first line of this file instead of standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it, once (only its SHA-256 is stored).
    Create {
        /// User name.
        name: String,
    },
    /// List API tokens (of one user, or of everyone): id, user, creation time, revoked. The
    /// tokens themselves are never stored, so never shown.
    List {
        /// Only this user's tokens.
        name: Option<String>,
    },
    /// Revoke an API token for good, by its id as `token list` shows it (or its first 8
    /// digits, as the audit log names it).
    Revoke {
        /// Token id (8 to 64 hex digits).
        id: String,
    },
}

pub fn serve(
    db: &Path,
    database_url: Option<&str>,
    a: &ServeArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !a.addr.ip().is_loopback() {
        eprintln!(
            "borderlens: warning: serving plain HTTP on {}, beyond this machine: put a TLS \
             proxy in front (passwords and cookies travel in clear otherwise)",
            a.addr
        );
    }
    let config = borderlens_server::ServeConfig {
        db: db.to_path_buf(),
        database_url: database_url.map(str::to_string),
        secure_cookies: !a.insecure_cookies,
        session_seconds: a.session_minutes.saturating_mul(60).max(60),
        trusted_proxies: a.trusted_proxies.clone(),
        nii_desk: a.desk(),
    };
    borderlens_server::serve(config, a.addr, |local| {
        say_listening(
            json,
            &format!("http://{local}"),
            serde_json::json!({}),
            "listening on",
        );
    })
    .with_context(|| cannot_serve(db, database_url))?;
    Ok(ExitCode::SUCCESS)
}

/// Says where a service listens: `{"listening": URL, ...extra}` with `--json`, else
/// `borderlens: WHAT URL (Ctrl-C stops)`. Not `println!`: a closed stdout must not stop
/// the server.
pub(crate) fn say_listening(json: bool, url: &str, extra: serde_json::Value, what: &str) {
    let mut out = std::io::stdout();
    let _ = if json {
        let mut line = serde_json::json!({ "listening": url });
        if let (Some(line), serde_json::Value::Object(extra)) = (line.as_object_mut(), extra) {
            line.extend(extra);
        }
        writeln!(out, "{line}")
    } else {
        writeln!(out, "borderlens: {what} {url} (Ctrl-C stops)")
    };
    let _ = out.flush();
}

/// The context of a service that could not start on the store.
pub(crate) fn cannot_serve(db: &Path, database_url: Option<&str>) -> String {
    match database_url {
        Some(url) => format!("cannot serve {}", borderlens_store::pg::redact_url(url)),
        None => format!("cannot serve {}", db.display()),
    }
}

/// The first line of `file`, or of standard input (prompting when it is a terminal), without
/// its line ending.
fn read_password(file: Option<&Path>, name: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            line = text.lines().next().unwrap_or_default().to_string();
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!("password for {name} (shown as typed): ");
                let _ = std::io::stderr().flush();
            }
            stdin
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
        }
    }
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!(
            "no password given: write it on the first line of standard input or of --password-file"
        );
    }
    Ok(password)
}

pub fn user(
    store: &mut dyn Backend,
    command: &UserCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add {
            name,
            role,
            password_file,
        } => {
            let role = app::Role::parse(role).with_context(|| {
                format!(
                    "unknown role '{role}': use {}",
                    app::Role::ALL.map(app::Role::name).join(", ")
                )
            })?;
            let password = read_password(password_file.as_deref(), name)?;
            let report = app::add_user(store, name, role, &password)?;
            if json {
                outln!("{}", serde_json::to_string(&report)?);
            } else {
                outln!(
                    "added user {} with role {}",
                    report.user,
                    report.role.name()
                );
            }
        }
        UserCommand::Password {
            name,
            password_file,
        } => {
            let password = read_password(password_file.as_deref(), name)?;
            app::set_password(store, name, &password)?;
            if json {
                outln!("{}", serde_json::json!({"user": name, "password": "set"}));
            } else {
                outln!("password of {name} set; their sessions ended");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo's users: one per role that works in the pages (`demo-officer`, ...), each with a
/// new random password every run (printed once), so that no fixed password ever opens a demo
/// that someone left running.
pub fn demo_users(store: &mut dyn Backend) -> anyhow::Result<Vec<(String, String)>> {
    let mut users = Vec::new();
    for role in [
        app::Role::Officer,
        app::Role::Analyst,
        app::Role::Manager,
        app::Role::Admin,
    ] {
        let name = format!("demo-{}", role.name());
        let password = app::new_secret()?[..16].to_string();
        if store.user(&name)?.is_some() {
            app::set_password(store, &name, &password)?;
        } else {
            app::add_user(store, &name, role, &password)?;
        }
        users.push((name, password));
    }
    Ok(users)
}

pub fn token(
    store: &mut dyn Backend,
    command: &TokenCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create { name } => {
            let token = app::create_token(store, name)?;
            if json {
                outln!("{}", serde_json::to_string(&token)?);
            } else {
                outln!("{}", token.token);
                eprintln!(
                    "borderlens: API token {} for {} (shown once; send it as `Authorization: \
                     Bearer TOKEN`; revoke it with `borderlens token revoke {}`)",
                    token.id, token.user, token.id
                );
            }
        }
        TokenCommand::List { name } => {
            let tokens = app::list_tokens(store, name.as_deref())?;
            if json {
                outln!("{}", serde_json::to_string(&tokens)?);
            } else if tokens.is_empty() {
                outln!("no API tokens");
            } else {
                outln!(
                    "{:<12}  {:<24}  {:<24}  state",
                    "id",
                    "user",
                    "created (UTC)"
                );
                for token in &tokens {
                    let state = if token.revoked { "revoked" } else { "active" };
                    outln!(
                        "{:<12}  {:<24}  {:<24}  {state}",
                        token.id,
                        token.user,
                        token.created_at
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let report = app::revoke_token(store, id)?;
            if json {
                outln!("{}", serde_json::to_string(&report)?);
            } else if report.already_revoked {
                outln!(
                    "token {} of {} was already revoked",
                    report.token.id,
                    report.token.user
                );
            } else {
                outln!(
                    "token {} of {} revoked: it no longer opens the API",
                    report.token.id,
                    report.token.user
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
