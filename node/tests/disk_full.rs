//! A revocation or refresh that cannot be made durable is refused, not acknowledged;
//! once space returns, both work again. Mounts a tiny tmpfs, so it runs as root
//! (CI does).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tmpfs of a few pages, unmounted on drop even if the test fails.
struct TinyDisk(PathBuf);

impl TinyDisk {
    fn mount(at: &Path) -> Self {
        std::fs::create_dir_all(at).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root; run the tests as root (CI does)"
        );
        Self(at.to_owned())
    }

    /// Writes a filler file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = [0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        path
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn revoke(base: &str, token: &str) -> reqwest::blocking::Response {
    http()
        .post(format!("{base}/oauth/revoke"))
        .basic_auth("web", Some("web-secret"))
        .form(&[("token", token)])
        .send()
        .expect("sent")
}

#[test]
fn a_full_disk_refuses_revocations_instead_of_losing_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = TinyDisk::mount(&dir.path().join("data"));
    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, config_toml(&disk.0, "")).expect("config");
    let config = config.display().to_string();
    let node = spawn_binary(&["serve", "--config", &config], Path::new("/"), &[]);

    let token = token_ok(&node.base, WEB, &[("grant_type", "client_credentials")]);
    let token = token["access_token"].as_str().expect("token").to_owned();
    let pair = alice_tokens(&node.base, None);
    let refresh = pair["refresh_token"].as_str().expect("refresh").to_owned();
    let filler = disk.fill();

    let refreshed = token_request(
        &node.base,
        WEB,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_error(refreshed, 503, "temporarily_unavailable", &refresh);

    let refused = revoke(&node.base, &token);
    assert_error(refused, 503, "temporarily_unavailable", &token);
    assert_eq!(
        check(&node.base, &token, &[]).status(),
        200,
        "nothing half-applied"
    );

    std::fs::remove_file(filler).expect("free space");
    // The refresh that could not be recorded was not spent: retrying is not reuse.
    token_ok(
        &node.base,
        WEB,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_eq!(revoke(&node.base, &token).status(), 200);
    assert_eq!(check(&node.base, &token, &[]).status(), 401);

    node.kill();
    let node = spawn_binary(&["serve", "--config", &config], Path::new("/"), &[]);
    assert_eq!(
        check(&node.base, &token, &[]).status(),
        401,
        "journal is intact after ENOSPC"
    );
}
