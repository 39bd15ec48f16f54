//! The HTTPS listener of `serve --tls-listen`: the same API as the plain one, over TLS,
//! for clients that send a key only over TLS (kubectl sends `--token` to an `https://`
//! server only). Handshakes run in tasks of their own with a deadline, so a client that
//! stalls in one holds up nobody else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to serve HTTPS and with what certificate: `--tls-listen`, `--tls-cert`,
/// `--tls-key`.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsOptions {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(thiserror::Error, Debug)]
pub enum TlsError {
    #[error(
        "--tls-cert {path}: {problem}; give a PEM file with the server's certificate (and its chain), e.g. made with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem -out cert.pem`"
    )]
    Cert { path: PathBuf, problem: String },
    #[error("--tls-key {path}: {problem}; give the PEM private key of --tls-cert")]
    Key { path: PathBuf, problem: String },
    #[error("--tls-cert and --tls-key do not go together: {0}")]
    Config(String),
    #[error("cannot listen on {addr} for HTTPS: {source} (choose another --tls-listen)")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let problem = |problem: String| TlsError::Cert {
        path: path.to_path_buf(),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| problem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(e.to_string()))?;
    if certs.is_empty() {
        return Err(problem("no CERTIFICATE block in it".into()));
    }
    Ok(certs)
}

/// Binds `options.listen` and loads the certificate and key.
pub async fn bind(options: &TlsOptions) -> Result<TlsListener, TlsError> {
    let certs = certificates(&options.cert)?;
    let key = PrivateKeyDer::from_pem_file(&options.key).map_err(|e| TlsError::Key {
        path: options.key.clone(),
        problem: e.to_string(),
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    // HTTP/1.1 only: the server speaks HTTP/1 (axum is built without http2).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpListener::bind(options.listen)
        .await
        .map_err(|source| TlsError::Listen {
            addr: options.listen,
            source,
        })?;
    let addr = tcp.local_addr().map_err(|source| TlsError::Listen {
        addr: options.listen,
        source,
    })?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let (done, ready) = mpsc::channel(64);
    tokio::spawn(accept_loop(tcp, acceptor, done));
    Ok(TlsListener { ready, addr })
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    done: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // The server stopped serving: stop accepting.
            _ = done.closed() => return,
        };
        let (acceptor, done) = (acceptor.clone(), done.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = done.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// TLS connections whose handshake is done, for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (it never does while this lives): wait for shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// The address of the client of a TLS connection, as `ConnectInfo` gives it to handlers.
#[derive(Clone, Copy, Debug)]
pub struct TlsPeer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for TlsPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        TlsPeer(*stream.remote_addr())
    }
}

/// The client address of a request, over plain HTTP or TLS.
pub fn peer(request: &axum::extract::Request) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| {
            extensions
                .get::<axum::extract::ConnectInfo<TlsPeer>>()
                .map(|c| c.0.0)
        })
}
