//! A federation node over HTTP (`borderlens node serve`) and the coordinator's client of such
//! nodes ([`HttpNodes`], for `borderlens federate train`), over `borderlens-app`'s
//! [`FederationNode`] and [`NodeLinks`].
//!
//! Routes, all `POST` under `/federation/v1`, each with `Authorization: Bearer <token>` of a
//! partner the node lists ([`Partner`]):
//! - `/sessions` (JSON [`OpenSession`]) opens a training session (204);
//! - `/sessions/{id}/call` (a call's bytes) answers one round (an envelope's bytes);
//! - `/sessions/{id}/finish` (JSON [`FinishSession`]) saves the model (JSON [`Finished`]);
//! - `/sessions/{id}/abort` (JSON [`AbortSession`]) ends the session, saving nothing (204).
//!
//! Tokens are mutual: the node keeps only the SHA-256 of each partner's token (compared in
//! constant time) and answers every authenticated request with its own token for that partner in
//! `x-borderlens-node-token`, which the coordinator checks before it reads the answer, so that
//! neither side talks to an impostor that lacks the other's secret.
//!
//! TLS where certificates are given: `node serve --tls-cert FILE --tls-key FILE` serves HTTPS
//! ([`NodeTls`], rustls with ring; handshakes run beside the accepting loop, bounded in time),
//! and a nodes file entry with an `https://` URL names the `ca` (PEM) the coordinator trusts
//! for that node, and nothing else: no system roots, one client per node. Without certificates
//! a node speaks plain HTTP (loopback, or behind a TLS proxy).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use borderlens_app::{
    AbortSession, FederationNode, FinishSession, Finished, JobError, NodeLinks, OpenSession,
};
use borderlens_federation::message::Call;
use borderlens_federation::{PartyId, Transport, Unreachable};
use borderlens_store::Backend;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::error::ApiError;
use crate::pool::{self, StorePool, Target};
use crate::ServeError;

/// The header a node answers with its own token.
pub const NODE_TOKEN_HEADER: &str = "x-borderlens-node-token";

/// The largest request a node reads: the agreed pipeline and binning of a wide model.
const MAX_NODE_BODY: usize = 64 * 1024 * 1024;

/// A partner allowed to run training sessions on this node.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Partner {
    /// Its name (the audit actor is `federation:NAME`).
    pub name: String,
    /// SHA-256 (hex) of the token it presents.
    pub token_sha256: String,
    /// The token this node presents back to it.
    pub node_token: String,
}

/// Another node whose public key this node pins (`[[peer]]`).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Peer {
    /// Its name.
    pub name: String,
    /// Its X25519 public key (64 hexadecimal digits, `borderlens node key`).
    pub public_key: String,
}

/// The partners file of `borderlens node serve --partners FILE` (TOML, `[[partner]]` tables;
/// to pin the other nodes' keys, `[[peer]]` tables; for the node's rule on differential
/// privacy, a `[privacy]` table: `min_noise_multiplier`, `delta`, optional `max_epsilon`).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Partners {
    /// The partners.
    #[serde(rename = "partner", default)]
    pub partners: Vec<Partner>,
    /// The other nodes whose public keys are pinned (none: the relayed keys are accepted).
    #[serde(rename = "peer", default)]
    pub peers: Vec<Peer>,
    /// The node's rule on differential privacy: the least noise it adds and the most ε a
    /// session may spend (none: it adds what a coordinator asks for, if anything).
    #[serde(default)]
    pub privacy: Option<borderlens_federation::dp::PrivacyPolicy>,
}

