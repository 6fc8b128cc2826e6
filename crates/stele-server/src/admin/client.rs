//! The HTTP requests of `stele admin` and how their failures read: each [`Failure`] is one
//! line that names the cause and what to do (credentials, the address, the CA).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use base64::Engine;

/// What rustls says when the first answer to its hello is not a TLS record (plain HTTP).
const NOT_TLS_TEXT: &str = "InvalidContentType";
/// What hyper says when an `http://` request is answered in TLS (a secure node).
const TLS_ANSWER_TEXT: &str = "invalid HTTP version";
/// The most bytes of a refusal's body quoted in the error line.
const BODY_QUOTED_MAX: usize = 200;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Failure {
    /// 401: no credentials, wrong ones, or a user without the right.
    Unauthorized { url: String, with_credentials: bool },
    /// Nothing listens at the address.
    Refused { url: String },
    /// The node's certificate is not one the client trusts.
    Certificate { url: String, detail: String },
    /// An `https://` URL at a port that answers without TLS.
    NotTls { url: String },
    /// An `http://` URL at a port that answers in TLS.
    TlsOnly { url: String },
    /// No answer within the timeout.
    Timeout { url: String, secs: f64 },
    /// The node answered with another error status.
    Status {
        url: String,
        status: u16,
        body: String,
    },
    /// Any other failure to connect or to read the answer.
    Transport { url: String, detail: String },
    /// An answer that is not what a node sends.
    Unexpected(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unauthorized {
                url,
                with_credentials: false,
            } => write!(
                f,
                "{url} answered 401 Unauthorized: credentials are missing; give --username and \
                 --password of an $ops or $admins user"
            ),
            Failure::Unauthorized { url, .. } => write!(
                f,
                "{url} answered 401 Unauthorized: the credentials are wrong or the user may not \
                 do this (an $ops or $admins user is needed)"
            ),
            Failure::Refused { url } => write!(
                f,
                "cannot connect to {url}: connection refused (is the node running, and is --url \
                 its HTTP address?)"
            ),
            Failure::Certificate { url, detail } => write!(
                f,
                "TLS with {url} failed, the node's certificate is not trusted ({detail}); pass \
                 --tls-ca-file with the CA certificate that signed it"
            ),
            Failure::NotTls { url } => write!(
                f,
                "TLS with {url} failed: the node answers without TLS there (an insecure node \
                 takes http://)"
            ),
            Failure::TlsOnly { url } => write!(
                f,
                "{url} did not answer in plain HTTP: the node is likely secure (use https:// \
                 and --tls-ca-file)"
            ),
            Failure::Timeout { url, secs } => {
                write!(f, "{url} did not answer within {secs} s (--timeout)")
            }
            Failure::Status { url, status, body } => {
                write!(f, "{url} answered {status}")?;
                if !body.is_empty() {
                    write!(f, ": {body}")?;
                }
                Ok(())
            }
            Failure::Transport { url, detail } => write!(f, "{url}: {detail}"),
            Failure::Unexpected(message) => f.write_str(message),
        }
    }
}

/// Requests to one node.
pub(super) struct AdminClient {
    http: reqwest::Client,
    base_url: String,
    /// The `authorization` header, when credentials were given.
    authorization: Option<String>,
    timeout: Duration,
}

impl AdminClient {
    /// A client for the node at `base_url`; an error names the option that is wrong.
    pub fn new(
        base_url: &str,
        ca_file: Option<&Path>,
        credentials: Option<(String, String)>,
        timeout: Duration,
    ) -> Result<AdminClient, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout);
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("--tls-ca-file {}: {e}", path.display()))?;
            let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                format!(
                    "--tls-ca-file {}: not a PEM certificate: {e}",
                    path.display()
                )
            })?;
            builder = builder.add_root_certificate(ca);
        }
        let http = builder
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let authorization = credentials.map(|(login, password)| {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
            format!("Basic {encoded}")
        });
        Ok(AdminClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            authorization,
            timeout,
        })
    }

    /// The node's address, as given.
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// `GET path`, answered with JSON.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, Failure> {
        let url = format!("{}{path}", self.base_url);
        let body = self.send(self.http.get(&url), &url).await?;
        serde_json::from_str(&body)
            .map_err(|e| Failure::Unexpected(format!("GET {url}: the answer is not JSON: {e}")))
    }

    /// `POST path` without a body; the answer's text.
    pub async fn post(&self, path: &str) -> Result<String, Failure> {
        let url = format!("{}{path}", self.base_url);
        self.send(self.http.post(&url), &url).await
    }

    async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<String, Failure> {
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.map_err(|e| self.classify(&e, url))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| self.classify(&e, url))?;
        if status.is_success() {
            return Ok(body);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(Failure::Unauthorized {
                url: url.to_string(),
                with_credentials: self.authorization.is_some(),
            });
        }
        Err(Failure::Status {
            url: url.to_string(),
            status: status.as_u16(),
            body: quote(&body),
        })
    }

    fn classify(&self, error: &reqwest::Error, url: &str) -> Failure {
        let url = url.to_string();
        if error.is_timeout() {
            return Failure::Timeout {
                url,
                secs: self.timeout.as_secs_f64(),
            };
        }
        classify_chain(url, error)
    }
}

