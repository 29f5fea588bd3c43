//! Container probes as the kubelet runs them: `httpGet` (2xx/3xx is success; a named
//! port is looked up in the container's ports; `User-Agent: kube-probe/1.32`) and
//! `tcpSocket` (a connection within the timeout), with `initialDelaySeconds`,
//! `periodSeconds`, `timeoutSeconds`, `successThreshold` and `failureThreshold`. The
//! startup probe runs first; once it succeeds, readiness and liveness run. `exec` and
//! `grpc` probes always fail with a message saying why (a Spin app has no process to run
//! a command in, and serves no gRPC health service).
//!
//! A [`Prober`] runs beside one container run and reports what the pod worker must act
//! on ([`Report`]); it knows nothing of the API or the sandbox.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The probe kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `startupProbe`.
    Startup,
    /// `readinessProbe`.
    Readiness,
    /// `livenessProbe`.
    Liveness,
}

impl Kind {
    /// As the kubelet names it in events ("Readiness probe failed: ...").
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Readiness => "Readiness",
            Kind::Liveness => "Liveness",
        }
    }
}

/// What the worker hears from the prober.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A probe failed once (an `Unhealthy` event).
    Failed(Kind, String),
    /// The container's readiness changed.
    Ready(bool),
    /// A liveness or startup probe failed `failureThreshold` times: restart the container.
    Kill(Kind),
}

/// One probe's outcome.
pub async fn check(probe: &Probe, container: &Container, ip: IpAddr) -> Result<(), String> {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let port_of = |port: &IntOrString| -> Result<u16, String> {
        match port {
            IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("port {name:?} is not one of the container's ports")),
        }
    };
    if let Some(http) = &probe.http_get {
        let port = port_of(&http.port)?;
        if http
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
        {
            return Err("HTTPS probes are not supported by spinlet yet".into());
        }
        let host = http.host.clone().unwrap_or_else(|| ip.to_string());
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let url = format!("http://{host}:{port}{path}");
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for h in http.http_headers.iter().flatten() {
            request.push_str(&format!("{}: {}\r\n", h.name, h.value));
        }
        request.push_str("\r\n");
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut head = Vec::with_capacity(64);
            let mut buf = [0u8; 64];
            while !head.contains(&b'\n') && head.len() < 1024 {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            Ok::<_, std::io::Error>(head)
        };
        let head = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Err(format!(
                    "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                ))
            }
            Ok(Err(e)) => return Err(format!("Get {url:?}: {e}")),
            Ok(Ok(head)) => head,
        };
        let status = String::from_utf8_lossy(&head)
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok());
        return match status {
            Some(code) if (200..400).contains(&code) => Ok(()),
            Some(code) => Err(format!("HTTP probe failed with statuscode: {code}")),
            None => Err(format!("Get {url:?}: malformed HTTP response")),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = port_of(&tcp.port)?;
        let host = tcp.host.clone().unwrap_or_else(|| ip.to_string());
        return match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if probe.exec.is_some() {
        return Err("exec probes cannot run: a Spin app has no process to run a command in".into());
    }
    if probe.grpc.is_some() {
        return Err("gRPC probes are not supported by spinlet".into());
    }
    Err("the probe has no handler".into())
}

/// Probes one container run until dropped, sending what the worker must act on.
pub struct Prober {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether the container has probes that decide its readiness.
pub fn gates_readiness(container: &Container) -> bool {
    container.readiness_probe.is_some() || container.startup_probe.is_some()
}

/// Counts consecutive results of one probe against its thresholds.
struct Counter {
    successes: i32,
    failures: i32,
}

impl Counter {
    /// Records a result; the new verdict once a threshold is crossed.
    fn record(&mut self, probe: &Probe, ok: bool) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes += 1;
            (self.successes == probe.success_threshold.unwrap_or(1).max(1)).then_some(true)
        } else {
            self.successes = 0;
            self.failures += 1;
            (self.failures == probe.failure_threshold.unwrap_or(3).max(1)).then_some(false)
        }
    }
}

fn period(probe: &Probe) -> Duration {
    Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64)
}

fn initial_delay(probe: &Probe) -> Duration {
    Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64)
}