impl Partners {
    /// Reads and checks a partners file; errors name the file and the partner at fault.
    pub fn read(path: &std::path::Path) -> Result<Partners, String> {
        let partners: Partners = read_toml(path)?;
        if partners.partners.is_empty() {
            return Err(format!("{}: no [[partner]] listed", path.display()));
        }
        for (i, p) in partners.partners.iter().enumerate() {
            let at = format!("{}: partner {} ({:?})", path.display(), i + 1, p.name);
            let earlier = &partners.partners[..i];
            if earlier.iter().any(|q| q.name == p.name) {
                return Err(format!("{at}: field name is listed twice"));
            }
            if earlier
                .iter()
                .any(|q| q.token_sha256.eq_ignore_ascii_case(&p.token_sha256))
            {
                return Err(format!(
                    "{at}: field token_sha256 is another partner's: each partner needs its own token"
                ));
            }
            if p.name.is_empty() {
                return Err(format!("{at}: field name is empty"));
            }
            if decode_hex32(&p.token_sha256).is_none() {
                return Err(format!(
                    "{at}: field token_sha256 is not 64 hexadecimal digits"
                ));
            }
            if p.node_token.len() < 16 || HeaderValue::from_str(&p.node_token).is_err() {
                return Err(format!(
                    "{at}: field node_token must be at least 16 printable characters"
                ));
            }
        }
        if let Some(policy) = &partners.privacy {
            policy
                .check()
                .map_err(|e| format!("{}: [privacy]: {e}", path.display()))?;
        }
        for (i, p) in partners.peers.iter().enumerate() {
            if decode_hex32(&p.public_key).is_none() {
                return Err(format!(
                    "{}: peer {} ({:?}): field public_key is not 64 hexadecimal digits",
                    path.display(),
                    i + 1,
                    p.name
                ));
            }
        }
        Ok(partners)
    }

    /// The pinned peers' public keys.
    pub fn pinned(&self) -> Vec<[u8; 32]> {
        self.peers
            .iter()
            .filter_map(|p| decode_hex32(&p.public_key))
            .collect()
    }
}

/// Reads 64 hexadecimal digits.
pub fn decode_key(text: &str) -> Option<[u8; 32]> {
    decode_hex32(text.trim())
}

/// The public key of a node's secret, in hex (what its peers pin).
pub fn public_key_hex(secret: [u8; 32]) -> String {
    borderlens_domain::hex::encode(
        &borderlens_federation::secagg::KeyPair::from_secret(secret).public(),
    )
}

/// A TOML file read into `T`; errors name the file (and TOML's line and column).
fn read_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    borderlens_domain::hex::decode(text)?.try_into().ok()
}

/// SHA-256 of a token, in hex (what a partners file lists).
pub fn token_sha256(token: &str) -> String {
    borderlens_domain::hex::encode(&Sha256::digest(token.as_bytes()))
}

/// What `borderlens node serve` runs on.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// SQLite store (when `database_url` is not set).
    pub db: PathBuf,
    /// PostgreSQL store.
    pub database_url: Option<String>,
    /// Who may coordinate, and the peers' keys pinned.
    pub partners: Partners,
    /// The node's long-term X25519 secret (a fresh key per session without it).
    pub key: Option<[u8; 32]>,
    /// Serve HTTPS with this identity (plain HTTP without).
    pub tls: Option<NodeTls>,
}

#[derive(Clone)]
struct NodeState {
    pool: Arc<StorePool>,
    node: Arc<FederationNode>,
    partners: Arc<Vec<(Partner, [u8; 32])>>,
}

/// The node's router over the store of `config`, opened (and migrated) here.
pub fn node_app(config: NodeConfig) -> Result<Router, ServeError> {
    let pool = match &config.database_url {
        Some(url) => StorePool::open_target(Target::Postgres(url.clone()))?,
        None => StorePool::open(&config.db)?,
    };
    let identity = borderlens_app::NodeIdentity {
        secret: config.key,
        pinned: config.partners.pinned(),
        privacy: config.partners.privacy.clone(),
    };
    let partners = config
        .partners
        .partners
        .into_iter()
        .filter_map(|p| decode_hex32(&p.token_sha256).map(|h| (p, h)))
        .collect();
    let state = NodeState {
        pool: Arc::new(pool),
        node: Arc::new(FederationNode::with_identity(identity)),
        partners: Arc::new(partners),
    };
    Ok(Router::new()
        .route("/federation/v1/sessions", post(open))
        .route("/federation/v1/sessions/{id}/call", post(call))
        .route("/federation/v1/sessions/{id}/finish", post(finish))
        .route("/federation/v1/sessions/{id}/abort", post(abort))
        .layer(DefaultBodyLimit::max(MAX_NODE_BODY))
        .with_state(state))
}