/// A failure from the chain of causes under `error`: a refused connection is an
/// `io::Error` somewhere in it; a certificate rustls rejects says "certificate"; plain HTTP
/// where TLS was expected is a record of the wrong content type, and TLS where plain HTTP was
/// expected is an invalid HTTP version. The outermost cause
/// (reqwest's "error sending request for url (...)") is left out of the text when there are
/// others, as the URL is named already.
fn classify_chain(url: String, error: &(dyn std::error::Error + 'static)) -> Failure {
    let mut causes = Vec::new();
    let mut refused = false;
    let mut next = Some(error);
    while let Some(cause) = next {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        let text = cause.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        next = cause.source();
    }
    if refused {
        return Failure::Refused { url };
    }
    if causes.len() > 1 {
        causes.remove(0);
    }
    let innermost = causes.last().cloned().unwrap_or_default();
    if causes.iter().any(|cause| cause.contains(NOT_TLS_TEXT)) {
        return Failure::NotTls { url };
    }
    if url.starts_with("http://") && causes.iter().any(|cause| cause.contains(TLS_ANSWER_TEXT)) {
        return Failure::TlsOnly { url };
    }
    if causes
        .iter()
        .any(|cause| cause.to_ascii_lowercase().contains("certificate"))
    {
        return Failure::Certificate {
            url,
            detail: innermost,
        };
    }
    Failure::Transport {
        url,
        detail: causes.join(": "),
    }
}

/// `body` on one line, shortened.
fn quote(body: &str) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() <= BODY_QUOTED_MAX {
        return line;
    }
    let mut end = BODY_QUOTED_MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(&'static str, Box<dyn std::error::Error + 'static>);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(self.1.as_ref())
        }
    }

    #[test]
    fn a_refused_connection_an_untrusted_certificate_and_the_wrong_scheme_are_named() {
        let refused = Wrapper(
            "error sending request",
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        );
        let failure = classify_chain("http://h:1/gossip".into(), &refused);
        assert_eq!(
            failure,
            Failure::Refused {
                url: "http://h:1/gossip".into()
            }
        );
        assert!(failure.to_string().contains("http://h:1/gossip"));

        let untrusted = Wrapper(
            "client error (Connect)",
            Box::new(std::io::Error::other(
                "invalid peer certificate: UnknownIssuer",
            )),
        );
        let failure = classify_chain("https://h:1/gossip".into(), &untrusted);
        assert!(
            matches!(failure, Failure::Certificate { .. }),
            "{failure:?}"
        );
        assert!(failure.to_string().contains("--tls-ca-file"), "{failure}");

        let plain = Wrapper(
            "error sending request for url (https://h:1/gossip)",
            Box::new(std::io::Error::other(
                "received corrupt message of type InvalidContentType",
            )),
        );
        let failure = classify_chain("https://h:1/gossip".into(), &plain);
        assert_eq!(
            failure,
            Failure::NotTls {
                url: "https://h:1/gossip".into()
            }
        );

        let secure = Wrapper(
            "error sending request for url (http://h:1/gossip)",
            Box::new(std::io::Error::other(
                "client error (SendRequest): invalid HTTP version parsed",
            )),
        );
        let failure = classify_chain("http://h:1/gossip".into(), &secure);
        assert!(failure.to_string().contains("use https://"), "{failure}");

        let other = Wrapper(
            "error sending request for url (http://h:1/gossip)",
            Box::new(std::io::Error::other("connection reset")),
        );
        let failure = classify_chain("http://h:1/gossip".into(), &other);
        assert_eq!(failure.to_string(), "http://h:1/gossip: connection reset");
    }

    #[test]
    fn a_401_says_whether_credentials_were_given() {
        let missing = Failure::Unauthorized {
            url: "u".into(),
            with_credentials: false,
        };
        assert!(missing.to_string().contains("credentials are missing"));
        let wrong = Failure::Unauthorized {
            url: "u".into(),
            with_credentials: true,
        };
        assert!(wrong.to_string().contains("credentials are wrong"));
    }

    #[test]
    fn long_bodies_are_quoted_on_one_shortened_line() {
        assert_eq!(quote("a\n b "), "a b");
        let long = "é".repeat(BODY_QUOTED_MAX);
        let quoted = quote(&long);
        assert!(quoted.ends_with("...") && quoted.len() <= BODY_QUOTED_MAX + 3);
    }
}
