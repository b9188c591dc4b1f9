//! A full disk under the usage spool, on a real (small) filesystem: a tmpfs mounted for the test.
//! A call whose record cannot be written is not answered as a success; the spool keeps no
//! fragment; calls are refused (503, `/readyz` too) until the disk has room again, then served
//! and recorded as before. Mounting needs root: without it the test says so and stops.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;
use crate::mock::{Flavor, Mock};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(bytes: u64) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("perpetuo-full-disk-{}", perpetuo_core::platform::db::new_id()));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if mounted { Some(Self(dir)) } else { None }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fills the filesystem, then frees `leave` bytes of it.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    let mut written = 0u64;
    while file.write_all(&block).is_ok() {
        written += block.len() as u64;
    }
    let _ = file.flush();
    file.set_len(written.saturating_sub(leave)).unwrap();
    path
}

/// Every segment of the spool ends with a whole line.
fn segments_are_whole(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .all(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            bytes.is_empty() || bytes.last() == Some(&b'\n')
        })
}

#[tokio::test]
async fn a_full_disk_refuses_calls_keeps_no_fragment_and_recovers() {
    let Some(disk) = Tmpfs::mount(1024 * 1024) else {
        crate::requires::skip(
            "the full-disk test",
            "mounting a tmpfs needs root (scripts/test.sh runs it where it can)",
        );
        return;
    };
    let spool = disk.0.join("spool");
    let mut options = Options::default();
    options.settings.usage_spool_dir = Some(spool.clone());
    let gw = Gateway::start(options).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("Mock", "openai_compatible", &mock.base_url(), 1).await;
    assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 200);
    let ballast = fill(&disk.0, 6 * 1024);

    let mut ok = 1;
    let mut refused: Option<Value> = None;
    for _ in 0..200 {
        let response = gw.chat(&chat_body("mock-small")).await;
        match response.status().as_u16() {
            200 => ok += 1,
            503 => {
                refused = Some(response.json().await.unwrap());
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let refused = refused.expect("a call was refused once the disk was full");
    eprintln!("disk full after {ok} answered calls: {refused}");
    assert_eq!(refused["error"]["code"], "usage_ledger_unavailable", "{refused}");
    assert!(segments_are_whole(&spool), "no fragment of a record is left in the spool");
    let again = gw.chat(&chat_body("mock-small")).await;
    assert_eq!(again.status(), 503, "refused before any provider is called");
    let hits = mock.hits();
    assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 503);
    assert_eq!(mock.hits(), hits, "no provider call is made while records cannot be kept");
    assert_eq!(gw.app.get_json("/readyz", None).await.status(), 503);

    std::fs::remove_file(&ballast).unwrap();
    let ready = poll(Duration::from_secs(30), || async {
        (gw.app.get_json("/readyz", None).await.status() == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "ready again once the disk has room");
    for _ in 0..5 {
        assert_eq!(gw.chat(&chat_body("mock-small")).await.status(), 200);
        ok += 1;
    }
    // Every answered call has its record, and the spool still holds only whole lines.
    let records = gw.usage(ok).await;
    let answered = records.iter().filter(|r| r["status"] == 200).count();
    assert_eq!(answered, ok, "one record per answered call");
    assert!(segments_are_whole(&spool));
}