/// Runs `kind`'s probe until it reaches a verdict that ends its part (startup success,
/// a kill), reporting readiness changes on the way.
async fn run_probe(
    kind: Kind,
    probe: &Probe,
    container: &Container,
    ip: IpAddr,
    tx: &mpsc::Sender<Report>,
) -> Option<bool> {
    tokio::time::sleep(initial_delay(probe)).await;
    let mut counter = Counter {
        successes: 0,
        failures: 0,
    };
    let mut ready: Option<bool> = None;
    loop {
        let result = check(probe, container, ip).await;
        if let Err(message) = &result {
            let _ = tx.send(Report::Failed(kind, message.clone())).await;
        }
        if let Some(verdict) = counter.record(probe, result.is_ok()) {
            match kind {
                Kind::Startup if verdict => return Some(true),
                Kind::Startup | Kind::Liveness if !verdict => {
                    let _ = tx.send(Report::Kill(kind)).await;
                    return Some(false);
                }
                Kind::Readiness if ready != Some(verdict) => {
                    ready = Some(verdict);
                    let _ = tx.send(Report::Ready(verdict)).await;
                }
                _ => {}
            }
        }
        tokio::time::sleep(period(probe)).await;
    }
}

impl Prober {
    /// Starts probing `container`, served at `ip`. Without a readiness probe the container
    /// is ready once the startup probe (if any) succeeded.
    pub fn start(container: Container, ip: IpAddr) -> (Prober, mpsc::Receiver<Report>) {
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(async move {
            if let Some(startup) = &container.startup_probe {
                if run_probe(Kind::Startup, startup, &container, ip, &tx).await != Some(true) {
                    return;
                }
            }
            if container.readiness_probe.is_none() {
                let _ = tx.send(Report::Ready(true)).await;
            }
            let readiness = async {
                if let Some(p) = &container.readiness_probe {
                    run_probe(Kind::Readiness, p, &container, ip, &tx).await;
                }
            };
            let liveness = async {
                if let Some(p) = &container.liveness_probe {
                    run_probe(Kind::Liveness, p, &container, ip, &tx).await;
                }
            };
            tokio::join!(readiness, liveness);
        });
        (Prober { task }, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(json: serde_json::Value) -> Probe {
        serde_json::from_value(json).unwrap()
    }

    /// A one-shot HTTP server answering `status` to every connection.
    async fn server(status: u16) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                    )
                    .await;
            }
        });
        port
    }

    #[tokio::test]
    async fn http_and_tcp_probes_judge_as_the_kubelet() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let c: Container = serde_json::from_value(serde_json::json!({"name": "c"})).unwrap();
        let ok = server(204).await;
        let bad = server(503).await;
        let p =
            |port: u16| probe(serde_json::json!({"httpGet": {"path": "/healthz", "port": port}}));
        assert_eq!(check(&p(ok), &c, ip).await, Ok(()));
        assert_eq!(
            check(&p(bad), &c, ip).await,
            Err("HTTP probe failed with statuscode: 503".into())
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused = check(&p(closed), &c, ip).await.unwrap_err();
        assert!(
            refused.starts_with(&format!("Get \"http://127.0.0.1:{closed}/healthz\"")),
            "{refused}"
        );
        let tcp = |port: u16| probe(serde_json::json!({"tcpSocket": {"port": port}}));
        assert_eq!(check(&tcp(ok), &c, ip).await, Ok(()));
        assert!(check(&tcp(closed), &c, ip).await.is_err());
        let named = probe(serde_json::json!({"tcpSocket": {"port": "web"}}));
        assert!(check(&named, &c, ip).await.unwrap_err().contains("\"web\""));
        let exec = probe(serde_json::json!({"exec": {"command": ["true"]}}));
        assert!(check(&exec, &c, ip)
            .await
            .unwrap_err()
            .contains("no process"));
    }

    #[test]
    fn thresholds_need_consecutive_results() {
        let p = probe(serde_json::json!({"successThreshold": 2, "failureThreshold": 2}));
        let mut c = Counter {
            successes: 0,
            failures: 0,
        };
        assert_eq!(c.record(&p, true), None);
        assert_eq!(c.record(&p, false), None);
        assert_eq!(c.record(&p, true), None);
        assert_eq!(c.record(&p, true), Some(true));
        assert_eq!(c.record(&p, true), None);
        assert_eq!(c.record(&p, false), None);
        assert_eq!(c.record(&p, false), Some(false));
    }
}
