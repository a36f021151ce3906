//! Files and directories that must survive power loss, not just a crash of the process.
//!
//! Small metadata files are replaced atomically: write a temporary sibling, fsync it, rename
//! it over the target, fsync the directory. A crash leaves either the old or the new content.
//! A new file or directory exists after power loss only once its parent directory has been
//! fsynced: [`create_dir_all_durable`] and [`sync_dir`] do that.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `contents` so that a crash never leaves a partial file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("metadata path has no parent"))?;
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Reads a file that may not exist yet.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes the entries of `dir` (files created or renamed in it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing parents, and makes each new directory's entry durable.
pub fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    fs::create_dir_all(dir)?;
    for created in missing {
        if let Some(parent) = created.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_directories_are_created_and_files_replaced_whole() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a").join("b").join("c");
        create_dir_all_durable(&dir).expect("create");
        create_dir_all_durable(&dir).expect("again: nothing to do");
        assert!(dir.is_dir());
        let file = dir.join("meta.json");
        assert_eq!(read_optional(&file).expect("read"), None);
        write_atomic(&file, b"one").expect("write");
        write_atomic(&file, b"two").expect("replace");
        assert_eq!(
            read_optional(&file).expect("read").as_deref(),
            Some(&b"two"[..])
        );
        assert!(!file.with_extension("tmp").exists());
    }
}
