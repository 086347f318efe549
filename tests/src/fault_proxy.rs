//! A loopback HTTP proxy in front of `moto_server` that fails one AWS operation on command.
//!
//! For tests of a *separate process* (the `attio-relay` binary), where the adapter wrappers in
//! [`crate::faults`] cannot reach: point the process's `--endpoint-url` at
//! [`FaultProxy::endpoint`], and every request is forwarded to the upstream unchanged except
//! those whose `X-Amz-Target` header names the chosen operation (AWS JSON protocol, e.g.
//! `AmazonSQS.DeleteMessageBatch`): the first [`FaultRule::pass`] of them go through, every
//! later one fails. Failing every later call (not just the next) is deliberate: the SDK retries
//! a failed call, and one injected failure would be retried away.
//!
//! The proxy runs on its own thread and runtime, so a test may block on a child process
//! without starving it. It speaks just enough HTTP/1.1 for the AWS SDK: one request per
//! connection, bodies with `Content-Length`. The upstream must be loopback: the tests never
//! call real endpoints.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What a failed call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyFault {
    /// HTTP 500 with an SQS-style JSON error body (`InternalError`): the service failed.
    InternalError,
    /// The connection is closed without an answer: the network or the service died mid-call.
    DropConnection,
    /// HTTP 200 `{"Messages": []}`: what a `ReceiveMessage` short poll may answer while the
    /// queue still holds messages (it samples a subset of SQS's servers).
    EmptyReceive,
    /// For `SendMessageBatch`: the last entry is answered in `Failed` (`InternalError`,
    /// `SenderFault: false`, as SendMessageBatch reports a per-entry failure) and only the
    /// others are forwarded; the upstream's `Successful` list is passed back.
    RefuseLastEntry,
}

/// Which calls fail, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// The `X-Amz-Target` of the operation, e.g. `AmazonSQS.DeleteMessageBatch`.
    pub target: String,
    /// How many calls of it succeed before every later one fails.
    pub pass: usize,
    pub fault: ProxyFault,
    /// How many calls fail after those (`None`: every later one); later calls pass again.
    pub times: Option<usize>,
}

impl FaultRule {
    /// Lets `pass` calls of `target` through, then fails the rest with `fault`.
    pub fn after(pass: usize, target: &str, fault: ProxyFault) -> Self {
        Self {
            target: target.to_owned(),
            pass,
            fault,
            times: None,
        }
    }