/// Serves a node on a listener the caller bound, until `shutdown` completes.
pub async fn run_node(
    listener: TcpListener,
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let tls = config.tls.clone();
    let router = node_app(config)?;
    let served = match tls {
        Some(tls) => {
            let listener = TlsListener::new(listener, tls);
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            // Every round is a small request and an answer of tens of kilobytes: without
            // TCP_NODELAY the answer's last segment waits for the coordinator's delayed
            // acknowledgement.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    served.map_err(|source| ServeError::Io {
        what: "serving the federation node".to_string(),
        source,
    })
}

/// Serves a node on `addr` until Ctrl-C or SIGTERM; `on_listening` gets the address bound.
pub fn serve_node(
    config: NodeConfig,
    addr: SocketAddr,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    crate::runtime()?.block_on(async move {
        let (listener, local) = crate::bind(addr).await?;
        on_listening(local);
        run_node(listener, config, crate::shutdown_signal()).await
    })
}

/// The partner whose token the request bears.
fn partner(state: &NodeState, headers: &HeaderMap) -> Result<Partner, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthenticated("a partner's bearer token is required"))?;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut found = None;
    for (p, hash) in state.partners.iter() {
        if bool::from(hash.ct_eq(&digest)) {
            found = Some(p.clone());
        }
    }
    found.ok_or_else(|| ApiError::unauthenticated("unknown partner token"))
}

fn signed(partner: &Partner, mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&partner.node_token) {
        response.headers_mut().insert(NODE_TOKEN_HEADER, value);
    }
    response
}

/// Runs `job` on this node for the partner the request's token names, on a pooled store with
/// the partner as the audit actor; the answer (or the error) bears the node's token for that
/// partner.
async fn for_partner<T>(
    state: &NodeState,
    headers: &HeaderMap,
    job: impl FnOnce(&FederationNode, &mut dyn Backend, &str) -> Result<T, JobError> + Send + 'static,
) -> Result<Response, ApiError>
where
    T: IntoResponse + Send + 'static,
{
    let partner = partner(state, headers)?;
    let node = Arc::clone(&state.node);
    let name = partner.name.clone();
    let out = pool::blocking(
        &state.pool,
        Some(format!("federation:{name}")),
        move |store| job(&node, store, &name),
    )
    .await;
    Ok(signed(&partner, answer(out)))
}

fn same_session(body: &str, path: &str) -> Result<(), JobError> {
    if body == path {
        Ok(())
    } else {
        Err(JobError::Invalid(format!(
            "the body names session {body:?}, the path {path:?}"
        )))
    }
}

async fn open(
    State(state): State<NodeState>,
    headers: HeaderMap,
    Json(open): Json<OpenSession>,
) -> Result<Response, ApiError> {
    for_partner(&state, &headers, move |node, store, partner| {
        node.open(store, partner, &open)
            .map(|()| StatusCode::NO_CONTENT)
    })
    .await
}

async fn call(
    State(state): State<NodeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    for_partner(&state, &headers, move |node, store, partner| {
        node.call(store, partner, &id, &body)
            .map(|bytes| ([(header::CONTENT_TYPE, "application/octet-stream")], bytes))
    })
    .await
}

async fn finish(
    State(state): State<NodeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(finish): Json<FinishSession>,
) -> Result<Response, ApiError> {
    for_partner(&state, &headers, move |node, store, partner| {
        same_session(&finish.session, &id)?;
        node.finish(store, partner, &finish).map(Json)
    })
    .await
}

async fn abort(
    State(state): State<NodeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(abort): Json<AbortSession>,
) -> Result<Response, ApiError> {
    for_partner(&state, &headers, move |node, store, partner| {
        same_session(&abort.session, &id)?;
        node.abort(store, partner, &abort)
            .map(|()| StatusCode::NO_CONTENT)
    })
    .await
}

fn answer<T: IntoResponse>(out: Result<T, ApiError>) -> Response {
    match out {
        Ok(ok) => ok.into_response(),
        Err(e) => e.into_response(),
    }
}

/// A node in the coordinator's nodes file (`borderlens federate train --nodes FILE`, TOML,
/// `[[node]]` tables; party ids are the order in the file, from 0).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct NodeEntry {
    /// Its name in reports.
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:7301`, or `https://…` with `ca`.
    pub url: String,
    /// The token presented to it.
    pub token: String,
    /// The token it must answer with.
    pub node_token: String,
    /// For an `https://` URL: the certificate (PEM) of the authority that signed the node's
    /// certificate, relative to the nodes file's folder. The only certificate trusted for this
    /// node.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

