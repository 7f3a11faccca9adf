//! A real S3 server on 127.0.0.1 for the tests of shared state: moto's server (from `PyPI`,
//! provisioned by [`super::tools`]), which implements S3's conditional writes
//! (`If-None-Match: *`, `If-Match`). One per test, stopped when dropped.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use super::tools::{self, Tool};

pub(crate) struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto's S3 server on a free port and waits until it says it listens; `None` when
    /// it could not be provisioned outside CI (the skip is recorded: see [`tools::find`]).
    pub(crate) fn start() -> Option<Self> {
        let moto_server = tools::find(Tool::PythonTools)?.join("moto_server");
        let moto_server = moto_server.to_str().expect("a UTF-8 target directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let args = ["-H", "127.0.0.1", "-p", &port.to_string()];
        // Through setpriv where it is installed: the server dies with the test process.
        let spawn = |program: &str, prefix: &[&str]| {
            Command::new(program)
                .args(prefix)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
        };
        let child = match spawn("setpriv", &["--pdeathsig", "KILL", "--", moto_server]) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => spawn(moto_server, &[]),
            spawned => spawned,
        };
        let mut child = child.unwrap_or_else(|e| panic!("cannot start {moto_server}: {e}"));
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            let read = stderr.read_line(&mut line).unwrap();
            assert!(read > 0, "{moto_server} stopped before it listened");
            if line.contains("Running on") {
                break;
            }
        }
        // Its log goes on; drained so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Some(Self { child, port })
    }

    /// The endpoint, as `AWS_ENDPOINT_URL` names it.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates bucket `name` and gives the state URL `s3://name/team`.
    pub(crate) fn bucket(&self, name: &str) -> String {
        let answer = self.request("PUT", &format!("/{name}"));
        assert!(answer.starts_with("HTTP/1.1 200"), "bucket {name} not made: {answer}");
        format!("s3://{name}/team")
    }

    /// One plain request to the server (moto checks no signature), its whole answer.
    fn request(&self, method: &str, target: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// The variables a run needs to use the server (any credentials: moto checks none).
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "test-access-key".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test-secret-key".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Every key in `bucket`, by listing it (`ListObjectsV2`).
    pub(crate) fn keys(&self, bucket: &str) -> Vec<String> {
        let answer = self.request("GET", &format!("/{bucket}?list-type=2&max-keys=1000"));
        answer.split("<Key>").skip(1).filter_map(|s| s.split("</Key>").next()).map(str::to_owned).collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}
