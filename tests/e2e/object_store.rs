//! The object store layer, through `strata check-object-store`, against the local defaults
//! and a real S3-compatible server (moto, installed into the test venv by
//! scripts/install-test-deps.sh and started here on a loopback port).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::clients;

/// A moto S3 server on a free loopback port, stopped (by PID) when dropped.
pub(crate) struct S3Server {
    child: Child,
    pub(crate) endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto and creates `bucket`; `None` when moto is not installed (and not required).
pub(crate) fn s3_server(bucket: &str) -> Option<S3Server> {
    let python = clients::confluent_python("moto S3 server")?;
    let moto = std::path::Path::new(&python).with_file_name("moto_server");
    let port = strata_e2e::unused_port();
    let child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let address = format!("127.0.0.1:{port}");
    let server = S3Server {
        child,
        endpoint: format!("http://{address}"),
    };
    let create = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match strata_e2e::http(&address, &create) {
            Ok(response) if response.starts_with("HTTP/1.1 200") => return Some(server),
            other => {
                assert!(
                    Instant::now() < deadline,
                    "moto never created the bucket: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Runs `strata check-object-store URL` with `env`; answers (success, output).
fn check_store(url: &str, env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(strata_e2e::strata_bin().expect("strata binary"))
        .args(["check-object-store", url])
        // Only what the test gives: no keys from the environment it runs in, and no instance
        // metadata lookups (off AWS they only time out).
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_object_store_layer_works_against_an_s3_server_and_the_local_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    for url in [
        format!("file://{}", dir.path().display()),
        "memory://".to_string(),
    ] {
        let (ok, output) = check_store(&url, &[]);
        assert!(
            ok && output.contains("the object store works"),
            "{url}: {output}"
        );
    }
    let Some(server) = s3_server("strata") else {
        return;
    };
    // moto takes any signed request; the credentials come from the usual AWS variables.
    let credentials = [
        ("AWS_ACCESS_KEY_ID", "strata"),
        ("AWS_SECRET_ACCESS_KEY", "strata"),
    ];
    let url = format!(
        "s3://strata/cluster?endpoint={}&region=us-east-1&path_style=true",
        server.endpoint
    );
    let (ok, output) = check_store(&url, &credentials);
    assert!(ok && output.contains("the object store works"), "{output}");

    // aws-config's default chain: a profile in a shared credentials file, no AWS_* keys.
    let home = tempfile::tempdir().expect("tempdir");
    let credentials_file = home.path().join("credentials");
    std::fs::write(
        &credentials_file,
        "[strata]\naws_access_key_id = strata\naws_secret_access_key = strata\n",
    )
    .expect("credentials file");
    let no_config = home.path().join("config");
    let credentials_file = credentials_file.display().to_string();
    let no_config = no_config.display().to_string();
    let profile = [
        ("AWS_SHARED_CREDENTIALS_FILE", credentials_file.as_str()),
        ("AWS_CONFIG_FILE", no_config.as_str()),
        ("AWS_PROFILE", "strata"),
    ];
    let (ok, output) = check_store(&url, &profile);
    assert!(
        ok && output.contains("the object store works"),
        "credentials from a profile: {output}"
    );
    let nowhere = [
        ("AWS_SHARED_CREDENTIALS_FILE", no_config.as_str()),
        ("AWS_CONFIG_FILE", no_config.as_str()),
    ];
    let (ok, output) = check_store(&url, &nowhere);
    assert!(!ok, "no credentials anywhere fails: {output}");
    let missing = format!(
        "s3://no-such-bucket/x?endpoint={}&region=us-east-1&path_style=true",
        server.endpoint
    );
    let (ok, output) = check_store(&missing, &credentials);
    assert!(
        !ok && output.contains("writing the probe"),
        "a missing bucket fails: {output}"
    );
}