/// A node's TLS identity: its certificate chain and private key (PEM files), as rustls serves
/// them.
#[derive(Clone)]
pub struct NodeTls {
    config: Arc<rustls::ServerConfig>,
}

impl NodeTls {
    /// Reads the certificate chain (the node's first) and the private key; errors name the file.
    pub fn read(cert: &std::path::Path, key: &std::path::Path) -> Result<NodeTls, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::PrivateKeyDer;
        let certs = pem_certificates(cert)?;
        let private = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(ring_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, private)
            .map_err(|e| {
                format!(
                    "{} and {}: the key does not serve this certificate: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
        Ok(NodeTls {
            config: Arc::new(config),
        })
    }
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls")
    }
}

/// Installs rustls' ring provider ([`ring_provider`]) as this process's default, once (a
/// provider installed already stays): reqwest is built with rustls and no provider of its own,
/// and a client built without one would panic.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ring_provider().install_default();
    });
}

/// A reqwest client builder (plain HTTP; TLS with this process's rustls provider, installed
/// first): every reqwest client of the workspace starts here.
pub fn http_client() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
}

/// rustls' ring provider: TLS 1.2 and 1.3 with X25519 and the NIST curves, without the hybrid
/// post-quantum key exchange (X25519MLKEM768) that rustls offers only with aws-lc-rs, whose C
/// build would add minutes to every cold build (rustls marks ring's provider deprecated for
/// that reason).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificates of a PEM file, in order (one at least); errors name the file.
fn pem_certificates(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// The certificates of a PEM file, as the only roots a client trusts; errors name the file.
fn trusted_roots(path: &std::path::Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// How long a client may take over its TLS handshake before the node drops it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes a node runs at once; a connection beyond them is closed at once (a client
/// opening silent connections cannot take every descriptor).
const MAX_HANDSHAKES: usize = 64;

type Handshake = Result<
    (
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    ),
    String,
>;

/// A listener whose connections are TLS: each handshake runs as a task of its own (bounded by
/// [`HANDSHAKE_TIMEOUT`], at most [`MAX_HANDSHAKES`] at once), so that a slow or silent client
/// never holds up the others; a failed handshake is dropped, and logged at most once a second
/// (with how many were not).
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshakes: tokio::task::JoinSet<Handshake>,
    /// When a failure was last logged, and the failures since that were not.
    logged: Option<std::time::Instant>,
    unlogged: u64,
}

impl TlsListener {
    fn new(tcp: TcpListener, tls: NodeTls) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(tls.config),
            handshakes: tokio::task::JoinSet::new(),
            logged: None,
            unlogged: 0,
        }
    }

    fn log(&mut self, what: &str) {
        let now = std::time::Instant::now();
        if self
            .logged
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.unlogged += 1;
            return;
        }
        let more = match std::mem::take(&mut self.unlogged) {
            0 => String::new(),
            n => format!(" ({n} more since the last line)"),
        };
        eprintln!("borderlens node: {what}{more}");
        self.logged = Some(now);
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, addr)) if self.handshakes.len() >= MAX_HANDSHAKES => {
                        drop(tcp);
                        self.log(&format!(
                            "{MAX_HANDSHAKES} TLS handshakes running: closed {addr}'s connection"
                        ));
                    }
                    Ok((tcp, addr)) => {
                        let _ = tcp.set_nodelay(true);
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                                Ok(Ok(tls)) => Ok((tls, addr)),
                                Ok(Err(e)) => Err(format!("TLS handshake with {addr} failed: {e}")),
                                Err(_) => Err(format!("TLS handshake with {addr} timed out")),
                            }
                        });
                    }
                    // Out of descriptors and the like: wait a little, as axum's own listener does.
                    Err(e) => {
                        self.log(&format!("accepting a connection failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    match done {
                        Ok(Ok(connection)) => return connection,
                        Ok(Err(why)) => self.log(&why),
                        Err(e) => self.log(&format!("a TLS handshake task failed: {e}")),
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The coordinator's nodes file.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct NodesFile {
    /// The nodes, party 0 first.
    #[serde(rename = "node", default)]
    pub nodes: Vec<NodeEntry>,
}

impl NodesFile {
    /// Reads and checks a nodes file; errors name the file and the node at fault.
    pub fn read(path: &std::path::Path) -> Result<NodesFile, String> {
        let mut file: NodesFile = read_toml(path)?;
        if file.nodes.len() < 2 {
            return Err(format!(
                "{}: {} [[node]] listed, federated training needs at least 2",
                path.display(),
                file.nodes.len()
            ));
        }
        let folder = path.parent().unwrap_or(std::path::Path::new("."));
        for (i, n) in file.nodes.iter_mut().enumerate() {
            let at = format!("{}: node {} ({:?})", path.display(), i + 1, n.name);
            if !(n.url.starts_with("http://") || n.url.starts_with("https://")) {
                return Err(format!(
                    "{at}: field url must start with http:// or https://"
                ));
            }
            match (n.url.starts_with("https://"), &n.ca) {
                (true, None) => {
                    return Err(format!(
                        "{at}: an https:// node needs field ca, the certificate (PEM) of the \
                         authority that signed the node's certificate"
                    ))
                }
                (false, Some(_)) => {
                    return Err(format!(
                        "{at}: field ca is given but the url is http://: use https://"
                    ))
                }
                (true, Some(ca)) => {
                    let ca = folder.join(ca);
                    trusted_roots(&ca).map_err(|e| format!("{at}: field ca: {e}"))?;
                    n.ca = Some(ca);
                }
                (false, None) => {}
            }
            if HeaderValue::from_str(&format!("Bearer {}", n.token)).is_err() || n.token.is_empty()
            {
                return Err(format!("{at}: field token is empty or not printable"));
            }
            if n.node_token.is_empty() {
                return Err(format!("{at}: field node_token is empty"));
            }
        }
        Ok(file)
    }
}

/// The coordinator's HTTP client of its nodes: every answer must bear the node's token.
pub struct HttpNodes {
    /// Drives the requests: a round's requests to every node go out together on one thread
    /// (no thread per request, no hop through a blocking client's own runtime).
    runtime: tokio::runtime::Runtime,
    /// One client per node: an https:// node's trusts its `ca` only.
    clients: Vec<reqwest::Client>,
    nodes: Vec<NodeEntry>,
    session: String,
}

impl HttpNodes {
    /// A client of `nodes` (party ids in their order); `timeout` bounds each request.
    pub fn new(nodes: NodesFile, timeout: Duration) -> Result<HttpNodes, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the HTTP client's runtime: {e}"))?;
        let mut clients = Vec::new();
        for node in &nodes.nodes {
            let https = node.url.starts_with("https://");
            // The node's `ca` is the only root: an http:// node's client trusts none (a
            // redirect to https:// would find no system roots), and redirects are not followed.
            let roots = match (&node.ca, https) {
                (Some(ca), true) => {
                    trusted_roots(ca).map_err(|e| format!("node {}: {e}", node.name))?
                }
                (None, false) => rustls::RootCertStore::empty(),
                _ => {
                    return Err(format!(
                        "node {}: an https:// url needs a ca, and only an https:// url takes one",
                        node.name
                    ))
                }
            };
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(ring_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("node {}: TLS: {e}", node.name))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let client = http_client()
                .timeout(timeout)
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .tls_backend_preconfigured(tls)
                .https_only(https)
                .build()
                .map_err(|e| format!("node {}: cannot build the HTTP client: {e}", node.name))?;
            clients.push(client);
        }
        Ok(HttpNodes {
            runtime,
            clients,
            nodes: nodes.nodes,
            session: String::new(),
        })
    }

    fn node(&self, party: PartyId) -> Result<(&reqwest::Client, &NodeEntry), Unreachable> {
        let i = party as usize;
        match (self.clients.get(i), self.nodes.get(i)) {
            (Some(client), Some(node)) => Ok((client, node)),
            _ => Err(Unreachable(format!("no party {party}"))),
        }
    }

    /// Posts `body` to `path` of `party`; the answer's bytes once its status is a success and
    /// it bears the node's token.
    fn post(
        &self,
        party: PartyId,
        path: &str,
        body: Vec<u8>,
        json: bool,
    ) -> Result<Vec<u8>, Unreachable> {
        let (client, node) = self.node(party)?;
        self.runtime
            .block_on(post_to(client, node, path, body, json))
    }
}

/// An error and its causes, outermost first: reqwest's own message ("error sending request")
/// says nothing of a certificate refused or a connection reset.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

async fn post_to(
    client: &reqwest::Client,
    node: &NodeEntry,
    path: &str,
    body: Vec<u8>,
    json: bool,
) -> Result<Vec<u8>, Unreachable> {
    let url = format!("{}{path}", node.url.trim_end_matches('/'));
    let content_type = if json {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let mut response = client
        .post(&url)
        .bearer_auth(&node.token)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .map_err(|e| Unreachable(format!("{}: {}", node.name, with_causes(&e))))?;
    let status = response.status();
    // The node's token first: no byte of an answer without it is read.
    let genuine = response
        .headers()
        .get(NODE_TOKEN_HEADER)
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(node.node_token.as_bytes())));
    if !genuine {
        return Err(Unreachable(format!(
            "{}: the answer does not bear the node's token (HTTP {status}): not the node \
             listed, or it does not know this coordinator",
            node.name
        )));
    }
    let too_long = || {
        Unreachable(format!(
            "{}: an answer of more than {MAX_NODE_BODY} bytes",
            node.name
        ))
    };
    let announced = response.content_length().unwrap_or(0);
    if announced > MAX_NODE_BODY as u64 {
        return Err(too_long());
    }
    let mut bytes = Vec::with_capacity(announced as usize);
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        Unreachable(format!(
            "{}: reading the answer: {}",
            node.name,
            with_causes(&e)
        ))
    })? {
        if bytes.len() + chunk.len() > MAX_NODE_BODY {
            return Err(too_long());
        }
        bytes.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(Unreachable(format!(
            "{}: HTTP {status}: {message}",
            node.name
        )));
    }
    Ok(bytes)
}

