//! The shipped nginx site (`deploy/nginx/wxkit.conf`) run for real in front of test instances: only its ports,
//! names, upstreams and certificate paths are substituted. TLS with a throwaway CA made by `openssl`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

/// A running nginx that a test started (and is the only one to stop).
#[derive(Debug)]
pub struct Nginx {
    /// `https://127.0.0.1:PORT`: what clients and `server.public_base_url` use.
    pub https_url: String,
    /// The plain-HTTP port (it only redirects to HTTPS).
    pub http_port: u16,
    /// The test CA's certificate (PEM).
    pub ca_pem: Vec<u8>,
    dir: tempfile::TempDir,
    child: Child,
    bin: &'static str,
}

/// The shipped site file.
pub fn site_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/wxkit.conf")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate for 127.0.0.1 / localhost signed by it, in `dir`: `ca.pem`, `cert.pem`, `key.pem`.
fn make_certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=wxkit test CA",
        ])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
    run(Command::new("openssl").current_dir(dir).arg("req").args(ec).args([
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
        "-subj",
        "/CN=localhost",
    ]));
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]));
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl Nginx {
    /// Starts nginx with the shipped site in front of `upstreams` (`127.0.0.1:PORT` each). `None` when nginx is not
    /// installed outside CI (CI installs it; there it is a failure).
    pub fn start(upstreams: &[String]) -> Option<Nginx> {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(nginx) = nginx else {
            assert!(
                !crate::is_ci(),
                "CI=true but nginx is not installed (Debian package nginx)"
            );
            eprintln!("\n*** SKIPPING a reverse-proxy test: nginx is not installed ***\n");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        make_certificates(dir.path());
        let (https_port, http_port) = (crate::free_port(), crate::free_port());
        let shipped = std::fs::read_to_string(site_file()).expect("deploy/nginx/wxkit.conf");
        let mut servers = String::new();
        for u in upstreams {
            servers.push_str(&format!("    server {u} max_fails=1 fail_timeout=2s;\n"));
        }
        let site = shipped
            .lines()
            .filter(|l| !l.contains("listen [::]"))
            .filter(|l| !l.trim_start().starts_with("server 127.0.0.1:8081"))
            .map(|l| {
                if l.trim_start().starts_with("server 127.0.0.1:8080") {
                    servers.trim_end().to_owned()
                } else {
                    l.replace("listen 80;", &format!("listen 127.0.0.1:{http_port};"))
                        .replace("listen 443 ssl", &format!("listen 127.0.0.1:{https_port} ssl"))
                        .replace("coupons.example.com", "127.0.0.1 localhost")
                        .replace(
                            "/etc/ssl/wxkit/fullchain.pem",
                            &dir.path().join("cert.pem").display().to_string(),
                        )
                        .replace(
                            "/etc/ssl/wxkit/privkey.pem",
                            &dir.path().join("key.pem").display().to_string(),
                        )
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.path().join("site.conf"), site).expect("site");
        let d = dir.path().display();
        let user = if running_as_root() { "user root;" } else { "" };
        let main = format!(
            "daemon off;\n{user}\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 include {d}/site.conf;\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), main).expect("nginx.conf");
        let conf = dir.path().join("nginx.conf");
        let test = Command::new(nginx)
            .args(["-t", "-q", "-e"])
            .arg(dir.path().join("error.log"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("nginx -t runs");
        assert!(
            test.status.success(),
            "the shipped site does not load: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = Command::new(nginx)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let ca_pem = std::fs::read(dir.path().join("ca.pem")).expect("ca");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", https_port)).is_err() {
            assert!(started.elapsed().as_secs() < 10, "nginx did not listen within 10 s");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(Nginx {
            https_url: format!("https://127.0.0.1:{https_port}"),
            http_port,
            ca_pem,
            dir,
            child,
            bin: nginx,
        })
    }

    /// An HTTPS client trusting the test CA, connecting from `local` (a loopback address of its own, so that nginx
    /// sees a client of its own: 127.0.0.2, 127.0.0.3...). Redirects are not followed.
    pub fn client(&self, local: IpAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca_pem).expect("CA pem"))
            .local_address(local)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds")
    }

    /// Takes `upstream` (`127.0.0.1:PORT`) out of the rotation (`down`) or puts it back, and reloads nginx — the
    /// rolling-restart step of docs/operations.md (`nginx -s reload`: requests in flight finish on the old workers).
    pub async fn set_down(&self, upstream: &str, down: bool) {
        let path = self.dir.path().join("site.conf");
        let site = std::fs::read_to_string(&path).expect("site");
        let (up, out) = (
            format!("server {upstream} max_fails=1 fail_timeout=2s;"),
            format!("server {upstream} down;"),
        );
        let site = if down {
            site.replace(&up, &out)
        } else {
            site.replace(&out, &up)
        };
        std::fs::write(&path, site).expect("site");
        let d = self.dir.path();
        run(Command::new(self.bin)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .args(["-s", "reload"]));
        // The master starts new workers with the new upstreams; the old ones finish what they have.
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// nginx's access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// A `wss://` WebSocket through nginx to `url`, with `origin`; `Err(status)` when refused before the upgrade.
    pub async fn websocket(&self, url: &str, origin: &str) -> Result<Wss, u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile_certs(&self.ca_pem) {
            roots.add(cert).expect("CA cert");
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let parsed = url::Url::parse(url).expect("ws url");
        let port = parsed.port().expect("a port");
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("tcp");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let tls = connector.connect(name, tcp).await.expect("TLS handshake with nginx");
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert("origin", origin.parse().expect("origin"));
        match tokio_tungstenite::client_async(request, tls).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("websocket through nginx: {e}"),
        }
    }
}

/// A WebSocket over TLS.
pub type Wss = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.expect("a PEM certificate"))
        .collect()
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master: it stops its workers (a SIGKILL would leave them running, orphaned, on their ports).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