    /// Fails only `times` calls (after the passed ones); the calls after those pass again.
    pub fn times(self, times: usize) -> Self {
        Self {
            times: Some(times),
            ..self
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    /// Calls of the rule's target seen.
    matched: AtomicUsize,
    /// Of those, how many were failed.
    failed: AtomicUsize,
}

/// A running proxy; stopped when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    endpoint: String,
    counters: Arc<Counters>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

const MAX_HEAD_BYTES: usize = 64 * 1024;

impl FaultProxy {
    /// Starts a proxy on a free loopback port that forwards to `upstream` (e.g. moto's
    /// `http://127.0.0.1:5000`) and applies `rule`. Panics on a non-loopback upstream.
    pub fn start(upstream: &str, rule: FaultRule) -> Self {
        let upstream = upstream.trim_end_matches('/').to_owned();
        assert!(
            is_loopback(&upstream),
            "the fault proxy only forwards to loopback, not {upstream}"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy address");
        let counters = Arc::new(Counters::default());
        let (shutdown, stopped) = oneshot::channel();
        let shared = Arc::clone(&counters);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(serve(listener, upstream, rule, shared, stopped));
        });
        Self {
            endpoint: format!("http://{addr}"),
            counters,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The URL to give the process under test as its AWS endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Calls of the rule's operation seen so far, failed or not.
    pub fn matched(&self) -> usize {
        self.counters.matched.load(Ordering::SeqCst)
    }

    /// Calls of the rule's operation that were failed.
    pub fn failed(&self) -> usize {
        self.counters.failed.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn is_loopback(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

async fn serve(
    listener: std::net::TcpListener,
    upstream: String,
    rule: FaultRule,
    counters: Arc<Counters>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("proxy listener");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("proxy client");
    let (upstream, rule) = (Arc::new(upstream), Arc::new(rule));
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (client, upstream, rule, counters) = (
                    client.clone(),
                    Arc::clone(&upstream),
                    Arc::clone(&rule),
                    Arc::clone(&counters),
                );
                tokio::spawn(async move {
                    let _ = handle(stream, &client, &upstream, &rule, &counters).await;
                });
            }
        }
    }
}

/// One request as read off the wire.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn handle(
    mut stream: TcpStream,
    client: &reqwest::Client,
    upstream: &str,
    rule: &FaultRule,
    counters: &Counters,
) -> std::io::Result<()> {
    let Some(request) = read_request(&mut stream).await? else {
        return Ok(());
    };
    let faulted = request.header("x-amz-target") == Some(rule.target.as_str()) && {
        let call = counters.matched.fetch_add(1, Ordering::SeqCst);
        call >= rule.pass && rule.times.is_none_or(|times| call < rule.pass + times)
    };
    if faulted {
        counters.failed.fetch_add(1, Ordering::SeqCst);
        return match rule.fault {
            ProxyFault::DropConnection => Ok(()),
            ProxyFault::EmptyReceive => {
                let headers = [(
                    "content-type".to_owned(),
                    "application/x-amz-json-1.0".to_owned(),
                )];
                write_response(&mut stream, 200, &headers, br#"{"Messages":[]}"#).await
            }
            ProxyFault::RefuseLastEntry => {
                let (status, headers, body) = refuse_last_entry(client, upstream, request)
                    .await
                    .unwrap_or_else(|e| {
                        let message = format!("fault proxy: upstream failed: {e}");
                        (502, Vec::new(), message.into_bytes())
                    });
                write_response(&mut stream, status, &headers, &body).await
            }
            ProxyFault::InternalError => {
                let body = br#"{"__type":"com.amazonaws.sqs#InternalError","message":"injected by the test's fault proxy"}"#;
                let headers = [
                    (
                        "content-type".to_owned(),
                        "application/x-amz-json-1.0".to_owned(),
                    ),
                    (
                        "x-amzn-query-error".to_owned(),
                        "InternalError;Receiver".to_owned(),
                    ),
                ];
                write_response(&mut stream, 500, &headers, body).await
            }
        };
    }
    match forward(client, upstream, request).await {
        Ok((status, headers, body)) => write_response(&mut stream, status, &headers, &body).await,
        Err(e) => {
            let message = format!("fault proxy: upstream failed: {e}");
            write_response(&mut stream, 502, &[], message.as_bytes()).await
        }
    }
}

/// Reads one request; `None` when the client closed the connection without sending one.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(invalid("request head too long"));
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(invalid("connection closed mid-request"))
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| invalid("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (method, path) = (
        request_line.next().unwrap_or_default().to_owned(),
        request_line.next().unwrap_or_default().to_owned(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut request = Request {
        method,
        path,
        headers,
        body: buf[head_end + 4..].to_vec(),
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        return Err(invalid("chunked request bodies are not supported"));
    }
    let length: usize = request
        .header("content-length")
        .map_or(Ok(0), str::parse)
        .map_err(|_| invalid("bad content-length"))?;
    while request.body.len() < length {
        let mut chunk = vec![0u8; length - request.body.len()];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(invalid("connection closed mid-body"));
        }
        request.body.extend_from_slice(&chunk[..n]);
    }
    request.body.truncate(length);
    Ok(Some(request))
}

/// Headers that describe one hop, not the message: the proxy sets its own.
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    request: Request,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), reqwest::Error> {
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut outgoing = client.request(method, format!("{upstream}{}", request.path));
    // Host too: the request was signed for it, and moto builds queue URLs from it.
    for (name, value) in request.headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing.body(request.body).send().await?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(n, _)| !hop_by_hop(n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    Ok((status, headers, response.bytes().await?.to_vec()))
}

/// Forwards a `SendMessageBatch` without its last entry, then answers that entry as failed
/// beside the upstream's answer for the others.
async fn refuse_last_entry(
    client: &reqwest::Client,
    upstream: &str,
    mut request: Request,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), Box<dyn std::error::Error + Send + Sync>> {
    let mut body: serde_json::Value = serde_json::from_slice(&request.body)?;
    let entries = body["Entries"]
        .as_array_mut()
        .ok_or("a SendMessageBatch without Entries")?;
    let last = entries.pop().ok_or("a SendMessageBatch without entries")?;
    let failed = serde_json::json!({
        "Id": last["Id"],
        "SenderFault": false,
        "Code": "InternalError",
        "Message": "injected by the test's fault proxy"
    });
    let (status, headers, answer) = if entries.is_empty() {
        (200, Vec::new(), serde_json::json!({"Successful": []}))
    } else {
        request.body = serde_json::to_vec(&body)?;
        let (status, headers, answer) = forward(client, upstream, request).await?;
        (status, headers, serde_json::from_slice(&answer)?)
    };
    let mut answer: serde_json::Value = answer;
    let Some(object) = answer.as_object_mut() else {
        return Ok((status, headers, serde_json::to_vec(&answer)?));
    };
    match object.get_mut("Failed").and_then(|f| f.as_array_mut()) {
        Some(list) => list.push(failed),
        None => {
            object.insert("Failed".to_owned(), serde_json::json!([failed]));
        }
    }
    let headers = if headers.is_empty() {
        vec![(
            "content-type".to_owned(),
            "application/x-amz-json-1.0".to_owned(),
        )]
    } else {
        headers
    };
    Ok((status, headers, serde_json::to_vec(&answer)?))
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    const TARGET: &str = "AmazonSQS.DeleteMessageBatch";

    async fn upstream() -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/"))
            .and(header("x-amz-target", TARGET))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"Successful\":[]}"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/"))
            .and(header("x-amz-target", "AmazonSQS.ReceiveMessage"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"Messages\":[]}"))
            .mount(&server)
            .await;
        server
    }

    async fn call(proxy: &FaultProxy, target: &str) -> Result<(u16, String), reqwest::Error> {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .post(format!("{}/", proxy.endpoint()))
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.0")
            .body("{\"QueueUrl\":\"q\"}")
            .send()
            .await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    #[tokio::test]
    async fn the_target_passes_n_times_then_always_fails_and_others_pass() {
        let server = upstream().await;
        let proxy = FaultProxy::start(
            &server.uri(),
            FaultRule::after(2, TARGET, ProxyFault::InternalError),
        );
        for _ in 0..2 {
            let (status, body) = call(&proxy, TARGET).await.expect("passes");
            assert_eq!((status, body.as_str()), (200, "{\"Successful\":[]}"));
        }
        for _ in 0..2 {
            let (status, body) = call(&proxy, TARGET).await.expect("answered");
            assert_eq!(status, 500);
            assert!(body.contains("InternalError"), "{body}");
        }
        let (status, body) = call(&proxy, "AmazonSQS.ReceiveMessage")
            .await
            .expect("other");
        assert_eq!((status, body.as_str()), (200, "{\"Messages\":[]}"));
        assert_eq!((proxy.matched(), proxy.failed()), (4, 2));
        let received = server.received_requests().await.expect("recorded");
        assert_eq!(received.len(), 3, "failed calls never reach the upstream");
        assert_eq!(
            received[0].body, b"{\"QueueUrl\":\"q\"}",
            "the body is forwarded unchanged"
        );
    }

    #[tokio::test]
    async fn a_dropped_connection_is_an_error_for_the_caller() {
        let server = upstream().await;
        let proxy = FaultProxy::start(
            &server.uri(),
            FaultRule::after(0, TARGET, ProxyFault::DropConnection),
        );
        assert!(call(&proxy, TARGET).await.is_err());
        assert_eq!(proxy.failed(), 1);
        assert!(call(&proxy, "AmazonSQS.ReceiveMessage").await.is_ok());
    }

    #[tokio::test]
    async fn a_bounded_rule_fails_only_that_many_calls() {
        let server = upstream().await;
        let receive = "AmazonSQS.ReceiveMessage";
        let proxy = FaultProxy::start(
            &server.uri(),
            FaultRule::after(1, receive, ProxyFault::EmptyReceive).times(1),
        );
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(call(&proxy, receive).await.expect("answered"));
        }
        assert_eq!((proxy.matched(), proxy.failed()), (3, 1));
        assert!(answers.iter().all(|(status, _)| *status == 200));
        assert_eq!(
            server.received_requests().await.expect("recorded").len(),
            2,
            "the one failed call never reached the upstream"
        );
    }

    #[tokio::test]
    async fn a_batch_send_loses_its_last_entry_only() {
        let target = "AmazonSQS.SendMessageBatch";
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header("x-amz-target", target))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "Successful": [{"Id": "r0", "MessageId": "m-0", "MD5OfMessageBody": "x"}],
                "Failed": []
            })))
            .mount(&server)
            .await;
        let proxy = FaultProxy::start(
            &server.uri(),
            FaultRule::after(0, target, ProxyFault::RefuseLastEntry),
        );
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .post(format!("{}/", proxy.endpoint()))
            .header("x-amz-target", target)
            .body(r#"{"QueueUrl":"q","Entries":[{"Id":"r0","MessageBody":"a"},{"Id":"r1","MessageBody":"b"}]}"#)
            .send()
            .await
            .expect("answered");
        let answer: serde_json::Value = response.json().await.expect("json");
        assert_eq!(answer["Successful"][0]["Id"], "r0");
        assert_eq!(answer["Failed"][0]["Id"], "r1");
        assert_eq!(answer["Failed"][0]["SenderFault"], false);
        let received = server.received_requests().await.expect("recorded");
        let forwarded: serde_json::Value = serde_json::from_slice(&received[0].body).expect("json");
        assert_eq!(
            forwarded["Entries"].as_array().map(Vec::len),
            Some(1),
            "only the other entries reach the upstream"
        );
    }

    #[test]
    #[should_panic(expected = "only forwards to loopback")]
    fn only_loopback_upstreams_are_accepted() {
        let _ = FaultProxy::start(
            "https://sqs.us-east-1.amazonaws.com",
            FaultRule::after(0, TARGET, ProxyFault::InternalError),
        );
    }
}