impl Transport for HttpNodes {
    fn parties(&self) -> Vec<PartyId> {
        (0..self.nodes.len() as PartyId).collect()
    }

    fn call(&mut self, party: PartyId, call: &Call) -> Result<Vec<u8>, Unreachable> {
        let path = format!("/federation/v1/sessions/{}/call", self.session);
        self.post(party, &path, call.encode(), false)
    }

    /// The nodes answer in parallel: every request goes out at once, and all are awaited.
    fn call_all(&mut self, parties: &[PartyId], call: &Call) -> Vec<Result<Vec<u8>, Unreachable>> {
        let body = call.encode();
        let path = format!("/federation/v1/sessions/{}/call", self.session);
        let path = path.as_str();
        let requests: Vec<_> = parties
            .iter()
            .map(|&party| {
                let node = self.node(party);
                let body = body.clone();
                async move {
                    let (client, node) = node?;
                    post_to(client, node, path, body, false).await
                }
            })
            .collect();
        // Polled together on this thread: each answer is read as it arrives.
        self.runtime
            .block_on(futures_util::future::join_all(requests))
    }
}

impl NodeLinks for HttpNodes {
    fn name(&self, party: PartyId) -> String {
        self.nodes
            .get(party as usize)
            .map_or_else(|| format!("party {party}"), |n| n.name.clone())
    }

    fn open(&mut self, party: PartyId, open: &OpenSession) -> Result<(), Unreachable> {
        self.session = open.session.clone();
        let body = serde_json::to_vec(open).map_err(|e| Unreachable(e.to_string()))?;
        self.post(party, "/federation/v1/sessions", body, true)
            .map(|_| ())
    }

    fn finish(&mut self, party: PartyId, finish: &FinishSession) -> Result<Finished, Unreachable> {
        let body = serde_json::to_vec(finish).map_err(|e| Unreachable(e.to_string()))?;
        let path = format!("/federation/v1/sessions/{}/finish", finish.session);
        let bytes = self.post(party, &path, body, true)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Unreachable(format!("{}: not a finish answer: {e}", self.name(party))))
    }

    fn abort(&mut self, party: PartyId, abort: &AbortSession) -> Result<(), Unreachable> {
        let body = serde_json::to_vec(abort).map_err(|e| Unreachable(e.to_string()))?;
        let path = format!("/federation/v1/sessions/{}/abort", abort.session);
        self.post(party, &path, body, true).map(|_| ())
    }
}
